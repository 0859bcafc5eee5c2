#include "server/http_server.h"

#include <httplib.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <mutex>

#include "ingest/gzip.h"
#include "query/operators.h"

namespace ns {

using nlohmann::json;

int HttpStatusFor(const Status& st) {
  switch (st.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kResourceExhausted: return 413;
    case StatusCode::kUnsupportedMediaType: return 415;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

namespace {

json ErrorJson(const Status& st) {
  json e;
  e["code"] = std::string(st.CodeName());
  e["message"] = st.message();
  if (!st.field().empty()) e["field"] = st.field();
  return json{{"error", e}};
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json; charset=utf-8");
}

void SendError(httplib::Response& res, const Status& st) {
  SendJson(res, HttpStatusFor(st), ErrorJson(st));
  if (st.code() == StatusCode::kUnavailable) res.set_header("Retry-After", "5");
}

std::string BearerKey(const httplib::Request& req) {
  std::string h = req.get_header_value("Authorization");
  if (h.rfind("Bearer ", 0) == 0) return h.substr(7);
  if (h.rfind("bearer ", 0) == 0) return h.substr(7);
  return {};
}

StatusOr<json> ParseJsonBody(const httplib::Request& req) {
  try {
    return json::parse(req.body);
  } catch (const json::parse_error& e) {
    return InvalidArgument("malformed JSON: " + EscapeInvalidUtf8(e.what()));
  }
}

struct Counters {
  std::atomic<uint64_t> accepted{0}, duplicates{0}, rejected{0}, requests{0}, queries{0}, query_errors{0};
};

}  // namespace

struct HttpServer::Impl {
  ProjectRegistry& registry;
  ServerOptions opt;
  httplib::Server svr;
  Counters counters;

  Impl(ProjectRegistry& r, ServerOptions o) : registry(r), opt(std::move(o)) {}

  // Resolves the project of a request's key. want_secret: reading or administering.
  StatusOr<Project*> Authenticate(const httplib::Request& req, bool want_secret) {
    std::string key = BearerKey(req);
    if (key.empty())
      return Unauthenticated("missing API key: send the header 'Authorization: Bearer <key>'");
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

  void HandleEvents(const httplib::Request& req, httplib::Response& res) {
    counters.requests++;
    auto project = Authenticate(req, false);
    if (!project.ok()) return SendError(res, project.status());
    Project& p = **project;
    std::string ctype = req.get_header_value("Content-Type");
    auto semi = ctype.find(';');
    std::string mime = semi == std::string::npos ? ctype : ctype.substr(0, semi);
    bool ndjson = mime == "application/x-ndjson" || mime == "application/ndjson" || mime == "application/jsonl";
    // `curl -d` labels bodies application/x-www-form-urlencoded: accept them when they are JSON.
    const bool form_json = mime == "application/x-www-form-urlencoded" && !req.body.empty() &&
                           (req.body[0] == '[' || req.body[0] == '{');
    if (!ndjson && !form_json && !mime.empty() && mime != "application/json" && mime != "text/plain")
      return SendError(res, Status(StatusCode::kUnsupportedMediaType,
                                   "unsupported Content-Type '" + mime +
                                       "' (expected application/json or application/x-ndjson)"));
    std::string_view body = req.body;
    std::string inflated;
    std::string enc = req.get_header_value("Content-Encoding");
    // cpp-httplib (built with zlib) already inflates bodies sent with Content-Encoding: gzip;
    // inflate here only what is still gzip (by its magic bytes), whatever the header says.
    if (LooksGzipped(body) && (enc.empty() || enc == "gzip")) {
      auto r = Gunzip(body, opt.limits.max_body_bytes);
      if (!r.ok()) return SendError(res, r.status());
      inflated = std::move(r).value();
      body = inflated;
    } else if (!enc.empty() && enc != "identity" && enc != "gzip" && enc != "deflate") {
      return SendError(res, Status(StatusCode::kUnsupportedMediaType,
                                   "unsupported Content-Encoding '" + enc + "' (expected gzip or identity)"));
    }
    auto parsed = ParseNativeBatch(body, ndjson, p.tz, NowMs(), opt.limits);
    if (!parsed.ok()) {
      counters.rejected++;
      return SendError(res, parsed.status());
    }
    json errors = json::array();
    bool too_large = false;
    for (const auto& e : parsed->errors) {
      errors.push_back({{"index", e.index}, {"code", e.code}, {"field", e.field}, {"message", e.message}});
      too_large |= e.code == "event_too_large";
    }
    counters.rejected += parsed->errors.size();
    AppendResult r;
    if (!parsed->events.empty()) {
      auto stored = p.store->Append(std::move(parsed->events));
      if (!stored.ok()) return SendError(res, stored.status());
      r = *stored;
    }
    counters.accepted += r.accepted;
    counters.duplicates += r.duplicates;
    json out{{"accepted", r.accepted}, {"duplicates", r.duplicates}, {"errors", errors}};
    int status = 200;
    if (r.accepted == 0 && r.duplicates == 0 && !parsed->errors.empty()) status = too_large ? 413 : 400;
    if (status != 200) {
      out["error"] = {{"code", too_large ? "resource_exhausted" : "invalid_argument"},
                      {"message", parsed->errors.size() == 1 ? parsed->errors[0].message
                                                              : "all " + std::to_string(parsed->errors.size()) +
                                                                    " events were rejected; see errors"}};
    }
    SendJson(res, status, out);
  }

  void HandleQuery(const httplib::Request& req, httplib::Response& res) {
    auto project = Authenticate(req, true);
    if (!project.ok()) return SendError(res, project.status());
    auto q = ParseJsonBody(req);
    if (!q.ok()) return SendError(res, q.status());
    counters.queries++;
    auto out = RunQuery(*q, *(*project)->store, (*project)->tz);
    if (!out.ok()) {
      counters.query_errors++;
      return SendError(res, out.status());
    }
    SendJson(res, 200, *out);
  }

  // Funnel drop-off persons of one step as CSV: {"query": {...funnel...}, "step": k}.
  void HandleDropoffs(const httplib::Request& req, httplib::Response& res) {
    auto project = Authenticate(req, true);
    if (!project.ok()) return SendError(res, project.status());
    auto parsed = ParseJsonBody(req);
    if (!parsed.ok()) return SendError(res, parsed.status());
    json& body = *parsed;
    if (!body.is_object() || !body.contains("query") || !body["query"].is_object())
      return SendError(res, InvalidArgument("query: required funnel query object is missing", "query"));
    json q = body["query"];
    q["kind"] = "funnel";
    q["dropoff_limit"] = 0;
    if (!body.contains("step") || !body["step"].is_number_integer())
      return SendError(res, InvalidArgument("step: expected the index of a funnel step (1 or more)", "step"));
    int step = body["step"].get<int>();
    auto out = RunQuery(q, *(*project)->store, (*project)->tz);
    if (!out.ok()) return SendError(res, out.status());
    auto& steps = (*out)["steps"];
    if (step < 1 || step >= static_cast<int>(steps.size()))
      return SendError(res, InvalidArgument("step: must be between 1 and " + std::to_string(steps.size() - 1), "step"));
    std::string csv = "distinct_id\n";
    for (const auto& id : steps[static_cast<size_t>(step)]["dropoff"]["persons"]) {
      std::string s = id.get<std::string>();
      bool quote = s.find_first_of(",\"\n\r") != std::string::npos;
      if (quote) {
        std::string q2 = "\"";
        for (char c : s) q2 += c == '"' ? std::string("\"\"") : std::string(1, c);
        s = q2 + "\"";
      }
      csv += s + "\n";
    }
    res.set_header("Content-Disposition", "attachment; filename=\"dropoffs-step" + std::to_string(step) + ".csv\"");
    res.set_content(csv, "text/csv; charset=utf-8");
  }

  void HandleProject(const httplib::Request& req, httplib::Response& res) {
    auto project = Authenticate(req, true);
    if (!project.ok()) return SendError(res, project.status());
    Project& p = **project;
    StoreStats s = p.store->Stats();
    json out{{"name", p.info.name}, {"timezone", p.info.timezone}, {"write_key", p.info.write_key},
             {"stats", {{"segments", s.segments}, {"segment_rows", s.segment_rows}, {"segment_bytes", s.segment_bytes},
                        {"memtable_rows", s.memtable_rows}, {"persons", s.persons}, {"distinct_ids", s.distinct_ids},
                        {"events", s.segment_rows + s.memtable_rows}}}};
    json names = json::array();
    for (const auto& n : p.store->events().Names()) names.push_back(n);
    out["event_names"] = names;
    SendJson(res, 200, out);
  }

  void Routes() {
    svr.set_payload_max_length(opt.limits.max_body_bytes + 1024);
    // Without TCP_NODELAY every response waits ~40 ms for delayed ACKs (Nagle); SDKs keep
    // connections alive, so let them reuse one for many requests.
    svr.set_tcp_nodelay(true);
    // cpp-httplib's default also sets SO_REUSEPORT, which lets a second server silently share
    // a port that is in use; keep SO_REUSEADDR only, so binding a busy port fails loudly.
    svr.set_socket_options([](socket_t sock) {
      int yes = 1;
      setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, reinterpret_cast<const void*>(&yes), sizeof yes);
    });
    svr.set_keep_alive_max_count(10000);
    svr.set_keep_alive_timeout(30);
    svr.new_task_queue = [n = opt.threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
    svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unexpected error";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      spdlog::error("request failed: {}", what);
      SendError(res, Internal(what));
    });
    svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
      if (!res.body.empty()) return;
      if (res.status == 413)
        SendError(res, ResourceExhausted("request body is over the limit"));
      else if (res.status == 404)
        SendError(res, NotFound("no route " + req.method + " " + req.path));
      else
        SendJson(res, res.status, json{{"error", {{"code", "http_" + std::to_string(res.status)}, {"message", "request failed"}}}});
    });
    svr.Get("/healthz", [](const httplib::Request&, httplib::Response& res) { SendJson(res, 200, json{{"status", "ok"}}); });
    svr.Post("/api/v1/events", [this](const httplib::Request& rq, httplib::Response& rs) { HandleEvents(rq, rs); });
    svr.Post("/api/v1/query", [this](const httplib::Request& rq, httplib::Response& rs) { HandleQuery(rq, rs); });
    svr.Post("/api/v1/query/dropoffs.csv", [this](const httplib::Request& rq, httplib::Response& rs) { HandleDropoffs(rq, rs); });
    svr.Get("/api/v1/project", [this](const httplib::Request& rq, httplib::Response& rs) { HandleProject(rq, rs); });
    svr.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      std::string m;
      m += "# TYPE northstar_events_accepted_total counter\nnorthstar_events_accepted_total{protocol=\"native\"} " +
           std::to_string(counters.accepted.load()) + "\n";
      m += "# TYPE northstar_events_duplicate_total counter\nnorthstar_events_duplicate_total{protocol=\"native\"} " +
           std::to_string(counters.duplicates.load()) + "\n";
      m += "# TYPE northstar_events_rejected_total counter\nnorthstar_events_rejected_total{protocol=\"native\"} " +
           std::to_string(counters.rejected.load()) + "\n";
      m += "# TYPE northstar_queries_total counter\nnorthstar_queries_total " + std::to_string(counters.queries.load()) + "\n";
      m += "# TYPE northstar_query_errors_total counter\nnorthstar_query_errors_total " +
           std::to_string(counters.query_errors.load()) + "\n";
      res.set_content(m, "text/plain; version=0.0.4");
    });
  }
};

HttpServer::HttpServer(ProjectRegistry& registry, ServerOptions options)
    : impl_(std::make_unique<Impl>(registry, std::move(options))) {
  impl_->Routes();
}

HttpServer::~HttpServer() { Stop(); }

StatusOr<int> HttpServer::Bind() {
  int port = impl_->opt.port;
  if (port == 0) {
    port = impl_->svr.bind_to_any_port(impl_->opt.host);
    if (port < 0) return Unavailable("cannot bind " + impl_->opt.host + " to a free port");
  } else if (!impl_->svr.bind_to_port(impl_->opt.host, port)) {
    return Unavailable("cannot listen on " + impl_->opt.host + ":" + std::to_string(port) +
                       " (in use? try --port 0 for a free port)");
  }
  return port;
}

void HttpServer::Serve() { impl_->svr.listen_after_bind(); }
void HttpServer::Stop() {
  if (impl_) impl_->svr.stop();
}

}  // namespace ns
