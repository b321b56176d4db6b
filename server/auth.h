// Bearer-token authorization: who may do what to which models.
//
// Tokens are configured by their SHA-256 (never in plaintext), each with a role and
// the model-name prefixes it covers. A call presents "authorization: Bearer <token>";
// the Authorizer hashes the token, finds its grant and checks the action against the
// role and the model against the prefixes. With no token configured every call is
// allowed (the server then listens on loopback only unless told otherwise).
//
// Nothing here logs or returns the token or its hash: messages name the grant only.
//
// Thread safety: immutable after construction; Authorize may be called concurrently.
#ifndef MGREG_SERVER_AUTH_H_
#define MGREG_SERVER_AUTH_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/config/v1/config.pb.h"

namespace mgreg {

// What a call does. Roles nest: reader < writer < admin.
enum class Action { kRead, kWrite, kAdmin };

// One configured token.
struct Grant {
  std::string name;
  config::v1::Role role = config::v1::ROLE_UNSPECIFIED;
  // Empty: every model.
  std::vector<std::string> model_prefixes;
};

class Authorizer {
 public:
  // An authorizer that allows everything.
  Authorizer() = default;
  // INVALID_ARGUMENT if a token's hash is not 64 lower-case hex characters, its role is
  // unspecified, its name is empty or repeated, or two tokens share a hash.
  static absl::StatusOr<Authorizer> Create(
      const google::protobuf::RepeatedPtrField<config::v1::Token>& tokens);

  bool enabled() const { return !grants_.empty(); }

  // Checks a call. `authorization` is the call's authorization header value ("" if
  // absent). `model` is the model the call acts on ("" for calls on no model, such as
  // ListModels or admin calls, which need a grant without prefixes for kAdmin).
  // On success returns the grant's name ("" when authorization is disabled).
  // Returns UNAUTHENTICATED if the header is missing, malformed or names no token;
  // PERMISSION_DENIED if the token's role does not allow `action` or `model` is outside
  // its prefixes.
  absl::StatusOr<std::string> Authorize(absl::string_view authorization, Action action,
                                        absl::string_view model) const;

  // True if the grant named `grant_name` (as Authorize returned it) covers `model`, or
  // authorization is disabled. For filtering listings to what a token may see.
  bool Covers(absl::string_view grant_name, absl::string_view model) const;
  // The model prefixes of the grant named `grant_name` (empty: every model); null for
  // an unknown grant.
  const std::vector<std::string>* ModelPrefixes(absl::string_view grant_name) const;

 private:
  // SHA-256 (hex) of the token -> its grant.
  absl::flat_hash_map<std::string, Grant> grants_;
  // Grant name -> its model prefixes.
  absl::flat_hash_map<std::string, std::vector<std::string>> prefixes_by_name_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_AUTH_H_
