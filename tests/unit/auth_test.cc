// The authentication layer (auth/authenticator.h) and the server's access check
// (server/auth.h): who each credential is, and what each role may reach.
#include <gtest/gtest.h>

#include "auth/authenticator.h"
#include "ops/ops_service.h"
#include "server/auth.h"
#include "test_util.h"

// Designated initializers name only the credentials a case sends.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

namespace ns {
namespace {

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto reg = ProjectRegistry::Open(dir_.path());
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    registry_ = std::move(*reg);
    auto shop = registry_->Create("shop", "Asia/Shanghai");
    ASSERT_TRUE(shop.ok()) << shop.status().ToString();
    shop_ = *shop;
    ASSERT_TRUE(registry_->Create("blog", "UTC").ok());
    auto ops = OpsService::Open(*registry_);
    ASSERT_TRUE(ops.ok()) << ops.status().ToString();
    ops_ = std::move(*ops);
  }

  Principal Must(const Credentials& c) {
    Authenticator auth(*registry_, &ops_->accounts);
    auto p = auth.Authenticate(c);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
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

  EXPECT_EQ(Fails({}).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Fails({.bearer = "nsw_nope"}).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Fails({.bearer = "nss_nope"}).code(), StatusCode::kUnauthenticated);
  EXPECT_EQ(Fails({.bearer = "hello"}).code(), StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, ApiKeysCarryTheirRoleAndDieWhenRevoked) {
  auto key = ops_->accounts.CreateApiKey("shop", "dashboard", Role::kViewer);
  ASSERT_TRUE(key.ok());
  Principal p = Must({.bearer = *key});
  EXPECT_EQ(p.role, Role::kViewer);
  EXPECT_EQ(p.credential, Credential::kApiKey);
  EXPECT_EQ(p.actor, "key:shop/dashboard");
  EXPECT_TRUE(CheckAccess(p, Access::kViewer).ok());
  EXPECT_EQ(CheckAccess(p, Access::kOperator).code(), StatusCode::kPermissionDenied);
  // An API key reads; it does not send events.
  EXPECT_EQ(CheckAccess(p, Access::kIngest).code(), StatusCode::kPermissionDenied);

  auto keys = ops_->accounts.ListApiKeys("shop");
  ASSERT_EQ(keys.size(), 1u);
  ASSERT_TRUE(ops_->accounts.RevokeApiKey("shop", keys[0]["id"].get<int64_t>()).ok());
  EXPECT_EQ(Fails({.bearer = *key}).code(), StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, SessionsNeedTheCsrfTokenToChangeAndAProjectWhenInSeveral) {
  auto uid = ops_->accounts.CreateUser("ana@example.com", "correct horse battery", "Ana", "shop", Role::kOperator);
  ASSERT_TRUE(uid.ok()) << uid.status().ToString();
  auto s = ops_->accounts.Login("ana@example.com", "correct horse battery");
  ASSERT_TRUE(s.ok());

  Principal p = Must({.session = s->token});
  EXPECT_EQ(p.project, "shop");
  EXPECT_EQ(p.role, Role::kOperator);
  EXPECT_TRUE(p.via_session());
  EXPECT_EQ(Fails({.session = s->token, .changes = true}).code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(Fails({.session = s->token, .csrf = "wrong", .changes = true}).code(), StatusCode::kPermissionDenied);
  EXPECT_TRUE(Authenticator(*registry_, &ops_->accounts)
                  .Authenticate({.session = s->token, .csrf = s->csrf_token, .changes = true})
                  .ok());
  EXPECT_EQ(Fails({.session = s->token, .project = "blog"}).code(), StatusCode::kPermissionDenied);

  ASSERT_TRUE(ops_->accounts.SetRole(*uid, "blog", Role::kViewer).ok());
  Status which = Fails({.session = s->token});
  EXPECT_EQ(which.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(which.message().find("blog, shop"), std::string::npos) << which.message();
  EXPECT_EQ(Must({.session = s->token, .project = "blog"}).role, Role::kViewer);

  // A bearer key wins over the cookie.
  EXPECT_EQ(Must({.bearer = shop_.info.write_key, .session = s->token}).credential, Credential::kWriteKey);

  ASSERT_TRUE(ops_->accounts.Logout(s->token).ok());
  EXPECT_EQ(Fails({.session = s->token}).code(), StatusCode::kUnauthenticated);
}

TEST_F(AuthTest, WithoutAccountsOnlyProjectKeysCount) {
  Authenticator keys_only(*registry_, nullptr);
  EXPECT_TRUE(keys_only.Authenticate({.bearer = shop_.secret_key}).ok());
  EXPECT_EQ(keys_only.Authenticate({.session = "anything"}).status().code(), StatusCode::kUnauthenticated);
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
    EXPECT_TRUE(CheckAccess(r.p, Access::kPublic).ok());
    EXPECT_EQ(CheckAccess(r.p, Access::kIngest).ok(), r.ingest);
    EXPECT_EQ(CheckAccess(r.p, Access::kViewer).ok(), r.viewer);
    EXPECT_EQ(CheckAccess(r.p, Access::kOperator).ok(), r.op);
    EXPECT_EQ(CheckAccess(r.p, Access::kAdmin).ok(), r.admin);
  }
  Status s = CheckAccess(who(Credential::kSession, Role::kViewer), Access::kOperator);
  EXPECT_EQ(s.message(), "role viewer cannot do this; it needs operator or admin");
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
