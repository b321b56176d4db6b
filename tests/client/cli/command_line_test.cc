// The `mgreg` command line, parsed without a server: each command takes only the options
// it declares (an option it does not take is a usage error naming the options it
// takes), a missing argument is a usage error with the command's usage, `mgreg help
// COMMAND` and `mgreg COMMAND --help` print that command's usage and options, and every
// `mgreg ...` line the documentation shows parses.
#include "client/cli/command_line.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/cli/cli.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mgreg::cli {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

// The message of a command line that does not parse ("" if it parses).
std::string ParseError(const std::vector<std::string>& argv) {
  absl::StatusOr<CommandLine> line = ParseCommandLine(argv);
  if (line.ok()) return "";
  EXPECT_EQ(line.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(line.status().message());
}

struct CliRun {
  int exit_code;
  std::string out;
  std::string err;
};
CliRun RunMgreg(const std::vector<std::string>& argv) {
  std::ostringstream out, err;
  const int code = RunCli(argv, out, err);
  return {code, out.str(), err.str()};
}

TEST(CommandLineTest, EveryOptionHasOneMeaningAcrossCommands) {
  // The command line is split before the command is known: an option must take a value
  // in every command or in none, and mean one option under each spelling.
  std::map<std::string, std::string> value_of;  // spelling -> placeholder
  std::map<std::string, std::string> name_of;   // spelling -> Option::name
  for (const Command& c : AllCommands()) {
    std::map<std::string, int> seen;
    for (const Option& o : c.options) {
      EXPECT_EQ(++seen[o.name], 1) << c.name << " declares --" << o.name << " twice";
      std::vector<std::string> spellings = o.aliases;
      spellings.push_back(o.name);
      for (const std::string& s : spellings) {
        auto [it, inserted] = value_of.emplace(s, o.value);
        EXPECT_EQ(it->second.empty(), o.value.empty()) << c.name << " --" << s;
        auto [name, unused] = name_of.emplace(s, o.name);
        EXPECT_EQ(name->second, o.name) << c.name << " --" << s;
      }
    }
    EXPECT_FALSE(c.summary.empty()) << c.name;
    EXPECT_LE(c.min_args, c.max_args) << c.name;
  }
}

TEST(CommandLineTest, AnOptionTheCommandDoesNotTakeIsAnErrorListingItsOptions) {
  const std::string latest = ParseError({"latest", "m", "--verify"});
  EXPECT_THAT(latest, HasSubstr("mgreg latest: latest does not take '--verify'"));
  EXPECT_THAT(latest, HasSubstr("--json, --server HOST:PORT, --token T"));
  EXPECT_THAT(latest, HasSubstr("mgreg help latest"));
  const std::string inspect = ParseError({"inspect", "m", "--keep", "2"});
  EXPECT_THAT(inspect, HasSubstr("inspect does not take '--keep'"));
  EXPECT_THAT(inspect, HasSubstr("--step N, --alias A, --verify"));
  // A graph filter is not an option of a command that fetches no graph.
  EXPECT_THAT(ParseError({"push", "m", "p", "--clear-devices"}),
              HasSubstr("push does not take '--clear-devices'"));
  // A subcommand's options are its own.
  EXPECT_THAT(ParseError({"upload", "put", "id", "f.index", "--basename", "b"}),
              HasSubstr("upload put does not take '--basename'"));
  EXPECT_EQ(ParseError({"upload", "begin", "m", "1", "--basename", "b"}), "");
  // Never heard of anywhere: the same, naming what was written.
  EXPECT_THAT(ParseError({"latest", "m", "--colour"}),
              HasSubstr("latest does not take '--colour'"));
  EXPECT_THAT(ParseError({"latest", "m", "--colour=red"}),
              HasSubstr("latest does not take '--colour'"));
  // export contacts no server: a connection option after it is refused...
  EXPECT_THAT(ParseError({"export", "in.meta", "-o", "out", "--server", "h:1"}),
              HasSubstr("export does not take '--server'"));
  // ...and taken before it, where every command takes the shared options.
  EXPECT_EQ(ParseError({"--server", "h:1", "export", "in.meta", "-o", "out"}), "");
}

TEST(CommandLineTest, OnlyTheSharedOptionsComeBeforeTheCommand) {
  absl::StatusOr<CommandLine> line =
      ParseCommandLine({"--server", "h:1", "--token", "t", "--json", "latest", "m"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->command->name, "latest");
  EXPECT_EQ(line->options.Value("server"), "h:1");
  EXPECT_EQ(line->options.Value("token"), "t");
  EXPECT_TRUE(line->options.Has("json"));
  // A command's own option before it is still checked against the command.
  EXPECT_EQ(ParseError({"--step", "3", "restore", "m", "d"}), "");
  EXPECT_THAT(ParseError({"--step", "3", "latest", "m"}),
              HasSubstr("latest does not take '--step'"));
  EXPECT_THAT(ParseError({"--colour"}), HasSubstr("unknown option '--colour'"));
}

TEST(CommandLineTest, ValuesArriveUnderTheOptionsName) {
  absl::StatusOr<CommandLine> line =
      ParseCommandLine({"graph", "m", "--step=5", "--output", "g.meta", "--collection",
                        "a", "-collection", "b", "--unbound-inputs-col="});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->args, std::vector<std::string>{"m"});
  EXPECT_EQ(line->options.Value("step"), "5");
  EXPECT_EQ(line->options.Value("o"), "g.meta");  // --output is -o
  EXPECT_EQ(line->options.Values("collection"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(line->options.Value("unbound-inputs-col"), "");
  // "--" ends the options: what follows is an argument even if it starts with '-'.
  line = ParseCommandLine({"delete", "m", "--", "-3"});
  ASSERT_TRUE(line.ok()) << line.status();
  EXPECT_EQ(line->args, (std::vector<std::string>{"m", "-3"}));
  // Without it, "-3" reads as an option delete does not take.
  EXPECT_THAT(ParseError({"delete", "m", "-3"}), HasSubstr("does not take '-3'"));
}

TEST(CommandLineTest, AMissingOrStrayValueIsAnError) {
  EXPECT_THAT(ParseError({"graph", "m", "-o"}),
              HasSubstr("mgreg graph: -o needs a value"));
  EXPECT_THAT(ParseError({"latest", "m", "--json=yes"}),
              HasSubstr("mgreg latest: --json takes no value"));
}

TEST(CommandLineTest, WrongArgumentsShowTheCommandsUsage) {
  const std::string push = ParseError({"push", "m"});
  EXPECT_THAT(push,
              HasSubstr("mgreg: wrong arguments for 'push': it takes MODEL PREFIX"));
  EXPECT_THAT(push, HasSubstr("usage: mgreg push MODEL PREFIX|DIR [OPTIONS]"));
  EXPECT_THAT(push, HasSubstr("--meta KEY=VALUE"));
  EXPECT_THAT(ParseError({"admin", "check", "extra"}),
              HasSubstr("wrong arguments for 'admin check': it takes no arguments"));
  EXPECT_EQ(ParseError({"upload", "put", "id", "a.index", "b.meta"}), "");  // FILE...
  // A group without (or with a wrong) subcommand names the subcommands.
  const std::string upload = ParseError({"upload"});
  EXPECT_THAT(upload, HasSubstr("give one of begin, put, status, commit, abort"));
  EXPECT_THAT(upload, HasSubstr("usage: mgreg upload begin MODEL STEP [FILE...]"));
  EXPECT_THAT(ParseError({"alias", "show", "m"}), HasSubstr("give one of set, rm, list"));
  const std::string unknown = ParseError({"frobnicate"});
  EXPECT_THAT(unknown, HasSubstr("mgreg: no command 'frobnicate'"));
  EXPECT_THAT(unknown, HasSubstr("usage: mgreg"));
}

TEST(CommandLineTest, HelpNamesACommandOrAGroup) {
  for (const std::vector<std::string>& argv :
       std::vector<std::vector<std::string>>{{"help", "push"},
                                             {"push", "--help"},
                                             {"push", "m", "-h"},
                                             {"--help", "push"}}) {
    absl::StatusOr<CommandLine> line = ParseCommandLine(argv);
    ASSERT_TRUE(line.ok()) << absl::StrJoin(argv, " ") << ": " << line.status();
    EXPECT_TRUE(line->help);
    ASSERT_EQ(line->help_for.size(), 1u) << absl::StrJoin(argv, " ");
    EXPECT_EQ(line->help_for[0]->name, "push");
  }
  absl::StatusOr<CommandLine> group = ParseCommandLine({"help", "alias"});
  ASSERT_TRUE(group.ok());
  EXPECT_EQ(group->help_for.size(), 3u);
  absl::StatusOr<CommandLine> sub = ParseCommandLine({"upload", "begin", "--help"});
  ASSERT_TRUE(sub.ok());
  ASSERT_EQ(sub->help_for.size(), 1u);
  EXPECT_EQ(sub->help_for[0]->name, "upload begin");
  absl::StatusOr<CommandLine> all = ParseCommandLine({"help"});
  ASSERT_TRUE(all.ok());
  EXPECT_TRUE(all->help);
  EXPECT_TRUE(all->help_for.empty());
  EXPECT_THAT(
      ParseError({"help", "frobnicate"}),
      HasSubstr("mgreg help: no command 'frobnicate'; the commands: push, upload, "
                "latest"));
}

TEST(CommandLineTest, CommandHelpListsEveryOptionItTakes) {
  for (const Command& c : AllCommands()) {
    const std::string help = CommandHelp(c);
    EXPECT_THAT(help, HasSubstr("usage: mgreg " + c.name)) << c.name;
    for (const Option& o : c.options) {
      if (o.help.empty()) {
        EXPECT_THAT(help, Not(HasSubstr("--" + o.name + " "))) << c.name << " hides it";
      } else {
        EXPECT_THAT(help, HasSubstr(o.help)) << c.name << " --" << o.name;
      }
    }
  }
  const std::string graph =
      CommandHelp(*ParseCommandLine({"help", "graph"})->help_for[0]);
  EXPECT_THAT(graph, HasSubstr("-o FILE, --output FILE"));
  EXPECT_THAT(graph, HasSubstr("--clear-devices"));
  // The list of commands names each one.
  const std::string usage = Usage();
  for (const Command& c : AllCommands()) EXPECT_THAT(usage, HasSubstr("  " + c.name));
}

TEST(CommandLineTest, RunCliExitsTwoOnUsageErrorsAndZeroOnHelp) {
  CliRun none = RunMgreg({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("usage: mgreg"));
  EXPECT_EQ(none.out, "");
  CliRun stray = RunMgreg({"latest", "m", "--verify"});
  EXPECT_EQ(stray.exit_code, 2);
  EXPECT_THAT(stray.err, HasSubstr("latest does not take '--verify'"));
  EXPECT_EQ(stray.out, "");
  CliRun help = RunMgreg({"help", "restore"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_THAT(help.out, HasSubstr("usage: mgreg restore MODEL DIR [OPTIONS]"));
  EXPECT_THAT(help.out, HasSubstr("--keep K"));
  EXPECT_EQ(help.err, "");
  CliRun flag = RunMgreg({"restore", "--help"});
  EXPECT_EQ(flag.exit_code, 0);
  EXPECT_EQ(flag.out, help.out);
  CliRun all = RunMgreg({"--help"});
  EXPECT_EQ(all.exit_code, 0);
  EXPECT_EQ(all.out, Usage());
  CliRun unknown = RunMgreg({"help", "frobnicate"});
  EXPECT_EQ(unknown.exit_code, 2);
}

// The `mgreg ...` command lines of the fenced code blocks of a markdown file, as the
// arguments after "mgreg": continuation lines joined, comments, quotes and the brackets
// of optional parts dropped ("[--step 1000]" -> "--step 1000", "..." dropped).
std::vector<std::vector<std::string>> DocumentedCommandLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::vector<std::string>> out;
  std::string line, joined;
  bool in_block = false;
  while (std::getline(in, line)) {
    if (absl::StartsWith(absl::StripLeadingAsciiWhitespace(line), "```")) {
      in_block = !in_block;
      continue;
    }
    if (!in_block) continue;
    if (absl::EndsWith(line, "\\")) {
      joined += line.substr(0, line.size() - 1) + " ";
      continue;
    }
    joined += line;
    std::string text = std::move(joined);
    joined.clear();
    if (size_t hash = text.find('#');
        hash != std::string::npos && (hash == 0 || text[hash - 1] == ' ')) {
      text.resize(hash);
    }
    std::vector<std::string> words =
        absl::StrSplit(text, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    // The command word, after environment assignments only ("MGREG_TOKEN=... mgreg"),
    // or in "$(mgreg ...)"; not an image named mgreg in a podman line, nor "import
    // mgreg".
    size_t start = 0;
    while (start < words.size() && words[start] != "mgreg" &&
           !absl::EndsWith(words[start], "$(mgreg") &&
           words[start].find('=') != std::string::npos && words[start][0] != '-') {
      ++start;
    }
    if (start == words.size() ||
        (words[start] != "mgreg" && !absl::EndsWith(words[start], "$(mgreg"))) {
      continue;
    }
    std::vector<std::string> argv;
    for (size_t i = start + 1; i < words.size(); ++i) {
      std::string w = words[i];
      if (w == "|" || w == "&&" || w == ";" || w == "||") break;  // the shell's, not ours
      const bool closes = absl::EndsWith(w, ")");
      if (closes) w.pop_back();
      w = std::string(absl::StripPrefix(absl::StripSuffix(w, "]"), "["));
      w.erase(std::remove(w.begin(), w.end(), '"'), w.end());
      if (!w.empty() && w != "...") argv.push_back(w);
      if (closes) break;  // the end of $(mgreg ...)
    }
    out.push_back(std::move(argv));
  }
  return out;
}

TEST(CommandLineTest, EveryDocumentedCommandLineParses) {
  std::vector<std::string> files = {MGREG_SOURCE_DIR "/README.md"};
  if (fs::is_directory(MGREG_SOURCE_DIR "/docs")) {
    for (const auto& e : fs::directory_iterator(MGREG_SOURCE_DIR "/docs")) {
      if (e.path().extension() == ".md") files.push_back(e.path().string());
    }
  }
  int parsed = 0;
  for (const std::string& file : files) {
    for (const std::vector<std::string>& argv : DocumentedCommandLines(file)) {
      absl::StatusOr<CommandLine> line = ParseCommandLine(argv);
      EXPECT_TRUE(line.ok()) << file << ": mgreg " << absl::StrJoin(argv, " ") << "\n"
                             << line.status().message();
      ++parsed;
    }
  }
  // The documentation shows most commands; far fewer lines means the extraction broke.
  EXPECT_GE(parsed, 25);
  // The image's health check (Dockerfile HEALTHCHECK) and scripts/docker-test.sh.
  EXPECT_EQ(ParseError({"--server", "127.0.0.1:8470", "admin", "health"}), "");
  EXPECT_EQ(ParseError({"latest", "m", "--json"}), "");
}

}  // namespace
}  // namespace mgreg::cli
