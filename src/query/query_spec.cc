#include "query/query_spec.h"

#include <cmath>

#include "ingest/native_parser.h"
#include "query/json_fields.h"

namespace ns {

using nlohmann::json;

namespace {

PropertyRef MakeRef(const std::string& s) {
  PropertyRef r;
  r.display = s;
  if (s.rfind("person.", 0) == 0) {
    r.person = true;
    r.name = s.substr(7);
  } else {
    r.name = s;
  }
  return r;
}

StatusOr<Math> ParseMath(const std::string& s, const std::string& field) {
  if (s == "total") return Math::kTotal;
  if (s == "dau") return Math::kDau;
  if (s == "sum") return Math::kSum;
  if (s == "avg") return Math::kAvg;
  if (s == "min") return Math::kMin;
  if (s == "max") return Math::kMax;
  if (s == "p50") return Math::kP50;
  if (s == "p90") return Math::kP90;
  if (s == "weekly_active") return Math::kWeeklyActive;
  if (s == "monthly_active") return Math::kMonthlyActive;
  if (s == "avg_per_person") return Math::kAvgPerPerson;
  if (s == "median_per_person") return Math::kMedianPerPerson;
  if (s == "p90_per_person") return Math::kP90PerPerson;
  return InvalidArgument(field + ": unknown math '" + s +
                             "' (expected total, dau, sum, avg, min, max, p50, p90, weekly_active, monthly_active, "
                             "avg_per_person, median_per_person or p90_per_person)",
                         field);
}

StatusOr<std::optional<PropertyRef>> ParseBreakdownOne(const json& j, const std::string& field) {
  auto it = j.find("breakdown");
  if (it == j.end() || it->is_null()) return std::optional<PropertyRef>();
  if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) return std::optional<PropertyRef>(MakeRef((*it)[0]));
  if (!it->is_string() || it->get_ref<const std::string&>().empty())
    return InvalidArgument(field + ": expected a property name", field);
  return std::optional<PropertyRef>(MakeRef(*it));
}

// formula, formula_only, compare, smoothing, cumulative, display (after the series: a formula's
// letters are checked against them).
Status ParseTrendsPostProcessing(const json& j, TrendsQuery* q) {
  auto f = j.find("formula");
  if (f != j.end() && !f->is_null()) {
    if (!f->is_string())
      return InvalidArgument("formula: expected a string such as \"A / B * 100\", got " + TypeName(*f), "formula");
    NS_ASSIGN_OR_RETURN(Formula formula, Formula::Parse(f->get_ref<const std::string&>(), q->series.size(), "formula"));
    q->formula = std::move(formula);
  }
  NS_ASSIGN_OR_RETURN(q->formula_only, GetBool(j, "formula_only", "", false));
  if (q->formula_only && !q->formula) return InvalidArgument("formula_only: needs a formula", "formula_only");
  auto c = j.find("compare");
  if (c != j.end() && c->is_boolean()) {  // PostHog's "compare": true is the previous period
    q->compare = c->get<bool>() ? TrendsCompare::kPreviousPeriod : TrendsCompare::kNone;
  } else {
    NS_ASSIGN_OR_RETURN(std::string compare, GetString(j, "compare", "", false, "none"));
    if (compare == "previous_period") {
      q->compare = TrendsCompare::kPreviousPeriod;
    } else if (compare == "previous_year") {
      q->compare = TrendsCompare::kPreviousYear;
    } else if (compare != "none") {
      return InvalidArgument(
          "compare: unknown comparison '" + compare + "' (expected previous_period or previous_year)", "compare");
    }
  }
  NS_ASSIGN_OR_RETURN(int64_t smoothing, GetInt(j, "smoothing", "", 1, 1, 90));
  q->smoothing = static_cast<int>(smoothing);
  NS_ASSIGN_OR_RETURN(q->cumulative, GetBool(j, "cumulative", "", false));
  if (q->cumulative && q->smoothing > 1)
    return InvalidArgument("smoothing: a cumulative series is not smoothed (use one of cumulative or smoothing)",
                           "smoothing");
  if (q->cumulative)
    for (size_t i = 0; i < q->series.size(); i++)
      if (RollingDays(q->series[i].math))
        return InvalidArgument("cumulative: series[" + std::to_string(i) +
                                   "] counts persons over a rolling window, which does not accumulate",
                               "cumulative");
  NS_ASSIGN_OR_RETURN(std::string display, GetString(j, "display", "", false, "series"));
  if (display == "number") {
    q->display = TrendsDisplay::kNumber;
  } else if (display != "series") {
    return InvalidArgument("display: unknown display '" + display + "' (expected series or number)", "display");
  }
  return Status::OK();
}

}  // namespace

StatusOr<TrendsQuery> ParseTrendsQuery(const json& j) {
  NS_RETURN_IF_ERROR(
      CheckFields(j, "",
                  {"kind", "date_from", "date_to", "interval", "series", "filters", "breakdown", "breakdown_limit",
                   "formula", "formula_only", "compare", "smoothing", "cumulative", "display"}));
  TrendsQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(std::string iv, GetString(j, "interval", "", false, "day"));
  NS_ASSIGN_OR_RETURN(q.interval, ParseInterval(iv));
  if (q.interval == Interval::kHour && q.to_day - q.from_day > 93)
    return InvalidArgument("interval: hour is limited to ranges of at most 94 days", "interval");
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  NS_ASSIGN_OR_RETURN(q.breakdown, ParseBreakdownOne(j, "breakdown"));
  NS_ASSIGN_OR_RETURN(int64_t lim, GetInt(j, "breakdown_limit", "", 25, 1, 1000));
  q.breakdown_limit = static_cast<size_t>(lim);
  auto s = j.find("series");
  if (s == j.end()) return InvalidArgument("series: required field is missing", "series");
  if (!s->is_array() || s->empty()) return InvalidArgument("series: expected a non-empty array", "series");
  if (s->size() > 20) return InvalidArgument("series: at most 20 series per query", "series");
  for (size_t i = 0; i < s->size(); i++) {
    const json& sj = (*s)[i];
    std::string f = "series[" + std::to_string(i) + "]";
    if (!sj.is_object()) return InvalidArgument(f + ": expected an object", f);
    NS_RETURN_IF_ERROR(CheckFields(sj, f, {"event", "math", "property", "filters", "label"}));
    TrendsSeries ts;
    NS_ASSIGN_OR_RETURN(ts.event, GetString(sj, "event", f, true));
    if (ts.event.empty()) return InvalidArgument(f + ".event: must not be empty", f + ".event");
    NS_ASSIGN_OR_RETURN(std::string math, GetString(sj, "math", f, false, "total"));
    NS_ASSIGN_OR_RETURN(ts.math, ParseMath(math, f + ".math"));
    NS_ASSIGN_OR_RETURN(ts.property, GetString(sj, "property", f, false));
    const bool counts_events = ts.math == Math::kTotal || ts.math == Math::kDau || RollingDays(ts.math) ||
                               ts.math == Math::kAvgPerPerson || ts.math == Math::kMedianPerPerson ||
                               ts.math == Math::kP90PerPerson;
    if (!counts_events && ts.property.empty())
      return InvalidArgument(f + ".property: math '" + math + "' needs a numeric property", f + ".property");
    if (RollingDays(ts.math) && q.interval == Interval::kHour)
      return InvalidArgument(
          f + ".math: '" + math + "' counts persons over whole local days; use interval day, week or month",
          f + ".math");
    NS_ASSIGN_OR_RETURN(ts.filters, ParseFilters(sj.value("filters", json::array()), f + ".filters"));
    NS_ASSIGN_OR_RETURN(ts.label, GetString(sj, "label", f, false, ts.event));
    q.series.push_back(std::move(ts));
  }
  NS_RETURN_IF_ERROR(ParseTrendsPostProcessing(j, &q));
  return q;
}

namespace {

StatusOr<std::vector<std::string>> GetStringList(const json& j, const char* key, size_t max) {
  std::vector<std::string> out;
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return out;
  if (!it->is_array() || it->size() > max)
    return InvalidArgument(std::string(key) + ": expected an array of at most " + std::to_string(max) + " names", key);
  for (size_t i = 0; i < it->size(); i++) {
    const json& x = (*it)[i];
    const std::string f = std::string(key) + "[" + std::to_string(i) + "]";
    if (!x.is_string() || x.get_ref<const std::string&>().empty())
      return InvalidArgument(f + ": expected a non-empty name, got " + x.dump(), f);
    out.push_back(x);
  }
  return out;
}

// The funnel's visualisations and options of docs/queries.md ("Funnel visualisations"):
// viz, its step pair, bins and interval, breakdown attribution, aggregation by session and
// correlation. Fields that only one viz reads are refused with the others, so a request
// never silently ignores what it asked for.
Status ParseFunnelOptions(const json& j, FunnelQuery* q) {
  const int n = static_cast<int>(q->steps.size());
  const bool unordered = q->order == FunnelOrder::kUnordered;
  NS_ASSIGN_OR_RETURN(std::string viz, GetString(j, "viz", "", false, "steps"));
  if (viz == "steps")
    q->viz = FunnelViz::kSteps;
  else if (viz == "time_to_convert")
    q->viz = FunnelViz::kTimeToConvert;
  else if (viz == "trends")
    q->viz = FunnelViz::kTrends;
  else if (viz == "correlation")
    q->viz = FunnelViz::kCorrelation;
  else
    return InvalidArgument(
        "viz: unknown funnel viz '" + viz + "' (expected steps, time_to_convert, trends or correlation)", "viz");
  auto only_with = [&](const char* field, bool allowed, const char* which) -> Status {
    if (allowed || !j.contains(field) || j[field].is_null()) return Status::OK();
    return InvalidArgument(
        std::string(field) + ": only used with \"viz\":" + which + " (this funnel's viz is " + viz + ")", field);
  };
  const bool ttc = q->viz == FunnelViz::kTimeToConvert, trends = q->viz == FunnelViz::kTrends;
  const bool corr = q->viz == FunnelViz::kCorrelation;
  NS_RETURN_IF_ERROR(only_with("from_step", ttc || trends, "\"time_to_convert\" or \"trends\""));
  NS_RETURN_IF_ERROR(only_with("to_step", ttc || trends, "\"time_to_convert\" or \"trends\""));
  NS_RETURN_IF_ERROR(only_with("bins", ttc, "\"time_to_convert\""));
  NS_RETURN_IF_ERROR(only_with("interval", trends, "\"trends\""));
  NS_RETURN_IF_ERROR(only_with("correlation_properties", corr, "\"correlation\""));
  NS_RETURN_IF_ERROR(only_with("correlation_exclude_events", corr, "\"correlation\""));
  NS_RETURN_IF_ERROR(only_with("correlation_limit", corr, "\"correlation\""));
  if ((ttc || trends || corr) && n < 2) return InvalidArgument("viz: " + viz + " needs at least 2 steps", "viz");
  if ((ttc || corr) && unordered)
    return InvalidArgument(
        "viz: " + viz +
            " needs an ordered or strict funnel (an unordered funnel does not record when each step was done)",
        "viz");
  if (ttc || trends) {
    NS_ASSIGN_OR_RETURN(int64_t from, GetInt(j, "from_step", "", 0, 0, n - 2));
    NS_ASSIGN_OR_RETURN(int64_t to, GetInt(j, "to_step", "", n - 1, 1, n - 1));
    if (to <= from)
      return InvalidArgument("to_step: must be greater than from_step (" + std::to_string(from) + ")", "to_step");
    q->from_step = static_cast<int>(from);
    q->to_step = static_cast<int>(to);
    if (ttc && q->steps[static_cast<size_t>(from)].optional)
      return InvalidArgument("from_step: step " + std::to_string(from) +
                                 " is optional; time to convert is measured from a step every conversion does",
                             "from_step");
  }
  if (ttc) {
    auto b = j.find("bins");
    if (b != j.end() && !b->is_null() && !(b->is_string() && *b == "auto")) {
      if (b->is_string())
        return InvalidArgument("bins: expected \"auto\" or a number of bins from 1 to 90, got " + b->dump(), "bins");
      NS_ASSIGN_OR_RETURN(int64_t bins, GetInt(j, "bins", "", 0, 1, 90));
      q->bins = static_cast<int>(bins);
    }
  }
  if (trends) {
    NS_ASSIGN_OR_RETURN(std::string iv, GetString(j, "interval", "", false, "day"));
    if (iv != "day" && iv != "week" && iv != "month")
      return InvalidArgument("interval: expected day, week or month, got '" + iv + "'", "interval");
    NS_ASSIGN_OR_RETURN(q->interval, ParseInterval(iv));
  }

  // breakdown_attribution: "first_touch" | "last_touch" | "step" (with
  // breakdown_attribution_step), or {"step": N}. Without a breakdown it changes nothing.
  auto a = j.find("breakdown_attribution");
  bool step_given = j.contains("breakdown_attribution_step") && !j["breakdown_attribution_step"].is_null();
  if (a != j.end() && !a->is_null()) {
    if (a->is_object()) {
      NS_RETURN_IF_ERROR(CheckFields(*a, "breakdown_attribution", {"step"}));
      if (step_given)
        return InvalidArgument("breakdown_attribution_step: give the step once, here or in breakdown_attribution",
                               "breakdown_attribution_step");
      if (!a->contains("step"))
        return InvalidArgument("breakdown_attribution.step: required field is missing", "breakdown_attribution.step");
      NS_ASSIGN_OR_RETURN(int64_t st, GetInt(*a, "step", "breakdown_attribution", 0, 0, n - 1));
      q->attribution = BreakdownAttribution::kStep;
      q->attribution_step = static_cast<int>(st);
    } else {
      if (!a->is_string())
        return InvalidArgument(
            "breakdown_attribution: expected first_touch, last_touch, step or {\"step\": N}, got " + a->dump(),
            "breakdown_attribution");
      const std::string& s = a->get_ref<const std::string&>();
      if (s == "first_touch")
        q->attribution = BreakdownAttribution::kFirstTouch;
      else if (s == "last_touch")
        q->attribution = BreakdownAttribution::kLastTouch;
      else if (s == "step")
        q->attribution = BreakdownAttribution::kStep;
      else
        return InvalidArgument(
            "breakdown_attribution: unknown attribution '" + s + "' (expected first_touch, last_touch or step)",
            "breakdown_attribution");
      if (q->attribution == BreakdownAttribution::kStep) {
        if (!step_given)
          return InvalidArgument("breakdown_attribution_step: required with \"breakdown_attribution\":\"step\"",
                                 "breakdown_attribution_step");
        NS_ASSIGN_OR_RETURN(int64_t st, GetInt(j, "breakdown_attribution_step", "", 0, 0, n - 1));
        q->attribution_step = static_cast<int>(st);
      }
    }
  }
  if (step_given && q->attribution != BreakdownAttribution::kStep)
    return InvalidArgument("breakdown_attribution_step: only used with \"breakdown_attribution\":\"step\"",
                           "breakdown_attribution_step");
  if (unordered && q->attribution != BreakdownAttribution::kFirstTouch)
    return InvalidArgument(
        "breakdown_attribution: last_touch and step need an ordered or strict funnel (an unordered funnel's steps "
        "are not tied to events)",
        "breakdown_attribution");

  NS_ASSIGN_OR_RETURN(std::string agg, GetString(j, "aggregate_by", "", false, "person"));
  if (agg == "person")
    q->aggregate_by = FunnelAggregate::kPerson;
  else if (agg == "session")
    q->aggregate_by = FunnelAggregate::kSession;
  else
    return InvalidArgument("aggregate_by: expected person or session, got '" + agg + "'", "aggregate_by");
  if (corr && q->aggregate_by == FunnelAggregate::kSession)
    return InvalidArgument("aggregate_by: correlation compares persons; use \"aggregate_by\":\"person\"",
                           "aggregate_by");

  if (corr) {
    NS_ASSIGN_OR_RETURN(std::vector<std::string> props, GetStringList(j, "correlation_properties", 20));
    for (const std::string& p : props) {
      if (p == "person.")
        return InvalidArgument("correlation_properties: 'person.' names no property", "correlation_properties");
      q->correlation_properties.push_back(MakeRef(p));
    }
    NS_ASSIGN_OR_RETURN(q->correlation_exclude_events, GetStringList(j, "correlation_exclude_events", 1000));
    NS_ASSIGN_OR_RETURN(int64_t lim, GetInt(j, "correlation_limit", "", 10, 1, 100));
    q->correlation_limit = static_cast<size_t>(lim);
  }
  return Status::OK();
}

}  // namespace

StatusOr<FunnelQuery> ParseFunnelQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(j, "",
                                 {"kind",
                                  "date_from",
                                  "date_to",
                                  "steps",
                                  "window_seconds",
                                  "order",
                                  "filters",
                                  "breakdown",
                                  "breakdown_limit",
                                  "dropoff_limit",
                                  "converted_limit",
                                  "exclusions",
                                  "viz",
                                  "from_step",
                                  "to_step",
                                  "bins",
                                  "interval",
                                  "breakdown_attribution",
                                  "breakdown_attribution_step",
                                  "aggregate_by",
                                  "correlation_properties",
                                  "correlation_exclude_events",
                                  "correlation_limit"}));
  FunnelQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(q.window_ms, GetInt(j, "window_seconds", "", 14 * 86400, 0, 366LL * 86400));
  q.window_ms *= 1000;
  NS_ASSIGN_OR_RETURN(std::string order, GetString(j, "order", "", false, "ordered"));
  if (order == "ordered")
    q.order = FunnelOrder::kOrdered;
  else if (order == "strict")
    q.order = FunnelOrder::kStrict;
  else if (order == "unordered")
    q.order = FunnelOrder::kUnordered;
  else
    return InvalidArgument("order: unknown order mode '" + order + "' (expected ordered, strict or unordered)",
                           "order");
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  auto s = j.find("steps");
  if (s == j.end()) return InvalidArgument("steps: required field is missing", "steps");
  if (!s->is_array() || s->size() < 1) return InvalidArgument("steps: expected a non-empty array", "steps");
  if (s->size() > kMaxFunnelSteps)
    return InvalidArgument(
        "steps: " + std::to_string(s->size()) + " steps; at most " + std::to_string(kMaxFunnelSteps) + " are supported",
        "steps");
  for (size_t i = 0; i < s->size(); i++) {
    const json& sj = (*s)[i];
    std::string f = "steps[" + std::to_string(i) + "]";
    if (!sj.is_object()) return InvalidArgument(f + ": expected an object", f);
    NS_RETURN_IF_ERROR(CheckFields(sj, f, {"event", "filters", "optional", "label", "first_ever"}));
    FunnelStep st;
    NS_ASSIGN_OR_RETURN(st.event, GetString(sj, "event", f, true));
    if (st.event.empty()) return InvalidArgument(f + ".event: must not be empty", f + ".event");
    NS_ASSIGN_OR_RETURN(st.filters, ParseFilters(sj.value("filters", json::array()), f + ".filters"));
    NS_ASSIGN_OR_RETURN(st.optional, GetBool(sj, "optional", f, false));
    if (st.optional && i == 0)
      return InvalidArgument(f + ".optional: the first step cannot be optional", f + ".optional");
    NS_ASSIGN_OR_RETURN(st.label, GetString(sj, "label", f, false, st.event));
    NS_ASSIGN_OR_RETURN(st.first_ever, GetBool(sj, "first_ever", f, false));
    q.steps.push_back(std::move(st));
  }
  if (q.steps.back().optional)
    return InvalidArgument(
        "steps[" + std::to_string(q.steps.size() - 1) + "].optional: the last step cannot be optional",
        "steps[" + std::to_string(q.steps.size() - 1) + "].optional");
  auto b = j.find("breakdown");
  if (b != j.end() && !b->is_null()) {
    std::vector<std::string> names;
    if (b->is_string())
      names.push_back(*b);
    else if (b->is_array()) {
      for (const auto& x : *b) {
        if (!x.is_string() || x.get_ref<const std::string&>().empty())
          return InvalidArgument("breakdown: expected property names", "breakdown");
        names.push_back(x);
      }
    } else {
      return InvalidArgument("breakdown: expected a property name or a list of up to 3", "breakdown");
    }
    if (names.size() > 3) return InvalidArgument("breakdown: at most 3 properties", "breakdown");
    for (auto& n : names) q.breakdown.push_back(MakeRef(n));
  }
  NS_ASSIGN_OR_RETURN(int64_t lim, GetInt(j, "breakdown_limit", "", 25, 1, 1000));
  q.breakdown_limit = static_cast<size_t>(lim);
  NS_ASSIGN_OR_RETURN(int64_t dl, GetInt(j, "dropoff_limit", "", 100, 0, 100'000'000));
  q.dropoff_limit = static_cast<size_t>(dl);
  if (j.contains("converted_limit") && !j["converted_limit"].is_null()) {
    NS_ASSIGN_OR_RETURN(int64_t cl, GetInt(j, "converted_limit", "", 0, 0, 100'000'000));
    q.converted_limit = static_cast<size_t>(cl);
  }
  auto ex = j.find("exclusions");
  if (ex != j.end() && !ex->is_null()) {
    if (!ex->is_array()) return InvalidArgument("exclusions: expected an array", "exclusions");
    if (ex->size() > 31) return InvalidArgument("exclusions: at most 31", "exclusions");
    for (size_t i = 0; i < ex->size(); i++) {
      const json& ej = (*ex)[i];
      std::string f = "exclusions[" + std::to_string(i) + "]";
      if (!ej.is_object()) return InvalidArgument(f + ": expected an object", f);
      NS_RETURN_IF_ERROR(CheckFields(ej, f, {"event", "from_step", "to_step", "filters"}));
      FunnelExclusion e;
      NS_ASSIGN_OR_RETURN(e.event, GetString(ej, "event", f, true));
      int64_t n = static_cast<int64_t>(q.steps.size());
      NS_ASSIGN_OR_RETURN(int64_t from, GetInt(ej, "from_step", f, 0, 0, n - 1));
      NS_ASSIGN_OR_RETURN(int64_t to, GetInt(ej, "to_step", f, n - 1, 0, n - 1));
      if (to <= from)
        return InvalidArgument(f + ".to_step: must be greater than from_step (" + std::to_string(from) + ")",
                               f + ".to_step");
      e.from_step = static_cast<int>(from);
      e.to_step = static_cast<int>(to);
      NS_ASSIGN_OR_RETURN(e.filters, ParseFilters(ej.value("filters", json::array()), f + ".filters"));
      q.exclusions.push_back(std::move(e));
    }
  }
  NS_RETURN_IF_ERROR(ParseFunnelOptions(j, &q));
  return q;
}

StatusOr<RetentionQuery> ParseRetentionQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(j, "",
                                 {"kind", "date_from", "date_to", "start_event", "return_event", "period", "periods",
                                  "first_time", "mode", "filters", "start_filters", "return_filters", "breakdown",
                                  "breakdown_limit", "reference", "min_occurrences", "time_window"}));
  RetentionQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(q.start_event, GetString(j, "start_event", "", true));
  NS_ASSIGN_OR_RETURN(q.return_event, GetString(j, "return_event", "", false, std::string(kAnyEvent)));
  if (q.start_event.empty()) return InvalidArgument("start_event: must not be empty", "start_event");
  if (q.return_event.empty()) return InvalidArgument("return_event: must not be empty", "return_event");
  NS_ASSIGN_OR_RETURN(std::string p, GetString(j, "period", "", false, "day"));
  NS_ASSIGN_OR_RETURN(q.period, ParseInterval(p));
  if (q.period == Interval::kHour) return InvalidArgument("period: expected day, week or month", "period");
  NS_ASSIGN_OR_RETURN(int64_t periods, GetInt(j, "periods", "", 11, 1, 400));
  q.periods = static_cast<int>(periods);
  NS_ASSIGN_OR_RETURN(q.first_time, GetBool(j, "first_time", "", true));
  NS_ASSIGN_OR_RETURN(std::string mode, GetString(j, "mode", "", false, "exact"));
  if (mode == "exact")
    q.mode = RetentionMode::kExact;
  else if (mode == "on_or_after")
    q.mode = RetentionMode::kOnOrAfter;
  else
    return InvalidArgument("mode: unknown mode '" + mode + "' (expected exact or on_or_after)", "mode");
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  NS_ASSIGN_OR_RETURN(q.start_filters, ParseFilters(j.value("start_filters", json::array()), "start_filters"));
  NS_ASSIGN_OR_RETURN(q.return_filters, ParseFilters(j.value("return_filters", json::array()), "return_filters"));
  NS_ASSIGN_OR_RETURN(q.breakdown, ParseBreakdownOne(j, "breakdown"));
  NS_ASSIGN_OR_RETURN(int64_t lim, GetInt(j, "breakdown_limit", "", 25, 1, 1000));
  q.breakdown_limit = static_cast<size_t>(lim);
  NS_ASSIGN_OR_RETURN(std::string ref, GetString(j, "reference", "", false, "total"));
  if (ref == "total")
    q.reference = RetentionReference::kTotal;
  else if (ref == "previous")
    q.reference = RetentionReference::kPrevious;
  else
    return InvalidArgument("reference: unknown reference '" + ref + "' (expected total or previous)", "reference");
  NS_ASSIGN_OR_RETURN(int64_t min_occ, GetInt(j, "min_occurrences", "", 1, 1, 1000));
  q.min_occurrences = static_cast<int>(min_occ);
  NS_ASSIGN_OR_RETURN(std::string window, GetString(j, "time_window", "", false, "calendar"));
  if (window == "calendar")
    q.time_window = RetentionWindow::kCalendar;
  else if (window == "24h")
    q.time_window = RetentionWindow::k24h;
  else
    return InvalidArgument("time_window: unknown time window '" + window + "' (expected calendar or 24h)",
                           "time_window");
  if (q.time_window == RetentionWindow::k24h && q.period == Interval::kMonth)
    return InvalidArgument("time_window: 24h windows need period day or week (a month has no fixed length)",
                           "time_window");
  return q;
}

StatusOr<Filter> ParseCohortFilter(const json& fj, const std::string& f) {
  NS_RETURN_IF_ERROR(CheckFields(fj, f, {"cohort", "op"}));
  Filter flt;
  NS_ASSIGN_OR_RETURN(flt.cohort, GetInt(fj, "cohort", f, 0, 1, INT64_MAX));
  NS_ASSIGN_OR_RETURN(std::string op, GetString(fj, "op", f, false, "in"));
  if (op == "in") {
    flt.op = FilterOp::kIn;
  } else if (op == "not_in") {
    flt.op = FilterOp::kNotIn;
  } else {
    return InvalidArgument(f + ".op: unknown cohort operator '" + op + "' (expected in or not_in)", f + ".op");
  }
  flt.person = true;
  flt.field = f;
  return flt;
}

Status AppendCohortField(const json& j, std::vector<Filter>* filters) {
  auto it = j.find("cohort");
  if (it == j.end() || it->is_null()) return Status::OK();
  json cf = it->is_object() ? *it : json{{"cohort", *it}};
  NS_ASSIGN_OR_RETURN(Filter f, ParseCohortFilter(cf, "cohort"));
  f.field = "cohort";
  filters->push_back(std::move(f));
  return Status::OK();
}

StatusOr<std::vector<Filter>> ParseFilters(const json& j, const std::string& field) {
  std::vector<Filter> out;
  if (j.is_null()) return out;
  if (!j.is_array()) return InvalidArgument(field + ": expected an array of filters", field);
  for (size_t i = 0; i < j.size(); i++) {
    const json& fj = j[i];
    std::string f = field + "[" + std::to_string(i) + "]";
    if (!fj.is_object()) return InvalidArgument(f + ": expected an object", f);
    if (fj.contains("cohort")) {
      NS_ASSIGN_OR_RETURN(Filter flt, ParseCohortFilter(fj, f));
      out.push_back(std::move(flt));
      continue;
    }
    NS_RETURN_IF_ERROR(CheckFields(fj, f, {"property", "op", "value"}));
    Filter flt;
    NS_ASSIGN_OR_RETURN(std::string prop, GetString(fj, "property", f, true));
    if (prop.empty() || prop == "person.") return InvalidArgument(f + ".property: must not be empty", f + ".property");
    PropertyRef ref = MakeRef(prop);
    flt.property = ref.name;
    flt.person = ref.person;
    NS_ASSIGN_OR_RETURN(std::string op, GetString(fj, "op", f, false, "eq"));
    static const std::pair<const char*, FilterOp> kOps[] = {{"eq", FilterOp::kEq},
                                                            {"neq", FilterOp::kNeq},
                                                            {"in", FilterOp::kIn},
                                                            {"not_in", FilterOp::kNotIn},
                                                            {"gt", FilterOp::kGt},
                                                            {"gte", FilterOp::kGte},
                                                            {"lt", FilterOp::kLt},
                                                            {"lte", FilterOp::kLte},
                                                            {"contains", FilterOp::kContains},
                                                            {"not_contains", FilterOp::kNotContains},
                                                            {"is_set", FilterOp::kIsSet},
                                                            {"is_not_set", FilterOp::kIsNotSet}};
    bool found = false;
    for (auto& [name, o] : kOps)
      if (op == name) {
        flt.op = o;
        found = true;
      }
    if (!found)
      return InvalidArgument(
          f + ".op: unknown operator '" + op +
              "' (expected eq, neq, in, not_in, gt, gte, lt, lte, contains, not_contains, is_set or is_not_set)",
          f + ".op");
    auto v = fj.find("value");
    bool needs_value = flt.op != FilterOp::kIsSet && flt.op != FilterOp::kIsNotSet;
    if (needs_value) {
      if (v == fj.end() || v->is_null())
        return InvalidArgument(f + ".value: required for operator '" + op + "'", f + ".value");
      if (flt.op == FilterOp::kIn || flt.op == FilterOp::kNotIn) {
        if (!v->is_array() || v->empty())
          return InvalidArgument(f + ".value: operator '" + op + "' needs a non-empty array", f + ".value");
        for (const auto& x : *v) flt.values.push_back(PropValueFromJson(x));
      } else {
        if (v->is_array() || v->is_object())
          return InvalidArgument(f + ".value: expected a single value for operator '" + op + "'", f + ".value");
        if ((flt.op == FilterOp::kGt || flt.op == FilterOp::kGte || flt.op == FilterOp::kLt ||
             flt.op == FilterOp::kLte) &&
            !v->is_number())
          return InvalidArgument(f + ".value: operator '" + op + "' needs a number, got " + TypeName(*v), f + ".value");
        flt.values.push_back(PropValueFromJson(*v));
      }
    }
    out.push_back(std::move(flt));
  }
  return out;
}

}  // namespace ns
