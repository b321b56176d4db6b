// The server's config file (server/config.h): every field applied, defaults kept, and
// every error naming the file, line and column at fault.
#include "server/config.h"

#include <grpc/grpc.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::TempDir;
using ::mgreg::testing::WriteFileOrDie;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

TEST(ConfigTest, FullConfigApplies) {
  TempDir tmp;
  ServerOptions o;
  const std::string text =
      absl::StrCat(R"(
listen: "0.0.0.0:8470"
data_dir: "/var/lib/mgreg"
metrics_listen: "0.0.0.0:9464"
insecure: true
tokens { name: "ci" sha256: ")",
                   Sha256Hex("t"), R"(" role: ROLE_WRITER model_prefixes: "ci/" }
limits { max_upload_bytes: 1000 max_concurrent_uploads_per_writer: 2 max_message_bytes: 8388608
         max_concurrent_streams: 50 unary_deadline: "2s" max_open_streams: 300 }
retention { max_to_keep: 5 keep_every_n_hours: 2.5 }
export_cache_bytes: 1024
worker_threads: 3
upload_ttl: "15m"
shutdown_deadline: "10s"
min_free_bytes: 1048576
put_idle_timeout: "90s"
keepalive_time: "30s"
http2_bdp_probe: true
)");
  ASSERT_TRUE(ApplyServerConfigText(text, "c.textproto", &o).ok());
  EXPECT_EQ(o.listen_address, "0.0.0.0:8470");
  EXPECT_EQ(o.data_dir, "/var/lib/mgreg");
  EXPECT_EQ(o.metrics_listen_address, "0.0.0.0:9464");
  EXPECT_TRUE(o.insecure);
  EXPECT_EQ(o.tokens.size(), 1);
  EXPECT_EQ(o.limits.max_upload_bytes, 1000);
  EXPECT_EQ(o.limits.max_concurrent_uploads_per_writer, 2);
  EXPECT_EQ(o.max_message_bytes, 8388608);
  EXPECT_EQ(o.max_concurrent_streams, 50);
  EXPECT_EQ(o.limits.unary_deadline, absl::Seconds(2));
  EXPECT_EQ(o.limits.max_open_streams, 300);
  EXPECT_EQ(o.retention_defaults.max_to_keep(), 5);
  EXPECT_EQ(o.service.export_cache_bytes, 1024u);
  EXPECT_EQ(o.worker_threads, 3);
  EXPECT_EQ(o.service.upload_ttl, absl::Minutes(15));
  EXPECT_EQ(o.shutdown_deadline, absl::Seconds(10));
  EXPECT_EQ(o.min_free_bytes, 1048576);
  EXPECT_EQ(o.put_idle_timeout, absl::Seconds(90));
  EXPECT_EQ(o.keepalive_time, absl::Seconds(30));
  EXPECT_TRUE(o.http2_bdp_probe);
  EXPECT_TRUE(ValidateServerOptions(o).ok());
}

TEST(ConfigTest, LimitsDefaultWhenNotConfigured) {
  ServerOptions o;
  ASSERT_TRUE(ApplyServerConfigText("limits { max_upload_bytes: 5 }", "c", &o).ok());
  EXPECT_EQ(o.limits.max_open_streams, 10000);
  EXPECT_EQ(o.max_concurrent_streams, 100);
  EXPECT_EQ(o.limits.unary_deadline, absl::ZeroDuration());
  EXPECT_EQ(o.min_free_bytes, 256ll << 20);
  ServerOptions off;
  ASSERT_TRUE(ApplyServerConfigText("min_free_bytes: -1", "c", &off).ok());
  EXPECT_EQ(off.min_free_bytes, 0);
  absl::Status bad = ApplyServerConfigText("limits { max_open_streams: -1 }", "c", &o);
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.message(), HasSubstr("max_open_streams"));
}

// CallGuard's limits without a transport (the gRPC tests cover them end to end).
TEST(ConfigTest, SyntaxErrorNamesFileLineAndColumn) {
  ServerOptions o;
  absl::Status s = ApplyServerConfigText("listen: \"127.0.0.1:1\"\n\nbogus_field: 3\n",
                                         "mgreg.textproto", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("mgreg.textproto:3:"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("bogus_field"));
}

TEST(ConfigTest, BadTokenNamesItsLine) {
  ServerOptions o;
  const std::string text = absl::StrCat(
      "tokens { name: \"ok\" sha256: \"", Sha256Hex("a"), "\" role: ROLE_READER }\n",
      "# the next token is wrong\n",
      "tokens {\n  name: \"plain\"\n  sha256: \"my-secret\"\n  role: ROLE_WRITER\n}\n");
  absl::Status s = ApplyServerConfigText(text, "c.textproto", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("c.textproto:3:"));
  EXPECT_THAT(std::string(s.message()), HasSubstr("64 lower-case hex"));
}

TEST(ConfigTest, BadDurationAndLimitNameTheirLine) {
  ServerOptions o;
  absl::Status s = ApplyServerConfigText("\nupload_ttl: \"soon\"\n", "c", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("c:2:"));
  s = ApplyServerConfigText("limits {\n  max_upload_bytes: -1\n}\n", "c", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("c:2:"));
}

TEST(ConfigTest, MissingTlsFileIsNotFound) {
  ServerOptions o;
  absl::Status s = ApplyServerConfigText(
      "tls {\n cert_file: \"/nonexistent/cert.pem\"\n key_file: "
      "\"/nonexistent/key.pem\"\n}\n",
      "c", &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(s.message()), HasSubstr("c:2:"));
}

TEST(ConfigTest, PlaintextOnPublicAddressNeedsInsecure) {
  ServerOptions o;
  o.listen_address = "0.0.0.0:8470";
  EXPECT_EQ(ValidateServerOptions(o).code(), absl::StatusCode::kFailedPrecondition);
  o.insecure = true;
  EXPECT_TRUE(ValidateServerOptions(o).ok());
  o.insecure = false;
  o.listen_address = "127.0.0.1:0";
  EXPECT_TRUE(ValidateServerOptions(o).ok());
  EXPECT_TRUE(IsLoopbackAddress("[::1]:80"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:80"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:80"));
}

TEST(ConfigTest, MissingConfigFileIsNotFound) {
  ServerOptions o;
  EXPECT_EQ(ApplyServerConfigFile("/nonexistent/mgreg.textproto", &o).code(),
            absl::StatusCode::kNotFound);
}

TEST(ConfigTest, AFileIsReadAndFieldsItLeavesOutKeepTheirValues) {
  TempDir tmp;
  const std::string path = tmp.path() + "/mgreg.textproto";
  WriteFileOrDie(path, "worker_threads: 7\nlimits { max_open_uploads: 12 }\n");
  ServerOptions o;
  o.listen_address = "127.0.0.1:9999";
  const int64_t open_streams = o.limits.max_open_streams;
  ASSERT_TRUE(ApplyServerConfigFile(path, &o).ok());
  EXPECT_EQ(o.worker_threads, 7);
  EXPECT_EQ(o.limits.max_open_uploads, 12);
  EXPECT_EQ(o.listen_address, "127.0.0.1:9999");
  EXPECT_EQ(o.limits.max_open_streams, open_streams);
}

// http2_bdp_probe: off unless the file turns it on; the file's false leaves an earlier
// true alone like any unset field (the flag, given on the command line, wins: see
// production_e2e_test); a value that is not a bool names its line.
TEST(ConfigTest, Http2BdpProbeIsOffUnlessTurnedOn) {
  ServerOptions o;
  EXPECT_FALSE(o.http2_bdp_probe);
  ASSERT_TRUE(ApplyServerConfigText("worker_threads: 2", "c", &o).ok());
  EXPECT_FALSE(o.http2_bdp_probe);
  ASSERT_TRUE(ApplyServerConfigText("http2_bdp_probe: false", "c", &o).ok());
  EXPECT_FALSE(o.http2_bdp_probe);
  ASSERT_TRUE(ApplyServerConfigText("http2_bdp_probe: true", "c", &o).ok());
  EXPECT_TRUE(o.http2_bdp_probe);
  EXPECT_TRUE(ValidateServerOptions(o).ok());
  ServerOptions bad;
  absl::Status s = ApplyServerConfigText("\nhttp2_bdp_probe: 3\n", "c.textproto", &bad);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("c.textproto:2:"));
  EXPECT_FALSE(bad.http2_bdp_probe);
}

// The one place the setting reaches gRPC: grpc.http2.bdp_probe 0 by default, 1 when on,
// set exactly once; the other transport arguments do not depend on it.
TEST(ConfigTest, Http2ChannelArgumentsProbeOnlyWhenTurnedOn) {
  auto probe = [](const ServerOptions& o) {
    std::vector<int> values;
    for (const auto& [name, value] : Http2ChannelArguments(o)) {
      if (name == GRPC_ARG_HTTP2_BDP_PROBE) values.push_back(value);
    }
    return values;
  };
  ServerOptions o;
  EXPECT_THAT(probe(o), ElementsAre(0));
  const auto off = Http2ChannelArguments(o);
  o.http2_bdp_probe = true;
  EXPECT_THAT(probe(o), ElementsAre(1));
  const auto on = Http2ChannelArguments(o);
  ASSERT_EQ(on.size(), off.size());
  for (size_t i = 0; i < on.size(); ++i) {
    EXPECT_EQ(on[i].first, off[i].first);
    if (on[i].first != GRPC_ARG_HTTP2_BDP_PROBE) {
      EXPECT_EQ(on[i].second, off[i].second) << on[i].first;
    }
  }
  EXPECT_THAT(on, Contains(Pair(GRPC_ARG_MAX_CONCURRENT_STREAMS, 100)));
}

// What --check-config prints (main.cc prints exactly this after "mgreg-server: ").
TEST(ConfigTest, CheckConfigSummarySaysWhetherBdpProbingIsOn) {
  ServerOptions o;
  o.listen_address = "127.0.0.1:8470";
  o.data_dir = "/var/lib/mgreg";
  EXPECT_EQ(CheckConfigSummary(o),
            "configuration OK (listen 127.0.0.1:8470, plaintext, no tokens, data dir "
            "/var/lib/mgreg, HTTP/2 BDP probing off)");
  ASSERT_TRUE(ApplyServerConfigText("metrics_listen: \"127.0.0.1:9464\"\n"
                                    "http2_bdp_probe: true\n",
                                    "c", &o)
                  .ok());
  const std::string on = CheckConfigSummary(o);
  EXPECT_THAT(on, HasSubstr(", metrics 127.0.0.1:9464, HTTP/2 BDP probing on: "));
  EXPECT_THAT(on, HasSubstr("outside the memory budget)"));
}

TEST(ConfigTest, AnErrorInAFileNamesThatFile) {
  TempDir tmp;
  const std::string path = tmp.path() + "/bad.textproto";
  WriteFileOrDie(path, "\n\nworker_threads: \"many\"\n");
  ServerOptions o;
  absl::Status s = ApplyServerConfigFile(path, &o);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr(path + ":3:"));
}

}  // namespace
}  // namespace mgreg
