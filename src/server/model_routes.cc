// The models API (docs/api.md "Models"): the churn model's status and evaluation (every
// role), a training started by hand (operators and admins; audited; answered at once with a
// job id, the training runs in the background) and the riskiest persons.
#include "server/model_routes.h"

#include "auth/accounts.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

std::vector<Route> ModelRoutes(ServerContext& ctx, ModelsService& models) {
  ModelsService* ms = &models;
  ServerContext* cx = &ctx;
  return {
      R("GET", R"(/api/v1/models/churn)", Access::kViewer,
        [ms](const HttpRequest&, HttpResponse& res, const Principal& who) {
          Reply(res, ms->ChurnStatus(who.project));
        }),
      R("POST", R"(/api/v1/models/churn/train)", Access::kOperator,
        [ms, cx](const HttpRequest&, HttpResponse& res, const Principal& who) {
          auto job = ms->StartChurnTraining(who.project, who.actor);
          if (job.ok() && (*job)["started"].get<bool>())
            (void)Audit(cx->registry.meta_db(), who, "train", "churn_model", (*job)["job_id"].get<int64_t>(), nullptr,
                        *job);
          Reply(res, job, 202);
        }),
      R("GET", R"(/api/v1/models/churn/persons)", Access::kViewer,
        [ms](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          size_t limit = 20;
          if (req.HasParam("limit")) {
            const std::string v = req.Param("limit");
            char* end = nullptr;
            const long long n = std::strtoll(v.c_str(), &end, 10);
            if (v.empty() || *end != '\0' || n < 1 || n > 1000)
              return res.Error(InvalidArgument("limit: expected a number from 1 to 1000, got '" + v + "'", "limit"));
            limit = static_cast<size_t>(n);
          }
          Reply(res, ms->AtRiskPersons(who.project, limit));
        }),
  };
}

}  // namespace ns
