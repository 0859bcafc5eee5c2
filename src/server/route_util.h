// What the operations API's route files share (account_routes.cc, scenario_routes.cc,
// monitoring_routes.cc): the route adapter that hands handlers the caller, and the small
// helpers that read a JSON body and answer a result.
#pragma once

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <functional>
#include <string>

#include "core/log_safe.h"
#include "server/http_types.h"
#include "server/server_context.h"

namespace ns {

// A handler of the operations API: the auth middleware has found the caller.
using OpsHandler = std::function<void(const HttpRequest&, HttpResponse&, const Principal&)>;

// A route needing `access`; an unexpected JSON error in the handler is answered 500 (inputs
// are validated before use, so it is our bug, not the client's: one error model, issue 9).
inline Route R(const char* method, std::string pattern, Access access, OpsHandler h) {
  return Route{method, std::move(pattern),
               [h = std::move(h)](const HttpRequest& req, HttpResponse& res) {
                 try {
                   h(req, res, *req.principal);
                 } catch (const nlohmann::json::exception& e) {
                   spdlog::error("{} {}: unexpected JSON error: {}", req.method, LogSafe(req.path), LogSafe(e.what()));
                   res.Error(Internal(std::string("unexpected error reading a value: ") + e.what()));
                 }
               },
               access};
}

inline int64_t Id(const HttpRequest& req, size_t i = 1) { return std::atoll(req.matches.at(i).c_str()); }

inline StatusOr<nlohmann::json> Body(const HttpRequest& req) {
  if (req.body.empty()) return nlohmann::json::object();
  std::string mime = req.MimeType();
  // `curl -d` labels JSON application/x-www-form-urlencoded: accept it when it is JSON.
  bool form_json = mime == "application/x-www-form-urlencoded" && (req.body[0] == '{' || req.body[0] == '[');
  if (!mime.empty() && mime != "application/json" && mime != "text/plain" && !form_json)
    return UnsupportedMediaType("expected Content-Type application/json, got '" + mime + "'");
  return ParseJsonBody(req.body);
}

// Runs f(body) and answers with its JSON or its error.
template <typename F>
void WithBody(const HttpRequest& req, HttpResponse& res, F f) {
  auto b = Body(req);
  if (!b.ok()) return res.Error(b.status());
  f(*b);
}

inline void Reply(HttpResponse& res, const StatusOr<nlohmann::json>& r, int code = 200) {
  if (!r.ok()) return res.Error(r.status());
  res.Json(code, *r);
}
inline void ReplyId(HttpResponse& res, const StatusOr<int64_t>& r) {
  if (!r.ok()) return res.Error(r.status());
  res.Json(201, nlohmann::json{{"id", *r}});
}
inline void ReplyOk(HttpResponse& res, const Status& st) {
  if (!st.ok()) return res.Error(st);
  res.Json(200, nlohmann::json{{"ok", true}});
}

}  // namespace ns
