// mgreg restore (one step into a directory) and mgreg sync (keep a directory following
// the latest step or an alias).
#include <pthread.h>
#include <signal.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/cli/command.h"
#include "client/cli/output.h"
#include "client/sync.h"
#include "common/status_macros.h"

namespace mgreg::cli {
namespace {

absl::Status Restore(const std::vector<std::string>& args, Context& ctx) {
  RestoreOptions options;
  ASSIGN_OR_RETURN(StepRef step, StepRefOption(ctx.options()));
  options.step = step.step;
  options.alias = step.alias;
  ASSIGN_OR_RETURN(options.keep_last, IntOption(ctx.options(), "keep", 0));
  options.graph_options = GraphOptionsFrom(ctx.options());
  options.progress = TerminalProgress(absl::StrCat("restoring ", args[0]), ctx.err());
  std::ostream& err = ctx.err();
  options.on_warning = [&err](const std::string& message) {
    err << "mgreg restore: warning: " << message << "\n";
  };
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Checkpoint c, client->Restore(args[0], args[1], options));
  if (ctx.json()) return ctx.PrintJson(c);
  if (c.kind() == v1::SAVED_MODEL) {
    ctx.out() << "restored " << c.model() << " version " << c.step()
              << " (SavedModel) into "
              << (std::filesystem::path(args[1]) / std::to_string(c.step())).string()
              << "\n";
    return absl::OkStatus();
  }
  ctx.out() << "restored " << c.model() << " step " << c.step() << " into " << args[1]
            << " as " << c.basename() << "-" << c.step() << "\n";
  return absl::OkStatus();
}

absl::Status Sync(const std::vector<std::string>& args, Context& ctx) {
  const ParsedOptions& o = ctx.options();
  SyncOptions options;
  if (auto alias = o.Value("alias")) options.alias = *alias;
  if (o.Has("latest") && !options.alias.empty()) {
    return absl::InvalidArgumentError("give --alias or --latest, not both");
  }
  if (o.Has("step")) {
    return absl::InvalidArgumentError(
        "mgreg sync follows the latest step or an alias; use mgreg restore for one step");
  }
  ASSIGN_OR_RETURN(options.keep, IntOption(o, "keep", 2));
  options.graph_options = GraphOptionsFrom(o);
  // A step printed as JSON that cannot be is reported after the sync ends.
  absl::Status print_status;
  options.on_switch = [&ctx, &print_status](const v1::Checkpoint& c) {
    if (ctx.json()) {
      if (absl::Status s = ctx.PrintJsonLine(c); !s.ok() && print_status.ok()) {
        print_status = s;
      }
    } else {
      ctx.out() << "switched to " << c.model()
                << (c.kind() == v1::SAVED_MODEL ? " version " : " step ") << c.step()
                << "\n"
                << std::flush;
    }
  };
  std::ostream& err = ctx.err();
  options.on_retry = [&err](const absl::Status& s) {
    err << "mgreg sync: " << absl::StatusCodeToString(s.code()) << ": " << s.message()
        << " (retrying)\n";
  };
  options.on_warning = [&err](const std::string& message) {
    err << "mgreg sync: warning: " << message << "\n";
  };
  // Set by on_skip: what the directory keeps serving is said there.
  const CheckpointSync* syncer = nullptr;
  bool skipped = false;
  const std::string dir = args[1];
  options.on_skip = [&err, &syncer, &skipped, dir](const v1::Checkpoint& c,
                                                   const absl::Status& s) {
    skipped = true;
    const int64_t current = syncer == nullptr ? -1 : syncer->current_step();
    err << "mgreg sync: skipping " << c.model() << " step " << c.step() << ": "
        << absl::StatusCodeToString(s.code()) << ": " << s.message() << "; " << dir
        << (current >= 0 ? absl::StrCat(" keeps step ", current)
                         : std::string(" holds no step yet"))
        << ", the next step that lands is tried\n"
        << std::flush;
  };
  if (o.Has("once")) {
    ASSIGN_OR_RETURN(Client * client, ctx.Connect());
    CheckpointSync sync(client, args[0], dir, options);
    syncer = &sync;
    absl::StatusOr<v1::Checkpoint> synced = sync.SyncOnce();
    RETURN_IF_ERROR(print_status);
    // A step that cannot be restored is reported (above); the directory still serving
    // a complete step is success.
    if (!synced.ok() && skipped && sync.current_step() >= 0) return absl::OkStatus();
    return synced.status();
  }
  // Stop cleanly on SIGINT/SIGTERM: blocked before any thread starts (gRPC's too), then
  // waited for by one thread.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  CheckpointSync sync(client, args[0], dir, options);
  syncer = &sync;
  std::thread stopper([&sync, stop_signals]() {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    sync.Stop();
  });
  absl::Status status = sync.Run();
  if (!status.ok()) {
    // The stopper still waits for a signal: send it one so it can be joined.
    pthread_kill(stopper.native_handle(), SIGTERM);
  }
  stopper.join();
  RETURN_IF_ERROR(print_status);
  return status;
}

}  // namespace

std::vector<Command> RestoreCommands() {
  const std::vector<Option> common = Join({{JsonOption()}, ConnectionOptions()});
  const Option keep = {"keep", "K",
                       "keep at most K checkpoints listed in DIR (SavedModels: K version "
                       "directories; the restored one included); 0: all"};
  return {
      {"restore", "MODEL DIR", "[--step N | --alias A] [GRAPH OPTIONS] [--keep K]",
       "write the checkpoint into DIR so TensorFlow loads it as is;\n"
       "a SavedModel step becomes the version directory DIR/<step>/ (TF Serving's base "
       "path)",
       2, 2, Join({StepOrAliasOptions(), {keep}, GraphOptions(), common}), Restore},
      {"sync", "MODEL DIR", "[--alias A | --latest] [GRAPH OPTIONS] [--keep K] [--once]",
       "keep DIR holding the newest (or aliased) step, switched\n"
       "atomically as steps land (SavedModels: the newest K version\n"
       "directories, for TF Serving); runs until interrupted",
       2, 2,
       Join({{{"alias", "A", "follow the step alias A names (default: the latest)"},
              {"latest", "", "follow the latest step (the default)"},
              {"keep", "K", "steps kept in DIR, the current one included (default 2)"},
              {"once", "", "bring DIR to the target step once, then exit"},
              // Declared so that its error can say what to use instead.
              {"step", "N", ""}},
             GraphOptions(),
             common}),
       Sync},
  };
}

}  // namespace mgreg::cli
