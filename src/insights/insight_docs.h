// Saved insights and dashboards as clients send them and as they are stored (docs/api.md,
// "Insights and dashboards"): validation once, at the edge, with errors naming the field, and
// the date-range override a run may carry.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace ns {

// A saved query with a name.
struct InsightDoc {
  std::string name;  // 1 to 200 bytes
  std::string description;
  nlohmann::json query;  // a query of any kind; its dates may be relative ("-30d")
  std::vector<std::string> tags;
  std::string kind;  // the query's kind, canonical ("funnels" is stored as "funnel")
};

// Validates a create (base null) or a PATCH (base: the stored insight, fields left out keep
// its values). The query must pass its kind's check with relative dates resolved against
// `today`; its errors are prefixed "query." ("query.series[0].event").
StatusOr<InsightDoc> ValidateInsight(const nlohmann::json& body, const InsightDoc* base, int32_t today);

// One insight on a dashboard, on a grid of 12 columns: x + w <= 12.
struct DashboardTile {
  int64_t insight_id = 0;
  int x = 0, y = 0, w = 6, h = 4;
  std::string title;  // "" : the insight's name
};

struct DashboardDoc {
  std::string name;
  std::string description;
  // Dates every tile runs with unless a run overrides them; unset: each insight's own.
  std::optional<std::string> date_from, date_to;
  std::vector<DashboardTile> tiles;  // at most 50; no two overlap
};

// Validates a dashboard (base as for insights). Whether each insight exists is the
// service's check.
StatusOr<DashboardDoc> ValidateDashboard(const nlohmann::json& body, const DashboardDoc* base, int32_t today);

// A run's dates: {"date_from": X, "date_to": Y} or {"date_range": Z} (both ends from one
// expression); each an absolute YYYY-MM-DD or a relative date (query/relative_dates.h).
struct DateOverride {
  std::optional<std::string> from, to;
  bool empty() const { return !from && !to; }
};
// Reads the override fields of `j` (other fields are the caller's; errors name
// prefix + field). A null or absent field is no override.
StatusOr<DateOverride> ParseDateOverride(const nlohmann::json& j, int32_t today, const std::string& prefix = "");
// The query with the override's ends in place of its own; only the ends a query has are
// replaced (a kind without dates runs as saved).
nlohmann::json ApplyDateOverride(nlohmann::json query, const DateOverride& o);

}  // namespace ns
