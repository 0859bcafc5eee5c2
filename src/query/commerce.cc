// Commerce metrics (docs/queries.md "Commerce"). One pass over the snapshot collects, per
// person (the person of each row as of the query: merges after the fact are seen), the rows
// the metrics read: payments, refunds and carts of the range (and payments up to the
// longest window after it), every registration before the range's end (a registration
// counts where the person's first one falls), and the local days the person was active in
// the range. Then each person is evaluated on each scope (the range, each interval, each
// breakdown value) by one function, AddScope, so a bucket's figures are exactly the
// figures of a query over that bucket alone.
#include "query/commerce.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <map>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "query/json_fields.h"
#include "query/operators.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr int64_t kMsPerHour = 3'600'000;
constexpr int64_t kMsPerDayC = 86'400'000;

// register_event: the person's first event of any name is the registration.
constexpr std::string_view kFirstSeen = "$first_seen";

enum RowKind : uint8_t { kPay = 0, kRefund = 1, kCart = 2, kRegister = 3, kOther = 4 };

struct Row {
  uint32_t person;
  uint32_t group;
  int64_t ts;
  RowKind kind;
  double amount;
  uint32_t order;  // payments: 1 + the index of the order id's text; 0 = an order by itself
};

struct Activity {
  uint32_t person;
  uint32_t group;
  int32_t day;
  auto operator<=>(const Activity&) const = default;
};

// The scope a person is evaluated on: [lo_ms, hi_ms), local days [lo_day, hi_day].
struct Scope {
  int64_t lo_ms, hi_ms;
  int32_t lo_day, hi_day;
};

// Adds one person's contribution to `m`. `rows` are the person's rows (of one breakdown
// value, or all) in time order; `days` the local days the person was active in the range,
// ascending and distinct.
// Reorders `v` so that its elements are grouped by person, ascending (a counting sort);
// returns where each person's elements start (np + 1 entries).
template <typename T>
std::vector<size_t> GroupByPerson(std::vector<T>& v, size_t np) {
  std::vector<size_t> start(np + 1, 0);
  for (const T& x : v) start[x.person + 1]++;
  for (size_t p = 0; p < np; p++) start[p + 1] += start[p];
  std::vector<size_t> pos(start.begin(), start.end() - 1);
  std::vector<T> out(v.size());
  for (T& x : v) out[pos[x.person]++] = std::move(x);
  v = std::move(out);
  return start;
}

void AddScope(const std::vector<const Row*>& rows, const std::vector<int32_t>& days, const Scope& s,
              const CommerceQuery& q, const std::vector<std::string>& order_ids, CommerceMetrics& m) {
  auto d = std::lower_bound(days.begin(), days.end(), s.lo_day);
  if (d == days.end() || *d > s.hi_day) return;  // not active in the scope: nothing of it counts
  m.active_persons++;

  std::vector<int64_t> pay_ts;  // every payment (also after the scope: windows look ahead)
  for (const Row* r : rows)
    if (r->kind == kPay) pay_ts.push_back(r->ts);
  // paid within [t, t + window]
  auto paid_within = [&](int64_t t, int64_t window) {
    auto it = std::lower_bound(pay_ts.begin(), pay_ts.end(), t);
    return it != pay_ts.end() && *it <= t + window;
  };

  // Orders of the scope: one per order id (its earliest payment, its largest amount).
  std::map<std::string_view, std::pair<int64_t, double>> named;
  std::vector<std::pair<int64_t, double>> orders;
  const Row* first_reg = nullptr;
  for (const Row* r : rows) {
    if (r->kind == kRegister && !first_reg) first_reg = r;
    if (r->ts < s.lo_ms || r->ts >= s.hi_ms) continue;
    switch (r->kind) {
      case kPay:
        if (r->order == 0) {
          orders.emplace_back(r->ts, r->amount);
        } else {
          auto [it, fresh] = named.try_emplace(order_ids[r->order - 1], r->ts, r->amount);
          if (!fresh) it->second.second = std::max(it->second.second, r->amount);
        }
        break;
      case kRefund:
        m.refunds++;
        m.refund_amount += r->amount;
        break;
      case kCart:
        m.carts++;
        if (!paid_within(r->ts, q.cart_window_hours * kMsPerHour)) m.abandoned_carts++;
        break;
      default: break;
    }
  }
  for (const auto& [id, o] : named) orders.push_back(o);
  if (!orders.empty()) {
    std::sort(orders.begin(), orders.end());
    m.orders += orders.size();
    m.paying_persons++;
    if (orders.size() >= 2) m.repeat_payers++;
    for (size_t i = 0; i < orders.size(); i++) {
      m.gmv_gross += orders[i].second;
      if (i > 0)
        m.order_gaps_days.push_back(static_cast<double>(orders[i].first - orders[i - 1].first) /
                                    static_cast<double>(kMsPerDayC));
    }
  }
  if (first_reg && first_reg->ts >= s.lo_ms && first_reg->ts < s.hi_ms) {
    m.registered_persons++;
    if (paid_within(first_reg->ts, q.first_purchase_days * kMsPerDayC)) m.first_purchase_persons++;
  }
}

json Ratio(double num, double den) { return den > 0 ? json(num / den) : json(); }

StatusOr<std::string> EventName(const json& j, const char* key) {
  NS_ASSIGN_OR_RETURN(std::string name, GetString(j, key, "", false));
  if (name == kAnyEvent) return InvalidArgument(std::string(key) + ": must name one event, not $any", key);
  if (name == kFirstSeen && std::string_view(key) != "register_event")
    return InvalidArgument(std::string(key) + ": $first_seen is only for register_event", key);
  return name;
}

}  // namespace

StatusOr<CommerceQuery> ParseCommerceQuery(const json& j) {
  NS_RETURN_IF_ERROR(
      CheckFields(j, "",
                  {"kind", "date_from", "date_to", "interval", "breakdown", "breakdown_limit", "filters", "cohort",
                   "refund_event", "cart_event", "register_event", "first_purchase_days", "cart_window_hours"}));
  CommerceQuery q;
  NS_RETURN_IF_ERROR(ParseDateRange(j, &q.from_day, &q.to_day));
  if (auto it = j.find("interval"); it != j.end() && !it->is_null()) {
    NS_ASSIGN_OR_RETURN(std::string iv, GetString(j, "interval", "", true));
    auto parsed = ParseInterval(iv);
    if (!parsed.ok() || *parsed == Interval::kHour)
      return InvalidArgument("interval: expected day, week or month, got '" + iv + "'", "interval");
    q.interval = *parsed;
  }
  if (auto it = j.find("breakdown"); it != j.end() && !it->is_null()) {
    const json& b = it->is_array() && it->size() == 1 ? (*it)[0] : *it;
    if (!b.is_string() || b.get_ref<const std::string&>().empty())
      return InvalidArgument("breakdown: expected a property name (or person.<property>)", "breakdown");
    PropertyRef r;
    r.display = b.get<std::string>();
    r.person = r.display.rfind("person.", 0) == 0;
    r.name = r.person ? r.display.substr(7) : r.display;
    if (r.name.empty()) return InvalidArgument("breakdown: expected a property name after person.", "breakdown");
    q.breakdown = r;
  }
  NS_ASSIGN_OR_RETURN(int64_t lim, GetInt(j, "breakdown_limit", "", 25, 1, 1000));
  q.breakdown_limit = static_cast<size_t>(lim);
  NS_ASSIGN_OR_RETURN(q.filters, ParseFilters(j.value("filters", json::array()), "filters"));
  NS_RETURN_IF_ERROR(AppendCohortField(j, &q.filters));
  NS_ASSIGN_OR_RETURN(q.refund_event, EventName(j, "refund_event"));
  NS_ASSIGN_OR_RETURN(q.cart_event, EventName(j, "cart_event"));
  NS_ASSIGN_OR_RETURN(q.register_event, EventName(j, "register_event"));
  NS_ASSIGN_OR_RETURN(int64_t fpd, GetInt(j, "first_purchase_days", "", 7, 1, 365));
  NS_ASSIGN_OR_RETURN(int64_t cwh, GetInt(j, "cart_window_hours", "", 24, 1, 24 * 365));
  q.first_purchase_days = static_cast<int>(fpd);
  q.cart_window_hours = static_cast<int>(cwh);
  return q;
}

StatusOr<CommerceResult> RunCommerce(const CommerceQuery& q, const QueryContext& ctx) {
  const StoreSnapshot& snap = ctx.snap;
  const TimeZone& tz = ctx.tz;
  const PeopleSettings& settings = ctx.people_settings();
  const PersonTable& pt = *snap.persons;
  const size_t np = pt.size();

  CommerceEvents names;
  names.pay = settings.pay_event;
  // The project's names (people settings, the same the tags count), unless the request names others.
  names.refund = settings.refund_event;
  names.cart = settings.cart_event;
  names.reg = settings.register_event;
  if (!q.refund_event.empty()) names.refund = q.refund_event;
  if (!q.cart_event.empty()) names.cart = q.cart_event;
  if (!q.register_event.empty()) names.reg = q.register_event;
  // One event is one kind: a name given twice would count its rows twice over.
  const std::pair<const char*, const std::string*> kinds[] = {
      {"refund_event", &names.refund}, {"cart_event", &names.cart}, {"register_event", &names.reg}};
  for (size_t a = 0; a < 3; a++) {
    if (*kinds[a].second == names.pay)
      return InvalidArgument(std::string(kinds[a].first) + ": '" + names.pay + "' is the payment event",
                             kinds[a].first);
    for (size_t b = 0; b < a; b++)
      if (*kinds[a].second == *kinds[b].second)
        return InvalidArgument(std::string(kinds[a].first) + ": '" + *kinds[a].second + "' is also " + kinds[b].first,
                               kinds[a].first);
  }

  CommerceResult out;
  out.timezone = tz.name();
  out.date_from = q.from_day;
  out.date_to = q.to_day;
  out.events = names;
  out.first_purchase_days = q.first_purchase_days;
  out.cart_window_hours = q.cart_window_hours;
  out.interval = q.interval;
  if (q.breakdown) out.breakdown = q.breakdown->display;

  const int64_t range_lo = tz.DayStartMs(q.from_day), range_hi = tz.DayStartMs(q.to_day + 1);
  // Payments after the range still end a cart's or a registration's window.
  const int64_t scan_hi =
      range_hi + std::max<int64_t>(q.first_purchase_days * kMsPerDayC, q.cart_window_hours * kMsPerHour) + 1;
  const EventMatcher pay = EventMatcher::Make(names.pay, *snap.events);
  const EventMatcher refund = EventMatcher::Make(names.refund, *snap.events);
  const EventMatcher cart = EventMatcher::Make(names.cart, *snap.events);
  // "$first_seen": a person registers with their first event of any name (matching the
  // filters and, per breakdown value, of that value); no event is a registration then.
  const bool first_seen = names.reg == kFirstSeen;
  const EventMatcher reg = EventMatcher::Make(first_seen ? std::string_view() : names.reg, *snap.events);
  auto kind_of = [&](uint32_t code) {
    if (!pay.none && (pay.any || code == pay.code)) return kPay;
    if (!refund.none && code == refund.code) return kRefund;
    if (!cart.none && code == cart.code) return kCart;
    if (!reg.none && code == reg.code) return kRegister;
    return kOther;
  };
  const FilterSet filters(q.filters, snap);
  std::vector<PropertyRef> props;
  if (q.breakdown) props.push_back(*q.breakdown);
  BreakdownResolver breakdown(props, snap);

  // Blocks are shared out to threads, each collecting its own rows (merged below). The
  // breakdown resolver interns values as it meets them, so a breakdown scans on one thread.
  struct Part {
    std::vector<Row> rows;
    std::vector<Activity> acts;
    std::vector<std::string> order_ids;
    // first_seen: the earliest row before the range's end, per person (no breakdown) or per
    // (person << 32 | value).
    std::vector<int64_t> first_ts;
    std::unordered_map<uint64_t, int64_t> first_ts_of;
  };
  const int threads =
      q.breakdown ? 1 : std::max(1, std::min<int>(QueryThreads(), static_cast<int>(snap.blocks.size())));
  std::vector<Part> parts(static_cast<size_t>(threads));
  std::atomic<size_t> next{0};
  // Local day starts of the range: a row's day is found by binary search, or reused while
  // rows stay within the day found last (rows come mostly per person in time order).
  std::vector<int64_t> day_starts;
  for (int32_t d = q.from_day; d <= q.to_day + 1; d++) day_starts.push_back(tz.DayStartMs(d));
  auto work = [&](int t) {
    Part& P = parts[static_cast<size_t>(t)];
    if (first_seen && !q.breakdown) P.first_ts.assign(np, INT64_MAX);
    BlockGroups groups;
    size_t day = 0;  // day_starts[day] <= ts < day_starts[day + 1] for the last day found
    for (size_t b; (b = next.fetch_add(1)) < snap.blocks.size();) {
      if (ctx.deadline && ctx.deadline->Expired()) return;
      const Block& blk = *snap.blocks[b];
      if (blk.size() == 0 || blk.min_ts() >= scan_hi) continue;
      if (blk.max_ts() < range_lo && !reg.MayMatch(blk) && !first_seen)
        continue;  // before the range only registrations count
      const FilterSet::BlockEval eval = filters.ForBlock(blk);
      if (eval.always_false) continue;
      breakdown.ResolveBlock(blk, &groups);
      const PropColumn* amount = blk.prop(settings.amount_property);
      const PropColumn* order = settings.order_property.empty() ? nullptr : blk.prop(settings.order_property);
      const auto& ts = blk.ts();
      const auto& ev = blk.ev();
      const auto& did = blk.did();
      for (size_t i = 0; i < blk.size(); i++) {
        const int64_t t = ts[i];
        if (t >= scan_hi) continue;
        const RowKind kind = kind_of(ev[i]);
        const bool in_range = t >= range_lo && t < range_hi;
        if (!in_range && !(kind == kRegister && t < range_lo) && !(kind == kPay && t >= range_hi) &&
            !(first_seen && t < range_lo))
          continue;
        if (!eval.always_true && !eval.Match(i)) continue;
        const uint32_t p = pt.PersonOf(did[i]);
        if (p >= np) continue;  // newer than the snapshot's person table
        const uint32_t g = groups[i];
        if (first_seen && t < range_hi) {
          int64_t& f =
              q.breakdown ? P.first_ts_of.try_emplace((uint64_t{p} << 32) | g, INT64_MAX).first->second : P.first_ts[p];
          f = std::min(f, t);
          if (!in_range) continue;  // an earlier row only tells when the person was first seen
        }
        if (in_range) {
          if (t < day_starts[day] || t >= day_starts[day + 1])
            day =
                static_cast<size_t>(std::upper_bound(day_starts.begin(), day_starts.end(), t) - day_starts.begin()) - 1;
          Activity a{p, g, q.from_day + static_cast<int32_t>(day)};
          if (P.acts.empty() || P.acts.back() != a) P.acts.push_back(a);
        }
        if (kind == kOther) continue;
        Row r{p, g, t, kind, 0, 0};
        if (kind == kPay || kind == kRefund) {
          // Text that is not a finite number counts 0 (as in RFM: person_facts.cc).
          if (amount && (!amount->GetNum(i, &r.amount) || !std::isfinite(r.amount))) r.amount = 0;
          if (kind == kPay && order && order->Present(i)) {
            std::string id = order->Get(i).AsString();
            if (!id.empty()) {
              P.order_ids.push_back(std::move(id));
              r.order = static_cast<uint32_t>(P.order_ids.size());
            }
          }
        }
        P.rows.push_back(r);
      }
    }
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; t++) pool.emplace_back(work, t);
  work(0);
  for (auto& th : pool) th.join();
  if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
  std::vector<Row> rows = std::move(parts[0].rows);
  std::vector<Activity> acts = std::move(parts[0].acts);
  std::vector<std::string> order_ids = std::move(parts[0].order_ids);
  parts[0].rows.clear();
  parts[0].acts.clear();
  for (size_t t = 1; t < parts.size(); t++) {
    const uint32_t base = static_cast<uint32_t>(order_ids.size());
    for (Row r : parts[t].rows) {
      if (r.order) r.order += base;
      rows.push_back(r);
    }
    acts.insert(acts.end(), parts[t].acts.begin(), parts[t].acts.end());
    order_ids.insert(order_ids.end(), std::make_move_iterator(parts[t].order_ids.begin()),
                     std::make_move_iterator(parts[t].order_ids.end()));
    parts[t].rows = {};
    parts[t].acts = {};
    parts[t].order_ids = {};
  }
  if (first_seen) {
    // One registration row per person (and value): the earliest of the threads' rows.
    std::unordered_map<uint64_t, int64_t> first;
    for (const Part& P : parts) {
      for (size_t p = 0; p < P.first_ts.size(); p++)
        if (P.first_ts[p] != INT64_MAX) {
          auto [it, fresh] = first.try_emplace(uint64_t{p} << 32, P.first_ts[p]);
          if (!fresh) it->second = std::min(it->second, P.first_ts[p]);
        }
      for (const auto& [key, ts] : P.first_ts_of) {
        auto [it, fresh] = first.try_emplace(key, ts);
        if (!fresh) it->second = std::min(it->second, ts);
      }
    }
    for (const auto& [key, ts] : first)
      rows.push_back(Row{static_cast<uint32_t>(key >> 32), static_cast<uint32_t>(key), ts, kRegister, 0, 0});
  }
  // Grouped by person in linear time; each person's few rows are sorted on their own below.
  const std::vector<size_t> row_start = GroupByPerson(rows, np);
  const std::vector<size_t> act_start = GroupByPerson(acts, np);

  std::vector<Bucket> buckets;
  std::vector<Scope> bucket_scopes;
  if (q.interval) {
    buckets = tz.MakeBuckets(q.from_day, q.to_day, *q.interval);
    for (const Bucket& b : buckets) {
      bucket_scopes.push_back(Scope{b.start_ms, b.end_ms, tz.LocalDay(b.start_ms), tz.LocalDay(b.end_ms) - 1});
      out.dates.push_back(b.label);
    }
    out.series.resize(buckets.size());
  }
  const Scope range{range_lo, range_hi, q.from_day, q.to_day};
  std::map<uint32_t, CommerceMetrics> by_group;

  std::vector<const Row*> prow, grow;
  std::vector<int32_t> pdays, gdays;
  std::vector<uint32_t> pgroups;
  std::vector<Activity> pacts;
  for (size_t p = 0; p < np; p++) {
    if (row_start[p] == row_start[p + 1] && act_start[p] == act_start[p + 1]) continue;
    prow.clear();
    pdays.clear();
    pgroups.clear();
    for (size_t x = row_start[p]; x < row_start[p + 1]; x++) prow.push_back(&rows[x]);
    std::sort(prow.begin(), prow.end(),
              [](const Row* a, const Row* b) { return a->ts != b->ts ? a->ts < b->ts : a->kind < b->kind; });
    pacts.assign(acts.begin() + static_cast<std::ptrdiff_t>(act_start[p]),
                 acts.begin() + static_cast<std::ptrdiff_t>(act_start[p + 1]));
    std::sort(pacts.begin(), pacts.end());
    pacts.erase(std::unique(pacts.begin(), pacts.end()), pacts.end());
    for (const Activity& a : pacts) {
      pdays.push_back(a.day);
      if (pgroups.empty() || pgroups.back() != a.group) pgroups.push_back(a.group);
    }
    std::sort(pdays.begin(), pdays.end());
    pdays.erase(std::unique(pdays.begin(), pdays.end()), pdays.end());
    AddScope(prow, pdays, range, q, order_ids, out.total);
    if (q.interval) {
      int32_t last = -1;
      for (int32_t d : pdays) {
        const int32_t k = TimeZone::PeriodsBetween(q.from_day, d, *q.interval);
        if (k == last || k < 0 || static_cast<size_t>(k) >= buckets.size()) continue;
        last = k;
        AddScope(prow, pdays, bucket_scopes[static_cast<size_t>(k)], q, order_ids, out.series[static_cast<size_t>(k)]);
      }
    }
    if (q.breakdown) {
      // Each value's figures are those of the query with the extra filter "breakdown = value":
      // a person's rows of that value only (activity groups are the values the person has in
      // the range; a value seen only outside the range adds nothing, as AddScope says).
      for (uint32_t g : pgroups) {
        grow.clear();
        gdays.clear();
        for (const Row* r : prow)
          if (r->group == g) grow.push_back(r);
        for (const Activity& a : pacts)
          if (a.group == g) gdays.push_back(a.day);
        AddScope(grow, gdays, range, q, order_ids, by_group[g]);
      }
    }
  }
  if (q.breakdown) {
    std::vector<std::pair<json, CommerceMetrics>> list;
    for (auto& [g, m] : by_group) list.emplace_back(breakdown.Value(g), std::move(m));
    std::sort(list.begin(), list.end(), [](const auto& a, const auto& b) {
      const double ga = a.second.gmv_gross - a.second.refund_amount, gb = b.second.gmv_gross - b.second.refund_amount;
      if (ga != gb) return ga > gb;
      if (a.second.orders != b.second.orders) return a.second.orders > b.second.orders;
      return a.first.dump() < b.first.dump();
    });
    if (list.size() > q.breakdown_limit) list.resize(q.breakdown_limit);
    out.breakdowns = std::move(list);
  }
  return out;
}

json CommerceMetricsJson(const CommerceMetrics& m) {
  json cycle;
  if (!m.order_gaps_days.empty()) {
    std::vector<double> g = m.order_gaps_days;
    std::sort(g.begin(), g.end());
    const size_t n = g.size();
    cycle = n % 2 ? g[n / 2] : (g[n / 2 - 1] + g[n / 2]) / 2;
  }
  return json{
      {"gmv", m.gmv_gross - m.refund_amount},
      {"gmv_gross", m.gmv_gross},
      {"refunds", m.refunds},
      {"refund_amount", m.refund_amount},
      {"orders", m.orders},
      {"paying_persons", m.paying_persons},
      {"active_persons", m.active_persons},
      {"aov", Ratio(m.gmv_gross, static_cast<double>(m.orders))},
      {"paid_conversion_rate", Ratio(static_cast<double>(m.paying_persons), static_cast<double>(m.active_persons))},
      {"registered_persons", m.registered_persons},
      {"first_purchase_persons", m.first_purchase_persons},
      {"first_purchase_conversion",
       Ratio(static_cast<double>(m.first_purchase_persons), static_cast<double>(m.registered_persons))},
      {"repeat_payers", m.repeat_payers},
      {"repurchase_rate", Ratio(static_cast<double>(m.repeat_payers), static_cast<double>(m.paying_persons))},
      {"repurchase_cycle_days", cycle},
      {"repurchase_gaps", m.order_gaps_days.size()},
      {"carts", m.carts},
      {"abandoned_carts", m.abandoned_carts},
      {"cart_abandonment_rate", Ratio(static_cast<double>(m.abandoned_carts), static_cast<double>(m.carts))}};
}

json ToJson(const CommerceResult& r) {
  json out = CommerceMetricsJson(r.total);
  out["kind"] = "commerce";
  out["timezone"] = r.timezone;
  out["date_from"] = FormatDate(r.date_from);
  out["date_to"] = FormatDate(r.date_to);
  out["events"] = {{"pay_event", r.events.pay},
                   {"refund_event", r.events.refund},
                   {"cart_event", r.events.cart},
                   {"register_event", r.events.reg}};
  out["first_purchase_days"] = r.first_purchase_days;
  out["cart_window_hours"] = r.cart_window_hours;
  if (r.interval) {
    out["interval"] = IntervalName(*r.interval);
    out["dates"] = r.dates;
    json series = json::array();
    for (size_t k = 0; k < r.series.size(); k++) {
      json m = CommerceMetricsJson(r.series[k]);
      m["date"] = r.dates[k];
      series.push_back(std::move(m));
    }
    out["series"] = std::move(series);
  }
  if (r.breakdown) {
    out["breakdown"] = *r.breakdown;
    json parts = json::array();
    for (const auto& [value, m] : r.breakdowns) {
      json x = CommerceMetricsJson(m);
      x["breakdown_value"] = value;
      parts.push_back(std::move(x));
    }
    out["breakdowns"] = std::move(parts);
  }
  return out;
}

namespace {

const char* const kMetricColumns[] = {"gmv",
                                      "refunds",
                                      "refund_amount",
                                      "orders",
                                      "paying_persons",
                                      "active_persons",
                                      "aov",
                                      "paid_conversion_rate",
                                      "first_purchase_conversion",
                                      "repurchase_rate",
                                      "repurchase_cycle_days",
                                      "cart_abandonment_rate"};

}  // namespace

const QueryKind kCommerceKind{"commerce",
                              {},
                              [](const json& request, const QueryContext& ctx) -> StatusOr<json> {
                                NS_ASSIGN_OR_RETURN(CommerceQuery q, ParseCommerceQuery(request));
                                NS_RETURN_IF_ERROR(ctx.BindCohorts(q.filters));
                                NS_ASSIGN_OR_RETURN(CommerceResult r, RunCommerce(q, ctx));
                                return ToJson(r);
                              },
                              [](const json& request) { return ParseCommerceQuery(request).status(); },
                              [](const json& r) {
                                // One row for the range, then one per interval and per breakdown value.
                                ResultTable rows;
                                std::vector<json> head{"scope"};
                                for (const char* c : kMetricColumns) head.push_back(c);
                                rows.push_back(head);
                                auto add = [&](const json& label, const json& m) {
                                  std::vector<json> row{label};
                                  for (const char* c : kMetricColumns) row.push_back(m[c]);
                                  rows.push_back(std::move(row));
                                };
                                add("total", r);
                                if (r.contains("series"))
                                  for (const auto& m : r["series"]) add(m["date"], m);
                                if (r.contains("breakdowns"))
                                  for (const auto& m : r["breakdowns"]) add(m["breakdown_value"], m);
                                return rows;
                              }};

}  // namespace ns
