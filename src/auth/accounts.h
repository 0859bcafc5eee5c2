// Users, roles, login sessions and role-scoped API keys; the audit log.
// Passwords: argon2id (libargon2, OWASP parameters m=19 MiB, t=2, p=1), never logged.
// Session tokens and API keys are random, shown once, and stored only as SHA-256.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

#include "auth/principal.h"
#include "core/status.h"
#include "meta/meta_db.h"

namespace ns {

struct LoginSession {
  std::string token;  // cookie value, returned once
  std::string csrf_token;
  int64_t user_id = 0;
  int64_t expires_at_ms = 0;
};

struct SessionUser {
  int64_t user_id = 0;
  std::string email;
  std::string csrf_token;
};

class Accounts {
 public:
  explicit Accounts(MetaDb& db) : db_(db) {}

  static constexpr int64_t kSessionTtlMs = 7LL * 86'400'000;

  // Creates a user (email unique, password ≥ 10 characters) with a role in `project`.
  StatusOr<int64_t> CreateUser(const std::string& email, const std::string& password, const std::string& name,
                               const std::string& project, Role role);
  // Gives an existing user a role in a project (replaces the old role).
  Status SetRole(int64_t user_id, const std::string& project, Role role);
  StatusOr<int64_t> UserIdByEmail(const std::string& email);
  // Checks the password; a new session. The same error for an unknown email and a wrong
  // password (no account enumeration).
  StatusOr<LoginSession> Login(const std::string& email, const std::string& password);
  Status Logout(const std::string& token);
  StatusOr<SessionUser> BySession(const std::string& token);
  // The user's role in a project (NotFound if none); and the projects the user belongs to.
  StatusOr<Role> RoleOf(int64_t user_id, const std::string& project);
  std::vector<std::pair<std::string, Role>> Memberships(int64_t user_id);
  int64_t UserCount();
  nlohmann::json ListUsers(const std::string& project);

  // API keys with a role (nss_ prefix, like the project's own secret key).
  StatusOr<std::string> CreateApiKey(const std::string& project, const std::string& name, Role role);
  // The key's project, name and role, if it is one of ours and not revoked.
  struct ApiKeyInfo {
    std::string project;
    std::string name;
    Role role = Role::kViewer;
  };
  std::optional<ApiKeyInfo> ApiKeyRole(const std::string& key);
  // The project's role keys (never the key itself: only its hash is stored).
  nlohmann::json ListApiKeys(const std::string& project);
  // Revokes a key of the project (NotFound if it is not one; idempotent). Returns its name.
  StatusOr<std::string> RevokeApiKey(const std::string& project, int64_t id);

  // Credential management (finding 6 of docs/reliability.md). A user of `project`:
  // NotFound when the user has no role there.
  StatusOr<nlohmann::json> UserInProject(const std::string& project, int64_t user_id);
  // A user's role in `project`; refuses to leave the project without an admin.
  Status ChangeRole(const std::string& project, int64_t user_id, Role role);
  // Disables (or enables) a user; a disabled user's sessions end at once. Passwords and the
  // disabled flag belong to the user, not to one project: only an admin of every project
  // the user is in may change them (PermissionDenied otherwise).
  Status SetDisabled(const Principal& admin, int64_t user_id, bool disabled);
  Status ResetPassword(const Principal& admin, int64_t user_id, const std::string& password);
  // Removes the user from `project`; a user left in no project is deleted. Sessions end.
  Status RemoveFromProject(const std::string& project, int64_t user_id);
  // One's own password: checks the current one, sets the new one, ends every other session.
  Status ChangeOwnPassword(int64_t user_id, const std::string& current, const std::string& next,
                           const std::string& keep_session_token);
  // A user's display name (at most 200 bytes).
  Status SetName(int64_t user_id, const std::string& name);
  // The project's audit log, newest first (limit 1..10000).
  StatusOr<nlohmann::json> AuditLog(const std::string& project, int64_t limit);

 private:
  MetaDb& db_;
};

// argon2id hash in the PHC string format, and its check.
StatusOr<std::string> HashPassword(const std::string& password);
bool VerifyPassword(const std::string& encoded, const std::string& password);

// Appends to the audit log (who, when, what, before/after as JSON; null when absent).
Status Audit(MetaDb& db, const Principal& who, const std::string& action, const std::string& entity, int64_t id,
             const nlohmann::json& before, const nlohmann::json& after);

}  // namespace ns
