// The authentication middleware: reads a request's credentials (bearer key, session cookie,
// CSRF header, chosen project), asks the Authenticator (auth/authenticator.h) who it is, and
// checks that against the Access a route declares. http_server.cc runs it on every route
// before the body is read; handlers only read HttpRequest::principal.
#pragma once

#include <string>
#include <string_view>

#include "auth/authenticator.h"
#include "server/http_types.h"
#include "storage/event.h"

namespace ns {

inline constexpr const char* kSessionCookie = "ns_session";
inline constexpr const char* kCsrfCookie = "ns_csrf";

// The key of "Authorization: Bearer <key>" ("" if none).
std::string BearerKey(const HttpRequest& req);
// The credentials of a request as the Authenticator reads them.
Credentials CredentialsOf(const HttpRequest& req);
// Whether `who` may use a route that needs `access` (kPublic: anyone). PermissionDenied says
// what is missing ("role viewer cannot do this; it needs operator or admin").
Status CheckAccess(const Principal& who, Access access);
// Authenticate + CheckAccess (not for kPublic routes).
StatusOr<Principal> Authorize(const Authenticator& auth, const HttpRequest& req, Access access);
std::string_view AccessName(Access a);

// The identity trust of a principal's events: the project's secret key may join identified
// persons, the public write key may not.
inline IdentityTrust TrustOf(const Principal& who) {
  return who.credential == Credential::kSecretKey ? IdentityTrust::kSecretKey : IdentityTrust::kWriteKey;
}

}  // namespace ns
