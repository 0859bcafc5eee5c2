#include "server/server_context.h"

namespace ns {

static std::string LabelText(const std::vector<std::pair<std::string, std::string>>& labels) {
  std::string s;
  for (const auto& [k, v] : labels) {
    if (!s.empty()) s += ',';
    s += k + "=\"";
    for (char c : v) {
      if (c == '"' || c == '\\') s += '\\';
      if (c == '\n') {
        s += "\\n";
        continue;
      }
      s += c;
    }
    s += '"';
  }
  return s;
}

void Metrics::Add(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels,
                  uint64_t n) {
  std::string l = LabelText(labels);
  std::lock_guard lock(mu_);
  series_[name][l] += n;
}

void Metrics::Describe(const std::string& name, const std::string& type, const std::string& help) {
  std::lock_guard lock(mu_);
  meta_[name] = {type, help};
}

uint64_t Metrics::Get(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels) const {
  std::string l = LabelText(labels);
  std::lock_guard lock(mu_);
  auto it = series_.find(name);
  if (it == series_.end()) return 0;
  auto jt = it->second.find(l);
  return jt == it->second.end() ? 0 : jt->second;
}

std::string Metrics::Render() const {
  std::lock_guard lock(mu_);
  std::string out;
  for (const auto& [name, series] : series_) {
    auto m = meta_.find(name);
    if (m != meta_.end()) {
      out += "# HELP " + name + " " + m->second.second + "\n";
      out += "# TYPE " + name + " " + m->second.first + "\n";
    }
    for (const auto& [labels, v] : series)
      out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(v) + "\n";
  }
  return out;
}

std::string ServerContext::BearerKey(const HttpRequest& req) {
  std::string h = req.Header("authorization");
  if (h.size() > 7 && (h.rfind("Bearer ", 0) == 0 || h.rfind("bearer ", 0) == 0)) return h.substr(7);
  return {};
}

StatusOr<Project*> ServerContext::ReaderProject(const HttpRequest& req) {
  std::string key = BearerKey(req);
  if (key.empty() && session_reader && !req.Cookie("ns_session").empty()) return session_reader(req);
  auto p = ProjectForKey(key, true);
  // Role-scoped secret keys (POST /api/v1/api-keys) live in the operations layer.
  if (!p.ok() && session_reader && key.rfind("nss_", 0) == 0) return session_reader(req);
  return p;
}

StatusOr<Project*> ServerContext::ProjectForKey(const std::string& key, bool want_secret) {
  if (key.empty()) return Unauthenticated("missing API key: send the header 'Authorization: Bearer <key>'");
  if (key.rfind("nss_", 0) == 0) {
    NS_ASSIGN_OR_RETURN(ProjectInfo info, registry.BySecretKey(key));
    return registry.OpenProject(info.name);
  }
  if (key.rfind("nsw_", 0) == 0) {
    auto info = registry.ByWriteKey(key);
    if (!info.ok()) return info.status();
    if (want_secret)
      return PermissionDenied("a write key can only send events; use the project's secret key (nss_...) to read");
    return registry.OpenProject(info->name);
  }
  return Unauthenticated("unknown API key (expected a write key nsw_... or a secret key nss_...)");
}

}  // namespace ns
