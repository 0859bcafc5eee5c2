// Saved insights and dashboards (docs/api.md, "Insights and dashboards"): named queries kept
// in meta.db (this subsystem's migrations, "insights"), run with an optional date override
// (relative dates resolved in the project's zone), answers cached per (query as run, store
// state) so a warm dashboard answers from memory, exports as CSV/XLSX through the operations
// layer's writers, and KPIs of the operations layer made from an insight. Every change is
// written to the audit log in its transaction. Answers are the JSON of the API.
// Threading: thread-safe (meta.db serialises; the cache has its own lock).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/principal.h"
#include "core/deadline.h"
#include "core/status.h"
#include "insights/insight_docs.h"
#include "insights/result_cache.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "ops/kpis.h"
#include "people/people_service.h"
#include "people/spend_store.h"

namespace ns {

// This subsystem's metadata migrations (subsystem "insights").
const std::vector<Migration>& InsightMigrations();

// GET /api/v1/insights filters.
struct InsightListFilter {
  std::string tag;   // only insights with this tag
  std::string kind;  // only this query kind
  std::string q;     // name or description contains this (case-insensitive, ASCII)
};

// An export's bytes and how to send them.
struct ExportFile {
  std::string bytes;
  std::string filename;
  std::string content_type;
};

class InsightsService {
 public:
  // `kpis` makes KPIs from insights; `people` (may be null) gives queries their cohort filters
  // and people settings, as for POST /api/v1/query.
  static StatusOr<std::unique_ptr<InsightsService>> Open(ProjectRegistry& registry, Kpis& kpis, PeopleService* people);
  // Advertising spend for the channels kind (null: none). Call before serving.
  void set_spend(SpendStore* spend) { spend_ = spend; }

  // ---- insights
  StatusOr<nlohmann::json> CreateInsight(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> GetInsight(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> ListInsights(const std::string& project, const InsightListFilter& filter);
  StatusOr<nlohmann::json> UpdateInsight(const Principal& who, int64_t id, const nlohmann::json& patch);
  // FailedPrecondition (naming them) while a dashboard shows it.
  Status DeleteInsight(const Principal& who, int64_t id);
  // Runs the insight, or answers it from the cache. `override_body`: {"date_from","date_to"}
  // or {"date_range"} (may be empty). deadline may be null.
  StatusOr<nlohmann::json> RunInsight(const std::string& project, int64_t id, const nlohmann::json& override_body,
                                      const Deadline* deadline);
  // format: "csv" or "xlsx"; lang: "zh" or "en".
  StatusOr<ExportFile> ExportInsight(const std::string& project, int64_t id, const nlohmann::json& override_body,
                                     const std::string& format, const std::string& lang, const Deadline* deadline);
  // An unsaved query's answer as XLSX (the console's builder): body {"query", "name"
  // (optional, the sheet's title; default the kind), "lang": "zh"|"en" (default zh)}. The
  // query is validated as a saved insight's would be (errors prefixed "query.").
  StatusOr<ExportFile> ExportQuery(const std::string& project, const nlohmann::json& body, const Deadline* deadline);
  // A KPI (ops/kpis.h) whose query is the insight's; `body` holds the KPI's other fields
  // (target, period, reduce, ...), with defaults from the insight. Answers the KPI's id.
  StatusOr<int64_t> CreateKpi(const Principal& who, int64_t insight_id, const nlohmann::json& body);

  // ---- dashboards
  StatusOr<nlohmann::json> CreateDashboard(const Principal& who, const nlohmann::json& body);
  StatusOr<nlohmann::json> GetDashboard(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> ListDashboards(const std::string& project);
  StatusOr<nlohmann::json> UpdateDashboard(const Principal& who, int64_t id, const nlohmann::json& patch);
  Status DeleteDashboard(const Principal& who, int64_t id);
  // Every tile's answer (cached ones from memory); a tile that fails carries its error, the
  // others still answer.
  StatusOr<nlohmann::json> RunDashboard(const std::string& project, int64_t id, const nlohmann::json& override_body,
                                        const Deadline* deadline);

  ResultCache& cache() { return cache_; }

 private:
  InsightsService(ProjectRegistry& registry, Kpis& kpis, PeopleService* people)
      : registry_(registry), db_(registry.meta_db()), kpis_(kpis), people_(people) {}

  struct InsightRow {
    int64_t id = 0;
    InsightDoc doc;
    std::string created_by;
    int64_t created_at = 0, updated_at = 0;
  };
  struct DashboardRow {
    int64_t id = 0;
    DashboardDoc doc;
    std::string created_by;
    int64_t created_at = 0, updated_at = 0;
  };
  // What one run of an insight needs of its project, looked up once per request.
  struct RunContext {
    Project* project = nullptr;
    int32_t today = 0;
    std::string definitions;  // PeopleService::DefinitionsVersion ("" without people)
    std::unique_ptr<CohortSource> cohorts;
    std::optional<PeopleSettings> settings;
    std::unique_ptr<SpendSource> spend;
  };
  struct RunOutcome {
    nlohmann::json query;  // as run: dates resolved
    std::shared_ptr<const CachedResult> answer;
    bool cached = false;
  };
  // The export of an answer: the kind's table and, in XLSX, what was run. id 0: unsaved.
  StatusOr<ExportFile> WriteExport(int64_t id, const InsightDoc& doc, const RunOutcome& r, const RunContext& rc,
                                   const std::string& format, const std::string& lang);

  StatusOr<InsightRow> LoadInsight(const std::string& project, int64_t id);
  StatusOr<DashboardRow> LoadDashboard(const std::string& project, int64_t id);
  nlohmann::json InsightJson(const InsightRow& row, const std::vector<int64_t>& dashboards) const;
  StatusOr<nlohmann::json> DashboardJson(const std::string& project, const DashboardRow& row);
  StatusOr<std::vector<int64_t>> DashboardsShowing(const std::string& project, int64_t insight_id);
  Status CheckTiles(const std::string& project, const DashboardDoc& doc);
  Status SaveTiles(int64_t dashboard_id, const DashboardDoc& doc);
  StatusOr<int32_t> Today(const std::string& project);
  StatusOr<RunContext> MakeRunContext(const std::string& project);
  // The query as run (override applied, dates resolved) and its answer, from the cache when
  // the store is in the state it was computed on.
  StatusOr<RunOutcome> Run(RunContext& rc, const nlohmann::json& query, const DateOverride& o,
                           const Deadline* deadline);

  ProjectRegistry& registry_;
  MetaDb& db_;
  Kpis& kpis_;
  PeopleService* people_;
  SpendStore* spend_ = nullptr;
  ResultCache cache_;
};

}  // namespace ns
