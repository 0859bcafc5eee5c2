// Scenarios and their actions, Gantt, exports, evaluations and SOPs.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/log_safe.h"
#include "ops/report_tables.h"
#include "server/ops_routes.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

namespace {

void Export(OpsService& ops, const HttpRequest& req, HttpResponse& res, const Principal& who, bool xlsx) {
  int64_t id = Id(req);
  std::string lang = req.HasParam("lang") ? req.Param("lang") : "zh";
  if (lang != "zh" && lang != "en") return res.Error(InvalidArgument("lang: expected zh or en", "lang"));
  auto sc = ops.scenarios.Get(who.project, id);
  if (!sc.ok()) return res.Error(sc.status());
  auto ks = ops.kpis.List(who.project, id);
  if (!ks.ok()) return res.Error(ks.status());
  auto ev = ops.evaluations.Get(who.project, id);
  if (!ev.ok()) return res.Error(ev.status());
  auto project = ops.registry().OpenProject(who.project);
  if (!project.ok()) return res.Error(project.status());
  auto tables = ScenarioTables(*sc, *ks, *ev, lang, (*project)->tz);
  std::string base = "scenario-" + std::to_string(id);
  if (xlsx) {
    auto bytes = TablesToXlsx(tables);
    if (!bytes.ok()) return res.Error(bytes.status());
    res.SetHeader("Content-Disposition", "attachment; filename=\"" + base + ".xlsx\"");
    return res.Text(200, std::move(bytes).value(), "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet");
  }
  std::string table = req.Param("table");
  for (auto& t : tables)
    if (t.key == table) {
      res.SetHeader("Content-Disposition", "attachment; filename=\"" + base + "-" + table + ".csv\"");
      return res.Text(200, TableToCsv(t), "text/csv; charset=utf-8");
    }
  res.Error(InvalidArgument("table: expected requirements, process, monitoring or evaluation", "table"));
}

}  // namespace

std::vector<Route> ScenarioRoutes(ServerContext&, OpsService& ops) {
  std::vector<Route> r;
  const Access V = Access::kViewer, O = Access::kOperator;
  // ---- scenarios and actions
  r.push_back(R("POST", "/api/v1/scenarios", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    WithBody(req, res, [&](const json& b) {
      if (b.is_object() && b.contains("from_sop")) {
        if (!b["from_sop"].is_number_integer())
          return res.Error(InvalidArgument("from_sop: expected an SOP id", "from_sop"));
        return ReplyId(res, ops.evaluations.StartFromSop(w, b["from_sop"].get<int64_t>(), b));
      }
      ReplyId(res, ops.scenarios.Create(w, b));
    });
  }));
  r.push_back(R("GET", "/api/v1/scenarios", V, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    Reply(res, ops.scenarios.List(w.project));
  }));
  r.push_back(
      R("GET", R"(/api/v1/scenarios/(\d+))", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, ops.scenarios.Get(w.project, Id(req)));
      }));
  r.push_back(R("PATCH", R"(/api/v1/scenarios/(\d+))", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  WithBody(req, res, [&](const json& b) {
                    Status st = ops.scenarios.Patch(w, Id(req), b);
                    if (!st.ok()) return res.Error(st);
                    Reply(res, ops.scenarios.Get(w.project, Id(req)));
                  });
                }));
  r.push_back(R("DELETE", R"(/api/v1/scenarios/(\d+))", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  ReplyOk(res, ops.scenarios.Delete(w, Id(req)));
                }));
  r.push_back(R("POST", R"(/api/v1/scenarios/(\d+)/actions)", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  WithBody(req, res, [&](const json& b) { ReplyId(res, ops.scenarios.AddAction(w, Id(req), b)); });
                }));
  r.push_back(R("POST", R"(/api/v1/scenarios/(\d+)/actions/import)", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  auto ids = ops.scenarios.ImportActionsCsv(w, Id(req), req.body);
                  if (!ids.ok()) return res.Error(ids.status());
                  res.Json(201, json{{"ids", *ids}, {"imported", ids->size()}});
                }));
  r.push_back(
      R("GET", R"(/api/v1/actions/(\d+))", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, ops.scenarios.GetAction(w.project, Id(req)));
      }));
  r.push_back(
      R("PATCH", R"(/api/v1/actions/(\d+))", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        WithBody(req, res, [&](const json& b) {
          Status st = ops.scenarios.PatchAction(w, Id(req), b);
          if (!st.ok()) return res.Error(st);
          Reply(res, ops.scenarios.GetAction(w.project, Id(req)));
        });
      }));
  r.push_back(
      R("DELETE", R"(/api/v1/actions/(\d+))", O, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        ReplyOk(res, ops.scenarios.DeleteAction(w, Id(req)));
      }));
  r.push_back(R("GET", R"(/api/v1/scenarios/(\d+)/gantt)", V,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  Reply(res, ops.scenarios.Gantt(w.project, Id(req)));
                }));
  r.push_back(
      R("GET", R"(/api/v1/scenarios/(\d+)/export\.xlsx)", V,
        [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) { Export(ops, req, res, w, true); }));
  r.push_back(
      R("GET", R"(/api/v1/scenarios/(\d+)/export\.csv)", V,
        [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) { Export(ops, req, res, w, false); }));
  // ---- evaluation and SOPs
  r.push_back(R("GET", R"(/api/v1/scenarios/(\d+)/evaluation)", V,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  Reply(res, ops.evaluations.Get(w.project, Id(req)));
                }));
  for (const char* m : {"PUT", "PATCH"})
    r.push_back(R(m, R"(/api/v1/scenarios/(\d+)/evaluation)", O,
                  [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                    WithBody(req, res, [&](const json& b) {
                      Status st = ops.evaluations.Save(w, Id(req), b);
                      if (!st.ok()) return res.Error(st);
                      Reply(res, ops.evaluations.Get(w.project, Id(req)));
                    });
                  }));
  r.push_back(R("POST", R"(/api/v1/scenarios/(\d+)/evaluation/sop)", O,
                [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  WithBody(req, res, [&](const json& b) { ReplyId(res, ops.evaluations.SaveAsSop(w, Id(req), b)); });
                }));
  r.push_back(R("GET", "/api/v1/sops", V, [&ops](const HttpRequest&, HttpResponse& res, const Principal& w) {
    Reply(res, ops.evaluations.ListSops(w.project));
  }));
  r.push_back(
      R("GET", R"(/api/v1/sops/(\d+))", V, [&ops](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, ops.evaluations.GetSop(w.project, Id(req)));
      }));
  return r;
}

}  // namespace ns
