// Experiments over HTTP. The service (experiments/experiments_service.h) validates, stores,
// audits and computes results; here: the roles of each route and the list's query string.
#include "server/experiment_routes.h"

#include "server/route_util.h"

namespace ns {

using nlohmann::json;

std::vector<Route> ExperimentRoutes(ServerContext& ctx, ExperimentsService& experiments) {
  ExperimentsService* s = &experiments;
  ServerContext* cx = &ctx;
  const Access V = Access::kViewer, O = Access::kOperator;
  return {
      R("GET", R"(/api/v1/experiments)", V,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          std::optional<int64_t> scenario;
          if (req.HasParam("scenario_id")) {
            const std::string v = req.Param("scenario_id");
            if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
              return res.Error(InvalidArgument("scenario_id: expected a scenario id, got '" + v + "'", "scenario_id"));
            scenario = std::stoll(v);
          }
          Reply(res, s->List(who.project, scenario));
        }),
      R("POST", R"(/api/v1/experiments)", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->Create(who, b), 201); });
        }),
      R("GET", R"(/api/v1/experiments/(\d+))", V,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Reply(res, s->Get(who.project, Id(req)));
        }),
      R("PATCH", R"(/api/v1/experiments/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          WithBody(req, res, [&](const json& b) { Reply(res, s->Update(who, Id(req), b)); });
        }),
      R("DELETE", R"(/api/v1/experiments/(\d+))", O,
        [s](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          ReplyOk(res, s->Delete(who, Id(req)));
        }),
      R("GET", R"(/api/v1/experiments/(\d+)/results)", V,
        [s, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          Deadline deadline = cx->QueryDeadline(req);
          Reply(res, s->Results(who.project, Id(req), &deadline));
        }),
  };
}

}  // namespace ns
