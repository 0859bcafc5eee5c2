#include "server/ops_routes.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log_safe.h"
#include "core/time_zone.h"
#include "ops/report_tables.h"
#include "server/login_throttle.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr const char* kSessionCookie = "ns_session";
constexpr const char* kCsrfCookie = "ns_csrf";

struct OpsApi {
  ServerContext& ctx;
  OpsService& ops;
  LoginThrottle login_throttle;

  // Who is calling, in which project, with which role.
  StatusOr<Principal> Authenticate(const HttpRequest& req) {
    std::string key = ServerContext::BearerKey(req);
    if (!key.empty()) {
      if (key.rfind("nsw_", 0) == 0) {
        if (!ctx.registry.ByWriteKey(key).ok()) return Unauthenticated("unknown write key");
        return PermissionDenied("a write key can only send events; use a secret key (nss_...) or log in");
      }
      if (key.rfind("nss_", 0) != 0) return Unauthenticated("unknown API key (expected a secret key nss_...)");
      if (auto info = ctx.registry.BySecretKey(key); info.ok())
        return Principal{"key:" + info->name + "/secret", 0, info->name, Role::kAdmin, false};
      // The audit log names the key: key:<project>/<key name>.
      if (auto k = ops.accounts.ApiKeyRole(key)) return Principal{"key:" + k->project + "/" + k->name, 0, k->project, k->role, false};
      return Unauthenticated("unknown or revoked secret key");
    }
    std::string token = req.Cookie(kSessionCookie);
    if (token.empty())
      return Unauthenticated("log in (POST /api/v1/auth/login) or send 'Authorization: Bearer <secret key>'");
    NS_ASSIGN_OR_RETURN(SessionUser u, ops.accounts.BySession(token));
    if (req.method != "GET" && req.method != "HEAD" && req.Header("x-csrf-token") != u.csrf_token)
      return PermissionDenied("missing or wrong X-CSRF-Token header (the csrf_token returned at login)");
    std::string project = req.Param("project");
    if (project.empty()) project = req.Header("x-northstar-project");
    auto memberships = ops.accounts.Memberships(u.user_id);
    if (project.empty()) {
      if (memberships.empty()) return PermissionDenied("user " + u.email + " has no role in any project");
      if (memberships.size() > 1) {
        std::string list;
        for (auto& [p, r] : memberships) list += (list.empty() ? "" : ", ") + p;
        return InvalidArgument("choose a project with ?project=NAME or the X-Northstar-Project header (" + list + ")",
                               "project");
      }
      project = memberships[0].first;
    }
    auto role = ops.accounts.RoleOf(u.user_id, project);
    if (!role.ok()) return PermissionDenied("user " + u.email + " has no role in project '" + project + "'");
    return Principal{u.email, u.user_id, project, *role, true};
  }

  using Handler = std::function<void(const HttpRequest&, HttpResponse&, const Principal&)>;

  // The caller, if it may do what needs `need`.
  StatusOr<Principal> Authorize(const HttpRequest& req, Role need) {
    auto who = Authenticate(req);
    if (!who.ok()) return who.status();
    if (static_cast<int>(who->role) < static_cast<int>(need))
      return PermissionDenied("role " + std::string(RoleName(who->role)) + " cannot do this; it needs " +
                              std::string(RoleName(need)) + (need == Role::kOperator ? " or admin" : ""));
    return who;
  }

  Route R(const char* method, std::string pattern, Role need, Handler h) {
    // The preflight refuses before the body is read; the handler authorizes again (the
    // session may have ended in between) and gets the principal.
    HttpPreflight preflight = [this, need](const HttpRequest& req) { return Authorize(req, need).status(); };
    return Route{method, std::move(pattern), [this, need, h = std::move(h)](const HttpRequest& req, HttpResponse& res) {
                   auto who = Authorize(req, need);
                   if (!who.ok()) return res.Error(who.status());
                   try {
                     h(req, res, *who);
                   } catch (const json::exception& e) {
                     // Inputs are validated before use, so this is our bug, not the client's:
                     // a 500 that says so (one error model, issue 9), never a 400 that blames them.
                     spdlog::error("{} {}: unexpected JSON error: {}", req.method, LogSafe(req.path), LogSafe(e.what()));
                     res.Error(Internal(std::string("unexpected error reading a value: ") + e.what()));
                   }
                 },
                 preflight};
  }

  static int64_t Id(const HttpRequest& req, size_t i = 1) { return std::atoll(req.matches.at(i).c_str()); }

  static StatusOr<json> Body(const HttpRequest& req) {
    if (req.body.empty()) return json::object();
    std::string mime = req.MimeType();
    // `curl -d` labels JSON application/x-www-form-urlencoded: accept it when it is JSON.
    bool form_json = mime == "application/x-www-form-urlencoded" && (req.body[0] == '{' || req.body[0] == '[');
    if (!mime.empty() && mime != "application/json" && mime != "text/plain" && !form_json)
      return Status(StatusCode::kUnsupportedMediaType, "expected Content-Type application/json, got '" + mime + "'");
    return ParseJsonBody(req.body);
  }

  // Runs f(body) and answers with its JSON or its error.
  template <typename F>
  static void WithBody(const HttpRequest& req, HttpResponse& res, F f) {
    auto b = Body(req);
    if (!b.ok()) return res.Error(b.status());
    f(*b);
  }

  static void Reply(HttpResponse& res, const StatusOr<json>& r, int code = 200) {
    if (!r.ok()) return res.Error(r.status());
    res.Json(code, *r);
  }
  static void ReplyId(HttpResponse& res, const StatusOr<int64_t>& r) {
    if (!r.ok()) return res.Error(r.status());
    res.Json(201, json{{"id", *r}});
  }
  static void ReplyOk(HttpResponse& res, const Status& st) {
    if (!st.ok()) return res.Error(st);
    res.Json(200, json{{"ok", true}});
  }

  void Export(const HttpRequest& req, HttpResponse& res, const Principal& who, bool xlsx) {
    int64_t id = Id(req);
    std::string lang = req.HasParam("lang") ? req.Param("lang") : "zh";
    if (lang != "zh" && lang != "en") return res.Error(InvalidArgument("lang: expected zh or en", "lang"));
    auto sc = ops.scenarios.Get(who.project, id);
    if (!sc.ok()) return res.Error(sc.status());
    auto ks = ops.kpis.List(who.project, id);
    if (!ks.ok()) return res.Error(ks.status());
    auto ev = ops.evaluations.Get(who.project, id);
    if (!ev.ok()) return res.Error(ev.status());
    auto project = ops.registry().OpenProject(who.project);
    if (!project.ok()) return res.Error(project.status());
    auto tables = ScenarioTables(*sc, *ks, *ev, lang, (*project)->tz);
    std::string base = "scenario-" + std::to_string(id);
    if (xlsx) {
      auto bytes = TablesToXlsx(tables);
      if (!bytes.ok()) return res.Error(bytes.status());
      res.SetHeader("Content-Disposition", "attachment; filename=\"" + base + ".xlsx\"");
      return res.Text(200, std::move(bytes).value(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
    }
    std::string table = req.Param("table");
    for (auto& t : tables)
      if (t.key == table) {
        res.SetHeader("Content-Disposition", "attachment; filename=\"" + base + "-" + table + ".csv\"");
        return res.Text(200, TableToCsv(t), "text/csv; charset=utf-8");
      }
    res.Error(InvalidArgument("table: expected requirements, process, monitoring or evaluation", "table"));
  }

  std::vector<Route> Routes() {
    std::vector<Route> r;
    const Role V = Role::kViewer, O = Role::kOperator, A = Role::kAdmin;
    // ---- accounts
    r.push_back({"POST", "/api/v1/auth/login", [this](const HttpRequest& req, HttpResponse& res) {
                   WithBody(req, res, [&](const json& b) {
                     if (!b.contains("email") || !b["email"].is_string() || !b.contains("password") || !b["password"].is_string())
                       return res.Error(InvalidArgument("expected {\"email\",\"password\"}"));
                     std::string account = b["email"].get<std::string>();
                     std::transform(account.begin(), account.end(), account.begin(),
                                    [](unsigned char c) { return std::tolower(c); });
                     if (int64_t wait = login_throttle.WaitSeconds(account, req.remote_addr); wait > 0) {
                       res.Error(RateLimited("too many failed logins: retry after " + std::to_string(wait) + " s"));
                       return;
                     }
                     auto s = ops.accounts.Login(account, b["password"].get<std::string>());
                     if (!s.ok()) {
                       spdlog::info("login failed for {}", LogSafe(account));  // never the password
                       if (s.status().code() == StatusCode::kUnauthenticated) login_throttle.Failed(account, req.remote_addr);
                       return res.Error(s.status());
                     }
                     login_throttle.Succeeded(account);
                     int64_t max_age = Accounts::kSessionTtlMs / 1000;
                     res.SetHeader("Set-Cookie", std::string(kSessionCookie) + "=" + s->token +
                                                     "; Path=/; HttpOnly; SameSite=Strict; Max-Age=" + std::to_string(max_age));
                     res.SetHeader("Set-Cookie", std::string(kCsrfCookie) + "=" + s->csrf_token +
                                                     "; Path=/; SameSite=Strict; Max-Age=" + std::to_string(max_age));
                     json projects = json::array();
                     for (auto& [p, role] : ops.accounts.Memberships(s->user_id))
                       projects.push_back({{"project", p}, {"role", RoleName(role)}});
                     res.Json(200, json{{"user_id", s->user_id}, {"csrf_token", s->csrf_token}, {"projects", projects},
                                        {"expires_at", s->expires_at_ms}});
                   });
                 }});
    r.push_back({"POST", "/api/v1/auth/logout", [this](const HttpRequest& req, HttpResponse& res) {
                   std::string token = req.Cookie(kSessionCookie);
                   if (token.empty()) return res.Error(Unauthenticated("not logged in"));
                   auto u = ops.accounts.BySession(token);
                   if (!u.ok()) return res.Error(u.status());
                   if (req.Header("x-csrf-token") != u->csrf_token)
                     return res.Error(PermissionDenied("missing or wrong X-CSRF-Token header"));
                   (void)ops.accounts.Logout(token);
                   res.SetHeader("Set-Cookie", std::string(kSessionCookie) + "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
                   res.SetHeader("Set-Cookie", std::string(kCsrfCookie) + "=; Path=/; SameSite=Strict; Max-Age=0");
                   res.Json(200, json{{"ok", true}});
                 }});
    r.push_back(R("GET", "/api/v1/auth/me", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      json projects = json::array();
      for (auto& [p, role] : ops.accounts.Memberships(w.user_id)) projects.push_back({{"project", p}, {"role", RoleName(role)}});
      res.Json(200, json{{"actor", w.actor}, {"user_id", w.user_id}, {"project", w.project}, {"role", RoleName(w.role)},
                         {"projects", projects}});
    }));
    r.push_back(R("POST", "/api/v1/users", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        for (const char* f : {"email", "password"})
          if (!b.contains(f) || !b[f].is_string()) return res.Error(InvalidArgument(std::string(f) + ": required string", f));
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
          return res.Json(201, json{{"id", *existing}, {"existing_account", true},
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
    r.push_back(R("GET", "/api/v1/users", A, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      res.Json(200, ops.accounts.ListUsers(w.project));
    }));
    // Role, disabled flag, name or password of a user of the project; each change audited
    // (the password never), sessions end when the user is disabled or the password is reset.
    r.push_back(R("PATCH", R"(/api/v1/users/(\d+))", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        const int64_t id = Id(req);
        auto before = ops.accounts.UserInProject(w.project, id);
        if (!before.ok()) return res.Error(before.status());
        for (auto it = b.begin(); it != b.end(); ++it)
          if (it.key() != "role" && it.key() != "disabled" && it.key() != "password" && it.key() != "name")
            return res.Error(InvalidArgument("unknown field '" + it.key() + "' (known: role, disabled, password, name)",
                                             it.key()));
        if (b.contains("role")) {
          if (!b["role"].is_string()) return res.Error(InvalidArgument("role: expected admin, operator or viewer", "role"));
          auto role = ParseRole(b["role"].get<std::string>());
          if (!role.ok()) return res.Error(role.status());
          if (Status st = ops.accounts.ChangeRole(w.project, id, *role); !st.ok()) return res.Error(st);
        }
        if (b.contains("disabled")) {
          if (!b["disabled"].is_boolean()) return res.Error(InvalidArgument("disabled: expected true or false", "disabled"));
          if (Status st = ops.accounts.SetDisabled(w, id, b["disabled"].get<bool>()); !st.ok()) return res.Error(st);
        }
        if (b.contains("password")) {
          if (!b["password"].is_string()) return res.Error(InvalidArgument("password: expected a string", "password"));
          if (Status st = ops.accounts.ResetPassword(w, id, b["password"].get<std::string>()); !st.ok())
            return res.Error(st);
        }
        if (b.contains("name")) {
          if (!b["name"].is_string() || b["name"].get<std::string>().size() > 200)
            return res.Error(InvalidArgument("name: expected text of at most 200 bytes", "name"));
          if (Status st = ops.db().Exec("UPDATE users SET name = ? WHERE id = ?", {b["name"].get<std::string>(), id}); !st.ok())
            return res.Error(st);
        }
        auto after = ops.accounts.UserInProject(w.project, id);
        if (!after.ok()) return res.Error(after.status());
        json audit_after = *after;
        if (b.contains("password")) audit_after["password"] = "(reset)";
        (void)Audit(ops.db(), w, "update", "user", id, *before, audit_after);
        res.Json(200, *after);
      });
    }));
    r.push_back(R("DELETE", R"(/api/v1/users/(\d+))", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      const int64_t id = Id(req);
      auto before = ops.accounts.UserInProject(w.project, id);
      if (!before.ok()) return res.Error(before.status());
      Status st = ops.accounts.RemoveFromProject(w.project, id);
      if (!st.ok()) return res.Error(st);
      (void)Audit(ops.db(), w, "delete", "user", id, *before, nullptr);
      res.Json(200, json{{"ok", true}});
    }));
    r.push_back(R("POST", "/api/v1/auth/password", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        if (!w.via_session || w.user_id == 0)
          return res.Error(InvalidArgument("log in as the user whose password changes (a key has no password)"));
        for (const char* f : {"current_password", "new_password"})
          if (!b.contains(f) || !b[f].is_string()) return res.Error(InvalidArgument(std::string(f) + ": required string", f));
        Status st = ops.accounts.ChangeOwnPassword(w.user_id, b["current_password"].get<std::string>(),
                                                   b["new_password"].get<std::string>(), req.Cookie(kSessionCookie));
        if (!st.ok()) return res.Error(st);
        (void)Audit(ops.db(), w, "change_password", "user", w.user_id, nullptr, json{{"other_sessions", "ended"}});
        res.Json(200, json{{"ok", true}, {"note", "your other sessions have ended"}});
      });
    }));
    r.push_back(R("GET", "/api/v1/api-keys", A, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      res.Json(200, ops.accounts.ListApiKeys(w.project));
    }));
    r.push_back(R("DELETE", R"(/api/v1/api-keys/(\d+))", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      auto name = ops.accounts.RevokeApiKey(w.project, Id(req));
      if (!name.ok()) return res.Error(name.status());
      (void)Audit(ops.db(), w, "revoke", "api_key", Id(req), json{{"name", *name}}, json{{"revoked", true}});
      res.Json(200, json{{"ok", true}, {"revoked", *name}});
    }));
    r.push_back(R("POST", "/api/v1/api-keys", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        auto role = ParseRole(b.value("role", std::string("viewer")));
        if (!role.ok()) return res.Error(role.status());
        auto key = ops.accounts.CreateApiKey(w.project, b.value("name", std::string("api key")), *role);
        if (!key.ok()) return res.Error(key.status());
        (void)Audit(ops.db(), w, "create", "api_key", 0, nullptr, json{{"name", b.value("name", "api key")}, {"role", RoleName(*role)}});
        res.Json(201, json{{"key", *key}, {"role", RoleName(*role)}, {"name", b.value("name", std::string("api key"))},
                           {"note", "shown once: store it now; GET /api/v1/api-keys lists it, DELETE revokes it"}});
      });
    }));
    r.push_back(R("GET", "/api/v1/audit-log", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      int64_t limit = req.HasParam("limit") ? std::atoll(req.Param("limit").c_str()) : 100;
      if (limit < 1 || limit > 10000) return res.Error(InvalidArgument("limit: 1 to 10000", "limit"));
      auto rows = ops.db().Query("SELECT id, at, actor, action, entity, entity_id, before_json, after_json FROM audit_log "
                                 "WHERE project = ? ORDER BY id DESC LIMIT ?",
                                 {w.project, limit});
      if (!rows.ok()) return res.Error(rows.status());
      json out = json::array();
      for (auto& x : *rows)
        out.push_back({{"id", x.Int(0)}, {"at", x.Int(1)}, {"actor", x.Str(2)}, {"action", x.Str(3)}, {"entity", x.Str(4)},
                       {"entity_id", x.IsNull(5) ? json() : json(x.Int(5))},
                       {"before", x.IsNull(6) ? json() : json::parse(x.Str(6), nullptr, false)},
                       {"after", x.IsNull(7) ? json() : json::parse(x.Str(7), nullptr, false)}});
      res.Json(200, out);
    }));
    r.push_back(R("GET", "/api/v1/settings", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      auto s = ops.Settings(w.project);
      if (!s.ok()) return res.Error(s.status());
      res.Json(200, json{{"snapshot_time", s->snapshot_time}, {"quiet_hours", s->quiet_hours}, {"reminder_days", s->reminder_days}});
    }));
    r.push_back(R("PATCH", "/api/v1/settings", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) { ReplyOk(res, ops.SetSettings(w, b)); });
    }));
    // ---- scenarios and actions
    r.push_back(R("POST", "/api/v1/scenarios", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        if (b.is_object() && b.contains("from_sop")) {
          if (!b["from_sop"].is_number_integer()) return res.Error(InvalidArgument("from_sop: expected an SOP id", "from_sop"));
          return ReplyId(res, ops.evaluations.StartFromSop(w, b["from_sop"].get<int64_t>(), b));
        }
        ReplyId(res, ops.scenarios.Create(w, b));
      });
    }));
    r.push_back(R("GET", "/api/v1/scenarios", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      Reply(res, ops.scenarios.List(w.project));
    }));
    r.push_back(R("GET", R"(/api/v1/scenarios/(\d+))", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.scenarios.Get(w.project, Id(req)));
    }));
    r.push_back(R("PATCH", R"(/api/v1/scenarios/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        Status st = ops.scenarios.Patch(w, Id(req), b);
        if (!st.ok()) return res.Error(st);
        Reply(res, ops.scenarios.Get(w.project, Id(req)));
      });
    }));
    r.push_back(R("DELETE", R"(/api/v1/scenarios/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      ReplyOk(res, ops.scenarios.Delete(w, Id(req)));
    }));
    r.push_back(R("POST", R"(/api/v1/scenarios/(\d+)/actions)", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) { ReplyId(res, ops.scenarios.AddAction(w, Id(req), b)); });
    }));
    r.push_back(R("POST", R"(/api/v1/scenarios/(\d+)/actions/import)", O,
                  [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                    auto ids = ops.scenarios.ImportActionsCsv(w, Id(req), req.body);
                    if (!ids.ok()) return res.Error(ids.status());
                    res.Json(201, json{{"ids", *ids}, {"imported", ids->size()}});
                  }));
    r.push_back(R("GET", R"(/api/v1/actions/(\d+))", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.scenarios.GetAction(w.project, Id(req)));
    }));
    r.push_back(R("PATCH", R"(/api/v1/actions/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        Status st = ops.scenarios.PatchAction(w, Id(req), b);
        if (!st.ok()) return res.Error(st);
        Reply(res, ops.scenarios.GetAction(w.project, Id(req)));
      });
    }));
    r.push_back(R("DELETE", R"(/api/v1/actions/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      ReplyOk(res, ops.scenarios.DeleteAction(w, Id(req)));
    }));
    r.push_back(R("GET", R"(/api/v1/scenarios/(\d+)/gantt)", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.scenarios.Gantt(w.project, Id(req)));
    }));
    r.push_back(R("GET", R"(/api/v1/scenarios/(\d+)/export\.xlsx)", V,
                  [this](const HttpRequest& req, HttpResponse& res, const Principal& w) { Export(req, res, w, true); }));
    r.push_back(R("GET", R"(/api/v1/scenarios/(\d+)/export\.csv)", V,
                  [this](const HttpRequest& req, HttpResponse& res, const Principal& w) { Export(req, res, w, false); }));
    // ---- evaluation and SOPs
    r.push_back(R("GET", R"(/api/v1/scenarios/(\d+)/evaluation)", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.evaluations.Get(w.project, Id(req)));
    }));
    for (const char* m : {"PUT", "PATCH"})
      r.push_back(R(m, R"(/api/v1/scenarios/(\d+)/evaluation)", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        WithBody(req, res, [&](const json& b) {
          Status st = ops.evaluations.Save(w, Id(req), b);
          if (!st.ok()) return res.Error(st);
          Reply(res, ops.evaluations.Get(w.project, Id(req)));
        });
      }));
    r.push_back(R("POST", R"(/api/v1/scenarios/(\d+)/evaluation/sop)", O,
                  [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                    WithBody(req, res, [&](const json& b) { ReplyId(res, ops.evaluations.SaveAsSop(w, Id(req), b)); });
                  }));
    r.push_back(R("GET", "/api/v1/sops", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      Reply(res, ops.evaluations.ListSops(w.project));
    }));
    r.push_back(R("GET", R"(/api/v1/sops/(\d+))", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.evaluations.GetSop(w.project, Id(req)));
    }));
    // ---- KPIs and monitoring
    r.push_back(R("POST", "/api/v1/kpis", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) { ReplyId(res, ops.kpis.Create(w, b)); });
    }));
    r.push_back(R("GET", "/api/v1/kpis", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      std::optional<int64_t> sid;
      if (req.HasParam("scenario_id")) sid = std::atoll(req.Param("scenario_id").c_str());
      Reply(res, ops.kpis.List(w.project, sid));
    }));
    r.push_back(R("GET", R"(/api/v1/kpis/(\d+))", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.kpis.Get(w.project, Id(req)));
    }));
    r.push_back(R("PATCH", R"(/api/v1/kpis/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) {
        Status st = ops.kpis.Patch(w, Id(req), b);
        if (!st.ok()) return res.Error(st);
        // Recompute only when the definition changed (not for the owner's reason text).
        bool recompute = false;
        for (const char* f : {"query", "reduce", "period", "target", "direction", "thresholds"}) recompute |= b.contains(f);
        Reply(res, recompute ? ops.kpis.Refresh(w.project, Id(req)) : ops.kpis.Get(w.project, Id(req)));
      });
    }));
    r.push_back(R("DELETE", R"(/api/v1/kpis/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      ReplyOk(res, ops.kpis.Delete(w, Id(req)));
    }));
    r.push_back(R("POST", R"(/api/v1/kpis/(\d+)/refresh)", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      auto k = ops.kpis.Refresh(w.project, Id(req));
      if (!k.ok()) return res.Error(k.status());
      auto fired = ops.alerts.EvaluateKpi(w.project, Id(req));
      if (!fired.ok()) return res.Error(fired.status());
      auto out = ops.kpis.Get(w.project, Id(req));
      if (!out.ok()) return res.Error(out.status());
      (*out)["alerts_fired"] = *fired;
      res.Json(200, *out);
    }));
    r.push_back(R("GET", "/api/v1/monitoring", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      std::optional<int64_t> sid;
      if (req.HasParam("scenario_id")) sid = std::atoll(req.Param("scenario_id").c_str());
      auto ks = ops.kpis.List(w.project, sid);
      if (!ks.ok()) return res.Error(ks.status());
      json rows = json::array();
      for (auto& k : *ks) {
        std::string scenario;
        if (k["scenario_id"].is_number_integer())
          if (auto sc = ops.scenarios.Get(w.project, k["scenario_id"].get<int64_t>()); sc.ok()) scenario = (*sc)["name"];
        rows.push_back({{"kpi_id", k["id"]}, {"scenario", scenario}, {"kpi", k["name"]}, {"target", k["target"]},
                        {"actual", k.value("actual", json())}, {"achievement_rate", k.value("achievement_rate", json())},
                        {"light", k.value("light", json())}, {"reason", k["reason"]},
                        {"auto_reason", k.value("auto_reason", json(""))}, {"owner", k["owner"]},
                        {"updated_at", k.value("refreshed_at", json())}, {"forecast", k.value("forecast", json())}});
      }
      res.Json(200, rows);
    }));
    // ---- alerts
    r.push_back(R("POST", "/api/v1/alert-rules", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) { ReplyId(res, ops.alerts.CreateRule(w, b)); });
    }));
    r.push_back(R("GET", "/api/v1/alert-rules", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      Reply(res, ops.alerts.ListRules(w.project));
    }));
    r.push_back(R("DELETE", R"(/api/v1/alert-rules/(\d+))", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      ReplyOk(res, ops.alerts.DeleteRule(w, Id(req)));
    }));
    r.push_back(R("GET", "/api/v1/alerts", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.alerts.List(w.project, req.Param("state")));
    }));
    r.push_back(R("GET", R"(/api/v1/alerts/(\d+))", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.alerts.Get(w.project, Id(req)));
    }));
    r.push_back(R("POST", R"(/api/v1/alerts/(\d+)/ack)", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Status st = ops.alerts.Ack(w, Id(req));
      if (!st.ok()) return res.Error(st);
      Reply(res, ops.alerts.Get(w.project, Id(req)));
    }));
    // ---- notification channels, reminders, jobs
    r.push_back(R("POST", "/api/v1/notification-channels", A, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) { ReplyId(res, ops.channels.Create(w, b)); });
    }));
    r.push_back(R("GET", "/api/v1/notification-channels", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      Reply(res, ops.channels.List(w.project));
    }));
    r.push_back(R("DELETE", R"(/api/v1/notification-channels/(\d+))", A,
                  [this](const HttpRequest& req, HttpResponse& res, const Principal& w) { ReplyOk(res, ops.channels.Delete(w, Id(req))); }));
    r.push_back(R("POST", R"(/api/v1/notification-channels/(\d+)/test)", A,
                  [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                    auto ch = ops.channels.Load(w.project, Id(req));
                    if (!ch.ok()) return res.Error(ch.status());
                    Notification n;
                    n.title = "[Northstar] test message / 测试消息";
                    n.text = "This channel works. 通知渠道配置成功。\nProject: " + w.project;
                    n.data = {{"test", true}, {"project", w.project}};
                    DeliveryResult d = ops.channels.Send(*ch, n);
                    res.Json(d.ok ? 200 : 502, json{{"ok", d.ok}, {"attempts", d.attempts}, {"http_status", d.http_status},
                                                    {"error", d.error},
                                                    // Only an excerpt: the full body would turn the test button into
                                                    // a reader of whatever the URL answers (finding 10).
                                                    {"response_body", TruncateUtf8Bytes(d.response_body, 200)},
                                                    {"duration_ms", d.duration_ms}});
                  }));
    r.push_back(R("GET", "/api/v1/deliveries", V, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.channels.Deliveries(w.project, 200));
    }));
    r.push_back(R("GET", "/api/v1/reminders", V, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      Reply(res, ops.Digest(w.project));
    }));
    r.push_back(R("POST", "/api/v1/reminders/send", O, [this](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      Reply(res, ops.SendReminders(w.project, req.Param("force") == "1" || req.Param("force") == "true"));
    }));
    r.push_back(R("POST", "/api/v1/jobs/daily", O, [this](const HttpRequest&, HttpResponse& res, const Principal& w) {
      Reply(res, ops.RunDaily(w.project));
    }));
    return r;
  }
};

}  // namespace

std::vector<Route> OpsRoutes(ServerContext& ctx, OpsService& ops) {
  // The API object lives as long as the server (routes capture it).
  static std::vector<std::unique_ptr<OpsApi>> apis;
  apis.push_back(std::unique_ptr<OpsApi>(new OpsApi{ctx, ops, {}}));
  // Queries and project info may also be read with a login session (the console).
  ctx.session_reader = [api = apis.back().get()](const HttpRequest& req) -> StatusOr<Project*> {
    NS_ASSIGN_OR_RETURN(Principal who, api->Authenticate(req));
    return api->ctx.registry.OpenProject(who.project);
  };
  return apis.back()->Routes();
}

}  // namespace ns
