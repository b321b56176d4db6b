// SavedModels through the C++ client against the real server (issue 15): every real
// SavedModel of the test data pushed from its version directory, listed with its kind,
// its MetaGraphDef fetched by tags with each export filter (equal to the offline export
// of the project's rule tests, rules D1 and D7 of EXPORT_SEMANTICS.md), restored
// byte-identical as TF Serving's BASE/<version>/; the bad inputs a push refuses; a sync
// switching versions while a reader of the base path never sees an incomplete one.
#include <algorithm>
#include <atomic>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "client/sync.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/export_options.h"
#include "metagraph/metagraph_io.h"
#include "metagraph/saved_model.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr const char* kRealSavedModels[] = {
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_cpu/00000123",  // TF 1.14, asset, Snappy index
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_gpu/00000123",  // TF 1.9, GPU devices
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_tf2_cpu/00000123",   // TF 2.14, fingerprint.pb, Snappy
    "tf2onnx/tests/models/regression/saved_model",  // no version in its name, 2 savers
};

// The export filters of the rule tests, one at a time.
std::vector<v1::GraphOptions> EachFilter() {
  std::vector<v1::GraphOptions> out(6);
  out[1].set_clear_devices(true);
  out[2].set_strip_default_attrs(true);
  out[3].set_clear_extraneous_savers(true);
  out[4].set_has_collection_list(true);
  out[4].add_collection_list("variables");
  out[5].set_as_text(true);
  return out;
}

class SavedModelClientTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }

  // A copy of a SavedModel tree at tmp/<name>, with extra files.
  std::string CopyModel(const std::string& rel, const std::string& name,
                        const std::map<std::string, std::string>& extra = {}) {
    const std::string dir = tmp_.Join(name);
    fs::create_directories(fs::path(dir).parent_path());
    fs::copy(TestdataPath(rel), dir, fs::copy_options::recursive);
    for (const auto& [file, content] : extra) {
      fs::create_directories((fs::path(dir) / file).parent_path());
      WriteFileOrDie((fs::path(dir) / file).string(), content);
    }
    return dir;
  }
};

TEST_F(SavedModelClientTest,
       EveryRealSavedModelPushesListsExportsByTagsAndRestoresIdentical) {
  MGREG_REQUIRE_TESTDATA();
  int n = 0;
  for (const char* rel : kRealSavedModels) {
    SCOPED_TRACE(rel);
    const std::string model = absl::StrCat("sm", n++);
    const std::string dir = TestdataPath(rel);
    PushOptions push;
    if (fs::path(dir).filename() == "saved_model") push.step = 7;
    absl::StatusOr<v1::Checkpoint> pushed = client_->Push(model, dir, push);
    ASSERT_TRUE(pushed.ok()) << pushed.status();
    EXPECT_EQ(pushed->kind(), v1::SAVED_MODEL);
    const int64_t step = push.step.value_or(123);  // "00000123" is version 123
    EXPECT_EQ(pushed->step(), step);
    const std::map<std::string, std::string> tree = ReadTree(dir);
    EXPECT_EQ(pushed->files_size(), static_cast<int>(tree.size()));

    absl::StatusOr<v1::ListCheckpointsResponse> listed =
        client_->ListCheckpoints(model, 10, "");
    ASSERT_TRUE(listed.ok()) << listed.status();
    ASSERT_EQ(listed->checkpoints_size(), 1);
    EXPECT_EQ(listed->checkpoints(0).kind(), v1::SAVED_MODEL);

    // No option: saved_model.pb verbatim (D1).
    std::string bytes;
    absl::StatusOr<v1::MetaGraphInfo> info =
        client_->FetchGraphBytes(model, step, v1::GraphOptions(), &bytes);
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(bytes, tree.at("saved_model.pb"));
    EXPECT_EQ(info->kind(), v1::SAVED_MODEL);

    // Each tag set with each filter: what the offline export gives (D7: deterministic).
    absl::StatusOr<tensorflow::SavedModel> saved_model = ParseSavedModel(bytes);
    ASSERT_TRUE(saved_model.ok());
    for (const tensorflow::MetaGraphDef& mg : saved_model->meta_graphs()) {
      const std::vector<std::string> tags(mg.meta_info_def().tags().begin(),
                                          mg.meta_info_def().tags().end());
      for (v1::GraphOptions options : EachFilter()) {
        SCOPED_TRACE(options.ShortDebugString());
        for (const std::string& t : tags) options.add_tags(t);
        std::string got;
        info = client_->FetchGraphBytes(model, step, options, &got);
        ASSERT_TRUE(info.ok()) << info.status();
        absl::StatusOr<SavedModelExport> expected =
            ExportSavedModelGraph(bytes, tags, ExportOptionsFromApi(options));
        ASSERT_TRUE(expected.ok()) << expected.status();
        EXPECT_EQ(got, expected->result.bytes);
        EXPECT_EQ(std::vector<std::string>(info->tags().begin(), info->tags().end()),
                  expected->tags);
      }
    }

    // Restore: BASE/<step>/ holds exactly the pushed tree; nothing else is left in BASE.
    const std::string base = tmp_.Join(absl::StrCat("models/", model));
    RestoreOptions restore;
    absl::StatusOr<v1::Checkpoint> restored =
        client_->RestoreSavedModel(model, base, restore);
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ(ReadTree(absl::StrCat(base, "/", step)), tree);
    std::vector<std::string> entries;
    for (const auto& e : fs::directory_iterator(base)) {
      entries.push_back(e.path().filename().string());
    }
    EXPECT_EQ(entries, std::vector<std::string>{std::to_string(step)});
    // Again: already there, left as is; Restore on a SavedModel step does the same.
    restored = client_->Restore(model, base, restore);
    ASSERT_TRUE(restored.ok()) << restored.status();
    EXPECT_EQ(ReadTree(absl::StrCat(base, "/", step)), tree);
  }
}

TEST_F(SavedModelClientTest, PushRefusesWhatIsNotACheckpointNorASavedModel) {
  MGREG_REQUIRE_TESTDATA();
  const std::string empty = tmp_.Join("empty/5");
  fs::create_directories(empty);
  absl::StatusOr<v1::Checkpoint> r = client_->Push("m", empty, PushOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("saved_model.pb"));
  EXPECT_THAT(r.status().message(), HasSubstr("saved_model.pbtxt"));
  EXPECT_THAT(r.status().message(), HasSubstr(".index"));

  // A symbolic link out of the directory is refused; one inside it is a file like any.
  const std::string outside = tmp_.Join("secret.txt");
  WriteFileOrDie(outside, "not part of the model");
  const std::string linked = CopyModel(kRealSavedModels[1], "linked/9");
  fs::create_symlink(outside, linked + "/assets.extra");
  r = client_->Push("m", linked, PushOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("outside the SavedModel directory"));
  fs::remove(linked + "/assets.extra");
  fs::create_symlink(linked + "/saved_model.pb", linked + "/copy.pb");
  r = client_->Push("m", linked, PushOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->step(), 9);

  // Variables without their index: refused naming the missing file.
  const std::string partial = CopyModel(kRealSavedModels[1], "partial/3");
  fs::remove(partial + "/variables/variables.index");
  r = client_->Push("m", partial, PushOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(r.status().message(), HasSubstr("variables/variables.index"));

  // No version in the directory's name: --step is asked for.
  r = client_->Push("m", TestdataPath(kRealSavedModels[3]), PushOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("--step"));

  // The same version with other content: ALREADY_EXISTS, unless overwrite.
  const std::string other =
      CopyModel(kRealSavedModels[1], "other/9", {{"assets.extra/x", "1"}});
  r = client_->Push("m", other, PushOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kAlreadyExists) << r.status();
  PushOptions overwrite;
  overwrite.overwrite = true;
  r = client_->Push("m", other, overwrite);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<v1::ListCheckpointsResponse> listed =
      client_->ListCheckpoints("m", 10, "");
  ASSERT_TRUE(listed.ok());
  ASSERT_EQ(listed->checkpoints_size(), 1);  // nothing of the refused pushes is visible
  EXPECT_EQ(listed->checkpoints(0).files_size(),
            static_cast<int>(ReadTree(other).size()));
}

TEST_F(SavedModelClientTest, RestoreKeepsTheNewestVersionsAndReplacesAChangedOneWhole) {
  MGREG_REQUIRE_TESTDATA();
  for (int v = 1; v <= 3; ++v) {
    const std::string dir = CopyModel(kRealSavedModels[0], absl::StrCat("export/", v),
                                      {{"assets.extra/version", std::to_string(v)}});
    ASSERT_TRUE(client_->Push("m", dir, PushOptions()).ok());
  }
  const std::string base = tmp_.Join("models/m");
  fs::create_directories(base + "/other");  // not a version: never touched
  RestoreOptions options;
  options.keep_last = 2;
  for (int v = 1; v <= 3; ++v) {
    options.step = v;
    ASSERT_TRUE(client_->RestoreSavedModel("m", base, options).ok());
  }
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(base)) {
    entries.push_back(e.path().filename().string());
  }
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"2", "3", "other"}));
  // A local version with other content is replaced by the stored one.
  WriteFileOrDie(base + "/3/assets.extra/version", "tampered");
  WriteFileOrDie(base + "/3/stray", "x");
  options.step = 3;
  ASSERT_TRUE(client_->RestoreSavedModel("m", base, options).ok());
  EXPECT_EQ(ReadFileOrDie(base + "/3/assets.extra/version"), "3");
  EXPECT_FALSE(fs::exists(base + "/3/stray"));
  // Graph options do not apply to a SavedModel restore.
  options.graph_options.set_clear_devices(true);
  absl::Status s = client_->RestoreSavedModel("m", base, options).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("--tags"));
}

// Every version directory a reader lists is complete: saved_model.pb and the variables
// bundle with their full sizes, the asset present.
TEST_F(SavedModelClientTest, SyncSwitchesVersionsWhileAReaderNeverSeesAnIncompleteOne) {
  MGREG_REQUIRE_TESTDATA();
  const std::map<std::string, std::string> tree =
      ReadTree(TestdataPath(kRealSavedModels[0]));
  auto push = [&](int v) {
    const std::string dir = CopyModel(kRealSavedModels[0], absl::StrCat("export/", v),
                                      {{"assets.extra/version", std::to_string(v)}});
    absl::StatusOr<v1::Checkpoint> r = client_->Push("m", dir, PushOptions());
    ASSERT_TRUE(r.ok()) << r.status();
  };
  push(1);
  const std::string base = tmp_.Join("models/m");
  SyncOptions options;
  options.keep = 2;
  absl::Mutex mu;
  std::vector<int64_t> switches;
  options.on_switch = [&](const v1::Checkpoint& c) {
    absl::MutexLock lock(&mu);
    switches.push_back(c.step());
  };
  CheckpointSync sync(client_.get(), "m", base, options);
  absl::Status run_status;
  std::thread runner([&]() { run_status = sync.Run(); });

  std::atomic<bool> stop{false};
  std::atomic<int> looks{0};
  std::vector<std::string> incomplete;
  std::thread reader([&]() {
    while (!stop.load()) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(base, ec)) {
        const std::string name = e.path().filename().string();
        if (name[0] == '.') continue;  // staging: not a version for TF Serving
        const fs::path v = e.path();
        bool complete = true;
        for (const auto& [file, content] : tree) {
          std::error_code fec;
          if (fs::file_size(v / file, fec) != content.size() || fec) complete = false;
        }
        std::error_code vec;
        if (!fs::exists(v / "assets.extra/version", vec)) complete = false;
        // A version removed while being looked at is gone whole, not incomplete.
        if (!complete && fs::exists(v, vec)) incomplete.push_back(name);
        ++looks;
      }
    }
  });
  auto wait = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto done = [&]() { return switches.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(30));
  };
  ASSERT_TRUE(wait(1));
  for (int v = 2; v <= 5; ++v) {
    push(v);
    ASSERT_TRUE(wait(static_cast<size_t>(v))) << "no switch to version " << v;
  }
  stop = true;
  reader.join();
  sync.Stop();
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  EXPECT_GT(looks.load(), 0);
  EXPECT_TRUE(incomplete.empty()) << "incomplete version seen: " << incomplete.front();
  EXPECT_EQ(switches, (std::vector<int64_t>{1, 2, 3, 4, 5}));
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(base)) {
    entries.push_back(e.path().filename().string());
  }
  std::sort(entries.begin(), entries.end());
  EXPECT_EQ(entries, (std::vector<std::string>{"4", "5"}));
  EXPECT_EQ(ReadFileOrDie(base + "/5/assets.extra/version"), "5");
}

TEST_F(SavedModelClientTest, SyncFollowingAnAliasThatMovesBackServesItsVersion) {
  MGREG_REQUIRE_TESTDATA();
  for (int v = 1; v <= 2; ++v) {
    const std::string dir = CopyModel(kRealSavedModels[2], absl::StrCat("export/", v),
                                      {{"assets.extra/version", std::to_string(v)}});
    ASSERT_TRUE(client_->Push("m", dir, PushOptions()).ok());
  }
  const std::string base = tmp_.Join("models/m");
  SyncOptions options;
  options.alias = "production";
  options.keep = 2;
  CheckpointSync sync(client_.get(), "m", base, options);
  ASSERT_TRUE(client_->SetAlias("m", "production", 2).ok());
  ASSERT_TRUE(sync.SyncOnce().ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());
  absl::StatusOr<v1::Checkpoint> synced = sync.SyncOnce();
  ASSERT_TRUE(synced.ok()) << synced.status();
  // TF Serving serves the highest version: only the alias's is left.
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(base)) {
    entries.push_back(e.path().filename().string());
  }
  EXPECT_EQ(entries, std::vector<std::string>{"1"});
}

}  // namespace
}  // namespace mgreg::testing
