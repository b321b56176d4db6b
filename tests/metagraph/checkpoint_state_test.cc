#include "metagraph/checkpoint_state.h"

#include <cmath>
#include <limits>
#include <string>

#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataPath;

constexpr char kTictactoe[] = "tictactoe/tf_ckpts/checkpoint";
constexpr char kTfx[] =
    "tfx/tfx/components/testdata/trainer/current/Format-Serving/checkpoint";
constexpr char kTf2onnx[] = "tf2onnx/tests/models/regression/checkpoint/checkpoint";
constexpr char kT2t[] = "t2t/tensor2tensor/test_data/transformer_test_ckpt/checkpoint";
constexpr char kTfAbsolute[] =
    "tf/tensorflow/cc/saved_model/testdata/half_plus_two/variables/checkpoint";

TEST(CheckpointStateTest, EveryRealStateFileParsesAndFormatsBackByteForByte) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : {kTictactoe, kTfx, kTf2onnx, kT2t, kTfAbsolute}) {
    SCOPED_TRACE(rel);
    const std::string text = ReadFileOrDie(TestdataPath(rel));
    auto state = ParseCheckpointState(text);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(FormatCheckpointState(*state), text);
  }
}

TEST(CheckpointStateTest, CheckpointManagerStateHasTimestampsForEveryPath) {
  MGREG_REQUIRE_TESTDATA();
  auto state = ParseCheckpointState(ReadFileOrDie(TestdataPath(kTictactoe)));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->model_checkpoint_path(), "ckpt-19");
  ASSERT_EQ(state->all_model_checkpoint_paths_size(), 3);
  EXPECT_EQ(state->all_model_checkpoint_paths(0), "ckpt-17");
  ASSERT_EQ(state->all_model_checkpoint_timestamps_size(), 3);
  EXPECT_DOUBLE_EQ(state->all_model_checkpoint_timestamps(0), 1673735799.685766);
  EXPECT_DOUBLE_EQ(state->last_preserved_timestamp(), 1673735591.495455);
}

TEST(CheckpointStateTest, AbsoluteAndRelativePathsAreKeptAsWritten) {
  MGREG_REQUIRE_TESTDATA();
  auto abs_state = ParseCheckpointState(ReadFileOrDie(TestdataPath(kTfAbsolute)));
  ASSERT_TRUE(abs_state.ok()) << abs_state.status();
  EXPECT_EQ(abs_state->model_checkpoint_path(),
            "/tmp/saved_model/half_plus_two/saved_model_variables");
  auto rel_state = ParseCheckpointState(ReadFileOrDie(TestdataPath(kTf2onnx)));
  ASSERT_TRUE(rel_state.ok()) << rel_state.status();
  EXPECT_EQ(rel_state->model_checkpoint_path(), "model");
}

TEST(CheckpointStateTest, MadeSaverStateEqualsTheFileTensorFlowWrote) {
  MGREG_REQUIRE_TESTDATA();
  auto state = MakeCheckpointState({"model.ckpt-0", "model.ckpt-999", "model.ckpt-1000"});
  EXPECT_EQ(FormatCheckpointState(state), ReadFileOrDie(TestdataPath(kTfx)));
}

TEST(CheckpointStateTest, MadeCheckpointManagerStateEqualsTheFileTensorFlowWrote) {
  MGREG_REQUIRE_TESTDATA();
  auto state = MakeCheckpointState(
      {"ckpt-17", "ckpt-18", "ckpt-19"},
      {1673735799.685766, 1673735913.342593, 1673736140.596798}, 1673735591.495455);
  EXPECT_EQ(FormatCheckpointState(state), ReadFileOrDie(TestdataPath(kTictactoe)));
}

TEST(CheckpointStateTest, MadeStateNamesTheLastPrefixAsModelCheckpointPath) {
  auto state = MakeCheckpointState({"a-1", "a-2"});
  EXPECT_EQ(state.model_checkpoint_path(), "a-2");
  EXPECT_EQ(state.all_model_checkpoint_paths_size(), 2);
  EXPECT_EQ(state.all_model_checkpoint_timestamps_size(), 0);
  EXPECT_EQ(FormatCheckpointState(state),
            "model_checkpoint_path: \"a-2\"\n"
            "all_model_checkpoint_paths: \"a-1\"\n"
            "all_model_checkpoint_paths: \"a-2\"\n");
}

TEST(CheckpointStateTest, MadeStateWithoutPrefixesIsEmpty) {
  EXPECT_EQ(FormatCheckpointState(MakeCheckpointState({})), "");
}

TEST(CheckpointStateTest, DoublesFormatLikePythonRepr) {
  struct Case {
    double value;
    const char* text;
  };
  for (const Case& c : std::initializer_list<Case>{
           {0.0, "0.0"},
           {-0.0, "-0.0"},
           {1.0, "1.0"},
           {123.0, "123.0"},
           {0.1, "0.1"},
           {-2.5, "-2.5"},
           {0.0001, "0.0001"},
           {0.00001, "1e-05"},
           {1.5e-7, "1.5e-07"},
           {1234567890123456.0, "1234567890123456.0"},
           {1e16, "1e+16"},
           {1.5e16, "1.5e+16"},
           {1e100, "1e+100"},
           {1673735799.685766, "1673735799.685766"},
           {std::numeric_limits<double>::infinity(), "inf"},
           {-std::numeric_limits<double>::infinity(), "-inf"},
           {std::nan(""), "nan"},
       }) {
    auto state = MakeCheckpointState({}, {c.value});
    const std::string want =
        std::string("all_model_checkpoint_timestamps: ") + c.text + "\n";
    EXPECT_EQ(FormatCheckpointState(state), want) << c.text;
  }
}

TEST(CheckpointStateTest, ZeroLastPreservedTimestampIsNotWrittenLikeAnyProto3Default) {
  EXPECT_EQ(FormatCheckpointState(MakeCheckpointState({}, {}, 0.0)), "");
  EXPECT_EQ(FormatCheckpointState(MakeCheckpointState({}, {}, 2.5)),
            "last_preserved_timestamp: 2.5\n");
}

TEST(CheckpointStateTest, FormattedStateParsesBackToTheSameValues) {
  auto state = MakeCheckpointState({"/tmp/x y/\"quoted\"\n-1", "caf\xc3\xa9-2"},
                                   {0.1, 1e-300}, 1e300);
  const std::string text = FormatCheckpointState(state);
  auto back = ParseCheckpointState(text);
  ASSERT_TRUE(back.ok()) << back.status() << "\n" << text;
  EXPECT_EQ(back->SerializeAsString(), state.SerializeAsString());
  // Non-ASCII bytes are octal-escaped, as Python's text_format does by default.
  EXPECT_NE(text.find("caf\\303\\251-2"), std::string::npos) << text;
}

TEST(CheckpointStateTest, RepeatedSingularFieldKeepsTheLastValue) {
  auto state = ParseCheckpointState(
      "model_checkpoint_path: \"a\"\nmodel_checkpoint_path: \"b\"\n");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->model_checkpoint_path(), "b");
}

TEST(CheckpointStateTest, SyntaxErrorIsInvalidArgumentWithLineNumber) {
  auto state = ParseCheckpointState(
      "model_checkpoint_path: \"a\"\nall_model_checkpoint_paths \"b\"\n");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(state.status().message().find("line 2"), std::string::npos) << state.status();
}

TEST(CheckpointStateTest, UnknownFieldIsInvalidArgumentWithLineNumber) {
  auto state = ParseCheckpointState("model_checkpoint_path: \"a\"\n\nlatest: \"b\"\n");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(state.status().message().find("line 3"), std::string::npos) << state.status();
}

TEST(CheckpointStateTest, EmptyFileIsInvalidArgument) {
  EXPECT_EQ(ParseCheckpointState("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointStateTest, StateWithoutModelCheckpointPathIsInvalidArgument) {
  auto state = ParseCheckpointState("all_model_checkpoint_paths: \"a\"\n");
  EXPECT_EQ(state.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(state.status().message().find("model_checkpoint_path"), std::string::npos);
}

}  // namespace
}  // namespace mgreg
