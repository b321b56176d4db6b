// The RADOS backend's event log and its delivery to this process's listener: the
// catalog's e.<rev> keys, a watch on the catalog, and the tailer thread
// (storage/rados/rados_backend.h).
#include <algorithm>
#include <map>
#include <string>
#include <thread>
#include <utility>

#include "absl/time/time.h"
#include "storage/rados/rados_backend.h"

namespace mgreg::rados {

using storage::Event;
using storage::rados::RadosHead;
using storage::rados::RadosTxn;

void RadosBackend::CatalogWatch::handle_notify(uint64_t notify_id, uint64_t cookie,
                                               uint64_t, bufferlist&) {
  // Acked by the tailer once it has read the write (design §2.4): the writer's call
  // returns after every live process serves it (or after kNotifyTimeoutMs).
  absl::MutexLock lock(&backend_->tail_mu_);
  backend_->unacked_.emplace_back(notify_id, cookie);
  backend_->woken_ = true;
}

void RadosBackend::CatalogWatch::handle_error(uint64_t, int) {
  backend_->watch_epoch_.fetch_add(1);
  absl::MutexLock lock(&backend_->tail_mu_);
  backend_->rewatch_ = true;
  backend_->woken_ = true;
}

void RadosBackend::Watch() {
  // The OSD drops a watcher that has not pinged for this long: that is how other
  // processes learn this one died (rados_gc.cc).
  const uint32_t timeout = static_cast<uint32_t>(
      std::max<int64_t>(1, absl::ToInt64Seconds(options_.watch_timeout)));
  watching_ = io_.watch3(kCatalog, &watch_handle_, &watch_ctx_, timeout) == 0;
  watch_epoch_.fetch_add(1);
}

void RadosBackend::StartTailer() {
  Watch();
  tailer_ = std::thread([this] { Tail(); });
  tailer_started_ = true;
}

void RadosBackend::StopTailer() {
  if (tailer_started_) {
    {
      absl::MutexLock lock(&tail_mu_);
      stop_ = true;
    }
    tailer_.join();
  }
  if (watching_) io_.unwatch2(watch_handle_);
  if (tailer_started_) rados_.watch_flush();  // librados crashes on an unconnected handle
}

void RadosBackend::Wake() {
  absl::MutexLock lock(&tail_mu_);
  woken_ = true;
}

void RadosBackend::NotifyWatchers() {
  // Other processes' tailers read the write, then ack; a process that died holds this
  // up to kNotifyTimeoutMs until its watch expires.
  bufferlist none;
  io_.notify2(kCatalog, none, kNotifyTimeoutMs, nullptr);
}

void RadosBackend::Tail() {
  bool registered = true;  // by Open
  for (;;) {
    bool rewatch = false;
    std::vector<std::pair<uint64_t, uint64_t>> unacked;
    {
      absl::MutexLock lock(&tail_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tail_mu_) {
        return woken_ || stop_;
      };
      tail_mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stop_) return;
      woken_ = false;
      std::swap(rewatch, rewatch_);
      std::swap(unacked, unacked_);
    }
    CatchUp(rewatch, &registered);
    // Whether or not the catalog could be read: a writer waits for no process longer
    // than it has to (a failed read is retried at the next look).
    for (const auto& [notify_id, cookie] : unacked) {
      bufferlist empty;
      io_.notify_ack(kCatalog, notify_id, cookie, empty);
    }
  }
}

void RadosBackend::CatchUp(bool rewatch, bool* registered) {
  // The watch broke (the OSD restarted, or this process stalled), or never started.
  if (rewatch || !watching_) {
    if (watching_) io_.unwatch2(watch_handle_);
    Watch();
    // A GC that took this process for dead while its watch was down forgot it (its
    // areas hold and list their chunks again when they commit:
    // RadosArea::PrepareCommit).
    *registered = false;
  }
  if (watching_ && !*registered) *registered = RegisterReplica().ok();  // else next look
  absl::StatusOr<std::optional<RadosHead>> head = ReadCatalogRecord<RadosHead>("head");
  if (!head.ok() || !head->has_value()) return;  // the next look retries
  ObserveVersion((*head)->version());
  absl::MutexLock lock(&deliver_mu_);
  if ((*head)->revision() > delivered_) {
    Deliver((*head)->revision(), nullptr).IgnoreError();
  }
}

absl::Status RadosBackend::Deliver(int64_t revision, const RadosTxn* own) {
  if (!listener_) {
    delivered_ = std::max(delivered_, revision);
    return absl::OkStatus();
  }
  if (own != nullptr && delivered_ == own->head_before().revision()) {
    for (const Event& e : own->events()) listener_(e);
    delivered_ = revision;
    return absl::OkStatus();
  }
  // Other processes wrote since: their events first, from the log.
  while (delivered_ < revision) {
    ASSIGN_OR_RETURN(EventPage page, ReadEvents(delivered_, kPage));
    if (page.events.empty()) break;
    for (const Event& e : page.events) {
      if (e.revision() > revision) break;
      listener_(e);
      delivered_ = e.revision();
    }
  }
  delivered_ = std::max(delivered_, revision);
  return absl::OkStatus();
}

absl::StatusOr<EventPage> RadosBackend::ReadEvents(int64_t after_revision, int limit) {
  EventPage page;
  std::string after = after_revision >= 0 ? EventKey(after_revision) : "e.";
  for (bool first = true, more = true;
       more && (limit <= 0 || static_cast<int>(page.events.size()) < limit);
       first = false) {
    std::map<std::string, bufferlist> head, vals, oldest;
    bool oldest_more = false;
    librados::ObjectReadOperation op;
    int r1 = 0, r2 = 0, r3 = 0;
    const int want = limit <= 0
                         ? kPage
                         : std::min(kPage, limit - static_cast<int>(page.events.size()));
    op.omap_get_vals_by_keys({"head"}, &head, &r1);
    op.omap_get_vals2(after, "e.", want, &vals, &more, &r2);
    if (first) op.omap_get_vals2("e.", "e.", 1, &oldest, &oldest_more, &r3);
    int r = io_.operate(kCatalog, &op, nullptr);
    if (r < 0 || r1 < 0 || r2 < 0 || r3 < 0) {
      return Error(r < 0 ? r : std::min({r1, r2, r3}), "reading events", kCatalog);
    }
    if (first) {
      auto h = head.find("head");
      if (h == head.end())
        return absl::InternalError(absl::StrCat("no head in ", where_));
      ASSIGN_OR_RETURN(RadosHead rh, Parse<RadosHead>(h->second, kCatalog));
      page.current_revision = rh.revision();
      if (!oldest.empty()) {
        ASSIGN_OR_RETURN(Event e, Parse<Event>(oldest.begin()->second, kCatalog));
        page.oldest_revision = e.revision();
      }
    }
    for (const auto& [key, value] : vals) {
      after = key;
      ASSIGN_OR_RETURN(Event e, Parse<Event>(value, kCatalog));
      if (e.revision() > page.current_revision) {  // published after the first page
        more = false;
        break;
      }
      page.events.push_back(std::move(e));
    }
  }
  return page;
}

}  // namespace mgreg::rados
