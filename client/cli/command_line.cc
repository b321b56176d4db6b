#include "client/cli/command_line.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace mgreg::cli {
namespace {

// Options every command takes before its name (see the header).
std::vector<Option> GlobalOptions() {
  return Join({ConnectionOptions(), {JsonOption()}});
}

bool IsHelp(const std::string& name) { return name == "help" || name == "h"; }

// "--step N", "-o FILE", "--json".
std::string Spelled(const Option& o) {
  std::string out = absl::StrCat(o.name.size() == 1 ? "-" : "--", o.name);
  if (!o.value.empty()) absl::StrAppend(&out, " ", o.value);
  return out;
}

// An option as written on the command line.
struct OptionToken {
  std::string written;  // "--colour", "-o"
  std::string
      name;  // the Option::name it spells ("o" for --output); as written if unknown
  std::optional<std::string> value;
  bool known = false;
  bool takes_value = false;
  bool before_command = false;  // before the command's name: a global position
};

// Every option any command declares, by each of its spellings.
const std::map<std::string, Option>& KnownOptions() {
  static const auto* known = [] {
    auto* m = new std::map<std::string, Option>;
    auto add = [m](const Option& o) {
      m->emplace(o.name, o);
      for (const std::string& a : o.aliases) m->emplace(a, o);
    };
    for (const Option& o : GlobalOptions()) add(o);
    for (const Command& c : AllCommands()) {
      for (const Option& o : c.options) add(o);
    }
    return m;
  }();
  return *known;
}

// The group a command belongs to ("upload" of "upload begin"); empty for none.
std::string GroupOf(const Command& c) {
  const size_t space = c.name.find(' ');
  return space == std::string::npos ? "" : c.name.substr(0, space);
}

std::vector<const Command*> GroupCommands(const std::string& group) {
  std::vector<const Command*> out;
  for (const Command& c : AllCommands()) {
    if (GroupOf(c) == group) out.push_back(&c);
  }
  return out;
}

std::string CommandNames() {
  std::vector<std::string> names;
  for (const Command& c : AllCommands()) {
    const std::string group = GroupOf(c);
    const std::string name = group.empty() ? c.name : group;
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  return absl::StrJoin(names, ", ");
}

std::string Subcommands(const std::string& group) {
  std::vector<std::string> subs;
  for (const Command* c : GroupCommands(group))
    subs.push_back(c->name.substr(group.size() + 1));
  return absl::StrJoin(subs, ", ");
}

std::string OptionList(const Command& command) {
  std::vector<std::string> listed;
  for (const Option& o : command.options) {
    if (!o.help.empty()) listed.push_back(Spelled(o));
  }
  return listed.empty() ? "none" : absl::StrJoin(listed, ", ");
}

std::string HelpOf(const std::vector<const Command*>& commands) {
  std::vector<std::string> parts;
  for (const Command* c : commands) parts.push_back(CommandHelp(*c));
  return absl::StrJoin(parts, "\n");
}

// Resolves `words` (the positional arguments) to a command and its arguments. Errors
// are usage errors, their text complete.
absl::StatusOr<std::pair<const Command*, std::vector<std::string>>> Resolve(
    const std::vector<std::string>& words) {
  for (const Command& c : AllCommands()) {
    if (c.name == words[0]) {
      return std::make_pair(&c, std::vector<std::string>(words.begin() + 1, words.end()));
    }
  }
  const std::vector<const Command*> group = GroupCommands(words[0]);
  if (group.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mgreg: no command '", words[0], "'\n\n", absl::StripSuffix(Usage(), "\n")));
  }
  if (words.size() >= 2) {
    for (const Command* c : group) {
      if (c->name == absl::StrCat(words[0], " ", words[1])) {
        return std::make_pair(c,
                              std::vector<std::string>(words.begin() + 2, words.end()));
      }
    }
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "mgreg: wrong arguments for '", words[0], "': give one of ", Subcommands(words[0]),
      "\n\n", absl::StripSuffix(HelpOf(group), "\n")));
}

absl::Status CheckOption(const Command& command, const OptionToken& t) {
  const std::vector<Option> globals = GlobalOptions();
  const bool global =
      t.before_command && std::any_of(globals.begin(), globals.end(),
                                      [&t](const Option& o) { return o.name == t.name; });
  if (!t.known || (!global && !command.TakesOption(t.name))) {
    return absl::InvalidArgumentError(absl::StrCat(
        "mgreg ", command.name, ": ", command.name, " does not take '", t.written,
        "'; its options: ", OptionList(command), " (mgreg help ", command.name, ")"));
  }
  if (t.takes_value && !t.value.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mgreg ", command.name, ": ", t.written, " needs a value"));
  }
  if (!t.takes_value && t.value.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("mgreg ", command.name, ": ", t.written, " takes no value"));
  }
  return absl::OkStatus();
}

}  // namespace

const std::vector<Command>& AllCommands() {
  static const auto* all = [] {
    auto* v = new std::vector<Command>;
    for (std::vector<Command> group :
         {PushCommands(), ReadCommands(), RestoreCommands(), ExportCommands(),
          SettingsCommands(), AdminCommands()}) {
      for (Command& c : group) v->push_back(std::move(c));
    }
    return v;
  }();
  return *all;
}

absl::StatusOr<CommandLine> ParseCommandLine(const std::vector<std::string>& argv) {
  std::vector<std::string> words;
  std::vector<OptionToken> options;
  bool help = false;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      words.insert(words.end(), argv.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                   argv.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-' || a == "-") {
      words.push_back(a);
      continue;
    }
    OptionToken t;
    t.written = a;
    t.name = a.substr(a[1] == '-' ? 2 : 1);
    if (size_t eq = t.name.find('='); eq != std::string::npos) {
      t.value = t.name.substr(eq + 1);
      t.name = t.name.substr(0, eq);
      t.written = a.substr(0, a.size() - t.value->size() - 1);
    }
    if (IsHelp(t.name)) {
      help = true;
      continue;
    }
    t.before_command = words.empty();
    if (auto it = KnownOptions().find(t.name); it != KnownOptions().end()) {
      t.known = true;
      t.name = it->second.name;
      t.takes_value = !it->second.value.empty();
      if (t.takes_value && !t.value.has_value() && i + 1 < argv.size()) {
        t.value = argv[++i];
      }
    }
    options.push_back(std::move(t));
  }

  CommandLine line;
  if (help || (!words.empty() && words[0] == "help")) {
    // Help on what the words name: a command, a group's commands, or (none) everything.
    line.help = true;
    if (!words.empty() && words[0] == "help") words.erase(words.begin());
    if (words.empty()) return line;
    const std::vector<const Command*> group = GroupCommands(words[0]);
    if (!group.empty()) {
      for (const Command* c : group) {
        if (words.size() >= 2 && c->name == absl::StrCat(words[0], " ", words[1])) {
          line.help_for = {c};
          return line;
        }
      }
      line.help_for = group;
      return line;
    }
    for (const Command& c : AllCommands()) {
      if (c.name == words[0]) {
        line.help_for = {&c};
        return line;
      }
    }
    return absl::InvalidArgumentError(absl::StrCat("mgreg help: no command '", words[0],
                                                   "'; the commands: ", CommandNames()));
  }
  if (words.empty()) {
    for (const OptionToken& t : options) {
      if (!t.known) {
        return absl::InvalidArgumentError(
            absl::StrCat("mgreg: unknown option '", t.written,
                         "'; run 'mgreg help' for the commands"));
      }
    }
    return absl::InvalidArgumentError(absl::StripSuffix(Usage(), "\n"));
  }
  absl::StatusOr<std::pair<const Command*, std::vector<std::string>>> resolved =
      Resolve(words);
  if (!resolved.ok()) return resolved.status();
  const Command& command = *resolved->first;
  for (const OptionToken& t : options) {
    absl::Status checked = CheckOption(command, t);
    if (!checked.ok()) return checked;
    line.options.Add(t.name, t.value);
  }
  line.args = std::move(resolved->second);
  if (line.args.size() < command.min_args || line.args.size() > command.max_args) {
    return absl::InvalidArgumentError(
        absl::StrCat("mgreg: wrong arguments for '", command.name, "': it takes ",
                     command.args.empty() ? "no arguments" : command.args, "\n\n",
                     absl::StripSuffix(CommandHelp(command), "\n")));
  }
  line.command = &command;
  return line;
}

namespace {

// "  name ARGS SYNOPSIS" then the summary at column 22, on the same line when it fits.
void AppendEntry(const std::string& synopsis, const std::string& summary,
                 std::string* out) {
  constexpr size_t kColumn = 22;
  std::string head = absl::StrCat("  ", synopsis);
  std::vector<std::string> lines = absl::StrSplit(summary, '\n');
  if (head.size() + 2 <= kColumn) {
    head.resize(kColumn, ' ');
    absl::StrAppend(out, head, lines[0], "\n");
    lines.erase(lines.begin());
  } else {
    absl::StrAppend(out, head, "\n");
  }
  for (const std::string& l : lines) {
    absl::StrAppend(out, std::string(kColumn, ' '), l, "\n");
  }
}

std::string Synopsis(const Command& c) {
  std::vector<std::string> parts = {c.name};
  if (!c.args.empty()) parts.push_back(c.args);
  if (!c.synopsis.empty()) parts.push_back(c.synopsis);
  return absl::StrJoin(parts, " ");
}

}  // namespace

std::string Usage() {
  std::string out =
      "usage: mgreg [--server HOST:PORT] COMMAND [ARGS] [OPTIONS]\n\ncommands:\n";
  for (const Command& c : AllCommands()) AppendEntry(Synopsis(c), c.summary, &out);
  AppendEntry("help [COMMAND]",
              "this text, or a command's usage and every option it takes", &out);
  absl::StrAppend(
      &out,
      "\ngraph options (TensorFlow's export_meta_graph):\n"
      "  --clear-devices  --export-scope S  --collection K (repeatable)  "
      "--no-collections\n"
      "  --strip-default-attrs  --clear-extraneous-savers  --unbound-inputs-col NAME\n"
      "  --as-text\n"
      "\n"
      "--server defaults to $MGREG_SERVER, else 127.0.0.1:8470. Every read command takes "
      "--json.\n"
      "--token T (default $MGREG_TOKEN) sends a bearer token. --ca-cert FILE connects "
      "with "
      "TLS\n"
      "(trusting FILE's CAs; --tls alone uses the system roots); --cert FILE --key FILE "
      "present\n"
      "a client certificate (mutual TLS). These and --json may also come before "
      "COMMAND.\n"
      "Each command takes only its own options: mgreg help COMMAND (or mgreg COMMAND\n"
      "--help) lists them.\n");
  return out;
}

std::string CommandHelp(const Command& command) {
  std::string out = absl::StrCat("usage: mgreg ", command.name);
  if (!command.args.empty()) absl::StrAppend(&out, " ", command.args);
  if (!command.options.empty()) absl::StrAppend(&out, " [OPTIONS]");
  absl::StrAppend(&out, "\n");
  for (absl::string_view l : absl::StrSplit(command.summary, '\n')) {
    absl::StrAppend(&out, "  ", l, "\n");
  }
  std::vector<std::pair<std::string, std::string>> rows;
  size_t width = 0;
  for (const Option& o : command.options) {
    if (o.help.empty()) continue;
    std::string spelled = Spelled(o);
    for (const std::string& a : o.aliases) {
      spelled = absl::StrCat(spelled, ", --", a, o.value.empty() ? "" : " ", o.value);
    }
    width = std::max(width, spelled.size());
    rows.emplace_back(std::move(spelled), o.help);
  }
  if (!rows.empty()) {
    absl::StrAppend(&out, "\noptions:\n");
    for (auto& [spelled, help] : rows) {
      spelled.resize(width, ' ');
      absl::StrAppend(&out, "  ", spelled, "  ", help, "\n");
    }
  }
  return out;
}

}  // namespace mgreg::cli
