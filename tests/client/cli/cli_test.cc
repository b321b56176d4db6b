// The mgreg CLI against the real mgreg-server process: restore and sync never delete
// checkpoints the directory's `checkpoint` file lists outside it (issue 11, item 2);
// offline export with no option is verbatim (issue 18, item 6); `upload begin` learns
// the basename from the first file put (item 7); `list` on an empty registry (item 8).
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Runs argv with its stdout and stderr on a new pseudo-terminal; returns what it wrote.
std::string RunOnTerminal(const std::vector<std::string>& argv, int* exit_code) {
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  if (pid == 0) {
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(master, buffer, sizeof(buffer));
    if (n > 0) {
      out.append(buffer, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      break;  // EIO once the child has exited and closed the terminal
    }
  }
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--data-dir", tmp_.Join("data")});
    ASSERT_TRUE(server_->started());
  }

  std::vector<std::string> MgregArgv(std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinaryPath("client/mgreg"), "--server", server_->address()});
    return args;
  }
  CommandResult Mgreg(std::vector<std::string> args) {
    return RunCommand(MgregArgv(args));
  }

  std::string MakeCheckpoint(const std::string& dir, int64_t step) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(dir);
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = 2;
    spec.tensors = {{"dense/w", FloatBytes(5000, static_cast<uint32_t>(step)), 0},
                    {"dense/b", FloatBytes(10, 2), 1}};
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  // A serving directory whose `checkpoint` file lists a checkpoint elsewhere (absolute,
  // as TensorFlow writes by default, and through ".."), one inside it by absolute path
  // and one by relative path; returns the prefix elsewhere.
  std::string CopiedTrainingDirectory(const std::string& dir) {
    const std::string elsewhere = MakeCheckpoint("elsewhere", 1);
    fs::create_directories(dir);
    const std::string inside_abs = MakeCheckpoint("serving", 5);
    const std::string inside_rel = MakeCheckpoint("serving", 6);
    EXPECT_EQ(fs::path(inside_abs).parent_path(), fs::path(dir));
    WriteFileOrDie(
        dir + "/checkpoint",
        FormatCheckpointState(MakeCheckpointState(
            {elsewhere, "../elsewhere/model.ckpt-1", inside_abs, "model.ckpt-6"})));
    return elsewhere;
  }
  void ExpectIntact(const std::string& prefix) {
    for (const char* suffix :
         {".index", ".meta", ".data-00000-of-00002", ".data-00001-of-00002"}) {
      EXPECT_TRUE(fs::exists(prefix + suffix)) << prefix << suffix;
    }
  }

  TempDir tmp_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, RestoreKeepNeverDeletesCheckpointsListedOutsideTheDirectory) {
  ASSERT_EQ(Mgreg({"push", "m", MakeCheckpoint("train", 7)}).exit_code, 0);
  const std::string dir = tmp_.Join("serving");
  const std::string elsewhere = CopiedTrainingDirectory(dir);
  CommandResult restore = Mgreg({"restore", "m", dir, "--keep", "1"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  ExpectIntact(elsewhere);
  // The directory's own entries counted and went; the state lists only step 7.
  EXPECT_FALSE(fs::exists(dir + "/model.ckpt-5.index"));
  EXPECT_FALSE(fs::exists(dir + "/model.ckpt-6.data-00000-of-00002"));
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(state->all_model_checkpoint_paths(), ElementsAre("model.ckpt-7"));
  // Said once, naming the entries left alone.
  EXPECT_THAT(restore.err, HasSubstr("warning: " + dir +
                                     "/checkpoint listed 2 checkpoint(s) "
                                     "outside " +
                                     dir));
  EXPECT_THAT(restore.err, HasSubstr(elsewhere));
  EXPECT_EQ(restore.err.find("warning"), restore.err.rfind("warning"));
  CommandResult again = Mgreg({"restore", "m", dir, "--keep", "1"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.err, Not(HasSubstr("warning")));
  ExpectIntact(elsewhere);
}

TEST_F(CliTest, SyncNeverDeletesCheckpointsListedOutsideTheDirectory) {
  ASSERT_EQ(Mgreg({"push", "m", MakeCheckpoint("train", 7)}).exit_code, 0);
  const std::string dir = tmp_.Join("serving");
  const std::string elsewhere = CopiedTrainingDirectory(dir);
  CommandResult sync = Mgreg({"sync", "m", dir, "--once", "--keep", "1"});
  ASSERT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_THAT(sync.out, HasSubstr("switched to m step 7"));
  EXPECT_THAT(sync.err, HasSubstr("mgreg sync: warning: "));
  ExpectIntact(elsewhere);
  EXPECT_FALSE(fs::exists(dir + "/model.ckpt-5.index"));
}

TEST_F(CliTest, SyncOnceReportsAStepWhoseGraphCannotBeFilteredAndKeepsTheCurrentOne) {
  ASSERT_EQ(Mgreg({"push", "m", MakeCheckpoint("train", 1)}).exit_code, 0);
  const std::string dir = tmp_.Join("serving");
  ASSERT_EQ(Mgreg({"sync", "m", dir, "--once", "--clear-extraneous-savers"}).exit_code,
            0);
  // Step 2's saver_def names an op TensorFlow's clear_extraneous_savers raises on.
  const std::string bad = MakeCheckpoint("train", 2);
  tensorflow::MetaGraphDef graph = SmallMetaGraph();
  graph.mutable_saver_def()->set_restore_op_name("save/restore_all:0:1");
  WriteFileOrDie(bad + ".meta", graph.SerializeAsString());
  ASSERT_EQ(Mgreg({"push", "m", bad}).exit_code, 0);
  CommandResult once = Mgreg({"sync", "m", dir, "--once", "--clear-extraneous-savers"});
  EXPECT_EQ(once.exit_code, 0) << once.err;
  EXPECT_THAT(once.err, HasSubstr("skipping m step 2: FAILED_PRECONDITION"));
  EXPECT_THAT(once.err, HasSubstr(dir + " keeps step 1"));
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-1");
  // A directory serving nothing yet has nothing to keep: that fails.
  CommandResult fresh =
      Mgreg({"sync", "m", tmp_.Join("fresh"), "--once", "--clear-extraneous-savers"});
  EXPECT_EQ(fresh.exit_code, 1);
  EXPECT_THAT(fresh.err, HasSubstr("holds no step yet"));
}

TEST_F(CliTest, OfflineExportWithNoOptionReturnsTheInputVerbatim) {
  // Map entries out of canonical order: "zeta" written before "alpha", as an older
  // TensorFlow may write them. Re-serializing would sort them.
  tensorflow::MetaGraphDef first = SmallMetaGraph();
  first.clear_collection_def();
  (*first.mutable_collection_def())["zeta"].mutable_bytes_list()->add_value("z");
  tensorflow::MetaGraphDef second;
  (*second.mutable_collection_def())["alpha"].mutable_bytes_list()->add_value("a");
  const std::string input = first.SerializeAsString() + second.SerializeAsString();
  tensorflow::MetaGraphDef parsed;
  ASSERT_TRUE(parsed.ParseFromString(input));
  std::string canonical;
  {
    google::protobuf::io::StringOutputStream stream(&canonical);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    ASSERT_TRUE(parsed.SerializeToCodedStream(&coded));
  }
  ASSERT_NE(canonical, input) << "the test graph must not be in canonical order";
  WriteFileOrDie(tmp_.Join("in.meta"), input);

  CommandResult plain =
      Mgreg({"export", tmp_.Join("in.meta"), "-o", tmp_.Join("out.meta")});
  ASSERT_EQ(plain.exit_code, 0) << plain.err;  // rule D1
  EXPECT_EQ(ReadFileOrDie(tmp_.Join("out.meta")), input);
  EXPECT_THAT(plain.out, HasSubstr("collections: alpha,zeta"));
  // An option still filters.
  CommandResult cleared = Mgreg({"export", tmp_.Join("in.meta"), "--clear-devices", "-o",
                                 tmp_.Join("cleared.meta")});
  ASSERT_EQ(cleared.exit_code, 0) << cleared.err;
  EXPECT_NE(ReadFileOrDie(tmp_.Join("cleared.meta")), input);
}

TEST_F(CliTest, UploadBeginWithoutBasenameLearnsItFromTheFirstFilePut) {
  const std::string prefix = MakeCheckpoint("train", 2000);
  CommandResult begin = Mgreg({"upload", "begin", "m", "2000"});
  ASSERT_EQ(begin.exit_code, 0) << begin.err;
  const std::string id = begin.out.substr(0, begin.out.find('\n'));
  // Nothing put yet: nothing to commit; the upload stays open.
  CommandResult early = Mgreg({"upload", "commit", id});
  EXPECT_EQ(early.exit_code, 1);
  EXPECT_THAT(early.err, HasSubstr("FAILED_PRECONDITION"));
  for (const char* suffix : {".data-00000-of-00002", ".data-00001-of-00002", ".index"}) {
    CommandResult put = Mgreg({"upload", "put", id, prefix + suffix});
    ASSERT_EQ(put.exit_code, 0) << put.err;
  }
  // A writer of another prefix is refused.
  WriteFileOrDie(tmp_.Join("train/other.ckpt-2000.meta"), SmallMetaGraphBytes());
  CommandResult other =
      Mgreg({"upload", "put", id, tmp_.Join("train/other.ckpt-2000.meta")});
  EXPECT_EQ(other.exit_code, 1);
  EXPECT_THAT(other.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(other.err, HasSubstr("'model.ckpt'"));
  CommandResult commit = Mgreg({"upload", "commit", id});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  CommandResult latest = Mgreg({"latest", "m"});
  EXPECT_THAT(latest.out, HasSubstr("basename   model.ckpt\n"));
  const std::string dir = tmp_.Join("serving");
  ASSERT_EQ(Mgreg({"restore", "m", dir}).exit_code, 0);
  EXPECT_TRUE(fs::exists(dir + "/model.ckpt-2000.index"));

  // With files, their prefix gives the basename.
  const std::string next = MakeCheckpoint("train", 3000);
  CommandResult with_files =
      Mgreg({"upload", "begin", "m", "3000", next + ".index",
             next + ".data-00000-of-00002", next + ".data-00001-of-00002"});
  ASSERT_EQ(with_files.exit_code, 0) << with_files.err;
  const std::string id2 = with_files.out.substr(0, with_files.out.find('\n'));
  for (const char* suffix : {".data-00000-of-00002", ".data-00001-of-00002", ".index"}) {
    ASSERT_EQ(Mgreg({"upload", "put", id2, next + suffix}).exit_code, 0);
  }
  ASSERT_EQ(Mgreg({"upload", "commit", id2}).exit_code, 0);
  EXPECT_THAT(Mgreg({"latest", "m"}).out, HasSubstr("basename   model.ckpt\n"));
}

TEST_F(CliTest, ListOnAnEmptyRegistrySaysSoOnATerminalOnly) {
  CommandResult piped = Mgreg({"list"});
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, "");  // a script reading the list gets no line
  CommandResult json = Mgreg({"list", "--json"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"models\": []"));
  int exit_code = -1;
  const std::string shown = RunOnTerminal(MgregArgv({"list"}), &exit_code);
  EXPECT_EQ(exit_code, 0) << shown;
  EXPECT_THAT(shown, HasSubstr("no models yet"));
}

}  // namespace
}  // namespace mgreg::testing
