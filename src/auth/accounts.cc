#include "auth/accounts.h"

#include <argon2.h>

#include <algorithm>
#include <cstring>

#include "core/time_zone.h"
#include "meta/project_registry.h"

namespace ns {

using nlohmann::json;

StatusOr<std::string> HashPassword(const std::string& password) {
  constexpr uint32_t kTime = 2, kMemKiB = 19 * 1024, kLanes = 1, kHashLen = 32, kSaltLen = 16;
  std::string salt = RandomToken("", kSaltLen * 2).substr(0, kSaltLen);
  size_t len = argon2_encodedlen(kTime, kMemKiB, kLanes, kSaltLen, kHashLen, Argon2_id);
  std::string encoded(len, '\0');
  int rc = argon2id_hash_encoded(kTime, kMemKiB, kLanes, password.data(), password.size(), salt.data(), salt.size(),
                                 kHashLen, encoded.data(), encoded.size());
  if (rc != ARGON2_OK) return Internal(std::string("argon2: ") + argon2_error_message(rc));
  encoded.resize(std::strlen(encoded.c_str()));
  return encoded;
}

bool VerifyPassword(const std::string& encoded, const std::string& password) {
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

static Status ValidateEmail(const std::string& email) {
  auto at = email.find('@');
  if (email.size() > 254 || at == std::string::npos || at == 0 || at + 1 >= email.size() ||
      email.find(' ') != std::string::npos || email.find('@', at + 1) != std::string::npos)
    return InvalidArgument("email: '" + email + "' is not an email address", "email");
  return Status::OK();
}

static std::string Lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

static Status ValidatePassword(const std::string& password, const char* field) {
  if (password.size() < 10) return InvalidArgument(std::string(field) + ": must be at least 10 characters", field);
  if (password.size() > 1024) return InvalidArgument(std::string(field) + ": must be at most 1024 characters", field);
  return Status::OK();
}

StatusOr<int64_t> Accounts::CreateUser(const std::string& email_in, const std::string& password,
                                       const std::string& name, const std::string& project, Role role) {
  std::string email = Lower(email_in);
  NS_RETURN_IF_ERROR(ValidateEmail(email));
  NS_RETURN_IF_ERROR(ValidatePassword(password, "password"));
  NS_ASSIGN_OR_RETURN(std::string hash, HashPassword(password));
  int64_t id = 0;
  Status st = db_.Tx([&]() -> Status {
    auto existing = db_.Query("SELECT id FROM users WHERE email = ?", {email});
    if (!existing.ok()) return existing.status();
    if (!existing->empty()) return AlreadyExists("a user with email " + email + " already exists");
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO users(email, name, password_hash, created_at) VALUES(?, ?, ?, ?)",
                                       {email, name, hash, NowMs()}));
    return SetRole(id, project, role);
  });
  NS_RETURN_IF_ERROR(st);
  return id;
}

Status Accounts::SetRole(int64_t user_id, const std::string& project, Role role) {
  return db_.Exec(
      "INSERT INTO memberships(user_id, project, role) VALUES(?, ?, ?) "
      "ON CONFLICT(user_id, project) DO UPDATE SET role = excluded.role",
      {user_id, project, std::string(RoleName(role))});
}

StatusOr<int64_t> Accounts::UserIdByEmail(const std::string& email) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id FROM users WHERE email = ?", {Lower(email)}));
  if (rows.empty()) return NotFound("no user " + email);
  return rows[0].Int(0);
}

StatusOr<LoginSession> Accounts::Login(const std::string& email, const std::string& password) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT id, password_hash, disabled FROM users WHERE email = ?", {Lower(email)}));
  static const std::string kDummy = HashPassword("not-a-real-password").value();
  // Verify against a dummy hash for unknown emails, so both cases take the same time.
  bool ok = VerifyPassword(rows.empty() ? kDummy : rows[0].Str(1), password);
  if (rows.empty() || !ok || rows[0].Int(2) != 0) return Unauthenticated("wrong email or password");
  LoginSession s;
  s.user_id = rows[0].Int(0);
  s.token = RandomToken("", 64);
  s.csrf_token = RandomToken("", 32);
  s.expires_at_ms = NowMs() + kSessionTtlMs;
  NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM sessions WHERE expires_at < ?", {NowMs()}));
  NS_RETURN_IF_ERROR(
      db_.Exec("INSERT INTO sessions(token_hash, user_id, csrf_token, created_at, expires_at) VALUES(?, ?, ?, ?, ?)",
               {Sha256Hex(s.token), s.user_id, s.csrf_token, NowMs(), s.expires_at_ms}));
  return s;
}

Status Accounts::Logout(const std::string& token) {
  return db_.Exec("DELETE FROM sessions WHERE token_hash = ?", {Sha256Hex(token)});
}

StatusOr<SessionUser> Accounts::BySession(const std::string& token) {
  if (token.empty()) return Unauthenticated("not logged in");
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT s.user_id, u.email, s.csrf_token, s.expires_at, u.disabled FROM sessions s "
                                "JOIN users u ON u.id = s.user_id WHERE s.token_hash = ?",
                                {Sha256Hex(token)}));
  if (rows.empty() || rows[0].Int(3) < NowMs() || rows[0].Int(4) != 0)
    return Unauthenticated("session expired or unknown: log in again");
  return SessionUser{rows[0].Int(0), rows[0].Str(1), rows[0].Str(2)};
}

StatusOr<Role> Accounts::RoleOf(int64_t user_id, const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT role FROM memberships WHERE user_id = ? AND project = ?", {user_id, project}));
  if (rows.empty()) return NotFound("no role in project " + project);
  return ParseRole(rows[0].Str(0));
}

std::vector<std::pair<std::string, Role>> Accounts::Memberships(int64_t user_id) {
  std::vector<std::pair<std::string, Role>> out;
  auto rows = db_.Query("SELECT project, role FROM memberships WHERE user_id = ? ORDER BY project", {user_id});
  if (!rows.ok()) return out;
  for (auto& r : *rows)
    if (auto role = ParseRole(r.Str(1)); role.ok()) out.emplace_back(r.Str(0), *role);
  return out;
}

int64_t Accounts::UserCount() {
  auto rows = db_.Query("SELECT COUNT(*) FROM users");
  return rows.ok() && !rows->empty() ? (*rows)[0].Int(0) : 0;
}

json Accounts::ListUsers(const std::string& project) {
  json out = json::array();
  auto rows = db_.Query(
      "SELECT u.id, u.email, u.name, m.role, u.created_at FROM users u JOIN memberships m "
      "ON m.user_id = u.id WHERE m.project = ? ORDER BY u.id",
      {project});
  if (!rows.ok()) return out;
  for (auto& r : *rows)
    out.push_back(
        {{"id", r.Int(0)}, {"email", r.Str(1)}, {"name", r.Str(2)}, {"role", r.Str(3)}, {"created_at", r.Int(4)}});
  return out;
}

StatusOr<std::string> Accounts::CreateApiKey(const std::string& project, const std::string& name, Role role) {
  if (name.empty() || name.size() > 100) return InvalidArgument("name: 1 to 100 characters", "name");
  std::string key = RandomToken("nss_", 40);
  NS_RETURN_IF_ERROR(db_.Exec("INSERT INTO api_keys(project, name, key_hash, role, created_at) VALUES(?, ?, ?, ?, ?)",
                              {project, name, Sha256Hex(key), std::string(RoleName(role)), NowMs()}));
  return key;
}

std::optional<Accounts::ApiKeyInfo> Accounts::ApiKeyRole(const std::string& key) {
  auto rows =
      db_.Query("SELECT project, role, name FROM api_keys WHERE key_hash = ? AND revoked = 0", {Sha256Hex(key)});
  if (!rows.ok() || rows->empty()) return std::nullopt;
  auto role = ParseRole((*rows)[0].Str(1));
  if (!role.ok()) return std::nullopt;
  return ApiKeyInfo{(*rows)[0].Str(0), (*rows)[0].Str(2), *role};
}

json Accounts::ListApiKeys(const std::string& project) {
  json out = json::array();
  auto rows =
      db_.Query("SELECT id, name, role, created_at, revoked FROM api_keys WHERE project = ? ORDER BY id", {project});
  if (!rows.ok()) return out;
  for (auto& r : *rows)
    out.push_back({{"id", r.Int(0)},
                   {"name", r.Str(1)},
                   {"role", r.Str(2)},
                   {"created_at", r.Int(3)},
                   {"revoked", r.Int(4) != 0}});
  return out;
}

StatusOr<std::string> Accounts::RevokeApiKey(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT name FROM api_keys WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no API key " + std::to_string(id) + " in this project");
  NS_RETURN_IF_ERROR(db_.Exec("UPDATE api_keys SET revoked = 1 WHERE id = ?", {id}));
  return rows[0].Str(0);
}

StatusOr<json> Accounts::UserInProject(const std::string& project, int64_t user_id) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT u.id, u.email, u.name, m.role, u.created_at, u.disabled FROM users u "
                                "JOIN memberships m ON m.user_id = u.id WHERE u.id = ? AND m.project = ?",
                                {user_id, project}));
  if (rows.empty()) return NotFound("no user " + std::to_string(user_id) + " in this project");
  const SqlRow& r = rows[0];
  return json{{"id", r.Int(0)},   {"email", r.Str(1)},      {"name", r.Str(2)},
              {"role", r.Str(3)}, {"created_at", r.Int(4)}, {"disabled", r.Int(5) != 0}};
}

Status Accounts::ChangeRole(const std::string& project, int64_t user_id, Role role) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(json u, UserInProject(project, user_id));
    if (u["role"] == "admin" && role != Role::kAdmin) {
      NS_ASSIGN_OR_RETURN(auto n, db_.Query("SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id "
                                            "WHERE m.project = ? AND m.role = 'admin' AND u.disabled = 0",
                                            {project}));
      if (n[0].Int(0) <= 1)
        return FailedPrecondition("user " + u["email"].get<std::string>() +
                                  " is the project's last admin: make another user admin first");
    }
    return SetRole(user_id, project, role);
  });
}

// Whether `admin` is an admin of every project the user belongs to (a user-wide change must
// not let the admin of one project take over an account used in another).
static Status AdminOfAllProjects(Accounts& a, const Principal& admin, int64_t user_id) {
  for (auto& [p, role] : a.Memberships(user_id)) {
    if (p == admin.project) continue;
    if (admin.user_id == 0)
      return PermissionDenied(
          "the user also belongs to another project: only an admin of every project of the user (logged in) can change "
          "this; remove the user from this project instead");
    auto r = a.RoleOf(admin.user_id, p);
    if (!r.ok() || *r != Role::kAdmin)
      return PermissionDenied(
          "the user also belongs to another project where you are not an admin; remove the user "
          "from this project instead (DELETE /api/v1/users/ID)");
  }
  return Status::OK();
}

Status Accounts::SetDisabled(const Principal& admin, int64_t user_id, bool disabled) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(json u, UserInProject(admin.project, user_id));
    NS_RETURN_IF_ERROR(AdminOfAllProjects(*this, admin, user_id));
    if (disabled && user_id == admin.user_id) return FailedPrecondition("you cannot disable yourself");
    if (disabled && u["role"] == "admin") {
      NS_ASSIGN_OR_RETURN(auto n, db_.Query("SELECT COUNT(*) FROM memberships m JOIN users u ON u.id = m.user_id "
                                            "WHERE m.project = ? AND m.role = 'admin' AND u.disabled = 0",
                                            {admin.project}));
      if (n[0].Int(0) <= 1) return FailedPrecondition("the project's last admin cannot be disabled");
    }
    NS_RETURN_IF_ERROR(db_.Exec("UPDATE users SET disabled = ? WHERE id = ?", {int64_t{disabled ? 1 : 0}, user_id}));
    if (disabled) NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM sessions WHERE user_id = ?", {user_id}));
    return Status::OK();
  });
}

Status Accounts::ResetPassword(const Principal& admin, int64_t user_id, const std::string& password) {
  NS_RETURN_IF_ERROR(ValidatePassword(password, "password"));
  NS_ASSIGN_OR_RETURN(std::string hash, HashPassword(password));
  return db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(UserInProject(admin.project, user_id).status());
    NS_RETURN_IF_ERROR(AdminOfAllProjects(*this, admin, user_id));
    NS_RETURN_IF_ERROR(db_.Exec("UPDATE users SET password_hash = ? WHERE id = ?", {hash, user_id}));
    return db_.Exec("DELETE FROM sessions WHERE user_id = ?", {user_id});
  });
}

Status Accounts::RemoveFromProject(const std::string& project, int64_t user_id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(json u, UserInProject(project, user_id));
    if (u["role"] == "admin") {
      NS_ASSIGN_OR_RETURN(
          auto n, db_.Query("SELECT COUNT(*) FROM memberships WHERE project = ? AND role = 'admin'", {project}));
      if (n[0].Int(0) <= 1) return FailedPrecondition("the project's last admin cannot be removed");
    }
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM memberships WHERE user_id = ? AND project = ?", {user_id, project}));
    NS_ASSIGN_OR_RETURN(auto left, db_.Query("SELECT COUNT(*) FROM memberships WHERE user_id = ?", {user_id}));
    if (left[0].Int(0) == 0) {
      NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM sessions WHERE user_id = ?", {user_id}));
      NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM users WHERE id = ?", {user_id}));
    }
    return Status::OK();
  });
}

Status Accounts::ChangeOwnPassword(int64_t user_id, const std::string& current, const std::string& next,
                                   const std::string& keep_session_token) {
  NS_RETURN_IF_ERROR(ValidatePassword(next, "new_password"));
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT password_hash FROM users WHERE id = ?", {user_id}));
  if (rows.empty()) return NotFound("no such user");
  if (!VerifyPassword(rows[0].Str(0), current)) return PermissionDenied("current_password is wrong");
  if (current == next) return InvalidArgument("new_password: must differ from the current password", "new_password");
  NS_ASSIGN_OR_RETURN(std::string hash, HashPassword(next));
  return db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(db_.Exec("UPDATE users SET password_hash = ? WHERE id = ?", {hash, user_id}));
    return db_.Exec("DELETE FROM sessions WHERE user_id = ? AND token_hash != ?",
                    {user_id, Sha256Hex(keep_session_token)});
  });
}

Status Audit(MetaDb& db, const Principal& who, const std::string& action, const std::string& entity, int64_t id,
             const json& before, const json& after) {
  auto text = [](const json& j) -> SqlValue {
    if (j.is_null()) return nullptr;
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  return db.Exec(
      "INSERT INTO audit_log(project, at, actor, action, entity, entity_id, before_json, after_json) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
      {who.project, NowMs(), who.actor, action, entity, id, text(before), text(after)});
}

Status Accounts::SetName(int64_t user_id, const std::string& name) {
  if (name.size() > 200) return InvalidArgument("name: expected text of at most 200 bytes", "name");
  return db_.Exec("UPDATE users SET name = ? WHERE id = ?", {name, user_id});
}

StatusOr<json> Accounts::AuditLog(const std::string& project, int64_t limit) {
  if (limit < 1 || limit > 10000) return InvalidArgument("limit: 1 to 10000", "limit");
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, at, actor, action, entity, entity_id, before_json, after_json "
                                           "FROM audit_log WHERE project = ? ORDER BY id DESC LIMIT ?",
                                           {project, limit}));
  json out = json::array();
  for (auto& x : rows)
    out.push_back({{"id", x.Int(0)},
                   {"at", x.Int(1)},
                   {"actor", x.Str(2)},
                   {"action", x.Str(3)},
                   {"entity", x.Str(4)},
                   {"entity_id", x.IsNull(5) ? json() : json(x.Int(5))},
                   {"before", x.IsNull(6) ? json() : json::parse(x.Str(6), nullptr, false)},
                   {"after", x.IsNull(7) ? json() : json::parse(x.Str(7), nullptr, false)}});
  return out;
}

}  // namespace ns
