#include "auth/principal.h"

namespace ns {

std::string_view RoleName(Role r) {
  switch (r) {
    case Role::kViewer: return "viewer";
    case Role::kOperator: return "operator";
    case Role::kAdmin: return "admin";
  }
  return "viewer";
}

StatusOr<Role> ParseRole(const std::string& s) {
  if (s == "admin") return Role::kAdmin;
  if (s == "operator") return Role::kOperator;
  if (s == "viewer") return Role::kViewer;
  return InvalidArgument("role: expected admin, operator or viewer, got '" + s + "'", "role");
}

}  // namespace ns
