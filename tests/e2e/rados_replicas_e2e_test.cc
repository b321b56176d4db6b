// Several mgreg-server processes on one RADOS pool and namespace (--store rados), as
// replicas behind a Service: each serves what was pushed through another, restores are
// byte-identical, deletes and admin check see one registry. Needs a Ceph cluster
// (MGREG_TEST_CEPH_CONF; scripts/test.sh starts one), else skipped with a message.
// Upload sessions live in the pool: a multi-writer upload spreads over the replicas, and
// a worker whose replica was killed mid-file resumes on another.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RadosReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MGREG_REQUIRE_CEPH();
    ns_ = absl::StrCat("e2e-", std::random_device{}(), "-", std::random_device{}());
    for (int i = 0; i < 3; ++i) {
      replicas_.push_back(std::make_unique<ServerProcess>(Args(kTestCephPool)));
      ASSERT_TRUE(replicas_.back()->started());
      EXPECT_THAT(replicas_.back()->ready_line(),
                  HasSubstr(absl::StrCat("RADOS pool mgreg namespace ", ns_)));
    }
  }

  std::vector<std::string> Args(const std::string& pool) const {
    // An upload TTL of 20 s gives a PutFile stream a writer lease of 10 s (ttl / 2);
    // the GC's bounds are short, as a test cluster's.
    return {"--store",
            "rados",
            "--ceph-conf",
            TestCephConf(),
            "--rados-pool",
            pool,
            "--rados-namespace",
            ns_,
            "--upload-ttl",
            "20s",
            "--rados-gc-period",
            "1s",
            "--rados-dead-after",
            "5s",
            "--rados-session-expiry",
            "60s"};
  }
  CommandResult Mgreg(int replica, std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinaryPath("client/mgreg"), "--server", replicas_[replica]->address()});
    return RunCommand(args);
  }
  std::string MakeCheckpoint(int64_t step) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join("train");
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = 2;
    spec.tensors = {{"dense/w", FloatBytes(300000, step), 0},
                    {"dense/b", FloatBytes(10, step + 1), 1}};
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  // The bytes replica `r` says it holds of `file` in upload `id` (-1 if it cannot say).
  int64_t Held(int r, const std::string& id, const std::string& file) {
    CommandResult status = Mgreg(r, {"upload", "status", id});
    if (status.exit_code != 0) return -1;
    for (absl::string_view line : absl::StrSplit(status.out, '\n')) {
      // "  NAME   HELD / SIZE bytes"
      std::vector<std::string> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
      int64_t held = 0;
      if (words.size() >= 2 && words[0] == file && absl::SimpleAtoi(words[1], &held)) {
        return held;
      }
    }
    return -1;
  }

  TempDir tmp_;
  std::string ns_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
};

TEST_F(RadosReplicasTest, EveryReplicaServesWhatAnotherCommitted) {
  const std::string prefix = MakeCheckpoint(1000);
  CommandResult push = Mgreg(0, {"push", "resnet", prefix});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  for (int r : {1, 2}) {
    CommandResult latest = Mgreg(r, {"latest", "resnet"});
    ASSERT_EQ(latest.exit_code, 0) << latest.err;
    EXPECT_THAT(latest.out, HasSubstr("step       1000"));
  }
  // Restore through another replica: every file byte-identical to what was pushed.
  const std::string out = tmp_.Join("serving");
  CommandResult restore = Mgreg(2, {"restore", "resnet", out});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  for (const char* suffix :
       {".index", ".data-00000-of-00002", ".data-00001-of-00002", ".meta"}) {
    EXPECT_EQ(ReadFileOrDie(out + "/model.ckpt-1000" + suffix),
              ReadFileOrDie(prefix + suffix))
        << suffix;
  }
  // A second step through another replica; the same .meta is deduplicated.
  ASSERT_EQ(Mgreg(1, {"push", "resnet", MakeCheckpoint(2000)}).exit_code, 0);
  EXPECT_THAT(Mgreg(0, {"latest", "resnet"}).out, HasSubstr("step       2000"));
  CommandResult del = Mgreg(2, {"delete", "resnet", "2000"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_THAT(Mgreg(0, {"latest", "resnet"}).out, HasSubstr("step       1000"));
  CommandResult check = Mgreg(1, {"admin", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("consistent: 1 models, 1 steps"));
}

// A chief begins on replica 0, two workers put their shards through replicas 1 and 2,
// the chief puts the rest and commits on replica 0; each replica sees the same upload.
TEST_F(RadosReplicasTest, AMultiWriterUploadSpreadsOverTheReplicas) {
  const std::string prefix = MakeCheckpoint(3000);
  const std::string data0 = prefix + ".data-00000-of-00002";
  const std::string data1 = prefix + ".data-00001-of-00002";
  CommandResult begin = Mgreg(0, {"upload", "begin", "resnet", "3000", prefix + ".index",
                                  data0, data1, prefix + ".meta"});
  ASSERT_EQ(begin.exit_code, 0) << begin.err;
  const std::string id(absl::StripAsciiWhitespace(begin.out));
  CommandResult w0 = Mgreg(1, {"upload", "put", id, data0});
  ASSERT_EQ(w0.exit_code, 0) << w0.err;
  CommandResult w1 = Mgreg(2, {"upload", "put", id, data1});
  ASSERT_EQ(w1.exit_code, 0) << w1.err;
  // Every replica sees what the others hold.
  for (int r : {0, 1, 2}) {
    EXPECT_EQ(Held(r, id, "data-00000-of-00002"),
              static_cast<int64_t>(fs::file_size(data0)));
    EXPECT_EQ(Held(r, id, "data-00001-of-00002"),
              static_cast<int64_t>(fs::file_size(data1)));
  }
  // Not complete yet, said by any replica.
  CommandResult early = Mgreg(2, {"upload", "commit", id});
  EXPECT_NE(early.exit_code, 0);
  EXPECT_THAT(early.err, HasSubstr("is not complete; send: index"));
  ASSERT_EQ(
      Mgreg(0, {"upload", "put", id, prefix + ".index", prefix + ".meta"}).exit_code, 0);
  CommandResult commit = Mgreg(0, {"upload", "commit", id});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  // The upload is over on every replica.
  CommandResult again = Mgreg(1, {"upload", "commit", id});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("does not exist"));
  const std::string out = tmp_.Join("serving");
  ASSERT_EQ(Mgreg(1, {"restore", "resnet", out}).exit_code, 0);
  for (const char* suffix :
       {".index", ".data-00000-of-00002", ".data-00001-of-00002", ".meta"}) {
    EXPECT_EQ(ReadFileOrDie(out + "/model.ckpt-3000" + suffix),
              ReadFileOrDie(prefix + suffix))
        << suffix;
  }
  CommandResult check = Mgreg(2, {"admin", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("consistent: 1 models, 1 steps"));
}

// A worker streams a shard through replica 1, which is SIGKILLed mid-file; once the dead
// stream's lease ran out, the worker resumes through replica 2 at the bytes held, and the
// chief commits through replica 0.
TEST_F(RadosReplicasTest, AWorkerResumesOnAnotherReplicaAfterItsReplicaDied) {
  CheckpointSpec spec;
  spec.directory = tmp_.Join("big");
  fs::create_directories(spec.directory);
  spec.step = 4000;
  spec.num_shards = 2;
  spec.tensors = {{"w", FloatBytes(2 << 20, 3), 0},
                  {"b", FloatBytes(10, 4), 1}};  // 8 MiB
  spec.meta = SmallMetaGraphBytes();
  const std::string prefix = WriteCheckpoint(spec);
  const std::string data0 = prefix + ".data-00000-of-00002";
  const std::string bytes = ReadFileOrDie(data0);
  CommandResult begin =
      Mgreg(0, {"upload", "begin", "big", "4000", prefix + ".index", data0,
                prefix + ".data-00001-of-00002", prefix + ".meta"});
  ASSERT_EQ(begin.exit_code, 0) << begin.err;
  const std::string id(absl::StripAsciiWhitespace(begin.out));

  // 5 MiB of the shard through replica 1, which is killed with the stream open. A stream
  // saves its file's chunks in the store in batches (every 32 chunks, or once a second
  // has passed when a chunk arrives): the pause before the fifth MiB makes that one save
  // all five, which the other replicas then see.
  auto channel =
      grpc::CreateChannel(replicas_[1]->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Registry::NewStub(channel);
  grpc::ClientContext ctx;
  v1::PutFileResponse response;
  auto writer = stub->PutFile(&ctx, &response);
  v1::PutFileRequest m;
  m.mutable_header()->set_upload_id(id);
  m.mutable_header()->set_name("data-00000-of-00002");
  constexpr int64_t kSent = 5 << 20;
  for (int64_t pos = 0; pos < kSent; pos += 1 << 20) {
    if (pos == kSent - (1 << 20)) absl::SleepFor(absl::Milliseconds(1500));
    m.set_data(bytes.substr(static_cast<size_t>(pos), 1 << 20));
    ASSERT_TRUE(writer->Write(m));
    m.clear_header();
  }
  int64_t held = 0;
  for (int i = 0; i < 200 && held < kSent; ++i) {
    held = Held(2, id, "data-00000-of-00002");
    if (held < kSent) absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(held, kSent) << "replica 2 never saw what replica 1 staged";
  replicas_[1]->Stop(SIGKILL);
  (void)writer->Finish();  // the replica is gone

  // The worker retries through replica 2: refused while the dead stream's lease runs.
  const absl::Time killed = absl::Now();
  CommandResult put;
  do {
    put = Mgreg(2, {"upload", "put", id, data0});
    if (put.exit_code != 0) {
      ASSERT_THAT(put.err, HasSubstr("being written by another stream")) << put.err;
      absl::SleepFor(absl::Milliseconds(500));
    }
  } while (put.exit_code != 0 && absl::Now() - killed < absl::Seconds(40));
  ASSERT_EQ(put.exit_code, 0) << put.err;
  std::cout << "resumed on another replica " << absl::FormatDuration(absl::Now() - killed)
            << " after the first one was killed (writer lease 10 s)\n";
  ASSERT_EQ(Mgreg(0, {"upload", "put", id, prefix + ".index",
                      prefix + ".data-00001-of-00002", prefix + ".meta"})
                .exit_code,
            0);
  CommandResult commit = Mgreg(0, {"upload", "commit", id});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  const std::string out = tmp_.Join("serving");
  ASSERT_EQ(Mgreg(2, {"restore", "big", out}).exit_code, 0);
  EXPECT_EQ(ReadFileOrDie(out + "/" + fs::path(data0).filename().string()), bytes);
  CommandResult check = Mgreg(2, {"admin", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("consistent: 1 models, 1 steps"));
}

TEST_F(RadosReplicasTest, AMissingPoolStopsTheServerWithAClearError) {
  std::vector<std::string> argv = {BinaryPath("server/mgreg-server"), "--listen",
                                   "127.0.0.1:0"};
  for (const std::string& a : Args("no-such-pool")) argv.push_back(a);
  CommandResult r = RunCommand(argv);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("'no-such-pool' does not exist"));
  EXPECT_THAT(r.err, HasSubstr(TestCephConf()));
  // A GC bound that is not a positive duration.
  argv.push_back("--rados-gc-period=-1s");
  r = RunCommand(argv);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.err, HasSubstr("--rados-gc-period must be a positive duration"));
}

}  // namespace
}  // namespace mgreg::testing
