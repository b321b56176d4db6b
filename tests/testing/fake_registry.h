// A fake mgreg.v1.Registry server for client tests: it answers whatever the test sets,
// including what no real server would (hostile or broken names), on 127.0.0.1:0.
#ifndef MGREG_TESTS_TESTING_FAKE_REGISTRY_H_
#define MGREG_TESTS_TESTING_FAKE_REGISTRY_H_

#include <grpcpp/grpcpp.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg::testing {

// Serves `service` in plaintext on 127.0.0.1 at a port the system picks; sets *address
// to "127.0.0.1:PORT". For the fakes and proxies tests put in place of a registry.
std::unique_ptr<grpc::Server> ServeOnLoopback(grpc::Service* service,
                                              std::string* address);

// Answers GetLatestCheckpoint / GetCheckpoint with one checkpoint (whatever the step
// asked), ReadFile and GetMetaGraph with its files' contents, and WatchCheckpoints with
// PROGRESS followed by the events the test sends. Records what each call carried (token,
// deadline). Thread-safe.
class FakeRegistry final : public v1::Registry::Service {
 public:
  FakeRegistry();
  ~FakeRegistry() override;

  const std::string& address() const { return address_; }

  // The checkpoint answered from now on: `files` by name, each with its real size and
  // SHA-256.
  void Answer(const std::string& model, int64_t step, const std::string& basename,
              const std::map<std::string, std::string>& files);
  // The same, with the FileInfo list given as is (duplicates, odd names).
  void AnswerRaw(const v1::Checkpoint& checkpoint,
                 const std::map<std::string, std::string>& contents);
  // Delivers `event` on every open watch (and on those opened later).
  void SendEvent(const v1::WatchEvent& event);

  // From now on GetLatestCheckpoint and GetCheckpoint answer `status` (OK: the
  // checkpoint again).
  void FailWith(const grpc::Status& status);
  // From now on GetLatestCheckpoint and GetCheckpoint hold each call until its caller
  // gives up (its deadline passes or it cancels); false answers at once again.
  void Stall(bool stall);

  // What one call carried, as the server saw it.
  struct CallSeen {
    std::string method;         // "GetLatestCheckpoint", "ReadFile", ...
    std::string authorization;  // the header's value; empty when none was sent
    bool has_deadline = false;
    absl::Duration time_left;  // when has_deadline: the deadline's distance on arrival
  };
  // Every call so far, oldest first.
  std::vector<CallSeen> calls() const;

  // Calls of GetLatestCheckpoint/GetCheckpoint, and of ReadFile/GetMetaGraph, so far.
  int resolves() const;
  int reads() const;
  // Waits (at most `timeout`) until resolves() >= n; false on timeout.
  bool WaitForResolves(int n, absl::Duration timeout) const;

  grpc::Status GetLatestCheckpoint(grpc::ServerContext* ctx,
                                   const v1::GetLatestCheckpointRequest*,
                                   v1::Checkpoint* out) override;
  grpc::Status GetCheckpoint(grpc::ServerContext* ctx, const v1::GetCheckpointRequest*,
                             v1::Checkpoint* out) override;
  grpc::Status ReadFile(grpc::ServerContext* ctx, const v1::ReadFileRequest* request,
                        grpc::ServerWriter<v1::FileChunk>* writer) override;
  grpc::Status GetMetaGraph(grpc::ServerContext* ctx,
                            const v1::GetMetaGraphRequest* request,
                            grpc::ServerWriter<v1::MetaGraphChunk>* writer) override;
  grpc::Status WatchCheckpoints(grpc::ServerContext* ctx,
                                const v1::WatchCheckpointsRequest* request,
                                grpc::ServerWriter<v1::WatchEvent>* writer) override;

 private:
  void Record(const grpc::ServerContext& ctx, const std::string& method)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The answer of GetLatestCheckpoint/GetCheckpoint: stalls or fails as told.
  grpc::Status Resolve(grpc::ServerContext* ctx, const std::string& method,
                       v1::Checkpoint* out);

  mutable absl::Mutex mu_;
  v1::Checkpoint answer_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> contents_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  grpc::Status fail_with_ ABSL_GUARDED_BY(mu_);
  bool stall_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<CallSeen> calls_ ABSL_GUARDED_BY(mu_);
  int resolves_ ABSL_GUARDED_BY(mu_) = 0;
  int reads_ ABSL_GUARDED_BY(mu_) = 0;
  bool shutting_down_ ABSL_GUARDED_BY(mu_) = false;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
};

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_FAKE_REGISTRY_H_
