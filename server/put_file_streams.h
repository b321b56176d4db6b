// PutFile streams in flight (issue 11 item 8). A writer that stops sending holds its
// file's lock ("being written by another stream") for as long as its stream is open,
// and a half-open connection keeps it open for ever without keepalive. So the server
// ends a stream that has waited for its next message longer than an idle bound, and
// the streams writing files of an upload that was aborted or expired; either way the
// file lock is released and the writer is told why.
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_PUT_FILE_STREAMS_H_
#define MGREG_SERVER_PUT_FILE_STREAMS_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mgreg/v1/registry.pb.h"
#include "server/call_guard.h"
#include "server/core/registry_service.h"
#include "server/thread_pool.h"

namespace mgreg {

class PutFileReader;

class PutFileStreams {
 public:
  // `idle_timeout`: a stream waiting longer for its next message is ended
  // DEADLINE_EXCEEDED (by EndIdle); zero = never.
  explicit PutFileStreams(absl::Duration idle_timeout) : idle_timeout_(idle_timeout) {}
  PutFileStreams(const PutFileStreams&) = delete;
  PutFileStreams& operator=(const PutFileStreams&) = delete;

  // The reactor of one PutFile call; it feeds the messages into a FileSink of
  // `service`, on `pool` (a message of bytes the sink appends quickly, FileSink::
  // QuickAppend, on gRPC's thread: one stream at a time), authorized and recorded by
  // `guard`. All must outlive the call.
  grpc::ServerReadReactor<v1::PutFileRequest>* Start(grpc::CallbackServerContext* ctx,
                                                     RegistryService* service,
                                                     ThreadPool* pool, CallGuard* guard,
                                                     v1::PutFileResponse* response);

  // Ends, with `status`, every stream writing a file of `upload_id` (the upload was
  // aborted or expired). A stream busy with a message ends when it is done with it.
  void EndUpload(const std::string& upload_id, const absl::Status& status);
  // Ends every stream that has waited for its next message longer than the idle bound,
  // as of `now`. Returns how many it ended.
  int EndIdle(absl::Time now);

  absl::Duration idle_timeout() const { return idle_timeout_; }

 private:
  friend class PutFileReader;
  void Add(PutFileReader* reader);
  void Remove(PutFileReader* reader);
  // The one turn to consume a message on gRPC's thread: true if taken (then given back
  // by EndInlineTurn), false if another stream holds it.
  bool TakeInlineTurn();
  void EndInlineTurn();

  const absl::Duration idle_timeout_;
  std::atomic<bool> inline_turn_{false};
  absl::Mutex mu_;
  // Readers from construction until OnDone; a reader is not deleted while listed.
  absl::flat_hash_set<PutFileReader*> readers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace mgreg

#endif  // MGREG_SERVER_PUT_FILE_STREAMS_H_
