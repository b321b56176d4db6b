#include "server/core/uploads.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "server/core/api_errors.h"

namespace mgreg {

namespace {

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

storage::UploadFileRecord ToRecord(const UploadFileState& state) {
  storage::UploadFileRecord r;
  *r.mutable_file() = state.file;
  r.set_held(state.held);
  for (const storage::ChunkRef& c : state.chunks) *r.add_chunks() = c;
  r.set_complete(state.complete);
  r.set_already_stored(state.already_stored);
  r.set_announced_without_digest(state.announced_without_digest);
  r.set_version(state.version);
  r.set_writer(state.writer);
  r.set_writer_until_micros(state.writer_until_micros);
  return r;
}

// The stored fields of `r` into `state` (the digest state is the caller's).
void FromRecord(const storage::UploadFileRecord& r, int64_t now, UploadFileState* state) {
  state->file = r.file();
  state->held = r.held();
  state->chunks.assign(r.chunks().begin(), r.chunks().end());
  state->complete = r.complete();
  state->already_stored = r.already_stored();
  state->announced_without_digest = r.announced_without_digest();
  state->version = r.version();
  state->writer = r.writer();
  state->writer_until_micros = r.writer_until_micros();
  state->writing = !r.writer().empty() && r.writer_until_micros() > now;
}

}  // namespace

UploadSession::UploadSession(storage::UploadSessionRecord record,
                             v1::BeginUploadRequest request, SessionStore* sessions)
    : id_(record.id()),
      owner_(record.owner()),
      request_(std::move(request)),
      sessions_(sessions) {
  absl::MutexLock lock(&mu);
  basename = record.basename().empty() ? request_.basename() : record.basename();
  closed = record.closed();
  record_ = std::move(record);
}

absl::StatusOr<std::shared_ptr<StagingArea>> UploadSession::Staging() {
  absl::MutexLock lock(&staging_mu_);
  if (staging_ == nullptr) {
    ASSIGN_OR_RETURN(staging_, sessions_->Staging(id_));
  }
  return staging_;
}

absl::Status UploadSession::LearnBasename(absl::string_view writer_basename) {
  if (!request_.basename().empty() || writer_basename.empty()) return absl::OkStatus();
  if (basename.empty()) {
    storage::UploadSessionRecord next = record_;
    next.set_basename(std::string(writer_basename));
    ASSIGN_OR_RETURN(record_, sessions_->WriteSession(next, NowMicros()));
    basename = std::string(writer_basename);
  } else if (basename != writer_basename) {
    return absl::InvalidArgumentError(
        absl::StrCat("upload ", id_, " learned basename '", basename,
                     "' from its first writer; this "
                     "file's prefix has basename '",
                     writer_basename,
                     "': put files of one checkpoint "
                     "prefix, or begin the upload with that basename"));
  }
  return absl::OkStatus();
}

absl::Status UploadSession::SaveFile(const std::string& name, absl::string_view writer,
                                     int64_t lease_until_micros) {
  UploadFileState& state = files.at(name);
  storage::UploadFileRecord next = ToRecord(state);
  // A lease until 0 ends the writer's lease (the writer releases the file).
  const bool leased = !writer.empty() && lease_until_micros > 0;
  next.set_writer(leased ? std::string(writer) : std::string());
  next.set_writer_until_micros(leased ? lease_until_micros : 0);
  const int64_t now = NowMicros();
  ASSIGN_OR_RETURN(storage::UploadFileRecord stored,
                   sessions_->WriteFile(id_, next, writer, now));
  FromRecord(stored, now, &state);
  state.ahead_of_store = false;
  return absl::OkStatus();
}

absl::Status UploadSession::Close() {
  storage::UploadSessionRecord next = record_;
  next.set_closed(true);
  ASSIGN_OR_RETURN(record_, sessions_->WriteSession(next, NowMicros()));
  closed = true;
  return absl::OkStatus();
}

void UploadSession::Refresh(const UploadSessionState& state) {
  // A closed upload's files are final (the store takes no more writes): its commit reads
  // them without mu.
  if (closed) return;
  // `state` was read before this server's last writes maybe (they take mu, the read
  // does not): what is newer here stays, and so do the chunks this server's writer
  // holds ahead of the store (the store still has the version they were added to).
  const int64_t now = NowMicros();
  std::map<std::string, UploadFileState> fresh;
  for (auto& [name, local] : files) {
    auto r = state.files.find(name);
    const int64_t stored = r == state.files.end() ? 0 : r->second.version();
    if (local.version > stored || (local.ahead_of_store && local.version == stored)) {
      fresh[name] = std::move(local);
    }
  }
  for (const auto& [name, r] : state.files) {
    if (fresh.count(name) > 0) continue;
    UploadFileState& f = fresh[name];
    auto it = files.find(name);
    if (it != files.end() && it->second.hashed == r.held()) {
      f.digests = it->second.digests;  // still the digests of the held bytes
      f.hashed = it->second.hashed;
    }
    FromRecord(r, now, &f);
  }
  files = std::move(fresh);
  if (state.session.version() >= record_.version()) {
    record_ = state.session;
    closed = closed || state.session.closed();
    if (!state.session.basename().empty()) basename = state.session.basename();
  }
}

UploadSessionState UploadSession::ToState() const {
  UploadSessionState out;
  out.session = record_;
  out.session.set_basename(basename);
  for (const auto& [name, state] : files) out.files[name] = ToRecord(state);
  return out;
}

v1::Upload UploadSession::ToProto() const {
  v1::Upload out;
  out.set_upload_id(id_);
  out.set_model(request_.model());
  out.set_step(request_.step());
  for (const auto& [name, state] : files) {
    v1::UploadFile* f = out.add_files();
    f->mutable_file()->set_name(state.file.name());
    f->mutable_file()->set_size(state.file.size());
    f->mutable_file()->set_sha256(state.file.sha256());
    f->mutable_file()->set_chunked_sha256(state.file.chunked_sha256());
    f->set_held_bytes(state.held);
    f->set_writing(state.writing);
  }
  return out;
}

UploadManager::UploadManager(Store* store, absl::Duration writer_lease)
    : sessions_(store->sessions()), writer_lease_(writer_lease) {}

std::shared_ptr<UploadSession> UploadManager::New(const v1::BeginUploadRequest& request,
                                                  std::string owner) {
  absl::BitGen gen;
  storage::UploadSessionRecord record;
  record.set_id(absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen),
                                absl::Uniform<uint64_t>(gen)));
  record.set_request(request.SerializeAsString());
  record.set_owner(std::move(owner));
  record.set_basename(request.basename());
  return std::make_shared<UploadSession>(std::move(record), request, &sessions_);
}

absl::Status UploadManager::Start(const std::shared_ptr<UploadSession>& session) {
  RETURN_IF_ERROR(sessions_.Create(session->ToState(), NowMicros()));
  ASSIGN_OR_RETURN(UploadSessionState stored, sessions_.Load(session->id()));
  session->Refresh(stored);
  absl::MutexLock lock(&mu_);
  cache_[session->id()] = session;
  return absl::OkStatus();
}

std::shared_ptr<UploadSession> UploadManager::Cached(
    const storage::UploadSessionRecord& record) {
  absl::MutexLock lock(&mu_);
  std::shared_ptr<UploadSession>& cached = cache_[record.id()];
  if (cached == nullptr) {
    // Begun on another server (or before this cache forgot it).
    v1::BeginUploadRequest request;
    request.ParseFromString(record.request());
    cached = std::make_shared<UploadSession>(record, std::move(request), &sessions_);
  }
  return cached;
}

absl::StatusOr<std::shared_ptr<UploadSession>> UploadManager::Find(absl::string_view id) {
  absl::StatusOr<UploadSessionState> state = sessions_.Load(id);
  if (!state.ok()) {
    if (absl::IsNotFound(state.status())) Forget(id);
    return state.status();
  }
  std::shared_ptr<UploadSession> session = Cached(state->session);
  absl::MutexLock lock(&session->mu);
  session->Refresh(*state);
  return session;
}

void UploadManager::Forget(absl::string_view id) {
  std::shared_ptr<UploadSession> session;
  {
    absl::MutexLock lock(&mu_);
    auto it = cache_.find(id);
    if (it == cache_.end()) return;
    session = std::move(it->second);
    cache_.erase(it);
  }
  absl::MutexLock lock(&session->mu);
  session->closed = true;
}

absl::Status UploadManager::Remove(absl::string_view id) {
  Forget(id);
  return sessions_.Release(id);
}

std::vector<std::string> UploadManager::TakeIdle(absl::Time cutoff) {
  std::vector<std::string> idle;
  absl::StatusOr<std::vector<storage::UploadSessionRecord>> open = sessions_.List();
  if (!open.ok()) return idle;  // the next round tries again
  absl::flat_hash_set<std::string> listed;
  for (const storage::UploadSessionRecord& r : *open) {
    listed.insert(r.id());
    if (r.last_active_micros() >= absl::ToUnixMicros(cutoff)) continue;
    if (Remove(r.id()).ok()) idle.push_back(r.id());
  }
  // Uploads other servers ended leave this cache too.
  std::vector<std::string> gone;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, session] : cache_) {
      if (!listed.contains(id)) gone.push_back(id);
    }
  }
  for (const std::string& id : gone) Forget(id);
  return idle;
}

absl::StatusOr<bool> UploadManager::OwnerHoldsChunk(const std::string& owner,
                                                    const std::string& sha256_raw) {
  if (owner.empty()) return false;
  ASSIGN_OR_RETURN(std::vector<storage::UploadSessionRecord> open, sessions_.List());
  for (const storage::UploadSessionRecord& r : open) {
    if (r.owner() != owner || r.closed()) continue;
    absl::StatusOr<UploadSessionState> state = sessions_.Load(r.id());
    if (!state.ok()) continue;  // ended meanwhile
    for (const auto& [name, file] : state->files) {
      for (const storage::ChunkRef& c : file.chunks()) {
        if (c.sha256() == sha256_raw) return true;
      }
    }
  }
  return false;
}

size_t UploadManager::open_count() {
  absl::StatusOr<std::vector<storage::UploadSessionRecord>> open = sessions_.List();
  return open.ok() ? open->size() : 0;
}

}  // namespace mgreg
