// KPIs and monitoring, alert rules and alerts, notification channels and deliveries,
// reminders and the daily job.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log_safe.h"
#include "server/ops_routes.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

std::vector<Route> MonitoringRoutes(ServerContext&, OpsService& ops) {
  std::vector<Route> r;
  const Access V = Access::kViewer, O = Access::kOperator, A = Access::kAdmin;
  // ---- KPIs and monitoring
  r.push_back(R("POST", "/api/v1/kpis", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    WithBody(req, res, [&](const json& b) { ReplyId(res, ops.kpis.Create(w, b)); });
  }));
  r.push_back(R("GET", "/api/v1/kpis", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    std::optional<int64_t> sid;
    if (req.HasParam("scenario_id")) sid = std::atoll(req.Param("scenario_id").c_str());
    Reply(res, ops.kpis.List(w.project, sid));
  }));
  r.push_back(
      R("GET", R"(/api/v1/kpis/(\d+))", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, ops.kpis.Get(w.project, Id(req)));
      }));
  r.push_back(
      R("PATCH", R"(/api/v1/kpis/(\d+))", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        WithBody(req, res, [&](const json& b) {
          Status st = ops.kpis.Patch(w, Id(req), b);
          if (!st.ok()) return res.Error(st);
          // Recompute only when the definition changed (not for the owner's reason text).
          bool recompute = false;
          for (const char* f : {"query", "reduce", "period", "target", "direction", "thresholds"})
            recompute |= b.contains(f);
          Reply(res, recompute ? ops.kpis.Refresh(w.project, Id(req)) : ops.kpis.Get(w.project, Id(req)));
        });
      }));
  r.push_back(
      R("DELETE", R"(/api/v1/kpis/(\d+))", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        ReplyOk(res, ops.kpis.Delete(w, Id(req)));
      }));
  r.push_back(R("POST", R"(/api/v1/kpis/(\d+)/refresh)", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  auto k = ops.kpis.Refresh(w.project, Id(req));
                  if (!k.ok()) return res.Error(k.status());
                  auto fired = ops.alerts.EvaluateKpi(w.project, Id(req));
                  if (!fired.ok()) return res.Error(fired.status());
                  auto out = ops.kpis.Get(w.project, Id(req));
                  if (!out.ok()) return res.Error(out.status());
                  (*out)["alerts_fired"] = *fired;
                  res.Json(200, *out);
                }));
  r.push_back(R("GET", "/api/v1/monitoring", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    std::optional<int64_t> sid;
    if (req.HasParam("scenario_id")) sid = std::atoll(req.Param("scenario_id").c_str());
    auto ks = ops.kpis.List(w.project, sid);
    if (!ks.ok()) return res.Error(ks.status());
    json rows = json::array();
    for (auto& k : *ks) {
      std::string scenario;
      if (k["scenario_id"].is_number_integer())
        if (auto sc = ops.scenarios.Get(w.project, k["scenario_id"].get<int64_t>()); sc.ok()) scenario = (*sc)["name"];
      rows.push_back({{"kpi_id", k["id"]},
                      {"scenario", scenario},
                      {"kpi", k["name"]},
                      {"target", k["target"]},
                      {"actual", k.value("actual", json())},
                      {"achievement_rate", k.value("achievement_rate", json())},
                      {"light", k.value("light", json())},
                      {"reason", k["reason"]},
                      {"auto_reason", k.value("auto_reason", json(""))},
                      {"owner", k["owner"]},
                      {"updated_at", k.value("refreshed_at", json())},
                      {"forecast", k.value("forecast", json())}});
    }
    res.Json(200, rows);
  }));
  // ---- alerts
  r.push_back(
      R("POST", "/api/v1/alert-rules", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        WithBody(req, res, [&](const json& b) { ReplyId(res, ops.alerts.CreateRule(w, b)); });
      }));
  r.push_back(R("GET", "/api/v1/alert-rules", V, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    Reply(res, ops.alerts.ListRules(w.project));
  }));
  r.push_back(R("DELETE", R"(/api/v1/alert-rules/(\d+))", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  ReplyOk(res, ops.alerts.DeleteRule(w, Id(req)));
                }));
  r.push_back(R("GET", "/api/v1/alerts", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, ops.alerts.List(w.project, req.Param("state")));
  }));
  r.push_back(
      R("GET", R"(/api/v1/alerts/(\d+))", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, ops.alerts.Get(w.project, Id(req)));
      }));
  r.push_back(R("POST", R"(/api/v1/alerts/(\d+)/ack)", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  Status st = ops.alerts.Ack(w, Id(req));
                  if (!st.ok()) return res.Error(st);
                  Reply(res, ops.alerts.Get(w.project, Id(req)));
                }));
  // ---- notification channels, reminders, jobs
  r.push_back(R("POST", "/api/v1/notification-channels", A,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  WithBody(req, res, [&](const json& b) { ReplyId(res, ops.channels.Create(w, b)); });
                }));
  r.push_back(R(
      "GET", "/api/v1/notification-channels", V,
      [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) { Reply(res, ops.channels.List(w.project)); }));
  r.push_back(R("DELETE", R"(/api/v1/notification-channels/(\d+))", A,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  ReplyOk(res, ops.channels.Delete(w, Id(req)));
                }));
  r.push_back(R("POST", R"(/api/v1/notification-channels/(\d+)/test)", A,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  auto ch = ops.channels.Load(w.project, Id(req));
                  if (!ch.ok()) return res.Error(ch.status());
                  Notification n;
                  n.title = "[Northstar] test message / 测试消息";
                  n.text = "This channel works. 通知渠道配置成功。\nProject: " + w.project;
                  n.data = {{"test", true}, {"project", w.project}};
                  DeliveryResult d = ops.channels.Send(*ch, n);
                  res.Json(d.ok ? 200 : 502, json{{"ok", d.ok},
                                                  {"attempts", d.attempts},
                                                  {"http_status", d.http_status},
                                                  {"error", d.error},
                                                  // Only an excerpt: the full body would turn the test button into
                                                  // a reader of whatever the URL answers (finding 10).
                                                  {"response_body", TruncateUtf8Bytes(d.response_body, 200)},
                                                  {"duration_ms", d.duration_ms}});
                }));
  r.push_back(R("GET", "/api/v1/deliveries", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, ops.channels.Deliveries(w.project, 200));
  }));
  r.push_back(R("GET", "/api/v1/reminders", V, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    Reply(res, ops.Digest(w.project));
  }));
  r.push_back(
      R("POST", "/api/v1/reminders/send", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, ops.SendReminders(w.project, req.Param("force") == "1" || req.Param("force") == "true"));
      }));
  r.push_back(R("POST", "/api/v1/jobs/daily", O, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    Reply(res, ops.RunDaily(w.project));
  }));
  return r;
}

}  // namespace ns
