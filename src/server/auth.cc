#include "server/auth.h"

namespace ns {

std::string BearerKey(const HttpRequest& req) {
  std::string h = req.Header("authorization");
  if (h.size() > 7 && (h.rfind("Bearer ", 0) == 0 || h.rfind("bearer ", 0) == 0)) return h.substr(7);
  return {};
}

Credentials CredentialsOf(const HttpRequest& req) {
  Credentials c;
  c.bearer = BearerKey(req);
  c.session = req.Cookie(kSessionCookie);
  c.csrf = req.Header("x-csrf-token");
  c.changes = req.method != "GET" && req.method != "HEAD";
  c.project = req.Param("project");
  if (c.project.empty()) c.project = req.Header("x-northstar-project");
  return c;
}

std::string_view AccessName(Access a) {
  switch (a) {
    case Access::kPublic: return "public";
    case Access::kIngest: return "ingest";
    case Access::kViewer: return "viewer";
    case Access::kOperator: return "operator";
    case Access::kAdmin: return "admin";
  }
  return "public";
}

Status CheckAccess(const Principal& who, Access access) {
  if (access == Access::kPublic) return Status::OK();
  if (access == Access::kIngest) {
    if (who.credential == Credential::kWriteKey || who.credential == Credential::kSecretKey) return Status::OK();
    if (who.credential == Credential::kSession)
      return Unauthenticated("missing API key: send the header 'Authorization: Bearer <key>'");
    return PermissionDenied(
        "events are sent with the project's write key (nsw_...) or secret key; an API key is for "
        "reading and the operations API");
  }
  if (who.credential == Credential::kWriteKey)
    return PermissionDenied("a write key can only send events; use a secret key (nss_...) or log in");
  const Role need = access == Access::kAdmin      ? Role::kAdmin
                    : access == Access::kOperator ? Role::kOperator
                                                  : Role::kViewer;
  if (static_cast<int>(who.role) < static_cast<int>(need))
    return PermissionDenied("role " + std::string(RoleName(who.role)) + " cannot do this; it needs " +
                            std::string(RoleName(need)) + (need == Role::kOperator ? " or admin" : ""));
  return Status::OK();
}

StatusOr<Principal> Authorize(const Authenticator& auth, const HttpRequest& req, Access access) {
  Credentials c = CredentialsOf(req);
  // Sending events takes a key; a session cookie alone is not one (the collection routes'
  // CORS answers let any page send with the browser's cookies).
  if (access == Access::kIngest && c.bearer.empty())
    return Unauthenticated("missing API key: send the header 'Authorization: Bearer <key>'");
  NS_ASSIGN_OR_RETURN(Principal who, auth.Authenticate(c));
  NS_RETURN_IF_ERROR(CheckAccess(who, access));
  return who;
}

}  // namespace ns
