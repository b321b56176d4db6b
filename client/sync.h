// Keeps a local directory holding the newest (or an aliased) step of a model, the way
// an inference server wants it: it follows the watch stream, restores each new step
// beside the current one (with the filtered .meta), switches the directory's
// `checkpoint` state file atomically, then removes steps beyond the last K. TensorFlow
// reading the directory at any moment sees the old complete checkpoint or the new one.
// SavedModel steps go to TF Serving's base path instead (Client::RestoreSavedModel):
// each new version directory renamed into place whole, then the versions beyond the
// newest K removed; following an alias also removes versions newer than its step, since
// TF Serving serves the highest.
// Reconnects with backoff when the server restarts, resuming from the last revision.
//
// A step that cannot be restored as asked (its graph cannot be exported with the graph
// options, the server names files outside the directory, a name too long for the local
// file system, ...) is reported through on_skip and skipped: the directory keeps its
// current step, and the sync moves on with the next step that lands. Failures a retry
// can cure (the server unreachable, the disk full, a transfer cut short) are retried
// with backoff.
//
// Thread safety: Run() on one thread; Stop() from any thread.
#ifndef MGREG_CLIENT_SYNC_H_
#define MGREG_CLIENT_SYNC_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client.h"

namespace mgreg {

struct SyncOptions {
  // Follow this alias; empty follows the latest step.
  std::string alias;
  // Applied to each restored .meta.
  v1::GraphOptions graph_options;
  // Steps kept in the directory, the current one included (>= 1).
  int keep = 2;
  // Called after each switch, with the step now in the directory.
  std::function<void(const v1::Checkpoint&)> on_switch;
  // Called when a restore or the watch fails and will be retried.
  std::function<void(const absl::Status&)> on_retry;
  // Called when the target step cannot be restored as asked (see the class comment);
  // the directory keeps its current step. Not called again for the same step until the
  // target changes.
  std::function<void(const v1::Checkpoint&, const absl::Status&)> on_skip;
  // Called with a message for the user when the directory's `checkpoint` file lists
  // entries outside it (never deleted; see RestoreOptions::keep_last).
  std::function<void(const std::string&)> on_warning;
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
};

class CheckpointSync {
 public:
  // `client` must outlive this object.
  CheckpointSync(Client* client, std::string model, std::string dir, SyncOptions options);

  // Brings the directory to the target step once (no-op if it is there already).
  // FAILED_PRECONDITION if the directory cannot be written (before any download);
  // NOT_FOUND if the model, or the alias, does not exist. If the target step cannot be
  // restored as asked, calls on_skip and returns its error (the directory keeps its
  // step); a later call for the same target returns that error again without retrying.
  absl::StatusOr<v1::Checkpoint> SyncOnce();

  // Follows the model until Stop(): syncs once the watch is live, then on every event
  // that changes the target. Returns OK after Stop(); INVALID_ARGUMENT or
  // FAILED_PRECONDITION for errors that retrying cannot fix (options, the directory,
  // the model or alias name).
  absl::Status Run();
  void Stop();

  // The step the directory serves: the last switch, or before any the newest of the
  // directory's own checkpoints its `checkpoint` file lists; -1 if none.
  int64_t current_step() const;

 private:
  // What a failed sync calls for.
  enum class Failure {
    kFatal,     // options, directory or names that retrying cannot fix: Run returns
    kBadStep,   // this step cannot be restored as asked: skipped, on_skip called
    kNoTarget,  // no step yet, or the alias is gone: wait for the next event
    kRetry,     // the server or the disk may recover: retry after a backoff
  };
  absl::StatusOr<v1::Checkpoint> Sync(Failure* failure);
  // Sleeps for the backoff (returns early on Stop) and doubles it.
  void Backoff(absl::Duration* backoff);
  bool stopped() const;

  Client* const client_;
  const std::string model_;
  const std::string dir_;
  const SyncOptions options_;
  mutable absl::Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<WatchStream> stream_ ABSL_GUARDED_BY(mu_);
  int64_t current_step_ ABSL_GUARDED_BY(mu_) = -1;
  std::string current_sha_ ABSL_GUARDED_BY(mu_);
  // The last step skipped (step, SHA-256 of its files' digests) and why.
  int64_t skipped_step_ ABSL_GUARDED_BY(mu_) = -1;
  std::string skipped_sha_ ABSL_GUARDED_BY(mu_);
  absl::Status skipped_status_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg

#endif  // MGREG_CLIENT_SYNC_H_
