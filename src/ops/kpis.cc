#include "ops/kpis.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <functional>
#include <set>

#include "core/time_zone.h"
#include "query/operators.h"
#include "query/query_kind.h"
#include "query/query_spec.h"

namespace ns {

using nlohmann::json;

namespace {

const std::set<std::string> kKpiFields = {"scenario_id", "name",      "query",     "reduce",     "target",
                                          "period",      "direction", "owner",     "thresholds", "reason",
                                          "description", "unit",      "dimensions"};

PeriodAggregate AggregateOf(const KpiDoc& doc) {
  const json& r = doc.reduce;
  if (r.contains("series") && r.value("op", std::string("sum")) == "sum") return PeriodAggregate::kSum;
  return PeriodAggregate::kMean;
}

// The reducer of a stored KPI's query kind.
StatusOr<const KpiReducer*> ReducerOf(const KpiDoc& doc) {
  const std::string kind = doc.QueryKind();
  const KpiReducer* r = FindKpiReducer(kind);
  if (r == nullptr) return InvalidArgument("query.kind: a '" + kind + "' query cannot be a KPI", "query.kind");
  return r;
}

}  // namespace

// ---------------------------------------------------------------- formula

namespace {

struct FormulaParser {
  const std::string& s;
  size_t i = 0;
  const std::map<int64_t, double>* values;  // null: collect refs only
  std::vector<int64_t>* refs;

  void Skip() {
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) i++;
  }
  Status Err(const std::string& what) {
    return InvalidArgument("reduce.formula: " + what + " at position " + std::to_string(i + 1) + " of '" + s + "'",
                           "reduce.formula");
  }
  StatusOr<double> Primary() {
    Skip();
    if (i >= s.size()) return Err("unexpected end");
    char c = s[i];
    if (c == '(') {
      i++;
      NS_ASSIGN_OR_RETURN(double v, Expr());
      Skip();
      if (i >= s.size() || s[i] != ')') return Err("expected ')'");
      i++;
      return v;
    }
    if (c == '-') {
      i++;
      NS_ASSIGN_OR_RETURN(double v, Primary());
      return -v;
    }
    if (c == 'k' || c == 'K') {
      size_t j = i + 1;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) j++;
      if (j == i + 1) return Err("expected a KPI id after 'k' (e.g. k12)");
      int64_t id = std::atoll(s.substr(i + 1, j - i - 1).c_str());
      i = j;
      if (refs) refs->push_back(id);
      if (!values) return 1.0;
      auto it = values->find(id);
      if (it == values->end()) return Err("unknown KPI k" + std::to_string(id));
      return it->second;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '.') {
      char* end = nullptr;
      double v = std::strtod(s.c_str() + i, &end);
      i = static_cast<size_t>(end - s.c_str());
      return v;
    }
    return Err(std::string("unexpected '") + c + "'");
  }
  StatusOr<double> Term() {
    NS_ASSIGN_OR_RETURN(double v, Primary());
    for (;;) {
      Skip();
      if (i < s.size() && (s[i] == '*' || s[i] == '/')) {
        char op = s[i++];
        NS_ASSIGN_OR_RETURN(double r, Primary());
        v = op == '*' ? v * r : (r == 0 ? 0.0 : v / r);  // x/0 reads as 0 (no data yet), never inf
      } else {
        return v;
      }
    }
  }
  StatusOr<double> Expr() {
    NS_ASSIGN_OR_RETURN(double v, Term());
    for (;;) {
      Skip();
      if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
        char op = s[i++];
        NS_ASSIGN_OR_RETURN(double r, Term());
        v = op == '+' ? v + r : v - r;
      } else {
        return v;
      }
    }
  }
  StatusOr<double> Run() {
    NS_ASSIGN_OR_RETURN(double v, Expr());
    Skip();
    if (i != s.size()) return Err("unexpected text");
    return v;
  }
};

}  // namespace

StatusOr<double> EvalFormula(const std::string& f, const std::map<int64_t, double>& values) {
  FormulaParser p{f, 0, &values, nullptr};
  return p.Run();
}

StatusOr<std::vector<int64_t>> FormulaRefs(const std::string& f) {
  std::vector<int64_t> refs;
  FormulaParser p{f, 0, nullptr, &refs};
  NS_RETURN_IF_ERROR(p.Run().status());
  return refs;
}

// ---------------------------------------------------------------- validation

double AchievementRate(double actual, double target, bool higher) {
  if (higher) {
    if (target == 0) return actual >= 0 ? 1.0 : 0.0;
    return actual / target;
  }
  if (actual <= 0) return target >= 0 ? 1.0 : 0.0;  // lower is better and nothing happened: met
  return target / actual;
}

std::string LightFor(double rate, const json& t) {
  double green = 1.0, yellow = 0.9;
  if (t.is_object()) {
    green = t.value("green", 1.0);
    yellow = t.value("yellow", 0.9);
  }
  // Rates are quotients of doubles: 18% / 20% is 0.8999999999999999, which must read as
  // the 90% it is (yellow), not red. Compare with a tolerance far below any real difference.
  constexpr double kEps = 1e-9;
  if (rate >= green - kEps) return "green";
  if (rate >= yellow - kEps) return "yellow";
  return "red";
}

StatusOr<json> ValidateKpi(const json& body, const json* base) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object with the KPI's fields");
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!kKpiFields.count(it.key()))
      return InvalidArgument("kpi: unknown field '" + it.key() +
                                 "' (known: name, scenario_id, query, reduce, target, period, direction, owner, "
                                 "thresholds, reason, description, unit, dimensions)",
                             it.key());
  json d = base ? *base : json::object();
  for (auto it = body.begin(); it != body.end(); ++it) d[it.key()] = it.value();
  if (!d.contains("name") || !d["name"].is_string() || d["name"].get<std::string>().empty() ||
      d["name"].get<std::string>().size() > 200)
    return InvalidArgument("name: required, 1 to 200 bytes", "name");
  if (!d.contains("scenario_id")) d["scenario_id"] = nullptr;
  if (!d["scenario_id"].is_null() && !d["scenario_id"].is_number_integer())
    return InvalidArgument("scenario_id: expected a scenario id or null", "scenario_id");
  for (const char* f : {"owner", "reason", "description", "unit"}) {
    if (!d.contains(f) || d[f].is_null()) d[f] = "";
    if (!d[f].is_string()) return InvalidArgument(std::string(f) + ": expected a string", f);
  }
  if (!d.contains("direction")) d["direction"] = "higher";
  if (d["direction"] != "higher" && d["direction"] != "lower")
    return InvalidArgument("direction: expected \"higher\" or \"lower\" (which way is better)", "direction");
  if (!d.contains("target")) d["target"] = nullptr;
  if (!d["target"].is_null() && (!d["target"].is_number() || !std::isfinite(d["target"].get<double>())))
    return InvalidArgument("target: expected a number", "target");
  if (!d.contains("thresholds") || d["thresholds"].is_null()) d["thresholds"] = json{{"green", 1.0}, {"yellow", 0.9}};
  {
    const json& t = d["thresholds"];
    if (!t.is_object() || !t.value("green", json(1.0)).is_number() || !t.value("yellow", json(0.9)).is_number())
      return InvalidArgument("thresholds: expected {\"green\":1.0,\"yellow\":0.9} (achievement rates)", "thresholds");
    if (t.value("yellow", 0.9) > t.value("green", 1.0))
      return InvalidArgument("thresholds: yellow must not be above green", "thresholds");
  }
  if (!d.contains("dimensions") || d["dimensions"].is_null())
    d["dimensions"] = json::array({"channel", "platform", "city_tier", "user_type"});
  if (!d["dimensions"].is_array())
    return InvalidArgument("dimensions: expected a list of property names", "dimensions");
  for (auto& x : d["dimensions"])
    if (!x.is_string() || x.get<std::string>().empty())
      return InvalidArgument("dimensions: expected property names", "dimensions");
  // Period.
  if (!d.contains("period") || d["period"].is_null()) d["period"] = json{{"type", "month"}};
  if (d["period"].is_string()) d["period"] = json{{"type", d["period"]}};
  {
    json& p = d["period"];
    if (!p.is_object())
      return InvalidArgument("period: expected {\"type\":\"day|week|month|quarter|custom\"}", "period");
    if (!p.contains("type") && p.contains("from")) p["type"] = "custom";
    std::string type = p.value("type", "");
    if (type != "day" && type != "week" && type != "month" && type != "quarter" && type != "custom")
      return InvalidArgument("period.type: expected day, week, month, quarter or custom", "period.type");
    if (type == "custom") {
      if (!p.contains("from") || !p.contains("to") || !p["from"].is_string() || !p["to"].is_string())
        return InvalidArgument("period: a custom period needs \"from\" and \"to\" (YYYY-MM-DD)", "period");
      NS_ASSIGN_OR_RETURN(int32_t f, ParseDate(p["from"].get<std::string>(), "period.from"));
      NS_ASSIGN_OR_RETURN(int32_t t, ParseDate(p["to"].get<std::string>(), "period.to"));
      if (t < f) return InvalidArgument("period: 'to' is before 'from'", "period.to");
    }
  }
  // Reduce and query.
  if (!d.contains("reduce") || !d["reduce"].is_object())
    return InvalidArgument(
        "reduce: required: {\"series\":0,\"op\":\"sum\"}, {\"from_step\":1,\"to_step\":3}, "
        "{\"period\":7} or {\"formula\":\"k1 / k2\"}",
        "reduce");
  json& r = d["reduce"];
  if (r.contains("formula")) {
    if (!r["formula"].is_string())
      return InvalidArgument("reduce.formula: expected a text like \"k12 / k13\"", "reduce.formula");
    NS_ASSIGN_OR_RETURN(auto refs, FormulaRefs(r["formula"].get<std::string>()));
    if (refs.empty())
      return InvalidArgument("reduce.formula: refers to no KPI (write k<id>, e.g. k12 / k13)", "reduce.formula");
    d["query"] = nullptr;
    return d;
  }
  if (!d.contains("query") || !d["query"].is_object())
    return InvalidArgument("query: required (a trends, funnel or retention query)", "query");
  json q = d["query"];
  q["date_from"] = "2020-01-01";
  q["date_to"] = "2020-01-31";
  auto in_query = [](const Status& st) { return Status(st.code(), "query: " + st.message(), "query." + st.field()); };
  auto kind = QueryKindOf(q);
  if (!kind.ok()) return in_query(kind.status());
  if (Status st = (*kind)->check(q); !st.ok()) return in_query(st);
  const KpiReducer* reducer = FindKpiReducer((*kind)->name);
  if (reducer == nullptr)
    return InvalidArgument(
        "query.kind: a " + std::string((*kind)->name) + " query cannot be a KPI (expected " + KpiKindList() + ")",
        "query.kind");
  NS_RETURN_IF_ERROR(reducer->validate(q, r));
  return d;
}

// ---------------------------------------------------------------- periods

StatusOr<PeriodRange> Kpis::CurrentPeriod(const json& p, int32_t today) {
  std::string type = p.value("type", "month");
  if (type == "custom")
    return PeriodRange{ParseDate(p["from"].get<std::string>(), "period.from").value(),
                       ParseDate(p["to"].get<std::string>(), "period.to").value()};
  if (type == "day") return PeriodRange{today, today};
  if (type == "week") {
    int32_t s = TimeZone::PeriodStartDay(today, Interval::kWeek);
    return PeriodRange{s, s + 6};
  }
  int32_t ms = TimeZone::PeriodStartDay(today, Interval::kMonth);
  if (type == "month") {
    int32_t next = TimeZone::PeriodStartDay(ms + 40, Interval::kMonth);
    return PeriodRange{ms, next - 1};
  }
  // quarter: months 1-3, 4-6, 7-9, 10-12
  std::string ds = FormatDate(ms);
  int month = std::atoi(ds.substr(5, 2).c_str());
  int32_t qs = ms;
  for (int m = month; (m - 1) % 3 != 0; m--) qs = TimeZone::PeriodStartDay(qs - 1, Interval::kMonth);
  int32_t qe = qs;
  for (int i = 0; i < 3; i++) qe = TimeZone::PeriodStartDay(qe + 40, Interval::kMonth);
  return PeriodRange{qs, qe - 1};
}

// ---------------------------------------------------------------- evaluation

StatusOr<json> Kpis::KpiQuery(const KpiDoc& doc, PeriodRange range, const std::string& dimension) {
  json q = doc.query;
  q["date_from"] = FormatDate(range.from);
  q["date_to"] = FormatDate(range.to);
  NS_ASSIGN_OR_RETURN(const KpiReducer* reducer, ReducerOf(doc));
  reducer->shape(q, doc.reduce);
  q.erase("breakdown");
  if (!dimension.empty()) {
    q["breakdown"] = dimension;
    q["breakdown_limit"] = 1000;
  }
  return q;
}

namespace {
// Runs a reducer (its typed operator) inside an exception boundary, as RunQuery does for
// the API: an operator's exception fails this evaluation, never the caller.
template <typename F>
auto Guarded(F&& run) -> decltype(run()) {
  try {
    return run();
  } catch (const std::exception& e) {
    return Internal(std::string("query failed: ") + e.what());
  }
}
}  // namespace

StatusOr<KpiDoc> Kpis::EnterRef(const std::string& project, int64_t id, KpiEvalScope& sc) {
  auto in_chain = std::find(sc.chain.begin(), sc.chain.end(), id);
  if (in_chain != sc.chain.end()) {
    std::string path;
    for (auto it = in_chain; it != sc.chain.end(); ++it) path += "k" + std::to_string(*it) + " -> ";
    return InvalidArgument("reduce.formula: KPIs refer to each other in a loop: " + path + "k" + std::to_string(id),
                           "reduce.formula");
  }
  if (++sc.evaluations > KpiEvalScope::kMaxEvaluations)
    return ResourceExhausted("reduce.formula: evaluating this KPI needs more than " +
                             std::to_string(KpiEvalScope::kMaxEvaluations) +
                             " evaluations of the KPIs its formula refers to; simplify the formulas");
  auto d = LoadDoc(project, id);
  if (!d.ok() && d.status().code() == StatusCode::kNotFound)
    return InvalidArgument("reduce.formula: no KPI k" + std::to_string(id) + " in this project", "reduce.formula");
  return d;
}

Status Kpis::CheckFormulaRefs(const std::string& project, int64_t id, const std::vector<int64_t>& refs) {
  // Depth-first over the stored formulas; `path` is the chain from `id`.
  std::set<int64_t> done;
  std::vector<int64_t> path{id};
  std::function<Status(int64_t)> visit = [&](int64_t k) -> Status {
    if (k == id) {
      std::string names;
      for (int64_t p : path) names += "k" + std::to_string(p) + " -> ";
      return InvalidArgument(
          "reduce.formula: KPIs would refer to each other in a loop: " + names + "k" + std::to_string(id),
          "reduce.formula");
    }
    if (!done.insert(k).second) return Status();
    auto d = LoadDoc(project, k);
    if (!d.ok()) {
      if (path.size() > 1) return Status();  // a bad reference further down is reported when that KPI is evaluated
      if (d.status().code() != StatusCode::kNotFound) return d.status();
      return InvalidArgument("reduce.formula: no KPI k" + std::to_string(k) + " in this project", "reduce.formula");
    }
    if (!d->IsFormula()) return Status();
    auto sub = FormulaRefs(d->Formula());
    if (!sub.ok()) return Status();
    path.push_back(k);
    for (int64_t r : *sub) NS_RETURN_IF_ERROR(visit(r));
    path.pop_back();
    return Status();
  };
  for (int64_t r : refs) NS_RETURN_IF_ERROR(visit(r));
  return Status();
}

namespace {
// The row id a definition given as JSON carries (Doc's answer), 0 without one.
int64_t IdOf(const json& doc) {
  return doc.contains("id") && doc["id"].is_number_integer() ? doc["id"].get<int64_t>() : 0;
}
}  // namespace

StatusOr<std::map<std::string, KpiParts>> Kpis::Evaluate(const std::string& project, const json& doc, PeriodRange range,
                                                         const std::string& dimension, KpiEvalScope* scope) {
  NS_ASSIGN_OR_RETURN(KpiDoc d, KpiDoc::Parse(doc));
  return Evaluate(project, IdOf(doc), d, range, dimension, scope);
}

StatusOr<DailySeries> Kpis::Daily(const std::string& project, const json& doc, PeriodRange range, KpiEvalScope* scope) {
  NS_ASSIGN_OR_RETURN(KpiDoc d, KpiDoc::Parse(doc));
  return Daily(project, IdOf(doc), d, range, scope);
}

StatusOr<std::map<std::string, KpiParts>> Kpis::Evaluate(const std::string& project, int64_t kpi_id, const KpiDoc& doc,
                                                         PeriodRange range, const std::string& dimension,
                                                         KpiEvalScope* scope) {
  std::map<std::string, KpiParts> out;
  if (doc.IsFormula()) {
    if (!dimension.empty()) return out;  // not decomposable by breakdown
    KpiEvalScope local;
    KpiEvalScope& sc = scope ? *scope : local;
    const std::string& f = doc.Formula();
    NS_ASSIGN_OR_RETURN(auto refs, FormulaRefs(f));
    const bool pushed = kpi_id != 0;
    if (pushed) sc.chain.push_back(kpi_id);
    std::map<int64_t, double> vals;
    Status st;
    for (int64_t id : refs) {
      std::string key = std::to_string(id) + "|" + std::to_string(range.from) + "|" + std::to_string(range.to);
      auto memo = sc.values.find(key);
      if (memo == sc.values.end()) {
        auto sub = EnterRef(project, id, sc);
        if (!sub.ok()) {
          st = sub.status();
          break;
        }
        auto parts = Evaluate(project, id, *sub, range, "", &sc);
        if (!parts.ok()) {
          st = parts.status();
          break;
        }
        memo = sc.values.emplace(key, std::move(parts).value()).first;
      }
      vals[id] = memo->second[""].Value();
    }
    if (pushed) sc.chain.pop_back();
    NS_RETURN_IF_ERROR(st);
    NS_ASSIGN_OR_RETURN(double v, EvalFormula(f, vals));
    out[""] = KpiParts{v, 0, false};
    return out;
  }
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(json q, KpiQuery(doc, range, dimension));
  NS_ASSIGN_OR_RETURN(const KpiReducer* reducer, ReducerOf(doc));
  NS_ASSIGN_OR_RETURN(KpiQueryInputs inputs, InputsOf(project));
  QueryScope snapshot(*p->store, p->tz, inputs.Options());
  auto parts = Guarded([&] { return reducer->reduce(q, doc.reduce, range, !dimension.empty(), snapshot.ctx()); });
  NS_RETURN_IF_ERROR(snapshot.status());
  return parts;
}

StatusOr<DailySeries> Kpis::Daily(const std::string& project, int64_t kpi_id, const KpiDoc& doc, PeriodRange range,
                                  KpiEvalScope* scope) {
  DailySeries s;
  s.first_day = range.from;
  size_t n = static_cast<size_t>(std::max(0, range.to - range.from + 1));
  s.values.assign(n, std::nan(""));
  if (n == 0) return s;
  if (doc.IsFormula()) {
    KpiEvalScope local;
    KpiEvalScope& sc = scope ? *scope : local;
    const std::string& f = doc.Formula();
    NS_ASSIGN_OR_RETURN(auto refs, FormulaRefs(f));
    const bool pushed = kpi_id != 0;
    if (pushed) sc.chain.push_back(kpi_id);
    std::map<int64_t, DailySeries> subs;
    Status st;
    for (int64_t id : refs) {
      std::string key = std::to_string(id) + "|" + std::to_string(range.from) + "|" + std::to_string(range.to);
      auto memo = sc.daily.find(key);
      if (memo == sc.daily.end()) {
        auto sub = EnterRef(project, id, sc);
        if (!sub.ok()) {
          st = sub.status();
          break;
        }
        auto ds = Daily(project, id, *sub, range, &sc);
        if (!ds.ok()) {
          st = ds.status();
          break;
        }
        memo = sc.daily.emplace(key, std::move(ds).value()).first;
      }
      subs[id] = memo->second;
    }
    if (pushed) sc.chain.pop_back();
    NS_RETURN_IF_ERROR(st);
    for (size_t i = 0; i < n; i++) {
      std::map<int64_t, double> vals;
      bool ok = true;
      for (auto& [id, ds] : subs) {
        vals[id] = ds.values[i];
        ok &= !std::isnan(ds.values[i]);
      }
      if (ok)
        if (auto v = EvalFormula(f, vals); v.ok()) s.values[i] = *v;
    }
    return s;
  }
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(const KpiReducer* reducer, ReducerOf(doc));
  if (reducer->daily != nullptr) {
    NS_ASSIGN_OR_RETURN(json q, KpiQuery(doc, range, ""));
    NS_ASSIGN_OR_RETURN(KpiQueryInputs inputs, InputsOf(project));
    QueryScope snapshot(*p->store, p->tz, inputs.Options());
    NS_RETURN_IF_ERROR(Guarded([&] { return reducer->daily(q, doc.reduce, range, snapshot.ctx(), &s); }));
    NS_RETURN_IF_ERROR(snapshot.status());
  } else {  // each day is its own range
    s.weights.assign(n, 0);
    for (size_t i = 0; i < n; i++) {
      int32_t d = range.from + static_cast<int32_t>(i);
      NS_ASSIGN_OR_RETURN(auto parts, Evaluate(project, kpi_id, doc, PeriodRange{d, d}));
      const KpiParts& kp = parts[""];
      // A sum is a value on every day (0 included); a ratio only where it has a denominator.
      s.weights[i] = kp.ratio ? kp.den : 1;
      if (!kp.ratio || kp.den > 0) s.values[i] = kp.Value();
    }
  }
  return s;
}

StatusOr<KpiQueryInputs> Kpis::InputsOf(const std::string& project) const {
  if (!inputs_) return KpiQueryInputs{};
  return inputs_(project);
}

StatusOr<std::string> Kpis::Explain(const std::string& project, const KpiDoc& doc, PeriodRange range) {
  if (doc.IsFormula()) return std::string();
  NS_ASSIGN_OR_RETURN(const KpiReducer* reducer, ReducerOf(doc));
  if (reducer->explain == nullptr) return std::string();
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(json q, KpiQuery(doc, range, ""));
  NS_ASSIGN_OR_RETURN(KpiQueryInputs inputs, InputsOf(project));
  QueryScope snapshot(*p->store, p->tz, inputs.Options());
  NS_ASSIGN_OR_RETURN(std::string line,
                      Guarded([&] { return reducer->explain(q, doc.reduce, range, snapshot.ctx()); }));
  NS_RETURN_IF_ERROR(snapshot.status());
  return line;
}

StatusOr<json> Kpis::FunnelSteps(const std::string& project, const KpiDoc& doc, PeriodRange range) {
  if (doc.IsFormula() || doc.QueryKind() != "funnel") return json::array();
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(json query, KpiQuery(doc, range, ""));
  NS_ASSIGN_OR_RETURN(FunnelQuery q, ParseFunnelQuery(query));
  QueryScope scope(*p->store, p->tz);
  NS_ASSIGN_OR_RETURN(FunnelResult res,
                      Guarded([&] { return RunFunnel(q, scope.ctx().snap, scope.ctx().tz, scope.ctx().namer); }));
  NS_RETURN_IF_ERROR(scope.status());
  json out = json::array();
  const std::vector<FunnelStepResult>& steps = res.steps;
  for (size_t k = 1; k < steps.size(); k++) {
    const std::string& from = steps[k - 1].label.empty() ? steps[k - 1].event : steps[k - 1].label;
    const std::string& to = steps[k].label.empty() ? steps[k].event : steps[k].label;
    out.push_back({{"step", k + 1},
                   {"from", from},
                   {"to", to},
                   {"from_count", steps[k - 1].count},
                   {"to_count", steps[k].count},
                   {"conversion", steps[k].conversion_from_previous}});
  }
  return out;
}

// ---------------------------------------------------------------- storage

StatusOr<KpiDoc> Kpis::LoadDoc(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT doc FROM kpis WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no KPI " + std::to_string(id));
  return ParseStored<KpiDoc>(id, rows[0].Str(0));
}

StatusOr<KpiRow> Kpis::LoadRow(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT doc, state, created_at, updated_at FROM kpis WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no KPI " + std::to_string(id));
  KpiRow k;
  k.id = id;
  k.created_at = rows[0].Int(2);
  k.updated_at = rows[0].Int(3);
  NS_ASSIGN_OR_RETURN(k.doc, ParseStored<KpiDoc>(id, rows[0].Str(0)));
  if (!rows[0].IsNull(1)) {
    NS_ASSIGN_OR_RETURN(k.state, ParseStored<KpiState>(id, rows[0].Str(1)));
  }
  return k;
}

StatusOr<json> Kpis::Doc(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(KpiDoc doc, LoadDoc(project, id));
  json d = doc.ToJson();
  d["id"] = id;
  return d;
}

StatusOr<int64_t> Kpis::Create(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(json d, ValidateKpi(body, nullptr));
  NS_ASSIGN_OR_RETURN(std::string text, StoredText<KpiDoc>(d));
  if (d["scenario_id"].is_number_integer()) {
    NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT 1 FROM scenarios WHERE id = ? AND project = ?",
                                             {d["scenario_id"].get<int64_t>(), who.project}));
    if (rows.empty()) return InvalidArgument("scenario_id: no scenario " + d["scenario_id"].dump(), "scenario_id");
  }
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    int64_t now = NowMs();
    NS_ASSIGN_OR_RETURN(
        id, db_.Insert("INSERT INTO kpis(project, scenario_id, doc, created_at, updated_at) VALUES(?, ?, ?, ?, ?)",
                       {who.project,
                        d["scenario_id"].is_null() ? SqlValue(nullptr) : SqlValue(d["scenario_id"].get<int64_t>()),
                        text, now, now}));
    // After the insert, in the transaction: a reused id could close a loop with a formula that
    // still names a deleted KPI.
    if (d["reduce"].contains("formula")) {
      NS_ASSIGN_OR_RETURN(auto refs, FormulaRefs(d["reduce"]["formula"].get<std::string>()));
      NS_RETURN_IF_ERROR(CheckFormulaRefs(who.project, id, refs));
    }
    return Audit(db_, who, "create", "kpi", id, nullptr, d);
  }));
  return id;
}

Status Kpis::Patch(const Principal& who, int64_t id, const json& body) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(KpiDoc stored, LoadDoc(who.project, id));
    json before = stored.ToJson();
    NS_ASSIGN_OR_RETURN(json d, ValidateKpi(body, &before));
    NS_ASSIGN_OR_RETURN(std::string text, StoredText<KpiDoc>(d));
    if (d["reduce"].contains("formula")) {
      NS_ASSIGN_OR_RETURN(auto refs, FormulaRefs(d["reduce"]["formula"].get<std::string>()));
      NS_RETURN_IF_ERROR(CheckFormulaRefs(who.project, id, refs));
    }
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE kpis SET doc = ?, scenario_id = ?, updated_at = ? WHERE id = ?",
                 {text, d["scenario_id"].is_null() ? SqlValue(nullptr) : SqlValue(d["scenario_id"].get<int64_t>()),
                  NowMs(), id}));
    return Audit(db_, who, "update", "kpi", id, before, d);
  });
}

Status Kpis::Delete(const Principal& who, int64_t id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(json before, Doc(who.project, id));
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM kpis WHERE id = ?", {id}));
    return Audit(db_, who, "delete", "kpi", id, before, nullptr);
  });
}

StatusOr<json> Kpis::Refresh(const std::string& project, int64_t id, std::optional<int32_t> today_opt) {
  NS_ASSIGN_OR_RETURN(KpiDoc doc, LoadDoc(project, id));
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const int32_t real_today = p->tz.LocalDay(NowMs());
  const int32_t today = today_opt.value_or(real_today);
  NS_ASSIGN_OR_RETURN(PeriodRange period, CurrentPeriod(doc.period, today));
  // Actual: the period so far (live: today's events count as they arrive).
  int32_t as_of = std::min(period.to, today);
  KpiState state;
  state.period_from = FormatDate(period.from);
  state.period_to = FormatDate(period.to);
  state.as_of = FormatDate(as_of);
  const bool higher = doc.higher_is_better;
  KpiEvalScope scope;
  if (as_of < period.from) {
    state.status = "not_started";
  } else {
    // An average (or last/min/max) of daily values would be dragged down by today's partial
    // day: those use complete days only, once the period has one.
    int32_t value_to = as_of;
    const json& red = doc.reduce;
    if (red.contains("op") && red["op"] != "sum" && as_of == real_today && as_of > period.from) value_to = as_of - 1;
    if (value_to != as_of) state.value_through = FormatDate(value_to);
    NS_ASSIGN_OR_RETURN(auto parts, Evaluate(project, id, doc, PeriodRange{period.from, value_to}, "", &scope));
    const KpiParts& kp = parts[""];
    state.actual = kp.Value();
    if (kp.ratio) state.numerator = kp.num, state.denominator = kp.den;
  }
  state.target = doc.target;
  state.higher_is_better = higher;
  if (state.actual && doc.target.is_number()) {
    double rate = AchievementRate(*state.actual, doc.target.get<double>(), higher);
    state.achievement_rate = rate;
    state.light = LightFor(rate, doc.thresholds);
  }
  // Daily values: the period so far and 5 weeks before it (weekday pattern for the
  // forecast, trailing window for anomaly alerts). Days after today are unknown.
  int32_t last_complete = std::min(as_of, real_today - 1);
  int32_t daily_from = std::min(period.from, last_complete - 34);
  DailySeries daily;
  if (last_complete >= daily_from) {
    NS_ASSIGN_OR_RETURN(daily, Daily(project, id, doc, PeriodRange{daily_from, last_complete}, &scope));
  }
  for (size_t i = 0; i < daily.values.size(); i++) {
    KpiDailyValue row;
    row.date = FormatDate(daily.first_day + static_cast<int32_t>(i));
    if (!std::isnan(daily.values[i])) row.value = daily.values[i];
    if (!daily.weights.empty()) row.weight = daily.weights[i];
    state.daily.push_back(std::move(row));
  }
  // Forecast of the period-end value.
  if (!daily.values.empty() && period.to >= as_of && doc.target.is_number()) {
    ForecastInput fi;
    fi.observed = daily;
    fi.period_first_day = period.from;
    fi.period_last_day = period.to;
    fi.aggregate = AggregateOf(doc);
    fi.target = doc.target.get<double>();
    fi.higher_is_better = higher;
    auto f = ForecastPeriodEnd(fi);
    if (f.ok()) {
      auto num = [](double x) { return std::isfinite(x) ? json(x) : json(); };
      state.forecast = {{"projected", num(f->projected)},
                        {"lower", num(f->lower)},
                        {"upper", num(f->upper)},
                        {"interval", fi.interval},
                        {"prob_reach_target", num(f->prob_reach_target)},
                        {"days_observed", f->days_observed},
                        {"days_remaining", f->days_remaining},
                        {"method", f->method},
                        {"summary", f->summary},
                        {"period_end", FormatDate(period.to)}};
    } else {
      state.forecast = {{"error", f.status().message()}};
    }
  }
  state.refreshed_at = NowMs();
  // Keep the alert engine's hint (written separately) across refreshes.
  NS_ASSIGN_OR_RETURN(auto old, db_.Query("SELECT state FROM kpis WHERE id = ?", {id}));
  if (!old.empty() && !old[0].IsNull(0)) {
    NS_ASSIGN_OR_RETURN(KpiState o, ParseStored<KpiState>(id, old[0].Str(0)));
    state.auto_reason = o.auto_reason;
  }
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(InsertSnapshot(id, NowMs(), doc, state));
    return db_.Exec("UPDATE kpis SET state = ? WHERE id = ?", {state.ToJson().dump(), id});
  }));
  return Get(project, id);
}

Status Kpis::BackfillSnapshot(const std::string& project, int64_t id, int32_t day, int64_t taken_at_ms) {
  NS_ASSIGN_OR_RETURN(KpiDoc doc, LoadDoc(project, id));
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  if (day >= p->tz.LocalDay(NowMs()))
    return InvalidArgument("day: " + FormatDate(day) + " is not before today; today's snapshot is a refresh", "day");
  NS_ASSIGN_OR_RETURN(PeriodRange period, CurrentPeriod(doc.period, day));
  // As the daily job would have recorded it that day: the period as of `day`, complete days.
  const int32_t as_of = std::min(period.to, day);
  KpiState state;
  state.period_from = FormatDate(period.from);
  state.period_to = FormatDate(period.to);
  state.as_of = FormatDate(as_of);
  if (as_of >= period.from) {
    KpiEvalScope scope;
    NS_ASSIGN_OR_RETURN(auto parts, Evaluate(project, id, doc, PeriodRange{period.from, as_of}, "", &scope));
    const KpiParts& kp = parts[""];
    state.actual = kp.Value();
    if (kp.ratio) state.numerator = kp.num, state.denominator = kp.den;
    if (doc.target.is_number()) {
      state.achievement_rate = AchievementRate(*state.actual, doc.target.get<double>(), doc.higher_is_better);
      state.light = LightFor(*state.achievement_rate, doc.thresholds);
    }
  }
  return InsertSnapshot(id, taken_at_ms, doc, state);
}

Status Kpis::InsertSnapshot(int64_t id, int64_t taken_at_ms, const KpiDoc& doc, const KpiState& state) {
  const std::string detail = KpiSnapshotDetail{state.forecast, state.numerator, state.denominator}.ToJson().dump();
  auto opt_num = [](const std::optional<double>& x) -> SqlValue {
    // NaN reads as no value, as it is answered (null).
    return x && !std::isnan(*x) ? SqlValue(*x) : SqlValue(nullptr);
  };
  return db_.Exec(
      "INSERT INTO kpi_snapshots(kpi_id, taken_at, as_of, period_from, period_to, actual, target, achievement_rate, "
      "light, detail) "
      "VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
      {id, taken_at_ms, state.as_of, state.period_from, state.period_to, opt_num(state.actual),
       doc.target.is_number() ? SqlValue(doc.target.get<double>()) : SqlValue(nullptr), opt_num(state.achievement_rate),
       state.light ? SqlValue(*state.light) : SqlValue(nullptr), detail});
}

StatusOr<json> Kpis::Get(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(KpiRow k, LoadRow(project, id));
  if (!k.state) return Refresh(project, id);
  json out = k.doc.ToJson();
  json state = k.state->ToJson();
  out["id"] = id;
  out["created_at"] = k.created_at;
  out["updated_at"] = k.updated_at;
  for (auto it = state.begin(); it != state.end(); ++it)
    if (it.key() != "target" && it.key() != "direction") out[it.key()] = it.value();
  NS_ASSIGN_OR_RETURN(
      auto hist, db_.Query("SELECT taken_at, as_of, period_from, period_to, actual, target, achievement_rate, light "
                           "FROM kpi_snapshots WHERE kpi_id = ? ORDER BY taken_at DESC, id DESC LIMIT 400",
                           {id}));
  json h = json::array();
  for (auto it = hist.rbegin(); it != hist.rend(); ++it) {
    const SqlRow& r = *it;
    auto opt = [&](size_t i) { return r.IsNull(i) ? json() : json(r.Real(i)); };
    h.push_back({{"taken_at", r.Int(0)},
                 {"as_of", r.Str(1)},
                 {"period_from", r.Str(2)},
                 {"period_to", r.Str(3)},
                 {"actual", opt(4)},
                 {"target", opt(5)},
                 {"achievement_rate", opt(6)},
                 {"light", r.IsNull(7) ? json() : json(r.Str(7))}});
  }
  out["history"] = h;
  return out;
}

StatusOr<json> Kpis::List(const std::string& project, std::optional<int64_t> scenario_id) {
  StatusOr<std::vector<SqlRow>> rows =
      scenario_id
          ? db_.Query("SELECT id FROM kpis WHERE project = ? AND scenario_id = ? ORDER BY id", {project, *scenario_id})
          : db_.Query("SELECT id FROM kpis WHERE project = ? ORDER BY id", {project});
  if (!rows.ok()) return rows.status();
  json out = json::array();
  for (auto& r : *rows) {
    // One KPI that cannot be computed must not break the list: it is listed with its error.
    auto k = Get(project, r.Int(0));
    if (!k.ok()) {
      auto d = Doc(project, r.Int(0));
      json item = d.ok() ? *d : json{{"id", r.Int(0)}};
      item["error"] = {{"code", std::string(k.status().ErrorName())}, {"message", k.status().message()}};
      item["light"] = nullptr;
      out.push_back(std::move(item));
      continue;
    }
    k->erase("history");
    k->erase("daily");
    out.push_back(std::move(k).value());
  }
  return out;
}

}  // namespace ns
