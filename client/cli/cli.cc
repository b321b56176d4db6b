#include "client/cli/cli.h"

#include "absl/status/status.h"
#include "client/cli/command.h"
#include "client/cli/command_line.h"

namespace mgreg {

int RunCli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  absl::StatusOr<cli::CommandLine> line = cli::ParseCommandLine(argv);
  if (!line.ok()) {
    err << line.status().message() << "\n";
    return 2;
  }
  if (line->help) {
    if (line->help_for.empty()) out << cli::Usage();
    for (size_t i = 0; i < line->help_for.size(); ++i) {
      out << (i > 0 ? "\n" : "") << cli::CommandHelp(*line->help_for[i]);
    }
    return 0;
  }
  const cli::Command& command = *line->command;
  cli::Context ctx(line->options, out, err);
  const absl::Status status = command.run(line->args, ctx);
  if (!status.ok()) {
    // Named by its first word ("mgreg upload: ..."), as scripts have always seen it.
    err << "mgreg " << command.name.substr(0, command.name.find(' ')) << ": "
        << absl::StatusCodeToString(status.code()) << ": " << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace mgreg
