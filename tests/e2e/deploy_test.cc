// deploy/ and the Dockerfile against the real binaries: the YAML lints, and the flags,
// ports, probes and config paths the manifests use are what mgreg-server accepts.
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::BinaryPath;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::RunCommand;
using ::mgreg::testing::ServerProcess;
using ::mgreg::testing::TempDir;
using ::testing::HasSubstr;

std::string Source(const std::string& relative) {
  const char* dir = std::getenv("MGREG_SOURCE_DIR");
  return absl::StrCat(dir != nullptr ? dir : ".", "/", relative);
}

// The "- --flag=value" items of the first list under `key:` in a YAML file.
std::vector<std::string> FlagList(const std::string& yaml, const std::string& key) {
  std::vector<std::string> out;
  bool in = false;
  for (absl::string_view line : absl::StrSplit(yaml, '\n')) {
    absl::string_view t = absl::StripAsciiWhitespace(line);
    if (!in) {
      in = t == key + ":";
      continue;
    }
    if (!absl::ConsumePrefix(&t, "- ")) break;
    out.emplace_back(absl::StripAsciiWhitespace(t));
  }
  return out;
}

std::map<std::string, std::string> FlagMap(const std::vector<std::string>& flags) {
  std::map<std::string, std::string> out;
  for (const std::string& f : flags) {
    std::pair<std::string, std::string> kv = absl::StrSplit(f, absl::MaxSplits('=', 1));
    out[kv.first] = kv.second;
  }
  return out;
}

std::string Port(const std::string& host_port) {
  return host_port.substr(host_port.rfind(':') + 1);
}

// All values of `key: value` lines (after `key:`), in order.
std::vector<std::string> Values(const std::string& yaml, const std::string& key) {
  std::vector<std::string> out;
  std::regex re("^\\s*-?\\s*" + key + ":\\s*\"?([^\"\\s]+)\"?\\s*$");
  for (absl::string_view piece : absl::StrSplit(yaml, '\n')) {
    const std::string line(piece);
    std::smatch m;
    if (std::regex_match(line, m, re)) out.push_back(m[1]);
  }
  return out;
}

// Runs mgreg-server with `flags` (the config and data dir mapped to this checkout and
// a temp dir) and --check-config.
void ExpectServerAccepts(const std::vector<std::string>& flags, const std::string& what) {
  TempDir tmp;
  std::vector<std::string> argv = {BinaryPath("server/mgreg-server")};
  for (const std::string& f : flags) {
    if (absl::StartsWith(f, "--config=")) {
      EXPECT_EQ(f, "--config=/etc/mgreg/mgreg.textproto") << what;
      argv.push_back("--config=" + Source("deploy/mgreg.textproto"));
    } else if (absl::StartsWith(f, "--data-dir=")) {
      argv.push_back("--data-dir=" + tmp.Join("data"));
    } else {
      argv.push_back(f);
    }
  }
  argv.push_back("--check-config");
  auto r = RunCommand(argv);
  EXPECT_EQ(r.exit_code, 0) << what << ": " << r.err;
  EXPECT_THAT(r.out, HasSubstr("configuration OK")) << what;
}

TEST(DeployTest, YamlPassesYamllint) {
  if (::access("/usr/bin/yamllint", X_OK) != 0) {
    GTEST_SKIP() << "yamllint not installed (scripts/install-deps.sh test installs it)";
  }
  auto r = RunCommand({"/usr/bin/yamllint", "--strict", "-c", Source("deploy/.yamllint"),
                       Source("deploy")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(DeployTest, PrometheusConfigIsValidAndScrapesTheMetricsPort) {
  const std::string prom = ReadFileOrDie(Source("deploy/prometheus/prometheus.yml"));
  EXPECT_THAT(prom, HasSubstr("\"mgreg:9464\""));
  if (::access("/usr/bin/promtool", X_OK) != 0) {
    GTEST_SKIP() << "promtool not installed (scripts/install-deps.sh test installs it)";
  }
  auto r = RunCommand({"/usr/bin/promtool", "check", "config",
                       Source("deploy/prometheus/prometheus.yml")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST(DeployTest, ExampleConfigPassesCheckConfig) {
  auto r = RunCommand({BinaryPath("server/mgreg-server"), "--config",
                       Source("deploy/mgreg.textproto"), "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("3 token(s)"));
}

TEST(DeployTest, StatefulSetFlagsPortsProbesAndMountsMatchTheServer) {
  const std::string sts = ReadFileOrDie(Source("deploy/k8s/statefulset.yaml"));
  const std::vector<std::string> args = FlagList(sts, "args");
  ASSERT_FALSE(args.empty());
  ExpectServerAccepts(args, "statefulset args");
  std::map<std::string, std::string> flags = FlagMap(args);
  const std::string grpc_port = Port(flags.at("--listen"));
  const std::string metrics_port = Port(flags.at("--metrics-listen"));

  const std::vector<std::string> container_ports = Values(sts, "containerPort");
  EXPECT_THAT(container_ports, ::testing::ElementsAre(grpc_port, metrics_port));
  // Both probes are native gRPC probes on the API port.
  std::regex probe(
      "(readiness|liveness)Probe:\\s*\\n\\s*grpc:\\s*\\n\\s*port:\\s*(\\d+)");
  int probes = 0;
  for (std::sregex_iterator it(sts.begin(), sts.end(), probe), end; it != end; ++it) {
    EXPECT_EQ((*it)[2].str(), grpc_port) << (*it)[1].str() << " probe";
    ++probes;
  }
  EXPECT_EQ(probes, 2);
  EXPECT_THAT(Values(sts, "prometheus.io/port"), ::testing::ElementsAre(metrics_port));
  // The data dir is the PVC's mount; the config file is in the ConfigMap's mount.
  const std::vector<std::string> mounts = Values(sts, "mountPath");
  EXPECT_THAT(mounts, ::testing::Contains(flags.at("--data-dir")));
  const std::string config = flags.at("--config");
  EXPECT_THAT(mounts, ::testing::Contains(config.substr(0, config.rfind('/'))));
  EXPECT_THAT(sts, HasSubstr("volumeClaimTemplates:"));
  EXPECT_THAT(sts, HasSubstr("runAsNonRoot: true"));

  const std::string svc = ReadFileOrDie(Source("deploy/k8s/service.yaml"));
  EXPECT_THAT(Values(svc, "port"), ::testing::ElementsAre(grpc_port, metrics_port));
}

TEST(DeployTest, RadosDeploymentFlagsPortsProbesAndMountsMatchTheServer) {
  const std::string dep = ReadFileOrDie(Source("deploy/k8s/rados/deployment.yaml"));
  EXPECT_THAT(dep, HasSubstr("kind: Deployment"));
  const std::vector<std::string> args = FlagList(dep, "args");
  ASSERT_FALSE(args.empty());
  ExpectServerAccepts(args, "rados deployment args");
  std::map<std::string, std::string> flags = FlagMap(args);
  EXPECT_EQ(flags["--store"], "rados");
  EXPECT_FALSE(flags["--rados-pool"].empty());
  EXPECT_EQ(flags.count("--data-dir"), 0u) << "the replicas keep nothing locally";
  const std::string grpc_port = Port(flags.at("--listen"));
  const std::string metrics_port = Port(flags.at("--metrics-listen"));
  EXPECT_THAT(Values(dep, "containerPort"),
              ::testing::ElementsAre(grpc_port, metrics_port));
  std::regex probe(
      "(readiness|liveness)Probe:\\s*\\n\\s*grpc:\\s*\\n\\s*port:\\s*(\\d+)");
  int probes = 0;
  for (std::sregex_iterator it(dep.begin(), dep.end(), probe), end; it != end; ++it) {
    EXPECT_EQ((*it)[2].str(), grpc_port) << (*it)[1].str() << " probe";
    ++probes;
  }
  EXPECT_EQ(probes, 2);
  EXPECT_THAT(Values(dep, "prometheus.io/port"), ::testing::ElementsAre(metrics_port));
  // More than one replica, and no volume of their own.
  const std::vector<std::string> replicas = Values(dep, "replicas");
  ASSERT_EQ(replicas.size(), 1u);
  EXPECT_GE(std::stoi(replicas[0]), 2);
  EXPECT_THAT(dep, ::testing::Not(HasSubstr("volumeClaimTemplates")));
  EXPECT_THAT(dep, ::testing::Not(HasSubstr("persistentVolumeClaim")));
  // ceph.conf and the keyring come from the Secret, mounted where --ceph-conf points and
  // where librados looks for client.<user>'s keyring.
  const std::vector<std::string> mounts = Values(dep, "mountPath");
  const std::string conf = flags.at("--ceph-conf");
  EXPECT_EQ(conf.substr(0, conf.rfind('/')), "/etc/ceph");
  EXPECT_THAT(mounts, ::testing::Contains("/etc/ceph"));
  EXPECT_THAT(Values(dep, "secretName"), ::testing::ElementsAre("mgreg-ceph"));
  EXPECT_THAT(dep,
              HasSubstr(absl::StrCat("ceph.", flags.at("--rados-user"), ".keyring")));
  const std::string config = flags.at("--config");
  EXPECT_THAT(mounts, ::testing::Contains(config.substr(0, config.rfind('/'))));
  EXPECT_THAT(dep, HasSubstr("runAsNonRoot: true"));

  const std::string svc = ReadFileOrDie(Source("deploy/k8s/rados/service.yaml"));
  EXPECT_THAT(Values(svc, "port"), ::testing::ElementsAre(grpc_port, metrics_port));
  EXPECT_THAT(Values(svc, "name"), ::testing::Contains("mgreg-rados"));
}

TEST(DeployTest, ComposeFlagsAndMountsMatchTheServer) {
  const std::string compose = ReadFileOrDie(Source("deploy/compose.yaml"));
  const std::vector<std::string> command = FlagList(compose, "command");
  ASSERT_FALSE(command.empty());
  ExpectServerAccepts(command, "compose command");
  std::map<std::string, std::string> flags = FlagMap(command);
  EXPECT_THAT(compose, HasSubstr(absl::StrCat(
                           "- ./mgreg.textproto:", flags.at("--config"), ":ro")));
  EXPECT_THAT(compose, HasSubstr(absl::StrCat("- mgreg-data:", flags.at("--data-dir"))));
  EXPECT_THAT(compose,
              HasSubstr(absl::StrCat("\"", Port(flags.at("--metrics-listen")), ":",
                                     Port(flags.at("--metrics-listen")), "\"")));
}

TEST(DeployTest, DockerfileEntrypointCmdAndHealthcheckWork) {
  const std::string dockerfile = ReadFileOrDie(Source("Dockerfile"));
  EXPECT_THAT(dockerfile, HasSubstr("ENTRYPOINT [\"mgreg-server\"]"));
  EXPECT_THAT(dockerfile, HasSubstr("VOLUME [\"/var/lib/mgreg\"]"));
  EXPECT_THAT(dockerfile, HasSubstr("USER 10001:10001"));
  EXPECT_THAT(dockerfile, HasSubstr("scripts/install-deps.sh build"));
  EXPECT_THAT(dockerfile, HasSubstr("scripts/build.sh"));
  EXPECT_THAT(dockerfile, HasSubstr("install-deps.sh runtime"));
  // CMD's flags are accepted by the server.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(dockerfile, m, std::regex("\\nCMD \\[([^\\]]*)\\]")));
  std::vector<std::string> cmd;
  for (absl::string_view item : absl::StrSplit(m[1].str(), ',')) {
    item = absl::StripAsciiWhitespace(item);
    absl::ConsumePrefix(&item, "\"");
    absl::ConsumeSuffix(&item, "\"");
    cmd.emplace_back(item);
  }
  ExpectServerAccepts(cmd, "Dockerfile CMD");
  // HEALTHCHECK runs `mgreg --server 127.0.0.1:8470 admin health`: exit 0 on SERVING.
  ASSERT_THAT(
      dockerfile,
      HasSubstr(
          "CMD [\"mgreg\", \"--server\", \"127.0.0.1:8470\", \"admin\", \"health\"]"));
  ServerProcess server({"--in-memory"});
  ASSERT_TRUE(server.started());
  auto r = RunCommand(
      {BinaryPath("client/mgreg"), "--server", server.address(), "admin", "health"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "SERVING\n");
  server.Stop(SIGTERM);
  r = RunCommand(
      {BinaryPath("client/mgreg"), "--server", server.address(), "admin", "health"});
  EXPECT_EQ(r.exit_code, 1);
}

// Every base image is a build arg with a registry default declared before the first
// FROM, and scripts/docker-test.sh (which builds on a debootstrap base, no registry)
// passes each of them, so that test builds the same stages a registry build would.
TEST(DeployTest, DockerfileBaseImagesAreBuildArgsThatDockerTestPasses) {
  const std::string dockerfile = ReadFileOrDie(Source("Dockerfile"));
  const std::string docker_test = ReadFileOrDie(Source("scripts/docker-test.sh"));
  const std::string head = dockerfile.substr(0, dockerfile.find("\nFROM "));
  std::regex from_arg(R"(\nFROM \$\{([A-Z_]+)\} AS ([a-z]+))");
  std::vector<std::string> stages;
  for (std::sregex_iterator it(dockerfile.begin(), dockerfile.end(), from_arg), end;
       it != end; ++it) {
    const std::string arg = (*it)[1].str();
    stages.push_back((*it)[2].str());
    EXPECT_THAT(head, HasSubstr(absl::StrCat("\nARG ", arg, "=debian:12")))
        << arg << " needs a default before the first FROM";
    EXPECT_THAT(docker_test, HasSubstr(absl::StrCat("--build-arg \"", arg, "=")))
        << "scripts/docker-test.sh does not pass " << arg;
  }
  EXPECT_THAT(stages, ::testing::ElementsAre("build", "runtime"));
  // The container test runs on loopback with ports the server picks.
  EXPECT_THAT(docker_test, HasSubstr("--network=host"));
  EXPECT_THAT(docker_test, HasSubstr("--listen=127.0.0.1:0"));
}

}  // namespace
}  // namespace mgreg
