// Turns the credentials of a request into a Principal: a project's write key or secret key
// (ProjectRegistry), a role-scoped API key or a login session (Accounts). Knows nothing of
// HTTP: the server's middleware (server/auth.h) reads the credentials out of a request and
// checks the principal against the access a route needs.
#pragma once

#include <string>

#include "auth/accounts.h"
#include "auth/principal.h"
#include "core/status.h"
#include "meta/project_registry.h"

namespace ns {

struct Credentials {
  std::string bearer;    // "Authorization: Bearer <key>" ("" if none)
  std::string session;   // the session cookie ("" if none)
  std::string csrf;      // the X-CSRF-Token header
  bool changes = false;  // not GET/HEAD: a session needs the CSRF token
  std::string project;   // the project a session user chose (?project= or X-Northstar-Project)
};

class Authenticator {
 public:
  // `accounts` may be null (no users, API keys or sessions: project keys only).
  Authenticator(ProjectRegistry& registry, Accounts* accounts) : registry_(registry), accounts_(accounts) {}

  // The principal of the credentials. A bearer key wins over a session cookie. Unauthenticated
  // for none or an unknown key or session; PermissionDenied for a session change without its
  // CSRF token or a user without a role in the project; InvalidArgument when a user of several
  // projects names none.
  StatusOr<Principal> Authenticate(const Credentials& c) const;

  ProjectRegistry& registry() const { return registry_; }

 private:
  StatusOr<Principal> ByKey(const std::string& key) const;
  StatusOr<Principal> BySession(const Credentials& c) const;

  ProjectRegistry& registry_;
  Accounts* accounts_;
};

}  // namespace ns
