// KPIs (template 3, "execution monitoring"): a saved query reduced to one number per
// period, a target, a direction and an owner; snapshots kept as history; achievement rate
// and red/yellow/green light; period-end forecast (ops/forecast.h).
//
// reduce (one of):
//   {"series":0,"op":"sum"|"avg"|"last"|"max"|"min"}  trends: the series' daily values
//   {"from_step":1,"to_step":3}                        funnel: persons at to_step / at from_step (1-based)
//   {"period":7}                                       retention: returned in period k / cohort size, all cohorts
//   {"formula":"k12 / k13"}                            arithmetic over other KPIs' values (+ - * / parentheses)
// period: {"type":"day"|"week"|"month"|"quarter"|"custom","from","to"} — the current period
// containing today (project time zone), or the custom range. The query's date range
// follows the period.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "auth/accounts.h"
#include "core/status.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "ops/documents.h"
#include "ops/forecast.h"
#include "ops/kpi_reducers.h"
#include "query/cohort_source.h"
#include "query/person_facts.h"
#include "query/spend_source.h"

namespace ns {

// What a KPI's query reads besides the store, per project: the people layer's cohorts and
// settings (payments for commerce) and the advertising spend (channels). ops/ does not
// depend on people/: the server wires a provider (Kpis::SetQueryInputs), as it wires the
// CohortDirectory; without one, queries run with defaults and no spend.
struct KpiQueryInputs {
  std::unique_ptr<CohortSource> cohorts;
  std::optional<PeopleSettings> settings;
  std::unique_ptr<SpendSource> spend;
  QueryOptions Options() const {
    QueryOptions o;
    o.cohorts = cohorts.get();
    o.people = settings ? &*settings : nullptr;
    o.spend = spend.get();
    return o;
  }
};
using KpiQueryInputsProvider = std::function<StatusOr<KpiQueryInputs>(const std::string& project)>;

// One refresh's evaluation of KPIs that refer to each other by formula: each referenced KPI
// is evaluated once per range (memoised; a formula 30 x the previous KPI, 8 levels deep, is
// 240 evaluations, not 30^8), the chain being evaluated is kept (a cycle is an error that
// names it, never a recursion without end), and the number of distinct evaluations is capped.
struct KpiEvalScope {
  static constexpr int kMaxEvaluations = 500;
  std::map<std::string, std::map<std::string, KpiParts>> values;  // "id|from|to" -> parts
  std::map<std::string, DailySeries> daily;                       // "id|from|to" -> daily values
  std::vector<int64_t> chain;                                     // formula KPIs being evaluated
  int evaluations = 0;
};

// A stored KPI: its definition, its latest state (none before the first refresh) and times.
struct KpiRow {
  int64_t id = 0;
  KpiDoc doc;
  std::optional<KpiState> state;
  int64_t created_at = 0, updated_at = 0;
};

class Kpis {
 public:
  Kpis(MetaDb& db, ProjectRegistry& registry) : db_(db), registry_(registry) {}

  StatusOr<int64_t> Create(const Principal& who, const nlohmann::json& body);
  Status Patch(const Principal& who, int64_t id, const nlohmann::json& body);
  Status Delete(const Principal& who, int64_t id);
  // The KPI with its latest computed state (actual, target, achievement_rate, light,
  // forecast, reason, history).
  StatusOr<nlohmann::json> Get(const std::string& project, int64_t id);
  StatusOr<nlohmann::json> List(const std::string& project, std::optional<int64_t> scenario_id);
  StatusOr<nlohmann::json> Doc(const std::string& project, int64_t id);  // the stored definition, with "id"
  // The stored definition (LoadDoc), or it with the state and times (LoadRow). NotFound if not in
  // the project; Corruption naming the row if malformed.
  StatusOr<KpiDoc> LoadDoc(const std::string& project, int64_t id);
  StatusOr<KpiRow> LoadRow(const std::string& project, int64_t id);

  // Computes the KPI now (as of `today`, default the project's today), stores a snapshot,
  // returns the new state.
  StatusOr<nlohmann::json> Refresh(const std::string& project, int64_t id, std::optional<int32_t> today = {});
  // Stores a history snapshot as of a past local `day`, as the daily job would have recorded
  // it then (the period containing `day`, its value through `day`; no forecast), stamped
  // `taken_at_ms`; the current state is left alone. For backfilling history (the first-start
  // demo): the value counts the events known now, late ones included.
  Status BackfillSnapshot(const std::string& project, int64_t id, int32_t day, int64_t taken_at_ms);

  // The value of KPI `id` (0: a definition not stored) over [from, to]; with `dimension`, its
  // parts per value of that property (event property, or "person.x").
  StatusOr<std::map<std::string, KpiParts>> Evaluate(const std::string& project, int64_t id, const KpiDoc& doc,
                                                     PeriodRange range, const std::string& dimension = "",
                                                     KpiEvalScope* scope = nullptr);
  // Daily values over [from, to], for forecasts and alerts: one pass when the reducer has a
  // daily form (trends, funnel, retention), else one evaluation per day (commerce).
  StatusOr<DailySeries> Daily(const std::string& project, int64_t id, const KpiDoc& doc, PeriodRange range,
                              KpiEvalScope* scope = nullptr);
  // The same for a definition as JSON (ValidateKpi's answer, or Doc's with its "id").
  StatusOr<std::map<std::string, KpiParts>> Evaluate(const std::string& project, const nlohmann::json& doc,
                                                     PeriodRange range, const std::string& dimension = "",
                                                     KpiEvalScope* scope = nullptr);
  StatusOr<DailySeries> Daily(const std::string& project, const nlohmann::json& doc, PeriodRange range,
                              KpiEvalScope* scope = nullptr);
  // The period of a KPI containing `today`.
  static StatusOr<PeriodRange> CurrentPeriod(const nlohmann::json& period, int32_t today);
  // Funnel step conversions (step k / step k-1) over a range, for root-cause hints.
  StatusOr<nlohmann::json> FunnelSteps(const std::string& project, const KpiDoc& doc, PeriodRange range);

  // The explanation line of the KPI's kind for a range (KpiReducer::explain), "" when it has none.
  StatusOr<std::string> Explain(const std::string& project, const KpiDoc& doc, PeriodRange range);
  // Call before serving (not thread-safe against evaluations).
  void SetQueryInputs(KpiQueryInputsProvider provider) { inputs_ = std::move(provider); }

  MetaDb& db() { return db_; }
  ProjectRegistry& registry() { return registry_; }

 private:
  // The formula KPIs reachable from `refs` must not lead back to `id`: InvalidArgument naming
  // the cycle ("k1 -> k2 -> k1"); also every reference must exist in the project.
  Status CheckFormulaRefs(const std::string& project, int64_t id, const std::vector<int64_t>& refs);
  // A referenced KPI for a formula under evaluation: the cycle check and the work cap.
  StatusOr<KpiDoc> EnterRef(const std::string& project, int64_t id, KpiEvalScope& scope);
  // The KPI's query shaped for one evaluation: the range's dates, its reducer's shape, and
  // the breakdown by `dimension` ("" for none).
  StatusOr<nlohmann::json> KpiQuery(const KpiDoc& doc, PeriodRange range, const std::string& dimension);
  // One history row (kpi_snapshots) for `state`.
  Status InsertSnapshot(int64_t id, int64_t taken_at_ms, const KpiDoc& doc, const KpiState& state);
  // The project's query inputs (defaults without a provider).
  StatusOr<KpiQueryInputs> InputsOf(const std::string& project) const;
  MetaDb& db_;
  ProjectRegistry& registry_;
  KpiQueryInputsProvider inputs_;
};

// Achievement rate (actual/target, inverted when lower is better) and light.
double AchievementRate(double actual, double target, bool higher_is_better);
std::string LightFor(double rate, const nlohmann::json& thresholds);
// Validates a KPI definition (exposed for tests); base = stored doc for PATCH.
StatusOr<nlohmann::json> ValidateKpi(const nlohmann::json& body, const nlohmann::json* base);
// Evaluates "k12 / (k13 + 2)" with values of the referenced KPIs; lists the ids it uses.
StatusOr<double> EvalFormula(const std::string& f, const std::map<int64_t, double>& values);
StatusOr<std::vector<int64_t>> FormulaRefs(const std::string& f);

}  // namespace ns
