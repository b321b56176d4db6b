// Which steps retention deletes, with TensorFlow CheckpointManager's semantics
// (EXPORT_SEMANTICS C2, C6), as a pure function over a model's steps.
#ifndef MGREG_METAGRAPH_RETENTION_H_
#define MGREG_METAGRAPH_RETENTION_H_

#include <cstdint>
#include <vector>

namespace mgreg {

struct RetentionCandidate {
  int64_t step = 0;
  int64_t commit_time_micros = 0;
  // Already kept forever by the every-N-hours rule: no longer in the active list.
  bool preserved = false;
  // Pinned or named by an alias: never deleted and not counted.
  bool protected_step = false;
};

struct RetentionPlan {
  std::vector<int64_t> delete_steps;
  // Steps the every-N-hours rule keeps forever from now on.
  std::vector<int64_t> preserve_steps;
  int64_t last_preserved_micros = 0;
};

// CheckpointManager's sweep: the active steps (neither preserved nor protected), oldest
// (lowest step) first; while more than `max_to_keep` remain, the oldest leaves the list:
// if keep_every_n_hours > 0 and its commit time is at least N hours after
// `last_preserved_micros` it is preserved (and becomes the new last preserved time),
// otherwise it is deleted. max_to_keep <= 0 keeps everything.
RetentionPlan PlanRetention(std::vector<RetentionCandidate> steps, int max_to_keep,
                            double keep_every_n_hours, int64_t last_preserved_micros);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_RETENTION_H_
