// Journeys: CRUD (operators edit, viewers read), activate/pause, results with the holdout
// comparison, dead letters and their retry, and an on-demand cohort/schedule evaluation.
#include "server/journey_routes.h"

#include "server/route_util.h"

namespace ns {

using nlohmann::json;

std::vector<Route> JourneyRoutes(ServerContext&, JourneyService& js) {
  std::vector<Route> r;
  const Access V = Access::kViewer, O = Access::kOperator;
  const std::string one = R"(/api/v1/journeys/(\d+))";
  r.push_back(R("POST", "/api/v1/journeys", O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    WithBody(req, res, [&](const json& b) { Reply(res, js.Create(w, b), 201); });
  }));
  r.push_back(R("GET", "/api/v1/journeys", V,
                [&js](const HttpRequest&, HttpResponse& res, const Principal& w) { Reply(res, js.List(w.project)); }));
  r.push_back(R("GET", one, V, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, js.Get(w.project, Id(req), w.role >= Role::kOperator));
  }));
  for (const char* method : {"PUT", "PATCH"})
    r.push_back(R(method, one, O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
      WithBody(req, res, [&](const json& b) { Reply(res, js.Update(w, Id(req), b)); });
    }));
  r.push_back(R("DELETE", one, O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    ReplyOk(res, js.Delete(w, Id(req)));
  }));
  r.push_back(R("POST", one + "/activate", O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, js.SetStatus(w, Id(req), "active"));
  }));
  r.push_back(R("POST", one + "/pause", O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, js.SetStatus(w, Id(req), "paused"));
  }));
  r.push_back(R("POST", one + "/evaluate", O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, js.EvaluateTrigger(w, Id(req)));
  }));
  r.push_back(R("GET", one + "/results", V, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    Reply(res, js.Results(w.project, Id(req)));
  }));
  r.push_back(R("GET", one + "/dead-letters", V, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
    int limit = 100;
    if (req.HasParam("limit")) {
      limit = std::atoi(req.Param("limit").c_str());
      if (limit < 1 || limit > 1000) return res.Error(InvalidArgument("limit: expected 1 to 1000", "limit"));
    }
    Reply(res, js.DeadLetters(w.project, Id(req), limit));
  }));
  r.push_back(
      R("POST", one + "/dead-letters/retry", O, [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
        Reply(res, js.RetryDead(w, Id(req), 0));
      }));
  r.push_back(R("POST", one + R"(/dead-letters/(\d+)/retry)", O,
                [&js](const HttpRequest& req, HttpResponse& res, const Principal& w) {
                  Reply(res, js.RetryDead(w, Id(req), Id(req, 2)));
                }));
  return r;
}

}  // namespace ns
