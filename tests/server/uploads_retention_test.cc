// Distributed trainers: many writers per step, resumable and deduplicated uploads,
// expiry, retention (EXPORT_SEMANTICS C2, C6), pins, and inspect.
#include <atomic>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class UploadsTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
};

TEST_F(UploadsTest, EightWritersFillOneStepAndReadersNeverSeeItPartial) {
  constexpr int kShards = 8;
  // Four models, each step 1 committed first; then step 2 of each with 8 writers.
  std::vector<std::string> step2(4);
  for (int m = 0; m < 4; ++m) {
    ASSERT_TRUE(
        client_
            ->Push(absl::StrCat("m", m),
                   MakeCheckpoint(absl::StrCat("m", m, "a"), 1, m, kShards, kShards),
                   PushOptions())
            .ok());
    step2[m] = MakeCheckpoint(absl::StrCat("m", m, "b"), 2, 100 + m, kShards, kShards);
  }
  std::atomic<bool> done{false};
  std::atomic<int> reads{0};
  std::atomic<int> partial{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&, r]() {
      std::unique_ptr<Client> c = NewClient();
      while (!done) {
        auto latest = c->GetLatestCheckpoint(absl::StrCat("m", r % 4));
        if (latest.ok()) {
          ++reads;
          // Every visible step is whole: index + meta + all 8 shards.
          if (latest->files_size() != kShards + 2) ++partial;
        }
      }
    });
  }
  std::vector<std::thread> models;
  std::atomic<int> failures{0};
  for (int m = 0; m < 4; ++m) {
    models.emplace_back([&, m]() {
      std::unique_ptr<Client> chief = NewClient();
      auto upload = chief->BeginUpload(Manifest(absl::StrCat("m", m), 2, step2[m]));
      if (!upload.ok()) {
        ++failures;
        return;
      }
      std::vector<std::thread> writers;
      for (int w = 0; w < kShards; ++w) {
        writers.emplace_back([&, w]() {
          std::unique_ptr<Client> worker = NewClient();
          const std::string name = absl::StrFormat("data-%05d-of-%05d", w, kShards);
          if (!worker->PutFile(upload->upload_id(), name, step2[m] + "." + name).ok()) {
            ++failures;
          }
        });
      }
      for (const char* name : {"index", "meta"}) {
        if (!chief->PutFile(upload->upload_id(), name, step2[m] + "." + name).ok()) {
          ++failures;
        }
      }
      for (std::thread& t : writers) t.join();
      if (!chief->CommitUpload(upload->upload_id()).ok()) ++failures;
    });
  }
  for (std::thread& t : models) t.join();
  done = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(failures, 0);
  EXPECT_EQ(partial, 0);
  EXPECT_GT(reads, 0);
  for (int m = 0; m < 4; ++m) {
    EXPECT_EQ(client_->GetLatestCheckpoint(absl::StrCat("m", m))->step(), 2);
  }
}

TEST_F(UploadsTest, TwoUploadsOfOneStepWithDifferentContentExactlyOneWins) {
  const std::string a = MakeCheckpoint("a", 5, 1);
  const std::string b = MakeCheckpoint("b", 5, 2);
  auto ua = client_->BeginUpload(Manifest("m", 5, a));
  auto ub = client_->BeginUpload(Manifest("m", 5, b));
  ASSERT_TRUE(ua.ok() && ub.ok());
  for (const auto& [upload, prefix] : {std::pair{*ua, a}, std::pair{*ub, b}}) {
    for (const auto& f : upload.files()) {
      ASSERT_TRUE(client_
                      ->PutFile(upload.upload_id(), f.file().name(),
                                prefix + "." + f.file().name())
                      .ok());
    }
  }
  absl::StatusOr<v1::Checkpoint> ra, rb;
  std::thread ta([&]() { ra = client_->CommitUpload(ua->upload_id()); });
  std::thread tb([&]() { rb = client_->CommitUpload(ub->upload_id()); });
  ta.join();
  tb.join();
  ASSERT_NE(ra.ok(), rb.ok()) << ra.status() << " / " << rb.status();
  const absl::Status& loser = ra.ok() ? rb.status() : ra.status();
  EXPECT_EQ(loser.code(), absl::StatusCode::kAlreadyExists) << loser;
  // The loser's chunks are collected: only the winner's bytes remain.
  const std::string winner = ra.ok() ? a : b;
  int64_t winner_bytes = 0;
  for (const auto& f : fs::directory_iterator(fs::path(winner).parent_path())) {
    winner_bytes += static_cast<int64_t>(fs::file_size(f.path()));
  }
  EXPECT_EQ(Stats().staged_chunks, 0);
  EXPECT_EQ(Stats().chunk_bytes, winner_bytes);
}

TEST_F(UploadsTest, AnUploadCutAtRandomPointsResumesSendingLittleMoreThanTheFile) {
  // One 1 GiB shard; the writer is cut off (its connection dropped, as when the client
  // is killed) five times at random points.
  CheckpointSpec spec;
  spec.directory = tmp_.Join("big");
  fs::create_directories(spec.directory);
  spec.step = 1;
  spec.tensors = {{"w", FloatBytes(256 << 20, 7), 0}};
  const std::string prefix = WriteCheckpoint(spec);
  const std::string data_path = prefix + ".data-00000-of-00001";
  const int64_t size = static_cast<int64_t>(fs::file_size(data_path));
  auto upload = client_->BeginUpload(Manifest("m", 1, prefix));
  ASSERT_TRUE(upload.ok()) << upload.status();
  auto channel =
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Registry::NewStub(channel);
  // The held bytes of the shard, once no stream writes it.
  auto held_when_idle = [&]() -> int64_t {
    for (int i = 0; i < 1000; ++i) {
      auto state = client_->GetUpload(upload->upload_id());
      EXPECT_TRUE(state.ok());
      for (const auto& f : state->files()) {
        if (f.file().name() == "data-00000-of-00001" && !f.writing())
          return f.held_bytes();
      }
      absl::SleepFor(absl::Milliseconds(5));
    }
    ADD_FAILURE() << "the cut stream was never released";
    return 0;
  };
  std::mt19937_64 rng(42);
  const std::string data = ReadFileOrDie(data_path);
  int64_t sent = 0;
  for (int cut = 0; cut < 5; ++cut) {
    const int64_t held = held_when_idle();
    // Send from the held offset up to a random point, then drop the connection.
    const int64_t stop =
        held + static_cast<int64_t>(rng() % static_cast<uint64_t>((size - held) / 2 + 1));
    grpc::ClientContext ctx;
    v1::PutFileResponse response;
    auto writer = stub->PutFile(&ctx, &response);
    v1::PutFileRequest m;
    m.mutable_header()->set_upload_id(upload->upload_id());
    m.mutable_header()->set_name("data-00000-of-00001");
    m.mutable_header()->set_offset(held);
    for (int64_t pos = held; pos < stop; pos += 1 << 20) {
      const int64_t n = std::min<int64_t>(1 << 20, stop - pos);
      m.set_data(data.substr(static_cast<size_t>(pos), static_cast<size_t>(n)));
      if (!writer->Write(m)) break;
      m.clear_header();
      sent += n;
    }
    // Let the server take what was sent (a client killed after its writes), then die.
    const int64_t whole = stop / (1 << 20) * (1 << 20);
    for (int i = 0; i < 1000; ++i) {
      auto state = client_->GetUpload(upload->upload_id());
      int64_t now = 0;
      for (const auto& f : state->files()) {
        if (f.file().name() == "data-00000-of-00001") now = f.held_bytes();
      }
      if (now >= whole) break;
      absl::SleepFor(absl::Milliseconds(5));
    }
    ctx.TryCancel();
    writer->Finish();
  }
  // Resume with the client library: it asks the server what it holds.
  const int64_t held_before_resume = held_when_idle();
  auto put = client_->PutFile(upload->upload_id(), "data-00000-of-00001", data_path);
  ASSERT_TRUE(put.ok()) << put.status();
  EXPECT_EQ(put->held_bytes(), size);
  sent += size - held_before_resume;
  for (const auto& f : upload->files()) {
    if (f.file().name() != "data-00000-of-00001") {
      ASSERT_TRUE(client_
                      ->PutFile(upload->upload_id(), f.file().name(),
                                prefix + "." + f.file().name())
                      .ok());
    }
  }
  ASSERT_TRUE(client_->CommitUpload(upload->upload_id()).ok());
  // Each cut loses less than one chunk (1 MiB) received but not whole.
  EXPECT_LE(static_cast<double>(sent), 1.1 * static_cast<double>(size));
  const std::string restored = tmp_.Join("restored");
  ASSERT_TRUE(client_->Restore("m", restored, RestoreOptions()).ok());
  // Restore verified the file's SHA-256; compare the bytes too.
  EXPECT_TRUE(ReadFileOrDie(restored + "/model.ckpt-1.data-00000-of-00001") == data);
}

TEST_F(UploadsTest, UnchangedMetaAndFrozenLayersAreNotSentAgain) {
  // Ten 1 MiB tensors; step 2 changes one of them (10 % of the bytes).
  auto make = [&](const std::string& dir, int64_t step, uint32_t changed_seed) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(dir);
    fs::create_directories(spec.directory);
    spec.step = step;
    for (int i = 0; i < 10; ++i) {
      spec.tensors.push_back({absl::StrCat("layer", i, "/w"),
                              FloatBytes(1 << 18, i == 9 ? changed_seed : i), 0});
    }
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  };
  PushStats first;
  PushOptions options;
  options.stats = &first;
  ASSERT_TRUE(client_->Push("m", make("s1", 1, 100), options).ok());
  EXPECT_EQ(first.bytes_deduplicated_chunks, 0);
  const int64_t stored_after_first = Stats().chunk_bytes;

  const std::string second_prefix = make("s2", 2, 200);
  const int64_t data_size =
      static_cast<int64_t>(fs::file_size(second_prefix + ".data-00000-of-00001"));
  const int64_t meta_size = static_cast<int64_t>(fs::file_size(second_prefix + ".meta"));
  PushStats second;
  options.stats = &second;
  ASSERT_TRUE(client_->Push("m", second_prefix, options).ok());
  // The identical .meta costs no transfer; 9 of 10 layers are not sent again.
  EXPECT_GE(second.bytes_deduplicated_files, meta_size);
  EXPECT_GE(second.bytes_deduplicated_chunks, data_size * 8 / 10);
  EXPECT_LE(second.bytes_sent,
            (data_size + meta_size) * 15 / 100 +
                static_cast<int64_t>(fs::file_size(second_prefix + ".index")));
  // The store grew by about the changed layer, not by a second copy.
  EXPECT_LE(Stats().chunk_bytes - stored_after_first, data_size * 25 / 100);
  // And the step restores byte for byte.
  const std::string dir = tmp_.Join("r");
  ASSERT_TRUE(client_->Restore("m", dir, RestoreOptions()).ok());
  EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-2.data-00000-of-00001"),
            ReadFileOrDie(second_prefix + ".data-00000-of-00001"));
}

TEST_F(UploadsTest, ExistingChunkMustBeHeldAndAtAChunkBoundary) {
  const std::string prefix = MakeCheckpoint("a", 1, 1, 1, 1, 600000);  // 2.4 MB shard
  auto upload = client_->BeginUpload(Manifest("m", 1, prefix));
  ASSERT_TRUE(upload.ok());
  auto channel =
      grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Registry::NewStub(channel);
  v1::PutFileRequest unknown_chunk;
  unknown_chunk.set_existing_chunk(std::string(32, '\x01'));
  EXPECT_EQ(
      SendPutFile(*stub, upload->upload_id(), "data-00000-of-00001", {unknown_chunk})
          .error_code(),
      grpc::StatusCode::NOT_FOUND);
  v1::PutFileRequest one_byte;
  one_byte.set_data("x");
  grpc::Status s = SendPutFile(*stub, upload->upload_id(), "data-00000-of-00001",
                               {one_byte, unknown_chunk});
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("chunk boundary"));
  v1::FindChunksRequest find;
  find.set_upload_id(upload->upload_id());
  find.add_sha256("not 32 bytes");
  grpc::ClientContext ctx;
  v1::FindChunksResponse found;
  EXPECT_EQ(stub->FindChunks(&ctx, find, &found).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(UploadsTest, AnUploadBegunWithoutFilesLearnsThemFromItsWriters) {
  const std::string prefix = MakeCheckpoint("a", 3, 1, 2);
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(3);
  begin.set_basename("model.ckpt");
  auto upload = client_->BeginUpload(begin);
  ASSERT_TRUE(upload.ok()) << upload.status();
  EXPECT_EQ(upload->files_size(), 0);
  for (const char* name : {"index", "meta", "data-00000-of-00002"}) {
    auto put =
        client_->PutFile(upload->upload_id(), name, absl::StrCat(prefix, ".", name));
    ASSERT_TRUE(put.ok()) << name << ": " << put.status();
  }
  // A shard the index needs is missing: the commit says which, the upload stays open.
  auto early = client_->CommitUpload(upload->upload_id());
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("data-00001-of-00002"));
  ASSERT_TRUE(client_
                  ->PutFile(upload->upload_id(), "data-00001-of-00002",
                            prefix + ".data-00001-of-00002")
                  .ok());
  auto committed = client_->CommitUpload(upload->upload_id());
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(committed->files_size(), 4);
}

TEST_F(UploadsTest, AbandonedUploadsExpireAndTheirChunksAreCollected) {
  ServerOptions options;
  options.service.upload_ttl = absl::Milliseconds(200);
  StartServer(options);
  const std::string prefix = MakeCheckpoint("a", 1, 1);
  auto upload = client_->BeginUpload(Manifest("m", 1, prefix));
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE(client_
                  ->PutFile(upload->upload_id(), "data-00000-of-00002",
                            prefix + ".data-00000-of-00002")
                  .ok());
  EXPECT_GT(Stats().staged_chunks, 0);
  absl::StatusCode code = absl::StatusCode::kOk;
  for (int i = 0; i < 200 && code != absl::StatusCode::kNotFound; ++i) {
    absl::SleepFor(absl::Milliseconds(25));
    code = client_->GetUpload(upload->upload_id()).status().code();
  }
  EXPECT_EQ(code, absl::StatusCode::kNotFound);
  EXPECT_EQ(Stats().staged_chunks, 0);
  EXPECT_EQ(Stats().chunk_bytes, 0);
}

class RetentionTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }

  std::vector<int64_t> Steps(const std::string& model) {
    std::vector<int64_t> out;
    auto list = client_->ListCheckpoints(model, 0, "");
    if (!list.ok()) return out;
    for (const auto& c : list->checkpoints()) out.push_back(c.step());
    return out;
  }
};

TEST_F(RetentionTest, C6MaxToKeepDeletesTheOldestStepsAfterEachCommit) {
  // Set before the first push (allow_missing), as CheckpointManager is created before
  // the first save.
  ASSERT_TRUE(client_->SetRetention("m", 3, 0, /*allow_missing=*/true).ok());
  int64_t kept_bytes = 0;  // files of steps 4-6, the .meta (the same at every step) once
  for (int step = 1; step <= 6; ++step) {
    const std::string prefix = MakeCheckpoint(absl::StrCat("s", step), step, step * 10);
    ASSERT_TRUE(client_->Push("m", prefix, PushOptions()).ok());
    for (const auto& f : fs::directory_iterator(fs::path(prefix).parent_path())) {
      const bool meta = f.path().extension() == ".meta";
      if (step >= 4 && (!meta || step == 4)) {
        kept_bytes += static_cast<int64_t>(fs::file_size(f.path()));
      }
    }
  }
  EXPECT_THAT(Steps("m"), ElementsAre(4, 5, 6));
  // Deleting freed exactly the chunks nothing else references.
  EXPECT_EQ(Stats().chunk_bytes, kept_bytes);
  auto model = client_->GetModel("m");
  ASSERT_TRUE(model.ok());
  EXPECT_EQ(model->retention().max_to_keep(), 3);
}

TEST_F(RetentionTest, PinnedAndAliasedStepsAreNeverDeletedByRetention) {
  for (int step = 1; step <= 3; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  ASSERT_TRUE(client_->PinCheckpoint("m", 1, true).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 2).ok());
  ASSERT_TRUE(client_->SetRetention("m", 1, 0).ok());
  EXPECT_THAT(Steps("m"), ElementsAre(1, 2, 3));
  auto latest = client_->GetLatestCheckpoint("m");
  EXPECT_FALSE(latest->pinned());
  auto pinned = client_->GetCheckpoint("m", 1);
  EXPECT_TRUE(pinned->pinned());
  auto aliased = client_->GetCheckpoint("m", 2);
  EXPECT_THAT(aliased->aliases(), ElementsAre("production"));
  // Unpinning and removing the alias hand the steps back to retention.
  ASSERT_TRUE(client_->PinCheckpoint("m", 1, false).ok());
  EXPECT_THAT(Steps("m"), ElementsAre(2, 3));
  ASSERT_TRUE(client_->RemoveAlias("m", "production").ok());
  EXPECT_THAT(Steps("m"), ElementsAre(3));
}

// GetLatestCheckpoint answers from the latest record and the model record read
// together (Store::VisitLatest): the aliases naming the latest step, sorted, and its
// pin; an alias moved away or a pin undone shows at once.
TEST_F(RetentionTest, LatestCarriesItsAliasesAndPinAsTheyChange) {
  for (int step = 1; step <= 2; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  ASSERT_TRUE(client_->SetAlias("m", "production", 2).ok());
  ASSERT_TRUE(client_->SetAlias("m", "candidate", 2).ok());
  ASSERT_TRUE(client_->SetAlias("m", "previous", 1).ok());
  ASSERT_TRUE(client_->PinCheckpoint("m", 2, true).ok());
  auto latest = client_->GetLatestCheckpoint("m");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), 2);
  EXPECT_THAT(latest->aliases(), ElementsAre("candidate", "production"));
  EXPECT_TRUE(latest->pinned());
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());
  ASSERT_TRUE(client_->PinCheckpoint("m", 2, false).ok());
  latest = client_->GetLatestCheckpoint("m");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_THAT(latest->aliases(), ElementsAre("candidate"));
  EXPECT_FALSE(latest->pinned());
  // GetCheckpoint of the same step gives the same answer.
  auto same = client_->GetCheckpoint("m", 2);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->SerializeAsString(), latest->SerializeAsString());
}

TEST_F(RetentionTest, BadPoliciesAndUnknownStepsAreRejected) {
  EXPECT_EQ(client_->SetRetention("m", -1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->SetRetention("m", 1, -2).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->PinCheckpoint("m", 7, true).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->GetModel("nope").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(RetentionTest, SetRetentionOnAnUnknownModelIsNotFoundUnlessAllowMissing) {
  auto unknown = client_->SetRetention("team-a/nobody", 2, 0);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(unknown.status().message(), HasSubstr("'team-a/nobody' does not exist"));
  EXPECT_THAT(unknown.status().message(), HasSubstr("allow_missing"));
  EXPECT_EQ(client_->GetModel("team-a/nobody").status().code(),
            absl::StatusCode::kNotFound);  // nothing was written
  auto early = client_->SetRetention("team-a/nobody", 2, 0, /*allow_missing=*/true);
  ASSERT_TRUE(early.ok()) << early.status();
  EXPECT_EQ(early->retention().max_to_keep(), 2);
  // The model now has settings: changing them needs no allow_missing.
  auto changed = client_->SetRetention("team-a/nobody", 1, 0);
  ASSERT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(changed->retention().max_to_keep(), 1);
  // A model with steps needs none either.
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s1", 1, 1), PushOptions()).ok());
  EXPECT_TRUE(client_->SetRetention("m", 1, 0).ok());
}

TEST_F(RetentionTest, DefaultRetentionAppliesToModelsWithoutAPolicy) {
  ServerOptions options;
  options.retention_defaults.set_max_to_keep(2);
  StartServer(options);
  for (int step = 1; step <= 4; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  EXPECT_THAT(Steps("m"), ElementsAre(3, 4));
  // A model's own policy wins over the default.
  ASSERT_TRUE(client_->SetRetention("m", 0, 0).ok());
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s5", 5, 5), PushOptions()).ok());
  EXPECT_THAT(Steps("m"), ElementsAre(3, 4, 5));
}

class InspectTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
};

TEST_F(InspectTest, ListsAndVerifiesTheTensorsOfABuiltCheckpoint) {
  ASSERT_TRUE(
      client_->Push("m", MakeCheckpoint("a", 1, 1, 2, 4, 300000), PushOptions()).ok());
  auto r = client_->InspectCheckpoint("m", StepRef(), true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->num_shards(), 2);
  ASSERT_EQ(r->tensors_size(), 4);
  EXPECT_EQ(r->tensors(0).name(), "layer0/w");
  EXPECT_EQ(r->tensors(0).dtype(), "DT_FLOAT");
  EXPECT_THAT(r->tensors(0).shape(), ElementsAre(300000));
  EXPECT_EQ(r->tensors(1).shard(), 1);
  EXPECT_TRUE(r->verified());
  for (const auto& t : r->tensors()) EXPECT_EQ(t.verification(), "ok") << t.name();
}

TEST_F(InspectTest, VerifyReportsATensorWhoseBytesDoNotMatchItsCrc) {
  const std::string prefix = MakeCheckpoint("a", 1, 1, 1, 2, 1000);
  std::string data = ReadFileOrDie(prefix + ".data-00000-of-00001");
  data[5000] ^= 0x40;  // inside the second tensor
  WriteFileOrDie(prefix + ".data-00000-of-00001", data);
  ASSERT_TRUE(client_->Push("m", prefix, PushOptions()).ok());
  auto r = client_->InspectCheckpoint("m", 1, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->verified());
  EXPECT_EQ(r->tensors(0).verification(), "ok");
  EXPECT_THAT(r->tensors(1).verification(), HasSubstr("layer1/w"));
}

TEST_F(InspectTest, RealCheckpointsShardedAndObjectBasedVerify) {
  MGREG_REQUIRE_TESTDATA();
  struct Case {
    const char* model;
    const char* prefix;
    int shards;
    int tensors;
  };
  for (const Case& c :
       {Case{"t2t", "t2t/tensor2tensor/test_data/transformer_test_ckpt/model.ckpt-1", 2,
             250},
        Case{"tictactoe", "tictactoe/tf_ckpts/ckpt-19", 1, -1},
        Case{"tfx",
             "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000",
             1, 60}}) {
    ASSERT_TRUE(client_->Push(c.model, TestdataPath(c.prefix), PushOptions()).ok())
        << c.model;
    auto r = client_->InspectCheckpoint(c.model, StepRef(), true);
    ASSERT_TRUE(r.ok()) << c.model << ": " << r.status();
    EXPECT_EQ(r->num_shards(), c.shards) << c.model;
    if (c.tensors > 0) {
      EXPECT_EQ(r->tensors_size(), c.tensors) << c.model;
    }
    EXPECT_TRUE(r->verified()) << c.model;
  }
  auto ttt = client_->InspectCheckpoint("tictactoe", StepRef(), false);
  bool has_object_graph = false;
  for (const auto& t : ttt->tensors()) {
    has_object_graph = has_object_graph || t.name() == "_CHECKPOINTABLE_OBJECT_GRAPH";
  }
  EXPECT_TRUE(has_object_graph);
}

}  // namespace
}  // namespace mgreg::testing
