#include "server/core/settings_calls.h"

#include <algorithm>
#include <optional>
#include <set>
#include <vector>

#include "common/names.h"
#include "common/status_macros.h"
#include "metagraph/retention.h"
#include "server/core/api_errors.h"
#include "server/core/api_translation.h"
#include "server/core/validation.h"

namespace mgreg {

absl::StatusOr<v1::Model> SettingsCalls::GetModel(const v1::GetModelRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  return ModelToApi(store_, request.model(), options_->default_retention);
}

absl::StatusOr<v1::Model> SettingsCalls::SetRetention(
    const v1::SetRetentionRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  const v1::RetentionPolicy& p = request.retention();
  RETURN_IF_ERROR(ValidateRetention(p));
  if (!request.allow_missing()) {
    // (Not atomic with the write below: a model whose last step is deleted meanwhile
    // keeps the policy as a settings-only record, as with allow_missing.)
    absl::StatusOr<storage::ModelRecord> known = store_->GetModel(request.model());
    if (!known.ok()) {
      return known.status().code() == absl::StatusCode::kNotFound
                 ? api_errors::RetentionOfUnknownModel(request.model())
                 : known.status();
    }
  }
  storage::RetentionPolicy policy;
  policy.set_max_to_keep(p.max_to_keep());
  policy.set_keep_every_n_hours(p.keep_every_n_hours());
  RETURN_IF_ERROR(store_->SetRetention(request.model(), policy));
  RETURN_IF_ERROR(ApplyRetention(request.model()));
  return ModelToApi(store_, request.model(), options_->default_retention);
}

absl::Status SettingsCalls::ApplyRetention(absl::string_view model) {
  absl::MutexLock lock(&retention_mu_);
  absl::StatusOr<storage::ModelRecord> m = store_->GetModel(model);
  if (!m.ok()) {
    return m.status().code() == absl::StatusCode::kNotFound ? absl::OkStatus()
                                                            : m.status();
  }
  const storage::RetentionPolicy& policy =
      m->has_retention() ? m->retention() : options_->default_retention;
  if (policy.max_to_keep() <= 0) return absl::OkStatus();
  std::set<int64_t> aliased;
  for (const auto& [name, step] : m->aliases()) aliased.insert(step);
  std::vector<RetentionCandidate> candidates;
  absl::Status listed =
      ForEachCheckpoint(store_, model, [&](const storage::CheckpointRecord& r) {
        candidates.push_back({r.step(), r.commit_time_micros(), r.preserved(),
                              r.pinned() || aliased.count(r.step()) > 0});
      });
  if (!listed.ok()) {
    return listed.code() == absl::StatusCode::kNotFound ? absl::OkStatus() : listed;
  }
  // Like a CheckpointManager created just before the model's first save, when the
  // model never had a policy of its own.
  int64_t last_preserved = m->last_preserved_micros();
  if (last_preserved == 0 && !candidates.empty()) {
    last_preserved =
        std::min_element(candidates.begin(), candidates.end(),
                         [](const auto& a, const auto& b) {
                           return a.commit_time_micros < b.commit_time_micros;
                         })
            ->commit_time_micros -
        1000000;
  }
  RetentionPlan plan = PlanRetention(std::move(candidates), policy.max_to_keep(),
                                     policy.keep_every_n_hours(), last_preserved);
  if (plan.delete_steps.empty() && plan.preserve_steps.empty()) return absl::OkStatus();
  return store_
      ->ApplyRetention(model, plan.delete_steps, plan.preserve_steps,
                       plan.last_preserved_micros)
      .status();
}

absl::StatusOr<v1::Checkpoint> SettingsCalls::PinCheckpoint(
    const v1::PinCheckpointRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  RETURN_IF_ERROR(store_->SetPinned(request.model(), request.step(), request.pinned()));
  ASSIGN_OR_RETURN(storage::CheckpointRecord record,
                   store_->GetCheckpoint(request.model(), request.step()));
  ASSIGN_OR_RETURN(v1::Checkpoint out, ToApiWithAliases(store_, record));
  if (!request.pinned()) {
    // An unpinned step may now be beyond max_to_keep (and go at once). As after a
    // commit, a failure here only leaves extra steps for the next retention pass.
    ApplyRetention(request.model()).IgnoreError();
  }
  return out;
}

absl::StatusOr<v1::Model> SettingsCalls::SetAlias(const v1::SetAliasRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateAlias(request.alias()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  RETURN_IF_ERROR(
      store_->SetAlias(request.model(), request.alias(), request.step()).status());
  return ModelToApi(store_, request.model(), options_->default_retention);
}

absl::StatusOr<v1::Model> SettingsCalls::RemoveAlias(
    const v1::RemoveAliasRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateAlias(request.alias()));
  RETURN_IF_ERROR(store_->RemoveAlias(request.model(), request.alias()).status());
  // The step the alias protected may now be beyond max_to_keep.
  RETURN_IF_ERROR(ApplyRetention(request.model()));
  return ModelToApi(store_, request.model(), options_->default_retention);
}

absl::StatusOr<v1::DeleteCheckpointResponse> SettingsCalls::DeleteCheckpoint(
    const v1::DeleteCheckpointRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  ASSIGN_OR_RETURN(int64_t freed,
                   store_->DeleteCheckpoint(request.model(), request.step()));
  v1::DeleteCheckpointResponse out;
  out.set_freed_bytes(freed);
  return out;
}

}  // namespace mgreg
