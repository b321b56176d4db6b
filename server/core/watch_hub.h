// Fans the store's events out to watchers. A watcher first receives the backlog of
// events after its revision (read from the store, so it survives server restarts within
// the store's event window), then one PROGRESS event, then live events as they are
// committed. Watchers hold no thread: the transport pulls events with Next() and is
// notified when more arrive.
//
// Thread-safe.
#ifndef MGREG_SERVER_CORE_WATCH_HUB_H_
#define MGREG_SERVER_CORE_WATCH_HUB_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mgreg/storage/records.pb.h"
#include "mgreg/v1/registry.pb.h"
#include "storage/store.h"

namespace mgreg {

// Which models a watcher follows.
struct WatchFilter {
  std::string model;   // exact model name, or
  std::string prefix;  // model-name prefix, or
  bool all = false;    // every model
  // Further limits what the watcher may see (a token's models); null = no limit.
  std::function<bool(absl::string_view model)> visible;
  bool Matches(absl::string_view name) const;
};

class WatchHub;

// One watcher's position in the event stream.
class WatchSubscription {
 public:
  // The next event to deliver; nullopt if none is available now (then `notify` is
  // called once when one becomes available). OUT_OF_RANGE if the backlog was trimmed
  // from the store, RESOURCE_EXHAUSTED if the watcher fell too far behind, UNAVAILABLE
  // once the hub is closing.
  absl::StatusOr<std::optional<v1::WatchEvent>> Next();

 private:
  friend class WatchHub;
  WatchSubscription(WatchHub* hub, WatchFilter filter, int64_t cursor, int64_t live_from,
                    std::function<void()> notify)
      : hub_(hub),
        filter_(std::move(filter)),
        cursor_(cursor),
        live_from_(live_from),
        notify_(std::move(notify)) {}
  // Queues a live event; returns the notify function to call (outside locks) if the
  // watcher was waiting.
  std::function<void()> Offer(const storage::Event& event);
  void Fail(absl::Status status);

  WatchHub* const hub_;
  const WatchFilter filter_;
  absl::Mutex mu_;
  // Last revision delivered or skipped from the backlog.
  int64_t cursor_ ABSL_GUARDED_BY(mu_);
  // Revision at subscription: events up to it come from the store, later ones live.
  const int64_t live_from_;
  std::deque<v1::WatchEvent> backlog_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::WatchEvent> live_ ABSL_GUARDED_BY(mu_);
  bool progress_sent_ ABSL_GUARDED_BY(mu_) = false;
  bool waiting_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
  std::function<void()> notify_;
};

class WatchHub {
 public:
  // `store` must outlive the hub. The hub installs itself as the store's event
  // listener. A watcher whose undelivered live events exceed `max_pending` is dropped
  // with RESOURCE_EXHAUSTED (it reconnects from its last revision).
  WatchHub(Store* store, size_t max_pending = 10000);
  ~WatchHub();

  // Starts a subscription. `since_revision`: deliver events after it (0 = every event
  // since the registry began, -1 = only new ones); OUT_OF_RANGE if some of those are no
  // longer retained. NOT_FOUND if `filter.model` names a model the store does not
  // know; INVALID_ARGUMENT unless exactly one of model/prefix/all is set.
  // `notify` is called (from any thread, never under the caller's locks) when Next()
  // has something after having returned nullopt, including the UNAVAILABLE of Close()
  // (which ~WatchHub calls), and a wake-up already under way may still arrive just after
  // Unsubscribe: what it captures must outlive the hub, or be checked by the function
  // itself (the gRPC transport's holds a weak_ptr).
  absl::StatusOr<std::shared_ptr<WatchSubscription>> Subscribe(
      WatchFilter filter, int64_t since_revision, std::function<void()> notify);
  void Unsubscribe(const std::shared_ptr<WatchSubscription>& subscription);

  // Ends every subscription with UNAVAILABLE (server shutting down).
  void Close();

  size_t watcher_count();

 private:
  friend class WatchSubscription;
  void Publish(const storage::Event& event);

  Store* const store_;
  const size_t max_pending_;
  absl::Mutex mu_;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<std::shared_ptr<WatchSubscription>> subscriptions_
      ABSL_GUARDED_BY(mu_);
};

// The API form of a stored event.
v1::WatchEvent ToApiEvent(const storage::Event& event);

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_WATCH_HUB_H_
