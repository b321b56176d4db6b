#include "client/pipelined_upload.h"

#include <algorithm>
#include <thread>
#include <tuple>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/upload_limits.h"

namespace mgreg {
namespace {

constexpr int64_t kPiece = kDigestPieceBytes;

// The hashers' side of one send: pieces read and hashed into a ring of windows, handed
// to the sender a window at a time. A piece's bytes and digest are written by the one
// hasher that took it, then published by `hashed` (under mu_); the sender reads them
// after seeing the window complete and hands the window back by Release.
class PieceRing {
 public:
  PieceRing(LocalFile& file, int64_t size, int64_t pieces_per_window, int windows)
      : file_(file),
        size_(size),
        pieces_((size + kPiece - 1) / kPiece),
        per_window_(pieces_per_window),
        slots_(static_cast<size_t>(windows)) {
    for (Slot& s : slots_) {
      s.bytes.resize(static_cast<size_t>(per_window_));
      s.digests.resize(static_cast<size_t>(per_window_));
    }
  }
  ~PieceRing() { Stop(); }

  int64_t pieces() const { return pieces_; }
  int64_t window_count() const { return (pieces_ + per_window_ - 1) / per_window_; }
  // Pieces of window `w`, and its first piece.
  int64_t PiecesIn(int64_t w) const {
    return std::min(per_window_, pieces_ - w * per_window_);
  }
  int64_t FirstPiece(int64_t w) const { return w * per_window_; }

  void Start(int threads) {
    for (int t = 0; t < threads; ++t) workers_.emplace_back([this] { Work(); });
  }

  // Waits until window `w` (the next one not released) is hashed. Returns the read error
  // that stopped the hashers instead, if any.
  absl::Status WaitFor(int64_t w) {
    absl::MutexLock lock(&mu_);
    Slot& s = SlotOf(w);
    while (error_.ok() && s.hashed < PiecesIn(w)) cv_.Wait(&mu_);
    return error_;
  }
  // Window `w`'s piece `k` (its bytes the sender may swap out and back) and digest.
  // Only between WaitFor(w) and Release(w).
  std::string& Bytes(int64_t w, int64_t k) {
    return SlotOf(w).bytes[static_cast<size_t>(k)];
  }
  const std::string& Digest(int64_t w, int64_t k) {
    return SlotOf(w).digests[static_cast<size_t>(k)];
  }
  // The sender is done with window `w`: its slot takes window w + windows.
  void Release(int64_t w) {
    absl::MutexLock lock(&mu_);
    SlotOf(w).hashed = 0;
    released_ = w + 1;
    cv_.SignalAll();
  }

  // Stops the hashers (after the last window, or on any error) and joins them.
  void Stop() {
    {
      absl::MutexLock lock(&mu_);
      stop_ = true;
      cv_.SignalAll();
    }
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

 private:
  struct Slot {
    std::vector<std::string> bytes;
    std::vector<std::string> digests;
    int64_t hashed = 0;  // pieces of the slot's current window hashed (guarded by mu_)
  };
  Slot& SlotOf(int64_t w) { return slots_[static_cast<size_t>(w) % slots_.size()]; }

  // Whether the slot of the window holding piece `i` is free for it.
  bool SlotFree(int64_t i) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return i / per_window_ < released_ + static_cast<int64_t>(slots_.size());
  }

  // Each hasher takes the next two pieces (the last alone if the count is odd) and hashes
  // them together with Sha256RawPair: one SHA-256 leaves the core's SHA unit idle
  // between dependent rounds, two interleaved run up to twice as fast (issue 17). A pair
  // may span two windows; it is taken once both slots are free. That wait cannot
  // deadlock: the pair's first window is at or after the sender's next one, so the
  // sender needs no piece of this pair to release every window before it, and with at
  // least 2 slots releasing those frees the pair's second window.
  void Work() {
    for (;;) {
      int64_t first;
      int64_t n;
      {
        absl::MutexLock lock(&mu_);
        while (!stop_ && error_.ok() && next_ < pieces_ &&
               !SlotFree(std::min(next_ + 1, pieces_ - 1))) {
          cv_.Wait(&mu_);
        }
        if (stop_ || !error_.ok() || next_ >= pieces_) return;
        first = next_;
        n = std::min<int64_t>(2, pieces_ - next_);
        next_ += n;
      }
      std::string* bytes[2] = {nullptr, nullptr};
      std::string* digests[2] = {nullptr, nullptr};
      absl::Status read;
      for (int64_t j = 0; j < n && read.ok(); ++j) {
        const int64_t i = first + j;
        Slot& slot = SlotOf(i / per_window_);
        const size_t k = static_cast<size_t>(i % per_window_);
        bytes[j] = &slot.bytes[k];
        digests[j] = &slot.digests[k];
        const int64_t pos = i * kPiece;
        read = file_.ReadAt(pos, static_cast<size_t>(std::min(kPiece, size_ - pos)),
                            bytes[j]);
      }
      if (read.ok() && n == 2) {
        std::tie(*digests[0], *digests[1]) = Sha256RawPair(*bytes[0], *bytes[1]);
      } else if (read.ok()) {
        *digests[0] = Sha256Raw(*bytes[0]);
      }
      absl::MutexLock lock(&mu_);
      if (!read.ok()) {
        // Neither piece is published: the sender stops at its next WaitFor.
        if (error_.ok()) error_ = std::move(read);
        cv_.SignalAll();
        return;
      }
      for (int64_t i = first; i < first + n; ++i) {
        const int64_t w = i / per_window_;
        if (++SlotOf(w).hashed == PiecesIn(w)) cv_.SignalAll();
      }
    }
  }

  LocalFile& file_;
  const int64_t size_;
  const int64_t pieces_;
  const int64_t per_window_;
  std::vector<Slot> slots_;
  std::vector<std::thread> workers_;

  absl::Mutex mu_;
  absl::CondVar cv_;
  int64_t next_ ABSL_GUARDED_BY(mu_) = 0;      // the next piece to read
  int64_t released_ ABSL_GUARDED_BY(mu_) = 0;  // windows the sender is done with
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

// The sender's side: messages in order, the header on the first, the final digest on
// the last, the counters.
class MessageWriter {
 public:
  MessageWriter(const v1::PutFileRequest::Header& header, PutFileStream& stream,
                const PipelinedSend& send)
      : stream_(stream), send_(send), pos_(send.offset) {
    *message_.mutable_header() = header;
    message_.mutable_header()->set_offset(send.offset);
  }

  bool wrote_any() const { return wrote_any_; }
  bool wrote_final() const { return wrote_final_; }
  // The digest to put on the message that reaches the file's end.
  void SetFinalDigest(std::string hex) { final_ = std::move(hex); }

  // Names the held chunk of `n` bytes at the writer's position by its digest: in a
  // message of its own (existing_chunk), or gathered with the held chunks right before
  // it into one message of up to existing_chunks_per_message (existing_chunks), sent
  // when full, when bytes follow, or by EndWindow.
  bool Existing(const std::string& sha256_raw, int64_t n) {
    if (!message_.data().empty() && !Flush()) return false;
    if (send_.existing_chunks_per_message > 1) {
      message_.add_existing_chunks(sha256_raw);
      named_ += n;
      return message_.existing_chunks_size() < send_.existing_chunks_per_message ||
             Flush();
    }
    message_.set_existing_chunk(sha256_raw);
    const bool ok = Write(n);
    message_.clear_existing_chunk();
    if (ok && send_.stats != nullptr) send_.stats->bytes_deduplicated_chunks += n;
    return ok;
  }
  // The window's pieces are all written: the held chunks gathered go out now, so the
  // server hears from the stream at least once a window (as when each was a message)
  // however long the next window takes to read, and no message outlives its window.
  bool EndWindow() { return message_.existing_chunks().empty() || Flush(); }
  // Sends `piece`'s bytes from `from` (an offset into it) in messages of at most
  // message_bytes. Whole pieces are gathered into one message while another fits (the
  // server hashes two chunks of one message together, issue 17); a whole piece alone in
  // its message is swapped in, not copied.
  bool Data(std::string& piece, size_t from) {
    if (!message_.existing_chunks().empty() && !Flush()) return false;
    if (from == 0 && piece.size() <= send_.message_bytes) {
      std::string& gathered = *message_.mutable_data();
      if (gathered.size() + piece.size() > send_.message_bytes && !Flush()) return false;
      if (gathered.empty() && !Gathers(piece.size())) {
        gathered.swap(piece);
        const bool ok = Write(static_cast<int64_t>(gathered.size()));
        gathered.swap(piece);
        if (ok && send_.stats != nullptr) send_.stats->bytes_sent += piece.size();
        return ok;
      }
      gathered.append(piece);
      return Gathers(gathered.size()) || Flush();
    }
    if (!Flush()) return false;
    while (from < piece.size()) {
      const size_t n = std::min(send_.message_bytes, piece.size() - from);
      message_.set_data(piece.data() + from, n);
      if (!Flush()) return false;
      from += n;
    }
    return true;
  }
  // A message with no bytes: the header if nothing was written yet, the final digest if
  // it is still due.
  bool Empty() { return Flush() && Write(0); }

 private:
  // Whether a message of `n` gathered bytes waits for the next piece: a whole one still
  // fits, and the bytes do not reach the file's end.
  bool Gathers(size_t n) const {
    return n + static_cast<size_t>(kPiece) <= send_.message_bytes &&
           pos_ + static_cast<int64_t>(n) < send_.size;
  }
  // Writes the gathered held chunks or data, if any, as one message.
  bool Flush() {
    if (!message_.existing_chunks().empty()) {
      const int64_t named = named_;
      const bool ok = Write(named);
      message_.clear_existing_chunks();
      named_ = 0;
      if (ok && send_.stats != nullptr) send_.stats->bytes_deduplicated_chunks += named;
      return ok;
    }
    const int64_t n = static_cast<int64_t>(message_.data().size());
    if (n == 0) return true;
    const bool ok = Write(n);
    message_.clear_data();
    if (ok && send_.stats != nullptr) send_.stats->bytes_sent += n;
    return ok;
  }
  bool Write(int64_t n) {
    const bool last = pos_ + n == send_.size;
    if (last && send_.send_final_digest) message_.set_final_chunked_sha256(final_);
    if (!stream_.Write(message_)) return false;
    if (last && send_.send_final_digest) wrote_final_ = true;
    message_.clear_header();
    message_.clear_final_chunked_sha256();
    pos_ += n;
    wrote_any_ = true;
    if (send_.progress) send_.progress(pos_, send_.size);
    return true;
  }

  PutFileStream& stream_;
  const PipelinedSend& send_;
  v1::PutFileRequest message_;
  std::string final_;
  int64_t pos_;
  int64_t named_ = 0;  // bytes of the held chunks gathered in message_
  bool wrote_any_ = false;
  bool wrote_final_ = false;
};

absl::Status CheckOptions(const PipelinedSend& send) {
  if (send.size < 0 || send.offset < 0 || send.offset > send.size) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot send bytes [", send.offset, ", ", send.size,
                     ") of a file: the offset must be between 0 and the size"));
  }
  if (send.threads < 1 || send.windows < 2 || send.window_bytes < kPiece ||
      send.window_bytes % kPiece != 0 || send.message_bytes == 0 ||
      send.existing_chunks_per_message < 1 ||
      send.existing_chunks_per_message > kMaxExistingChunksPerMessage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pipelined send options out of range (threads ", send.threads, ", windows ",
        send.windows, ", window bytes ", send.window_bytes, ", message bytes ",
        send.message_bytes, ", held chunks per message ",
        send.existing_chunks_per_message,
        "): give at least 1 thread, 2 windows, a window of a multiple of 1 MiB, "
        "messages of at least 1 byte and 1 to ",
        kMaxExistingChunksPerMessage, " held chunks per message"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PipelinedSendResult> SendFilePipelined(
    LocalFile& file, const v1::PutFileRequest::Header& header, PutFileStream& stream,
    const PipelinedSend& send) {
  RETURN_IF_ERROR(CheckOptions(send));
  PieceRing ring(file, send.size, send.window_bytes / kPiece, send.windows);
  ring.Start(send.threads);
  MessageWriter writer(header, stream, send);
  std::vector<std::string> digests;  // every piece's, in order
  digests.reserve(static_cast<size_t>(ring.pieces()));
  const bool ask = send.find_chunks != nullptr && ring.pieces() > 1;

  // Sends window `w`, hashed; a local or FindChunks error, or false in *sent when the
  // stream ended.
  auto send_window = [&](int64_t w, bool* sent) -> absl::Status {
    *sent = true;
    const int64_t first = ring.FirstPiece(w);
    const int64_t n = ring.PiecesIn(w);
    for (int64_t k = 0; k < n; ++k) digests.push_back(ring.Digest(w, k));
    if (w + 1 == ring.window_count() && send.send_final_digest) {
      writer.SetFinalDigest(ChunkedSha256FromPieces(digests));
    }
    // Pieces the server may hold: those starting at or after the offset.
    std::vector<bool> held(static_cast<size_t>(n), false);
    if (ask) {
      std::vector<std::string> asked;
      std::vector<int64_t> which;
      for (int64_t k = 0; k < n; ++k) {
        if ((first + k) * kPiece >= send.offset) {
          asked.push_back(ring.Digest(w, k));
          which.push_back(k);
        }
      }
      if (!asked.empty()) {
        ASSIGN_OR_RETURN(std::vector<bool> found, send.find_chunks(asked));
        for (size_t j = 0; j < which.size() && j < found.size(); ++j) {
          held[static_cast<size_t>(which[j])] = found[j];
        }
      }
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t pos = (first + k) * kPiece;
      std::string& bytes = ring.Bytes(w, k);
      const int64_t end = pos + static_cast<int64_t>(bytes.size());
      if (end <= send.offset) continue;  // held already: hashed only
      const bool ok =
          held[static_cast<size_t>(k)]
              ? writer.Existing(ring.Digest(w, k), end - pos)
              : writer.Data(bytes,
                            static_cast<size_t>(std::max<int64_t>(0, send.offset - pos)));
      if (!ok) {
        *sent = false;
        return absl::OkStatus();
      }
    }
    *sent = writer.EndWindow();
    return absl::OkStatus();
  };

  absl::Status local;
  bool open = true;
  for (int64_t w = 0; w < ring.window_count() && open && local.ok(); ++w) {
    local = ring.WaitFor(w);
    if (!local.ok()) break;
    local = send_window(w, &open);
    ring.Release(w);
  }
  ring.Stop();
  if (!local.ok()) {
    stream.Cancel();
    return local;
  }
  PipelinedSendResult out;
  out.chunked_sha256 = ChunkedSha256FromPieces(digests);
  if (open &&
      (!writer.wrote_any() || (send.send_final_digest && !writer.wrote_final()))) {
    // Nothing left to send (an empty file, or every byte held): the header, and the
    // digest the server still needs.
    writer.SetFinalDigest(out.chunked_sha256);
    open = writer.Empty();
  }
  ASSIGN_OR_RETURN(out.response, stream.Finish(/*writes_done=*/open));
  return out;
}

}  // namespace mgreg
