// The real mgreg-server binary as an operator runs it: SIGTERM during an upload,
// restart on the same data, --check-config, the loopback-only default, and a real
// Prometheus scraping /metrics.
#include <fcntl.h>
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"
#include "tests/testing/upload_manifest.h"

namespace mgreg {
namespace {

namespace fs = std::filesystem;
using ::mgreg::testing::BinaryPath;
using ::mgreg::testing::CheckpointSpec;
using ::mgreg::testing::FloatBytes;
using ::mgreg::testing::HttpGet;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::RunCommand;
using ::mgreg::testing::ServerProcess;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::WriteCheckpoint;
using ::mgreg::testing::WriteFileOrDie;
using ::testing::HasSubstr;

// The metrics port named in the server's ready line ("metrics on http://H:P/metrics").
int MetricsPort(const ServerProcess& server) {
  const std::string& line = server.ready_line();
  const size_t at = line.find("/metrics");
  const size_t colon = line.rfind(':', at);
  if (at == std::string::npos || colon == std::string::npos) return 0;
  return std::stoi(line.substr(colon + 1, at - colon - 1));
}

std::unique_ptr<Client> Connect(const std::string& address) {
  ClientOptions o;
  o.target = address;
  o.unary_timeout = absl::Seconds(20);
  return std::move(Client::Connect(o).value());
}

std::string MakeCheckpoint(const TempDir& tmp, int64_t step, size_t floats) {
  CheckpointSpec spec;
  spec.directory = tmp.Join(absl::StrCat("ckpt-", step));
  fs::create_directories(spec.directory);
  spec.step = step;
  spec.num_shards = 2;
  spec.tensors.push_back({"w0", FloatBytes(floats, 1), 0});
  spec.tensors.push_back({"w1", FloatBytes(floats, 2), 1});
  spec.meta = testing::SmallMetaGraphBytes();
  return WriteCheckpoint(spec);
}

double Elapsed(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

TEST(ProductionE2eTest, SigtermDuringAnUploadExitsZeroAndCommitsNothingHalf) {
  TempDir tmp;
  const std::string data = tmp.Join("data");
  const std::string prefix1 = MakeCheckpoint(tmp, 1, 50000);
  const std::string prefix2 = MakeCheckpoint(tmp, 2, 400000);
  {
    ServerProcess server({"--data-dir", data, "--shutdown-deadline", "3s"});
    ASSERT_TRUE(server.started());
    auto client = Connect(server.address());
    ASSERT_TRUE(client->Push("m", prefix1, {}).ok());

    // Step 2: begin the upload, then leave a PutFile stream open mid-file.
    auto local = FindLocalCheckpoint(prefix2);
    ASSERT_TRUE(local.ok()) << local.status();
    auto upload = client->BeginUpload(testing::UploadManifest("m", 2, prefix2));
    ASSERT_TRUE(upload.ok()) << upload.status();
    auto stub = v1::Registry::NewStub(
        grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    v1::PutFileResponse response;
    auto writer = stub->PutFile(&ctx, &response);
    const std::string shard = ReadFileOrDie(local->files.at("data-00001-of-00002"));
    v1::PutFileRequest request;
    request.mutable_header()->set_upload_id(upload->upload_id());
    request.mutable_header()->set_name("data-00001-of-00002");
    request.set_data(shard.substr(0, shard.size() / 2));
    ASSERT_TRUE(writer->Write(request));

    const auto start = std::chrono::steady_clock::now();
    const int status = server.Stop(SIGTERM);
    const double took = Elapsed(start);
    ASSERT_TRUE(WIFEXITED(status)) << "mgreg-server did not exit by itself: " << status;
    EXPECT_EQ(WEXITSTATUS(status), 0);
    EXPECT_LT(took, 3 + 10) << "shutdown overran its 3 s deadline";
    EXPECT_FALSE(writer->Finish().ok());
  }
  // Restart on the same data: step 1 is there, nothing of step 2, no staged bytes.
  ServerProcess server({"--data-dir", data, "--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(server.started());
  auto client = Connect(server.address());
  auto latest = client->GetLatestCheckpoint("m");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), 1);
  EXPECT_EQ(client->GetCheckpoint("m", 2).status().code(), absl::StatusCode::kNotFound);
  const std::string metrics = HttpGet(MetricsPort(server), "/metrics").body;
  EXPECT_THAT(metrics, HasSubstr("mgreg_store_checkpoints 1\n"));
  EXPECT_THAT(metrics, HasSubstr("mgreg_store_staged_chunks 0\n"));
  EXPECT_EQ(WEXITSTATUS(server.Stop(SIGTERM)), 0);
}

TEST(ProductionE2eTest, CheckConfigPointsAtTheLineAtFault) {
  TempDir tmp;
  const std::string path = tmp.Join("bad.textproto");
  WriteFileOrDie(path, "listen: \"127.0.0.1:0\"\nlimits {\n  max_upload_bytes: -5\n}\n");
  auto r =
      RunCommand({BinaryPath("server/mgreg-server"), "--config", path, "--check-config"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(path, ":3:")));

  WriteFileOrDie(path, "listen: \"127.0.0.1:0\"\nunknown_thing: 1\n");
  r = RunCommand({BinaryPath("server/mgreg-server"), "--config", path});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(path, ":2:")));

  WriteFileOrDie(path, "listen: \"127.0.0.1:0\"\nworker_threads: 2\n");
  r = RunCommand({BinaryPath("server/mgreg-server"), "--config", path, "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("configuration OK"));
}

// http2_bdp_probe: the flag given on the command line wins over the file either way,
// and --check-config says which applies.
TEST(ProductionE2eTest, Http2BdpProbeFlagWinsOverTheFile) {
  TempDir tmp;
  const std::string path = tmp.Join("mgreg.textproto");
  const std::string server = BinaryPath("server/mgreg-server");
  auto r = RunCommand({server, "--in-memory", "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("HTTP/2 BDP probing off)"));
  r = RunCommand({server, "--in-memory", "--http2-bdp-probe", "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("HTTP/2 BDP probing on: "));

  WriteFileOrDie(path, "listen: \"127.0.0.1:0\"\nhttp2_bdp_probe: true\n");
  r = RunCommand({server, "--config", path, "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("HTTP/2 BDP probing on: "));
  r = RunCommand({server, "--config", path, "--http2-bdp-probe=false", "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("HTTP/2 BDP probing off)"));

  WriteFileOrDie(path, "listen: \"127.0.0.1:0\"\nhttp2_bdp_probe: false\n");
  r = RunCommand({server, "--config", path, "--http2-bdp-probe=true", "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("HTTP/2 BDP probing on: "));

  WriteFileOrDie(path, "listen: \"127.0.0.1:0\"\nhttp2_bdp_probe: maybe\n");
  r = RunCommand({server, "--config", path, "--check-config"});
  EXPECT_EQ(r.exit_code, 1);
  // protobuf's parser names the position after the bad value (here 3:1).
  EXPECT_THAT(r.err, HasSubstr(absl::StrCat(path, ":")));
  EXPECT_THAT(r.err, HasSubstr("\"http2_bdp_probe\". Value: \"maybe\""));
}

TEST(ProductionE2eTest, WithoutSecurityItServesLoopbackOnlyAndSaysSo) {
  TempDir tmp;
  auto r = RunCommand(
      {BinaryPath("server/mgreg-server"), "--in-memory", "--listen", "0.0.0.0:0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--insecure"));
  // --check-config accepts it with --insecure.
  r = RunCommand({BinaryPath("server/mgreg-server"), "--in-memory", "--listen",
                  "0.0.0.0:0", "--insecure", "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(ProductionE2eTest, CliSpeaksTlsMutualTlsAndTokensToAConfiguredServer) {
  TempDir tmp;
  testing::TestPki pki;
  ASSERT_TRUE(testing::MakePki(tmp, &pki));
  const std::string config = tmp.Join("mgreg.textproto");
  WriteFileOrDie(
      config,
      absl::StrCat("tls {\n  cert_file: \"", tmp.Join("server.pem"), "\"\n  key_file: \"",
                   tmp.Join("server.key"), "\"\n  client_ca_file: \"", tmp.Join("ca.pem"),
                   "\"\n  require_client_cert: true\n}\n",
                   "tokens { name: \"w\" sha256: \"", Sha256Hex("cli-secret"),
                   "\" role: ROLE_WRITER model_prefixes: \"team-a/\" }\n"));
  ServerProcess server({"--in-memory", "--config", config});
  ASSERT_TRUE(server.started());
  const std::string mgreg = BinaryPath("client/mgreg");
  const std::vector<std::string> tls = {
      "--server", server.address(),       "--ca-cert", tmp.Join("ca.pem"),
      "--cert",   tmp.Join("client.pem"), "--key",     tmp.Join("client.key")};
  auto run = [&](std::vector<std::string> env, std::vector<std::string> args) {
    std::vector<std::string> argv = {"/usr/bin/env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(mgreg);
    argv.insert(argv.end(), tls.begin(), tls.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv);
  };
  // Right token (flag or MGREG_TOKEN) on its prefix: the call reaches the registry.
  auto r = run({}, {"--token", "cli-secret", "latest", "team-a/m"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  r = run({"MGREG_TOKEN=cli-secret"}, {"list", "team-a/m"});
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  r = run({"MGREG_TOKEN=cli-secret"}, {"latest", "team-b/m"});
  EXPECT_THAT(r.err, HasSubstr("PERMISSION_DENIED"));
  r = run({}, {"--token", "wrong", "latest", "team-a/m"});
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  EXPECT_THAT(r.err, ::testing::Not(HasSubstr("wrong")));
  r = run({}, {"latest", "team-a/m"});
  EXPECT_THAT(r.err, HasSubstr("UNAUTHENTICATED"));
  // Health needs no token; without the client certificate the handshake fails.
  r = run({}, {"admin", "health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  r = RunCommand({mgreg, "--server", server.address(), "--ca-cert", tmp.Join("ca.pem"),
                  "admin", "health"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
}

TEST(ProductionE2eTest, AdminBackupThenStartingAServerOnTheBackupRestoresEveryStep) {
  TempDir tmp;
  ServerProcess server({"--data-dir", tmp.Join("data")});
  ASSERT_TRUE(server.started());
  auto client = Connect(server.address());
  ASSERT_TRUE(client->Push("m", MakeCheckpoint(tmp, 1, 1000), {}).ok());
  ASSERT_TRUE(client->Push("m", MakeCheckpoint(tmp, 2, 2000), {}).ok());
  const std::string mgreg = BinaryPath("client/mgreg");
  auto r = RunCommand(
      {mgreg, "--server", server.address(), "admin", "backup", tmp.Join("backup")});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("backed up 2 steps"));
  r = RunCommand(
      {mgreg, "--server", server.address(), "admin", "backup", tmp.Join("backup")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("FAILED_PRECONDITION"));

  // The documented restore: start mgreg-server on the backup directory.
  ServerProcess restored({"--data-dir", tmp.Join("backup")});
  ASSERT_TRUE(restored.started());
  for (int step : {1, 2}) {
    r = RunCommand({mgreg, "--server", restored.address(), "restore", "m",
                    tmp.Join(absl::StrCat("out-", step)), "--step", absl::StrCat(step)});
    EXPECT_EQ(r.exit_code, 0) << r.err;
  }
  EXPECT_EQ(WEXITSTATUS(restored.Stop(SIGTERM)), 0);
  EXPECT_EQ(WEXITSTATUS(server.Stop(SIGTERM)), 0);
}

// A child process (Prometheus) stopped with SIGTERM on destruction.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = ::fork();
    if (pid_ == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, STDOUT_FILENO);
      ::dup2(fd, STDERR_FILENO);
      std::vector<char*> c;
      for (const std::string& a : argv) c.push_back(const_cast<char*>(a.c_str()));
      c.push_back(nullptr);
      ::execv(c[0], c.data());
      ::_exit(127);
    }
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status;
      ::waitpid(pid_, &status, 0);
    }
  }

 private:
  pid_t pid_ = -1;
};

TEST(ProductionE2eTest, PrometheusScrapesTheRegistry) {
  if (::access("/usr/bin/prometheus", X_OK) != 0) {
    GTEST_SKIP() << "/usr/bin/prometheus not installed (Debian package prometheus; "
                    "scripts/install-deps.sh test installs it)";
  }
  TempDir tmp;
  ServerProcess server({"--in-memory", "--metrics-listen", "127.0.0.1:0"});
  ASSERT_TRUE(server.started());
  const int metrics_port = MetricsPort(server);
  ASSERT_GT(metrics_port, 0) << server.ready_line();
  // One call so that a per-method series exists too.
  EXPECT_EQ(Connect(server.address())->GetLatestCheckpoint("x").status().code(),
            absl::StatusCode::kNotFound);

  const int prom_port = testing::PickFreePort();
  ASSERT_GT(prom_port, 0);
  WriteFileOrDie(
      tmp.Join("prometheus.yml"),
      absl::StrCat("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                   "scrape_configs:\n  - job_name: mgreg\n"
                   "    static_configs:\n      - targets: ['127.0.0.1:",
                   metrics_port, "']\n"));
  Child prometheus({"/usr/bin/prometheus", "--config.file=" + tmp.Join("prometheus.yml"),
                    "--storage.tsdb.path=" + tmp.Join("tsdb"),
                    absl::StrCat("--web.listen-address=127.0.0.1:", prom_port)},
                   tmp.Join("prometheus.log"));
  const std::string query =
      "/api/v1/"
      "query?query=mgreg_grpc_requests_total%7Bmethod%3D%22GetLatestCheckpoint%22%7D";
  std::string last;
  const auto start = std::chrono::steady_clock::now();
  bool found = false;
  while (!found && Elapsed(start) < 60) {
    testing::HttpResponse r = HttpGet(prom_port, query);
    last = r.body;
    found = r.status == 200 && last.find("\"code\":\"NOT_FOUND\"") != std::string::npos;
    if (!found) std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  EXPECT_TRUE(found) << "Prometheus never returned the mgreg series; last answer: "
                     << last << "\nprometheus log:\n"
                     << ReadFileOrDie(tmp.Join("prometheus.log"));
  // And it saw the target healthy.
  const std::string targets = HttpGet(prom_port, "/api/v1/targets").body;
  EXPECT_THAT(targets, HasSubstr("\"health\":\"up\""));
}

}  // namespace
}  // namespace mgreg
