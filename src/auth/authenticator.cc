#include "auth/authenticator.h"

namespace ns {

StatusOr<Principal> Authenticator::Authenticate(const Credentials& c) const {
  if (!c.bearer.empty()) return ByKey(c.bearer);
  if (!c.session.empty() && accounts_ != nullptr) return BySession(c);
  return Unauthenticated(accounts_ != nullptr ? "log in (POST /api/v1/auth/login) or send 'Authorization: Bearer <key>'"
                                              : "missing API key: send the header 'Authorization: Bearer <key>'");
}

StatusOr<Principal> Authenticator::ByKey(const std::string& key) const {
  if (key.rfind("nsw_", 0) == 0) {
    NS_ASSIGN_OR_RETURN(ProjectInfo info, registry_.ByWriteKey(key));
    return Principal{"key:" + info.name + "/write", 0, info.name, Role::kViewer, Credential::kWriteKey};
  }
  if (key.rfind("nss_", 0) != 0)
    return Unauthenticated("unknown API key (expected a write key nsw_... or a secret key nss_...)");
  if (auto info = registry_.BySecretKey(key); info.ok())
    return Principal{"key:" + info->name + "/secret", 0, info->name, Role::kAdmin, Credential::kSecretKey};
  // The audit log names the key: key:<project>/<key name>.
  if (accounts_ != nullptr)
    if (auto k = accounts_->ApiKeyRole(key))
      return Principal{"key:" + k->project + "/" + k->name, 0, k->project, k->role, Credential::kApiKey};
  return Unauthenticated("unknown or revoked secret key");
}

StatusOr<Principal> Authenticator::BySession(const Credentials& c) const {
  NS_ASSIGN_OR_RETURN(SessionUser u, accounts_->BySession(c.session));
  if (c.changes && c.csrf != u.csrf_token)
    return PermissionDenied("missing or wrong X-CSRF-Token header (the csrf_token returned at login)");
  std::string project = c.project;
  if (project.empty()) {
    auto memberships = accounts_->Memberships(u.user_id);
    if (memberships.empty()) return PermissionDenied("user " + u.email + " has no role in any project");
    if (memberships.size() > 1) {
      std::string list;
      for (auto& [p, r] : memberships) list += (list.empty() ? "" : ", ") + p;
      return InvalidArgument("choose a project with ?project=NAME or the X-Northstar-Project header (" + list + ")",
                             "project");
    }
    project = memberships[0].first;
  }
  auto role = accounts_->RoleOf(u.user_id, project);
  if (!role.ok()) return PermissionDenied("user " + u.email + " has no role in project '" + project + "'");
  return Principal{u.email, u.user_id, project, *role, Credential::kSession};
}

}  // namespace ns
