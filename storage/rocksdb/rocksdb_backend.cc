// The RocksDB backend's reads and its apply of a transaction (rocksdb_backend.h).
#include "storage/rocksdb/rocksdb_backend.h"

#include <algorithm>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/slice.h"
#include "rocksdb/snapshot.h"
#include "rocksdb/utilities/checkpoint.h"
#include "storage/blob_key.h"
#include "storage/planner.h"

namespace mgreg::rocks {

using planner::ChunkName;
using planner::CorruptRecord;
using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::Event;
using storage::ModelRecord;

namespace {

RocksOptions Clamp(RocksOptions o) {
  o.event_window = std::max<int64_t>(o.event_window, 1);
  return o;
}

}  // namespace

RocksBackend::RocksBackend(std::shared_ptr<rocksdb::Env> env,
                           std::unique_ptr<rocksdb::DB> db,
                           std::vector<rocksdb::ColumnFamilyHandle*> handles,
                           const RocksOptions& options)
    : env_(std::move(env)),
      db_(std::move(db)),
      handles_(std::move(handles)),
      options_(Clamp(options)) {
  meta_ = handles_[1];
  chunks_ = handles_[2];
}

RocksBackend::~RocksBackend() {
  StopUpkeep();
  for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
  db_->Close().PermitUncheckedError();
}

absl::StatusOr<std::optional<std::string>> RocksBackend::GetMeta(const std::string& key,
                                                                 absl::string_view what) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRocks(s, what));
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<ChunkEntry> RocksBackend::GetChunkRefs(absl::string_view raw) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   GetMeta(ChunkRefKey(raw), "reading a chunk refcount"));
  ChunkEntry out;
  if (!v.has_value()) return out;
  if (v->size() != 12) return CorruptRecord("chunk refcount");
  out.refs = static_cast<int64_t>(GetFixed64(v->data()));
  out.size = GetFixed32(v->data() + 8);
  return out;
}

// ---- RecordReader. -------------------------------------------------------------------
absl::StatusOr<Head> RocksBackend::ReadHead() {
  absl::ReaderMutexLock state(&state_mu_);
  return head_;
}

absl::StatusOr<std::optional<ModelRecord>> RocksBackend::ReadModel(
    absl::string_view model) {
  absl::ReaderMutexLock state(&state_mu_);
  auto it = models_.find(model);
  if (it == models_.end()) return std::optional<ModelRecord>();
  return std::optional<ModelRecord>(it->second.model);
}

absl::StatusOr<std::optional<CheckpointRecord>> RocksBackend::ReadLatest(
    absl::string_view model) {
  absl::ReaderMutexLock state(&state_mu_);
  auto it = models_.find(model);
  if (it == models_.end() || it->second.model.checkpoint_count() == 0) {
    return std::optional<CheckpointRecord>();
  }
  return std::optional<CheckpointRecord>(it->second.latest);
}

absl::StatusOr<bool> RocksBackend::VisitLatest(
    absl::string_view model,
    absl::FunctionRef<void(const CheckpointRecord&, const ModelRecord&)> visit) {
  absl::ReaderMutexLock state(&state_mu_);
  auto it = models_.find(model);
  if (it == models_.end() || it->second.model.checkpoint_count() == 0) return false;
  visit(it->second.latest, it->second.model);
  return true;
}

absl::StatusOr<std::optional<CheckpointRecord>> RocksBackend::ReadCheckpoint(
    absl::string_view model, int64_t step) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   GetMeta(CheckpointKey(model, step), "reading a checkpoint"));
  if (!v.has_value()) return std::optional<CheckpointRecord>();
  CheckpointRecord r;
  if (!r.ParseFromString(*v)) return CorruptRecord("checkpoint");
  return std::optional<CheckpointRecord>(std::move(r));
}

absl::StatusOr<std::optional<CheckpointRecord>> RocksBackend::ReadCheckpointBelow(
    absl::string_view model, int64_t below) {
  std::optional<CheckpointRecord> out;
  if (below <= 0) return out;
  const std::string lower = CheckpointPrefix(model);
  const std::string upper = CheckpointKey(model, below);
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  it->SeekToLast();
  if (it->Valid()) {
    CheckpointRecord& r = out.emplace();
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return CorruptRecord("checkpoint");
    }
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "finding the latest step"));
  return out;
}

absl::StatusOr<std::optional<BlobEntry>> RocksBackend::ReadBlob(absl::string_view hex) {
  ASSIGN_OR_RETURN(std::optional<std::string> v, GetMeta(BlobKey(hex), "reading a blob"));
  if (!v.has_value()) return std::optional<BlobEntry>();
  BlobEntry e;
  if (!e.record.ParseFromString(*v)) return CorruptRecord("blob");
  ASSIGN_OR_RETURN(std::optional<std::string> refs,
                   GetMeta(BlobRefKey(hex), "reading a blob refcount"));
  if (refs.has_value()) {
    if (refs->size() != 8) return CorruptRecord("blob refcount");
    e.refs = static_cast<int64_t>(GetFixed64(refs->data()));
  }
  return std::optional<BlobEntry>(std::move(e));
}

absl::StatusOr<ChunkEntry> RocksBackend::ReadChunkEntry(absl::string_view raw) {
  return GetChunkRefs(raw);
}

// ---- Apply. --------------------------------------------------------------------------
absl::StatusOr<ApplyResult> RocksBackend::Apply(const Transaction& txn,
                                                BackendStagingArea* committing) {
  auto* area = static_cast<RocksArea*>(committing);
  ApplyResult result;
  absl::MutexLock apply(&apply_mu_);
  rocksdb::WriteBatch batch;
  if (!txn.model.empty()) {
    if (txn.model_after.has_value()) {
      batch.Put(meta_, ModelKey(txn.model), txn.model_after->SerializeAsString());
    } else {
      batch.Delete(meta_, ModelKey(txn.model));
    }
  }
  for (const CheckpointRecord& r : txn.put_checkpoints) {
    batch.Put(meta_, CheckpointKey(txn.model, r.step()), r.SerializeAsString());
  }
  for (int64_t step : txn.removed_steps)
    batch.Delete(meta_, CheckpointKey(txn.model, step));
  for (const BlobWrite& b : txn.blobs) {
    if (b.refs_after == 0) {
      batch.Delete(meta_, BlobKey(b.hex));
      batch.Delete(meta_, BlobRefKey(b.hex));
      continue;
    }
    if (b.created.has_value()) {
      batch.Put(meta_, BlobKey(b.hex), b.created->SerializeAsString());
    }
    std::string refs;
    PutFixed64(&refs, static_cast<uint64_t>(b.refs_after));
    batch.Put(meta_, BlobRefKey(b.hex), refs);
  }
  if (!txn.events.empty()) {
    for (const Event& e : txn.events) {
      // Events beyond the window already (a retention deleting more steps than it
      // holds) are not written, so that applying again does not bring them back.
      if (e.revision() < txn.head_after.oldest_event) continue;
      batch.Put(meta_, EventKey(e.revision()), e.SerializeAsString());
    }
    int64_t oldest;
    {
      absl::ReaderMutexLock state(&state_mu_);
      oldest = head_.oldest_event;
    }
    for (; oldest < txn.head_after.oldest_event; ++oldest) {
      batch.Delete(meta_, EventKey(oldest));
    }
    std::string rev;
    PutFixed64(&rev, static_cast<uint64_t>(txn.head_after.revision));
    batch.Put(meta_, kRevisionKey, rev);
  }

  bool deletes_bytes = false;
  {
    absl::MutexLock stage(&stage_mu_);
    std::vector<const ChunkWrite*> committed, restaged;
    for (const ChunkWrite& c : txn.chunks) {
      ASSIGN_OR_RETURN(ChunkEntry before, GetChunkRefs(c.raw));
      if (c.refs_after > 0) {
        std::string v;
        PutFixed64(&v, static_cast<uint64_t>(c.refs_after));
        PutFixed32(&v, c.size);
        batch.Put(meta_, ChunkRefKey(c.raw), v);
        if (before.refs == 0) {
          batch.Delete(meta_, StagedKey(c.raw));
          committed.push_back(&c);
        }
        continue;
      }
      batch.Delete(meta_, ChunkRefKey(c.raw));
      if (staged_.contains(c.raw)) {
        // Still held by an open upload: its bytes stay, with the marker back.
        std::string marker;
        PutFixed32(&marker, c.size);
        batch.Put(meta_, StagedKey(c.raw), marker);
        restaged.push_back(&c);
      } else {
        batch.Delete(chunks_, c.raw);
        deletes_bytes = true;
        if (before.refs > 0) result.freed_bytes += c.size;
      }
    }
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    RETURN_IF_ERROR(Failed(Note(db_->Write(wo, &batch)), txn.what));
    if (deletes_bytes) RequestReclaim();

    for (const ChunkWrite* c : committed) {
      auto it = staged_.find(c->raw);
      if (it != staged_.end() && it->second.uncommitted) {
        it->second.uncommitted = false;
        it->second.put_seq = 0;
        --staged_uncommitted_;
      }
    }
    for (const ChunkWrite* c : restaged) {
      auto it = staged_.find(c->raw);
      if (it != staged_.end() && !it->second.uncommitted) {
        it->second.uncommitted = true;
        it->second.put_seq = 0;  // its bytes were durable when it was committed
        ++staged_uncommitted_;
      }
    }
    if (area != nullptr) {
      // The chunks were just committed, so releasing them deletes nothing.
      rocksdb::WriteBatch none;
      for (const ChunkWrite& c : txn.chunks) {
        if (c.release_hold && c.refs_after > 0 && area->held()->erase(c.raw) > 0) {
          ReleaseLocked(c.raw, &none);
        }
      }
    }

    absl::MutexLock state(&state_mu_);
    head_ = txn.head_after;
    if (!txn.model.empty()) {
      if (!txn.model_after.has_value()) {
        models_.erase(txn.model);
      } else {
        ModelState& m = models_[txn.model];
        m.model = *txn.model_after;
        if (txn.latest_after.has_value()) {
          m.latest = *txn.latest_after;
        } else {
          m.latest.Clear();
        }
      }
    }
  }
  if (listener_) {
    for (const Event& e : txn.events) listener_(e);
  }
  return result;
}

void RocksBackend::SetEventListener(std::function<void(const Event&)> listener) {
  absl::MutexLock apply(&apply_mu_);
  listener_ = std::move(listener);
}

// ---- Reads the Store serves. ---------------------------------------------------------
absl::StatusOr<std::vector<ModelRecord>> RocksBackend::ListModels(
    absl::string_view start_after, int limit) {
  absl::ReaderMutexLock state(&state_mu_);
  std::vector<ModelRecord> out;
  for (auto it = models_.upper_bound(start_after); it != models_.end(); ++it) {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
    if (it->second.model.checkpoint_count() == 0) continue;
    out.push_back(it->second.model);
  }
  return out;
}

absl::StatusOr<std::vector<CheckpointRecord>> RocksBackend::ListCheckpoints(
    absl::string_view model, int64_t first, int limit) {
  std::vector<CheckpointRecord> out;
  const std::string prefix = CheckpointPrefix(model);
  std::string upper = prefix;
  upper.back() = '\x01';
  rocksdb::Slice hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  for (it->Seek(CheckpointKey(model, first)); it->Valid(); it->Next()) {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
    CheckpointRecord& r = out.emplace_back();
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return CorruptRecord("checkpoint");
    }
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing checkpoints"));
  return out;
}

absl::StatusOr<std::optional<std::string>> RocksBackend::ReadChunkBytes(
    absl::string_view raw) {
  // Chunk bytes are verified end to end by SHA-256 (the restoring client checks every
  // file's digest), so RocksDB's software CRC32C of each blob is skipped: it was half
  // the server's CPU when streaming (measured by bench/pull_bench).
  rocksdb::ReadOptions read_options;
  read_options.verify_checksums = false;
  rocksdb::PinnableSlice value;
  rocksdb::Status s =
      db_->Get(read_options, chunks_, rocksdb::Slice(raw.data(), raw.size()), &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRocks(s, absl::StrCat("reading chunk ", ChunkName(raw))));
  return std::optional<std::string>(value.ToString());
}

absl::StatusOr<bool> RocksBackend::HasChunk(absl::string_view raw) {
  {
    absl::MutexLock lock(&stage_mu_);
    auto it = staged_.find(raw);
    if (it != staged_.end() && !it->second.writing) return true;
  }
  ASSIGN_OR_RETURN(ChunkEntry v, GetChunkRefs(raw));
  return v.refs > 0;
}

absl::StatusOr<EventPage> RocksBackend::ReadEvents(int64_t after_revision, int limit) {
  EventPage page;
  int64_t oldest;
  {
    absl::ReaderMutexLock state(&state_mu_);
    page.current_revision = head_.revision;
    oldest = head_.oldest_event;
  }
  page.oldest_revision = oldest <= page.current_revision ? oldest : 0;
  if (after_revision >= page.current_revision) return page;
  // Events up to current_revision are all written; a write after the head was read
  // may have trimmed the first ones, which the iterator (one consistent view) shows.
  const int64_t first = std::max(after_revision + 1, oldest);
  const std::string lo = EventKey(first), hi = EventKey(page.current_revision + 1);
  rocksdb::Slice upper(hi);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  for (it->Seek(lo); it->Valid(); it->Next()) {
    if (limit > 0 && static_cast<int>(page.events.size()) >= limit) break;
    Event& e = page.events.emplace_back();
    if (!e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return CorruptRecord("event");
    }
    if (page.events.size() > 1 &&
        e.revision() != page.events[page.events.size() - 2].revision() + 1) {
      return CorruptRecord("event");
    }
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading events"));
  return page;
}

absl::Status RocksBackend::EngineStats(StoreStats* s) {
  {
    absl::MutexLock lock(&stage_mu_);
    s->staged_chunks = staged_uncommitted_;
  }
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    uint64_t v = 0;
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kTotalBlobFileSize, &v)) {
      s->blob_file_bytes += static_cast<int64_t>(v);
    }
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kEstimatePendingCompactionBytes,
                            &v)) {
      s->pending_compaction_bytes += static_cast<int64_t>(v);
    }
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kLiveSstFilesSize, &v)) {
      s->live_sst_bytes += static_cast<int64_t>(v);
    }
  }
  return absl::OkStatus();
}

absl::Status RocksBackend::Scan(RecordSink* sink) {
  // Collects the chunks of failed writes if the store can write again.
  MaybeResume().IgnoreError();
  const rocksdb::Snapshot* snapshot = nullptr;
  {
    // One view: no apply and no staging change happens while it is taken.
    absl::MutexLock apply(&apply_mu_);
    absl::MutexLock stage(&stage_mu_);
    for (const auto& [sha, staged] : staged_) sink->AddHeld(sha);
    // Chunks of failed staging writes: the store collects them at its next resume or
    // open (MaybeResume below, and the upkeep thread, try first); not leaks.
    for (const std::string& sha : orphans_) sink->AddHeld(sha);
    absl::ReaderMutexLock state(&state_mu_);
    sink->AddServedHead(head_);
    for (const auto& [name, m] : models_) {
      sink->AddServedModel(m.model, m.model.checkpoint_count() > 0
                                        ? std::optional<CheckpointRecord>(m.latest)
                                        : std::nullopt);
    }
    snapshot = db_->GetSnapshot();
  }
  rocksdb::ManagedSnapshot release(db_.get(), snapshot);
  auto scan = [&](rocksdb::ColumnFamilyHandle* family, absl::string_view lo,
                  absl::string_view hi, auto&& fn) -> absl::Status {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot;
    ro.fill_cache = false;
    const std::string upper(hi);
    rocksdb::Slice upper_slice(upper);
    if (!hi.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, family));
    for (it->Seek(rocksdb::Slice(lo.data(), lo.size())); it->Valid(); it->Next()) {
      fn(absl::string_view(it->key().data(), it->key().size()),
         absl::string_view(it->value().data(), it->value().size()));
    }
    return FromRocks(it->status(), "checking the store");
  };
  auto prefix = [&](char p, auto&& fn) {
    return scan(meta_, std::string(1, p), std::string(1, static_cast<char>(p + 1)), fn);
  };

  RETURN_IF_ERROR(prefix('R', [&](absl::string_view, absl::string_view v) {
    if (v.size() == 8) sink->SetRevision(static_cast<int64_t>(GetFixed64(v.data())));
  }));
  RETURN_IF_ERROR(prefix('M', [&](absl::string_view key, absl::string_view v) {
    ModelRecord m;
    if (!m.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      sink->AddProblem(absl::StrCat("corrupt model record '", key.substr(1), "'"));
      return;
    }
    sink->AddModel(m);
  }));
  RETURN_IF_ERROR(prefix('C', [&](absl::string_view key, absl::string_view v) {
    const size_t nul = key.find('\0');
    CheckpointRecord r;
    if (nul == absl::string_view::npos || key.size() != nul + 9 ||
        !r.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      sink->AddProblem("corrupt checkpoint record");
      return;
    }
    uint64_t step = 0;
    for (size_t i = nul + 1; i < key.size(); ++i) {
      step = (step << 8) | static_cast<unsigned char>(key[i]);
    }
    sink->AddCheckpoint(key.substr(1, nul - 1), static_cast<int64_t>(step), r);
  }));
  std::map<std::string, int64_t> blob_refs;
  RETURN_IF_ERROR(prefix('b', [&](absl::string_view key, absl::string_view v) {
    blob_refs[std::string(key.substr(1))] =
        v.size() == 8 ? static_cast<int64_t>(GetFixed64(v.data())) : -1;
  }));
  RETURN_IF_ERROR(prefix('B', [&](absl::string_view key, absl::string_view v) {
    BlobRecord b;
    const bool parsed = b.ParseFromArray(v.data(), static_cast<int>(v.size()));
    const std::string blob_key = parsed ? mgreg::BlobKey(b) : std::string();
    if (!parsed || blob_key != key.substr(1)) {
      sink->AddProblem(absl::StrCat("corrupt blob record ", key.substr(1)));
      return;
    }
    auto refs = blob_refs.find(blob_key);
    sink->AddBlob(b, refs == blob_refs.end() ? 0 : refs->second);
    if (refs != blob_refs.end()) blob_refs.erase(refs);
  }));
  for (const auto& [hex, refs] : blob_refs) sink->AddOrphanBlobRefcount(hex, refs);
  RETURN_IF_ERROR(prefix('K', [&](absl::string_view key, absl::string_view v) {
    if (v.size() != 12) {
      sink->AddProblem(
          absl::StrCat("corrupt refcount of chunk ", ChunkName(key.substr(1))));
      return;
    }
    sink->AddChunkRefcount(key.substr(1), static_cast<int64_t>(GetFixed64(v.data())),
                           GetFixed32(v.data() + 8));
  }));
  RETURN_IF_ERROR(prefix('S', [&](absl::string_view key, absl::string_view) {
    sink->AddStagedMark(key.substr(1));
  }));
  RETURN_IF_ERROR(prefix('E', [&](absl::string_view, absl::string_view v) {
    Event e;
    if (!e.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      sink->AddProblem("corrupt event record");
      return;
    }
    sink->AddEvent(e);
  }));
  return scan(chunks_, "", "", [&](absl::string_view key, absl::string_view v) {
    sink->AddChunkBytes(key, v);
  });
}

absl::Status RocksBackend::Backup(const std::string& dir) {
  // A RocksDB checkpoint: flushes the memtables, then hard-links (or copies) the live
  // files of every column family and the WAL, a consistent point-in-time copy.
  rocksdb::Checkpoint* raw = nullptr;
  RETURN_IF_ERROR(
      FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "preparing a backup"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocks(checkpoint->CreateCheckpoint(dir), "writing a backup");
}

}  // namespace mgreg::rocks
