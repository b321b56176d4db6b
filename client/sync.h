// Keeps a local directory holding the newest (or an aliased) step of a model, the way
// an inference server wants it: it follows the watch stream, restores each new step
// beside the current one (with the filtered .meta), switches the directory's
// `checkpoint` state file atomically, then removes steps beyond the last K. TensorFlow
// reading the directory at any moment sees the old complete checkpoint or the new one.
// Reconnects with backoff when the server restarts, resuming from the last revision.
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
  absl::Duration initial_backoff = absl::Milliseconds(100);
  absl::Duration max_backoff = absl::Seconds(10);
};

class CheckpointSync {
 public:
  // `client` must outlive this object.
  CheckpointSync(Client* client, std::string model, std::string dir, SyncOptions options);

  // Brings the directory to the target step once (no-op if it is there already).
  // FAILED_PRECONDITION if the directory cannot be written (before any download);
  // NOT_FOUND if the model, or the alias, does not exist.
  absl::StatusOr<v1::Checkpoint> SyncOnce();

  // Follows the model until Stop(): syncs once the watch is live, then on every event
  // that changes the target. Returns OK after Stop(); INVALID_ARGUMENT or
  // FAILED_PRECONDITION for errors that retrying cannot fix.
  absl::Status Run();
  void Stop();

  // The step currently in the directory, -1 before the first switch.
  int64_t current_step() const;

 private:
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
};

}  // namespace mgreg

#endif  // MGREG_CLIENT_SYNC_H_
