// Experiments in meta.db and their results; see experiments_service.h.
#include "experiments/experiments_service.h"

#include <algorithm>
#include <cmath>

#include "auth/accounts.h"
#include "core/time_zone.h"
#include "query/query_kind.h"

namespace ns {

using nlohmann::json;

const std::vector<Migration>& ExperimentMigrations() {
  // The scenario link is a column (as kpis.scenario_id) so a scenario's experiments are found
  // without reading documents; deleting the scenario unlinks them.
  static const std::vector<Migration> m = {
      {1, "experiments", R"SQL(
CREATE TABLE experiments(
  id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL,
  scenario_id INTEGER REFERENCES scenarios(id) ON DELETE SET NULL,
  doc TEXT NOT NULL, created_by TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX experiments_project ON experiments(project);
)SQL"},
  };
  return m;
}

namespace {

// A number for the API: NaN and infinities (no value) are null.
json Num(double x) { return std::isfinite(x) ? json(x) : json(); }

const char* KindName(stats::MetricKind k) {
  switch (k) {
    case stats::MetricKind::kMean: return "mean";
    case stats::MetricKind::kRatio: return "ratio";
    default: return "proportion";
  }
}

}  // namespace

StatusOr<std::unique_ptr<ExperimentsService>> ExperimentsService::Open(ProjectRegistry& registry) {
  NS_RETURN_IF_ERROR(registry.meta_db().Migrate("experiments", ExperimentMigrations()));
  return std::unique_ptr<ExperimentsService>(new ExperimentsService(registry));
}

// ---------------------------------------------------------------- storage

StatusOr<ExperimentsService::Row> ExperimentsService::Load(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT doc, scenario_id, created_by, created_at, updated_at "
                                           "FROM experiments WHERE id = ? AND project = ?",
                                           {id, project}));
  if (rows.empty()) return NotFound("no experiment " + std::to_string(id));
  const SqlRow& r = rows[0];
  json j = json::parse(r.Str(0), nullptr, /*allow_exceptions=*/false);
  auto malformed = [&](const std::string& what) {
    return Corruption("experiments.doc of row " + std::to_string(id) + " is malformed: " + what);
  };
  if (j.is_discarded() || !j.is_object()) return malformed("not a JSON object");
  // The link lives in its column (a deleted scenario sets it null).
  j["scenario_id"] = r.IsNull(1) ? json() : json(r.Int(1));
  StatusOr<ExperimentDoc> doc = ExperimentDoc::Parse(j);
  if (!doc.ok()) return malformed(doc.status().message());
  Row row;
  row.id = id;
  row.doc = std::move(doc).value();
  row.created_by = r.Str(2);
  row.created_at = r.Int(3);
  row.updated_at = r.Int(4);
  return row;
}

json ExperimentsService::RowJson(const Row& row) {
  json j = row.doc.ToJson();
  j["id"] = row.id;
  j["created_by"] = row.created_by;
  j["created_at"] = FormatIsoUtc(row.created_at);
  j["updated_at"] = FormatIsoUtc(row.updated_at);
  return j;
}

Status ExperimentsService::CheckScenario(const std::string& project, const ExperimentDoc& doc) {
  if (!doc.scenario_id) return Status::OK();
  // The operations layer's table: a scenario of this project (another project's is as unknown).
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT 1 FROM scenarios WHERE id = ? AND project = ?", {*doc.scenario_id, project}));
  if (rows.empty())
    return InvalidArgument("scenario_id: no scenario " + std::to_string(*doc.scenario_id), "scenario_id");
  return Status::OK();
}

// ---------------------------------------------------------------- CRUD

StatusOr<json> ExperimentsService::Create(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(ExperimentDoc d, ExperimentDoc::Parse(body));
  NS_RETURN_IF_ERROR(CheckScenario(who.project, d));
  int64_t id = 0;
  const json doc = d.ToJson();
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    const int64_t now = NowMs();
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO experiments(project, scenario_id, doc, created_by, created_at, "
                                       "updated_at) VALUES(?, ?, ?, ?, ?, ?)",
                                       {who.project, d.scenario_id ? SqlValue(*d.scenario_id) : SqlValue(nullptr),
                                        doc.dump(), who.actor, now, now}));
    return Audit(db_, who, "create", "experiment", id, nullptr, doc);
  }));
  return Get(who.project, id);
}

StatusOr<json> ExperimentsService::Get(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(Row row, Load(project, id));
  return RowJson(row);
}

StatusOr<json> ExperimentsService::List(const std::string& project, std::optional<int64_t> scenario_id) {
  NS_ASSIGN_OR_RETURN(auto ids, scenario_id
                                    ? db_.Query("SELECT id FROM experiments WHERE project = ? AND "
                                                "scenario_id = ? ORDER BY id",
                                                {project, *scenario_id})
                                    : db_.Query("SELECT id FROM experiments WHERE project = ? ORDER BY id", {project}));
  json list = json::array();
  for (const SqlRow& r : ids) {
    NS_ASSIGN_OR_RETURN(Row row, Load(project, r.Int(0)));
    list.push_back(RowJson(row));
  }
  return json{{"experiments", list}};
}

StatusOr<json> ExperimentsService::Update(const Principal& who, int64_t id, const json& patch) {
  if (!patch.is_object()) return InvalidArgument("expected a JSON object", "");
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(Row row, Load(who.project, id));
    json before = row.doc.ToJson();
    json merged = before;
    for (auto it = patch.begin(); it != patch.end(); ++it) merged[it.key()] = it.value();
    NS_ASSIGN_OR_RETURN(ExperimentDoc d, ExperimentDoc::Parse(merged));
    NS_RETURN_IF_ERROR(CheckScenario(who.project, d));
    const json after = d.ToJson();
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE experiments SET doc = ?, scenario_id = ?, updated_at = ? WHERE id = ?",
                 {after.dump(), d.scenario_id ? SqlValue(*d.scenario_id) : SqlValue(nullptr), NowMs(), id}));
    return Audit(db_, who, "update", "experiment", id, before, after);
  }));
  return Get(who.project, id);
}

Status ExperimentsService::Delete(const Principal& who, int64_t id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(Row row, Load(who.project, id));
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM experiments WHERE id = ?", {id}));
    return Audit(db_, who, "delete", "experiment", id, row.doc.ToJson(), nullptr);
  });
}

// ---------------------------------------------------------------- results

StatusOr<json> ExperimentsService::Results(const std::string& project, int64_t id, const Deadline* deadline,
                                           std::optional<int32_t> today_opt) {
  NS_ASSIGN_OR_RETURN(Row row, Load(project, id));
  const ExperimentDoc& d = row.doc;
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const int32_t today = today_opt.value_or(p->tz.LocalDay(NowMs()));
  if (!d.start_day) return FailedPrecondition("experiment " + std::to_string(id) + " has no start_date yet");
  if (*d.start_day > today)
    return FailedPrecondition("experiment " + std::to_string(id) + " starts on " + FormatDate(*d.start_day) +
                              ", after today (" + FormatDate(today) + ")");

  ExperimentScanSpec spec;
  spec.flag_key = d.flag_key;
  for (const auto& v : d.variants) spec.variants.push_back(v.key);
  spec.from_day = *d.start_day;
  spec.to_day = std::min(d.end_day.value_or(today), today);
  spec.cuped_days = d.cuped_days;
  spec.winsorize_percentile = d.analysis.winsorize_percentile;
  struct Named {
    const ExperimentMetric* metric;
    const char* role;
  };
  std::vector<Named> named;
  for (const auto& m : d.primary_metrics) named.push_back({&m, "primary"});
  for (const auto& m : d.secondary_metrics) named.push_back({&m, "secondary"});
  for (const auto& m : d.guardrail_metrics) named.push_back({&m, "guardrail"});
  std::vector<ExperimentMetricSpec> specs;
  for (const Named& n : named) specs.push_back(n.metric->spec);

  QueryScope scope(*p->store, p->tz, deadline);
  NS_ASSIGN_OR_RETURN(ExperimentData data, ComputeExperimentData(spec, specs, scope.ctx()));
  NS_RETURN_IF_ERROR(scope.status());

  stats::AnalysisOptions options = d.analysis;
  options.traffic_weights.clear();
  for (const auto& v : d.variants) options.traffic_weights.push_back(v.weight);

  json out;
  out["experiment_id"] = id;
  out["name"] = d.name;
  out["flag_key"] = d.flag_key;
  out["status"] = d.status;
  out["timezone"] = p->tz.name();
  out["date_from"] = FormatDate(spec.from_day);
  out["date_to"] = FormatDate(spec.to_day);
  out["analysis"] = d.ToJson()["analysis"];
  uint64_t total = 0;
  json variants = json::array();
  for (size_t v = 0; v < d.variants.size(); v++) {
    total += data.exposed[v];
    variants.push_back({{"key", d.variants[v].key}, {"weight", d.variants[v].weight}, {"exposed", data.exposed[v]}});
  }
  out["variants"] = variants;
  out["exposures"] = total;
  out["multiple_exposures"] = data.multiple_exposures;

  // SRM: the engine's check (gbstats' chi-square) of the included persons against the planned
  // weights, flagged as AnalyzeExperiment flags it.
  {
    std::vector<double> persons;
    for (uint64_t e : data.exposed) persons.push_back(static_cast<double>(e));
    const double p_srm = stats::SampleRatioMismatchPValue(persons, options.traffic_weights);
    out["srm_p_value"] = Num(p_srm);
    out["srm_flagged"] = total >= 100 && p_srm < 0.001;
    out["srm_checked"] = total >= 100;  // the check is shown from 100 exposures on
  }

  json by_day{{"dates", json::array()}, {"variants", json::array()}};
  for (int32_t day = spec.from_day; day <= spec.to_day; day++) by_day["dates"].push_back(FormatDate(day));
  for (size_t v = 0; v < d.variants.size(); v++)
    by_day["variants"].push_back({{"key", d.variants[v].key}, {"counts", data.exposures_by_day[v]}});
  out["exposures_by_day"] = by_day;

  json metrics = json::array();
  std::optional<stats::ExperimentAnalysis> primary;
  for (size_t m = 0; m < named.size(); m++) {
    const ExperimentMetricData& md = data.metrics[m];
    json mj = MetricJson(*named[m].metric);
    mj["role"] = named[m].role;
    mj["kind"] = KindName(md.kind);
    if (md.kind == stats::MetricKind::kMean && options.winsorize_percentile > 0) mj["winsorize_cap"] = md.winsorize_cap;
    json vj = json::array();
    for (const auto& vs : md.variants) {
      json v{{"key", vs.name}, {"name", vs.name}, {"n", vs.n}, {"sum", vs.sum}};
      if (md.kind == stats::MetricKind::kProportion) v["conversions"] = vs.sum;
      if (md.kind == stats::MetricKind::kRatio) v["denominator_sum"] = vs.denominator_sum;
      vj.push_back(v);
    }
    auto analysis = stats::AnalyzeExperiment(md.kind, md.variants, options);
    if (!analysis.ok()) {
      mj["error"] = analysis.status().message();
    } else {
      for (size_t v = 0; v < analysis->variants.size() && v < vj.size(); v++) {
        const stats::VariantSummary& s = analysis->variants[v];
        vj[v]["mean"] = Num(s.mean);
        if (md.kind == stats::MetricKind::kProportion) vj[v]["rate"] = Num(s.mean);
        vj[v]["variance"] = Num(s.variance);
      }
      json effects = json::array();
      // The fields of POST /api/v1/experiments/analyze's effects (server/experiment_analyze_routes.h),
      // plus "variant".
      for (size_t i = 0; i < analysis->effects.size(); i++) {
        const stats::Effect& e = analysis->effects[i];
        json ej{{"variant", e.name},
                {"name", e.name},
                {"variant_index", i + 1},
                {"ok", e.ok},
                {"error", e.error.empty() ? json() : json(e.error)},
                {"expected", Num(e.expected)},
                {"ci", json::array({Num(e.ci_low), Num(e.ci_high)})},
                {"standard_error", Num(e.standard_error)},
                {"p_value", Num(e.p_value)},
                {"p_value_unadjusted", Num(e.p_value_unadjusted)},
                {"ci_unadjusted", json::array({Num(e.ci_low_unadjusted), Num(e.ci_high_unadjusted)})},
                {"chance_to_win", Num(e.chance_to_win)},
                {"risk", json::array({Num(e.risk_control), Num(e.risk_treatment)})},
                {"cuped_theta", Num(e.cuped_theta)}};
        if (e.ok && options.method != stats::AnalysisMethod::kBayesian && std::isfinite(e.p_value))
          ej["significant"] = e.p_value < options.alpha;
        effects.push_back(ej);
      }
      mj["effects"] = effects;
      if (m == 0 && named[m].role == std::string("primary")) primary = *analysis;
    }
    mj["variants"] = vj;
    metrics.push_back(mj);
  }
  out["metrics"] = metrics;

  // Power of the first primary metric: the persons per variant the MDE needs at the control's
  // current mean and variance, and the days that takes at the traffic so far.
  json power;
  if (primary && !primary->variants.empty()) {
    const stats::VariantSummary& c = primary->variants[0];
    const int32_t elapsed = spec.to_day - spec.from_day + 1;
    const double daily = static_cast<double>(total) / elapsed;
    power = {{"metric", named[0].metric->name},
             {"minimum_detectable_effect", d.minimum_detectable_effect},
             {"power", d.power},
             {"daily_persons", daily},
             {"days_elapsed", elapsed}};
    if (c.mean != 0 && c.variance > 0 && std::isfinite(c.variance)) {
      auto est = stats::EstimatePower(c.mean, c.variance, d.minimum_detectable_effect, options.alpha, d.power, daily,
                                      static_cast<int>(d.variants.size()));
      if (est.ok()) {
        power["persons_per_variant"] = Num(est->persons_per_variant);
        power["days_needed"] = Num(est->days);
        power["days_remaining"] = daily > 0 ? Num(std::max(0.0, est->days - elapsed)) : json();
      } else {
        power["error"] = est.status().message();
      }
    } else {
      power["error"] = "the control's mean and variance are not known yet";
    }
  }
  out["power"] = power;
  return out;
}

}  // namespace ns
