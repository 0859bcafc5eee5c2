// Predicted customer lifetime value (docs/queries.md "CLV"): BG/NBD for the number of future
// purchases and P(alive), Gamma-Gamma for the value per purchase (src/stats), fitted on the
// project's payments up to calibration_to.
//
// A customer's data, as lifetimes' summary_data_from_transaction_data derives it: payments
// (events of one order_id counted once: its first time, its largest amount, as person facts
// count orders) are merged per local day of the project's time zone; x = purchase days - 1,
// t_x = last - first purchase day, T = calibration_to - first purchase day, in days or weeks;
// monetary = the mean daily amount over the repeat days (the first day left out), 0 if x = 0.
// Persons are the snapshot's (identity merges apply to earlier events too).
#include <algorithm>
#include <cmath>
#include <map>
#include <optional>
#include <unordered_map>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_facts.h"
#include "query/person_models.h"
#include "query/query_kind.h"
#include "query/scan.h"
#include "stats/bg_nbd.h"
#include "stats/gamma_gamma.h"

namespace ns {

using nlohmann::json;

namespace {

struct ClvQuery {
  std::optional<int32_t> from_day;
  int32_t cal_to = 0;
  std::optional<int32_t> holdout_to;
  double unit_days = 1;  // 1 (day) or 7 (week)
  int64_t horizon_days = 365;
  double discount_annual = 0.1;
  std::vector<Filter> filters;  // the cohort: the population fitted and listed
  std::optional<std::vector<std::string>> distinct_ids;
  size_t limit = 100, offset = 0;
};

StatusOr<int32_t> DateField(const json& j, const char* key, bool required) {
  NS_ASSIGN_OR_RETURN(std::string s, GetString(j, key, "", required));
  return ParseDate(s, key);
}

StatusOr<ClvQuery> ParseClvQuery(const json& j) {
  NS_RETURN_IF_ERROR(
      CheckFields(j, "",
                  {"kind", "calibration_from", "calibration_to", "holdout_to", "time_unit", "horizon_days",
                   "discount_rate_annual", "cohort", "distinct_ids", "limit", "cursor"}));
  ClvQuery q;
  NS_ASSIGN_OR_RETURN(q.cal_to, DateField(j, "calibration_to", true));
  if (j.contains("calibration_from") && !j["calibration_from"].is_null()) {
    NS_ASSIGN_OR_RETURN(int32_t d, DateField(j, "calibration_from", true));
    if (d > q.cal_to) return InvalidArgument("calibration_from: must not be after calibration_to", "calibration_from");
    q.from_day = d;
  }
  if (j.contains("holdout_to") && !j["holdout_to"].is_null()) {
    NS_ASSIGN_OR_RETURN(int32_t d, DateField(j, "holdout_to", true));
    if (d <= q.cal_to) return InvalidArgument("holdout_to: must be after calibration_to", "holdout_to");
    q.holdout_to = d;
  }
  NS_ASSIGN_OR_RETURN(std::string unit, GetString(j, "time_unit", "", false, "day"));
  if (unit != "day" && unit != "week")
    return InvalidArgument("time_unit: expected \"day\" or \"week\", got '" + unit + "'", "time_unit");
  q.unit_days = unit == "week" ? 7 : 1;
  NS_ASSIGN_OR_RETURN(q.horizon_days, GetInt(j, "horizon_days", "", 365, 1, 3650));
  if (auto it = j.find("discount_rate_annual"); it != j.end() && !it->is_null()) {
    if (!it->is_number()) return InvalidArgument("discount_rate_annual: expected a number", "discount_rate_annual");
    q.discount_annual = it->get<double>();
    if (!(q.discount_annual >= 0 && q.discount_annual <= 10))
      return InvalidArgument("discount_rate_annual: expected 0 to 10 (0.1 = 10% a year)", "discount_rate_annual");
  }
  NS_RETURN_IF_ERROR(AppendCohortField(j, &q.filters));
  if (auto it = j.find("distinct_ids"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) return InvalidArgument("distinct_ids: expected an array of distinct ids", "distinct_ids");
    if (it->size() > 10000) return InvalidArgument("distinct_ids: at most 10000 ids", "distinct_ids");
    std::vector<std::string> ids;
    for (size_t i = 0; i < it->size(); i++) {
      if (!(*it)[i].is_string()) {
        std::string f = "distinct_ids[" + std::to_string(i) + "]";
        return InvalidArgument(f + ": expected a string", f);
      }
      ids.push_back((*it)[i].get<std::string>());
    }
    q.distinct_ids = std::move(ids);
  }
  NS_ASSIGN_OR_RETURN(int64_t limit, GetInt(j, "limit", "", 100, 0, 100000));
  q.limit = static_cast<size_t>(limit);
  NS_ASSIGN_OR_RETURN(std::string cursor, GetString(j, "cursor", "", false));
  if (!cursor.empty()) {
    char* end = nullptr;
    unsigned long long v = std::strtoull(cursor.c_str(), &end, 10);
    if (*end != '\0' || cursor[0] == '-' || v > INT32_MAX)
      return InvalidArgument("cursor: expected the next_cursor of an earlier answer", "cursor");
    q.offset = static_cast<size_t>(v);
  }
  return q;
}

// One customer's summary (days; divided by the unit when fitted).
struct Customer {
  uint32_t person = 0;
  int32_t first_day = 0, last_cal_day = 0;
  int x = 0;             // repeat purchase days in calibration
  double monetary = 0;   // mean amount of the repeat days
  int holdout_days = 0;  // purchase days after calibration_to, up to the holdout's end
};

struct Purchase {
  uint32_t person;
  int32_t day;
  double amount;
};

// Every payment of the snapshot before `end_ms` (and from `from_ms`), one per order.
std::vector<Purchase> ReadPurchases(const QueryContext& ctx, int64_t from_ms, int64_t end_ms) {
  const PeopleSettings& settings = ctx.people_settings();
  const StoreSnapshot& snap = ctx.snap;
  const EventMatcher pay = EventMatcher::Make(settings.pay_event, *snap.events);
  const auto& po = snap.persons->person_of();
  const size_t n = snap.persons->size();
  struct Row {
    uint32_t person;
    int64_t ts;
    double amount;
  };
  std::vector<Row> rows;
  std::unordered_map<std::string, size_t> orders;  // "person\x1forder" -> its row
  for (const auto& bp : snap.blocks) {
    const Block& blk = *bp;
    if (blk.size() == 0 || blk.min_ts() >= end_ms || !pay.MayMatch(blk) || pay.any) continue;
    const auto& did = blk.did();
    const auto& ts = blk.ts();
    auto [rb, re] = blk.EventRows(pay.code);
    const PropColumn* amount = blk.prop(settings.amount_property);
    const PropColumn* order = settings.order_property.empty() ? nullptr : blk.prop(settings.order_property);
    for (const uint32_t* r = rb; r < re; r++) {
      if (ts[*r] >= end_ms || ts[*r] < from_ms) continue;
      const uint32_t d = did[*r];
      const uint32_t p = d < po.size() ? po[d] : d;
      if (p >= n) continue;  // newer than the snapshot's person table
      double a = 0;
      if (amount && (!amount->GetNum(*r, &a) || !std::isfinite(a))) a = 0;  // as person facts read amounts
      std::string id = order && order->Present(*r) ? order->Get(*r).AsString() : std::string();
      if (!id.empty()) {  // an empty order id is none: the payment is an order by itself
        auto [it, fresh] = orders.try_emplace(std::to_string(p) + '\x1f' + id, rows.size());
        if (!fresh) {
          Row& o = rows[it->second];
          o.ts = std::min(o.ts, ts[*r]);
          o.amount = std::max(o.amount, a);
          continue;
        }
      }
      rows.push_back(Row{p, ts[*r], a});
    }
  }
  std::vector<Purchase> out;
  out.reserve(rows.size());
  for (const Row& r : rows) out.push_back(Purchase{r.person, ctx.tz.LocalDay(r.ts), r.amount});
  return out;
}

// Customers: persons with a purchase day in [from, cal_to], in person order.
std::vector<Customer> Summarise(std::vector<Purchase> purchases, int32_t cal_to, int32_t holdout_end,
                                const std::vector<uint8_t>* include) {
  std::sort(purchases.begin(), purchases.end(), [](const Purchase& a, const Purchase& b) {
    return a.person != b.person ? a.person < b.person : a.day < b.day;
  });
  std::vector<Customer> out;
  for (size_t i = 0; i < purchases.size();) {
    const uint32_t p = purchases[i].person;
    size_t j = i;
    while (j < purchases.size() && purchases[j].person == p) j++;
    const bool wanted = !include || (p < include->size() && (*include)[p]);
    if (wanted && purchases[i].day <= cal_to) {
      Customer c;
      c.person = p;
      c.first_day = purchases[i].day;
      double repeat_sum = 0;
      for (size_t k = i; k < j;) {
        const int32_t day = purchases[k].day;
        double sum = 0;
        for (; k < j && purchases[k].day == day; k++) sum += purchases[k].amount;
        if (day <= cal_to) {
          c.last_cal_day = day;
          if (day != c.first_day) c.x++, repeat_sum += sum;
        } else if (day <= holdout_end) {
          c.holdout_days++;
        }
      }
      c.monetary = c.x > 0 ? repeat_sum / c.x : 0;
      out.push_back(c);
    }
    i = j;
  }
  return out;
}

json Num(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

// The two models fitted to the customers' summaries (in the time unit), and the model JSON of
// the answer; a model is absent when there are too few customers for it.
struct FittedModels {
  json model = {{"bg_nbd", nullptr}, {"gamma_gamma", nullptr}};
  std::optional<stats::BgNbdParams> bg;
  std::optional<stats::GammaGammaParams> gg;
};

FittedModels FitModels(const std::vector<double>& xs, const std::vector<double>& txs, const std::vector<double>& Ts,
                       const std::vector<double>& ms, size_t repeaters) {
  FittedModels out;
  if (xs.size() >= 2 && repeaters >= 1) {
    stats::BgNbdFit fit = stats::FitBgNbd(stats::GroupCustomers(xs, txs, Ts));
    out.bg = fit.params;
    out.model["bg_nbd"] = {{"r", fit.params.r},
                           {"alpha", fit.params.alpha},
                           {"a", fit.params.a},
                           {"b", fit.params.b},
                           {"log_likelihood", fit.log_likelihood},
                           {"converged", fit.converged}};
  }
  size_t valued = 0;
  for (size_t i = 0; i < ms.size(); i++) valued += xs[i] > 0 && ms[i] > 0;
  if (valued >= 2) {
    stats::GammaGammaFit fit = stats::FitGammaGamma(xs, ms);
    if (fit.params.q > 1) out.gg = fit.params;  // else the population mean value is infinite
    out.model["gamma_gamma"] = {{"p", fit.params.p},          {"q", fit.params.q},
                                {"v", fit.params.v},          {"log_likelihood", fit.log_likelihood},
                                {"converged", fit.converged}, {"customers", valued}};
  }
  return out;
}

// The CLV of each 30-day step of the horizon (the last one shorter): the steps' ends in the
// time unit and their discount factors at the annual rate.
void HorizonSteps(int64_t horizon_days, double unit_days, double discount_annual, std::vector<double>* ends,
                  std::vector<double>* discounts) {
  for (int64_t d = 30;; d += 30) {
    const int64_t end = std::min(d, horizon_days);
    ends->push_back(static_cast<double>(end) / unit_days);
    discounts->push_back(std::pow(1 + discount_annual, -static_cast<double>(end) / 365.0));
    if (end == horizon_days) break;
  }
}

StatusOr<json> RunClv(const ClvQuery& q, const QueryContext& ctx) {
  const TimeZone& tz = ctx.tz;
  const int64_t from_ms = q.from_day ? tz.DayStartMs(*q.from_day) : INT64_MIN;
  const int64_t end_ms = q.holdout_to ? AsOfEndMs(tz, *q.holdout_to) : INT64_MAX;
  std::vector<Purchase> purchases = ReadPurchases(ctx, from_ms, end_ms);
  // The holdout: after calibration_to up to holdout_to, or to the last day with a payment.
  int32_t holdout_end = q.cal_to;
  if (q.holdout_to) {
    holdout_end = *q.holdout_to;
  } else {
    for (const Purchase& p : purchases) holdout_end = std::max(holdout_end, p.day);
  }
  std::vector<uint8_t> include;
  if (!q.filters.empty()) include = FilterSet(q.filters, ctx.snap).PersonVerdicts();
  std::vector<Customer> customers =
      Summarise(std::move(purchases), q.cal_to, holdout_end, q.filters.empty() ? nullptr : &include);

  const double u = q.unit_days;
  std::vector<double> xs, txs, Ts, ms;
  size_t repeaters = 0;
  for (const Customer& c : customers) {
    xs.push_back(c.x);
    txs.push_back((c.last_cal_day - c.first_day) / u);
    Ts.push_back((q.cal_to - c.first_day) / u);
    ms.push_back(c.monetary);
    repeaters += c.x > 0;
  }
  const FittedModels fitted = FitModels(xs, txs, Ts, ms, repeaters);
  const json& model = fitted.model;
  const std::optional<stats::BgNbdParams>& bg = fitted.bg;
  const std::optional<stats::GammaGammaParams>& gg = fitted.gg;

  // CLV: the purchases expected in each 30-day step of the horizon (the last one shorter),
  // times the expected value per purchase, discounted at the annual rate to the step's end.
  std::vector<double> step_ends, discounts;
  HorizonSteps(q.horizon_days, u, q.discount_annual, &step_ends, &discounts);
  const double horizon = static_cast<double>(q.horizon_days) / u;

  struct Scored {
    size_t i;
    double p_alive, expected, value, clv;
  };
  std::vector<Scored> scored;
  std::vector<uint8_t> listed;
  json not_customers = json::array();
  if (q.distinct_ids) {
    std::unordered_map<uint32_t, size_t> index;
    for (size_t i = 0; i < customers.size(); i++) index[customers[i].person] = i;
    listed.assign(customers.size(), 0);
    for (const std::string& id : *q.distinct_ids) {
      const int64_t did = ctx.find_distinct_id ? ctx.find_distinct_id(id) : -1;
      auto it = did < 0 ? index.end() : index.find(ctx.snap.persons->PersonOf(static_cast<uint32_t>(did)));
      if (it == index.end()) {
        not_customers.push_back(id);
      } else {
        listed[it->second] = 1;
      }
    }
  }
  const double nan = std::nan("");
  for (size_t i = 0; i < customers.size(); i++) {
    if (q.distinct_ids && !listed[i]) continue;
    Scored s{i, nan, nan, nan, nan};
    if (bg) {
      s.p_alive = stats::BgNbdProbabilityAlive(*bg, xs[i], txs[i], Ts[i]);
      s.expected = stats::BgNbdConditionalExpectedPurchases(*bg, horizon, xs[i], txs[i], Ts[i]);
    }
    if (gg) s.value = stats::GammaGammaExpectedAverageValue(*gg, xs[i], ms[i]);
    if (bg && gg) s.clv = stats::BgNbdDiscountedValue(*bg, s.value, xs[i], txs[i], Ts[i], step_ends, discounts);
    scored.push_back(s);
  }
  // Highest CLV first (expected purchases without a value model, then frequency); ties by person.
  auto key = [](const Scored& s) { return std::isfinite(s.clv) ? s.clv : std::isfinite(s.expected) ? s.expected : 0; };
  std::sort(scored.begin(), scored.end(), [&](const Scored& a, const Scored& b) {
    const double ka = key(a), kb = key(b);
    if (ka != kb) return ka > kb;
    if (xs[a.i] != xs[b.i]) return xs[a.i] > xs[b.i];
    return customers[a.i].person < customers[b.i].person;
  });
  json persons = json::array();
  const size_t end = std::min(scored.size(), q.offset + q.limit);
  for (size_t k = q.offset; k < end; k++) {
    const Scored& s = scored[k];
    const Customer& c = customers[s.i];
    persons.push_back({{"distinct_id", ctx.namer ? ctx.namer(c.person) : std::to_string(c.person)},
                       {"frequency", c.x},
                       {"recency", txs[s.i]},
                       {"T", Ts[s.i]},
                       {"monetary", c.monetary},
                       {"first_purchase", FormatDate(c.first_day)},
                       {"p_alive", Num(s.p_alive)},
                       {"expected_purchases", Num(s.expected)},
                       {"expected_average_value", Num(s.value)},
                       {"clv", Num(s.clv)}});
  }
  json out = {{"kind", "clv"},
              {"timezone", tz.name()},
              {"calibration_from", q.from_day ? json(FormatDate(*q.from_day)) : json(nullptr)},
              {"calibration_to", FormatDate(q.cal_to)},
              {"time_unit", q.unit_days == 7 ? "week" : "day"},
              {"horizon_days", q.horizon_days},
              {"discount_rate_annual", q.discount_annual},
              {"model", model},
              {"customers", customers.size()},
              {"repeaters", repeaters},
              {"persons", persons},
              {"persons_total", scored.size()},
              {"next_cursor", end < scored.size() ? json(std::to_string(end)) : json(nullptr)}};
  if (q.distinct_ids) out["not_customers"] = not_customers;
  if (!model.contains("bg_nbd") || model["bg_nbd"].is_null())
    out["note"] = "too few customers to fit the model: it needs at least 2 customers, 1 of them a repeat buyer";

  // The holdout check: purchase days after calibration_to per calibration frequency
  // (0..6, 7+), actual against the model's conditional expectation for the same length.
  if (holdout_end > q.cal_to) {
    const double duration = (holdout_end - q.cal_to) / u;
    constexpr int kGroups = 8;
    std::vector<double> n(kGroups, 0), actual(kGroups, 0), predicted(kGroups, 0);
    for (size_t i = 0; i < customers.size(); i++) {
      const int g = std::min(customers[i].x, kGroups - 1);
      n[g] += 1;
      actual[g] += customers[i].holdout_days;
      if (bg) predicted[g] += stats::BgNbdConditionalExpectedPurchases(*bg, duration, xs[i], txs[i], Ts[i]);
    }
    json groups = json::array();
    double ta = 0, tp = 0, tn = 0;
    for (int g = 0; g < kGroups; g++) {
      if (n[g] == 0) continue;
      groups.push_back({{"frequency", g},
                        {"label", g == kGroups - 1 ? "7+" : std::to_string(g)},
                        {"customers", n[g]},
                        {"actual_purchases", actual[g]},
                        {"predicted_purchases", bg ? json(predicted[g]) : json(nullptr)},
                        {"actual_mean", actual[g] / n[g]},
                        {"predicted_mean", bg ? json(predicted[g] / n[g]) : json(nullptr)}});
      ta += actual[g], tp += predicted[g], tn += n[g];
    }
    out["holdout"] = {
        {"from", FormatDate(q.cal_to + 1)},
        {"to", FormatDate(holdout_end)},
        {"duration", duration},
        {"groups", groups},
        {"totals",
         {{"customers", tn}, {"actual_purchases", ta}, {"predicted_purchases", bg ? json(tp) : json(nullptr)}}}};
  }
  return out;
}

}  // namespace

ClvScores ScoreClv(const QueryContext& ctx, int32_t cal_to, int64_t horizon_days) {
  ClvScores out;
  std::vector<Customer> customers =
      Summarise(ReadPurchases(ctx, INT64_MIN, AsOfEndMs(ctx.tz, cal_to)), cal_to, cal_to, nullptr);
  std::vector<double> xs, txs, Ts, ms;
  size_t repeaters = 0;
  for (const Customer& c : customers) {
    xs.push_back(c.x);
    txs.push_back(c.last_cal_day - c.first_day);
    Ts.push_back(cal_to - c.first_day);
    ms.push_back(c.monetary);
    repeaters += c.x > 0;
  }
  const FittedModels fitted = FitModels(xs, txs, Ts, ms, repeaters);
  if (!fitted.bg) return out;
  std::vector<double> step_ends, discounts;
  HorizonSteps(horizon_days, 1, 0.1, &step_ends, &discounts);
  const double nan = std::nan("");
  for (size_t i = 0; i < customers.size(); i++) {
    out.persons.push_back(customers[i].person);
    out.p_alive.push_back(stats::BgNbdProbabilityAlive(*fitted.bg, xs[i], txs[i], Ts[i]));
    out.expected_purchases.push_back(
        stats::BgNbdConditionalExpectedPurchases(*fitted.bg, static_cast<double>(horizon_days), xs[i], txs[i], Ts[i]));
    out.clv.push_back(fitted.gg ? stats::BgNbdDiscountedValue(
                                      *fitted.bg, stats::GammaGammaExpectedAverageValue(*fitted.gg, xs[i], ms[i]),
                                      xs[i], txs[i], Ts[i], step_ends, discounts)
                                : nan);
  }
  return out;
}

const QueryKind kClvKind{
    "clv",
    {},
    [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
      NS_ASSIGN_OR_RETURN(ClvQuery q, ParseClvQuery(request));
      NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
      return RunClv(q, ctx);
    },
    [](const json& request) { return ParseClvQuery(request).status(); },
    [](const json& r) {
      ResultTable rows;
      rows.push_back({"distinct_id", "frequency", "recency", "T", "monetary", "p_alive", "expected_purchases",
                      "expected_average_value", "clv"});
      for (const auto& p : r["persons"])
        rows.push_back({p["distinct_id"], p["frequency"], p["recency"], p["T"], p["monetary"], p["p_alive"],
                        p["expected_purchases"], p["expected_average_value"], p["clv"]});
      return rows;
    }};

}  // namespace ns
