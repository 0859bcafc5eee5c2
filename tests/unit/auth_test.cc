// The authentication layer (auth/authenticator.h) and the server's access check
// (server/auth.h): who each credential is, and what each role may reach.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "auth/authenticator.h"
#include "ops/ops_service.h"
#include "server/auth.h"
#include "test_util.h"

// Designated initializers name only the credentials a case sends.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ns {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reg = ProjectRegistry::Open(dir_.path());
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
    auto shop = registry_->Create("shop", "Asia/Shanghai");
    ASSERT_THAT(shop, IsOk());
    shop_ = *shop;
    ASSERT_THAT(registry_->Create("blog", "UTC"), IsOk());
    auto ops = OpsService::Open(*registry_);
    ASSERT_THAT(ops, IsOk());
    ops_ = std::move(*ops);
  }

  Principal Must(const Credentials& c) {
    Authenticator auth(*registry_, &ops_->accounts);
    auto p = auth.Authenticate(c);
    EXPECT_THAT(p, IsOk());
    return p.ok() ? *p : Principal{};
  }
  Status Fails(const Credentials& c) {
    Authenticator auth(*registry_, &ops_->accounts);
    auto p = auth.Authenticate(c);
    EXPECT_FALSE(p.ok());
    return p.status();
  }

  testing::TempDir dir_;
  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<OpsService> ops_;
  CreatedProject shop_;
};

TEST_F(AuthTest, ProjectKeys) {
  Principal w = Must({.bearer = shop_.info.write_key});
  EXPECT_EQ(w.project, "shop");
  EXPECT_EQ(w.credential, Credential::kWriteKey);
  Principal s = Must({.bearer = shop_.secret_key});
  EXPECT_EQ(s.project, "shop");
  EXPECT_EQ(s.role, Role::kAdmin);
  EXPECT_EQ(s.credential, Credential::kSecretKey);
  EXPECT_EQ(s.actor, "key:shop/secret");
  EXPECT_EQ(TrustOf(s), IdentityTrust::kSecretKey);
  EXPECT_EQ(TrustOf(w), IdentityTrust::kWriteKey);

  EXPECT_THAT(Fails({}), StatusIs(StatusCode::kUnauthenticated));
  EXPECT_THAT(Fails({.bearer = "nsw_nope"}), StatusIs(StatusCode::kUnauthenticated));
  EXPECT_THAT(Fails({.bearer = "nss_nope"}), StatusIs(StatusCode::kUnauthenticated));
  EXPECT_THAT(Fails({.bearer = "hello"}), StatusIs(StatusCode::kUnauthenticated));
}

TEST_F(AuthTest, ApiKeysCarryTheirRoleAndDieWhenRevoked) {
  auto key = ops_->accounts.CreateApiKey("shop", "dashboard", Role::kViewer);
  ASSERT_THAT(key, IsOk());
  Principal p = Must({.bearer = *key});
  EXPECT_EQ(p.role, Role::kViewer);
  EXPECT_EQ(p.credential, Credential::kApiKey);
  EXPECT_EQ(p.actor, "key:shop/dashboard");
  EXPECT_THAT(CheckAccess(p, Access::kViewer), IsOk());
  EXPECT_THAT(CheckAccess(p, Access::kOperator), StatusIs(StatusCode::kPermissionDenied));
  // An API key reads; it does not send events.
  EXPECT_THAT(CheckAccess(p, Access::kIngest), StatusIs(StatusCode::kPermissionDenied));

  auto keys = ops_->accounts.ListApiKeys("shop");
  ASSERT_EQ(keys.size(), 1u);
  ASSERT_THAT(ops_->accounts.RevokeApiKey("shop", keys[0]["id"].get<int64_t>()), IsOk());
  EXPECT_THAT(Fails({.bearer = *key}), StatusIs(StatusCode::kUnauthenticated));
}

TEST_F(AuthTest, SessionsNeedTheCsrfTokenToChangeAndAProjectWhenInSeveral) {
  auto uid = ops_->accounts.CreateUser("ana@example.com", "correct horse battery", "Ana", "shop", Role::kOperator);
  ASSERT_THAT(uid, IsOk());
  auto s = ops_->accounts.Login("ana@example.com", "correct horse battery");
  ASSERT_THAT(s, IsOk());

  Principal p = Must({.session = s->token});
  EXPECT_EQ(p.project, "shop");
  EXPECT_EQ(p.role, Role::kOperator);
  EXPECT_TRUE(p.via_session());
  EXPECT_THAT(Fails({.session = s->token, .changes = true}), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_THAT(Fails({.session = s->token, .csrf = "wrong", .changes = true}), StatusIs(StatusCode::kPermissionDenied));
  EXPECT_TRUE(Authenticator(*registry_, &ops_->accounts)
                  .Authenticate({.session = s->token, .csrf = s->csrf_token, .changes = true})
                  .ok());
  EXPECT_THAT(Fails({.session = s->token, .project = "blog"}), StatusIs(StatusCode::kPermissionDenied));

  ASSERT_THAT(ops_->accounts.SetRole(*uid, "blog", Role::kViewer), IsOk());
  Status which = Fails({.session = s->token});
  EXPECT_THAT(which, StatusIs(StatusCode::kInvalidArgument, HasSubstr("blog, shop")));
  EXPECT_EQ(Must({.session = s->token, .project = "blog"}).role, Role::kViewer);

  // A bearer key wins over the cookie.
  EXPECT_EQ(Must({.bearer = shop_.info.write_key, .session = s->token}).credential, Credential::kWriteKey);

  ASSERT_THAT(ops_->accounts.Logout(s->token), IsOk());
  EXPECT_THAT(Fails({.session = s->token}), StatusIs(StatusCode::kUnauthenticated));
}

TEST_F(AuthTest, WithoutAccountsOnlyProjectKeysCount) {
  Authenticator keys_only(*registry_, nullptr);
  EXPECT_THAT(keys_only.Authenticate({.bearer = shop_.secret_key}), IsOk());
  EXPECT_THAT(keys_only.Authenticate({.session = "anything"}), StatusIs(StatusCode::kUnauthenticated));
}

// The access table: rows are who calls, columns the access a route declares.
TEST(CheckAccess, Matrix) {
  auto who = [](Credential c, Role r) { return Principal{"x", 0, "p", r, c}; };
  struct Row {
    Principal p;
    bool ingest, viewer, op, admin;
  } rows[] = {
      {who(Credential::kWriteKey, Role::kViewer), true, false, false, false},
      {who(Credential::kSecretKey, Role::kAdmin), true, true, true, true},
      {who(Credential::kApiKey, Role::kViewer), false, true, false, false},
      {who(Credential::kApiKey, Role::kOperator), false, true, true, false},
      {who(Credential::kApiKey, Role::kAdmin), false, true, true, true},
      {who(Credential::kSession, Role::kViewer), false, true, false, false},
      {who(Credential::kSession, Role::kOperator), false, true, true, false},
      {who(Credential::kSession, Role::kAdmin), false, true, true, true},
  };
  for (const Row& r : rows) {
    SCOPED_TRACE(std::string(RoleName(r.p.role)) + " credential " + std::to_string(static_cast<int>(r.p.credential)));
    EXPECT_THAT(CheckAccess(r.p, Access::kPublic), IsOk());
    EXPECT_EQ(CheckAccess(r.p, Access::kIngest).ok(), r.ingest);
    EXPECT_EQ(CheckAccess(r.p, Access::kViewer).ok(), r.viewer);
    EXPECT_EQ(CheckAccess(r.p, Access::kOperator).ok(), r.op);
    EXPECT_EQ(CheckAccess(r.p, Access::kAdmin).ok(), r.admin);
  }
  EXPECT_THAT(CheckAccess(who(Credential::kSession, Role::kViewer), Access::kOperator),
              StatusIs(StatusCode::kPermissionDenied, "role viewer cannot do this; it needs operator or admin"));
}

TEST(Credentials, ReadFromTheRequest) {
  HttpRequest req;
  req.method = "POST";
  req.headers = {{"authorization", "Bearer nss_abc"}, {"x-csrf-token", "t"}, {"x-northstar-project", "shop"},
                 {"cookie", "a=1; ns_session=sess; b=2"}};
  Credentials c = CredentialsOf(req);
  EXPECT_EQ(c.bearer, "nss_abc");
  EXPECT_EQ(c.session, "sess");
  EXPECT_EQ(c.csrf, "t");
  EXPECT_TRUE(c.changes);
  EXPECT_EQ(c.project, "shop");
  req.params = {{"project", "blog"}};
  req.method = "GET";
  EXPECT_EQ(CredentialsOf(req).project, "blog");
  EXPECT_FALSE(CredentialsOf(req).changes);
  req.headers = {{"authorization", "Basic xyz"}};
  EXPECT_EQ(BearerKey(req), "");
}

}  // namespace
}  // namespace ns
