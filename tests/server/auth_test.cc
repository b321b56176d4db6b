// Token authorization, and the call guard's limits without a transport.
#include "server/auth.h"

#include <string>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/call_guard.h"

namespace mgreg {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

config::v1::Token MakeToken(const std::string& name, const std::string& secret,
                            config::v1::Role role, std::vector<std::string> prefixes) {
  config::v1::Token t;
  t.set_name(name);
  t.set_sha256(Sha256Hex(secret));
  t.set_role(role);
  for (const auto& p : prefixes) t.add_model_prefixes(p);
  return t;
}

Authorizer TeamAuthorizer() {
  google::protobuf::RepeatedPtrField<config::v1::Token> tokens;
  *tokens.Add() =
      MakeToken("team-a-writer", "secret-a-w", config::v1::ROLE_WRITER, {"team-a/"});
  *tokens.Add() =
      MakeToken("team-a-reader", "secret-a-r", config::v1::ROLE_READER, {"team-a/"});
  *tokens.Add() = MakeToken("ops", "secret-admin", config::v1::ROLE_ADMIN, {});
  auto a = Authorizer::Create(tokens);
  EXPECT_TRUE(a.ok()) << a.status();
  return *a;
}

TEST(AuthorizerTest, WithoutTokensEverythingIsAllowed) {
  Authorizer a;
  EXPECT_FALSE(a.enabled());
  EXPECT_TRUE(a.Authorize("", Action::kAdmin, "").ok());
}

TEST(AuthorizerTest, MissingTokenIsUnauthenticated) {
  EXPECT_EQ(TeamAuthorizer().Authorize("", Action::kRead, "team-a/m").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthorizerTest, WrongTokenIsUnauthenticatedAndNotEchoed) {
  auto s = TeamAuthorizer().Authorize("Bearer not-a-token", Action::kRead, "team-a/m");
  EXPECT_EQ(s.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(std::string(s.status().message()), Not(HasSubstr("not-a-token")));
  EXPECT_EQ(TeamAuthorizer().Authorize("Basic abc", Action::kRead, "m").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(AuthorizerTest, WriterWritesOnlyItsPrefix) {
  Authorizer a = TeamAuthorizer();
  auto ok = a.Authorize("Bearer secret-a-w", Action::kWrite, "team-a/resnet");
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(*ok, "team-a-writer");
  auto denied = a.Authorize("Bearer secret-a-w", Action::kWrite, "team-b/resnet");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(std::string(denied.status().message()), Not(HasSubstr("secret-a-w")));
}

TEST(AuthorizerTest, ReaderCannotWrite) {
  Authorizer a = TeamAuthorizer();
  EXPECT_TRUE(a.Authorize("bearer secret-a-r", Action::kRead, "team-a/x").ok());
  EXPECT_EQ(a.Authorize("Bearer secret-a-r", Action::kWrite, "team-a/x").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AuthorizerTest, OnlyAnUnrestrictedAdminAdministers) {
  Authorizer a = TeamAuthorizer();
  EXPECT_TRUE(a.Authorize("Bearer secret-admin", Action::kAdmin, "").ok());
  EXPECT_TRUE(a.Authorize("Bearer secret-admin", Action::kWrite, "team-b/x").ok());
  EXPECT_EQ(a.Authorize("Bearer secret-a-w", Action::kAdmin, "").status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST(AuthorizerTest, PlaintextOrMalformedHashesAreRejected) {
  google::protobuf::RepeatedPtrField<config::v1::Token> tokens;
  config::v1::Token t = MakeToken("x", "s", config::v1::ROLE_READER, {});
  t.set_sha256("my-plain-token");
  *tokens.Add() = t;
  EXPECT_EQ(Authorizer::Create(tokens).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CallGuardTest, AUnaryCallQueuedBeyondUnaryDeadlineIsDeadlineExceeded) {
  CallLimits limits;
  limits.unary_deadline = absl::Milliseconds(200);
  CallGuard guard(nullptr, nullptr, nullptr, limits);
  grpc::CallbackServerContext ctx;
  EXPECT_TRUE(guard.CheckQueueWait(&ctx, absl::Now()).ok());
  absl::Status late = guard.CheckQueueWait(&ctx, absl::Now() - absl::Seconds(1));
  EXPECT_EQ(late.code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_THAT(late.message(), HasSubstr("limits.unary_deadline"));
  CallGuard unlimited(nullptr, nullptr, nullptr, CallLimits());
  EXPECT_TRUE(unlimited.CheckQueueWait(&ctx, absl::Now() - absl::Hours(1)).ok());
}

TEST(CallGuardTest, OpenStreamsAreCountedUntilTheyEnd) {
  CallLimits limits;
  limits.max_open_streams = 2;
  CallGuard guard(nullptr, nullptr, nullptr, limits);
  ASSERT_TRUE(guard.BeginStream().ok());
  ASSERT_TRUE(guard.BeginStream().ok());
  absl::Status third = guard.BeginStream();
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.message(), HasSubstr("limits.max_open_streams"));
  guard.EndStream();
  EXPECT_TRUE(guard.BeginStream().ok());
}

}  // namespace
}  // namespace mgreg
