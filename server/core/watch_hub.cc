#include "server/core/watch_hub.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "server/core/api_errors.h"

namespace mgreg {
namespace {

constexpr int kBacklogPage = 256;

}  // namespace

bool WatchFilter::Matches(absl::string_view name) const {
  if (visible && !visible(name)) return false;
  if (all) return true;
  if (!model.empty()) return name == model;
  return absl::StartsWith(name, prefix);
}

v1::WatchEvent ToApiEvent(const storage::Event& event) {
  v1::WatchEvent out;
  out.set_revision(event.revision());
  switch (event.type()) {
    case storage::Event::COMMITTED:
      out.set_type(v1::WatchEvent::COMMITTED);
      break;
    case storage::Event::DELETED:
      out.set_type(v1::WatchEvent::DELETED);
      break;
    case storage::Event::ALIAS_SET:
      out.set_type(v1::WatchEvent::ALIAS_SET);
      break;
    case storage::Event::ALIAS_REMOVED:
      out.set_type(v1::WatchEvent::ALIAS_REMOVED);
      break;
    default:
      out.set_type(v1::WatchEvent::TYPE_UNSPECIFIED);
      break;
  }
  out.set_model(event.model());
  out.set_step(event.step());
  out.set_alias(event.alias());
  out.set_replaced(event.replaced());
  out.mutable_time()->set_seconds(event.time_micros() / 1000000);
  out.mutable_time()->set_nanos(static_cast<int32_t>(event.time_micros() % 1000000) *
                                1000);
  return out;
}

absl::StatusOr<std::optional<v1::WatchEvent>> WatchSubscription::Next() {
  // 1. The backlog, read from the store a page at a time. The store is read without
  // holding mu_: the store calls Offer (which takes mu_) while it holds its own lock.
  for (;;) {
    int64_t cursor = 0;
    {
      absl::MutexLock lock(&mu_);
      if (!error_.ok()) return error_;
      if (!backlog_.empty() || cursor_ >= live_from_) break;
      cursor = cursor_;
    }
    absl::StatusOr<EventPage> page = hub_->store_->ReadEvents(cursor, kBacklogPage);
    absl::MutexLock lock(&mu_);
    if (!page.ok()) {
      error_ = page.status();
      return error_;
    }
    if (page->events.empty()) {
      cursor_ = live_from_;
      break;
    }
    for (const storage::Event& e : page->events) {
      if (e.revision() > live_from_) break;
      cursor_ = e.revision();
      if (filter_.Matches(e.model())) backlog_.push_back(ToApiEvent(e));
    }
    if (page->events.back().revision() >= live_from_) cursor_ = live_from_;
  }
  absl::MutexLock lock(&mu_);
  if (!error_.ok()) return error_;
  if (!backlog_.empty()) {
    v1::WatchEvent e = std::move(backlog_.front());
    backlog_.pop_front();
    return std::optional<v1::WatchEvent>(std::move(e));
  }
  // 2. Once: every event up to the subscription's revision is delivered.
  if (!progress_sent_) {
    progress_sent_ = true;
    v1::WatchEvent progress;
    progress.set_type(v1::WatchEvent::PROGRESS);
    progress.set_revision(live_from_);
    return std::optional<v1::WatchEvent>(std::move(progress));
  }
  // 3. Live events.
  if (!live_.empty()) {
    v1::WatchEvent e = std::move(live_.front());
    live_.pop_front();
    return std::optional<v1::WatchEvent>(std::move(e));
  }
  waiting_ = true;
  return std::optional<v1::WatchEvent>();
}

std::function<void()> WatchSubscription::Offer(const storage::Event& event) {
  absl::MutexLock lock(&mu_);
  if (!error_.ok() || event.revision() <= live_from_ || !filter_.Matches(event.model())) {
    return nullptr;
  }
  if (live_.size() >= hub_->max_pending_) {
    const int64_t last = live_.empty() ? live_from_ : live_.front().revision() - 1;
    error_ = absl::ResourceExhaustedError(
        absl::StrCat("the watcher fell more than ", hub_->max_pending_,
                     " events behind; reconnect with since_revision=", last));
  } else {
    live_.push_back(ToApiEvent(event));
  }
  if (!waiting_) return nullptr;
  waiting_ = false;
  return notify_;
}

void WatchSubscription::Fail(absl::Status status) {
  std::function<void()> notify;
  {
    absl::MutexLock lock(&mu_);
    if (error_.ok()) error_ = std::move(status);
    if (waiting_) {
      waiting_ = false;
      notify = notify_;
    }
  }
  if (notify) notify();
}

WatchHub::WatchHub(Store* store, size_t max_pending)
    : store_(store), max_pending_(max_pending) {
  absl::StatusOr<StoreStats> stats = store_->GetStats();
  {
    absl::MutexLock lock(&mu_);
    revision_ = stats.ok() ? stats->revision : 0;
  }
  store_->SetEventListener([this](const storage::Event& e) { Publish(e); });
}

WatchHub::~WatchHub() {
  store_->SetEventListener(nullptr);
  Close();
}

absl::StatusOr<std::shared_ptr<WatchSubscription>> WatchHub::Subscribe(
    WatchFilter filter, int64_t since_revision, std::function<void()> notify) {
  const int set = (filter.model.empty() ? 0 : 1) + (filter.prefix.empty() ? 0 : 1) +
                  (filter.all ? 1 : 0);
  if (set != 1) {
    return absl::InvalidArgumentError(
        "watch exactly one of: a model, a model-name prefix, or all models");
  }
  if (since_revision < -1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "since_revision ", since_revision, " is invalid; use a revision >= 0, or -1"));
  }
  if (!filter.model.empty()) {
    absl::StatusOr<storage::ModelRecord> model = store_->GetModel(filter.model);
    if (!model.ok()) {
      if (model.status().code() == absl::StatusCode::kNotFound) {
        return absl::NotFoundError(absl::StrCat(
            "model '", filter.model,
            "' does not exist; watch a prefix to wait for models that do not exist yet"));
      }
      return model.status();
    }
  }
  std::shared_ptr<WatchSubscription> subscription;
  int64_t cursor = 0;
  int64_t live_from = 0;
  {
    // Registered before anything is read, so no event falls between backlog and live.
    absl::MutexLock lock(&mu_);
    if (closed_) return absl::UnavailableError("the server is shutting down; reconnect");
    live_from = revision_;
    if (since_revision > revision_) {
      return api_errors::WatchRevisionAhead(since_revision, revision_);
    }
    cursor = since_revision < 0 ? revision_ : since_revision;
    subscription = std::shared_ptr<WatchSubscription>(new WatchSubscription(
        this, std::move(filter), cursor, live_from, std::move(notify)));
    subscriptions_.insert(subscription);
  }
  if (cursor < live_from) {
    // Fail fast if the backlog is no longer retained (outside mu_: lock order is
    // store, then hub).
    absl::StatusOr<EventPage> page = store_->ReadEvents(cursor, 1);
    if (!page.ok()) {
      Unsubscribe(subscription);
      return page.status();
    }
  }
  return subscription;
}

void WatchHub::Unsubscribe(const std::shared_ptr<WatchSubscription>& subscription) {
  absl::MutexLock lock(&mu_);
  subscriptions_.erase(subscription);
}

void WatchHub::Close() {
  std::vector<std::shared_ptr<WatchSubscription>> all;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    all.assign(subscriptions_.begin(), subscriptions_.end());
    subscriptions_.clear();
  }
  for (const auto& s : all) {
    s->Fail(absl::UnavailableError("the server is shutting down; reconnect"));
  }
}

size_t WatchHub::watcher_count() {
  absl::MutexLock lock(&mu_);
  return subscriptions_.size();
}

void WatchHub::Publish(const storage::Event& event) {
  std::vector<std::function<void()>> wake;
  {
    absl::MutexLock lock(&mu_);
    revision_ = std::max(revision_, event.revision());
    for (const auto& s : subscriptions_) {
      if (std::function<void()> n = s->Offer(event)) wake.push_back(std::move(n));
    }
  }
  for (const auto& n : wake) n();
}

}  // namespace mgreg
