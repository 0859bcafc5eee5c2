// The authentication layer (auth/authenticator.h) and the server's access check
// (server/auth.h): who each credential is, and what each role may reach; the middleware's
// Authorize and the HTTP answers of its refusals; the login throttle (auth/login_throttle.h)
// on a fake clock.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "auth/authenticator.h"
#include "auth/login_throttle.h"
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
  req.headers = {{"authorization", "Bearer nss_abc"},
                 {"x-csrf-token", "t"},
                 {"x-northstar-project", "shop"},
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

// The middleware's decision (Authorize = Authenticate + CheckAccess) and what the client
// then sees: 401 without or with a wrong credential, 403 with one that may not do this.
TEST_F(AuthTest, AuthorizeAnswers401And403) {
  auto key = ops_->accounts.CreateApiKey("shop", "dashboard", Role::kViewer);
  ASSERT_THAT(key, IsOk());
  auto uid = ops_->accounts.CreateUser("ana@example.com", "correct horse battery", "Ana", "shop", Role::kOperator);
  ASSERT_THAT(uid, IsOk());
  auto session = ops_->accounts.Login("ana@example.com", "correct horse battery");
  ASSERT_THAT(session, IsOk());
  Authenticator auth(*registry_, &ops_->accounts);
  auto request = [](const std::string& method, const std::string& bearer, const std::string& cookie = "") {
    HttpRequest req;
    req.method = method;
    if (!bearer.empty()) req.headers.emplace_back("authorization", "Bearer " + bearer);
    if (!cookie.empty()) req.headers.emplace_back("cookie", std::string(kSessionCookie) + "=" + cookie);
    return req;
  };
  struct Case {
    std::string name;
    HttpRequest req;
    Access access;
    int http;  // 200: authorized
  } cases[] = {
      {"nothing, viewer route", request("GET", ""), Access::kViewer, 401},
      {"unknown key", request("GET", "nss_nope"), Access::kViewer, 401},
      {"write key sends events", request("POST", shop_.info.write_key), Access::kIngest, 200},
      {"write key reads", request("GET", shop_.info.write_key), Access::kViewer, 403},
      {"secret key administers", request("DELETE", shop_.secret_key), Access::kAdmin, 200},
      {"viewer API key reads", request("GET", *key), Access::kViewer, 200},
      {"viewer API key changes", request("POST", *key), Access::kOperator, 403},
      {"viewer API key sends events", request("POST", *key), Access::kIngest, 403},
      {"session reads", request("GET", "", session->token), Access::kViewer, 200},
      // A session cookie alone never sends events (any page could make the browser send it).
      {"session sends events", request("POST", "", session->token), Access::kIngest, 401},
      // A change by a session needs its CSRF token.
      {"session changes without CSRF", request("POST", "", session->token), Access::kOperator, 403},
      {"operator session administers", request("GET", "", session->token), Access::kAdmin, 403},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto who = Authorize(auth, c.req, c.access);
    if (c.http == 200) {
      EXPECT_THAT(who, IsOk());
      continue;
    }
    ASSERT_FALSE(who.ok());
    HttpResponse res;
    res.Error(who.status());
    EXPECT_EQ(res.status, c.http) << who.status().ToString();
  }
  HttpRequest with_csrf = request("POST", "", session->token);
  with_csrf.headers.emplace_back("x-csrf-token", session->csrf_token);
  auto who = Authorize(auth, with_csrf, Access::kOperator);
  ASSERT_THAT(who, IsOk());
  EXPECT_EQ(who->actor, "ana@example.com");
  EXPECT_EQ(AccessName(Access::kOperator), "operator");
}

// ---------------------------------------------------------------- LoginThrottle

struct FakeClock {
  LoginThrottle::Clock::time_point t{std::chrono::hours(1)};
  std::function<LoginThrottle::Clock::time_point()> Fn() {
    return [this] { return t; };
  }
};

TEST(LoginThrottle, FreeFailuresThenADoublingWaitCappedAt15Minutes) {
  FakeClock clock;
  LoginThrottle th(clock.Fn());
  for (int i = 0; i < LoginThrottle::kFreeAccount; i++) {
    EXPECT_EQ(th.WaitSeconds("ana", "1.2.3.4"), 0) << "before failure " << i + 1;
    th.Failed("ana", "1.2.3.4");
  }
  // After the 5th failure: 1 s, then 2, 4, 8, ... each counted from the last failure.
  int64_t want = 1;
  for (int extra = 0; extra < 14; extra++) {
    SCOPED_TRACE("failures " + std::to_string(LoginThrottle::kFreeAccount + extra));
    EXPECT_EQ(th.WaitSeconds("ana", "1.2.3.4"), std::min<int64_t>(want, LoginThrottle::kMaxWaitS));
    // Another account from another address is not slowed down.
    EXPECT_EQ(th.WaitSeconds("bob", "5.6.7.8"), 0);
    th.Failed("ana", "1.2.3.4");
    want *= 2;
  }
  EXPECT_EQ(th.WaitSeconds("ana", "9.9.9.9"), LoginThrottle::kMaxWaitS);  // per account, whatever the address
  clock.t += std::chrono::seconds(600);
  EXPECT_EQ(th.WaitSeconds("ana", "9.9.9.9"), LoginThrottle::kMaxWaitS - 600);
}

TEST(LoginThrottle, TheWaitRunsDownAndTheWindowForgets) {
  FakeClock clock;
  LoginThrottle th(clock.Fn());
  for (int i = 0; i < LoginThrottle::kFreeAccount + 3; i++) th.Failed("ana", "a");
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 8);
  clock.t += std::chrono::seconds(5);
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 3);
  clock.t += std::chrono::seconds(3);
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 0);
  // Failures within the window still count: one more doubles again.
  th.Failed("ana", "a");
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 16);
  // Past the window (15 min after the last failure) the count starts again.
  clock.t += std::chrono::seconds(LoginThrottle::kWindowS + 1);
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 0);
  th.Failed("ana", "a");
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 0);
}

TEST(LoginThrottle, SuccessClearsTheAccountButNotTheAddress) {
  FakeClock clock;
  LoginThrottle th(clock.Fn());
  for (int i = 0; i < LoginThrottle::kFreeAccount; i++) th.Failed("ana", "a");
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 1);
  th.Succeeded("ana");
  EXPECT_EQ(th.WaitSeconds("ana", "a"), 0);
  // An address guessing across many accounts: 20 failures are free (an office shares one
  // address), then it waits whatever account it tries.
  for (int i = 0; i < LoginThrottle::kFreeAddress; i++) {
    EXPECT_EQ(th.WaitSeconds("user" + std::to_string(i), "b"), 0) << i;
    th.Failed("user" + std::to_string(i), "b");
  }
  EXPECT_EQ(th.WaitSeconds("someone-new", "b"), 1);
  th.Succeeded("user1");
  EXPECT_EQ(th.WaitSeconds("someone-new", "b"), 1);
  EXPECT_EQ(th.WaitSeconds("someone-new", "c"), 0);
}

}  // namespace
}  // namespace ns
