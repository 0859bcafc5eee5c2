// Feature flags over HTTP. The service (flags/flags_service.h) validates, stores, audits and
// evaluates; here: the roles of each route, the bodies of PostHog's /flags and /decide as its
// SDKs send them (JSON, gzip, or a form `data=` of base64 or JSON), and their answers in
// PostHog's formats (/flags?v=2 and /decide?v=4: "flags" with details; /decide?v=3:
// "featureFlags" and "featureFlagPayloads").
#include "server/flag_routes.h"

#include "core/uuid.h"
#include "ingest/collect_protocol.h"
#include "query/json_fields.h"
#include "server/auth.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

namespace {

// PostHog's error shape, which its SDKs log: {"type","code","detail","attr"}.
void PostHogError(HttpResponse& res, const Status& st) {
  res.Error(st);
  const int status = res.status;
  const std::string type = status == 401 ? "authentication_error" : status >= 500 ? "server_error" : "validation_error";
  const std::string code = status == 401 ? "invalid_api_key" : status >= 500 ? "internal" : "invalid_payload";
  res.body = json{{"type", type},
                  {"code", code},
                  {"detail", st.message()},
                  {"attr", st.field().empty() ? json(nullptr) : json(st.field())}}
                 .dump(-1, ' ', false, json::error_handler_t::replace);
}

void AllowCors(const HttpRequest& req, HttpResponse& res) {
  std::string origin = req.Header("origin");
  if (origin.empty()) return;
  res.SetHeader("Access-Control-Allow-Origin", origin);
  res.SetHeader("Access-Control-Allow-Credentials", "true");
  res.SetHeader("Vary", "Origin");
}

void Preflight(const HttpRequest& req, HttpResponse& res) {
  AllowCors(req, res);
  res.SetHeader("Access-Control-Allow-Methods", "POST, OPTIONS");
  std::string headers = req.Header("access-control-request-headers");
  res.SetHeader("Access-Control-Allow-Headers", headers.empty() ? "Content-Type" : headers);
  res.SetHeader("Access-Control-Max-Age", "86400");
  res.status = 204;
  res.body.clear();
}

// The JSON of a /flags or /decide body: plain, gzip, or a form whose `data` is base64 or JSON.
StatusOr<json> PostHogBody(const ServerContext& ctx, const HttpRequest& req) {
  std::string inflated;
  NS_ASSIGN_OR_RETURN(std::string_view body, MaybeGunzip(req.body, ctx.opt.limits.max_body_bytes, &inflated));
  std::string text(body);
  if (req.MimeType() == "application/x-www-form-urlencoded" || text.rfind("data=", 0) == 0) {
    std::string data;
    for (auto& [k, v] : ParseUrlEncoded(text))
      if (k == "data") data = v;
    if (data.empty() && req.HasParam("data")) data = req.Param("data");
    if (!data.empty() && data[0] != '{') {
      NS_ASSIGN_OR_RETURN(data, Base64Decode(data));
    }
    if (!data.empty()) text = data;
  }
  if (text.empty()) return InvalidArgument("empty body: send {\"api_key\": ..., \"distinct_id\": ...}");
  NS_ASSIGN_OR_RETURN(json j, ParseJsonPayload(text, "body"));
  if (!j.is_object()) return InvalidArgument("body: expected a JSON object");
  return j;
}

// The request PostHog's SDKs send: distinct_id, person_properties, flag_keys_to_evaluate.
StatusOr<FlagEvalRequest> EvalRequestOf(const json& b, const char* keys_field) {
  FlagEvalRequest r;
  NS_ASSIGN_OR_RETURN(r.distinct_id, IdFromJson(FindMember(b, "distinct_id"), "distinct_id"));
  if (r.distinct_id.empty()) return InvalidArgument("distinct_id: required field is missing", "distinct_id");
  if (const json* pp = FindMember(b, "person_properties"); pp != nullptr && !pp->is_null()) {
    if (!pp->is_object()) return InvalidArgument("person_properties: expected an object", "person_properties");
    r.person_properties = *pp;
  }
  if (const json* keys = FindMember(b, keys_field); keys != nullptr && !keys->is_null()) {
    if (!keys->is_array())
      return InvalidArgument(std::string(keys_field) + ": expected a list of flag keys", keys_field);
    for (const json& k : *keys) {
      if (!k.is_string())
        return InvalidArgument(std::string(keys_field) + ": expected flag keys (strings)", keys_field);
      r.keys.push_back(k.get<std::string>());
    }
  }
  return r;
}

// The project of the write key (or secret key) in a PostHog body or query string.
StatusOr<std::string> PostHogProject(ServerContext& ctx, const HttpRequest& req, const json& b) {
  std::string key;
  for (const char* k : {"api_key", "token", "$token"})
    if (const json* v = FindMember(b, k); v != nullptr && v->is_string() && key.empty()) key = v->get<std::string>();
  for (const char* k : {"api_key", "token"})
    if (key.empty() && req.HasParam(k)) key = req.Param(k);
  if (key.empty())
    return Unauthenticated(
        "missing project API key: send the project's write key as \"api_key\" (or \"token\") in the body");
  NS_ASSIGN_OR_RETURN(Principal who, ctx.IngestKey(key));
  return who.project;
}

json PayloadText(const json& payload) {
  // PostHog stores and serves payloads as JSON text; its SDKs parse them.
  return payload.is_null() ? json() : json(payload.dump());
}

json Response(const FlagOutcome& o) {
  return !o.enabled ? json(false) : o.variant.empty() ? json(true) : json(o.variant);
}

// /flags?v=2 and /decide?v=4: one detail object per flag.
json FlagDetails(const FlagEvaluation& ev) {
  json flags = json::object();
  for (const EvaluatedFlag& f : ev.flags) {
    json metadata{{"id", f.id}, {"version", f.version}, {"description", f.description}};
    if (!f.outcome.payload.is_null()) metadata["payload"] = PayloadText(f.outcome.payload);
    json reason{{"code", f.outcome.reason}, {"description", f.outcome.Description()}};
    if (f.outcome.condition_index >= 0) reason["condition_index"] = f.outcome.condition_index;
    flags[f.key] = {{"key", f.key},
                    {"enabled", f.outcome.enabled},
                    {"variant", f.outcome.variant.empty() ? json() : json(f.outcome.variant)},
                    {"reason", reason},
                    {"metadata", metadata}};
  }
  return flags;
}

// What posthog-js reads of a `config=true` answer besides the flags: every optional feature
// off (Northstar serves analytics events only).
void AddRemoteConfig(json& out) {
  out["config"] = {{"enable_collect_everything", false}};
  out["supportedCompression"] = {"gzip", "gzip-js"};
  out["sessionRecording"] = false;
  out["autocapture_opt_out"] = true;
  out["capturePerformance"] = false;
  out["heatmaps"] = false;
  out["surveys"] = false;
  out["siteApps"] = json::array();
  out["toolbarParams"] = json::object();
  out["isAuthenticated"] = false;
}

void HandlePostHog(ServerContext& ctx, FlagsService& flags, bool decide, const HttpRequest& req, HttpResponse& res) {
  AllowCors(req, res);
  auto body = PostHogBody(ctx, req);
  if (!body.ok()) return PostHogError(res, body.status());
  auto project = PostHogProject(ctx, req, *body);
  if (!project.ok()) return PostHogError(res, project.status());
  auto r = EvalRequestOf(*body, "flag_keys_to_evaluate");
  if (!r.ok()) return PostHogError(res, r.status());
  auto ev = flags.Evaluate(*project, *r);
  if (!ev.ok()) return PostHogError(res, ev.status());
  int version = decide ? 1 : 2;
  if (req.HasParam("v")) version = std::atoi(req.Param("v").c_str());
  json out{{"errorsWhileComputingFlags", ev->errors},
           {"requestId", Uuid::Random().ToString()},
           {"quotaLimited", json::array()}};
  if (!decide || version >= 4) {
    out["flags"] = FlagDetails(*ev);
  } else if (version >= 2) {
    json values = json::object(), payloads = json::object();
    for (const EvaluatedFlag& f : ev->flags) {
      values[f.key] = Response(f.outcome);
      if (f.outcome.enabled && !f.outcome.payload.is_null()) payloads[f.key] = PayloadText(f.outcome.payload);
    }
    out["featureFlags"] = values;
    out["featureFlagPayloads"] = payloads;
  } else {
    json enabled = json::array();
    for (const EvaluatedFlag& f : ev->flags)
      if (f.outcome.enabled) enabled.push_back(f.key);
    out["featureFlags"] = enabled;
  }
  if (decide || req.Param("config") == "true") AddRemoteConfig(out);
  res.Json(200, out);
}

// POST /api/v1/flags/evaluate: any credential of the project. A write key evaluates (and may
// record exposures); it never reads definitions.
void HandleEvaluate(ServerContext& ctx, FlagsService& flags, const HttpRequest& req, HttpResponse& res) {
  auto who = ctx.auth.Authenticate(CredentialsOf(req));
  if (!who.ok()) return res.Error(who.status());
  auto b = Body(req);
  if (!b.ok()) return res.Error(b.status());
  if (Status st =
          CheckFields(*b, "", {"distinct_id", "person_properties", "flags", "record_exposure", "include_inactive"});
      !st.ok())
    return res.Error(st);
  auto r = EvalRequestOf(*b, "flags");
  if (!r.ok()) return res.Error(r.status());
  auto inactive = GetBool(*b, "include_inactive", "", false);
  auto record = GetBool(*b, "record_exposure", "", false);
  if (!inactive.ok()) return res.Error(inactive.status());
  if (!record.ok()) return res.Error(record.status());
  r->include_inactive = *inactive;
  if (*record && who->credential != Credential::kWriteKey && who->credential != Credential::kSecretKey)
    return res.Error(PermissionDenied("record_exposure writes events: send the project's write key (nsw_...)"));
  auto ev = flags.Evaluate(who->project, *r);
  if (!ev.ok()) return res.Error(ev.status());
  json out_flags = json::object();
  for (const EvaluatedFlag& f : ev->flags)
    out_flags[f.key] = {{"enabled", f.outcome.enabled},
                        {"variant", f.outcome.variant.empty() ? json() : json(f.outcome.variant)},
                        {"payload", f.outcome.payload},
                        {"reason", f.outcome.reason}};
  json out{{"distinct_id", r->distinct_id}, {"flags", out_flags}, {"errors", ev->errors}};
  if (*record) {
    auto n = flags.RecordExposures(who->project, r->distinct_id, *ev);
    if (!n.ok()) return res.Error(n.status());
    out["exposures_recorded"] = *n;
  }
  res.Json(200, out);
}

// A public route's handler (it authenticates itself): an unexpected JSON error is our bug, a 500.
HttpHandler Guarded(std::function<void(const HttpRequest&, HttpResponse&)> h) {
  return [h = std::move(h)](const HttpRequest& req, HttpResponse& res) {
    try {
      h(req, res);
    } catch (const json::exception& e) {
      res.Error(Internal(std::string("unexpected error reading a value: ") + e.what()));
    }
  };
}

}  // namespace

std::vector<Route> FlagRoutes(ServerContext& ctx, FlagsService& flags) {
  FlagsService* s = &flags;
  ServerContext* cx = &ctx;
  const Access V = Access::kViewer, O = Access::kOperator;
  std::vector<Route> routes = {
      R("GET", R"(/api/v1/flags)", V,
        [s](const HttpRequest&, HttpResponse& res, const Principal& who) { Reply(res, s->List(who.project)); }),
      R("POST", R"(/api/v1/flags)", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->Create(who, b), 201); });
        }),
      R("GET", R"(/api/v1/flags/(\d+))", V,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Reply(res, s->Get(who.project, Id(req)));
        }),
      R("PATCH", R"(/api/v1/flags/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->Update(who, Id(req), b)); });
        }),
      R("DELETE", R"(/api/v1/flags/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          ReplyOk(res, s->Delete(who, Id(req)));
        }),
  };
  // Authenticated in the handler: every credential of the project may evaluate.
  routes.push_back({"POST", R"(/api/v1/flags/evaluate)", Guarded([s, cx](const HttpRequest& req, HttpResponse& res) {
                      HandleEvaluate(*cx, *s, req, res);
                    })});
  // PostHog's SDKs: the key is in the body.
  routes.push_back({"POST", R"(/flags/?)", Guarded([s, cx](const HttpRequest& req, HttpResponse& res) {
                      HandlePostHog(*cx, *s, false, req, res);
                    })});
  routes.push_back({"POST", R"(/decide/?)", Guarded([s, cx](const HttpRequest& req, HttpResponse& res) {
                      HandlePostHog(*cx, *s, true, req, res);
                    })});
  routes.push_back({"OPTIONS", R"(/(flags|decide)/?)", Preflight});
  return routes;
}

}  // namespace ns
