#include "storage/consistency_check.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/sha256.h"
#include "storage/blob_key.h"
#include "storage/planner.h"

namespace mgreg::storage_internal {

using planner::ChunkName;
using planner::HasSettings;
using planner::StepName;

void ConsistencyCheck::AddModel(const storage::ModelRecord& model) {
  if (!models_.emplace(model.name(), model).second) {
    AddProblem(absl::StrCat("model '", model.name(), "' has two records"));
  }
}

void ConsistencyCheck::AddCheckpoint(absl::string_view key_model, int64_t key_step,
                                     const storage::CheckpointRecord& record) {
  const std::string where = StepName(key_model, key_step);
  if (record.model() != key_model || record.step() != key_step) {
    AddProblem(absl::StrCat("checkpoint stored as ", where, " says it is ",
                            StepName(record.model(), record.step())));
  }
  if (record.files_size() == 0) AddProblem(absl::StrCat(where, " has no files"));
  for (int i = 1; i < record.files_size(); ++i) {
    if (record.files(i - 1).name() >= record.files(i).name()) {
      AddProblem(absl::StrCat(where, " lists its files unsorted or twice ('",
                              record.files(i).name(), "')"));
    }
  }
  if (record.revision() > 0 && revision_ > 0 && record.revision() > revision_) {
    AddProblem(absl::StrCat(where, " has revision ", record.revision(),
                            ", newer than the store's ", revision_));
  }
  files_ += record.files_size();
  steps_[std::string(key_model)][key_step] = record;
}

void ConsistencyCheck::AddBlob(const storage::BlobRecord& blob, int64_t stored_refs) {
  blobs_[BlobKey(blob)] = {blob, stored_refs};
}

void ConsistencyCheck::AddOrphanBlobRefcount(absl::string_view sha256_hex, int64_t refs) {
  orphan_blob_refs_[std::string(sha256_hex)] = refs;
}

void ConsistencyCheck::AddChunkRefcount(absl::string_view sha256_raw, int64_t refs,
                                        uint32_t size) {
  ChunkInfo& c = chunks_[std::string(sha256_raw)];
  c.stored_refs = refs;
  c.recorded_size = size;
}

void ConsistencyCheck::AddChunkBytes(absl::string_view sha256_raw,
                                     absl::string_view bytes) {
  ChunkInfo& c = chunks_[std::string(sha256_raw)];
  c.bytes_size = bytes.size();
  if (Sha256Raw(bytes) != sha256_raw) {
    AddProblem(absl::StrCat("chunk ", ChunkName(sha256_raw),
                            ": stored bytes do not match its SHA-256 (data loss)"));
  }
}

void ConsistencyCheck::AddChunkSize(absl::string_view sha256_raw, uint64_t size) {
  chunks_[std::string(sha256_raw)].bytes_size = size;
}

void ConsistencyCheck::AddHeld(absl::string_view sha256_raw) {
  chunks_[std::string(sha256_raw)].held = true;
}

void ConsistencyCheck::AddStagedMark(absl::string_view sha256_raw) {
  chunks_[std::string(sha256_raw)].staged_mark = true;
}

void ConsistencyCheck::AddServedHead(const Head& head) { served_head_ = head; }

void ConsistencyCheck::AddServedModel(
    const storage::ModelRecord& model,
    const std::optional<storage::CheckpointRecord>& latest) {
  served_models_[model.name()] = Served{model, latest};
}

void ConsistencyCheck::AddEvent(const storage::Event& event) {
  event_revisions_.push_back(event.revision());
}

void ConsistencyCheck::SetRevision(int64_t revision) { revision_ = revision; }

void ConsistencyCheck::AddProblem(std::string problem) {
  problems_.push_back(std::move(problem));
}

CheckReport ConsistencyCheck::Finish() {
  CheckReport report;
  // Steps against their blobs; count the references each blob should have.
  std::map<std::string, int64_t> blob_refs;
  for (const auto& [model, steps] : steps_) {
    for (const auto& [step, record] : steps) {
      for (const auto& f : record.files()) {
        const std::string key = BlobKey(f);
        ++blob_refs[key];
        auto b = blobs_.find(key);
        if (b == blobs_.end()) {
          AddProblem(absl::StrCat("file '", f.name(), "' of ", StepName(model, step),
                                  " names blob ", key, " which is not stored"));
        } else if (b->second.first.size() != f.size()) {
          AddProblem(absl::StrCat("file '", f.name(), "' of ", StepName(model, step),
                                  " has size ", f.size(), " but its blob has ",
                                  b->second.first.size()));
        }
      }
    }
  }
  // Blobs: refcounts, sizes; count the references each chunk should have.
  for (const auto& [hex, blob_and_refs] : blobs_) {
    const auto& [blob, stored] = blob_and_refs;
    const int64_t want = blob_refs.count(hex) ? blob_refs[hex] : 0;
    if (stored != want) {
      AddProblem(absl::StrCat("blob ", hex, " has refcount ", stored, " but ", want,
                              want == 0 ? " files name it (leaked)" : " files name it"));
    }
    int64_t sum = 0;
    for (const storage::ChunkRef& c : blob.chunks()) {
      sum += c.size();
      ChunkInfo& info = chunks_[c.sha256()];
      ++info.slots;
      if (info.slot_size.has_value() && *info.slot_size != c.size()) {
        AddProblem(
            absl::StrCat("chunk ", ChunkName(c.sha256()), " is listed with two sizes"));
      }
      info.slot_size = c.size();
    }
    if (sum != blob.size()) {
      AddProblem(absl::StrCat("blob ", hex, " has size ", blob.size(),
                              " but its chunks add up to ", sum));
    }
  }
  for (const auto& [hex, refs] : orphan_blob_refs_) {
    AddProblem(
        absl::StrCat("blob ", hex, " has a refcount (", refs, ") but no blob record"));
  }
  // Chunks: refcounts, presence, sizes, leaks.
  for (const auto& [raw, c] : chunks_) {
    const std::string name = ChunkName(raw);
    const int64_t stored = c.stored_refs.value_or(0);
    if (stored != c.slots) {
      AddProblem(absl::StrCat("chunk ", name, " has refcount ", stored, " but ", c.slots,
                              " blob slots list it"));
    }
    if (c.slots > 0) {
      if (!c.bytes_size.has_value()) {
        AddProblem(
            absl::StrCat("chunk ", name, " is referenced but not stored (missing)"));
      } else if (c.slot_size.has_value() && *c.bytes_size != *c.slot_size) {
        AddProblem(absl::StrCat("chunk ", name, " has ", *c.bytes_size,
                                " bytes stored but is listed with ", *c.slot_size));
      }
      if (c.stored_refs.has_value() && c.slot_size.has_value() &&
          c.recorded_size != *c.slot_size) {
        AddProblem(absl::StrCat("chunk ", name, " records size ", c.recorded_size,
                                " but is listed with ", *c.slot_size));
      }
    } else if (c.bytes_size.has_value()) {
      if (c.held) {
        ++report.staged_chunks;
      } else {
        AddProblem(absl::StrCat("chunk ", name, " (", *c.bytes_size,
                                " bytes) is stored but nothing references or holds it "
                                "(leaked)"));
      }
    }
    if (c.staged_mark && c.stored_refs.has_value()) {
      AddProblem(
          absl::StrCat("chunk ", name, " is committed but still marked as staged"));
    } else if (c.staged_mark && !c.held) {
      AddProblem(absl::StrCat("chunk ", name,
                              " is marked as staged but no open upload holds it"));
    }
    if (c.bytes_size.has_value()) {
      ++report.chunks;
      report.chunk_bytes += static_cast<int64_t>(*c.bytes_size);
    }
  }
  // Models against their steps; aliases.
  for (const auto& [name, steps] : steps_) {
    auto m = models_.find(name);
    if (m == models_.end()) {
      AddProblem(absl::StrCat("model '", name, "' has ", steps.size(),
                              " steps but no model record"));
      continue;
    }
    if (m->second.checkpoint_count() != static_cast<int64_t>(steps.size())) {
      AddProblem(absl::StrCat("model '", name, "' records ", m->second.checkpoint_count(),
                              " steps but has ", steps.size()));
    }
    if (!steps.empty() && m->second.latest_step() != steps.rbegin()->first) {
      AddProblem(absl::StrCat("model '", name, "' records latest step ",
                              m->second.latest_step(), " but its highest step is ",
                              steps.rbegin()->first));
    }
  }
  for (const auto& [name, model] : models_) {
    auto s = steps_.find(name);
    const size_t n = s == steps_.end() ? 0 : s->second.size();
    if (n == 0 && model.checkpoint_count() != 0) {
      AddProblem(absl::StrCat("model '", name, "' records ", model.checkpoint_count(),
                              " steps but has none"));
    }
    if (n == 0 && model.checkpoint_count() == 0 && !HasSettings(model)) {
      AddProblem(
          absl::StrCat("model '", name, "' has a record but neither steps nor settings"));
    }
    for (const auto& [alias, step] : model.aliases()) {
      if (s == steps_.end() || s->second.count(step) == 0) {
        AddProblem(absl::StrCat("alias '", alias, "' of model '", name, "' names step ",
                                step, " which does not exist"));
      }
    }
  }
  // Events: consecutive, ending at the revision.
  for (size_t i = 1; i < event_revisions_.size(); ++i) {
    if (event_revisions_[i] != event_revisions_[i - 1] + 1) {
      AddProblem(absl::StrCat("events jump from revision ", event_revisions_[i - 1],
                              " to ", event_revisions_[i]));
      break;
    }
  }
  if (!event_revisions_.empty() && event_revisions_.back() != revision_) {
    AddProblem(absl::StrCat("the newest event has revision ", event_revisions_.back(),
                            " but the store is at revision ", revision_));
  }

  report.models = static_cast<int64_t>(models_.size());
  for (const auto& [name, steps] : steps_) {
    report.checkpoints += static_cast<int64_t>(steps.size());
  }
  report.files = files_;
  report.blobs = static_cast<int64_t>(blobs_.size());
  report.events = static_cast<int64_t>(event_revisions_.size());
  report.revision = revision_;
  CheckServed(report);
  report.problems = std::move(problems_);
  return report;
}

// What the backend serves from memory against what it stores.
void ConsistencyCheck::CheckServed(const CheckReport& report) {
  for (const auto& [name, served] : served_models_) {
    auto m = models_.find(name);
    if (m == models_.end()) {
      AddProblem(
          absl::StrCat("the store serves model '", name, "' which has no stored record"));
    } else if (m->second.latest_step() != served.model.latest_step() ||
               m->second.checkpoint_count() != served.model.checkpoint_count()) {
      AddProblem(absl::StrCat("the store serves model '", name,
                              "' with a latest step or count other than stored"));
    } else if (served.model.checkpoint_count() > 0 &&
               (!served.latest.has_value() ||
                served.latest->step() != served.model.latest_step())) {
      AddProblem(absl::StrCat("the store serves a latest step of model '", name,
                              "' other than its record names"));
    }
  }
  if (!served_head_.has_value()) return;
  for (const auto& [name, m] : models_) {
    if (served_models_.find(name) == served_models_.end()) {
      AddProblem(absl::StrCat("model '", name, "' is stored but not served"));
    }
  }
  const Head& h = *served_head_;
  if (h.revision != revision_) {
    AddProblem(absl::StrCat("the store serves revision ", h.revision, " but has stored ",
                            revision_));
  }
  int64_t listed = 0, chunks = 0, chunk_bytes = 0;
  for (const auto& [name, steps] : steps_) listed += steps.empty() ? 0 : 1;
  for (const auto& [raw, c] : chunks_) {
    if (c.slots == 0) continue;
    ++chunks;
    chunk_bytes += c.slot_size.value_or(0);
  }
  auto compare = [&](absl::string_view what, int64_t served, int64_t counted) {
    if (served == counted) return;
    AddProblem(
        absl::StrCat("the store counts ", served, " ", what, " but holds ", counted));
  };
  compare("models with steps", h.models, listed);
  compare("checkpoints", h.checkpoints, report.checkpoints);
  compare("blobs", h.blobs, report.blobs);
  compare("committed chunks", h.chunks, chunks);
  compare("committed chunk bytes", h.chunk_bytes, chunk_bytes);
}

}  // namespace mgreg::storage_internal
