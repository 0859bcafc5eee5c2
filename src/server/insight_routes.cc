// Saved insights and dashboards over HTTP. The service (insights/insights_service.h) validates,
// stores and audits; here: the roles of each route, the query string of GET runs and exports,
// and the export's headers.
#include "server/insight_routes.h"

#include "server/route_util.h"

namespace ns {

using nlohmann::json;

namespace {

// A run's date override from the query string (GET) or the body (POST).
json OverrideParams(const HttpRequest& req) {
  json o = json::object();
  for (const char* k : {"date_from", "date_to", "date_range"})
    if (req.HasParam(k)) o[k] = req.Param(k);
  return o;
}

void Export(InsightsService& s, ServerContext& ctx, const HttpRequest& req, HttpResponse& res, const Principal& who,
            const char* format) {
  const std::string lang = req.HasParam("lang") ? req.Param("lang") : "zh";
  Deadline deadline = ctx.QueryDeadline(req);
  auto f = s.ExportInsight(who.project, Id(req), OverrideParams(req), format, lang, &deadline);
  if (!f.ok()) return res.Error(f.status());
  res.SetHeader("Content-Disposition", "attachment; filename=\"" + f->filename + "\"");
  res.Text(200, std::move(f->bytes), f->content_type);
}

}  // namespace

std::vector<Route> InsightRoutes(ServerContext& ctx, InsightsService& insights) {
  InsightsService* s = &insights;
  ServerContext* cx = &ctx;
  const Access V = Access::kViewer, O = Access::kOperator;
  auto run_insight = [s, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    auto go = [&](const json& o) {
      Deadline deadline = cx->QueryDeadline(req);
      Reply(res, s->RunInsight(who.project, Id(req), o, &deadline));
    };
    if (req.method == "GET") return go(OverrideParams(req));
    WithBody(req, res, go);
  };
  auto run_dashboard = [s, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
    auto go = [&](const json& o) {
      Deadline deadline = cx->QueryDeadline(req);
      Reply(res, s->RunDashboard(who.project, Id(req), o, &deadline));
    };
    if (req.method == "GET") return go(OverrideParams(req));
    WithBody(req, res, go);
  };
  return {
      // ---- insights
      R("GET", R"(/api/v1/insights)", V,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Reply(res,
                s->ListInsights(who.project, InsightListFilter{req.Param("tag"), req.Param("kind"), req.Param("q")}));
        }),
      R("POST", R"(/api/v1/insights)", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->CreateInsight(who, b), 201); });
        }),
      R("GET", R"(/api/v1/insights/(\d+))", V,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Reply(res, s->GetInsight(who.project, Id(req)));
        }),
      R("PATCH", R"(/api/v1/insights/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->UpdateInsight(who, Id(req), b)); });
        }),
      R("DELETE", R"(/api/v1/insights/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          ReplyOk(res, s->DeleteInsight(who, Id(req)));
        }),
      R("POST", R"(/api/v1/insights/(\d+)/run)", V, run_insight),
      R("GET", R"(/api/v1/insights/(\d+)/run)", V, run_insight),
      R("GET", R"(/api/v1/insights/(\d+)/export\.csv)", V,
        [s, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Export(*s, *cx, req, res, who, "csv");
        }),
      R("GET", R"(/api/v1/insights/(\d+)/export\.xlsx)", V,
        [s, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Export(*s, *cx, req, res, who, "xlsx");
        }),
      // An unsaved query's answer as XLSX (reading: any role).
      R("POST", R"(/api/v1/query/export\.xlsx)", V,
        [s, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) {
            Deadline deadline = cx->QueryDeadline(req);
            auto f = s->ExportQuery(who.project, b, &deadline);
            if (!f.ok()) return res.Error(f.status());
            res.SetHeader("Content-Disposition", "attachment; filename=\"" + f->filename + "\"");
            res.Text(200, std::move(f->bytes), f->content_type);
          });
        }),
      R("POST", R"(/api/v1/insights/(\d+)/kpi)", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) {
            auto id = s->CreateKpi(who, Id(req), b);
            if (!id.ok()) return res.Error(id.status());
            res.Json(201, json{{"id", *id}, {"insight_id", Id(req)}});
          });
        }),
      // ---- dashboards
      R("GET", R"(/api/v1/dashboards)", V,
        [s](const HttpRequest&, HttpResponse& res, const Principal& who) {
          Reply(res, s->ListDashboards(who.project));
        }),
      R("POST", R"(/api/v1/dashboards)", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->CreateDashboard(who, b), 201); });
        }),
      R("GET", R"(/api/v1/dashboards/(\d+))", V,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Reply(res, s->GetDashboard(who.project, Id(req)));
        }),
      R("PATCH", R"(/api/v1/dashboards/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->UpdateDashboard(who, Id(req), b)); });
        }),
      R("DELETE", R"(/api/v1/dashboards/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          ReplyOk(res, s->DeleteDashboard(who, Id(req)));
        }),
      R("GET", R"(/api/v1/dashboards/(\d+)/run)", V, run_dashboard),
      R("POST", R"(/api/v1/dashboards/(\d+)/run)", V, run_dashboard),
  };
}

}  // namespace ns
