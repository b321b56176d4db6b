// The `mgreg` command line: which command it names, its arguments, and its options, each
// checked against what that command declares (client/cli/command.h); and the help texts.
//
// Options may come anywhere after the command. Before the command only the options
// every command shares are taken: the connection options (--server, --token, --tls,
// --ca-cert, --cert, --key), --json and --help (commands that contact no server ignore
// the connection options given there).
#ifndef MGREG_CLIENT_CLI_COMMAND_LINE_H_
#define MGREG_CLIENT_CLI_COMMAND_LINE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "client/cli/command.h"

namespace mgreg::cli {

// Every command, in the order `mgreg help` lists them.
const std::vector<Command>& AllCommands();

struct CommandLine {
  // The command to run (null only for help on everything).
  const Command* command = nullptr;
  std::vector<std::string> args;
  ParsedOptions options;
  // `mgreg help [COMMAND]`, or --help / -h anywhere: print `help_for`'s help (every
  // command when empty) instead of running anything.
  bool help = false;
  std::vector<const Command*> help_for;
};

// Parses the arguments after the program name. A wrong command line is INVALID_ARGUMENT
// (exit code 2) whose message is the whole text to print: what is wrong, naming the
// command and what it takes, then its usage where that helps.
absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& argv);

// `mgreg help`: the commands and the options they share.
std::string Usage();
// `mgreg help COMMAND`: its usage, what it does, and every option it takes.
std::string CommandHelp(const Command& command);

}  // namespace mgreg::cli

#endif  // MGREG_CLIENT_CLI_COMMAND_LINE_H_
