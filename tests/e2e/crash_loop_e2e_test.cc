// The crash loop: N times, start the real mgreg-server on one data dir, run concurrent
// pushes, watches and deletes, SIGKILL it at a random moment, restart it and check:
// every step whose commit was acknowledged (and not deleted) is intact, restored with
// every digest verified; every listed step is whole (its files are exactly one pushed
// checkpoint); `mgreg admin check` reports no leaked or missing chunk and exits 0.
//
// MGREG_CRASH_ITERATIONS sets N (default 8); MGREG_CRASH_SEED fixes the kill times.
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/file_digest.h"
#include "gtest/gtest.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;

constexpr int kContents = 5;
const char* const kModels[] = {"crash/a", "crash/b"};

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : fallback;
}

struct Content {
  std::string prefix;
  // file name -> chunked SHA-256 (the digest pushes announce)
  std::map<std::string, std::string> sha256;
  int64_t bytes = 0;
};

class CrashLoopTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < kContents; ++i) {
      CheckpointSpec spec;
      spec.directory = tmp_.Join(absl::StrCat("src-", i));
      fs::create_directories(spec.directory);
      spec.step = i;
      spec.num_shards = 2;
      // 1–3 MiB per checkpoint; tensor "b" is shared by all (chunk dedup across steps).
      spec.tensors = {{"w", FloatBytes((1 + i % 3) << 18, 100 + i), 0},
                      {"b", FloatBytes(50000, 7), 1}};
      spec.meta = SmallMetaGraphBytes();
      Content c;
      c.prefix = WriteCheckpoint(spec);
      auto local = FindLocalCheckpoint(c.prefix);
      ASSERT_TRUE(local.ok()) << local.status();
      for (const auto& [name, path] : local->files) {
        const std::string bytes = ReadFileOrDie(path);
        c.sha256[name] = ChunkedSha256Hex(bytes);
        c.bytes += static_cast<int64_t>(bytes.size());
      }
      contents_.push_back(std::move(c));
    }
  }

  static int ContentOf(int64_t step) { return static_cast<int>(step % kContents); }

  std::unique_ptr<Client> Connect(const std::string& address) {
    ClientOptions options;
    options.target = address;
    options.unary_timeout = absl::Seconds(20);
    return std::move(Client::Connect(options)).value();
  }

  // Everything the workload learned, kept across crashes.
  std::mutex mu_;
  std::map<std::pair<std::string, int64_t>, bool> acked_;    // -> deleted (acknowledged)
  std::set<std::pair<std::string, int64_t>> maybe_deleted_;  // delete in flight at a kill
  std::map<std::string, int64_t> next_step_;
  int64_t commits_acked_ = 0;
  int64_t deletes_acked_ = 0;
  int64_t events_seen_ = 0;

  TempDir tmp_;
  std::vector<Content> contents_;
};

TEST_F(CrashLoopTest, AcknowledgedStepsSurviveRepeatedSigkill) {
  const int iterations = EnvInt("MGREG_CRASH_ITERATIONS", 8);
  const unsigned seed = static_cast<unsigned>(EnvInt("MGREG_CRASH_SEED", 20240607));
  std::mt19937 rng(seed);
  const std::string data_dir = tmp_.Join("data");
  for (const char* m : kModels) next_step_[m] = 1;
  int crashes = 0;
  int64_t bytes_verified = 0;
  int64_t bytes_lost = 0;

  for (int it = 0; it <= iterations; ++it) {
    auto server =
        std::make_unique<ServerProcess>(std::vector<std::string>{"--data-dir", data_dir});
    ASSERT_TRUE(server->started()) << "restart " << it;
    std::unique_ptr<Client> client = Connect(server->address());

    // ---- Invariants after the restart. ----
    std::map<std::string, std::set<int64_t>> listed;
    for (const char* m : kModels) {
      auto list = client->ListCheckpoints(m, 1000, "");
      if (!list.ok()) {
        ASSERT_EQ(list.status().code(), absl::StatusCode::kNotFound) << list.status();
        continue;
      }
      for (const v1::Checkpoint& c : list->checkpoints()) {
        listed[m].insert(c.step());
        // Whole: exactly the files of the content pushed as this step.
        const Content& want = contents_[ContentOf(c.step())];
        ASSERT_EQ(static_cast<size_t>(c.files_size()), want.sha256.size())
            << m << "@" << c.step();
        for (const v1::FileInfo& f : c.files()) {
          EXPECT_EQ(f.chunked_sha256(), want.sha256.at(f.name())) << m << "@" << c.step();
        }
      }
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      std::vector<std::pair<std::string, int64_t>> to_restore;
      for (auto& [key, deleted] : acked_) {
        const bool present = listed[key.first].count(key.second) > 0;
        if (maybe_deleted_.count(key) > 0 && !present) {
          // A delete in flight at the kill was applied: from now on the step is gone.
          deleted = true;
        } else if (deleted) {
          EXPECT_FALSE(present)
              << "deleted step came back: " << key.first << "@" << key.second;
        } else if (maybe_deleted_.count(key) == 0) {
          EXPECT_TRUE(present) << "acknowledged step lost: " << key.first << "@"
                               << key.second;
          if (present) {
            to_restore.push_back(key);
          } else {
            bytes_lost += contents_[ContentOf(key.second)].bytes;
          }
        }
      }
      // Restore (every digest verified by the client) the newest acknowledged steps
      // of each model and a few at random.
      std::shuffle(to_restore.begin(), to_restore.end(), rng);
      for (size_t i = 0; i < to_restore.size() && i < 3; ++i) {
        RestoreOptions options;
        options.step = to_restore[i].second;
        const std::string dir = tmp_.Join(absl::StrCat("restore-", it, "-", i));
        auto restored = client->Restore(to_restore[i].first, dir, options);
        ASSERT_TRUE(restored.ok()) << restored.status();
        bytes_verified += contents_[ContentOf(to_restore[i].second)].bytes;
        fs::remove_all(dir);
      }
      maybe_deleted_.clear();
    }
    CommandResult check = RunCommand(
        {BinaryPath("client/mgreg"), "--server", server->address(), "admin", "check"});
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    if (it == iterations) break;

    // ---- The workload, killed at a random moment. ----
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (const char* model : kModels) {
      threads.emplace_back([&, model]() {
        std::unique_ptr<Client> c = Connect(server->address());
        while (!stop.load()) {
          int64_t step;
          {
            std::lock_guard<std::mutex> lock(mu_);
            step = next_step_[model]++;
          }
          PushOptions options;
          options.step = step;
          auto pushed = c->Push(model, contents_[ContentOf(step)].prefix, options);
          if (!pushed.ok()) break;  // the server died
          std::lock_guard<std::mutex> lock(mu_);
          acked_[{model, step}] = false;
          ++commits_acked_;
        }
      });
    }
    threads.emplace_back([&]() {
      std::unique_ptr<Client> c = Connect(server->address());
      std::mt19937 local(seed + it);
      while (!stop.load()) {
        std::pair<std::string, int64_t> victim;
        {
          std::lock_guard<std::mutex> lock(mu_);
          std::vector<std::pair<std::string, int64_t>> live;
          for (const auto& [key, deleted] : acked_) {
            if (!deleted && maybe_deleted_.count(key) == 0) live.push_back(key);
          }
          if (live.size() < 4) {
            victim.first.clear();
          } else {
            victim = live[local() % (live.size() - 2)];  // never the newest ones
            maybe_deleted_.insert(victim);
          }
        }
        if (victim.first.empty()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        auto deleted = c->DeleteCheckpoint(victim.first, victim.second);
        if (!deleted.ok()) break;  // the server died: the delete may or may not be done
        std::lock_guard<std::mutex> lock(mu_);
        acked_[victim] = true;
        maybe_deleted_.erase(victim);
        ++deletes_acked_;
      }
    });
    threads.emplace_back([&]() {
      std::unique_ptr<Client> c = Connect(server->address());
      v1::WatchCheckpointsRequest request;
      request.set_prefix("crash/");
      request.set_since_revision(-1);
      std::unique_ptr<WatchStream> watch = c->Watch(request);
      v1::WatchEvent e;
      while (watch->Next(&e)) {
        std::lock_guard<std::mutex> lock(mu_);
        ++events_seen_;
      }
      watch->Finish().IgnoreError();
    });
    const int kill_ms = 300 + static_cast<int>(rng() % 1700);
    std::this_thread::sleep_for(std::chrono::milliseconds(kill_ms));
    server->Stop(SIGKILL);
    ++crashes;
    stop.store(true);
    for (std::thread& t : threads) t.join();
  }

  std::lock_guard<std::mutex> lock(mu_);
  EXPECT_GT(commits_acked_, iterations);
  std::printf(
      "crash loop: %d iterations, %d crashes survived (SIGKILL), %lld commits and %lld "
      "deletes acknowledged, %lld watch events, %lld bytes restored and verified, "
      "bytes lost: %lld\n",
      iterations, crashes, static_cast<long long>(commits_acked_),
      static_cast<long long>(deletes_acked_), static_cast<long long>(events_seen_),
      static_cast<long long>(bytes_verified), static_cast<long long>(bytes_lost));
  EXPECT_EQ(bytes_lost, 0);
}

}  // namespace
}  // namespace mgreg::testing
