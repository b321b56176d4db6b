// The generic SessionStore (rules of storage/session_rules.h over a SessionBackend), and
// the in-process session records of the stores one process owns.
#include <map>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "storage/session_backend.h"
#include "storage/session_rules.h"

namespace mgreg {
namespace {

using storage::UploadFileRecord;
using storage::UploadSessionRecord;

// A write is decided again after another process's write moved the session this many
// times before the caller gets ABORTED.
constexpr int kMaxTries = 32;

class GenericSessionStore : public SessionStore {
 public:
  GenericSessionStore(std::shared_ptr<SessionBackend> records, SessionStagingFn staging)
      : records_(std::move(records)), staging_(std::move(staging)) {}

  absl::Status Create(const UploadSessionState& state, int64_t now_micros) override {
    RETURN_IF_ERROR(sessions::ValidateNewSession(state));
    UploadSessionState s = state;
    s.session.set_version(1);
    s.session.set_closed(false);
    s.session.set_created_micros(now_micros);
    s.session.set_last_active_micros(now_micros);
    for (auto& [name, file] : s.files) file.set_version(1);
    ASSIGN_OR_RETURN(bool created, records_->CreateSession(s));
    if (!created) return sessions::SessionExists(state.session.id());
    return absl::OkStatus();
  }

  absl::StatusOr<UploadSessionState> Load(absl::string_view id) override {
    ASSIGN_OR_RETURN(SessionBackend::Snapshot snap, Read(id));
    return std::move(snap.state);
  }

  absl::StatusOr<UploadFileRecord> WriteFile(absl::string_view id,
                                             const UploadFileRecord& next,
                                             absl::string_view writer,
                                             int64_t now_micros) override {
    for (int i = 0; i < kMaxTries; ++i) {
      ASSIGN_OR_RETURN(SessionBackend::Snapshot snap, Read(id));
      RETURN_IF_ERROR(sessions::CheckFileWrite(snap.state, next, writer, now_micros));
      UploadFileRecord out = next;
      out.set_version(next.version() + 1);
      ASSIGN_OR_RETURN(bool written, records_->WriteSession(id, snap.version, nullptr,
                                                            &out, now_micros));
      if (written) return out;
      Backoff(i);
    }
    return sessions::SessionBusy(id);
  }

  absl::StatusOr<UploadSessionRecord> WriteSession(const UploadSessionRecord& next,
                                                   int64_t now_micros) override {
    for (int i = 0; i < kMaxTries; ++i) {
      ASSIGN_OR_RETURN(SessionBackend::Snapshot snap, Read(next.id()));
      RETURN_IF_ERROR(sessions::CheckSessionWrite(snap.state, next));
      UploadSessionRecord out = sessions::SessionAfter(snap.state.session, next);
      ASSIGN_OR_RETURN(bool written, records_->WriteSession(next.id(), snap.version, &out,
                                                            nullptr, now_micros));
      if (written) {
        out.set_last_active_micros(now_micros);
        return out;
      }
      Backoff(i);
    }
    return sessions::SessionBusy(next.id());
  }

  absl::Status Release(absl::string_view id) override {
    return records_->DropSession(id);
  }

  absl::StatusOr<std::vector<UploadSessionRecord>> List() override {
    return records_->ListSessions();
  }

  absl::StatusOr<std::shared_ptr<StagingArea>> Staging(absl::string_view id) override {
    RETURN_IF_ERROR(Read(id).status());
    return staging_(id);
  }

 private:
  absl::StatusOr<SessionBackend::Snapshot> Read(absl::string_view id) {
    ASSIGN_OR_RETURN(std::optional<SessionBackend::Snapshot> snap,
                     records_->ReadSession(id));
    if (!snap.has_value()) return sessions::SessionNotFound(id);
    return std::move(*snap);
  }

  // After the `attempt`th lost race: a jittered pause growing with the attempts, so
  // that writers of one session on several servers do not keep colliding.
  void Backoff(int attempt) {
    absl::BitGen gen;
    absl::SleepFor(absl::Microseconds(absl::Uniform(gen, 0, 200 * (attempt + 1))));
  }

  const std::shared_ptr<SessionBackend> records_;
  const SessionStagingFn staging_;
};

// Sessions in this process's memory; each with one staging area of the store.
class LocalSessionBackend : public SessionBackend {
 public:
  explicit LocalSessionBackend(Store* store) : store_(store) {}

  absl::StatusOr<bool> CreateSession(const UploadSessionState& state) override {
    absl::MutexLock lock(&mu_);
    auto [it, inserted] = sessions_.try_emplace(state.session.id());
    if (!inserted) return false;
    it->second.snap.state = state;
    it->second.snap.version = 1;
    it->second.staging = store_->NewStagingArea();
    return true;
  }

  absl::StatusOr<std::optional<Snapshot>> ReadSession(absl::string_view id) override {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return std::optional<Snapshot>();
    return std::optional<Snapshot>(it->second.snap);
  }

  absl::StatusOr<bool> WriteSession(absl::string_view id, uint64_t version,
                                    const UploadSessionRecord* session,
                                    const UploadFileRecord* file,
                                    int64_t now_micros) override {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.snap.version != version) return false;
    UploadSessionState& s = it->second.snap.state;
    if (session != nullptr) s.session = *session;
    if (file != nullptr) s.files[file->file().name()] = *file;
    s.session.set_last_active_micros(now_micros);
    ++it->second.snap.version;
    return true;
  }

  absl::Status DropSession(absl::string_view id) override {
    std::shared_ptr<StagingArea> staging;  // released outside the lock
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return absl::OkStatus();
    staging = std::move(it->second.staging);
    sessions_.erase(it);
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<UploadSessionRecord>> ListSessions() override {
    std::map<std::string, UploadSessionRecord> sorted;
    absl::MutexLock lock(&mu_);
    for (const auto& [id, entry] : sessions_) sorted[id] = entry.snap.state.session;
    std::vector<UploadSessionRecord> out;
    for (auto& [id, record] : sorted) out.push_back(std::move(record));
    return out;
  }

  absl::StatusOr<std::shared_ptr<StagingArea>> Staging(absl::string_view id) {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return sessions::SessionNotFound(id);
    return it->second.staging;
  }

 private:
  struct Entry {
    Snapshot snap;
    std::shared_ptr<StagingArea> staging;
  };
  Store* const store_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Entry> sessions_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<SessionStore> NewSessionStore(std::shared_ptr<SessionBackend> records,
                                              SessionStagingFn staging) {
  return std::make_unique<GenericSessionStore>(std::move(records), std::move(staging));
}

std::unique_ptr<SessionStore> NewLocalSessionStore(Store* store) {
  auto records = std::make_shared<LocalSessionBackend>(store);
  return NewSessionStore(
      records, [records](absl::string_view id) { return records->Staging(id); });
}

}  // namespace mgreg
