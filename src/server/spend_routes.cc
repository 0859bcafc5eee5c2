// The spend API (docs/api.md "Spend"): import advertising spend as JSON rows or a CSV upload
// (operators and admins; audited) and list it (every role). The channels query reads it.
#include "server/spend_routes.h"

#include <set>

#include "auth/accounts.h"
#include "core/time_zone.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

namespace {

StatusOr<SpendFilter> ListFilter(const HttpRequest& req) {
  SpendFilter f;
  for (const char* key : {"date_from", "date_to"}) {
    if (!req.HasParam(key)) continue;
    NS_ASSIGN_OR_RETURN(int32_t d, ParseDate(req.Param(key), key));
    (std::string_view(key) == "date_from" ? f.from_day : f.to_day) = d;
  }
  if (f.from_day && f.to_day && *f.to_day < *f.from_day)
    return InvalidArgument("date_to: must not be before date_from", "date_to");
  f.channel = req.Param("channel");
  if (req.HasParam("limit")) {
    const std::string v = req.Param("limit");
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || n < 1 || n > 100000)
      return InvalidArgument("limit: expected a number from 1 to 100000, got '" + v + "'", "limit");
    f.limit = static_cast<size_t>(n);
  }
  return f;
}

}  // namespace

std::vector<Route> SpendRoutes(ServerContext& ctx, SpendStore& spend) {
  SpendStore* sp = &spend;
  ServerContext* cx = &ctx;
  return {
      R("POST", R"(/api/v1/spend)", Access::kOperator,
        [sp, cx](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          const std::string mime = req.MimeType();
          const bool csv = mime == "text/csv" || mime == "application/csv";
          StatusOr<std::vector<SpendRow>> rows = Status::OK();
          if (csv) {
            rows = ParseSpendCsv(req.body);
          } else {
            auto b = Body(req);
            if (!b.ok()) return res.Error(b.status());
            rows = ParseSpendJson(*b);
          }
          if (!rows.ok()) return res.Error(rows.status());
          auto out = sp->Import(who.project, *rows);
          if (!out.ok()) return res.Error(out.status());
          // The audit entry says what changed, not every row: an import may hold thousands.
          std::set<std::string> channels;
          int32_t lo = INT32_MAX, hi = INT32_MIN;
          for (const SpendRow& r : *rows) {
            channels.insert(r.channel);
            lo = std::min(lo, r.day);
            hi = std::max(hi, r.day);
          }
          json after = *out;
          after["format"] = csv ? "csv" : "json";
          after["date_from"] = FormatDate(lo);
          after["date_to"] = FormatDate(hi);
          after["channels"] = channels;
          (void)Audit(cx->registry.meta_db(), who, "import", "spend", 0, nullptr, after);
          res.Json(200, *out);
        }),
      R("GET", R"(/api/v1/spend)", Access::kViewer,
        [sp](const HttpRequest& req, HttpResponse& res, const Principal& who) {
          auto f = ListFilter(req);
          if (!f.ok()) return res.Error(f.status());
          Reply(res, sp->List(who.project, *f));
        }),
  };
}

}  // namespace ns
