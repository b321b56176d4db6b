// The `mgreg` command-line tool (DESIGN §8), as a function so tests can run it in
// process. Output goes to `out`, errors and progress to `err`.
#ifndef MGREG_CLIENT_CLI_CLI_H_
#define MGREG_CLIENT_CLI_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace mgreg {

// Exit codes: 0 success, 1 the operation failed (the server's or the local error is
// printed), 2 the command line is wrong (usage is printed).
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace mgreg

#endif  // MGREG_CLIENT_CLI_CLI_H_
