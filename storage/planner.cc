// The mutation plans (storage/planner.h). Each plan reads what it needs through the
// view, changes a Draft of one model, and Finish turns the draft into a Transaction of
// absolute values: the latest step, the model record, the counters, the blob and chunk
// reference counts, the events with their revisions and the event window.
#include "storage/planner.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "storage/blob_key.h"

namespace mgreg {
namespace {

using planner::ChunkName;
using planner::CorruptRecord;
using planner::StepName;
using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::Event;
using storage::ModelRecord;

Event MakeEvent(Event::Type type, absl::string_view model, int64_t step,
                absl::string_view alias, int64_t time_micros) {
  Event e;
  e.set_type(type);
  e.set_model(std::string(model));
  e.set_step(step);
  e.set_alias(std::string(alias));
  e.set_time_micros(time_micros);
  return e;
}

// FAILED_PRECONDITION naming the aliases of `model` that name `step`; OK if none does.
absl::Status CheckNoAliasNames(const ModelRecord& model, int64_t step) {
  std::vector<std::string> names;
  for (const auto& [alias, target] : model.aliases()) {
    if (target == step) names.push_back(absl::StrCat("'", alias, "'"));
  }
  if (names.empty()) return absl::OkStatus();
  std::sort(names.begin(), names.end());
  return absl::FailedPreconditionError(
      absl::StrCat(StepName(model.name(), step), " is named by alias ",
                   absl::StrJoin(names, ", "), "; move or remove the alias first"));
}

// One mutation of one model being planned: the view's records with this mutation's
// changes laid over them.
class Draft {
 public:
  Draft(RecordReader& view, absl::string_view model) : view_(view), name_(model) {}

  absl::Status Begin() {
    ASSIGN_OR_RETURN(head_, view_.ReadHead());
    ASSIGN_OR_RETURN(std::optional<ModelRecord> m, view_.ReadModel(name_));
    if (m.has_value()) {
      model_ = std::move(*m);
      count_before_ = model_.checkpoint_count();
      existed_ = true;
    } else {
      model_.set_name(name_);
    }
    return absl::OkStatus();
  }

  ModelRecord& model() { return model_; }
  const std::string& name() const { return name_; }
  bool existed() const { return existed_; }
  int64_t count_before() const { return count_before_; }
  int64_t revision_before() const { return head_.revision; }
  int64_t revision_after() const {
    return head_.revision + static_cast<int64_t>(events_.size());
  }

  // The step's record as this draft leaves it; nullopt if it does not exist.
  absl::StatusOr<std::optional<CheckpointRecord>> Step(int64_t step) {
    if (removed_.contains(step)) return std::optional<CheckpointRecord>();
    auto put = put_.find(step);
    if (put != put_.end()) return std::optional<CheckpointRecord>(put->second);
    return view_.ReadCheckpoint(name_, step);
  }

  void PutStep(const CheckpointRecord& record) { put_[record.step()] = record; }

  // Removes a step exactly as DeleteCheckpoint does: its record, its blob references,
  // one DELETED event. `gone` is its record.
  void RemoveStep(const CheckpointRecord& gone, int64_t now) {
    put_.erase(gone.step());
    removed_.insert(gone.step());
    for (const auto& f : gone.files()) --blob_delta_[BlobKey(f)];
    model_.set_checkpoint_count(model_.checkpoint_count() - 1);
    AddEvent(MakeEvent(Event::DELETED, name_, gone.step(), "", now));
  }

  void AddBlobRef(const std::string& hex, int64_t delta) { blob_delta_[hex] += delta; }
  void CreateBlob(const BlobRecord* blob) { created_.push_back(blob); }
  void AddEvent(Event e) {
    e.set_revision(revision_after() + 1);
    events_.push_back(std::move(e));
  }

  // The committed reference count of a chunk, read once per draft.
  absl::StatusOr<ChunkEntry> Chunk(const std::string& raw) {
    auto it = chunks_.find(raw);
    if (it != chunks_.end()) return it->second;
    ASSIGN_OR_RETURN(ChunkEntry e, view_.ReadChunkEntry(raw));
    chunks_.emplace(raw, e);
    return e;
  }

  absl::StatusOr<Transaction> Finish(std::string what, int64_t event_window,
                                     const BackendStagingArea* committing);

 private:
  // The highest step left after this draft, when it removes the stored latest one.
  absl::StatusOr<std::optional<CheckpointRecord>> FindLatest();
  absl::Status AddRefChanges(Transaction* txn, const BackendStagingArea* committing);

  RecordReader& view_;
  const std::string name_;
  Head head_;
  ModelRecord model_;
  bool existed_ = false;
  int64_t count_before_ = 0;
  std::map<int64_t, CheckpointRecord> put_;
  absl::flat_hash_set<int64_t> removed_;
  std::map<std::string, int64_t> blob_delta_;
  std::vector<const BlobRecord*> created_;
  std::vector<Event> events_;
  std::map<std::string, ChunkEntry> chunks_;
};

absl::StatusOr<std::optional<CheckpointRecord>> Draft::FindLatest() {
  std::optional<CheckpointRecord> best;
  if (!put_.empty()) best = put_.rbegin()->second;
  // Walk the stored steps down from the stored latest one, past the removed ones.
  int64_t below = model_.latest_step();
  while (true) {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r,
                     view_.ReadCheckpointBelow(name_, below));
    if (!r.has_value()) break;
    if (best.has_value() && best->step() >= r->step()) break;
    if (!removed_.contains(r->step())) {
      auto put = put_.find(r->step());
      best = put != put_.end() ? put->second : std::move(*r);
      break;
    }
    below = r->step();
  }
  return best;
}

absl::Status Draft::AddRefChanges(Transaction* txn,
                                  const BackendStagingArea* committing) {
  Head& head = txn->head_after;
  std::map<std::string, int64_t> chunk_delta;
  std::map<std::string, uint32_t> chunk_size;
  std::map<std::string, BlobWrite> blobs;
  absl::flat_hash_set<std::string> release;
  for (const BlobRecord* b : created_) {
    const std::string key = BlobKey(*b);
    BlobWrite& w = blobs[key];
    w.hex = key;
    w.created = *b;
    ++head.blobs;
    for (const ChunkRef& c : b->chunks()) {
      ++chunk_delta[c.sha256()];
      chunk_size[c.sha256()] = c.size();
      if (committing != nullptr && committing->Holds(c.sha256()))
        release.insert(c.sha256());
    }
  }
  for (const auto& [hex, d] : blob_delta_) {
    if (d == 0) continue;
    auto created = blobs.find(hex);
    int64_t refs = 0;
    std::optional<BlobEntry> stored;
    if (created == blobs.end()) {
      ASSIGN_OR_RETURN(stored, view_.ReadBlob(hex));
      if (!stored.has_value()) return CorruptRecord("blob");
      refs = stored->refs;
    }
    const int64_t after = refs + d;
    if (after < 0) return CorruptRecord("blob refcount");
    BlobWrite& w = blobs[hex];
    w.hex = hex;
    w.refs_after = after;
    if (after > 0) continue;
    --head.blobs;
    for (const ChunkRef& c : stored->record.chunks()) {
      --chunk_delta[c.sha256()];
      chunk_size[c.sha256()] = c.size();
    }
  }
  for (auto& [hex, w] : blobs) txn->blobs.push_back(std::move(w));
  for (const auto& [raw, d] : chunk_delta) {
    const bool releases = release.contains(raw);
    if (d == 0 && !releases) continue;
    ASSIGN_OR_RETURN(ChunkEntry e, Chunk(raw));
    const uint32_t size = e.refs > 0 ? e.size : chunk_size[raw];
    const int64_t after = e.refs + d;
    if (after < 0) return CorruptRecord("chunk refcount");
    if (e.refs == 0 && after > 0) {
      ++head.chunks;
      head.chunk_bytes += size;
    } else if (e.refs > 0 && after == 0) {
      --head.chunks;
      head.chunk_bytes -= size;
    }
    txn->chunks.push_back(ChunkWrite{raw, size, after, releases});
  }
  return absl::OkStatus();
}

absl::StatusOr<Transaction> Draft::Finish(std::string what, int64_t event_window,
                                          const BackendStagingArea* committing) {
  Transaction txn;
  txn.what = std::move(what);
  txn.head_before = head_;
  txn.model = name_;
  Head& head = txn.head_after;
  head = head_;

  // The latest step.
  const bool has_steps = model_.checkpoint_count() > 0;
  if (!has_steps) {
    model_.set_latest_step(0);
  } else if (count_before_ > 0 && removed_.contains(model_.latest_step())) {
    ASSIGN_OR_RETURN(txn.latest_after, FindLatest());
    if (!txn.latest_after.has_value()) return CorruptRecord("model");
    model_.set_latest_step(txn.latest_after->step());
  } else if (auto put = put_.find(model_.latest_step()); put != put_.end()) {
    txn.latest_after = put->second;
  } else {
    ASSIGN_OR_RETURN(txn.latest_after, view_.ReadLatest(name_));
    if (!txn.latest_after.has_value()) return CorruptRecord("model");
  }
  if (has_steps || planner::HasSettings(model_)) txn.model_after = model_;
  head.checkpoints += model_.checkpoint_count() - count_before_;
  head.models += (has_steps ? 1 : 0) - (count_before_ > 0 ? 1 : 0);

  for (auto& [step, record] : put_) txn.put_checkpoints.push_back(record);
  txn.removed_steps.assign(removed_.begin(), removed_.end());
  std::sort(txn.removed_steps.begin(), txn.removed_steps.end());
  RETURN_IF_ERROR(AddRefChanges(&txn, committing));

  // Events, the window, the revision.
  head.revision = revision_after();
  if (!events_.empty()) {
    head.oldest_event = std::max(head.oldest_event, head.revision - event_window + 1);
  }
  txn.events = std::move(events_);
  return txn;
}

}  // namespace

Planner::Planner(int64_t event_window)
    : event_window_(std::max<int64_t>(event_window, 1)) {}

absl::StatusOr<CommitPlan> Planner::PlanCommit(RecordReader& view,
                                               const CommitRequest& request,
                                               const NewBlobs& new_blobs,
                                               const BackendStagingArea* area,
                                               int64_t now) const {
  const CheckpointRecord& in = request.record;
  const std::string where = StepName(in.model(), in.step());
  Draft d(view, in.model());
  RETURN_IF_ERROR(d.Begin());
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> old, d.Step(in.step()));
  if (old.has_value()) {
    auto blob_of =
        [&](const storage::FileRecord& f) -> absl::StatusOr<std::optional<BlobRecord>> {
      const std::string key = BlobKey(f);
      if (auto n = new_blobs.find(key); n != new_blobs.end()) return *n->second;
      ASSIGN_OR_RETURN(std::optional<BlobEntry> stored, view.ReadBlob(key));
      if (!stored.has_value()) return std::optional<BlobRecord>();
      return std::optional<BlobRecord>(std::move(stored->record));
    };
    ASSIGN_OR_RETURN(bool same, planner::SameContent(*old, in, blob_of));
    if (same) return CommitPlan{CommitResult{*old, true}, {}};
    RETURN_IF_ERROR(
        planner::CheckReplace(d.model(), *old, request.overwrite, request.force));
  }

  // Which blobs to create; everything they need must be here.
  absl::flat_hash_set<std::string> seen;
  std::vector<const BlobRecord*> created;
  for (const auto& f : in.files()) {
    const std::string key = BlobKey(f);
    if (!seen.insert(key).second) continue;
    ASSIGN_OR_RETURN(std::optional<BlobEntry> stored, view.ReadBlob(key));
    if (stored.has_value()) {
      if (stored->record.size() != f.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "file '", f.name(), "' has size ", f.size(), " but the stored blob ", key,
            " has ", stored->record.size(), " bytes"));
      }
      continue;
    }
    auto n = new_blobs.find(key);
    if (n == new_blobs.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("file '", f.name(), "' of ", where, " names blob ", key,
                       " which is neither stored nor among the new blobs"));
    }
    created.push_back(n->second);
  }
  for (const BlobRecord* blob : created) {
    for (const ChunkRef& c : blob->chunks()) {
      bool ok = area != nullptr && area->Holds(c.sha256());
      if (!ok) {
        ASSIGN_OR_RETURN(ChunkEntry e, d.Chunk(c.sha256()));
        ok = e.refs > 0;
      }
      if (!ok) {
        return absl::FailedPreconditionError(absl::StrCat(
            "blob ", BlobKey(*blob), " lists chunk ", ChunkName(c.sha256()),
            " which is neither stored nor staged in this upload; send it first"));
      }
    }
    d.CreateBlob(blob);
  }

  for (const auto& f : in.files()) d.AddBlobRef(BlobKey(f), 1);
  if (old.has_value()) {
    for (const auto& f : old->files()) d.AddBlobRef(BlobKey(f), -1);
  }
  ModelRecord& m = d.model();
  m.set_latest_step(m.checkpoint_count() == 0 ? in.step()
                                              : std::max(m.latest_step(), in.step()));
  if (!old.has_value()) m.set_checkpoint_count(m.checkpoint_count() + 1);

  CheckpointRecord record = in;
  record.set_commit_time_micros(now);
  record.set_revision(d.revision_before() + 1);
  record.set_pinned(old.has_value() && old->pinned());
  record.set_preserved(old.has_value() && old->preserved());
  d.PutStep(record);
  Event committed = MakeEvent(Event::COMMITTED, in.model(), in.step(), "", now);
  committed.set_replaced(old.has_value());
  d.AddEvent(std::move(committed));
  ASSIGN_OR_RETURN(Transaction txn,
                   d.Finish(absl::StrCat("committing ", where), event_window_, area));
  return CommitPlan{CommitResult{std::move(record), false}, std::move(txn)};
}

absl::StatusOr<Transaction> Planner::PlanDelete(RecordReader& view,
                                                absl::string_view model, int64_t step,
                                                int64_t now) const {
  Draft d(view, model);
  RETURN_IF_ERROR(d.Begin());
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> gone, d.Step(step));
  if (!gone.has_value()) return planner::StepNotFound(model, step);
  if (d.count_before() == 0) return CorruptRecord("model");
  RETURN_IF_ERROR(CheckNoAliasNames(d.model(), step));
  d.RemoveStep(*gone, now);
  return d.Finish(absl::StrCat("deleting ", StepName(model, step)), event_window_,
                  nullptr);
}

absl::StatusOr<Transaction> Planner::PlanApplyRetention(
    RecordReader& view, absl::string_view model, const std::vector<int64_t>& delete_steps,
    const std::vector<int64_t>& preserve_steps, int64_t last_preserved_micros,
    int64_t now) const {
  Draft d(view, model);
  RETURN_IF_ERROR(d.Begin());
  if (!d.existed()) return planner::UnknownModel(model);
  for (int64_t step : preserve_steps) {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r, d.Step(step));
    if (!r.has_value() || r->preserved()) continue;
    r->set_preserved(true);
    d.PutStep(*r);
  }
  d.model().set_last_preserved_micros(last_preserved_micros);
  // Never deleted: preserved in this call, or named by an alias.
  absl::flat_hash_set<int64_t> keep(preserve_steps.begin(), preserve_steps.end());
  for (const auto& [alias, target] : d.model().aliases()) keep.insert(target);
  std::vector<int64_t> candidates;
  for (int64_t step : delete_steps) {
    if (!keep.contains(step)) candidates.push_back(step);
  }
  std::sort(candidates.begin(), candidates.end());
  candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
  for (int64_t step : candidates) {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> gone, d.Step(step));
    if (!gone.has_value() || gone->pinned()) continue;
    d.RemoveStep(*gone, now);
  }
  return d.Finish(absl::StrCat("applying retention to model '", model, "'"),
                  event_window_, nullptr);
}

absl::StatusOr<Transaction> Planner::PlanSetAlias(RecordReader& view,
                                                  absl::string_view model,
                                                  absl::string_view alias, int64_t step,
                                                  int64_t now) const {
  Draft d(view, model);
  RETURN_IF_ERROR(d.Begin());
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> target, d.Step(step));
  if (!target.has_value()) return planner::StepNotFound(model, step);
  (*d.model().mutable_aliases())[std::string(alias)] = step;
  d.AddEvent(MakeEvent(Event::ALIAS_SET, model, step, alias, now));
  return d.Finish(absl::StrCat("setting alias '", alias, "' of model '", model, "'"),
                  event_window_, nullptr);
}

absl::StatusOr<Transaction> Planner::PlanRemoveAlias(RecordReader& view,
                                                     absl::string_view model,
                                                     absl::string_view alias,
                                                     int64_t now) const {
  Draft d(view, model);
  RETURN_IF_ERROR(d.Begin());
  auto* aliases = d.model().mutable_aliases();
  auto it = aliases->find(std::string(alias));
  if (it == aliases->end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no alias '", alias, "'"));
  }
  const int64_t step = it->second;
  aliases->erase(it);
  d.AddEvent(MakeEvent(Event::ALIAS_REMOVED, model, step, alias, now));
  return d.Finish(absl::StrCat("removing alias '", alias, "' of model '", model, "'"),
                  event_window_, nullptr);
}

absl::StatusOr<std::optional<Transaction>> Planner::PlanSetPinned(RecordReader& view,
                                                                  absl::string_view model,
                                                                  int64_t step,
                                                                  bool pinned) const {
  Draft d(view, model);
  RETURN_IF_ERROR(d.Begin());
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r, d.Step(step));
  if (!r.has_value()) return planner::StepNotFound(model, step);
  if (r->pinned() == pinned) return std::optional<Transaction>();
  r->set_pinned(pinned);
  d.PutStep(*r);
  ASSIGN_OR_RETURN(
      Transaction txn,
      d.Finish(absl::StrCat(pinned ? "pinning " : "unpinning ", StepName(model, step)),
               event_window_, nullptr));
  return std::optional<Transaction>(std::move(txn));
}

absl::StatusOr<Transaction> Planner::PlanSetRetention(
    RecordReader& view, absl::string_view model, const storage::RetentionPolicy& policy,
    int64_t now) const {
  RETURN_IF_ERROR(ValidateModelName(model));
  Draft d(view, model);
  RETURN_IF_ERROR(d.Begin());
  if (!d.model().has_retention()) d.model().set_last_preserved_micros(now);
  *d.model().mutable_retention() = policy;
  return d.Finish(absl::StrCat("setting the retention of model '", model, "'"),
                  event_window_, nullptr);
}

}  // namespace mgreg
