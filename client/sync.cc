#include "client/sync.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/checkpoint_dir.h"
#include "client/local_file.h"
#include "client/saved_model_dir.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"

namespace mgreg {

CheckpointSync::CheckpointSync(Client* client, std::string model, std::string dir,
                               SyncOptions options)
    : client_(client),
      model_(std::move(model)),
      dir_(std::move(dir)),
      options_(std::move(options)) {
  // Before the first switch, the directory serves what its state file lists last.
  // A SavedModel base path serves its highest version.
  ListedCheckpoints listed = ReadListedCheckpoints(dir_);
  absl::MutexLock lock(&mu_);
  if (!listed.own.empty()) {
    absl::StatusOr<CheckpointPrefix> prefix = ParseCheckpointPrefix(listed.own.back());
    if (prefix.ok() && prefix->step.has_value()) current_step_ = *prefix->step;
  } else if (std::vector<int64_t> versions = ListVersions(dir_); !versions.empty()) {
    current_step_ = versions.back();
  }
}

int64_t CheckpointSync::current_step() const {
  absl::MutexLock lock(&mu_);
  return current_step_;
}

bool CheckpointSync::stopped() const {
  absl::MutexLock lock(&mu_);
  return stopped_;
}

void CheckpointSync::Stop() {
  absl::MutexLock lock(&mu_);
  stopped_ = true;
  if (stream_ != nullptr) stream_->Cancel();
}

absl::StatusOr<v1::Checkpoint> CheckpointSync::SyncOnce() {
  Failure failure;
  return Sync(&failure);
}

absl::StatusOr<v1::Checkpoint> CheckpointSync::Sync(Failure* failure) {
  *failure = Failure::kFatal;
  if (options_.keep < 1) {
    return absl::InvalidArgumentError("keep must be at least 1 (the current step)");
  }
  RETURN_IF_ERROR(EnsureWritableDirectory(dir_));
  StepRef target = options_.alias.empty() ? StepRef() : StepRef::Alias(options_.alias);
  absl::StatusOr<v1::Checkpoint> resolved = client_->ResolveCheckpoint(model_, target);
  if (!resolved.ok()) {
    switch (resolved.status().code()) {
      case absl::StatusCode::kInvalidArgument:
      case absl::StatusCode::kFailedPrecondition:
        break;  // a bad model or alias name
      case absl::StatusCode::kNotFound:
        *failure = Failure::kNoTarget;
        break;
      default:
        *failure = Failure::kRetry;
    }
    return resolved.status();
  }
  const v1::Checkpoint& checkpoint = *resolved;
  // The same step with the same content is there already: nothing to do. (A step
  // overwritten with other content has other file digests.)
  std::string sha;
  for (const v1::FileInfo& f : checkpoint.files()) {
    absl::StrAppend(&sha, f.sha256(), "/", f.chunked_sha256(), ";");
  }
  sha = Sha256Hex(sha);
  {
    absl::MutexLock lock(&mu_);
    if (checkpoint.step() == current_step_ && sha == current_sha_) return checkpoint;
    if (checkpoint.step() == skipped_step_ && sha == skipped_sha_) {
      *failure = Failure::kBadStep;
      return skipped_status_;
    }
  }
  RestoreOptions restore;
  restore.step = checkpoint.step();
  restore.graph_options = options_.graph_options;
  restore.keep_last = options_.keep;
  // TF Serving serves a base path's highest version: an alias that moved back is only
  // served once the newer versions are gone.
  restore.remove_newer_versions = !options_.alias.empty();
  restore.on_warning = options_.on_warning;
  absl::StatusOr<v1::Checkpoint> restored = client_->Restore(model_, dir_, restore);
  if (!restored.ok()) {
    switch (restored.status().code()) {
      case absl::StatusCode::kNotFound:  // deleted meanwhile: its event follows
        *failure = Failure::kNoTarget;
        return restored.status();
      case absl::StatusCode::kInvalidArgument:
      case absl::StatusCode::kFailedPrecondition:
      case absl::StatusCode::kOutOfRange:
      case absl::StatusCode::kPermissionDenied:
      case absl::StatusCode::kUnimplemented:
        break;  // retrying the same step cannot help
      default:
        *failure = Failure::kRetry;
        return restored.status();
    }
    *failure = Failure::kBadStep;
    {
      absl::MutexLock lock(&mu_);
      skipped_step_ = checkpoint.step();
      skipped_sha_ = sha;
      skipped_status_ = restored.status();
    }
    if (options_.on_skip) options_.on_skip(checkpoint, restored.status());
    return restored.status();
  }
  {
    absl::MutexLock lock(&mu_);
    current_step_ = restored->step();
    current_sha_ = sha;
  }
  if (options_.on_switch) options_.on_switch(*restored);
  return restored;
}

void CheckpointSync::Backoff(absl::Duration* backoff) {
  absl::MutexLock lock(&mu_);
  mu_.AwaitWithTimeout(absl::Condition(&stopped_), *backoff);
  *backoff = std::min(*backoff * 2, options_.max_backoff);
}

absl::Status CheckpointSync::Run() {
  int64_t revision = -1;  // -1: only new events (the first sync covers the past)
  absl::Duration backoff = options_.initial_backoff;
  while (!stopped()) {
    v1::WatchCheckpointsRequest request;
    request.set_model(model_);
    request.set_since_revision(revision);
    std::unique_ptr<WatchStream> stream = client_->Watch(request);
    {
      absl::MutexLock lock(&mu_);
      if (stopped_) return absl::OkStatus();
      stream_ = std::move(stream);
    }
    WatchStream* s = nullptr;
    {
      absl::MutexLock lock(&mu_);
      s = stream_.get();
    }
    bool need_sync = false;
    v1::WatchEvent event;
    while (s->Next(&event)) {
      revision = std::max(revision, event.revision());
      switch (event.type()) {
        case v1::WatchEvent::PROGRESS:
          need_sync = true;  // live now: catch up with whatever happened before
          break;
        case v1::WatchEvent::COMMITTED:
          // A re-commit (overwrite) may change the content the alias names.
          need_sync = need_sync || options_.alias.empty() || event.replaced();
          break;
        case v1::WatchEvent::DELETED:
          need_sync = need_sync || options_.alias.empty();
          break;
        case v1::WatchEvent::ALIAS_SET:
        case v1::WatchEvent::ALIAS_REMOVED:
          need_sync = need_sync || event.alias() == options_.alias;
          break;
        default:
          break;
      }
      if (!need_sync) continue;
      Failure failure;
      absl::StatusOr<v1::Checkpoint> synced = Sync(&failure);
      need_sync = false;
      if (synced.ok()) {
        backoff = options_.initial_backoff;
        continue;
      }
      if (failure == Failure::kFatal) {
        s->Cancel();
        s->Finish().IgnoreError();
        {
          absl::MutexLock lock(&mu_);
          stream_.reset();
        }
        return synced.status();
      }
      // A skipped step (reported through on_skip) and a missing target (no step yet,
      // the alias removed) wait for the next event.
      if (failure != Failure::kRetry) continue;
      if (options_.on_retry) options_.on_retry(synced.status());
      // Retried after a backoff: the new watch's PROGRESS event syncs again.
      s->Cancel();
      break;
    }
    absl::Status ended = s->Finish();
    {
      absl::MutexLock lock(&mu_);
      stream_.reset();
      if (stopped_) return absl::OkStatus();
    }
    if (ended.code() == absl::StatusCode::kOutOfRange) {
      revision = -1;  // too far behind: start over from a full sync
    } else if (ended.code() == absl::StatusCode::kInvalidArgument) {
      return ended;
    }
    if (options_.on_retry) {
      options_.on_retry(ended.ok() ? absl::UnavailableError("the watch ended") : ended);
    }
    Backoff(&backoff);
  }
  return absl::OkStatus();
}

}  // namespace mgreg
