// The pieces every `mgreg` command is made of: the options it declares, the command line
// parsed against them, and the context a command runs in (output streams, the
// connection, --json). Each command group (push_commands.cc, read_commands.cc, ...)
// declares its commands with these; cli.cc parses, dispatches and prints help.
#ifndef MGREG_CLIENT_CLI_COMMAND_H_
#define MGREG_CLIENT_CLI_COMMAND_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "client/client.h"
#include "google/protobuf/message.h"
#include "mgreg/v1/registry.pb.h"

namespace mgreg::cli {

// One option a command takes: `--name VALUE`, or `--name` alone when `value` is empty.
// `-name` works as well as `--name`, and `--name=VALUE` as `--name VALUE`.
struct Option {
  std::string name;   // "step"; one letter for a short option ("o")
  std::string value;  // the value's placeholder in help ("N"); empty: a flag
  std::string help;   // one line for `mgreg help COMMAND`
  // Other spellings ("output" for "o"); parsed as `name`.
  std::vector<std::string> aliases = {};
};

// Options shared by many commands, to put in their option lists.
std::vector<Option> ConnectionOptions();   // --server, --token, --tls, --ca-cert, ...
std::vector<Option> StepOrAliasOptions();  // --step N, --alias A
std::vector<Option> GraphOptions();        // export_meta_graph's filters
Option JsonOption();
Option TagsOption();  // --tags T1,T2: a SavedModel's MetaGraphDef by tag set
// a + b + ..., for building option lists.
std::vector<Option> Join(std::initializer_list<std::vector<Option>> lists);

// The options of one command line, each under its Option::name.
class ParsedOptions {
 public:
  void Add(const std::string& name, std::optional<std::string> value);
  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  // The last value given; nullopt when absent.
  std::optional<std::string> Value(const std::string& name) const;
  // Every value given, in order (repeatable options).
  std::vector<std::string> Values(const std::string& name) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
};

class Context;

// One command: `mgreg <name> <args> [options]`. A group's commands are named with their
// subcommand ("upload begin").
struct Command {
  std::string name;
  std::string args;      // "MODEL PREFIX"
  std::string synopsis;  // the main options, for the command list ("[--step N]")
  std::string summary;   // what it does, one or two lines
  size_t min_args = 0;
  size_t max_args = 0;  // kAnyNumber for FILE...
  std::vector<Option> options;
  std::function<absl::Status(const std::vector<std::string>& args, Context& ctx)> run;

  static constexpr size_t kAnyNumber = std::numeric_limits<size_t>::max();
  bool TakesOption(const std::string& name) const;
};

// What a command runs with.
class Context {
 public:
  Context(const ParsedOptions& options, std::ostream& out, std::ostream& err)
      : options_(options), out_(out), err_(err) {}

  const ParsedOptions& options() const { return options_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }
  bool json() const { return options_.Has("json"); }
  // True when the output goes to a person: the process's stdout, a terminal.
  bool OutIsTerminal() const;

  // The client of --server / $MGREG_SERVER with the token and TLS options; made once.
  absl::StatusOr<Client*> Connect();

  // `m` as indented JSON on out() (the --json output of a result).
  absl::Status PrintJson(const google::protobuf::Message& m);
  // `m` as one line of JSON on out(), flushed (one event of a stream).
  absl::Status PrintJsonLine(const google::protobuf::Message& m);

 private:
  const ParsedOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
  std::unique_ptr<Client> client_;
};

// Option values, checked; errors say which option and what it must be.
absl::StatusOr<int64_t> ParseStep(absl::string_view text);
absl::StatusOr<std::optional<int64_t>> StepOption(const ParsedOptions& options);
// --step N or --alias NAME (not both); neither names the latest step.
absl::StatusOr<StepRef> StepRefOption(const ParsedOptions& options);
// An integer >= 0, `fallback` when absent.
absl::StatusOr<int> IntOption(const ParsedOptions& options, const std::string& name,
                              int fallback);
// The graph options given, and --tags when the command takes it.
v1::GraphOptions GraphOptionsFrom(const ParsedOptions& options);

// The command groups, each in its own file.
std::vector<Command> PushCommands();      // push, upload ...
std::vector<Command> ReadCommands();      // latest, list, graph, collection, inspect, ...
std::vector<Command> RestoreCommands();   // restore, sync
std::vector<Command> SettingsCommands();  // retention, pin, unpin, alias ..., delete
std::vector<Command> AdminCommands();     // admin backup, admin health, admin check
std::vector<Command> ExportCommands();    // export (offline)

}  // namespace mgreg::cli

#endif  // MGREG_CLIENT_CLI_COMMAND_H_
