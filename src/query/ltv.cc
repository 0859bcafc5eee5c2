// The LTV cohort table (docs/queries.md "LTV"): persons grouped by the period (month or
// week, the project's time zone) of their first payment; per cohort and period k since it,
// the cohort's cumulative net revenue (orders, de-duplicated by order_id over the person's
// whole history as in RFM, minus refunds) through period k, and that per person.
#include <algorithm>
#include <cmath>
#include <map>

#include "query/commerce.h"
#include "query/json_fields.h"
#include "query/operators.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

StatusOr<LtvQuery> ParseLtvQuery(const json& j) {
  NS_RETURN_IF_ERROR(CheckFields(
      j, "", {"kind", "date_from", "date_to", "period", "periods", "as_of", "filters", "cohort", "refund_event"}));
  LtvQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  NS_ASSIGN_OR_RETURN(std::string period, GetString(j, "period", "", false, "month"));
  if (period == "month") {
    q.period = Interval::kMonth;
  } else if (period == "week") {
    q.period = Interval::kWeek;
  } else {
    return InvalidArgument("period: expected month or week, got '" + period + "'", "period");
  }
  NS_ASSIGN_OR_RETURN(int64_t periods, GetInt(j, "periods", "", 12, 1, 120));
  q.periods = static_cast<int>(periods);
  NS_ASSIGN_OR_RETURN(std::string as_of, GetString(j, "as_of", "", false));
  if (!as_of.empty()) {
    NS_ASSIGN_OR_RETURN(int32_t d, ParseDate(as_of, "as_of"));
    if (d < q.from_day) return InvalidArgument("as_of (" + as_of + ") is before date_from", "as_of");
    q.as_of_day = d;
  }
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  NS_RETURN_IF_ERROR(AppendCohortField(j, &q.filters));
  NS_ASSIGN_OR_RETURN(q.refund_event, GetString(j, "refund_event", "", false));
  if (q.refund_event == kAnyEvent)
    return InvalidArgument("refund_event: must name one event, not $any", "refund_event");
  return q;
}

StatusOr<LtvResult> RunLtv(const LtvQuery& q, const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const TimeZone& tz = ctx.tz;
  const PeopleSettings& settings = ctx.people_settings();
  const PersonTable& pt = *snap.persons;
  const std::string refund_name = q.refund_event.empty() ? settings.refund_event : q.refund_event;
  if (refund_name == settings.pay_event)
    return InvalidArgument("refund_event: '" + refund_name + "' is the payment event", "refund_event");

  LtvResult out;
  out.timezone = tz.name();
  out.period = q.period;
  out.periods = q.periods;
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  out.as_of_day = q.as_of_day.value_or(tz.LocalDay(NowMs()));
  const int64_t end_ms = AsOfEndMs(tz, out.as_of_day);

  struct Row {
    uint32_t person;
    int64_t ts;
    bool refund;
    double amount;
    std::string order;
  };
  std::vector<Row> rows;
  const EventMatcher pay = EventMatcher::Make(settings.pay_event, *snap.events);
  const EventMatcher refund = EventMatcher::Make(refund_name, *snap.events);
  const FilterSet filters(q.filters, snap);
  for (const auto& bp : snap.blocks) {
    if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
    const Block& blk = *bp;
    if (blk.size() == 0 || blk.min_ts() >= end_ms) continue;
    const FilterSet::BlockEval eval = filters.ForBlock(blk);
    if (eval.always_false) continue;
    const PropColumn* amount = blk.prop(settings.amount_property);
    const PropColumn* order = settings.order_property.empty() ? nullptr : blk.prop(settings.order_property);
    for (const EventMatcher* m : {&pay, &refund}) {
      if (m->any || !m->MayMatch(blk)) continue;
      auto [rb, re] = blk.EventRows(m->code);
      for (const uint32_t* r = rb; r < re; r++) {
        const size_t i = *r;
        if (blk.ts()[i] >= end_ms) continue;
        if (!eval.always_true && !eval.Match(i)) continue;
        const uint32_t p = pt.PersonOf(blk.did()[i]);
        if (p >= pt.size()) continue;
        Row row{p, blk.ts()[i], m == &refund, 0, {}};
        if (amount && (!amount->GetNum(i, &row.amount) || !std::isfinite(row.amount))) row.amount = 0;
        if (m == &pay && order && order->Present(i)) row.order = order->Get(i).AsString();
        rows.push_back(std::move(row));
      }
    }
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.person != b.person ? a.person < b.person : a.ts < b.ts; });

  struct Acc {
    uint64_t persons = 0;
    std::vector<double> revenue;  // per period, not yet cumulative
  };
  std::map<int32_t, Acc> cohorts;  // by the first day of the cohort's period
  for (size_t i = 0; i < rows.size();) {
    const uint32_t p = rows[i].person;
    size_t e = i;
    while (e < rows.size() && rows[e].person == p) e++;
    // The person's orders over its whole history: earliest payment, largest amount.
    std::map<std::string, std::pair<int64_t, double>> named;
    std::vector<std::pair<int64_t, double>> orders;
    for (size_t x = i; x < e; x++) {
      const Row& r = rows[x];
      if (r.refund) continue;
      if (r.order.empty()) {
        orders.emplace_back(r.ts, r.amount);
      } else {
        auto [it, fresh] = named.try_emplace(r.order, r.ts, r.amount);
        if (!fresh) it->second.second = std::max(it->second.second, r.amount);
      }
    }
    for (const auto& [id, o] : named) orders.push_back(o);
    if (orders.empty()) {
      i = e;
      continue;
    }
    int64_t first = INT64_MAX;
    for (const auto& o : orders) first = std::min(first, o.first);
    const int32_t first_day = tz.LocalDay(first);
    if (first_day >= q.from_day && first_day <= q.to_day) {
      Acc& c = cohorts[TimeZone::PeriodStartDay(first_day, q.period)];
      c.persons++;
      c.revenue.resize(static_cast<size_t>(q.periods), 0);
      auto add = [&](int64_t ts, double v) {
        const int32_t k = TimeZone::PeriodsBetween(first_day, tz.LocalDay(ts), q.period);
        if (k >= 0 && k < q.periods) c.revenue[static_cast<size_t>(k)] += v;
      };
      for (const auto& o : orders) add(o.first, o.second);
      for (size_t x = i; x < e; x++)
        if (rows[x].refund && rows[x].ts >= first) add(rows[x].ts, -rows[x].amount);
    }
    i = e;
  }
  for (auto& [start, acc] : cohorts) {
    LtvCohort c;
    c.start_day = start;
    c.persons = acc.persons;
    // Periods begun by as_of only: a later cell would show revenue that is still to come.
    const int shown = std::min(q.periods, TimeZone::PeriodsBetween(start, out.as_of_day, q.period) + 1);
    double sum = 0;
    for (int k = 0; k < shown; k++) {
      sum += acc.revenue[static_cast<size_t>(k)];
      c.revenue.push_back(sum);
    }
    out.cohorts.push_back(std::move(c));
  }
  return out;
}

json ToJson(const LtvResult& r) {
  json cohorts = json::array();
  std::vector<double> all_revenue(static_cast<size_t>(r.periods), 0);
  std::vector<uint64_t> all_persons(static_cast<size_t>(r.periods), 0);
  for (const LtvCohort& c : r.cohorts) {
    json ltv = json::array();
    for (size_t k = 0; k < c.revenue.size(); k++) {
      ltv.push_back(c.revenue[k] / static_cast<double>(c.persons));
      all_revenue[k] += c.revenue[k];
      all_persons[k] += c.persons;
    }
    cohorts.push_back(
        {{"cohort", FormatDate(c.start_day)}, {"persons", c.persons}, {"revenue", c.revenue}, {"ltv", ltv}});
  }
  // Every cohort that has reached period k, weighted by its persons.
  json all_ltv = json::array();
  json all_n = json::array();
  for (size_t k = 0; k < all_revenue.size() && all_persons[k] > 0; k++) {
    all_ltv.push_back(all_revenue[k] / static_cast<double>(all_persons[k]));
    all_n.push_back(all_persons[k]);
  }
  return json{{"kind", "ltv"},
              {"timezone", r.timezone},
              {"period", IntervalName(r.period)},
              {"periods", r.periods},
              {"date_from", FormatDate(r.date_from)},
              {"date_to", FormatDate(r.date_to)},
              {"as_of", FormatDate(r.as_of_day)},
              {"cohorts", cohorts},
              {"all", {{"persons", all_n}, {"ltv", all_ltv}}}};
}

const QueryKind kLtvKind{"ltv",
                         {},
                         [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
                           NS_ASSIGN_OR_RETURN(LtvQuery q, ParseLtvQuery(request));
                           NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
                           NS_ASSIGN_OR_RETURN(LtvResult r, RunLtv(q, ctx));
                           return ToJson(r);
                         },
                         [](const json& request) { return ParseLtvQuery(request).status(); },
                         [](const json& r) {
                           ResultTable rows;
                           std::vector<json> head{"cohort", "persons"};
                           for (int k = 0; k < r["periods"].get<int>(); k++) head.push_back("ltv_" + std::to_string(k));
                           rows.push_back(head);
                           for (const auto& c : r["cohorts"]) {
                             std::vector<json> row{c["cohort"], c["persons"]};
                             for (const auto& v : c["ltv"]) row.push_back(v);
                             rows.push_back(std::move(row));
                           }
                           return rows;
                         }};

}  // namespace ns
