#include "server/auth.h"

#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/sha256.h"

namespace mgreg {
namespace {

bool RoleAllows(config::v1::Role role, Action action) {
  switch (action) {
    case Action::kRead:
      return role == config::v1::ROLE_READER || role == config::v1::ROLE_WRITER ||
             role == config::v1::ROLE_ADMIN;
    case Action::kWrite:
      return role == config::v1::ROLE_WRITER || role == config::v1::ROLE_ADMIN;
    case Action::kAdmin:
      return role == config::v1::ROLE_ADMIN;
  }
  return false;
}

// Prefixes match whole name segments: "team-a/" and "team-a" both cover "team-a/x"
// ("team-a" also the model "team-a"), never "team-ab/x".
bool PrefixCovers(absl::string_view prefix, absl::string_view model) {
  if (absl::EndsWith(prefix, "/")) return absl::StartsWith(model, prefix);
  return model == prefix || (absl::StartsWith(model, prefix) &&
                             model.size() > prefix.size() && model[prefix.size()] == '/');
}

const char* ActionName(Action action) {
  switch (action) {
    case Action::kRead:
      return "read";
    case Action::kWrite:
      return "write";
    case Action::kAdmin:
      return "administer";
  }
  return "?";
}

}  // namespace

absl::StatusOr<Authorizer> Authorizer::Create(
    const google::protobuf::RepeatedPtrField<config::v1::Token>& tokens) {
  Authorizer out;
  std::set<std::string> names;
  for (int i = 0; i < tokens.size(); ++i) {
    const config::v1::Token& t = tokens[i];
    const std::string where = absl::StrCat("token #", i + 1, " ('", t.name(), "')");
    if (t.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("token #", i + 1, " has no name; give each token a name"));
    }
    if (!names.insert(t.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": the name is used by another token"));
    }
    if (!IsSha256Hex(t.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          where,
          ": sha256 must be 64 lower-case hex characters, the SHA-256 of the "
          "token (printf %s \"$TOKEN\" | sha256sum), never the token itself"));
    }
    if (t.role() == config::v1::ROLE_UNSPECIFIED) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": set role to ROLE_READER, ROLE_WRITER or ROLE_ADMIN"));
    }
    for (const std::string& p : t.model_prefixes()) {
      if (p.empty()) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ": empty model prefix; omit model_prefixes for all models"));
      }
    }
    out.prefixes_by_name_[t.name()].assign(t.model_prefixes().begin(),
                                           t.model_prefixes().end());
    Grant grant;
    grant.name = t.name();
    grant.role = t.role();
    grant.model_prefixes.assign(t.model_prefixes().begin(), t.model_prefixes().end());
    if (!out.grants_.emplace(t.sha256(), std::move(grant)).second) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": another token has the same sha256"));
    }
  }
  return out;
}

absl::StatusOr<std::string> Authorizer::Authorize(absl::string_view authorization,
                                                  Action action,
                                                  absl::string_view model) const {
  if (grants_.empty()) return std::string();
  if (authorization.empty()) {
    return absl::UnauthenticatedError(
        "this server requires a token: pass --token or set MGREG_TOKEN "
        "(metadata 'authorization: Bearer <token>')");
  }
  constexpr absl::string_view kBearer = "bearer ";
  if (authorization.size() <= kBearer.size() ||
      !absl::EqualsIgnoreCase(authorization.substr(0, kBearer.size()), kBearer)) {
    return absl::UnauthenticatedError(
        "the authorization metadata must read 'Bearer <token>'");
  }
  const absl::string_view token =
      absl::StripAsciiWhitespace(authorization.substr(kBearer.size()));
  auto it = grants_.find(Sha256Hex(token));
  if (it == grants_.end()) {
    return absl::UnauthenticatedError("the token is not valid on this server");
  }
  const Grant& grant = it->second;
  if (!RoleAllows(grant.role, action)) {
    return absl::PermissionDeniedError(absl::StrCat(
        "token '", grant.name, "' (", config::v1::Role_Name(grant.role), ") may not ",
        ActionName(action), model.empty() ? "" : absl::StrCat(" model '", model, "'")));
  }
  if (grant.model_prefixes.empty()) return grant.name;
  if (model.empty()) {
    // Calls on no particular model (admin calls) need a grant over every model.
    if (action == Action::kRead) return grant.name;
    return absl::PermissionDeniedError(
        absl::StrCat("token '", grant.name, "' is limited to some models and may not ",
                     ActionName(action), " the whole registry"));
  }
  for (const std::string& prefix : grant.model_prefixes) {
    if (PrefixCovers(prefix, model)) return grant.name;
  }
  return absl::PermissionDeniedError(
      absl::StrCat("token '", grant.name, "' may not ", ActionName(action), " model '",
                   model, "': it covers only models starting with ",
                   absl::StrJoin(grant.model_prefixes, ", ")));
}

const std::vector<std::string>* Authorizer::ModelPrefixes(
    absl::string_view grant_name) const {
  auto it = prefixes_by_name_.find(grant_name);
  return it == prefixes_by_name_.end() ? nullptr : &it->second;
}

bool Authorizer::Covers(absl::string_view grant_name, absl::string_view model) const {
  if (grants_.empty()) return true;
  auto it = prefixes_by_name_.find(grant_name);
  if (it == prefixes_by_name_.end()) return false;
  if (it->second.empty()) return true;
  for (const std::string& prefix : it->second) {
    if (PrefixCovers(prefix, model)) return true;
  }
  return false;
}

}  // namespace mgreg
