#include "server/uploads.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace mgreg {

UploadSession::UploadSession(std::string id, const v1::BeginUploadRequest& request,
                             std::unique_ptr<StagingArea> staging, std::string owner)
    : id_(std::move(id)),
      owner_(std::move(owner)),
      request_(request),
      staging_(std::move(staging)) {
  absl::MutexLock lock(&mu);
  last_active = absl::Now();
  basename = request_.basename();
}

absl::Status UploadSession::LearnBasename(absl::string_view writer_basename) {
  if (!request_.basename().empty() || writer_basename.empty()) return absl::OkStatus();
  if (basename.empty()) {
    basename = std::string(writer_basename);
  } else if (basename != writer_basename) {
    return absl::InvalidArgumentError(absl::StrCat(
        "upload ", id_, " learned basename '", basename, "' from its first writer; this "
        "file's prefix has basename '", writer_basename, "': put files of one checkpoint "
        "prefix, or begin the upload with that basename"));
  }
  return absl::OkStatus();
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
    f->set_held_bytes(state.held);
    f->set_writing(state.writing);
  }
  return out;
}

namespace {

// Cuts the incoming bytes into chunks at fixed file offsets, stages each chunk, and
// verifies the whole-file digest when the last byte arrives.
class ChunkingFileSink : public FileSink {
 public:
  using ChunkPredicate = std::function<absl::StatusOr<bool>(const std::string&)>;

  ChunkingFileSink(std::shared_ptr<UploadSession> session, std::string name,
                   int64_t size, int64_t base, Sha256 hasher, size_t chunk_bytes,
                   bool complete, Store* store, ChunkPredicate may_reuse_chunk)
      : store_(store),
        may_reuse_chunk_(std::move(may_reuse_chunk)),
        session_(std::move(session)),
        name_(std::move(name)),
        size_(size),
        base_(base),
        hasher_(std::move(hasher)),
        chunk_bytes_(chunk_bytes),
        complete_(complete) {}

  ~ChunkingFileSink() override { Release(); }

  void set_restart_on_data(bool restart) { restart_on_data_ = restart; }

  absl::Status Append(absl::string_view data) override {
    if (!error_.ok()) return error_;
    if (complete_ && restart_on_data_ && !data.empty()) Restart();
    if (complete_) {
      if (data.empty()) return absl::OkStatus();
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "' received more than the ", size_,
          " bytes announced at BeginUpload; announce the real size")));
    }
    const int64_t received = base_ + static_cast<int64_t>(buffer_.size() + data.size());
    {
      // Any message keeps the upload alive, also one shorter than a chunk.
      absl::MutexLock lock(&session_->mu);
      session_->last_active = absl::Now();
    }
    if (received > size_) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "' received ", received, " bytes, more than the ", size_,
          " announced at BeginUpload; announce the real size")));
    }
    buffer_.append(data.data(), data.size());
    size_t pos = 0;
    while (buffer_.size() - pos >= chunk_bytes_) {
      if (absl::Status s = Emit(absl::string_view(buffer_).substr(pos, chunk_bytes_));
          !s.ok()) {
        return Fail(std::move(s));
      }
      pos += chunk_bytes_;
    }
    buffer_.erase(0, pos);
    if (base_ + static_cast<int64_t>(buffer_.size()) == size_) {
      if (!buffer_.empty()) {
        if (absl::Status s = Emit(buffer_); !s.ok()) return Fail(std::move(s));
        buffer_.clear();
      }
      return Fail(Verify());
    }
    return absl::OkStatus();
  }

  absl::Status AppendExistingChunk(absl::string_view sha256) override {
    if (!error_.ok()) return error_;
    if (complete_ && restart_on_data_) Restart();
    if (!buffer_.empty()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "': existing_chunk at offset ",
          base_ + static_cast<int64_t>(buffer_.size()),
          " is not at a chunk boundary; send existing chunks only at multiples of ",
          chunk_bytes_)));
    }
    if (sha256.size() != 32) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("file '", name_, "': existing_chunk must be a 32-byte SHA-256")));
    }
    const int64_t want = std::min<int64_t>(static_cast<int64_t>(chunk_bytes_), size_ - base_);
    if (complete_ || want <= 0) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "' received more than the ", size_,
          " bytes announced at BeginUpload; announce the real size")));
    }
    storage::ChunkRef ref;
    ref.set_sha256(std::string(sha256));
    ref.set_size(static_cast<uint32_t>(want));
    absl::StatusOr<bool> may_reuse = may_reuse_chunk_(ref.sha256());
    if (!may_reuse.ok()) return Fail(may_reuse.status());
    // The bytes are read back so the whole-file digest is verified like any other.
    absl::StatusOr<std::string> data =
        *may_reuse ? store_->ReadChunk(ref) : absl::NotFoundError("not reusable");
    if (!data.ok()) {
      if (data.status().code() == absl::StatusCode::kNotFound) {
        return Fail(absl::NotFoundError(absl::StrCat(
            "file '", name_, "': the server does not hold chunk ", BytesToHex(sha256),
            "; send its bytes")));
      }
      return Fail(data.status());
    }
    if (static_cast<int64_t>(data->size()) != want) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "': chunk ", BytesToHex(sha256), " has ", data->size(),
          " bytes but the file needs ", want, " at offset ", base_)));
    }
    if (absl::Status s = session_->staging()->HoldExistingChunk(ref); !s.ok()) {
      return Fail(std::move(s));
    }
    if (absl::Status s = Record(std::move(ref), *data); !s.ok()) return Fail(std::move(s));
    if (base_ == size_) return Fail(Verify());
    return absl::OkStatus();
  }

  absl::StatusOr<v1::PutFileResponse> Finish() override {
    if (!error_.ok()) return error_;
    v1::PutFileResponse response;
    response.set_held_bytes(base_);
    response.set_complete(complete_);
    Release();
    if (!complete_) {
      return absl::DataLossError(absl::StrCat(
          "stream for file '", name_, "' ended after ",
          base_ + static_cast<int64_t>(buffer_.size()), " of ", size_,
          " bytes; the server holds ", base_, " bytes: resume with offset ", base_));
    }
    return response;
  }

 private:
  // Writing at offset 0 starts the file over, also when it was complete (as the
  // proto says): its bytes are received and verified again.
  void Restart() {
    restart_on_data_ = false;
    absl::MutexLock lock(&session_->mu);
    UploadFileState& state = session_->files.at(name_);
    state.held = 0;
    state.chunks.clear();
    state.hasher = Sha256();
    state.complete = false;
    state.already_stored = false;
    base_ = 0;
    hasher_ = Sha256();
    complete_ = false;
  }

  // Stages one chunk and records it as held.
  absl::Status Emit(absl::string_view piece) {
    storage::ChunkRef ref;
    ref.set_sha256(Sha256Raw(piece));
    ref.set_size(static_cast<uint32_t>(piece.size()));
    if (absl::Status s = session_->staging()->PutChunk(ref, piece); !s.ok()) return s;
    return Record(std::move(ref), piece);
  }

  // Adds a staged (or held) chunk to the file: digest, held bytes, chunk list.
  absl::Status Record(storage::ChunkRef ref, absl::string_view piece) {
    hasher_.Update(piece);
    base_ += static_cast<int64_t>(piece.size());
    absl::MutexLock lock(&session_->mu);
    if (session_->closed) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upload ", session_->id(), " was closed while file '", name_,
          "' was being written"));
    }
    UploadFileState& state = session_->files.at(name_);
    state.chunks.push_back(std::move(ref));
    state.held = base_;
    state.hasher = hasher_;
    session_->last_active = absl::Now();
    return absl::OkStatus();
  }

  // Checks the whole-file digest once every byte is held.
  absl::Status Verify() {
    const std::string got = hasher_.HexDigest();
    absl::MutexLock lock(&session_->mu);
    UploadFileState& state = session_->files.at(name_);
    if (got != state.file.sha256()) {
      state.held = 0;
      state.chunks.clear();
      state.hasher = Sha256();
      return absl::DataLossError(absl::StrCat(
          "file '", name_, "': the SHA-256 of the received bytes is ", got,
          " but BeginUpload announced ", state.file.sha256(),
          "; the file changed or was corrupted in transit: send it again from offset 0"));
    }
    state.complete = true;
    complete_ = true;
    return absl::OkStatus();
  }

  absl::Status Fail(absl::Status s) {
    if (!s.ok()) {
      error_ = s;
      Release();
    }
    return s;
  }

  void Release() {
    if (released_) return;
    released_ = true;
    absl::MutexLock lock(&session_->mu);
    auto it = session_->files.find(name_);
    if (it != session_->files.end()) it->second.writing = false;
    session_->last_active = absl::Now();
  }

  Store* const store_;
  const ChunkPredicate may_reuse_chunk_;
  const std::shared_ptr<UploadSession> session_;
  const std::string name_;
  const int64_t size_;
  int64_t base_;  // bytes held (staged in whole chunks) from offset 0
  Sha256 hasher_;
  const size_t chunk_bytes_;
  std::string buffer_;  // received bytes after base_, less than one chunk
  bool complete_;
  // Set for a complete file opened at offset 0: its first bytes restart it.
  bool restart_on_data_ = false;
  bool released_ = false;
  absl::Status error_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileSink>> OpenUploadFileSink(
    std::shared_ptr<UploadSession> session, const std::string& name, int64_t offset,
    size_t chunk_bytes, Store* store,
    std::function<absl::StatusOr<bool>(const std::string& sha256_raw)> may_reuse_chunk) {
  absl::MutexLock lock(&session->mu);
  if (session->closed) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload ", session->id(), " is closed; begin a new upload"));
  }
  auto it = session->files.find(name);
  if (it == session->files.end()) {
    std::string names;
    for (const auto& [n, unused] : session->files) absl::StrAppend(&names, " ", n);
    return absl::InvalidArgumentError(absl::StrCat(
        "file '", name, "' is not in the manifest of upload ", session->id(),
        "; its files are:", names));
  }
  UploadFileState& state = it->second;
  if (state.writing) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file '", name, "' of upload ", session->id(),
        " is being written by another stream; wait for it or cancel it"));
  }
  if (state.complete) {
    // Nothing to send; a sink that accepts no bytes and finishes complete.
    state.writing = true;
    session->last_active = absl::Now();
    auto sink = std::make_unique<ChunkingFileSink>(
        session, name, state.file.size(), state.file.size(), state.hasher, chunk_bytes,
        /*complete=*/true, store, std::move(may_reuse_chunk));
    sink->set_restart_on_data(offset == 0);
    return std::unique_ptr<FileSink>(std::move(sink));
  }
  if (offset != 0 && offset != state.held) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file '", name, "': cannot write at offset ", offset, "; the server holds ",
        state.held, " bytes: resume at offset ", state.held, " or restart at 0"));
  }
  if (offset == 0 && state.held != 0) {
    state.held = 0;
    state.chunks.clear();
    state.hasher = Sha256();
  }
  state.writing = true;
  session->last_active = absl::Now();
  auto sink = std::make_unique<ChunkingFileSink>(session, name, state.file.size(),
                                                 state.held, state.hasher, chunk_bytes,
                                                 /*complete=*/false, store,
                                                 std::move(may_reuse_chunk));
  return std::unique_ptr<FileSink>(std::move(sink));
}

std::shared_ptr<UploadSession> UploadManager::Create(
    const v1::BeginUploadRequest& request, std::unique_ptr<StagingArea> staging,
    std::string owner) {
  absl::BitGen gen;
  const std::string id = absl::StrFormat("%016x%016x", absl::Uniform<uint64_t>(gen),
                                         absl::Uniform<uint64_t>(gen));
  auto session =
      std::make_shared<UploadSession>(id, request, std::move(staging), std::move(owner));
  absl::MutexLock lock(&mu_);
  sessions_[id] = session;
  return session;
}

absl::StatusOr<std::shared_ptr<UploadSession>> UploadManager::Find(absl::string_view id) {
  absl::MutexLock lock(&mu_);
  auto it = sessions_.find(id);
  if (it == sessions_.end()) {
    return absl::NotFoundError(absl::StrCat(
        "upload '", id,
        "' does not exist: it was committed, aborted or expired, or never begun; begin a "
        "new upload"));
  }
  return it->second;
}

void UploadManager::Remove(absl::string_view id) {
  std::shared_ptr<UploadSession> session;
  {
    absl::MutexLock lock(&mu_);
    auto it = sessions_.find(id);
    if (it == sessions_.end()) return;
    session = std::move(it->second);
    sessions_.erase(it);
  }
  absl::MutexLock lock(&session->mu);
  session->closed = true;
}

std::vector<std::shared_ptr<UploadSession>> UploadManager::TakeIdle(absl::Time cutoff) {
  std::vector<std::shared_ptr<UploadSession>> idle;
  absl::MutexLock lock(&mu_);
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    UploadSession& s = *it->second;
    bool take = false;
    {
      absl::MutexLock session_lock(&s.mu);
      if (s.last_active < cutoff) {
        s.closed = true;
        take = true;
      }
    }
    if (take) {
      idle.push_back(std::move(it->second));
      sessions_.erase(it++);
    } else {
      ++it;
    }
  }
  return idle;
}

bool UploadManager::OwnerHoldsChunk(const std::string& owner, const std::string& sha256_raw) {
  if (owner.empty()) return false;
  absl::MutexLock lock(&mu_);
  for (const auto& [id, session] : sessions_) {
    if (session->owner() != owner) continue;
    absl::MutexLock session_lock(&session->mu);
    for (const auto& [name, state] : session->files) {
      for (const storage::ChunkRef& c : state.chunks) {
        if (c.sha256() == sha256_raw) return true;
      }
    }
  }
  return false;
}

size_t UploadManager::open_count() {
  absl::MutexLock lock(&mu_);
  return sessions_.size();
}

}  // namespace mgreg
