#include "metagraph/retention.h"

#include <algorithm>
#include <cmath>

namespace mgreg {

RetentionPlan PlanRetention(std::vector<RetentionCandidate> steps, int max_to_keep,
                            double keep_every_n_hours, int64_t last_preserved_micros) {
  RetentionPlan plan;
  plan.last_preserved_micros = last_preserved_micros;
  if (max_to_keep <= 0) return plan;
  std::vector<RetentionCandidate> active;
  for (const RetentionCandidate& c : steps) {
    if (!c.preserved && !c.protected_step) active.push_back(c);
  }
  std::sort(active.begin(), active.end(),
            [](const RetentionCandidate& a, const RetentionCandidate& b) {
              return a.step < b.step;
            });
  const int64_t every_micros =
      keep_every_n_hours > 0
          ? static_cast<int64_t>(std::llround(keep_every_n_hours * 3600e6))
          : 0;
  const size_t keep = static_cast<size_t>(max_to_keep);
  for (size_t i = 0; active.size() - i > keep; ++i) {
    const RetentionCandidate& oldest = active[i];
    if (every_micros > 0 &&
        oldest.commit_time_micros - every_micros >= plan.last_preserved_micros) {
      plan.preserve_steps.push_back(oldest.step);
      plan.last_preserved_micros = oldest.commit_time_micros;
    } else {
      plan.delete_steps.push_back(oldest.step);
    }
  }
  return plan;
}

}  // namespace mgreg
