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

void Metrics::Add(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels, uint64_t n) {
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

Deadline ServerContext::QueryDeadline(const HttpRequest& req) const {
  return Deadline::After(opt.query_timeout_ms, req.client_gone);
}

StatusOr<Project*> ServerContext::ProjectOf(const HttpRequest& req) {
  if (req.principal == nullptr) return Internal("route has no principal (declare its Access)");
  return registry.OpenProject(req.principal->project);
}

StatusOr<Principal> ServerContext::IngestKey(const std::string& key) {
  Credentials c;
  c.bearer = key;
  NS_ASSIGN_OR_RETURN(Principal who, auth.Authenticate(c));
  NS_RETURN_IF_ERROR(CheckAccess(who, Access::kIngest));
  return who;
}

}  // namespace ns
