#include <chrono>

#include "query/operators.h"

namespace ns {

using nlohmann::json;

StatusOr<json> RunQuery(const json& request, EventStore& store, const TimeZone& tz) {
  NS_ASSIGN_OR_RETURN(Query q, ParseQuery(request));
  auto t0 = std::chrono::steady_clock::now();
  auto snap = store.Snapshot();
  StatusOr<json> out = Status::OK();
  try {
    if (auto* t = std::get_if<TrendsQuery>(&q)) {
      out = RunTrends(*t, *snap, tz);
    } else if (auto* f = std::get_if<FunnelQuery>(&q)) {
      IdentityMap& ids = store.identity();
      out = RunFunnel(*f, *snap, tz, [&ids](uint32_t person) { return ids.DisplayId(person); });
    } else {
      out = RunRetention(std::get<RetentionQuery>(q), *snap, tz);
    }
  } catch (const std::exception& e) {
    return Internal(std::string("query failed: ") + e.what());
  }
  if (out.ok()) {
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    (*out)["took_ms"] = ms;
  }
  return out;
}

}  // namespace ns
