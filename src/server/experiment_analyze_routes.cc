// The experiment calculator over HTTP: parse and validate the body (every error names its
// field), run the stats engine, answer JSON. No state, no project data: only the caller's
// numbers, so any reading principal may use it.
#include "server/experiment_analyze_routes.h"

#include <cmath>
#include <string>

#include "query/json_fields.h"
#include "server/route_util.h"

namespace ns {

using nlohmann::json;

namespace {

std::string Join(const std::string& prefix, const char* key) { return prefix.empty() ? key : prefix + "." + key; }

// A finite number field; `present` tells whether it was there (null counts as absent).
StatusOr<double> GetNumber(const json& j, const char* key, const std::string& prefix, double def,
                           bool* present = nullptr) {
  std::string field = Join(prefix, key);
  auto it = j.find(key);
  if (present) *present = it != j.end() && !it->is_null();
  if (it == j.end() || it->is_null()) return def;
  if (!it->is_number()) return InvalidArgument(field + ": expected a number, got " + TypeName(*it), field);
  double v = it->get<double>();
  if (!std::isfinite(v)) return InvalidArgument(field + ": expected a finite number", field);
  return v;
}

// One of `names` (the enum's values in order), or `def` when absent.
template <typename E>
StatusOr<E> GetChoice(const json& j, const char* key, std::initializer_list<const char*> names, E def) {
  NS_ASSIGN_OR_RETURN(std::string s, GetString(j, key, "", false));
  if (s.empty()) return def;
  int i = 0;
  std::string list;
  for (const char* n : names) {
    if (s == n) return static_cast<E>(i);
    list += (i ? ", " : "") + std::string(n);
    i++;
  }
  return InvalidArgument(std::string(key) + ": '" + s + "' is not one of " + list, key);
}

constexpr std::initializer_list<const char*> kMetrics = {"mean", "proportion", "ratio"};
constexpr std::initializer_list<const char*> kDifferences = {"relative", "absolute"};
constexpr std::initializer_list<const char*> kMethods = {"frequentist", "sequential", "bayesian"};
constexpr std::initializer_list<const char*> kAlternatives = {"two_sided", "greater", "less"};
constexpr std::initializer_list<const char*> kCorrections = {"none", "holm", "bonferroni"};

template <typename E>
const char* Name(std::initializer_list<const char*> names, E e) {
  return names.begin()[static_cast<int>(e)];
}

// The engine's messages leave the field to Status::field(); the API's read "field: message".
Status WithFieldPrefix(const Status& s) {
  if (s.field().empty()) return s;
  return Status(s.code(), s.field() + ": " + s.message(), s.field());
}

json Number(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// The CUPED fields of a variant; any of them present means the variant has a pre window.
constexpr const char* kPreFields[] = {"pre_sum",
                                      "pre_sum_squares",
                                      "main_pre_sum_product",
                                      "pre_denominator_sum",
                                      "pre_denominator_sum_squares",
                                      "denominator_pre_denominator_sum_product",
                                      "pre_pre_denominator_sum_product",
                                      "main_pre_denominator_sum_product",
                                      "pre_denominator_sum_product"};

StatusOr<stats::VariantStatistics> ParseVariant(const json& v, const std::string& prefix, stats::MetricKind kind) {
  NS_RETURN_IF_ERROR(ExpectType(v, json::value_t::object, prefix, "an object"));
  NS_RETURN_IF_ERROR(CheckFields(
      v, prefix,
      {"name", "n", "sum", "sum_squares", "denominator_sum", "denominator_sum_squares", "main_denominator_sum_product",
       "pre_sum", "pre_sum_squares", "main_pre_sum_product", "pre_denominator_sum", "pre_denominator_sum_squares",
       "denominator_pre_denominator_sum_product", "pre_pre_denominator_sum_product", "main_pre_denominator_sum_product",
       "pre_denominator_sum_product"}));
  stats::VariantStatistics s;
  NS_ASSIGN_OR_RETURN(s.name, GetString(v, "name", prefix, false));
  bool has_n = false;
  NS_ASSIGN_OR_RETURN(s.n, GetNumber(v, "n", prefix, 0, &has_n));
  if (!has_n) return InvalidArgument(Join(prefix, "n") + ": required field is missing", Join(prefix, "n"));
  NS_ASSIGN_OR_RETURN(s.sum, GetNumber(v, "sum", prefix, 0));
  bool has_squares = false;
  NS_ASSIGN_OR_RETURN(s.sum_squares, GetNumber(v, "sum_squares", prefix, 0, &has_squares));
  if (kind != stats::MetricKind::kProportion && !has_squares && s.n > 0)
    return InvalidArgument(Join(prefix, "sum_squares") + ": required for a " +
                               (kind == stats::MetricKind::kMean ? "mean" : "ratio") + " metric",
                           Join(prefix, "sum_squares"));
  if (kind == stats::MetricKind::kRatio) {
    for (const char* f : {"denominator_sum", "denominator_sum_squares", "main_denominator_sum_product"})
      if (!v.contains(f) && s.n > 0)
        return InvalidArgument(Join(prefix, f) + ": required for a ratio metric", Join(prefix, f));
  }
  NS_ASSIGN_OR_RETURN(s.denominator_sum, GetNumber(v, "denominator_sum", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.denominator_sum_squares, GetNumber(v, "denominator_sum_squares", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.main_denominator_sum_product, GetNumber(v, "main_denominator_sum_product", prefix, 0));
  for (const char* f : kPreFields) s.has_pre = s.has_pre || (v.contains(f) && !v[f].is_null());
  NS_ASSIGN_OR_RETURN(s.pre_sum, GetNumber(v, "pre_sum", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.pre_sum_squares, GetNumber(v, "pre_sum_squares", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.main_pre_sum_product, GetNumber(v, "main_pre_sum_product", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.pre_denominator_sum, GetNumber(v, "pre_denominator_sum", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.pre_denominator_sum_squares, GetNumber(v, "pre_denominator_sum_squares", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.denominator_pre_denominator_sum_product,
                      GetNumber(v, "denominator_pre_denominator_sum_product", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.pre_pre_denominator_sum_product, GetNumber(v, "pre_pre_denominator_sum_product", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.main_pre_denominator_sum_product, GetNumber(v, "main_pre_denominator_sum_product", prefix, 0));
  NS_ASSIGN_OR_RETURN(s.pre_denominator_sum_product, GetNumber(v, "pre_denominator_sum_product", prefix, 0));
  return s;
}

json PowerToJson(double mean, double variance, double mde, double alpha, double power, double daily, int variants,
                 double tuning, const stats::PowerEstimate& p) {
  json out = {{"mean", mean},
              {"variance", variance},
              {"mde", mde},
              {"alpha", alpha},
              {"power", power},
              {"daily_persons", daily},
              {"variants", variants},
              {"sequential_tuning", tuning},
              {"persons_per_variant", p.persons_per_variant},
              {"total_persons", p.persons_per_variant * variants},
              {"days", daily > 0 ? json(p.days) : json(nullptr)},
              {"achieved_power", p.power}};
  // Week by week at this traffic (GrowthBook's power table): power for `mde` and the effect
  // detectable with `power` after 1..8 weeks (or, when days run longer, up to that week).
  json weeks = json::array();
  if (daily > 0) {
    int last = std::max(8, static_cast<int>(std::ceil(p.days / 7)));
    last = std::min(last, 104);
    for (int w = 1; w <= last; w++) {
      double persons = daily * 7 * w;
      weeks.push_back(
          {{"week", w},
           {"persons", persons},
           {"power", Number(stats::PowerAt(mean, variance, mde, alpha, persons, variants, tuning))},
           {"mde", Number(stats::MinimumDetectableEffect(mean, variance, power, alpha, persons, variants, tuning))}});
    }
  }
  out["weeks"] = std::move(weeks);
  return out;
}

StatusOr<json> RunPower(const json& body) {
  NS_RETURN_IF_ERROR(ExpectType(body, json::value_t::object, "body", "an object"));
  NS_RETURN_IF_ERROR(CheckFields(body, "",
                                 {"metric", "mean", "variance", "standard_deviation", "mde", "alpha", "power",
                                  "daily_persons", "variants", "sequential_tuning"}));
  NS_ASSIGN_OR_RETURN(stats::MetricKind kind,
                      GetChoice(body, "metric", {"mean", "proportion"}, stats::MetricKind::kMean));
  bool has_mean = false, has_variance = false, has_sd = false;
  NS_ASSIGN_OR_RETURN(double mean, GetNumber(body, "mean", "", 0, &has_mean));
  if (!has_mean) return InvalidArgument("mean: required field is missing", "mean");
  NS_ASSIGN_OR_RETURN(double variance, GetNumber(body, "variance", "", 0, &has_variance));
  NS_ASSIGN_OR_RETURN(double sd, GetNumber(body, "standard_deviation", "", 0, &has_sd));
  if (kind == stats::MetricKind::kProportion) {
    if (!(mean > 0 && mean < 1)) return InvalidArgument("mean: a conversion rate must be in (0, 1)", "mean");
    if (has_variance || has_sd)
      return InvalidArgument("variance: a rate's variance is p (1 - p); leave it out",
                             has_variance ? "variance" : "standard_deviation");
    variance = mean * (1 - mean);
  } else {
    if (has_variance && has_sd)
      return InvalidArgument("standard_deviation: give variance or standard_deviation, not both", "standard_deviation");
    if (has_sd) {
      if (!(sd > 0)) return InvalidArgument("standard_deviation: must be > 0", "standard_deviation");
      variance = sd * sd;
    } else if (!has_variance) {
      return InvalidArgument("variance: required field is missing (or standard_deviation)", "variance");
    }
  }
  bool has_mde = false;
  NS_ASSIGN_OR_RETURN(double mde, GetNumber(body, "mde", "", 0, &has_mde));
  if (!has_mde) return InvalidArgument("mde: required field is missing", "mde");
  NS_ASSIGN_OR_RETURN(double alpha, GetNumber(body, "alpha", "", 0.05));
  NS_ASSIGN_OR_RETURN(double power, GetNumber(body, "power", "", 0.8));
  NS_ASSIGN_OR_RETURN(double daily, GetNumber(body, "daily_persons", "", 0));
  NS_ASSIGN_OR_RETURN(int64_t variants, GetInt(body, "variants", "", 2, 2, 100));
  NS_ASSIGN_OR_RETURN(double tuning, GetNumber(body, "sequential_tuning", "", 0));
  auto p = stats::EstimatePower(mean, variance, mde, alpha, power, daily, static_cast<int>(variants), tuning);
  if (!p.ok()) return WithFieldPrefix(p.status());
  return PowerToJson(mean, variance, mde, alpha, power, daily, static_cast<int>(variants), tuning, *p);
}

}  // namespace

StatusOr<AnalyzeRequest> ParseAnalyzeRequest(const json& body) {
  NS_RETURN_IF_ERROR(ExpectType(body, json::value_t::object, "body", "an object"));
  NS_RETURN_IF_ERROR(CheckFields(body, "",
                                 {"metric", "difference", "method", "alternative", "alpha", "sequential_tuning",
                                  "prior", "correction", "traffic_weights", "winsorize_percentile", "variants"}));
  AnalyzeRequest r;
  if (!body.contains("metric")) return InvalidArgument("metric: required field is missing", "metric");
  NS_ASSIGN_OR_RETURN(r.kind, GetChoice(body, "metric", kMetrics, stats::MetricKind::kMean));
  stats::AnalysisOptions& o = r.options;
  NS_ASSIGN_OR_RETURN(o.difference, GetChoice(body, "difference", kDifferences, stats::DifferenceType::kRelative));
  NS_ASSIGN_OR_RETURN(o.method, GetChoice(body, "method", kMethods, stats::AnalysisMethod::kFrequentist));
  NS_ASSIGN_OR_RETURN(o.alternative, GetChoice(body, "alternative", kAlternatives, stats::Alternative::kTwoSided));
  NS_ASSIGN_OR_RETURN(o.correction, GetChoice(body, "correction", kCorrections, stats::Correction::kNone));
  NS_ASSIGN_OR_RETURN(o.alpha, GetNumber(body, "alpha", "", 0.05));
  NS_ASSIGN_OR_RETURN(o.sequential_tuning, GetNumber(body, "sequential_tuning", "", 5000));
  NS_ASSIGN_OR_RETURN(o.winsorize_percentile, GetNumber(body, "winsorize_percentile", "", 0));
  if (body.contains("prior") && !body["prior"].is_null()) {
    const json& p = body["prior"];
    NS_RETURN_IF_ERROR(ExpectType(p, json::value_t::object, "prior", "an object"));
    NS_RETURN_IF_ERROR(CheckFields(p, "prior", {"mean", "variance", "proper"}));
    NS_ASSIGN_OR_RETURN(o.prior_proper, GetBool(p, "proper", "prior", true));
    NS_ASSIGN_OR_RETURN(o.prior_mean, GetNumber(p, "mean", "prior", 0));
    NS_ASSIGN_OR_RETURN(o.prior_variance, GetNumber(p, "variance", "prior", 1));
    if (o.prior_proper && !(o.prior_variance > 0))
      return InvalidArgument("prior.variance: must be > 0", "prior.variance");
  }
  if (body.contains("traffic_weights") && !body["traffic_weights"].is_null()) {
    const json& w = body["traffic_weights"];
    NS_RETURN_IF_ERROR(ExpectType(w, json::value_t::array, "traffic_weights", "an array of numbers"));
    for (size_t i = 0; i < w.size(); i++) {
      std::string field = "traffic_weights[" + std::to_string(i) + "]";
      if (!w[i].is_number()) return InvalidArgument(field + ": expected a number, got " + TypeName(w[i]), field);
      o.traffic_weights.push_back(w[i].get<double>());
    }
  }
  if (!body.contains("variants")) return InvalidArgument("variants: required field is missing", "variants");
  const json& vs = body["variants"];
  NS_RETURN_IF_ERROR(ExpectType(vs, json::value_t::array, "variants", "an array of variants"));
  if (vs.size() < 2) return InvalidArgument("variants: an experiment needs at least two variants", "variants");
  if (vs.size() > 100) return InvalidArgument("variants: at most 100 variants", "variants");
  for (size_t i = 0; i < vs.size(); i++) {
    std::string prefix = "variants[" + std::to_string(i) + "]";
    NS_ASSIGN_OR_RETURN(stats::VariantStatistics s, ParseVariant(vs[i], prefix, r.kind));
    if (s.name.empty()) s.name = i == 0 ? "control" : "variant " + std::to_string(i);
    if (i > 0 && s.has_pre != r.variants[0].has_pre)
      return InvalidArgument(prefix + ".pre_sum: CUPED needs the pre-window fields on every variant or none",
                             prefix + ".pre_sum");
    r.variants.push_back(std::move(s));
  }
  return r;
}

json AnalysisToJson(const AnalyzeRequest& request, const stats::ExperimentAnalysis& a) {
  const stats::AnalysisOptions& o = request.options;
  json variants = json::array();
  for (const stats::VariantSummary& v : a.variants)
    variants.push_back({{"name", v.name}, {"n", v.n}, {"mean", Number(v.mean)}, {"variance", Number(v.variance)}});
  json effects = json::array();
  for (size_t i = 0; i < a.effects.size(); i++) {
    const stats::Effect& e = a.effects[i];
    json j = {{"name", e.name},
              {"variant_index", i + 1},
              {"ok", e.ok},
              {"error", e.error.empty() ? json(nullptr) : json(e.error)},
              {"expected", Number(e.expected)},
              {"ci", json::array({Number(e.ci_low), Number(e.ci_high)})},
              {"standard_error", Number(e.standard_error)},
              {"p_value", Number(e.p_value)},
              {"p_value_unadjusted", Number(e.p_value_unadjusted)},
              {"ci_unadjusted", json::array({Number(e.ci_low_unadjusted), Number(e.ci_high_unadjusted)})},
              {"chance_to_win", Number(e.chance_to_win)},
              {"risk", json::array({Number(e.risk_control), Number(e.risk_treatment)})},
              {"cuped_theta", Number(e.cuped_theta)}};
    if (e.ok && o.method != stats::AnalysisMethod::kBayesian && std::isfinite(e.p_value))
      j["significant"] = e.p_value < o.alpha;
    effects.push_back(std::move(j));
  }
  return json{
      {"metric", Name(kMetrics, request.kind)},
      {"difference", Name(kDifferences, o.difference)},
      {"method", Name(kMethods, o.method)},
      {"alternative", Name(kAlternatives, o.alternative)},
      {"alpha", o.alpha},
      {"correction", Name(kCorrections, o.correction)},
      {"sequential_tuning", o.method == stats::AnalysisMethod::kSequential ? json(o.sequential_tuning) : json(nullptr)},
      {"winsorize_percentile", o.winsorize_percentile > 0 ? json(o.winsorize_percentile) : json(nullptr)},
      {"variants", std::move(variants)},
      {"effects", std::move(effects)},
      {"srm_p_value", Number(a.srm_p_value)},
      {"srm_flagged", a.srm_flagged}};
}

std::vector<Route> ExperimentAnalyzeRoutes(ServerContext& ctx) {
  (void)ctx;
  const Access V = Access::kViewer;
  return {
      R("POST", R"(/api/v1/experiments/analyze)", V,
        [](const HttpRequest& req, HttpResponse& res, const Principal&) {
          WithBody(req, res, [&](const json& b) {
            auto r = ParseAnalyzeRequest(b);
            if (!r.ok()) return res.Error(r.status());
            auto a = stats::AnalyzeExperiment(r->kind, r->variants, r->options);
            if (!a.ok()) return res.Error(WithFieldPrefix(a.status()));
            res.Json(200, AnalysisToJson(*r, *a));
          });
        }),
      R("POST", R"(/api/v1/experiments/power)", V,
        [](const HttpRequest& req, HttpResponse& res, const Principal&) {
          WithBody(req, res, [&](const json& b) { Reply(res, RunPower(b)); });
        }),
  };
}

}  // namespace ns
