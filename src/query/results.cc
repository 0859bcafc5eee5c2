#include "query/results.h"

namespace ns {

using nlohmann::json;

namespace {

json MeasureJson(const Measure& m) {
  switch (m.type) {
    case Measure::Type::kCount: return m.count;
    case Measure::Type::kReal: return m.real;
    case Measure::Type::kNone: break;
  }
  return nullptr;
}

json OptionalJson(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json StepsJson(const std::vector<FunnelStepResult>& steps) {
  json out = json::array();
  for (size_t k = 0; k < steps.size(); k++) {
    const FunnelStepResult& st = steps[k];
    json s;
    s["event"] = st.event;
    s["label"] = st.label;
    s["order"] = k;
    s["optional"] = st.optional;
    s["count"] = st.count;
    s["conversion_from_start"] = st.conversion_from_start;
    s["conversion_from_previous"] = st.conversion_from_previous;
    s["median_seconds_from_previous"] = OptionalJson(st.median_seconds_from_previous);
    s["average_seconds_from_previous"] = OptionalJson(st.average_seconds_from_previous);
    if (k > 0) {
      json d;
      d["count"] = st.dropoff_count;
      if (st.dropoff_persons) d["persons"] = *st.dropoff_persons;
      s["dropoff"] = std::move(d);
    }
    if (st.converted_persons) s["converted_persons"] = *st.converted_persons;
    out.push_back(std::move(s));
  }
  return out;
}

// The funnel's added fields (docs/queries.md, "Funnel visualisations").
void AddFunnelVizJson(const FunnelResult& r, json* out) {
  static const char* const kViz[] = {"steps", "time_to_convert", "trends", "correlation"};
  (*out)["viz"] = kViz[static_cast<int>(r.viz)];
  (*out)["aggregate_by"] = r.aggregate_by == FunnelAggregate::kSession ? "session" : "person";
  if (r.attribution) {
    static const char* const kAttr[] = {"first_touch", "last_touch", "step"};
    (*out)["breakdown_attribution"] = kAttr[static_cast<int>(*r.attribution)];
    if (*r.attribution == BreakdownAttribution::kStep) (*out)["breakdown_attribution_step"] = r.attribution_step;
  }
  if (r.time_to_convert) {
    const FunnelTimeToConvert& t = *r.time_to_convert;
    json bins = json::array();
    for (const auto& b : t.bins)
      bins.push_back(
          {{"from_seconds", b.from_seconds}, {"to_seconds", b.from_seconds + t.bin_seconds}, {"count", b.count}});
    (*out)["time_to_convert"] = {{"from_step", t.from_step},
                                 {"to_step", t.to_step},
                                 {"count", t.count},
                                 {"average_seconds", OptionalJson(t.average_seconds)},
                                 {"median_seconds", OptionalJson(t.median_seconds)},
                                 {"bin_seconds", t.bin_seconds},
                                 {"bins", std::move(bins)}};
  }
  if (r.trends) {
    const FunnelTrends& t = *r.trends;
    json dates = json::array(), rates = json::array(), from = json::array(), to = json::array();
    json counts = json::array();
    for (size_t i = 0; i < t.days.size(); i++) {
      const auto& c = t.step_counts[i];
      const uint64_t a = c[static_cast<size_t>(t.from_step)], b = c[static_cast<size_t>(t.to_step)];
      dates.push_back(FormatDate(t.days[i]));
      rates.push_back(a ? json(static_cast<double>(b) / static_cast<double>(a)) : json(nullptr));
      from.push_back(a);
      to.push_back(b);
      counts.push_back(c);
    }
    (*out)["trends"] = {{"interval", std::string(IntervalName(t.interval))},
                        {"from_step", t.from_step},
                        {"to_step", t.to_step},
                        {"dates", std::move(dates)},
                        {"conversion_rates", std::move(rates)},
                        {"from_counts", std::move(from)},
                        {"to_counts", std::move(to)},
                        {"step_counts", std::move(counts)}};
  }
  if (r.correlation) {
    const FunnelCorrelation& c = *r.correlation;
    auto entries = [](const std::vector<FunnelCorrelationEntry>& v) {
      json a = json::array();
      for (const auto& e : v) {
        json x;
        if (e.property.empty()) {
          x["event"] = e.event;
        } else {
          x["property"] = e.property;
          x["value"] = e.value;
        }
        x["success_count"] = e.success_count;
        x["failure_count"] = e.failure_count;
        x["odds_ratio"] = e.odds_ratio;
        x["correlation_type"] = e.success ? "success" : "failure";
        a.push_back(std::move(x));
      }
      return a;
    };
    (*out)["correlation"] = {{"success_total", c.success_total},
                             {"failure_total", c.failure_total},
                             {"skewed", c.skewed},
                             {"events", entries(c.events)},
                             {"properties", entries(c.properties)}};
  }
}

}  // namespace

std::string_view MathName(Math m) {
  switch (m) {
    case Math::kTotal: return "total";
    case Math::kDau: return "dau";
    case Math::kSum: return "sum";
    case Math::kAvg: return "avg";
    case Math::kMin: return "min";
    case Math::kMax: return "max";
    case Math::kP50: return "p50";
    case Math::kP90: return "p90";
    case Math::kWeeklyActive: return "weekly_active";
    case Math::kMonthlyActive: return "monthly_active";
    case Math::kAvgPerPerson: return "avg_per_person";
    case Math::kMedianPerPerson: return "median_per_person";
    case Math::kP90PerPerson: return "p90_per_person";
  }
  return "total";
}

json ToJson(const TrendsResult& r) {
  json out;
  out["kind"] = "trends";
  out["timezone"] = r.timezone;
  out["interval"] = std::string(IntervalName(r.interval));
  out["date_from"] = FormatDate(r.date_from);
  out["date_to"] = FormatDate(r.date_to);
  const bool comparing = r.compare != TrendsCompare::kNone;
  if (comparing) {
    out["compare"] = r.compare == TrendsCompare::kPreviousPeriod ? "previous_period" : "previous_year";
    out["compare_date_from"] = FormatDate(r.compare_from);
    out["compare_date_to"] = FormatDate(r.compare_to);
  }
  if (r.formula) out["formula"] = *r.formula;
  if (r.smoothing > 1) out["smoothing"] = r.smoothing;
  if (r.cumulative) out["cumulative"] = true;
  if (r.display == TrendsDisplay::kNumber) out["display"] = "number";
  const json dates = r.dates;
  json series = json::array();
  for (const TrendsSeriesResult& s : r.series) {
    json sj;
    sj["label"] = s.label;
    if (s.formula) {
      sj["formula"] = *s.formula;
      sj["event"] = nullptr;
      sj["math"] = "formula";
    } else {
      sj["event"] = s.event;
      sj["math"] = std::string(MathName(s.math));
    }
    sj["breakdown_value"] = s.breakdown_value;
    if (comparing) {
      sj["compare"] = true;
      sj["compare_label"] = s.previous ? "previous" : "current";
    }
    if (s.previous) {
      json d = json::array();
      for (const std::string& l : s.dates) d.push_back(l.empty() ? json(nullptr) : json(l));
      sj["dates"] = std::move(d);
    } else {
      sj["dates"] = dates;
    }
    json values = json::array();
    for (const Measure& m : s.values) values.push_back(MeasureJson(m));
    sj["values"] = std::move(values);
    if (s.aggregated_value) sj["aggregated_value"] = MeasureJson(*s.aggregated_value);
    series.push_back(std::move(sj));
  }
  out["series"] = std::move(series);
  return out;
}

json ToJson(const FunnelResult& r) {
  json out;
  out["kind"] = "funnel";
  out["timezone"] = r.timezone;
  out["order"] = r.order == FunnelOrder::kOrdered  ? "ordered"
                 : r.order == FunnelOrder::kStrict ? "strict"
                                                   : "unordered";
  out["window_seconds"] = r.window_seconds;
  out["date_from"] = FormatDate(r.date_from);
  out["date_to"] = FormatDate(r.date_to);
  out["steps"] = StepsJson(r.steps);
  json bds = json::array();
  for (const FunnelBreakdownResult& b : r.breakdowns) {
    json bj;
    bj["breakdown_value"] = b.breakdown_value;
    bj["steps"] = StepsJson(b.steps);
    bds.push_back(std::move(bj));
  }
  out["breakdowns"] = std::move(bds);
  AddFunnelVizJson(r, &out);
  return out;
}

json ToJson(const RetentionResult& r) {
  json out;
  out["kind"] = "retention";
  out["timezone"] = r.timezone;
  out["period"] = std::string(IntervalName(r.period));
  out["periods"] = r.periods;
  out["mode"] = r.mode == RetentionMode::kExact ? "exact" : "on_or_after";
  out["first_time"] = r.first_time;
  out["date_from"] = FormatDate(r.date_from);
  out["date_to"] = FormatDate(r.date_to);
  out["reference"] = r.reference == RetentionReference::kTotal ? "total" : "previous";
  out["min_occurrences"] = r.min_occurrences;
  out["time_window"] = r.time_window == RetentionWindow::kCalendar ? "calendar" : "24h";
  auto fractions = [](const std::vector<std::optional<double>>& v) {
    json a = json::array();
    for (const auto& x : v) a.push_back(OptionalJson(x));
    return a;
  };
  json list = json::array();
  for (const RetentionCohortResult& c : r.cohorts) {
    json cj;
    cj["date"] = FormatDate(c.day);
    if (c.breakdown_value) cj["breakdown_value"] = *c.breakdown_value;
    cj["size"] = c.size;
    cj["values"] = c.values;
    cj["percentages"] = fractions(c.percentages);
    list.push_back(std::move(cj));
  }
  out["cohorts"] = std::move(list);
  out["mean"] = fractions(r.mean);
  out["mean_weights"] = r.mean_weights;
  return out;
}

}  // namespace ns
