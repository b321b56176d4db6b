// The planner on its own, with no backend: a table of cases, each a state before (a
// fake view of records), a request, and the expected transaction or error.
#include "storage/planner.h"

#include <functional>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace mgreg {
namespace {

using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::Event;
using storage::ModelRecord;

constexpr int64_t kNow = 1'700'000'000'000'000;

std::string Hex(char c) { return std::string(64, c); }
std::string Raw(char c) { return std::string(32, c); }

// Records in maps: the state before a plan.
class FakeView : public RecordReader {
 public:
  Head head;
  std::map<std::string, ModelRecord> models;
  std::map<std::pair<std::string, int64_t>, CheckpointRecord> steps;
  std::map<std::string, BlobEntry> blobs;
  std::map<std::string, ChunkEntry> chunks;

  absl::StatusOr<Head> ReadHead() override { return head; }
  absl::StatusOr<std::optional<ModelRecord>> ReadModel(absl::string_view m) override {
    auto it = models.find(std::string(m));
    if (it == models.end()) return std::optional<ModelRecord>();
    return std::optional<ModelRecord>(it->second);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadLatest(
      absl::string_view m) override {
    return ReadCheckpointBelow(m, INT64_MAX);  // no test uses step INT64_MAX
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpoint(absl::string_view m,
                                                                 int64_t step) override {
    auto it = steps.find({std::string(m), step});
    if (it == steps.end()) return std::optional<CheckpointRecord>();
    return std::optional<CheckpointRecord>(it->second);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view m, int64_t below) override {
    std::optional<CheckpointRecord> out;
    for (const auto& [key, r] : steps) {
      if (key.first == m && key.second < below) out = r;
    }
    return out;
  }
  absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) override {
    auto it = blobs.find(std::string(hex));
    if (it == blobs.end()) return std::optional<BlobEntry>();
    return std::optional<BlobEntry>(it->second);
  }
  absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) override {
    auto it = chunks.find(std::string(raw));
    return it == chunks.end() ? ChunkEntry{} : it->second;
  }
};

// A staging area that holds the chunks it is given.
class FakeArea : public BackendStagingArea {
 public:
  explicit FakeArea(std::vector<std::string> held) : held_(std::move(held)) {}
  absl::Status PutChunk(const storage::ChunkRef&, absl::string_view) override {
    return absl::OkStatus();
  }
  absl::StatusOr<bool> HoldExistingChunk(const storage::ChunkRef&) override {
    return true;
  }
  bool Holds(absl::string_view raw) const override {
    for (const std::string& h : held_) {
      if (h == raw) return true;
    }
    return false;
  }
  absl::Status PrepareCommit(const std::vector<const BlobRecord*>&) override {
    return absl::OkStatus();
  }

 private:
  std::vector<std::string> held_;
};

BlobRecord Blob(char hex, std::vector<char> chunks) {
  BlobRecord b;
  b.set_sha256(Hex(hex));
  for (char c : chunks) {
    storage::ChunkRef* r = b.add_chunks();
    r->set_sha256(Raw(c));
    r->set_size(100);
  }
  b.set_size(100 * static_cast<int64_t>(chunks.size()));
  return b;
}

CheckpointRecord Step(int64_t step, char blob, int64_t size) {
  CheckpointRecord r;
  r.set_model("m");
  r.set_step(step);
  r.set_basename("model.ckpt");
  storage::FileRecord* f = r.add_files();
  f->set_name("index");
  f->set_size(size);
  f->set_sha256(Hex(blob));
  r.set_revision(step);
  return r;
}

// Model m: step 1 names blob 'a' (chunk 'x'), step 2 names blob 'b' (chunks 'x', 'y').
// Revision 2, both events retained.
FakeView TwoSteps() {
  FakeView v;
  v.head = Head{2, 1, 1, 2, 2, 2, 200, 0};
  ModelRecord& m = v.models["m"];
  m.set_name("m");
  m.set_latest_step(2);
  m.set_checkpoint_count(2);
  v.steps[{"m", 1}] = Step(1, 'a', 100);
  v.steps[{"m", 2}] = Step(2, 'b', 200);
  v.blobs[Hex('a')] = BlobEntry{Blob('a', {'x'}), 1};
  v.blobs[Hex('b')] = BlobEntry{Blob('b', {'x', 'y'}), 1};
  v.chunks[Raw('x')] = ChunkEntry{2, 100};
  v.chunks[Raw('y')] = ChunkEntry{1, 100};
  return v;
}

const ChunkWrite* FindChunk(const Transaction& t, char c) {
  for (const ChunkWrite& w : t.chunks) {
    if (w.raw == Raw(c)) return &w;
  }
  return nullptr;
}
const BlobWrite* FindBlob(const Transaction& t, char c) {
  for (const BlobWrite& w : t.blobs) {
    if (w.hex == Hex(c)) return &w;
  }
  return nullptr;
}

struct Case {
  std::string name;
  std::function<FakeView()> before;
  int64_t event_window;
  // The plan under test; nullopt: nothing to write.
  std::function<absl::StatusOr<std::optional<Transaction>>(const Planner&, FakeView&)>
      plan;
  absl::StatusCode code;
  std::function<void(const Transaction&)> expect;  // when code is OK and a txn is made
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

absl::StatusOr<std::optional<Transaction>> Wrap(absl::StatusOr<Transaction> t) {
  if (!t.ok()) return t.status();
  return std::optional<Transaction>(std::move(*t));
}

absl::StatusOr<std::optional<Transaction>> Commit(const Planner& p, FakeView& v,
                                                  CommitRequest request,
                                                  const BackendStagingArea* area) {
  NewBlobs new_blobs;
  absl::Status valid = planner::ValidateCommitRequest(request, &new_blobs);
  if (!valid.ok()) return valid;
  absl::StatusOr<CommitPlan> plan = p.PlanCommit(v, request, new_blobs, area, kNow);
  if (!plan.ok()) return plan.status();
  return std::move(plan->txn);
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  cases.push_back({"CommitOfANewModelCreatesItsRecordBlobAndChunks",
                   [] { return FakeView(); }, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(7, 'c', 200);
                     r.record.clear_revision();
                     r.new_blobs.push_back(Blob('c', {'x', 'y'}));
                     FakeArea area({Raw('x'), Raw('y')});
                     return Commit(p, v, r, &area);
                   },
                   absl::StatusCode::kOk,
                   [](const Transaction& t) {
                     EXPECT_EQ(t.model, "m");
                     ASSERT_TRUE(t.model_after.has_value());
                     EXPECT_EQ(t.model_after->latest_step(), 7);
                     EXPECT_EQ(t.model_after->checkpoint_count(), 1);
                     ASSERT_TRUE(t.latest_after.has_value());
                     EXPECT_EQ(t.latest_after->revision(), 1);
                     EXPECT_EQ(t.latest_after->commit_time_micros(), kNow);
                     ASSERT_EQ(t.put_checkpoints.size(), 1u);
                     const BlobWrite* b = FindBlob(t, 'c');
                     ASSERT_NE(b, nullptr);
                     EXPECT_EQ(b->refs_after, 1);
                     EXPECT_TRUE(b->created.has_value());
                     for (char c : {'x', 'y'}) {
                       const ChunkWrite* w = FindChunk(t, c);
                       ASSERT_NE(w, nullptr);
                       EXPECT_EQ(w->refs_after, 1);
                       EXPECT_TRUE(w->release_hold);
                     }
                     EXPECT_EQ(t.head_after.revision, 1);
                     EXPECT_EQ(t.head_after.models, 1);
                     EXPECT_EQ(t.head_after.checkpoints, 1);
                     EXPECT_EQ(t.head_after.blobs, 1);
                     EXPECT_EQ(t.head_after.chunks, 2);
                     EXPECT_EQ(t.head_after.chunk_bytes, 200);
                     ASSERT_EQ(t.events.size(), 1u);
                     EXPECT_EQ(t.events[0].type(), Event::COMMITTED);
                     EXPECT_EQ(t.events[0].revision(), 1);
                     EXPECT_FALSE(t.events[0].replaced());
                   }});
  cases.push_back({"RepushOfTheSameContentWritesNothing", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(2, 'b', 200);
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kOk, nullptr});
  cases.push_back({"OtherContentAtAnExistingStepIsAlreadyExists", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(2, 'a', 100);
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kAlreadyExists, nullptr});
  cases.push_back({"OverwriteOfAPlainStepNeedsNoForceAndSaysReplaced", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(2, 'a', 100);
                     r.overwrite = true;
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kOk,
                   [](const Transaction& t) {
                     ASSERT_EQ(t.events.size(), 1u);
                     EXPECT_EQ(t.events[0].type(), Event::COMMITTED);
                     EXPECT_TRUE(t.events[0].replaced());
                     EXPECT_EQ(t.head_after.checkpoints, 2);
                   }});
  for (const bool pinned : {true, false}) {
    cases.push_back({pinned ? "OverwriteOfAPinnedStepWithoutForceIsFailedPrecondition"
                            : "OverwriteOfAnAliasedStepWithoutForceIsFailedPrecondition",
                     [pinned] {
                       FakeView v = TwoSteps();
                       if (pinned) {
                         v.steps[{"m", 2}].set_pinned(true);
                       } else {
                         (*v.models["m"].mutable_aliases())["prod"] = 2;
                       }
                       return v;
                     },
                     100,
                     [](const Planner& p, FakeView& v) {
                       CommitRequest r;
                       r.record = Step(2, 'a', 100);
                       r.overwrite = true;
                       return Commit(p, v, r, nullptr);
                     },
                     absl::StatusCode::kFailedPrecondition, nullptr});
  }
  cases.push_back({"ForceWithoutOverwriteIsStillAlreadyExists", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(2, 'a', 100);
                     r.force = true;
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kAlreadyExists, nullptr});
  cases.push_back({"ForcedOverwriteMovesReferencesAndKeepsThePinAndTheAlias",
                   [] {
                     FakeView v = TwoSteps();
                     v.steps[{"m", 2}].set_pinned(true);
                     (*v.models["m"].mutable_aliases())["prod"] = 2;
                     return v;
                   },
                   100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(2, 'a', 100);
                     r.overwrite = true;
                     r.force = true;
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kOk,
                   [](const Transaction& t) {
                     EXPECT_TRUE(t.put_checkpoints.at(0).pinned());
                     EXPECT_EQ(t.model_after->aliases().at("prod"), 2);
                     EXPECT_TRUE(t.events.at(0).replaced());
                     EXPECT_EQ(FindBlob(t, 'a')->refs_after, 2);
                     EXPECT_EQ(FindBlob(t, 'b')->refs_after, 0);  // blob b freed
                     EXPECT_EQ(FindChunk(t, 'x')->refs_after, 1);
                     EXPECT_EQ(FindChunk(t, 'y')->refs_after, 0);
                     EXPECT_EQ(t.head_after.blobs, 1);
                     EXPECT_EQ(t.head_after.chunks, 1);
                     EXPECT_EQ(t.head_after.chunk_bytes, 100);
                     EXPECT_EQ(t.head_after.checkpoints, 2);
                   }});
  cases.push_back({"AFileNamingAnUnknownBlobIsFailedPrecondition", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(3, 'e', 100);
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kFailedPrecondition, nullptr});
  cases.push_back({"ANewBlobWithAnUnstagedChunkIsFailedPrecondition", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(3, 'c', 200);
                     r.new_blobs.push_back(Blob('c', {'x', 'q'}));
                     FakeArea area({});
                     return Commit(p, v, r, &area);
                   },
                   absl::StatusCode::kFailedPrecondition, nullptr});
  cases.push_back({"AFileOfAnotherSizeThanItsStoredBlobIsInvalidArgument", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     CommitRequest r;
                     r.record = Step(3, 'a', 999);
                     return Commit(p, v, r, nullptr);
                   },
                   absl::StatusCode::kInvalidArgument, nullptr});
  cases.push_back(
      {"DeletingTheLatestStepMovesLatestAndFreesWhatOnlyItUsed", TwoSteps, 100,
       [](const Planner& p, FakeView& v) { return Wrap(p.PlanDelete(v, "m", 2, kNow)); },
       absl::StatusCode::kOk,
       [](const Transaction& t) {
         EXPECT_EQ(t.removed_steps, std::vector<int64_t>{2});
         ASSERT_TRUE(t.latest_after.has_value());
         EXPECT_EQ(t.latest_after->step(), 1);
         EXPECT_EQ(t.model_after->latest_step(), 1);
         EXPECT_EQ(t.model_after->checkpoint_count(), 1);
         EXPECT_EQ(FindBlob(t, 'b')->refs_after, 0);
         EXPECT_EQ(FindChunk(t, 'x')->refs_after, 1);
         EXPECT_EQ(FindChunk(t, 'y')->refs_after, 0);
         EXPECT_EQ(t.head_after.revision, 3);
         ASSERT_EQ(t.events.size(), 1u);
         EXPECT_EQ(t.events[0].type(), Event::DELETED);
         EXPECT_EQ(t.events[0].revision(), 3);
       }});
  cases.push_back(
      {"DeletingTheLastStepRemovesAModelWithoutSettings",
       [] {
         FakeView v = TwoSteps();
         v.steps.erase({"m", 2});
         v.models["m"].set_latest_step(1);
         v.models["m"].set_checkpoint_count(1);
         return v;
       },
       100,
       [](const Planner& p, FakeView& v) { return Wrap(p.PlanDelete(v, "m", 1, kNow)); },
       absl::StatusCode::kOk,
       [](const Transaction& t) {
         EXPECT_FALSE(t.model_after.has_value());
         EXPECT_FALSE(t.latest_after.has_value());
         EXPECT_EQ(t.head_after.models, 0);
       }});
  cases.push_back(
      {"DeletingAnAliasedStepIsFailedPrecondition",
       [] {
         FakeView v = TwoSteps();
         (*v.models["m"].mutable_aliases())["prod"] = 2;
         return v;
       },
       100,
       [](const Planner& p, FakeView& v) { return Wrap(p.PlanDelete(v, "m", 2, kNow)); },
       absl::StatusCode::kFailedPrecondition, nullptr});
  cases.push_back(
      {"DeletingAMissingStepIsNotFound", TwoSteps, 100,
       [](const Planner& p, FakeView& v) { return Wrap(p.PlanDelete(v, "m", 5, kNow)); },
       absl::StatusCode::kNotFound, nullptr});
  cases.push_back({"AnEventBeyondTheWindowTrimsTheOldest", TwoSteps, 2,
                   [](const Planner& p, FakeView& v) {
                     return Wrap(p.PlanSetAlias(v, "m", "prod", 1, kNow));
                   },
                   absl::StatusCode::kOk,
                   [](const Transaction& t) {
                     EXPECT_EQ(t.head_after.revision, 3);
                     EXPECT_EQ(t.head_after.oldest_event, 2);
                     EXPECT_EQ(t.model_after->aliases().at("prod"), 1);
                     EXPECT_EQ(t.events.at(0).type(), Event::ALIAS_SET);
                   }});
  cases.push_back({"SettingAnAliasOnAMissingStepIsNotFound", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     return Wrap(p.PlanSetAlias(v, "m", "prod", 9, kNow));
                   },
                   absl::StatusCode::kNotFound, nullptr});
  cases.push_back({"RemovingAMissingAliasIsNotFound", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     return Wrap(p.PlanRemoveAlias(v, "m", "prod", kNow));
                   },
                   absl::StatusCode::kNotFound, nullptr});
  cases.push_back(
      {"RetentionSkipsPinnedAliasedAndPreservedSteps",
       [] {
         FakeView v = TwoSteps();
         v.steps[{"m", 3}] = Step(3, 'a', 100);
         v.steps[{"m", 3}].set_pinned(true);
         v.steps[{"m", 4}] = Step(4, 'a', 100);
         v.blobs[Hex('a')].refs = 3;
         v.models["m"].set_latest_step(4);
         v.models["m"].set_checkpoint_count(4);
         (*v.models["m"].mutable_aliases())["prod"] = 4;
         v.head.checkpoints = 4;
         return v;
       },
       100,
       [](const Planner& p, FakeView& v) {
         return Wrap(p.PlanApplyRetention(v, "m", {1, 2, 3, 4, 9}, {2}, 42, kNow));
       },
       absl::StatusCode::kOk,
       [](const Transaction& t) {
         EXPECT_EQ(t.removed_steps, std::vector<int64_t>{1});
         EXPECT_EQ(t.model_after->last_preserved_micros(), 42);
         ASSERT_EQ(t.put_checkpoints.size(), 1u);
         EXPECT_TRUE(t.put_checkpoints[0].preserved());
         EXPECT_EQ(FindBlob(t, 'a')->refs_after, 2);
         EXPECT_EQ(t.head_after.checkpoints, 3);
         EXPECT_EQ(t.events.size(), 1u);
       }});
  cases.push_back({"RetentionOfAnUnknownModelIsNotFound", TwoSteps, 100,
                   [](const Planner& p, FakeView& v) {
                     return Wrap(p.PlanApplyRetention(v, "n", {1}, {}, 0, kNow));
                   },
                   absl::StatusCode::kNotFound, nullptr});
  cases.push_back(
      {"PinningAPinnedStepWritesNothing",
       [] {
         FakeView v = TwoSteps();
         v.steps[{"m", 1}].set_pinned(true);
         return v;
       },
       100,
       [](const Planner& p, FakeView& v) { return p.PlanSetPinned(v, "m", 1, true); },
       absl::StatusCode::kOk, nullptr});
  cases.push_back(
      {"PinningChangesNoRevision", TwoSteps, 100,
       [](const Planner& p, FakeView& v) { return p.PlanSetPinned(v, "m", 1, true); },
       absl::StatusCode::kOk,
       [](const Transaction& t) {
         EXPECT_EQ(t.head_after.revision, 2);
         EXPECT_TRUE(t.events.empty());
         EXPECT_TRUE(t.put_checkpoints.at(0).pinned());
         EXPECT_EQ(t.latest_after->step(), 2);
       }});
  cases.push_back({"RetentionOfANewModelCreatesASettingsOnlyRecord",
                   [] { return FakeView(); }, 100,
                   [](const Planner& p, FakeView& v) {
                     storage::RetentionPolicy policy;
                     policy.set_max_to_keep(3);
                     return Wrap(p.PlanSetRetention(v, "n", policy, kNow));
                   },
                   absl::StatusCode::kOk,
                   [](const Transaction& t) {
                     ASSERT_TRUE(t.model_after.has_value());
                     EXPECT_EQ(t.model_after->checkpoint_count(), 0);
                     EXPECT_EQ(t.model_after->last_preserved_micros(), kNow);
                     EXPECT_FALSE(t.latest_after.has_value());
                     EXPECT_EQ(t.head_after.models, 0);
                   }});
  cases.push_back({"RetentionOfAMalformedModelNameIsInvalidArgument",
                   [] { return FakeView(); }, 100,
                   [](const Planner& p, FakeView& v) {
                     return Wrap(p.PlanSetRetention(v, "", {}, kNow));
                   },
                   absl::StatusCode::kInvalidArgument, nullptr});
  cases.push_back({"RemovingTheLastSettingOfAModelWithoutStepsRemovesIt",
                   [] {
                     FakeView v;
                     v.head = Head{5, 1, 0, 0, 0, 0, 0, 0};
                     ModelRecord& m = v.models["m"];
                     m.set_name("m");
                     (*m.mutable_aliases())["old"] = 3;
                     return v;
                   },
                   100,
                   [](const Planner& p, FakeView& v) {
                     return Wrap(p.PlanRemoveAlias(v, "m", "old", kNow));
                   },
                   absl::StatusCode::kOk,
                   [](const Transaction& t) {
                     EXPECT_FALSE(t.model_after.has_value());
                     EXPECT_EQ(t.events.at(0).type(), Event::ALIAS_REMOVED);
                     EXPECT_EQ(t.events.at(0).step(), 3);
                     EXPECT_EQ(t.head_after.revision, 6);
                   }});
  return cases;
}

class PlannerTest : public ::testing::TestWithParam<Case> {};

TEST(CheckReplaceTest, NamesThePinTheAliasesAndTheFlagToAdd) {
  ModelRecord model;
  model.set_name("m");
  (*model.mutable_aliases())["prod"] = 2;
  (*model.mutable_aliases())["canary"] = 2;
  (*model.mutable_aliases())["old"] = 1;
  CheckpointRecord old = Step(2, 'b', 200);
  old.set_pinned(true);
  absl::Status s = planner::CheckReplace(model, old, /*overwrite=*/true, /*force=*/false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(
      s.message(),
      "step 2 of model 'm' is pinned and named by aliases 'canary', 'prod'; "
      "an overwrite would change it under them: to replace it anyway add --force to "
      "--overwrite (BeginUploadRequest.force, force=True in Python), or push another "
      "step");
  old.set_pinned(false);
  s = planner::CheckReplace(model, old, true, false);
  EXPECT_NE(s.message().find("is named by aliases 'canary', 'prod';"), std::string::npos)
      << s;
  EXPECT_TRUE(planner::CheckReplace(model, old, true, /*force=*/true).ok());
  EXPECT_TRUE(planner::CheckReplace(model, Step(1, 'a', 100), true, false).code() ==
              absl::StatusCode::kFailedPrecondition);  // 'old' names step 1
  EXPECT_TRUE(planner::CheckReplace(ModelRecord(), Step(3, 'a', 100), true, false).ok());
  absl::Status exists = planner::CheckReplace(model, old, /*overwrite=*/false, true);
  EXPECT_EQ(exists.code(), absl::StatusCode::kAlreadyExists);
  EXPECT_NE(exists.message().find("--overwrite"), std::string::npos) << exists;
}

TEST_P(PlannerTest, PlansTheExpectedTransactionOrError) {
  const Case& c = GetParam();
  FakeView view = c.before();
  const Planner planner(c.event_window);
  absl::StatusOr<std::optional<Transaction>> txn = c.plan(planner, view);
  ASSERT_EQ(txn.status().code(), c.code) << txn.status();
  if (!txn.ok()) return;
  ASSERT_EQ(txn->has_value(), c.expect != nullptr)
      << "a transaction was " << (txn->has_value() ? "" : "not ") << "planned";
  if (!txn->has_value()) return;
  const Transaction& t = **txn;
  EXPECT_EQ(t.head_before.revision, view.head.revision);
  EXPECT_EQ(t.head_after.revision - t.head_before.revision,
            static_cast<int64_t>(t.events.size()));
  c.expect(t);
}

INSTANTIATE_TEST_SUITE_P(Cases, PlannerTest, ::testing::ValuesIn(Cases()),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.name;
                         });

}  // namespace
}  // namespace mgreg
