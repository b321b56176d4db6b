#include "server/put_file_streams.h"

#include <atomic>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/api_errors.h"
#include "server/core/put_file_message.h"
#include "server/grpc_status.h"

namespace mgreg {

// Feeds PutFile messages into a FileSink, one at a time, on the pool (or, for a quick
// append of bytes, on gRPC's thread). Between messages it waits for the next one with
// no thread held; PutFileStreams may end it then.
class PutFileReader : public grpc::ServerReadReactor<v1::PutFileRequest> {
 public:
  PutFileReader(PutFileStreams* streams, grpc::CallbackServerContext* ctx,
                RegistryService* service, ThreadPool* pool, CallGuard* guard,
                v1::PutFileResponse* response)
      : streams_(streams),
        ctx_(ctx),
        service_(service),
        pool_(pool),
        guard_(guard),
        response_(response) {
    streams_->Add(this);
    absl::MutexLock lock(&mu_);
    if (absl::Status admit = slot_.Acquire(guard_); !admit.ok()) {
      FinishLocked(ToGrpcStatus(admit));
      return;
    }
    // What the stream may pin: one received message, and less than one chunk of the
    // file not yet cut.
    absl::StatusOr<MemoryReservation> memory = service_->memory_budget().Reserve(
        guard_->max_message_bytes() + service_->stream_send_reservation() / 2,
        "PutFile (one more stream)");
    if (!memory.ok()) {
      FinishLocked(ToGrpcStatus(memory.status()));
      return;
    }
    memory_ = std::move(*memory);
    ReadNextLocked();
  }

  void OnReadDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      // Ended while waiting (idle, or its upload closed): this is the read's tail.
      if (finished_) return;
      waiting_since_ = absl::InfiniteFuture();
    }
    // A message of bytes whose append only hashes and stages them is consumed here, on
    // gRPC's thread: no hop to the pool and back (issue 17: ~18 % of the server's CPU
    // per GiB pushed). One stream at a time may, so a store that stalls the write holds
    // at most one of gRPC's callback threads; anything else goes to the pool.
    if (ok && Quick() && streams_->TakeInlineTurn()) {
      Handle(ok, /*inline_turn=*/true);
      return;
    }
    pool_->Submit([this, ok]() { Handle(ok, /*inline_turn=*/false); });
  }

  void OnDone() override {
    streams_->Remove(this);
    // Finish() is called with mu_ held, and gRPC may run OnDone on another thread
    // before that caller has unlocked: wait for it, or its unlock would touch a
    // destroyed mutex (abseil aborts: "Mutex unlocked when destroyed or not locked").
    // After FinishLocked no caller touches the reader past its unlock.
    { absl::MutexLock wait_for_finisher(&mu_); }
    delete this;
  }

  // Ends the stream with `status` if it writes a file of `upload_id`: now if it waits
  // for a message, else once the message at hand is consumed.
  void EndIfUpload(const std::string& upload_id, const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    if (finished_ || upload_id_ != upload_id) return;
    if (waiting_since_ == absl::InfiniteFuture()) {
      end_status_ = status;
    } else {
      FinishLocked(ToGrpcStatus(status));
    }
  }

  // Ends the stream if it has waited for its next message since before `cutoff`.
  bool EndIfIdleSince(absl::Time cutoff, absl::Duration bound) {
    absl::MutexLock lock(&mu_);
    if (finished_ || waiting_since_ >= cutoff) return false;
    FinishLocked(ToGrpcStatus(api_errors::PutFileIdle(file_, bound)));
    return true;
  }

 private:
  void ReadNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    waiting_since_ = absl::Now();
    StartRead(&request_);
  }

  // The message at hand is bytes only, and the sink appends them quickly. Called with
  // no read pending and no pool task: the only user of sink_ then.
  bool Quick() const {
    return sink_ != nullptr && !request_.has_header() &&
           request_.existing_chunk().empty() && request_.existing_chunks().empty() &&
           request_.final_chunked_sha256().empty() &&
           sink_->QuickAppend(request_.data().size());
  }

  // Consumes the message read (`ok`; else the stream ended), then reads the next one
  // or finishes. `inline_turn`: on gRPC's thread, holding the streams' inline turn,
  // given back before the next read (whose OnReadDone may run at once elsewhere).
  void Handle(bool ok, bool inline_turn) {
    if (!ok) {
      FinishStream();
      return;
    }
    bytes_in_ += static_cast<int64_t>(request_.ByteSizeLong());
    absl::Status status = Consume();
    // The message's bytes are in the sink now. Clear keeps the data string's capacity
    // (within the stream's reservation of one message), so the next message is parsed
    // into it rather than into a fresh allocation of its size (issue 17).
    request_.Clear();
    if (inline_turn) streams_->EndInlineTurn();
    absl::MutexLock lock(&mu_);
    if (!status.ok()) {
      FinishLocked(ToGrpcStatus(status));
    } else if (!end_status_.ok()) {
      FinishLocked(ToGrpcStatus(end_status_));
    } else {
      ReadNextLocked();
    }
  }

  // Runs while no read is pending (on the pool, or inline): the only user of sink_ then.
  absl::Status Consume() {
    if (sink_ == nullptr) {
      if (!request_.has_header()) {
        return absl::InvalidArgumentError(
            "the first PutFile message must carry the header (upload_id, name, offset)");
      }
      CallScope scope;
      scope.action = Action::kWrite;
      scope.upload_id = request_.header().upload_id();
      absl::StatusOr<std::string> principal = guard_->Authorize(ctx_, scope);
      if (!principal.ok()) return principal.status();
      absl::StatusOr<std::unique_ptr<FileSink>> sink =
          service_->OpenFileSink(request_.header(), guard_->ReuseScope(*principal));
      if (!sink.ok()) return sink.status();
      absl::MutexLock lock(&mu_);
      sink_ = std::move(*sink);
      upload_id_ = request_.header().upload_id();
      file_ = request_.header().name();
    } else if (request_.has_header()) {
      return absl::InvalidArgumentError(
          "only the first PutFile message may carry a header; open one stream per file");
    }
    return AppendPutFileMessage(*sink_, request_);
  }

  // The client finished sending (or went away).
  void FinishStream() {
    absl::MutexLock lock(&mu_);
    if (sink_ == nullptr) {
      FinishLocked(
          grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                       "PutFile stream ended before its header; send the header first"));
      return;
    }
    absl::StatusOr<v1::PutFileResponse> result = sink_->Finish();
    if (result.ok()) *response_ = std::move(*result);
    FinishLocked(ToGrpcStatus(result.status()));
  }

  // Finishes the call once; the sink goes first, which releases the file's lock.
  void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (finished_) return;
    finished_ = true;
    sink_.reset();
    guard_->Done("PutFile", status, start_, bytes_in_,
                 status.ok() ? static_cast<int64_t>(response_->ByteSizeLong()) : 0);
    Finish(status);
  }

  PutFileStreams* const streams_;
  grpc::CallbackServerContext* const ctx_;
  RegistryService* const service_;
  ThreadPool* const pool_;
  CallGuard* const guard_;
  v1::PutFileResponse* const response_;
  const absl::Time start_ = absl::Now();
  StreamSlot slot_;
  MemoryReservation memory_;
  // Used by one pool task at a time (messages are consumed one by one).
  int64_t bytes_in_ = 0;
  v1::PutFileRequest request_;

  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  // When the pending read was started; InfiniteFuture while a message is consumed.
  absl::Time waiting_since_ ABSL_GUARDED_BY(mu_) = absl::InfiniteFuture();
  // Set by EndIfUpload while a message is consumed: the status to end with after it.
  absl::Status end_status_ ABSL_GUARDED_BY(mu_);
  // Known once the header opened the sink.
  std::string upload_id_ ABSL_GUARDED_BY(mu_);
  std::string file_ ABSL_GUARDED_BY(mu_);
  // Written under mu_; read by Consume without it (no read is pending then, so
  // nothing else touches it).
  std::unique_ptr<FileSink> sink_;
};

grpc::ServerReadReactor<v1::PutFileRequest>* PutFileStreams::Start(
    grpc::CallbackServerContext* ctx, RegistryService* service, ThreadPool* pool,
    CallGuard* guard, v1::PutFileResponse* response) {
  return new PutFileReader(this, ctx, service, pool, guard, response);
}

bool PutFileStreams::TakeInlineTurn() {
  bool free = false;
  return inline_turn_.compare_exchange_strong(free, true, std::memory_order_acquire);
}

void PutFileStreams::EndInlineTurn() {
  inline_turn_.store(false, std::memory_order_release);
}

void PutFileStreams::Add(PutFileReader* reader) {
  absl::MutexLock lock(&mu_);
  readers_.insert(reader);
}

void PutFileStreams::Remove(PutFileReader* reader) {
  absl::MutexLock lock(&mu_);
  readers_.erase(reader);
}

void PutFileStreams::EndUpload(const std::string& upload_id, const absl::Status& status) {
  absl::MutexLock lock(&mu_);
  for (PutFileReader* r : readers_) r->EndIfUpload(upload_id, status);
}

int PutFileStreams::EndIdle(absl::Time now) {
  if (idle_timeout_ <= absl::ZeroDuration()) return 0;
  int ended = 0;
  absl::MutexLock lock(&mu_);
  for (PutFileReader* r : readers_) {
    ended += r->EndIfIdleSince(now - idle_timeout_, idle_timeout_) ? 1 : 0;
  }
  return ended;
}

}  // namespace mgreg
