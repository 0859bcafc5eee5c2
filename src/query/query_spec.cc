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

StatusOr<FunnelQuery> ParseFunnelQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(j, "",
                                 {"kind", "date_from", "date_to", "steps", "window_seconds", "order", "filters",
                                  "breakdown", "breakdown_limit", "dropoff_limit", "exclusions"}));
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
    NS_RETURN_IF_ERROR(CheckFields(sj, f, {"event", "filters", "optional", "label"}));
    FunnelStep st;
    NS_ASSIGN_OR_RETURN(st.event, GetString(sj, "event", f, true));
    if (st.event.empty()) return InvalidArgument(f + ".event: must not be empty", f + ".event");
    NS_ASSIGN_OR_RETURN(st.filters, ParseFilters(sj.value("filters", json::array()), f + ".filters"));
    NS_ASSIGN_OR_RETURN(st.optional, GetBool(sj, "optional", f, false));
    if (st.optional && i == 0)
      return InvalidArgument(f + ".optional: the first step cannot be optional", f + ".optional");
    NS_ASSIGN_OR_RETURN(st.label, GetString(sj, "label", f, false, st.event));
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
