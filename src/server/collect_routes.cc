// Wire-compatible collection endpoints. Each request goes through one path: build a
// CollectRequest, let the protocol's parser (src/ingest/*_protocol.h) find the key and map
// the events (the key is resolved to a project in the middle of the parse, so keys inside
// the body need one parse only), rate-limit, store durably, and answer in the protocol's own
// format. Status codes are the same for all protocols and tell SDKs what to retry:
// 2xx stored (or duplicate), 400/401/413/415 never retry, 429/503 retry (Retry-After).
#include "server/collect_routes.h"

#include <spdlog/spdlog.h>

#include "core/time_zone.h"
#include "ingest/native_protocol.h"
#include "ingest/posthog_protocol.h"
#include "ingest/segmentio_protocol.h"
#include "ingest/sensors_protocol.h"

namespace ns {

using nlohmann::json;

namespace {

enum class Protocol { kNative, kSegmentIo, kPostHog, kSensors };

const char* ProtocolName(Protocol p) {
  switch (p) {
    case Protocol::kNative: return "native";
    case Protocol::kSegmentIo: return "segment";
    case Protocol::kPostHog: return "posthog";
    case Protocol::kSensors: return "sensors";
  }
  return "";
}

using Parser = StatusOr<CollectResult> (*)(const CollectRequest&, const TimeZone&, int64_t, const IngestLimits&,
                                           const KeyResolver&);

// The metrics reason of a whole-request rejection.
const char* Reason(const Status& st) {
  switch (st.reason()) {
    case ErrorReason::kNone: break;
    case ErrorReason::kUnsupportedMediaType: return "media_type";
    case ErrorReason::kRateLimited: return "rate_limited";
  }
  switch (st.code()) {
    case StatusCode::kUnauthenticated:
    case StatusCode::kPermissionDenied: return "auth";
    case StatusCode::kResourceExhausted: return "too_large";
    case StatusCode::kUnavailable: return "unavailable";
    case StatusCode::kNotFound: return "not_found";
    case StatusCode::kInvalidArgument: return "bad_request";
    default: return "internal";
  }
}

// The request as the parsers see it: query parameters plus the fields of a form body, and
// the credentials of the Authorization header.
CollectRequest MakeCollectRequest(const HttpRequest& req, const std::string& mime) {
  CollectRequest c;
  c.path = req.path;
  c.method = req.method;
  c.body = req.body;
  c.content_type = mime;
  c.content_encoding = req.Header("content-encoding");
  c.query = req.params;
  if (mime == "application/x-www-form-urlencoded") {
    // cpp-httplib may already have merged the form fields into the parameters.
    for (auto& [k, v] : ParseUrlEncoded(req.body))
      if (!req.HasParam(k)) c.query.emplace_back(std::move(k), std::move(v));
  }
  const std::string auth = req.Header("authorization");
  if (auth.size() > 6 && (auth.compare(0, 6, "Basic ") == 0 || auth.compare(0, 6, "basic ") == 0)) {
    auto decoded = Base64Decode(std::string_view(auth).substr(6));
    if (decoded.ok()) c.basic_user = decoded->substr(0, decoded->find(':'));
  } else {
    c.bearer = BearerKey(req);
  }
  c.remote_ip = req.remote_addr;
  return c;
}

std::string MissingKeyMessage(Protocol p) {
  switch (p) {
    case Protocol::kNative: return "missing key: send the project's write key as \"Authorization: Bearer nsw_...\"";
    case Protocol::kSegmentIo:
      return "missing write key: send it as the HTTP Basic user name with an empty password, or as \"writeKey\" "
             "in the body";
    case Protocol::kPostHog:
      return "missing project API key: send the project's write key as \"api_key\" (or \"token\", \"$token\") in "
             "the body";
    case Protocol::kSensors:
      return "missing project: send the project's write key as ?token=nsw_..., or map the Sensors project name "
             "with --sensors-project NAME=PROJECT";
  }
  return {};
}

// The project of the key (or, for Sensors Data, of the mapped project name); `trust` is the
// identity trust of the key (a mapped Sensors project name is as public as a write key).
StatusOr<Project*> ResolveProject(ServerContext& ctx, Protocol p, const HttpRequest& req, const CollectResult& found,
                                  IdentityTrust* trust) {
  *trust = IdentityTrust::kWriteKey;
  if (p == Protocol::kNative) {  // authenticated by the route's middleware (Access::kIngest)
    if (req.principal == nullptr) return Internal("the native ingest route has no principal");
    *trust = TrustOf(*req.principal);
    return ctx.ProjectOf(req);
  }
  if (!found.key.empty()) {
    NS_ASSIGN_OR_RETURN(Principal who, ctx.IngestKey(found.key));
    *trust = TrustOf(who);
    return ctx.registry.OpenProject(who.project);
  }
  if (p == Protocol::kSensors && !found.project_name.empty()) {
    auto it = ctx.opt.sensors_projects.find(found.project_name);
    if (it == ctx.opt.sensors_projects.end())
      return Unauthenticated("Sensors project '" + EscapeInvalidUtf8(found.project_name) +
                             "' is not mapped to a Northstar project and there is no ?token=: start the server with "
                             "--sensors-project " +
                             EscapeInvalidUtf8(found.project_name) + "=PROJECT, or send ?token=<write key>");
    return ctx.registry.OpenProject(it->second);
  }
  return Unauthenticated(MissingKeyMessage(p));
}

json ErrorsJson(const std::vector<EventError>& errors) {
  json out = json::array();
  for (const auto& e : errors)
    out.push_back({{"index", e.index}, {"code", e.code}, {"field", e.field}, {"message", e.message}});
  return out;
}

// A whole-request error in the protocol's format (status and Retry-After as HttpResponse::Error).
void SendError(Protocol p, const Status& st, HttpResponse& res) {
  res.Error(st);  // status, Retry-After and the native body
  if (p == Protocol::kSegmentIo) {
    res.body = json{{"success", false}, {"code", std::string(st.ErrorName())}, {"message", st.message()}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
  } else if (p == Protocol::kPostHog) {
    // PostHog's API error shape: {"type","code","detail","attr"}.
    const int status = res.status;
    std::string type = status == 401                    ? "authentication_error"
                       : status >= 500 || status == 429 ? "server_error"
                                                        : "validation_error";
    std::string code = status == 401   ? "invalid_api_key"
                       : status == 413 ? "payload_too_large"
                       : status == 415 ? "unsupported_media_type"
                       : status == 429 ? "rate_limited"
                       : status == 503 ? "unavailable"
                       : status == 404 ? "not_found"
                       : status >= 500 ? "internal"
                                       : "invalid_payload";
    json attr = st.field().empty() ? json(nullptr) : json(st.field());
    res.body = json{{"type", type}, {"code", code}, {"detail", st.message()}, {"attr", attr}}.dump(
        -1, ' ', false, json::error_handler_t::replace);
  }
}

void AllowCors(const HttpRequest& req, HttpResponse& res) {
  std::string origin = req.Header("origin");
  if (origin.empty()) return;
  res.SetHeader("Access-Control-Allow-Origin", origin);
  res.SetHeader("Access-Control-Allow-Credentials", "true");
  res.SetHeader("Vary", "Origin");
}

void HandleCollect(ServerContext& ctx, Protocol p, Parser parse, const HttpRequest& req, HttpResponse& res) {
  static const TimeZone kUtc = *TimeZone::Load("UTC");
  const std::string proto = ProtocolName(p);
  ctx.metrics.Add("northstar_http_requests_total", {{"protocol", proto}});
  // Browser SDKs of the wire-compatible protocols need CORS; the native API is for servers.
  if (p != Protocol::kNative) AllowCors(req, res);
  const std::string mime = req.MimeType();
  const CollectRequest creq = MakeCollectRequest(req, mime);
  Project* project = nullptr;
  IdentityTrust trust = IdentityTrust::kWriteKey;
  // Every parser resolves the key before it reads an event, so the project's earliest
  // accepted event time is in `limits` by then.
  IngestLimits limits = ctx.opt.limits;
  KeyResolver resolve = [&](const CollectResult& found) -> StatusOr<const TimeZone*> {
    NS_ASSIGN_OR_RETURN(project, ResolveProject(ctx, p, req, found, &trust));
    limits.min_ts_ms = project->earliest_event_ms.load();
    return &project->tz;
  };
  auto parsed = parse(creq, kUtc, NowMs(), limits, resolve);
  auto reject = [&](const Status& st) {
    ctx.metrics.Add("northstar_requests_rejected_total", {{"protocol", proto}, {"reason", Reason(st)}});
    SendError(p, st, res);
  };
  if (!parsed.ok()) return reject(parsed.status());
  CollectResult& r = *parsed;
  if (project == nullptr) return reject(Internal("the " + proto + " parser returned without resolving the key"));
  if (ctx.rate_limiter.enabled() && !r.batch.events.empty()) {
    const std::string& bucket = r.key.empty() ? project->info.write_key : r.key;
    Status rl = ctx.rate_limiter.Take(bucket, static_cast<double>(r.batch.events.size()));
    if (!rl.ok()) return reject(rl);
  }
  bool too_large = false;
  for (const auto& e : r.batch.errors) {
    too_large |= e.code == "event_too_large";
    ctx.metrics.Add("northstar_events_rejected_total", {{"protocol", proto}, {"reason", e.code}});
  }
  AppendResult stored;
  if (!r.batch.events.empty()) {
    auto a = project->store->Append(std::move(r.batch.events), Durability::kWal, trust);
    if (!a.ok()) {
      spdlog::warn("{} ingest for project {} failed: {}", proto, project->info.name, a.status().ToString());
      return reject(a.status());
    }
    stored = *a;
  }
  ctx.metrics.Add("northstar_events_accepted_total", {{"protocol", proto}}, stored.accepted);
  ctx.metrics.Add("northstar_events_duplicate_total", {{"protocol", proto}}, stored.duplicates);
  ctx.metrics.Add("northstar_identity_merges_refused_total", {{"protocol", proto}}, stored.merges_refused);

  const bool all_rejected = stored.accepted == 0 && stored.duplicates == 0 && !r.batch.errors.empty();
  if (all_rejected) {
    const std::string msg = r.batch.errors.size() == 1
                                ? r.batch.errors[0].message
                                : "all " + std::to_string(r.batch.errors.size()) + " events were rejected; see errors";
    ctx.metrics.Add("northstar_requests_rejected_total",
                    {{"protocol", proto}, {"reason", too_large ? "too_large" : "all_events_invalid"}});
    SendError(p, too_large ? ResourceExhausted(msg) : InvalidArgument(msg), res);
    json body = json::parse(res.body);
    body["errors"] = ErrorsJson(r.batch.errors);
    if (p == Protocol::kNative) body["accepted"] = 0, body["duplicates"] = 0;
    res.body = body.dump(-1, ' ', false, json::error_handler_t::replace);
    return;
  }
  json body;
  switch (p) {
    case Protocol::kNative:
      body = {{"accepted", stored.accepted}, {"duplicates", stored.duplicates}, {"errors", ErrorsJson(r.batch.errors)}};
      if (stored.merges_refused > 0) {
        body["merges_refused"] = stored.merges_refused;
        body["warnings"] = json::array(
            {{{"code", "merge_refused"},
              {"message", std::to_string(stored.merges_refused) +
                              " merge(s) of two already identified persons were not applied (a write key cannot join "
                              "identified persons; send with the secret key)"}}});
      }
      return res.Json(200, body);
    case Protocol::kSegmentIo: body = {{"success", true}}; break;
    case Protocol::kPostHog: body = {{"status", 1}}; break;
    case Protocol::kSensors:
      if (r.batch.errors.empty()) return res.Text(200, "", "text/plain; charset=utf-8");
      body = {{"code", 0}};
      break;
  }
  if (!r.batch.errors.empty()) body["errors"] = ErrorsJson(r.batch.errors);
  res.Json(200, body);
}

// CORS preflight of browser SDKs.
void HandlePreflight(const HttpRequest& req, HttpResponse& res) {
  AllowCors(req, res);
  res.SetHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
  std::string headers = req.Header("access-control-request-headers");
  res.SetHeader("Access-Control-Allow-Headers", headers.empty() ? "Content-Type, Authorization" : headers);
  res.SetHeader("Access-Control-Max-Age", "86400");
  res.status = 204;
  res.body.clear();
}

}  // namespace

std::vector<Route> CollectRoutes(ServerContext& ctx) {
  auto& m = ctx.metrics;
  for (Protocol p : {Protocol::kNative, Protocol::kSegmentIo, Protocol::kPostHog, Protocol::kSensors}) {
    const std::string proto = ProtocolName(p);
    m.Add("northstar_http_requests_total", {{"protocol", proto}}, 0);
    m.Add("northstar_events_accepted_total", {{"protocol", proto}}, 0);
    m.Add("northstar_events_duplicate_total", {{"protocol", proto}}, 0);
    m.Add("northstar_events_rejected_total", {{"protocol", proto}, {"reason", "invalid_event"}}, 0);
    m.Add("northstar_requests_rejected_total", {{"protocol", proto}, {"reason", "auth"}}, 0);
  }
  ServerContext* c = &ctx;
  auto handler = [c](Protocol p, Parser parse) {
    return [c, p, parse](const HttpRequest& q, HttpResponse& r) { HandleCollect(*c, p, parse, q, r); };
  };
  const std::string segment = R"(/v1/(track|identify|page|screen|group|alias|batch|import)/?)";
  const std::string posthog = R"(/(batch|capture|e|i/v0/e|track|engage)/?)";
  const std::string sensors = R"(/sa(\.gif)?/?)";
  std::vector<Route> routes;
  // The protocols, one row each. The native API authenticates on the head (Access::kIngest);
  // the others may carry their key in the body, so their parsers resolve it.
  // Collection runs as bulk work (core/cpu_class.h): with --bulk-nice it yields the CPU to queries.
  const CpuClass bulk = CpuClass::kBulk;
  routes.push_back({"POST", "/api/v1/events", handler(Protocol::kNative, &ParseNative), Access::kIngest, bulk});
  routes.push_back({"POST", segment, handler(Protocol::kSegmentIo, &ParseSegmentIo), Access::kPublic, bulk});
  for (const char* method : {"GET", "POST"}) {
    routes.push_back({method, posthog, handler(Protocol::kPostHog, &ParsePostHog), Access::kPublic, bulk});
    routes.push_back({method, sensors, handler(Protocol::kSensors, &ParseSensors), Access::kPublic, bulk});
  }
  for (const std::string& pattern : {segment, posthog, sensors})
    routes.push_back({"OPTIONS", pattern, HandlePreflight});
  return routes;
}

}  // namespace ns
