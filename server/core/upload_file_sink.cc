#include "server/core/upload_file_sink.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/random/random.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/core/api_errors.h"
#include "server/core/validation.h"

namespace mgreg {

namespace {

// A stream saves its file's state (chunk list, held bytes) after this many new chunks,
// or an eighth of the file's chunks if more, so that the copies of a save (O(the file's
// chunks)) cost O(1) per chunk; and at least every kSaveInterval (lease/4 if shorter),
// at the end of the stream, and whenever the file's digests are checked.
constexpr size_t kSaveEveryChunks = 32;
constexpr absl::Duration kSaveInterval = absl::Seconds(1);
// What QuickAppend leaves of the save interval for the append itself.
constexpr absl::Duration kQuickMargin = absl::Milliseconds(100);

// The store's "session gone" or "closed" while a stream writes, in the writer's terms.
absl::Status ClosedUnderWriter(const std::string& id, const std::string& name,
                               absl::Status s) {
  if (s.code() != absl::StatusCode::kNotFound) return s;
  return absl::FailedPreconditionError(absl::StrCat(
      "upload ", id, " was closed while file '", name, "' was being written"));
}

// The digest state of a file with no bytes held yet.
UploadDigests FreshDigests(const storage::FileRecord& file, size_t chunk_bytes) {
  return UploadDigests(/*whole=*/!file.sha256().empty(), chunk_bytes);
}

// The digest state of `file` holding `chunks`, read back from the store when the
// digests need the bytes (a whole-file SHA-256, or chunks other than 1 MiB).
absl::StatusOr<UploadDigests> RebuildDigests(const storage::FileRecord& file,
                                             const std::vector<storage::ChunkRef>& chunks,
                                             size_t chunk_bytes, Store* store) {
  UploadDigests digests = FreshDigests(file, chunk_bytes);
  for (const storage::ChunkRef& c : chunks) {
    std::string data;
    if (digests.needs_bytes()) {
      ASSIGN_OR_RETURN(data, store->ReadChunk(c));
    }
    digests.AddChunk(c, data);
  }
  return digests;
}

bool HasDigest(const storage::FileRecord& file) {
  return !file.sha256().empty() || !file.chunked_sha256().empty();
}

// Drops the digests of a file announced without one (`writers`: they came from its
// writers, and their bytes are gone or start over); an empty file keeps the digest of
// no bytes. A file announced with a digest keeps its digests.
void ForgetWritersDigests(bool writers, storage::FileRecord* file) {
  if (!writers) return;
  file->clear_sha256();
  file->set_chunked_sha256(file->size() == 0 ? Sha256Hex("") : "");
}

// Checks a digest a writer gives as `what` (`chunked`: of that kind, else the
// whole-file SHA-256) against the file's digest of its kind (`writers`: the file's
// digests came from its writers); without one, the file takes it if `adopt`.
// INVALID_ARGUMENT if malformed or different, naming both.
absl::Status TakeDigest(storage::FileRecord* file, bool writers, absl::string_view what,
                        bool chunked, const std::string& value, bool adopt) {
  if (value.empty()) return absl::OkStatus();
  RETURN_IF_ERROR(ValidateDigest(file->name(), what, value, file->size()));
  const std::string& known = chunked ? file->chunked_sha256() : file->sha256();
  if (known.empty()) {
    if (adopt && chunked) file->set_chunked_sha256(value);
    if (adopt && !chunked) file->set_sha256(value);
    return absl::OkStatus();
  }
  if (known == value) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "file '", file->name(), "': ", what, " ", value, " differs from the file's ",
      chunked ? "chunked_sha256 " : "sha256 ", known,
      writers ? " that its writer gave; give the digest of the bytes sent, or start the "
                "file over at offset 0"
              : " announced for it; give the digest of the announced file, or begin a "
                "new upload if the file changed"));
}

// The header's digests: each checked against the file's, taken if `adopt`.
absl::Status TakeGiven(storage::FileRecord* file, bool writers, const GivenDigests& given,
                       bool adopt) {
  RETURN_IF_ERROR(TakeDigest(file, writers, "the PutFile header's sha256",
                             /*chunked=*/false, given.sha256, adopt));
  return TakeDigest(file, writers, "the PutFile header's chunked_sha256",
                    /*chunked=*/true, given.chunked_sha256, adopt);
}

// Cuts the incoming bytes into chunks at fixed file offsets, stages each chunk, and
// verifies the file's digests when the last byte arrives.
class ChunkingFileSink : public FileSink {
 public:
  using ChunkPredicate = std::function<absl::StatusOr<bool>(const std::string&)>;

  ChunkingFileSink(std::shared_ptr<UploadSession> session, std::string name, int64_t size,
                   int64_t base, UploadDigests digests, size_t chunk_bytes, bool complete,
                   Store* store, ChunkPredicate may_reuse_chunk, std::string writer,
                   absl::Duration lease)
      : store_(store),
        may_reuse_chunk_(std::move(may_reuse_chunk)),
        session_(std::move(session)),
        name_(std::move(name)),
        size_(size),
        base_(base),
        digests_(std::move(digests)),
        chunk_bytes_(chunk_bytes),
        complete_(complete),
        writer_(std::move(writer)),
        lease_(lease),
        save_interval_(std::min(kSaveInterval, lease / 4)),
        saved_(absl::Now()) {}

  ~ChunkingFileSink() override { Release().IgnoreError(); }

  // For a complete file opened at offset 0: its first bytes restart it, and then it
  // takes the header's digests `given`.
  void set_restart_on_data(bool restart, GivenDigests given) {
    restart_on_data_ = restart;
    given_ = std::move(given);
  }

  absl::Status Append(absl::string_view data) override {
    if (!error_.ok()) return error_;
    if (complete_ && restart_on_data_ && !data.empty()) {
      if (absl::Status s = Restart(); !s.ok()) return Fail(std::move(s));
    }
    if (complete_) {
      if (data.empty()) return absl::OkStatus();
      return Fail(api_errors::MoreBytesThanAnnounced(name_, size_));
    }
    const int64_t received = base_ + static_cast<int64_t>(buffer_.size() + data.size());
    if (absl::Now() - saved_ > lease_ / 4) {
      // Any message keeps the upload alive and the lease held, also one shorter than a
      // chunk: renewed in the store now and then. (Fail takes the session's lock.)
      absl::Status renewed;
      {
        absl::MutexLock lock(&session_->mu);
        renewed = Save();
      }
      if (!renewed.ok()) return Fail(std::move(renewed));
    }
    if (received > size_) {
      return Fail(absl::InvalidArgumentError(
          absl::StrCat("file '", name_, "' received ", received, " bytes, more than the ",
                       size_, " announced at BeginUpload; announce the real size")));
    }
    // Whole chunks go to the store straight from the message (the client sends
    // chunk-aligned messages of a chunk each); only a piece shorter than a chunk is
    // copied into buffer_ to wait for the rest.
    if (!buffer_.empty()) {
      const size_t fill = std::min(data.size(), chunk_bytes_ - buffer_.size());
      buffer_.append(data.data(), fill);
      data.remove_prefix(fill);
      if (buffer_.size() == chunk_bytes_) {
        if (absl::Status s = Emit(buffer_); !s.ok()) return Fail(std::move(s));
        buffer_.clear();
      }
    }
    // Two whole chunks at hand (a message of several): their SHA-256s are computed
    // together, interleaved on this core (Sha256RawPair), faster than one by one.
    while (data.size() >= 2 * chunk_bytes_) {
      const absl::string_view first = data.substr(0, chunk_bytes_);
      const absl::string_view second = data.substr(chunk_bytes_, chunk_bytes_);
      auto [first_sha256, second_sha256] = Sha256RawPair(first, second);
      if (absl::Status s = Emit(first, std::move(first_sha256)); !s.ok()) {
        return Fail(std::move(s));
      }
      if (absl::Status s = Emit(second, std::move(second_sha256)); !s.ok()) {
        return Fail(std::move(s));
      }
      data.remove_prefix(2 * chunk_bytes_);
    }
    if (data.size() >= chunk_bytes_) {
      if (absl::Status s = Emit(data.substr(0, chunk_bytes_)); !s.ok()) {
        return Fail(std::move(s));
      }
      data.remove_prefix(chunk_bytes_);
    }
    buffer_.append(data.data(), data.size());
    if (base_ + static_cast<int64_t>(buffer_.size()) == size_) {
      if (!buffer_.empty()) {
        if (absl::Status s = Emit(buffer_); !s.ok()) return Fail(std::move(s));
        buffer_.clear();
      }
      return Fail(Verify());
    }
    return absl::OkStatus();
  }

  bool QuickAppend(size_t bytes) const override {
    if (!error_.ok() || complete_ || restart_on_data_ || bytes > 2 * chunk_bytes_ ||
        store_->remote()) {
      return false;
    }
    const size_t pending = buffer_.size() + bytes;
    if (base_ + static_cast<int64_t>(pending) >= size_) return false;
    // No save due once this message's chunks are recorded; the margin covers the
    // message's own time.
    const size_t chunks =
        static_cast<size_t>(base_) / chunk_bytes_ + pending / chunk_bytes_;
    return !SaveDue(unsaved_ + pending / chunk_bytes_, chunks, kQuickMargin);
  }

  absl::Status AppendExistingChunk(absl::string_view sha256) override {
    if (!error_.ok()) return error_;
    if (complete_ && restart_on_data_) {
      if (absl::Status s = Restart(); !s.ok()) return Fail(std::move(s));
    }
    if (!buffer_.empty()) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "': a held chunk named at offset ",
          base_ + static_cast<int64_t>(buffer_.size()),
          " is not at a chunk boundary; name held chunks only at multiples of ",
          chunk_bytes_)));
    }
    if (sha256.size() != 32) {
      return Fail(absl::InvalidArgumentError(absl::StrCat(
          "file '", name_, "': the held chunk named at offset ", base_, " is ",
          sha256.size(), " bytes; name a chunk by its SHA-256, 32 raw bytes")));
    }
    const int64_t want =
        std::min<int64_t>(static_cast<int64_t>(chunk_bytes_), size_ - base_);
    if (complete_ || want <= 0) {
      return Fail(api_errors::MoreBytesThanAnnounced(name_, size_));
    }
    storage::ChunkRef ref;
    ref.set_sha256(std::string(sha256));
    ref.set_size(static_cast<uint32_t>(want));
    absl::StatusOr<bool> may_reuse = may_reuse_chunk_(ref.sha256());
    if (!may_reuse.ok()) return Fail(may_reuse.status());
    const auto not_held = [&] {
      return Fail(absl::NotFoundError(absl::StrCat(
          "file '", name_, "': the server does not hold chunk ", BytesToHex(sha256),
          " named at offset ", base_, "; send its bytes")));
    };
    if (!*may_reuse) return not_held();
    // The bytes are read back only when a digest needs them (a whole-file SHA-256 to
    // verify, or chunks that are not the chunked digest's pieces); otherwise the chunk's
    // SHA-256 is its piece digest, and HoldExistingChunk checks its stored size.
    std::string data;
    if (digests_.needs_bytes()) {
      absl::StatusOr<std::string> read = store_->ReadChunk(ref);
      if (!read.ok()) {
        if (read.status().code() == absl::StatusCode::kNotFound) return not_held();
        return Fail(read.status());
      }
      if (static_cast<int64_t>(read->size()) != want) {
        return Fail(absl::InvalidArgumentError(absl::StrCat(
            "file '", name_, "': chunk ", BytesToHex(sha256), " has ", read->size(),
            " bytes but the file needs ", want, " at offset ", base_)));
      }
      data = *std::move(read);
    }
    absl::StatusOr<std::shared_ptr<StagingArea>> staging = session_->Staging();
    if (!staging.ok())
      return Fail(ClosedUnderWriter(session_->id(), name_, staging.status()));
    if (absl::Status s = (*staging)->HoldExistingChunk(ref); !s.ok()) {
      if (s.code() == absl::StatusCode::kNotFound) return not_held();
      return Fail(absl::Status(s.code(), absl::StrCat("file '", name_, "' at offset ",
                                                      base_, ": ", s.message())));
    }
    if (absl::Status s = Record(std::move(ref), data); !s.ok()) return Fail(std::move(s));
    if (base_ == size_) return Fail(Verify());
    return absl::OkStatus();
  }

  absl::Status GiveFinalDigest(const std::string& chunked_sha256) override {
    if (!error_.ok()) return error_;
    if (absl::Status s = TakeFinalDigest(chunked_sha256); !s.ok())
      return Fail(std::move(s));
    if (!complete_ && base_ == size_) return Fail(Verify());
    return absl::OkStatus();
  }

  absl::StatusOr<v1::PutFileResponse> Finish() override {
    if (!error_.ok()) return error_;
    v1::PutFileResponse response;
    response.set_held_bytes(base_);
    response.set_complete(complete_);
    // The chunks not saved yet are saved with the lease's end: what this response (or
    // the error below) reports held must be in the store.
    const bool unsaved = unsaved_ > 0;
    if (absl::Status s = Release(); !s.ok() && unsaved) return s;
    // Every byte is here; the digest comes in a later PutFile at offset size_.
    if (awaiting_digest_) return response;
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
  absl::Status Restart() {
    restart_on_data_ = false;
    absl::MutexLock lock(&session_->mu);
    UploadFileState& state = session_->files.at(name_);
    ForgetWritersDigests(state.announced_without_digest, &state.file);
    // Checked against the file's digests when the stream opened.
    TakeGiven(&state.file, state.announced_without_digest, given_,
              state.announced_without_digest)
        .IgnoreError();
    state.held = 0;
    state.chunks.clear();
    state.digests = FreshDigests(state.file, chunk_bytes_);
    state.hashed = 0;
    state.complete = false;
    state.already_stored = false;
    base_ = 0;
    digests_ = state.digests;
    complete_ = false;
    return Save();
  }

  // Checks the writer's final digest against the file's, and stores it if the file
  // had none. A complete file keeps its digests (its bytes were verified against them).
  absl::Status TakeFinalDigest(const std::string& chunked_sha256) {
    absl::MutexLock lock(&session_->mu);
    UploadFileState& state = session_->files.at(name_);
    storage::FileRecord file = state.file;
    RETURN_IF_ERROR(TakeDigest(&file, state.announced_without_digest,
                               "final_chunked_sha256", /*chunked=*/true, chunked_sha256,
                               !complete_));
    if (file.chunked_sha256() == state.file.chunked_sha256()) return absl::OkStatus();
    state.file = std::move(file);
    return Save();
  }

  // Writes the file's state to the store, renewing this stream's lease.
  absl::Status Save() ABSL_EXCLUSIVE_LOCKS_REQUIRED(session_->mu) {
    saved_ = absl::Now();
    unsaved_ = 0;
    return ClosedUnderWriter(
        session_->id(), name_,
        session_->SaveFile(name_, writer_, absl::ToUnixMicros(saved_ + lease_)));
  }

  // Stages one chunk and records it as held. `sha256`: the piece's, when computed
  // already.
  absl::Status Emit(absl::string_view piece, std::string sha256 = std::string()) {
    storage::ChunkRef ref;
    ref.set_sha256(sha256.empty() ? Sha256Raw(piece) : std::move(sha256));
    ref.set_size(static_cast<uint32_t>(piece.size()));
    absl::StatusOr<std::shared_ptr<StagingArea>> staging = session_->Staging();
    if (!staging.ok()) return ClosedUnderWriter(session_->id(), name_, staging.status());
    if (absl::Status s = (*staging)->PutChunk(ref, piece); !s.ok()) return s;
    return Record(std::move(ref), piece);
  }

  // Adds a staged (or held) chunk to the file: digests, held bytes, chunk list; saved
  // in the store every few chunks (kSaveEveryChunks), ahead of it until then.
  // `piece` is its bytes, or empty when the digests need none.
  absl::Status Record(storage::ChunkRef ref, absl::string_view piece) {
    digests_.AddChunk(ref, piece);
    const int64_t offset = base_;
    base_ += static_cast<int64_t>(ref.size());
    absl::MutexLock lock(&session_->mu);
    if (session_->closed) {
      return absl::FailedPreconditionError(absl::StrCat("upload ", session_->id(),
                                                        " was closed while file '", name_,
                                                        "' was being written"));
    }
    UploadFileState& state = session_->files.at(name_);
    if (state.held != offset) {
      // Another stream took the file (this one's lease ran out) and changed it.
      return absl::AbortedError(absl::StrCat(
          "file '", name_, "' of upload ", session_->id(),
          " was changed by another stream while this one wrote it at offset ", offset,
          "; the server holds ", state.held, " bytes: resume at offset ", state.held));
    }
    state.chunks.push_back(std::move(ref));
    state.held = base_;
    state.digests = digests_;
    state.hashed = base_;
    state.ahead_of_store = true;
    ++unsaved_;
    if (!SaveDue(unsaved_, state.chunks.size(), absl::ZeroDuration())) {
      return absl::OkStatus();
    }
    return Save();
  }

  // Whether Record saves the file's state when `unsaved` chunks of the file's `chunks`
  // are not saved: every kSaveEveryChunks (or an eighth of the file's chunks if more),
  // or save_interval_ after the last save (`margin` earlier).
  bool SaveDue(size_t unsaved, size_t chunks, absl::Duration margin) const {
    return unsaved >= std::max(kSaveEveryChunks, chunks / 8) ||
           absl::Now() - saved_ >= save_interval_ - margin;
  }

  // Checks the file's digests once every byte is held (each one it has; the chunked one
  // is recorded too when it had none), then makes its chunks durable. Without a digest
  // yet the file waits for one, every byte held.
  absl::Status Verify() {
    const std::string chunked = digests_.chunked_hex();
    const std::string whole = digests_.whole_hex();
    {
      absl::MutexLock lock(&session_->mu);
      UploadFileState& state = session_->files.at(name_);
      awaiting_digest_ = !HasDigest(state.file);
      if (awaiting_digest_) return Save();
      const char* source =
          state.announced_without_digest ? "its writer gave" : "the upload announced";
      std::string mismatch;
      if (!state.file.chunked_sha256().empty() &&
          chunked != state.file.chunked_sha256()) {
        mismatch = absl::StrCat("chunked SHA-256 of the received bytes is ", chunked,
                                " but ", source, " ", state.file.chunked_sha256());
      } else if (!state.file.sha256().empty() && whole != state.file.sha256()) {
        mismatch = absl::StrCat("SHA-256 of the received bytes is ", whole, " but ",
                                source, " ", state.file.sha256());
      }
      if (!mismatch.empty()) {
        state.held = 0;
        state.chunks.clear();
        ForgetWritersDigests(state.announced_without_digest, &state.file);
        state.digests = FreshDigests(state.file, chunk_bytes_);
        state.hashed = 0;
        if (absl::Status s = Save(); !s.ok()) return s;
        return absl::DataLossError(absl::StrCat(
            "file '", name_, "': the ", mismatch,
            "; the file changed or was corrupted in transit: send it again from offset "
            "0"));
      }
      if (state.file.chunked_sha256().empty()) state.file.set_chunked_sha256(chunked);
      state.complete = true;
      complete_ = true;
      RETURN_IF_ERROR(Save());
    }
    // The chunks go to disk now, while other files may still stream, rather than in
    // CommitUpload, which then writes only records. Not this file's error: the commit
    // makes the chunks durable again and reports what stops it.
    absl::StatusOr<std::shared_ptr<StagingArea>> staging = session_->Staging();
    if (staging.ok()) (*staging)->MakeDurable().IgnoreError();
    return absl::OkStatus();
  }

  absl::Status Fail(absl::Status s) {
    if (!s.ok()) {
      error_ = s;
      Release().IgnoreError();
    }
    return s;
  }

  // Ends this stream's lease, saving the chunks not saved yet. Best effort for the
  // lease (it runs out by itself); the caller decides what a failed save means.
  absl::Status Release() {
    if (released_) return absl::OkStatus();
    released_ = true;
    absl::MutexLock lock(&session_->mu);
    if (session_->files.count(name_) == 0 || session_->closed) return absl::OkStatus();
    unsaved_ = 0;
    return ClosedUnderWriter(
        session_->id(), name_,
        session_->SaveFile(name_, writer_, /*lease_until_micros=*/0));
  }

  Store* const store_;
  const ChunkPredicate may_reuse_chunk_;
  const std::shared_ptr<UploadSession> session_;
  const std::string name_;
  const int64_t size_;
  int64_t base_;  // bytes held (staged in whole chunks) from offset 0
  UploadDigests digests_;
  const size_t chunk_bytes_;
  std::string buffer_;  // received bytes after base_, less than one chunk
  bool complete_;
  // Set for a complete file opened at offset 0: its first bytes restart it, and it
  // takes given_ (the header's digests) then.
  bool restart_on_data_ = false;
  GivenDigests given_;
  // Every byte is held but the file has no digest yet.
  bool awaiting_digest_ = false;
  bool released_ = false;
  absl::Status error_;
  // This stream's name as the file's writer, its lease, and when it last saved.
  const std::string writer_;
  const absl::Duration lease_;
  const absl::Duration save_interval_;
  absl::Time saved_;
  // Chunks recorded since the last save (UploadFileState::ahead_of_store).
  size_t unsaved_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileSink>> OpenUploadFileSink(
    std::shared_ptr<UploadSession> session, const std::string& name, int64_t offset,
    size_t chunk_bytes, Store* store, absl::Duration lease,
    std::function<absl::StatusOr<bool>(const std::string& sha256_raw)> may_reuse_chunk,
    GivenDigests given) {
  absl::MutexLock lock(&session->mu);
  if (session->closed) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload ", session->id(), " is closed; begin a new upload"));
  }
  auto it = session->files.find(name);
  if (it == session->files.end()) {
    std::string names;
    for (const auto& [n, unused] : session->files) absl::StrAppend(&names, " ", n);
    return absl::InvalidArgumentError(
        absl::StrCat("file '", name, "' is not in the manifest of upload ", session->id(),
                     "; its files are:", names));
  }
  UploadFileState& state = it->second;
  absl::BitGen gen;
  std::string writer = absl::StrFormat("%016x", absl::Uniform<uint64_t>(gen));
  const int64_t until = absl::ToUnixMicros(absl::Now() + lease);
  const bool writers = state.announced_without_digest;
  if (state.complete) {
    // Nothing to send; a sink that accepts no bytes and finishes complete. It holds the
    // file (another stream is refused) until it ends. The header's digests must agree
    // with the file's (a restart at offset 0 takes them again once it forgot its
    // writers' ones).
    storage::FileRecord file = state.file;
    RETURN_IF_ERROR(TakeGiven(&file, writers, given, /*adopt=*/false));
    RETURN_IF_ERROR(
        ClosedUnderWriter(session->id(), name, session->SaveFile(name, writer, until)));
    auto sink = std::make_unique<ChunkingFileSink>(
        session, name, state.file.size(), state.file.size(), state.digests, chunk_bytes,
        /*complete=*/true, store, std::move(may_reuse_chunk), std::move(writer), lease);
    sink->set_restart_on_data(offset == 0, std::move(given));
    return std::unique_ptr<FileSink>(std::move(sink));
  }
  if (offset != 0 && offset != state.held) {
    return absl::FailedPreconditionError(absl::StrCat(
        "file '", name, "': cannot write at offset ", offset, "; the server holds ",
        state.held, " bytes: resume at offset ", state.held, " or restart at 0"));
  }
  const bool restart = offset == 0 || state.held == 0;
  // Everything that can fail before the state changes: the header's digests, and a
  // rebuild of the digest state that reads held chunks back.
  storage::FileRecord file = state.file;
  if (restart) ForgetWritersDigests(writers, &file);
  RETURN_IF_ERROR(TakeGiven(&file, writers, given, writers));
  std::optional<UploadDigests> rebuilt;
  if (!restart && (state.hashed != state.held ||
                   (!file.sha256().empty() && !state.digests.whole()))) {
    // Another server wrote the held bytes, or the writer gave a whole-file SHA-256 only
    // now: the digest state is rebuilt from them (from the chunk digests alone when the
    // digests need no bytes).
    ASSIGN_OR_RETURN(rebuilt, RebuildDigests(file, state.chunks, chunk_bytes, store));
  }
  // Put back if the store refuses this stream (another one holds the file): that
  // stream's chunks, maybe not saved yet, stay as they are.
  UploadFileState before = state;
  state.file = std::move(file);
  if (restart) {
    state.held = 0;
    state.chunks.clear();
    state.digests = FreshDigests(state.file, chunk_bytes);
    state.hashed = 0;
  } else if (rebuilt.has_value()) {
    state.digests = std::move(*rebuilt);
    state.hashed = state.held;
  }
  if (absl::Status s = session->SaveFile(name, writer, until); !s.ok()) {
    state = std::move(before);
    return ClosedUnderWriter(session->id(), name, std::move(s));
  }
  auto sink = std::make_unique<ChunkingFileSink>(
      session, name, state.file.size(), state.held, state.digests, chunk_bytes,
      /*complete=*/false, store, std::move(may_reuse_chunk), std::move(writer), lease);
  return std::unique_ptr<FileSink>(std::move(sink));
}

}  // namespace mgreg
