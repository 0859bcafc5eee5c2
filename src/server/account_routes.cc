// Accounts: login and sessions, users and roles, passwords, API keys, the audit log and the
// project settings.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "auth/login_throttle.h"
#include "core/log_safe.h"
#include "server/auth.h"
#include "server/ops_routes.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

std::vector<Route> AccountRoutes(ServerContext&, OpsService& ops) {
  std::vector<Route> r;
  const Access V = Access::kViewer, A = Access::kAdmin;
  auto throttle = std::make_shared<LoginThrottle>();  // lives as long as the routes
  // ---- accounts
  r.push_back(
      {"POST", "/api/v1/auth/login", [&ops, throttle](const HttpRequest& req, HttpResponse& res) {
         WithBody(req, res, [&](const json& b) {
           if (!b.contains("email") || !b["email"].is_string() || !b.contains("password") || !b["password"].is_string())
             return res.Error(InvalidArgument("expected {\"email\",\"password\"}"));
           std::string account = b["email"].get<std::string>();
           std::transform(account.begin(), account.end(), account.begin(),
                          [](unsigned char c) { return std::tolower(c); });
           if (int64_t wait = throttle->WaitSeconds(account, req.remote_addr); wait > 0) {
             res.Error(RateLimited("too many failed logins: retry after " + std::to_string(wait) + " s", wait * 1000));
             return;
           }
           auto s = ops.accounts.Login(account, b["password"].get<std::string>());
           if (!s.ok()) {
             spdlog::info("login failed for {}", LogSafe(account));  // never the password
             if (s.status().code() == StatusCode::kUnauthenticated) throttle->Failed(account, req.remote_addr);
             return res.Error(s.status());
           }
           throttle->Succeeded(account);
           int64_t max_age = Accounts::kSessionTtlMs / 1000;
           res.SetHeader("Set-Cookie", std::string(kSessionCookie) + "=" + s->token +
                                           "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age));
           res.SetHeader("Set-Cookie", std::string(kCsrfCookie) + "=" + s->csrf_token +
                                           "; Path=/; SameSite=Strict; Max-Age=" + std::to_string(max_age));
           json projects = json::array();
           for (auto& [p, role] : ops.accounts.Memberships(s->user_id))
             projects.push_back({{"project", p}, {"role", RoleName(role)}});
           res.Json(200, json{{"user_id", s->user_id},
                              {"csrf_token", s->csrf_token},
                              {"projects", projects},
                              {"expires_at", s->expires_at_ms}});
         });
       }});
  r.push_back({"POST", "/api/v1/auth/logout", [&ops](const HttpRequest& req, HttpResponse& res) {
                 std::string token = req.Cookie(kSessionCookie);
                 if (token.empty()) return res.Error(Unauthenticated("not logged in"));
                 auto u = ops.accounts.BySession(token);
                 if (!u.ok()) return res.Error(u.status());
                 if (req.Header("x-csrf-token") != u->csrf_token)
                   return res.Error(PermissionDenied("missing or wrong X-CSRF-Token header"));
                 (void)ops.accounts.Logout(token);
                 res.SetHeader("Set-Cookie",
                               std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
                 res.SetHeader("Set-Cookie", std::string(kCsrfCookie) + "=; Path=/; SameSite=Strict; Max-Age=0");
                 res.Json(200, json{{"ok", true}});
               }});
  r.push_back(R("GET", "/api/v1/auth/me", V, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    json projects = json::array();
    for (auto& [p, role] : ops.accounts.Memberships(w.user_id))
      projects.push_back({{"project", p}, {"role", RoleName(role)}});
    res.Json(200, json{{"actor", w.actor},
                       {"user_id", w.user_id},
                       {"project", w.project},
                       {"role", RoleName(w.role)},
                       {"projects", projects}});
  }));
  r.push_back(R("POST", "/api/v1/users", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    WithBody(req, res, [&](const json& b) {
      for (const char* f : {"email", "password"})
        if (!b.contains(f) || !b[f].is_string())
          return res.Error(InvalidArgument(std::string(f) + ": required string", f));
      auto role = ParseRole(b.value("role", std::string("viewer")));
      if (!role.ok()) return res.Error(role.status());
      // An existing account (of another project) is added to this one with the role; its
      // password stays its own. The answer does not say where else the account is used.
      if (auto existing = ops.accounts.UserIdByEmail(b["email"].get<std::string>()); existing.ok()) {
        if (ops.accounts.RoleOf(*existing, w.project).ok())
          return res.Error(AlreadyExists("a user with email " + b["email"].get<std::string>() +
                                         " is already a member of this project (PATCH /api/v1/users/" +
                                         std::to_string(*existing) + " changes the role)"));
        Status st = ops.accounts.SetRole(*existing, w.project, *role);
        if (!st.ok()) return res.Error(st);
        (void)Audit(ops.db(), w, "add", "user", *existing, nullptr,
                    json{{"email", b["email"]}, {"role", RoleName(*role)}, {"project", w.project}});
        return res.Json(201,
                        json{{"id", *existing},
                             {"existing_account", true},
                             {"note", "an existing account was added to this project; its password is unchanged"}});
      }
      auto id = ops.accounts.CreateUser(b["email"].get<std::string>(), b["password"].get<std::string>(),
                                        b.value("name", std::string()), w.project, *role);
      if (id.ok())
        (void)Audit(ops.db(), w, "create", "user", *id, nullptr,
                    json{{"email", b["email"]}, {"role", RoleName(*role)}, {"project", w.project}});
      ReplyId(res, id);
    });
  }));
  r.push_back(R("GET", "/api/v1/users", A, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    res.Json(200, ops.accounts.ListUsers(w.project));
  }));
  // Role, disabled flag, name or password of a user of the project; each change audited
  // (the password never), sessions end when the user is disabled or the password is reset.
  r.push_back(
      R("PATCH", R"(/api/v1/users/(\d+))", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        WithBody(req, res, [&](const json& b) {
          const int64_t id = Id(req);
          auto before = ops.accounts.UserInProject(w.project, id);
          if (!before.ok()) return res.Error(before.status());
          for (auto it = b.begin(); it != b.end(); ++it)
            if (it.key() != "role" && it.key() != "disabled" && it.key() != "password" && it.key() != "name")
              return res.Error(InvalidArgument(
                  "unknown field '" + it.key() + "' (known: role, disabled, password, name)", it.key()));
          if (b.contains("role")) {
            if (!b["role"].is_string())
              return res.Error(InvalidArgument("role: expected admin, operator or viewer", "role"));
            auto role = ParseRole(b["role"].get<std::string>());
            if (!role.ok()) return res.Error(role.status());
            if (Status st = ops.accounts.ChangeRole(w.project, id, *role); !st.ok()) return res.Error(st);
          }
          if (b.contains("disabled")) {
            if (!b["disabled"].is_boolean())
              return res.Error(InvalidArgument("disabled: expected true or false", "disabled"));
            if (Status st = ops.accounts.SetDisabled(w, id, b["disabled"].get<bool>()); !st.ok()) return res.Error(st);
          }
          if (b.contains("password")) {
            if (!b["password"].is_string())
              return res.Error(InvalidArgument("password: expected a string", "password"));
            if (Status st = ops.accounts.ResetPassword(w, id, b["password"].get<std::string>()); !st.ok())
              return res.Error(st);
          }
          if (b.contains("name")) {
            if (!b["name"].is_string())
              return res.Error(InvalidArgument("name: expected text of at most 200 bytes", "name"));
            if (Status st = ops.accounts.SetName(id, b["name"].get<std::string>()); !st.ok()) return res.Error(st);
          }
          auto after = ops.accounts.UserInProject(w.project, id);
          if (!after.ok()) return res.Error(after.status());
          json audit_after = *after;
          if (b.contains("password")) audit_after["password"] = "(reset)";
          (void)Audit(ops.db(), w, "update", "user", id, *before, audit_after);
          res.Json(200, *after);
        });
      }));
  r.push_back(
      R("DELETE", R"(/api/v1/users/(\d+))", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        const int64_t id = Id(req);
        auto before = ops.accounts.UserInProject(w.project, id);
        if (!before.ok()) return res.Error(before.status());
        Status st = ops.accounts.RemoveFromProject(w.project, id);
        if (!st.ok()) return res.Error(st);
        (void)Audit(ops.db(), w, "delete", "user", id, *before, nullptr);
        res.Json(200, json{{"ok", true}});
      }));
  r.push_back(
      R("POST", "/api/v1/auth/password", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        WithBody(req, res, [&](const json& b) {
          if (!w.via_session() || w.user_id == 0)
            return res.Error(InvalidArgument("log in as the user whose password changes (a key has no password)"));
          for (const char* f : {"current_password", "new_password"})
            if (!b.contains(f) || !b[f].is_string())
              return res.Error(InvalidArgument(std::string(f) + ": required string", f));
          Status st = ops.accounts.ChangeOwnPassword(w.user_id, b["current_password"].get<std::string>(),
                                                     b["new_password"].get<std::string>(), req.Cookie(kSessionCookie));
          if (!st.ok()) return res.Error(st);
          (void)Audit(ops.db(), w, "change_password", "user", w.user_id, nullptr, json{{"other_sessions", "ended"}});
          res.Json(200, json{{"ok", true}, {"note", "your other sessions have ended"}});
        });
      }));
  r.push_back(R("GET", "/api/v1/api-keys", A, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    res.Json(200, ops.accounts.ListApiKeys(w.project));
  }));
  r.push_back(R(
      "DELETE", R"(/api/v1/api-keys/(\d+))", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        auto name = ops.accounts.RevokeApiKey(w.project, Id(req));
        if (!name.ok()) return res.Error(name.status());
        (void)Audit(ops.db(), w, "revoke", "api_key", Id(req), json{{"name", *name}}, json{{"revoked", true}});
        res.Json(200, json{{"ok", true}, {"revoked", *name}});
      }));
  r.push_back(R("POST", "/api/v1/api-keys", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    WithBody(req, res, [&](const json& b) {
      auto role = ParseRole(b.value("role", std::string("viewer")));
      if (!role.ok()) return res.Error(role.status());
      auto key = ops.accounts.CreateApiKey(w.project, b.value("name", std::string("api key")), *role);
      if (!key.ok()) return res.Error(key.status());
      (void)Audit(ops.db(), w, "create", "api_key", 0, nullptr,
                  json{{"name", b.value("name", "api key")}, {"role", RoleName(*role)}});
      res.Json(201, json{{"key", *key},
                         {"role", RoleName(*role)},
                         {"name", b.value("name", std::string("api key"))},
                         {"note", "shown once: store it now; GET /api/v1/api-keys lists it, DELETE revokes it"}});
    });
  }));
  r.push_back(R("GET", "/api/v1/audit-log", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, ops.accounts.AuditLog(w.project, req.HasParam("limit") ? std::atoll(req.Param("limit").c_str()) : 100));
  }));
  r.push_back(R("GET", "/api/v1/settings", V, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    auto s = ops.Settings(w.project);
    if (!s.ok()) return res.Error(s.status());
    res.Json(200, json{{"snapshot_time", s->snapshot_time},
                       {"quiet_hours", s->quiet_hours},
                       {"reminder_days", s->reminder_days},
                       {"earliest_event_date", s->earliest_event_date}});
  }));
  r.push_back(R("PATCH", "/api/v1/settings", A, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    WithBody(req, res, [&](const json& b) { ReplyOk(res, ops.SetSettings(w, b)); });
  }));
  return r;
}

}  // namespace ns
