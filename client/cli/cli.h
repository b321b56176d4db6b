// The `mgreg` command-line tool (DESIGN §8), as a function so tests can run it in
// process. Output goes to `out`, errors and progress to `err`. The commands, one file
// per group, each declare their own options (command.h); `mgreg help COMMAND` lists
// them.
#ifndef MGREG_CLIENT_CLI_CLI_H_
#define MGREG_CLIENT_CLI_CLI_H_

#include <ostream>
#include <string>
#include <vector>

namespace mgreg {

// Exit codes: 0 success (and help), 1 the operation failed (the server's or the local
// error is printed), 2 the command line is wrong: an unknown command, wrong arguments,
// or an option the command does not take (what it takes is printed).
int RunCli(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

}  // namespace mgreg

#endif  // MGREG_CLIENT_CLI_CLI_H_
