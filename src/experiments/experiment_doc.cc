// Validation of the experiment document; the fields and their defaults are in
// docs/experiments.md, "The experiment".
#include "experiments/experiment_doc.h"

#include <cmath>
#include <set>

#include "core/time_zone.h"
#include "query/json_fields.h"
#include "query/query_spec.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr size_t kMaxText = 2000;
constexpr size_t kMaxVariants = 20;
constexpr size_t kMaxMetrics = 20;
constexpr size_t kMaxSteps = 20;

std::string Field(const std::string& prefix, const char* key) { return prefix.empty() ? key : prefix + "." + key; }

StatusOr<std::string> Text(const json& j, const char* key, const std::string& prefix, bool required,
                           size_t max = kMaxText) {
  NS_ASSIGN_OR_RETURN(std::string s, GetString(j, key, prefix, required));
  if (required && s.empty()) return InvalidArgument(Field(prefix, key) + ": must not be empty", Field(prefix, key));
  if (s.size() > max)
    return InvalidArgument(Field(prefix, key) + ": longer than " + std::to_string(max) + " bytes", Field(prefix, key));
  return s;
}

// A finite number in [lo, hi] (exclusive bounds where said), or def when missing.
StatusOr<double> Number(const json& j, const char* key, const std::string& prefix, double def, double lo, double hi,
                        bool lo_open, bool hi_open) {
  const std::string field = Field(prefix, key);
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) return InvalidArgument(field + ": expected a number, got " + TypeName(*it), field);
  double v = it->get<double>();
  if (!std::isfinite(v) || (lo_open ? v <= lo : v < lo) || (hi_open ? v >= hi : v > hi)) {
    auto fmt = [](double x) {
      json n = x;
      return n.dump();
    };
    return InvalidArgument(field + ": " + it->dump() + " is out of range " + (lo_open ? "(" : "[") + fmt(lo) + ", " +
                               fmt(hi) + (hi_open ? ")" : "]"),
                           field);
  }
  return v;
}

// One of `allowed`, or def when missing.
StatusOr<std::string> Choice(const json& j, const char* key, const std::string& prefix, const std::string& def,
                             std::initializer_list<const char*> allowed) {
  NS_ASSIGN_OR_RETURN(std::string s, GetString(j, key, prefix, false, def));
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return s;
    list += list.empty() ? std::string("'") + a + "'" : std::string(", '") + a + "'";
  }
  return InvalidArgument(Field(prefix, key) + ": expected one of " + list + ", got '" + s + "'", Field(prefix, key));
}

// A metric's event name: any stored event, "$any" where allowed, never the exposure event.
StatusOr<std::string> EventName(const json& j, const char* key, const std::string& prefix, bool any_ok) {
  NS_ASSIGN_OR_RETURN(std::string e, Text(j, key, prefix, true, 200));
  const std::string field = Field(prefix, key);
  if (e == kExposureEvent)
    return InvalidArgument(field + ": the exposure event " + std::string(kExposureEvent) + " is not a metric", field);
  if (!any_ok && e == kAnyEvent) return InvalidArgument(field + ": must name one event, not $any", field);
  return e;
}

StatusOr<PersonValueSpec> ParseValue(const json& j, const std::string& prefix) {
  if (!j.is_object()) return InvalidArgument(prefix + ": expected an object", prefix);
  NS_RETURN_IF_ERROR(CheckFields(j, prefix, {"event", "math", "property"}));
  PersonValueSpec v;
  NS_ASSIGN_OR_RETURN(v.event, EventName(j, "event", prefix, true));
  NS_ASSIGN_OR_RETURN(std::string math, Choice(j, "math", prefix, "count", {"count", "sum"}));
  v.sum = math == "sum";
  if (v.sum) {
    NS_ASSIGN_OR_RETURN(v.property, Text(j, "property", prefix, true, 200));
  } else if (j.contains("property") && !j["property"].is_null()) {
    return InvalidArgument(prefix + ".property: only with \"math\": \"sum\"", prefix + ".property");
  }
  return v;
}

json ValueJson(const PersonValueSpec& v) {
  json j{{"event", v.event}, {"math", v.sum ? "sum" : "count"}};
  if (v.sum) j["property"] = v.property;
  return j;
}

StatusOr<ExperimentMetric> ParseMetric(const json& j, const std::string& prefix) {
  if (!j.is_object()) return InvalidArgument(prefix + ": expected an object", prefix);
  NS_ASSIGN_OR_RETURN(std::string type, Choice(j, "type", prefix, "", {"funnel", "mean", "ratio", "retention"}));
  ExperimentMetric m;
  NS_ASSIGN_OR_RETURN(m.name, Text(j, "name", prefix, false, 200));
  auto window = [&]() -> Status {
    NS_ASSIGN_OR_RETURN(int64_t h, GetInt(j, "window_hours", prefix, 0, 0, 24 * 366));
    m.spec.window_ms = h * 3'600'000;
    return Status::OK();
  };
  if (type == "funnel") {
    NS_RETURN_IF_ERROR(CheckFields(j, prefix, {"name", "type", "steps", "window_hours"}));
    m.spec.type = ExperimentMetricType::kFunnel;
    const std::string field = prefix + ".steps";
    auto it = j.find("steps");
    if (it == j.end() || !it->is_array() || it->empty() || it->size() > kMaxSteps)
      return InvalidArgument(field + ": expected 1 to " + std::to_string(kMaxSteps) + " steps", field);
    for (size_t i = 0; i < it->size(); i++) {
      const std::string sp = field + "[" + std::to_string(i) + "]";
      const json& s = (*it)[i];
      // A step is an event name or {"event": name}.
      json obj = s.is_string() ? json{{"event", s}} : s;
      if (!obj.is_object()) return InvalidArgument(sp + ": expected an event name", sp);
      NS_RETURN_IF_ERROR(CheckFields(obj, sp, {"event"}));
      NS_ASSIGN_OR_RETURN(std::string e, EventName(obj, "event", sp, false));
      m.spec.steps.push_back(e);
    }
    NS_RETURN_IF_ERROR(window());
    if (m.name.empty()) {
      for (const std::string& s : m.spec.steps) m.name += (m.name.empty() ? "" : " → ") + s;
      m.name += " conversion";
    }
  } else if (type == "mean") {
    NS_RETURN_IF_ERROR(CheckFields(j, prefix, {"name", "type", "event", "math", "property", "window_hours"}));
    m.spec.type = ExperimentMetricType::kMean;
    json v = json::object();
    for (const char* k : {"event", "math", "property"})
      if (j.contains(k)) v[k] = j[k];
    NS_ASSIGN_OR_RETURN(m.spec.value, ParseValue(v, prefix));
    NS_RETURN_IF_ERROR(window());
    if (m.name.empty())
      m.name = m.spec.value.sum ? m.spec.value.property + " per person" : m.spec.value.event + " per person";
  } else if (type == "ratio") {
    NS_RETURN_IF_ERROR(CheckFields(j, prefix, {"name", "type", "numerator", "denominator", "window_hours"}));
    m.spec.type = ExperimentMetricType::kRatio;
    if (!j.contains("numerator")) return InvalidArgument(prefix + ".numerator: required", prefix + ".numerator");
    if (!j.contains("denominator")) return InvalidArgument(prefix + ".denominator: required", prefix + ".denominator");
    NS_ASSIGN_OR_RETURN(m.spec.value, ParseValue(j["numerator"], prefix + ".numerator"));
    NS_ASSIGN_OR_RETURN(m.spec.denominator, ParseValue(j["denominator"], prefix + ".denominator"));
    NS_RETURN_IF_ERROR(window());
    if (m.name.empty()) {
      auto label = [](const PersonValueSpec& v) { return v.sum ? v.event + "." + v.property : v.event; };
      m.name = label(m.spec.value) + " / " + label(m.spec.denominator);
    }
  } else {
    NS_RETURN_IF_ERROR(CheckFields(j, prefix, {"name", "type", "event", "day"}));
    m.spec.type = ExperimentMetricType::kRetention;
    NS_ASSIGN_OR_RETURN(m.spec.retention_event, EventName(j, "event", prefix, true));
    NS_ASSIGN_OR_RETURN(int64_t day, GetInt(j, "day", prefix, 1, 0, 365));
    m.spec.retention_day = static_cast<int>(day);
    if (m.name.empty()) m.name = "day " + std::to_string(day) + " retention";
  }
  return m;
}

StatusOr<std::vector<ExperimentMetric>> ParseMetrics(const json& j, const char* key) {
  std::vector<ExperimentMetric> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array()) return InvalidArgument(std::string(key) + ": expected an array of metrics", key);
  if (it->size() > kMaxMetrics)
    return InvalidArgument(std::string(key) + ": at most " + std::to_string(kMaxMetrics) + " metrics", key);
  for (size_t i = 0; i < it->size(); i++) {
    NS_ASSIGN_OR_RETURN(ExperimentMetric m, ParseMetric((*it)[i], std::string(key) + "[" + std::to_string(i) + "]"));
    out.push_back(std::move(m));
  }
  return out;
}

StatusOr<std::optional<int32_t>> OptionalDate(const json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return std::optional<int32_t>();
  if (!it->is_string()) return InvalidArgument(std::string(key) + ": expected a date YYYY-MM-DD", key);
  NS_ASSIGN_OR_RETURN(int32_t d, ParseDate(it->get<std::string>(), key));
  return std::optional<int32_t>(d);
}

Status ParseAnalysis(const json& j, ExperimentDoc& d) {
  auto it = j.find("analysis");
  if (it == j.end() || it->is_null()) return Status::OK();
  const json& a = *it;
  const std::string p = "analysis";
  if (!a.is_object()) return InvalidArgument("analysis: expected an object", p);
  NS_RETURN_IF_ERROR(CheckFields(a, p,
                                 {"method", "difference", "alternative", "alpha", "correction", "sequential_tuning",
                                  "prior", "cuped_days", "winsorize_percentile"}));
  stats::AnalysisOptions& o = d.analysis;
  NS_ASSIGN_OR_RETURN(std::string method,
                      Choice(a, "method", p, "frequentist", {"frequentist", "sequential", "bayesian"}));
  o.method = method == "bayesian"     ? stats::AnalysisMethod::kBayesian
             : method == "sequential" ? stats::AnalysisMethod::kSequential
                                      : stats::AnalysisMethod::kFrequentist;
  NS_ASSIGN_OR_RETURN(std::string diff, Choice(a, "difference", p, "relative", {"relative", "absolute"}));
  o.difference = diff == "absolute" ? stats::DifferenceType::kAbsolute : stats::DifferenceType::kRelative;
  NS_ASSIGN_OR_RETURN(std::string alt, Choice(a, "alternative", p, "two_sided", {"two_sided", "greater", "less"}));
  o.alternative = alt == "greater" ? stats::Alternative::kGreater
                  : alt == "less"  ? stats::Alternative::kLess
                                   : stats::Alternative::kTwoSided;
  NS_ASSIGN_OR_RETURN(o.alpha, Number(a, "alpha", p, 0.05, 0, 0.5, true, false));
  NS_ASSIGN_OR_RETURN(std::string corr, Choice(a, "correction", p, "none", {"none", "holm", "bonferroni"}));
  o.correction = corr == "holm"         ? stats::Correction::kHolm
                 : corr == "bonferroni" ? stats::Correction::kBonferroni
                                        : stats::Correction::kNone;
  NS_ASSIGN_OR_RETURN(o.sequential_tuning, Number(a, "sequential_tuning", p, 5000, 0, 1e12, true, false));
  if (auto pr = a.find("prior"); pr != a.end() && !pr->is_null()) {
    const std::string pp = "analysis.prior";
    if (!pr->is_object()) return InvalidArgument(pp + ": expected an object", pp);
    NS_RETURN_IF_ERROR(CheckFields(*pr, pp, {"proper", "mean", "variance"}));
    NS_ASSIGN_OR_RETURN(o.prior_proper, GetBool(*pr, "proper", pp, false));
    NS_ASSIGN_OR_RETURN(o.prior_mean, Number(*pr, "mean", pp, 0, -1e12, 1e12, false, false));
    NS_ASSIGN_OR_RETURN(o.prior_variance, Number(*pr, "variance", pp, 1, 0, 1e12, true, false));
  }
  NS_ASSIGN_OR_RETURN(int64_t cuped, GetInt(a, "cuped_days", p, 0, 0, 365));
  d.cuped_days = static_cast<int>(cuped);
  NS_ASSIGN_OR_RETURN(o.winsorize_percentile, Number(a, "winsorize_percentile", p, 0, 0, 1, false, true));
  return Status::OK();
}

const char* MethodName(stats::AnalysisMethod m) {
  switch (m) {
    case stats::AnalysisMethod::kBayesian: return "bayesian";
    case stats::AnalysisMethod::kSequential: return "sequential";
    default: return "frequentist";
  }
}

}  // namespace

StatusOr<ExperimentDoc> ExperimentDoc::Parse(const json& j) {
  if (!j.is_object()) return InvalidArgument("expected a JSON object", "");
  NS_RETURN_IF_ERROR(CheckFields(j, "",
                                 {"name", "hypothesis", "owner", "description", "flag_key", "variants", "start_date",
                                  "end_date", "status", "primary_metrics", "secondary_metrics", "guardrail_metrics",
                                  "minimum_detectable_effect", "power", "analysis", "scenario_id"}));
  ExperimentDoc d;
  NS_ASSIGN_OR_RETURN(d.name, Text(j, "name", "", true, 200));
  NS_ASSIGN_OR_RETURN(d.hypothesis, Text(j, "hypothesis", "", false));
  NS_ASSIGN_OR_RETURN(d.owner, Text(j, "owner", "", false, 200));
  NS_ASSIGN_OR_RETURN(d.description, Text(j, "description", "", false));
  NS_ASSIGN_OR_RETURN(d.flag_key, Text(j, "flag_key", "", true, 400));
  // Variants: default control/test, equal weights.
  auto vit = j.find("variants");
  if (vit == j.end() || vit->is_null()) {
    d.variants = {{"control", 1}, {"test", 1}};
  } else {
    if (!vit->is_array() || vit->size() < 2 || vit->size() > kMaxVariants)
      return InvalidArgument("variants: expected 2 to " + std::to_string(kMaxVariants) + " variants, control first",
                             "variants");
    std::set<std::string> keys;
    for (size_t i = 0; i < vit->size(); i++) {
      const std::string p = "variants[" + std::to_string(i) + "]";
      json v = (*vit)[i].is_string() ? json{{"key", (*vit)[i]}} : (*vit)[i];
      if (!v.is_object()) return InvalidArgument(p + ": expected {\"key\", \"weight\"}", p);
      NS_RETURN_IF_ERROR(CheckFields(v, p, {"key", "weight"}));
      ExperimentVariant ev;
      NS_ASSIGN_OR_RETURN(ev.key, Text(v, "key", p, true, 200));
      NS_ASSIGN_OR_RETURN(ev.weight, Number(v, "weight", p, 1, 0, 1e9, true, false));
      if (!keys.insert(ev.key).second) return InvalidArgument(p + ".key: '" + ev.key + "' is given twice", p + ".key");
      d.variants.push_back(ev);
    }
  }
  NS_ASSIGN_OR_RETURN(d.start_day, OptionalDate(j, "start_date"));
  NS_ASSIGN_OR_RETURN(d.end_day, OptionalDate(j, "end_date"));
  if (d.end_day && !d.start_day) return InvalidArgument("end_date: needs a start_date", "end_date");
  if (d.end_day && *d.end_day < *d.start_day) return InvalidArgument("end_date: before start_date", "end_date");
  if (d.end_day && *d.end_day - *d.start_day > 3660)
    return InvalidArgument("end_date: an experiment lasts at most 10 years", "end_date");
  NS_ASSIGN_OR_RETURN(d.status, Choice(j, "status", "", "draft", {"draft", "running", "stopped"}));
  if (d.status != "draft" && !d.start_day)
    return InvalidArgument("start_date: required once the experiment is " + d.status, "start_date");
  NS_ASSIGN_OR_RETURN(d.primary_metrics, ParseMetrics(j, "primary_metrics"));
  NS_ASSIGN_OR_RETURN(d.secondary_metrics, ParseMetrics(j, "secondary_metrics"));
  NS_ASSIGN_OR_RETURN(d.guardrail_metrics, ParseMetrics(j, "guardrail_metrics"));
  NS_ASSIGN_OR_RETURN(d.minimum_detectable_effect,
                      Number(j, "minimum_detectable_effect", "", 0.05, 0, 10, true, false));
  NS_ASSIGN_OR_RETURN(d.power, Number(j, "power", "", 0.8, 0, 1, true, true));
  NS_RETURN_IF_ERROR(ParseAnalysis(j, d));
  if (auto it = j.find("scenario_id"); it != j.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() <= 0)
      return InvalidArgument("scenario_id: expected a scenario id or null", "scenario_id");
    d.scenario_id = it->get<int64_t>();
  }
  return d;
}

json MetricJson(const ExperimentMetric& m) {
  const ExperimentMetricSpec& s = m.spec;
  json j{{"name", m.name}};
  switch (s.type) {
    case ExperimentMetricType::kFunnel:
      j["type"] = "funnel";
      j["steps"] = s.steps;
      j["window_hours"] = s.window_ms / 3'600'000;
      break;
    case ExperimentMetricType::kMean:
      j["type"] = "mean";
      j.update(ValueJson(s.value));
      j["window_hours"] = s.window_ms / 3'600'000;
      break;
    case ExperimentMetricType::kRatio:
      j["type"] = "ratio";
      j["numerator"] = ValueJson(s.value);
      j["denominator"] = ValueJson(s.denominator);
      j["window_hours"] = s.window_ms / 3'600'000;
      break;
    case ExperimentMetricType::kRetention:
      j["type"] = "retention";
      j["event"] = s.retention_event;
      j["day"] = s.retention_day;
      break;
  }
  return j;
}

json ExperimentDoc::ToJson() const {
  json vs = json::array();
  for (const auto& v : variants) vs.push_back({{"key", v.key}, {"weight", v.weight}});
  auto metrics = [](const std::vector<ExperimentMetric>& ms) {
    json a = json::array();
    for (const auto& m : ms) a.push_back(MetricJson(m));
    return a;
  };
  const stats::AnalysisOptions& o = analysis;
  json an{{"method", MethodName(o.method)},
          {"difference", o.difference == stats::DifferenceType::kAbsolute ? "absolute" : "relative"},
          {"alternative", o.alternative == stats::Alternative::kGreater ? "greater"
                          : o.alternative == stats::Alternative::kLess  ? "less"
                                                                        : "two_sided"},
          {"alpha", o.alpha},
          {"correction", o.correction == stats::Correction::kHolm         ? "holm"
                         : o.correction == stats::Correction::kBonferroni ? "bonferroni"
                                                                          : "none"},
          {"sequential_tuning", o.sequential_tuning},
          {"prior", {{"proper", o.prior_proper}, {"mean", o.prior_mean}, {"variance", o.prior_variance}}},
          {"cuped_days", cuped_days},
          {"winsorize_percentile", o.winsorize_percentile}};
  return json{{"name", name},
              {"hypothesis", hypothesis},
              {"owner", owner},
              {"description", description},
              {"flag_key", flag_key},
              {"variants", vs},
              {"start_date", start_day ? json(FormatDate(*start_day)) : json()},
              {"end_date", end_day ? json(FormatDate(*end_day)) : json()},
              {"status", status},
              {"primary_metrics", metrics(primary_metrics)},
              {"secondary_metrics", metrics(secondary_metrics)},
              {"guardrail_metrics", metrics(guardrail_metrics)},
              {"minimum_detectable_effect", minimum_detectable_effect},
              {"power", power},
              {"analysis", an},
              {"scenario_id", scenario_id ? json(*scenario_id) : json()}};
}

}  // namespace ns
