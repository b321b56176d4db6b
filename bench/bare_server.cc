#include "bench/bare_server.h"

#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>

#include "common/mutex_mode.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg::bench {
namespace {

constexpr size_t kMessageBytes = 1u << 20;

// Streams `size` bytes from `payload`, one 1 MiB message per write.
class BareFileWriter : public grpc::ServerWriteReactor<v1::FileChunk> {
 public:
  BareFileWriter(const std::string* payload, int64_t size)
      : payload_(payload), size_(size) {
    Next();
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
      return;
    }
    Next();
  }
  void OnDone() override { delete this; }

 private:
  void Next() {
    if (sent_ >= size_) {
      Finish(grpc::Status::OK);
      return;
    }
    const size_t n = static_cast<size_t>(
        std::min<int64_t>(static_cast<int64_t>(kMessageBytes), size_ - sent_));
    message_.Clear();
    message_.set_offset(sent_);
    message_.set_data(payload_->data(), n);
    sent_ += static_cast<int64_t>(n);
    StartWrite(&message_);
  }

  const std::string* const payload_;
  const int64_t size_;
  int64_t sent_ = 0;
  v1::FileChunk message_;
};

class BareRegistry final : public v1::Registry::CallbackService {
 public:
  BareRegistry(std::map<std::string, int64_t> sizes, v1::Checkpoint latest)
      : sizes_(std::move(sizes)),
        latest_(std::move(latest)),
        payload_(kMessageBytes, '\x5a') {
    for (size_t i = 0; i < payload_.size(); ++i) payload_[i] = static_cast<char>(i * 131);
  }

  grpc::ServerWriteReactor<v1::FileChunk>* ReadFile(
      grpc::CallbackServerContext* /*ctx*/, const v1::ReadFileRequest* request) override {
    auto it = sizes_.find(request->name());
    return new BareFileWriter(&payload_, it == sizes_.end() ? 0 : it->second);
  }

  grpc::ServerUnaryReactor* GetLatestCheckpoint(grpc::CallbackServerContext* ctx,
                                                const v1::GetLatestCheckpointRequest*,
                                                v1::Checkpoint* response) override {
    *response = latest_;
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  const std::map<std::string, int64_t> sizes_;
  const v1::Checkpoint latest_;
  std::string payload_;
};

}  // namespace

int RunBareServer(int argc, char** argv) {
  // As mgreg-server's main: the floor runs gRPC's locks as the server does.
  TurnOffMutexDeadlockDetection();
  std::map<std::string, int64_t> sizes;
  v1::Checkpoint latest;
  for (int i = 0; i + 1 < argc; ++i) {
    const std::string flag = argv[i];
    const std::string value = argv[i + 1];
    if (flag == "--file") {
      const size_t eq = value.rfind('=');
      sizes[value.substr(0, eq)] = std::stoll(value.substr(eq + 1));
      ++i;
    } else if (flag == "--latest") {
      std::ifstream in(value, std::ios::binary);
      if (!latest.ParseFromIstream(&in)) {
        std::fprintf(stderr, "bare server: cannot parse %s\n", value.c_str());
        return 2;
      }
      ++i;
    }
  }
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGTERM);
  sigaddset(&stop, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  BareRegistry service(std::move(sizes), std::move(latest));
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.SetMaxSendMessageSize(16 << 20);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(stderr, "bare server: cannot listen\n");
    return 2;
  }
  std::printf("bare server listening on 127.0.0.1:%d\n", port);
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  server->Shutdown();
  return 0;
}

int BareServerOrBenchmark(int argc, char** argv, int (*bench_main)(int, char**)) {
  if (argc >= 2 && std::string(argv[1]) == "--bare-server") {
    return RunBareServer(argc - 2, argv + 2);
  }
  return bench_main(argc, argv);
}

}  // namespace mgreg::bench
