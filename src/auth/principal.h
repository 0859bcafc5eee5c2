// Who is calling: the principal every authenticated request carries, its role in its project
// and the credential it came with. The HTTP middleware (server/auth.h) makes one from a
// request; the operations layer reads it for permissions and the audit log.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"

namespace ns {

enum class Role { kViewer = 1, kOperator = 2, kAdmin = 3 };
std::string_view RoleName(Role r);
// "admin", "operator" or "viewer"; InvalidArgument naming the field "role" otherwise.
StatusOr<Role> ParseRole(const std::string& s);

// What a principal authenticated with. A write key can only send events; the project's
// secret key is its admin (and may merge identified persons); an API key has the role it
// was created with; a session is a logged-in user (changes need the CSRF token); the
// system is the scheduler and the first-run setup.
enum class Credential { kSystem, kWriteKey, kSecretKey, kApiKey, kSession };

struct Principal {
  std::string actor;  // "alice@example.com" or "key:<project>/<key name>" (for the audit log)
  int64_t user_id = 0;
  std::string project;
  Role role = Role::kViewer;
  Credential credential = Credential::kSystem;

  bool via_session() const { return credential == Credential::kSession; }
};

}  // namespace ns
