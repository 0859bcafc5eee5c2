// The KPI reducers of the query kinds (ops/kpi_reducers.h): adding a kind that can be a KPI
// is one reducer here and one line in the list at the end.
#include "ops/kpi_reducers.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/time_zone.h"
#include "query/commerce.h"
#include "query/operators.h"
#include "query/query_kind.h"
#include "query/query_spec.h"
#include "query/referral.h"
#include "query/results.h"

namespace ns {
namespace {

using nlohmann::json;

std::string BreakdownKey(const json& v) {
  if (v.is_null()) return "(none)";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

// Last day of period k of a retention cohort that starts on `cohort` (a period start): a
// cohort counts for period k once that period has ended by the end of the range (weeks:
// the Sunday, not the Monday; months by the calendar, not a fixed 30 days).
int32_t PeriodKEnd(int32_t cohort, int k, const std::string& p) {
  if (p == "week") return cohort + 7 * k + 6;
  if (p != "month") return cohort + k;
  int32_t m = cohort;
  for (int i = 0; i <= k; i++) m = TimeZone::PeriodStartDay(m + 31, Interval::kMonth);  // 1st + 31 is in the next month
  return m - 1;
}

// ---------------------------------------------------------------- trends: {"series":i,"op":…}

Status TrendsValidate(const json& q, json& r) {
  NS_ASSIGN_OR_RETURN(TrendsQuery tq, ParseTrendsQuery(q));
  if (!r.contains("series"))
    return InvalidArgument("reduce: a trends KPI needs {\"series\":i,\"op\":\"sum|avg|last|max|min\"}", "reduce");
  if (!r["series"].is_number_integer() || r["series"].get<int64_t>() < 0 ||
      r["series"].get<size_t>() >= tq.series.size())
    return InvalidArgument("reduce.series: expected a series index 0.." + std::to_string(tq.series.size() - 1),
                           "reduce.series");
  if (!r.contains("op")) r["op"] = "sum";
  std::string op = r["op"].is_string() ? r["op"].get<std::string>() : "";
  if (op != "sum" && op != "avg" && op != "last" && op != "max" && op != "min")
    return InvalidArgument("reduce.op: expected sum, avg, last, max or min", "reduce.op");
  return Status::OK();
}

void TrendsShape(json& q, const json& r) {
  int s = r["series"].get<int>();
  q["series"] = json::array({q["series"][static_cast<size_t>(s)]});
  q["interval"] = "day";
  // The KPI reads its one series: a formula over the others and comparison series are not it.
  for (const char* extra : {"formula", "formula_only", "compare"}) q.erase(extra);
}

StatusOr<TrendsResult> RunTrendsOf(const json& query, const QueryContext& ctx) {
  NS_ASSIGN_OR_RETURN(TrendsQuery q, ParseTrendsQuery(query));
  return RunTrends(q, ctx.snap, ctx.tz);
}

StatusOr<std::map<std::string, KpiParts>> TrendsReduce(const json& query, const json& r, PeriodRange, bool broken_down,
                                                       const QueryContext& ctx) {
  NS_ASSIGN_OR_RETURN(TrendsResult res, RunTrendsOf(query, ctx));
  std::map<std::string, KpiParts> out;
  std::string op = r.value("op", "sum");
  for (const TrendsSeriesResult& s : res.series) {
    std::string key = broken_down ? BreakdownKey(s.breakdown_value) : "";
    KpiParts parts;
    bool first = true;
    for (const Measure& v : s.values) {
      if (!v.has_value()) continue;
      double x = v.value();
      if (op == "sum")
        parts.num += x;
      else if (op == "avg") {
        parts.num += x;
        parts.den += 1;
        parts.ratio = true;
      } else if (op == "last")
        parts.num = x;
      else if (op == "max")
        parts.num = first ? x : std::max(parts.num, x);
      else if (op == "min")
        parts.num = first ? x : std::min(parts.num, x);
      first = false;
    }
    if (op == "avg") parts.ratio = true;
    out[key] = parts;
  }
  if (!broken_down && out.empty()) out[""] = KpiParts{};
  return out;
}

Status TrendsDaily(const json& query, const json&, PeriodRange, const QueryContext& ctx, DailySeries* s) {
  NS_ASSIGN_OR_RETURN(TrendsResult res, RunTrendsOf(query, ctx));
  if (!res.series.empty()) {
    const std::vector<Measure>& vals = res.series[0].values;
    for (size_t i = 0; i < s->values.size() && i < vals.size(); i++)
      if (vals[i].has_value()) s->values[i] = vals[i].value();
  }
  return Status::OK();
}

// ---------------------------------------------------------------- funnel: {"from_step","to_step"}

Status FunnelValidate(const json& q, json& r) {
  NS_ASSIGN_OR_RETURN(FunnelQuery fq, ParseFunnelQuery(q));
  int n = static_cast<int>(fq.steps.size());
  if (!r.contains("from_step")) r["from_step"] = 1;
  if (!r.contains("to_step")) r["to_step"] = n;
  if (!r["from_step"].is_number_integer() || !r["to_step"].is_number_integer())
    return InvalidArgument("reduce: from_step and to_step are step numbers (1-based)", "reduce");
  int f = r["from_step"].get<int>(), t = r["to_step"].get<int>();
  if (f < 1 || t > n || f >= t)
    return InvalidArgument("reduce: need 1 <= from_step < to_step <= " + std::to_string(n) + " (steps are 1-based)",
                           "reduce");
  return Status::OK();
}

void FunnelShape(json& q, const json&) { q["dropoff_limit"] = 1; }

StatusOr<std::map<std::string, KpiParts>> FunnelReduce(const json& query, const json& r, PeriodRange, bool broken_down,
                                                       const QueryContext& ctx) {
  NS_ASSIGN_OR_RETURN(FunnelQuery q, ParseFunnelQuery(query));
  q.viz = FunnelViz::kSteps;  // the steps are all a KPI reads
  NS_ASSIGN_OR_RETURN(FunnelResult res, RunFunnel(q, ctx.snap, ctx.tz, ctx.namer));
  std::map<std::string, KpiParts> out;
  size_t f = r["from_step"].get<size_t>() - 1, t = r["to_step"].get<size_t>() - 1;
  auto take = [&](const std::vector<FunnelStepResult>& steps) {
    return KpiParts{static_cast<double>(steps[t].count), static_cast<double>(steps[f].count), true};
  };
  if (!broken_down)
    out[""] = take(res.steps);
  else
    for (const FunnelBreakdownResult& b : res.breakdowns) out[BreakdownKey(b.breakdown_value)] = take(b.steps);
  return out;
}

// Daily values from one pass: the funnel's conversion over time by entry day ("viz":"trends"
// with day periods), which gives each day the numbers of the funnel run on that day alone
// (docs/queries.md), so a 35-day series is one scan instead of 35.
Status FunnelDaily(const json& query, const json& r, PeriodRange range, const QueryContext& ctx, DailySeries* s) {
  NS_ASSIGN_OR_RETURN(FunnelQuery q, ParseFunnelQuery(query));
  q.viz = FunnelViz::kTrends;
  q.interval = Interval::kDay;
  q.from_step = r["from_step"].get<int>() - 1;
  q.to_step = r["to_step"].get<int>() - 1;
  NS_ASSIGN_OR_RETURN(FunnelResult res, RunFunnel(q, ctx.snap, ctx.tz, ctx.namer));
  s->weights.assign(s->values.size(), 0);
  const FunnelTrends& t = *res.trends;
  for (size_t i = 0; i < t.days.size(); i++) {
    const int32_t d = t.days[i];
    if (d < range.from || d > range.to) continue;
    const size_t at = static_cast<size_t>(d - range.from);
    const double den = static_cast<double>(t.step_counts[i][static_cast<size_t>(q.from_step)]);
    const double num = static_cast<double>(t.step_counts[i][static_cast<size_t>(q.to_step)]);
    s->weights[at] = den;
    if (den > 0) s->values[at] = KpiParts{num, den, true}.Value();
  }
  return Status::OK();
}

// ---------------------------------------------------------------- retention: {"period":k}

Status RetentionValidate(const json& q, json& r) {
  if (!r.contains("period") || !r["period"].is_number_integer() || r["period"].get<int>() < 0)
    return InvalidArgument("reduce.period: a retention KPI needs the period index k (e.g. 7 for day 7)",
                           "reduce.period");
  NS_ASSIGN_OR_RETURN(RetentionQuery rq, ParseRetentionQuery(q));
  if (r["period"].get<int>() >= rq.periods)
    return InvalidArgument("reduce.period: the query measures periods 0.." + std::to_string(rq.periods - 1) +
                               " (set \"periods\" in the query)",
                           "reduce.period");
  return Status::OK();
}

void RetentionShape(json&, const json&) {}

StatusOr<RetentionResult> RunRetentionOf(const json& query, const QueryContext& ctx) {
  NS_ASSIGN_OR_RETURN(RetentionQuery q, ParseRetentionQuery(query));
  return RunRetention(q, ctx.snap, ctx.tz);
}

StatusOr<std::map<std::string, KpiParts>> RetentionReduce(const json& query, const json& r, PeriodRange range,
                                                          bool broken_down, const QueryContext& ctx) {
  NS_ASSIGN_OR_RETURN(RetentionResult res, RunRetentionOf(query, ctx));
  std::map<std::string, KpiParts> out;
  const size_t k = r["period"].get<size_t>();
  const std::string period(IntervalName(res.period));
  for (const RetentionCohortResult& c : res.cohorts) {
    if (PeriodKEnd(c.day, static_cast<int>(k), period) > range.to)
      continue;  // period k not complete yet for this cohort
    std::string key = broken_down ? BreakdownKey(c.breakdown_value.value_or(json())) : "";
    KpiParts& parts = out[key];
    parts.ratio = true;
    parts.num += static_cast<double>(c.values[k]);
    parts.den += static_cast<double>(c.size);
  }
  if (!broken_down && out.empty()) out[""] = KpiParts{0, 0, true};
  return out;
}

Status RetentionDaily(const json& query, const json& r, PeriodRange range, const QueryContext& ctx, DailySeries* s) {
  NS_ASSIGN_OR_RETURN(RetentionResult res, RunRetentionOf(query, ctx));
  const size_t k = r["period"].get<size_t>();
  const std::string period(IntervalName(res.period));
  s->weights.assign(s->values.size(), 0);
  for (const RetentionCohortResult& c : res.cohorts) {
    if (c.day < range.from || c.day > range.to || PeriodKEnd(c.day, static_cast<int>(k), period) > range.to) continue;
    double size = static_cast<double>(c.size);
    size_t i = static_cast<size_t>(c.day - range.from);
    s->weights[i] = size;
    if (size > 0) s->values[i] = static_cast<double>(c.values[k]) / size;
  }
  return Status::OK();
}

// ---------------------------------------------------------------- commerce: {"metric":…}

// The commerce figures a KPI can follow: sums, and ratios kept as numerator / denominator
// so a change can be attributed to breakdown values. The repurchase cycle (a median) is
// not one: medians of parts do not make the whole.
struct CommerceKpiMetric {
  const char* name;
  const char* num;
  const char* den;  // nullptr: a sum
};
constexpr CommerceKpiMetric kCommerceKpiMetrics[] = {
    {"gmv", "gmv", nullptr},
    {"gmv_gross", "gmv_gross", nullptr},
    {"refunds", "refunds", nullptr},
    {"refund_amount", "refund_amount", nullptr},
    {"orders", "orders", nullptr},
    {"paying_persons", "paying_persons", nullptr},
    {"active_persons", "active_persons", nullptr},
    {"aov", "gmv_gross", "orders"},
    {"paid_conversion_rate", "paying_persons", "active_persons"},
    {"first_purchase_conversion", "first_purchase_persons", "registered_persons"},
    {"repurchase_rate", "repeat_payers", "paying_persons"},
    {"cart_abandonment_rate", "abandoned_carts", "carts"},
};

const CommerceKpiMetric* FindCommerceKpiMetric(const json& r) {
  auto it = r.find("metric");
  if (it == r.end() || !it->is_string()) return nullptr;
  for (const CommerceKpiMetric& m : kCommerceKpiMetrics)
    if (*it == m.name) return &m;
  return nullptr;
}

Status CommerceValidate(const json& q, json& r) {
  NS_RETURN_IF_ERROR(ParseCommerceQuery(q).status());
  if (!r.contains("metric")) r["metric"] = "gmv";
  if (!FindCommerceKpiMetric(r)) {
    std::string names;
    for (const CommerceKpiMetric& m : kCommerceKpiMetrics) names += std::string(names.empty() ? "" : ", ") + m.name;
    return InvalidArgument("reduce.metric: expected one of " + names, "reduce.metric");
  }
  return Status::OK();
}

void CommerceShape(json& q, const json&) { q.erase("interval"); }

StatusOr<std::map<std::string, KpiParts>> CommerceReduce(const json& query, const json& r, PeriodRange,
                                                         bool broken_down, const QueryContext& ctx) {
  NS_ASSIGN_OR_RETURN(CommerceQuery q, ParseCommerceQuery(query));
  NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
  NS_ASSIGN_OR_RETURN(CommerceResult res, RunCommerce(q, ctx));
  const CommerceKpiMetric* m = FindCommerceKpiMetric(r);
  if (!m) return InvalidArgument("reduce.metric: unknown commerce metric", "reduce.metric");
  auto take = [&](const CommerceMetrics& cm) {
    const json j = CommerceMetricsJson(cm);
    return KpiParts{j[m->num].get<double>(), m->den ? j[m->den].get<double>() : 0, m->den != nullptr};
  };
  std::map<std::string, KpiParts> out;
  if (!broken_down) {
    out[""] = take(res.total);
  } else {
    for (const auto& [value, cm] : res.breakdowns) out[BreakdownKey(value)] = take(cm);
  }
  return out;
}

// ---------------------------------------------------------------- referral: {"metric":…,"flagged":…}

// The referral figures a KPI can follow (docs/queries.md "Referral"), as ratio parts, over
// the unflagged edges ("flagged":"exclude", the default: what a team should steer by) or
// over every edge ("include").
constexpr const char* kReferralKpiMetrics[] = {"k_factor",        "referral_share",       "referral_conversion_rate",
                                               "invitees",        "referred_new_persons", "flagged_invitees",
                                               "invitations_sent"};

Status ReferralValidate(const json& q, json& r) {
  NS_RETURN_IF_ERROR(ParseReferralQuery(q).status());
  if (!r.contains("metric")) r["metric"] = "k_factor";
  if (!r.contains("flagged")) r["flagged"] = "exclude";
  if (!r["metric"].is_string() || std::find(std::begin(kReferralKpiMetrics), std::end(kReferralKpiMetrics),
                                            r["metric"].get<std::string>()) == std::end(kReferralKpiMetrics)) {
    std::string names;
    for (const char* m : kReferralKpiMetrics) names += std::string(names.empty() ? "" : ", ") + m;
    return InvalidArgument("reduce.metric: expected one of " + names, "reduce.metric");
  }
  if (r["flagged"] != "exclude" && r["flagged"] != "include")
    return InvalidArgument("reduce.flagged: expected \"exclude\" or \"include\"", "reduce.flagged");
  return Status::OK();
}

void ReferralShape(json& q, const json&) {
  q.erase("limit");
  q.erase("cursor");
}

StatusOr<std::map<std::string, KpiParts>> ReferralReduce(const json& query_in, const json& r, PeriodRange,
                                                         bool broken_down, const QueryContext& ctx) {
  // The kind has no breakdown: a root-cause split by a dimension finds no parts.
  if (broken_down) return std::map<std::string, KpiParts>{};
  json query = query_in;
  query.erase("breakdown");
  query.erase("breakdown_limit");
  NS_ASSIGN_OR_RETURN(ReferralQuery q, ParseReferralQuery(query));
  NS_ASSIGN_OR_RETURN(ReferralResult res, RunReferral(q, ctx));
  const ReferralFigures& f = r.value("flagged", "exclude") == "include" ? res.with_flagged : res.without_flagged;
  const std::string m = r.value("metric", "k_factor");
  auto d = [](uint64_t v) { return static_cast<double>(v); };
  KpiParts p;
  if (m == "k_factor") {
    p = {d(f.invitees), d(res.active_persons), true};
  } else if (m == "referral_share") {
    p = {d(f.referred_new_persons), d(res.new_persons), true};
  } else if (m == "referral_conversion_rate") {
    p = {d(f.invitees), d(res.invitations_sent), true};
  } else if (m == "invitees") {
    p = {d(f.invitees), 0, false};
  } else if (m == "referred_new_persons") {
    p = {d(f.referred_new_persons), 0, false};
  } else if (m == "flagged_invitees") {
    p = {d(res.flagged_invitees), 0, false};
  } else if (m == "invitations_sent") {
    p = {d(res.invitations_sent), 0, false};
  } else {
    return InvalidArgument("reduce.metric: unknown referral metric", "reduce.metric");
  }
  return std::map<std::string, KpiParts>{{"", p}};
}

// ---------------------------------------------------------------- channels: {"metric":…,"channel"?}

// The channel figures a KPI can follow (docs/queries.md "Channels"), as parts that add up
// over channels (ROAS = revenue / spend, CAC = spend / new persons), so a change splits
// exactly over the channels; "stop_loss_channels" counts the channels past their stop-loss
// line (see ChannelStopLoss). "channel" restricts the KPI to one channel.
struct ChannelsKpiMetric {
  const char* name;
  const char* num;
  const char* den;  // nullptr: a sum
};
constexpr ChannelsKpiMetric kChannelsKpiMetrics[] = {
    {"roas", "revenue", "spend"},
    {"roas_cumulative", "revenue_cumulative", "spend"},
    {"cac", "spend", "new_persons"},
    {"first_order_conversion", "converted_persons", "new_persons"},
    {"spend", "spend", nullptr},
    {"revenue", "revenue", nullptr},
    {"revenue_cumulative", "revenue_cumulative", nullptr},
    {"new_persons", "new_persons", nullptr},
    {"converted_persons", "converted_persons", nullptr},
    {"stop_loss_channels", nullptr, nullptr},
};

const ChannelsKpiMetric* FindChannelsKpiMetric(const json& r) {
  auto it = r.find("metric");
  if (it == r.end() || !it->is_string()) return nullptr;
  for (const ChannelsKpiMetric& m : kChannelsKpiMetrics)
    if (*it == m.name) return &m;
  return nullptr;
}

Status ChannelsValidate(const json& q, json& r) {
  NS_RETURN_IF_ERROR(kChannelsKind.check(q));
  if (!r.contains("metric")) r["metric"] = "roas";
  if (!FindChannelsKpiMetric(r)) {
    std::string names;
    for (const ChannelsKpiMetric& m : kChannelsKpiMetrics) names += std::string(names.empty() ? "" : ", ") + m.name;
    return InvalidArgument("reduce.metric: expected one of " + names, "reduce.metric");
  }
  if (r.contains("channel") && (!r["channel"].is_string() || r["channel"].get_ref<const std::string&>().empty()))
    return InvalidArgument("reduce.channel: expected a channel name", "reduce.channel");
  return Status::OK();
}

void ChannelsShape(json& q, const json&) { q.erase("budget"); }

// The stop-loss line of a channels query: its request's "stop_loss", else the kind's defaults.
std::pair<double, int> StopLossLine(const json& query) {
  const json sl = query.value("stop_loss", json::object());
  const json& obj = sl.is_object() ? sl : json::object();
  return {obj.value("roas_below", 1.0), obj.value("days", 7)};
}

// One channel's stop-loss streak as a KPI judges it: the days with spend and a daily ROAS
// below the line counted back from the window's last day — or from the day before when the
// last day has no spend yet (spend is imported the next morning, so "today" would otherwise
// end every streak and a KPI refreshed during the day could never fire).
int StopLossStreak(const json& daily, double line) {
  size_t end = daily.size();
  if (end > 0 && !(daily[end - 1]["spend"].get<double>() > 0)) end--;
  int n = 0;
  for (size_t i = end; i-- > 0;) {
    const double spend = daily[i]["spend"].get<double>(), revenue = daily[i]["revenue"].get<double>();
    if (!(spend > 0) || revenue / spend >= line) break;
    n++;
  }
  return n;
}

// Runs the channels query for one evaluation. "stop_loss_channels" judges the trailing
// stop_loss.days + 1 days ending at the range's last day, whatever the KPI's period (a
// stop-loss is about the last days, not the month so far), so its new persons are those of
// that window.
StatusOr<json> RunChannelsOf(const json& query_in, const json& r, PeriodRange range, const QueryContext& ctx) {
  json query = query_in;
  query.erase("breakdown");
  query.erase("breakdown_limit");
  if (r.value("metric", "roas") == "stop_loss_channels") {
    const int days = StopLossLine(query).second;
    query["date_from"] = FormatDate(range.to - days);
    query["date_to"] = FormatDate(range.to);
  }
  return kChannelsKind.run(query, ctx);
}

StatusOr<std::map<std::string, KpiParts>> ChannelsReduce(const json& query, const json& r, PeriodRange range,
                                                         bool broken_down, const QueryContext& ctx) {
  // The one breakdown the kind has is the channel itself.
  if (broken_down && query.value("breakdown", "") != "channel") return std::map<std::string, KpiParts>{};
  const ChannelsKpiMetric* m = FindChannelsKpiMetric(r);
  if (!m) return InvalidArgument("reduce.metric: unknown channels metric", "reduce.metric");
  NS_ASSIGN_OR_RETURN(json res, RunChannelsOf(query, r, range, ctx));
  const std::string only = r.value("channel", "");
  const auto [line, days] = StopLossLine(query);
  auto num = [](const json& v) { return v.is_number() ? v.get<double>() : 0.0; };
  std::map<std::string, KpiParts> out;
  KpiParts total{0, 0, m->den != nullptr};
  for (const json& c : res["channels"]) {
    const std::string name = c["channel"];
    if (!only.empty() && name != only) continue;
    KpiParts p{0, 0, m->den != nullptr};
    if (m->num == nullptr) {
      p.num = StopLossStreak(c["daily"], line) >= days ? 1 : 0;
    } else {
      p.num = num(c[m->num]);
      if (m->den) p.den = num(c[m->den]);
    }
    total.num += p.num;
    total.den += p.den;
    if (broken_down) out[name] = p;
  }
  if (!broken_down) out[""] = total;
  return out;
}

// "stop-loss: ads ROAS 0.42 < 1 for 8 days": the channels past their stop-loss line, worst
// first (the root-cause hint names them whatever the metric).
StatusOr<std::string> ChannelsExplain(const json& query, const json& r, PeriodRange range, const QueryContext& ctx) {
  json rs = r;
  rs["metric"] = "stop_loss_channels";
  NS_ASSIGN_OR_RETURN(json res, RunChannelsOf(query, rs, range, ctx));
  const std::string only = r.value("channel", "");
  const auto [line, days] = StopLossLine(query);
  std::vector<std::pair<double, std::string>> past;  // (ROAS over the streak, text)
  for (const json& c : res["channels"]) {
    const std::string name = c["channel"];
    if (!only.empty() && name != only) continue;
    const int streak = StopLossStreak(c["daily"], line);
    if (streak < days) continue;
    double spend = 0, revenue = 0;
    const json& daily = c["daily"];
    size_t end = daily.size();
    if (!(daily[end - 1]["spend"].get<double>() > 0)) end--;
    for (size_t i = end - static_cast<size_t>(streak); i < end; i++) {
      spend += daily[i]["spend"].get<double>();
      revenue += daily[i]["revenue"].get<double>();
    }
    char buf[96];
    std::snprintf(buf, sizeof buf, " ROAS %.2f < %g for %d days", revenue / spend, line, streak);
    past.emplace_back(revenue / spend, "channel=" + name + buf);
  }
  std::sort(past.begin(), past.end());
  std::string out;
  for (size_t i = 0; i < past.size() && i < 3; i++) out += (i ? ", " : "stop-loss: ") + past[i].second;
  if (past.size() > 3) out += " (+" + std::to_string(past.size() - 3) + " more)";
  return out;
}

// ---------------------------------------------------------------- the list

const KpiReducer kReducers[] = {
    {"trends", TrendsValidate, TrendsShape, TrendsReduce, TrendsDaily},
    {"funnel", FunnelValidate, FunnelShape, FunnelReduce, FunnelDaily},
    {"retention", RetentionValidate, RetentionShape, RetentionReduce, RetentionDaily},
    {"commerce", CommerceValidate, CommerceShape, CommerceReduce, nullptr},
    {"referral", ReferralValidate, ReferralShape, ReferralReduce, nullptr},
    {"channels", ChannelsValidate, ChannelsShape, ChannelsReduce, nullptr, ChannelsExplain},
};

}  // namespace

const KpiReducer* FindKpiReducer(std::string_view kind) {
  if (const QueryKind* q = FindQueryKind(kind)) kind = q->name;  // aliases ("funnels")
  for (const KpiReducer& r : kReducers)
    if (r.kind == kind) return &r;
  return nullptr;
}

std::string KpiKindList() {
  std::string out;
  const size_t n = std::size(kReducers);
  for (size_t i = 0; i < n; i++) {
    if (i > 0) out += i + 1 == n ? " or " : ", ";
    out += kReducers[i].kind;
  }
  return out;
}

}  // namespace ns
