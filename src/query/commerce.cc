// Commerce metrics (docs/queries.md "Commerce"). Per person (the person of each row as of
// the query: merges after the fact are seen) the metrics read: payments, refunds and carts
// of the range (and payments up to the longest window after it), the person's earliest
// registration before the range's end (a registration counts where the person's first one
// falls), and the local days the person was active in the range. Each person is evaluated
// on each scope (the range, each interval, each breakdown value) by one function, AddScope,
// so a bucket's figures are exactly the figures of a query over that bucket alone.
//
// How: the registrations before the range are reduced to each person's earliest first
// (event index, one serial pass over those blocks); then one fused pass over the range in
// per-person time order (person_scan.h), persons split over the query threads, evaluates
// each tile of persons as soon as their rows are in, into per-thread sums added at the end.
#include "query/commerce.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string_view>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

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

// Row::group of a row that belongs to no breakdown value's scope (only to the scopes of
// every value together).
constexpr uint32_t kNoGroup = UINT32_MAX;

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
// Reused buffers of AddScope (one per thread: no allocation per person).
struct ScopeScratch {
  std::vector<int64_t> pay_ts;
  std::vector<std::tuple<std::string_view, int64_t, double>> named;
  std::vector<std::pair<int64_t, double>> orders;
};

void AddScope(const std::vector<const Row*>& rows, const std::vector<int32_t>& days, const Scope& s,
              const CommerceQuery& q, const std::vector<std::string>& order_ids, ScopeScratch& scratch,
              CommerceMetrics& m) {
  auto d = std::lower_bound(days.begin(), days.end(), s.lo_day);
  if (d == days.end() || *d > s.hi_day) return;  // not active in the scope: nothing of it counts
  m.active_persons++;

  std::vector<int64_t>& pay_ts = scratch.pay_ts;  // every payment (also after the scope: windows look ahead)
  pay_ts.clear();
  for (const Row* r : rows)
    if (r->kind == kPay) pay_ts.push_back(r->ts);
  // paid within [t, t + window]
  auto paid_within = [&](int64_t t, int64_t window) {
    auto it = std::lower_bound(pay_ts.begin(), pay_ts.end(), t);
    return it != pay_ts.end() && *it <= t + window;
  };

  // Orders of the scope: one per order id (its earliest payment, its largest amount).
  auto& named = scratch.named;  // (order id, ts, amount) of the payments with an id
  auto& orders = scratch.orders;
  named.clear();
  orders.clear();
  const Row* first_reg = nullptr;
  for (const Row* r : rows) {
    if (r->kind == kRegister && !first_reg) first_reg = r;
    if (r->ts < s.lo_ms || r->ts >= s.hi_ms) continue;
    switch (r->kind) {
      case kPay:
        if (r->order == 0) {
          orders.emplace_back(r->ts, r->amount);
        } else {
          named.emplace_back(order_ids[r->order - 1], r->ts, r->amount);
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
  // Grouped by id, each id's payments still in time order: the first is the earliest.
  std::stable_sort(named.begin(), named.end(),
                   [](const auto& a, const auto& b) { return std::get<0>(a) < std::get<0>(b); });
  for (size_t i = 0; i < named.size();) {
    size_t j = i + 1;
    double amount = std::get<2>(named[i]);
    for (; j < named.size() && std::get<0>(named[j]) == std::get<0>(named[i]); j++)
      amount = std::max(amount, std::get<2>(named[j]));
    orders.emplace_back(std::get<1>(named[i]), amount);
    i = j;
  }
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

// to += from (the sums of two disjoint sets of persons).
void AddMetrics(const CommerceMetrics& from, CommerceMetrics& to) {
  to.gmv_gross += from.gmv_gross;
  to.refund_amount += from.refund_amount;
  to.refunds += from.refunds;
  to.orders += from.orders;
  to.paying_persons += from.paying_persons;
  to.active_persons += from.active_persons;
  to.repeat_payers += from.repeat_payers;
  to.registered_persons += from.registered_persons;
  to.first_purchase_persons += from.first_purchase_persons;
  to.carts += from.carts;
  to.abandoned_carts += from.abandoned_carts;
  to.order_gaps_days.insert(to.order_gaps_days.end(), from.order_gaps_days.begin(), from.order_gaps_days.end());
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
  std::vector<RowKind> kind_by_code(snap.events->size());  // kind_of, looked up per row
  for (size_t c = 0; c < kind_by_code.size(); c++) kind_by_code[c] = kind_of(static_cast<uint32_t>(c));
  const FilterSet filters(q.filters, snap);
  std::vector<PropertyRef> props;
  if (q.breakdown) props.push_back(*q.breakdown);
  BreakdownResolver breakdown(props, snap);
  const bool per_group = q.breakdown.has_value();
  auto group_key = [](uint32_t p, uint32_t g) { return (uint64_t{p} << 32) | g; };

  // 1. Before the range only a person's earliest registration counts (AddScope reads the
  // first one): its time per person (or per person and breakdown value), from the register
  // event's rows (each block's event index) or, for $first_seen, from every row. Serial: the
  // breakdown resolver interns values as it meets them; ranges that start after most of the
  // history are the rare case.
  std::vector<int64_t> pre_reg;                      // per person, every value (empty: none)
  std::unordered_map<uint64_t, int64_t> pre_reg_of;  // per (person, value), with a breakdown
  // (A register event named $any never registers anyone: kind_of matches codes only.)
  if (first_seen || (!reg.none && !reg.any)) {
    BlockGroups groups;
    std::vector<uint32_t> all_rows;
    for (const auto& bp : snap.blocks) {
      const Block& blk = *bp;
      if (blk.size() == 0 || blk.min_ts() >= range_lo || (!first_seen && !reg.MayMatch(blk))) continue;
      if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();
      const FilterSet::BlockEval eval = filters.ForBlock(blk);
      if (eval.always_false) continue;
      const uint32_t* rb;
      const uint32_t* re;
      if (first_seen) {
        all_rows.resize(blk.size());
        for (size_t i = 0; i < blk.size(); i++) all_rows[i] = static_cast<uint32_t>(i);
        rb = all_rows.data();
        re = rb + all_rows.size();
      } else {
        std::tie(rb, re) = blk.EventRows(reg.code);
        if (!rb) continue;
      }
      if (per_group) breakdown.ResolveBlock(blk, &groups);
      const auto& ts = blk.ts();
      const auto& did = blk.did();
      for (const uint32_t* r = rb; r < re; r++) {
        const int64_t t = ts[*r];
        if (t >= range_lo || (!eval.always_true && !eval.Match(*r))) continue;
        const uint32_t p = pt.PersonOf(did[*r]);
        if (p >= np) continue;  // newer than the snapshot's person table
        if (pre_reg.empty()) pre_reg.assign(np, INT64_MAX);
        pre_reg[p] = std::min(pre_reg[p], t);
        if (per_group) {
          int64_t& f = pre_reg_of.try_emplace(group_key(p, groups[*r]), INT64_MAX).first->second;
          f = std::min(f, t);
        }
      }
    }
  }

  // 2. One pass over the rows of the range (and the payments up to the longest window after
  // it) in per-person time order, persons split over the query threads (person_scan.h). A
  // tile's rows are collected per slot and, once the tile's persons have every row seen,
  // each person is evaluated on every scope by AddScope into the slot's own metrics; the
  // slots' metrics are added up at the end. No list over all rows is ever built.
  const PersonOrderScan scan(snap, range_lo, scan_hi);
  const std::vector<const Block*>& blocks = scan.blocks();
  struct BlockInfo {
    const int64_t* ts = nullptr;  // the columns, looked up once (not per row)
    const uint32_t* ev = nullptr;
    const uint32_t* did = nullptr;
    FilterSet::BlockEval eval;
    BlockGroups groups;
    const PropColumn* amount = nullptr;
    const PropColumn* order = nullptr;
  };
  std::vector<BlockInfo> info(blocks.size());
  for (size_t b = 0; b < blocks.size(); b++) {  // serial: filters and breakdown values per block
    const Block& blk = *blocks[b];
    info[b].ts = blk.ts().data();
    info[b].ev = blk.ev().data();
    info[b].did = blk.did().data();
    info[b].eval = filters.ForBlock(blk);
    if (per_group) breakdown.ResolveBlock(blk, &info[b].groups);
    info[b].amount = blk.prop(settings.amount_property);
    info[b].order = settings.order_property.empty() ? nullptr : blk.prop(settings.order_property);
  }

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
  std::vector<int32_t> bucket_of_day;  // per day of the range, its interval's index
  if (q.interval)
    for (int32_t d = q.from_day; d <= q.to_day; d++)
      bucket_of_day.push_back(TimeZone::PeriodsBetween(q.from_day, d, *q.interval));
  // Local day starts of the range: a row's day is found by binary search, or reused while
  // rows stay within the day found last.
  std::vector<int64_t> day_starts;
  for (int32_t d = q.from_day; d <= q.to_day + 1; d++) day_starts.push_back(tz.DayStartMs(d));

  struct Slot {
    // The current tile's rows and activity (persons of the tile only).
    std::vector<Row> rows;
    std::vector<Activity> acts;
    std::vector<std::string> order_ids;   // Row::order - 1 indexes it
    std::unordered_set<uint64_t> firsts;  // $first_seen: (person, value) with a row in the tile
    uint32_t last_did = UINT32_MAX;       // the id and value of the last row whose activity was recorded
    uint32_t last_group = 0;
    size_t day = 0;  // day_starts[day] <= ts < day_starts[day + 1] last found
    // The slot's sums.
    CommerceMetrics total;
    std::vector<CommerceMetrics> series;
    std::map<uint32_t, CommerceMetrics> by_group;
    // Scratch of the per-person evaluation.
    std::vector<const Row*> prow, grow;
    std::vector<int32_t> pdays, gdays;
    std::vector<uint32_t> pgroups;
    std::vector<Activity> pacts;
    std::vector<size_t> row_start, act_start;
    std::vector<Row> extra;  // pre-range registrations of the tile's persons
    ScopeScratch scratch;
  };
  const int slots = QueryThreads();
  std::vector<Slot> slot_state(static_cast<size_t>(slots));
  for (Slot& s : slot_state) s.series.resize(buckets.size());

  // One row: its activity and, for the rows the metrics read, the row itself.
  auto visit = [&](Slot& S, uint32_t b, uint32_t i) {
    const BlockInfo& bi = info[b];
    const int64_t t = bi.ts[i];
    if (t < range_lo || t >= scan_hi) return;
    const uint32_t code = bi.ev[i];
    const RowKind kind = code < kind_by_code.size() ? kind_by_code[code] : kind_of(code);
    const bool in_range = t < range_hi;
    if (!in_range && kind != kPay) return;  // after the range only payments count
    const uint32_t d = bi.did[i];
    // Most rows are other events of the id (and value) whose activity that day was just recorded
    // (rows come grouped by person): nothing more to learn from them.
    const uint32_t g = per_group ? bi.groups[i] : 0;
    if (kind == kOther && d == S.last_did && g == S.last_group && t >= day_starts[S.day] && t < day_starts[S.day + 1] &&
        bi.eval.always_true)
      return;
    if (bi.eval.always_false || (!bi.eval.always_true && !bi.eval.Match(i))) return;
    const uint32_t p = pt.PersonOf(d);
    if (in_range) {
      if (t < day_starts[S.day] || t >= day_starts[S.day + 1])
        S.day = static_cast<size_t>(std::upper_bound(day_starts.begin(), day_starts.end(), t) - day_starts.begin()) - 1;
      S.last_did = d;
      S.last_group = g;
      Activity a{p, g, static_cast<int32_t>(S.day)};  // day: from date_from, until evaluation
      if (S.acts.empty() || S.acts.back() != a) {
        S.acts.push_back(a);
        // $first_seen: the person's (value's) first row of the range registers them (a
        // person's rows come in time order; an earlier row before the range wins later).
        if (first_seen && S.firsts.insert(group_key(p, g)).second) S.rows.push_back(Row{p, g, t, kRegister, 0, 0});
      }
    }
    if (kind == kOther) return;
    Row r{p, g, t, kind, 0, 0};
    if (kind == kPay || kind == kRefund) {
      // Text that is not a finite number counts 0 (as in RFM: person_facts.cc).
      if (bi.amount && (!bi.amount->GetNum(i, &r.amount) || !std::isfinite(r.amount))) r.amount = 0;
      if (kind == kPay && bi.order && bi.order->Present(i)) {
        std::string id = bi.order->Get(i).AsString();
        if (!id.empty()) {
          S.order_ids.push_back(std::move(id));
          r.order = static_cast<uint32_t>(S.order_ids.size());
        }
      }
    }
    S.rows.push_back(r);
  };
  // Evaluates the tile's persons [lo, hi) once all their rows are in, then empties the tile.
  auto tile_done = [&](int slot, uint32_t lo, uint32_t hi) {
    Slot& S = slot_state[static_cast<size_t>(slot)];
    S.last_did = UINT32_MAX;
    if (S.acts.empty()) {  // nobody of the tile active in the range: nothing of it counts
      S.rows.clear();
      S.order_ids.clear();
      S.firsts.clear();
      return;
    }
    const size_t n = hi - lo;
    // Earlier registrations of the tile's persons, as rows.
    // With a breakdown the person's earliest one (of any value) is a row of no value, read
    // by the scopes of every value together only; each value's own earliest one is a row of
    // that value (only values the person was active with in the range can count).
    S.extra.clear();
    if (!pre_reg.empty()) {
      for (uint32_t p = lo; p < hi; p++)
        if (pre_reg[p] != INT64_MAX) S.extra.push_back(Row{p, per_group ? kNoGroup : 0, pre_reg[p], kRegister, 0, 0});
      for (const Activity& a : S.acts)
        if (auto it = pre_reg_of.find(group_key(a.person, a.group)); it != pre_reg_of.end())
          S.extra.push_back(Row{a.person, a.group, it->second, kRegister, 0, 0});
    }
    S.rows.insert(S.rows.end(), S.extra.begin(), S.extra.end());
    // Grouped by person (a counting sort over the tile); each person's rows sorted below.
    auto group_by_person = [&](auto& v, std::vector<size_t>& start) {
      start.assign(n + 1, 0);
      for (const auto& x : v) start[x.person - lo + 1]++;
      for (size_t k = 0; k < n; k++) start[k + 1] += start[k];
      std::vector<size_t> pos(start.begin(), start.end() - 1);
      std::remove_reference_t<decltype(v)> sorted(v.size());
      for (auto& x : v) sorted[pos[x.person - lo]++] = x;
      v.swap(sorted);
    };
    group_by_person(S.rows, S.row_start);
    group_by_person(S.acts, S.act_start);
    for (size_t k = 0; k < n; k++) {
      if (S.act_start[k] == S.act_start[k + 1]) continue;  // not active in the range
      S.prow.clear();
      S.pdays.clear();
      S.pgroups.clear();
      for (size_t x = S.row_start[k]; x < S.row_start[k + 1]; x++) S.prow.push_back(&S.rows[x]);
      std::sort(S.prow.begin(), S.prow.end(),
                [](const Row* a, const Row* b) { return a->ts != b->ts ? a->ts < b->ts : a->kind < b->kind; });
      S.pacts.assign(S.acts.begin() + static_cast<std::ptrdiff_t>(S.act_start[k]),
                     S.acts.begin() + static_cast<std::ptrdiff_t>(S.act_start[k + 1]));
      std::sort(S.pacts.begin(), S.pacts.end());
      S.pacts.erase(std::unique(S.pacts.begin(), S.pacts.end()), S.pacts.end());
      for (Activity& a : S.pacts) {
        a.day += q.from_day;
        S.pdays.push_back(a.day);
        if (S.pgroups.empty() || S.pgroups.back() != a.group) S.pgroups.push_back(a.group);
      }
      std::sort(S.pdays.begin(), S.pdays.end());
      S.pdays.erase(std::unique(S.pdays.begin(), S.pdays.end()), S.pdays.end());
      AddScope(S.prow, S.pdays, range, q, S.order_ids, S.scratch, S.total);
      if (q.interval) {
        int32_t last = -1;
        for (int32_t d : S.pdays) {
          const int32_t b = bucket_of_day[static_cast<size_t>(d - q.from_day)];
          if (b == last || b < 0 || static_cast<size_t>(b) >= buckets.size()) continue;
          last = b;
          AddScope(S.prow, S.pdays, bucket_scopes[static_cast<size_t>(b)], q, S.order_ids, S.scratch,
                   S.series[static_cast<size_t>(b)]);
        }
      }
      if (per_group) {
        // Each value's figures are those of the query with the extra filter "breakdown =
        // value": a person's rows of that value only (activity groups are the values the
        // person has in the range; a value seen only outside the range adds nothing, as
        // AddScope says).
        for (uint32_t g : S.pgroups) {
          S.grow.clear();
          S.gdays.clear();
          for (const Row* r : S.prow)
            if (r->group == g) S.grow.push_back(r);
          for (const Activity& a : S.pacts)
            if (a.group == g) S.gdays.push_back(a.day);
          AddScope(S.grow, S.gdays, range, q, S.order_ids, S.scratch, S.by_group[g]);
        }
      }
    }
    S.rows.clear();
    S.acts.clear();
    S.order_ids.clear();
    S.firsts.clear();
  };
  // The walk of ScanPersonGroups (person_scan.h: ranges of persons in parallel, each in tiles,
  // every part over a tile before the next tile), without its grouping of equal timestamps:
  // a person's rows are sorted at evaluation anyway.
  const uint32_t tile_persons = std::max<uint32_t>(1, SequenceScanTuning().tile_persons);
  const auto& parts = scan.parts();
  ParallelPersonRanges(np, slots, [&](uint32_t p_lo, uint32_t p_hi, int slot) {
    Slot& S = slot_state[static_cast<size_t>(slot)];
    PersonTileWalk(scan, pt, p_lo, p_hi)
        .Run(
            tile_persons, ctx.deadline, [](uint32_t, uint32_t) {},
            [&](size_t j, size_t first, size_t last) {
              PersonOrderScan::ForEachRowIn(blocks, parts[j], first, last,
                                            [&](uint32_t b, uint32_t i) { visit(S, b, i); });
            },
            [&](uint32_t t_lo, uint32_t t_hi) { tile_done(slot, t_lo, t_hi); });
  });
  if (ctx.deadline && ctx.deadline->Expired()) return ctx.deadline->ToStatus();

  std::map<uint32_t, CommerceMetrics> by_group;
  for (Slot& S : slot_state) {
    AddMetrics(S.total, out.total);
    for (size_t k = 0; k < buckets.size(); k++) AddMetrics(S.series[k], out.series[k]);
    for (const auto& [g, m] : S.by_group) AddMetrics(m, by_group[g]);
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
    // The median: the middle element (and, for an even count, the largest below it).
    std::vector<double> g = m.order_gaps_days;
    const size_t n = g.size();
    const auto mid = g.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::nth_element(g.begin(), mid, g.end());
    cycle = n % 2 ? *mid : (*std::max_element(g.begin(), mid) + *mid) / 2;
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
