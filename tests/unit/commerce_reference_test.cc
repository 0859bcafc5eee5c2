// The commerce and ltv query kinds against a deliberately naive reference written here:
// plain loops over the stored events, persons by a union-find over distinct ids, local days
// and midnights from the date library (not ns::TimeZone), each metric computed straight from
// its definition in docs/queries.md for every scope (the range, each interval, each
// breakdown value). Random data on 240 seeds: payments whose order_id repeats (also across
// an anonymous and an identified id of one person that are merged after the fact), amounts
// as numbers, numeric text, other text or missing; refunds; carts; registrations before and
// inside the range; equal timestamps and events a millisecond either side of local midnight
// (Asia/Shanghai; some seeds America/New_York across a DST change); event filters, a
// channel breakdown, intervals, and empty ranges; odd seeds scan persons in tiny tiles.
// Amounts are halves, so sums are exact.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "core/env.h"
#include "ops/kpi_reducers.h"
#include "query/person_scan.h"
#include "query/query_kind.h"
#include "reference_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

constexpr int64_t kDay = 86'400'000;

int PeriodStart(int day, const std::string& interval) {
  if (interval == "day") return day;
  date::sys_days sd{date::days{day}};
  if (interval == "week") return day - static_cast<int>((date::weekday{sd}.c_encoding() + 6) % 7);
  date::year_month_day ymd{sd};
  return static_cast<int>(date::sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch().count());
}

int PeriodIndex(int base, int day, const std::string& interval) {
  if (interval == "day") return day - base;
  if (interval == "week") return (PeriodStart(day, "week") - PeriodStart(base, "week")) / 7;
  date::year_month_day a{date::sys_days{date::days{base}}}, b{date::sys_days{date::days{day}}};
  return (static_cast<int>(b.year()) - static_cast<int>(a.year())) * 12 + static_cast<int>(unsigned(b.month())) -
         static_cast<int>(unsigned(a.month()));
}

struct NEvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::optional<std::string> anon;  // $identify: the anonymous id it merges
  std::optional<PropValue> amount_prop, order_prop;
  double amount = 0;
  std::optional<std::string> order;
  std::optional<std::string> channel, plan;  // plan: a person property the event sets
  std::string person;                        // root, filled after the merges
  int day = 0;
};

struct NMetrics {
  double gmv_gross = 0, refund_amount = 0;
  int64_t refunds = 0, orders = 0, payers = 0, active = 0, repeat = 0, registered = 0, converted = 0, carts = 0,
          abandoned = 0;
  std::vector<double> gaps;
};

// One scope straight from the definitions: `evs` are the events the query sees (filters and
// the breakdown value applied), lo/hi the scope's instants, [lo_day, hi_day] its local days.
NMetrics Naive(const std::vector<const NEvent*>& evs, int64_t lo, int64_t hi, int fp_days, int cart_hours,
               bool first_seen = false) {
  NMetrics m;
  std::set<std::string> persons;
  for (const NEvent* e : evs) persons.insert(e->person);
  for (const std::string& p : persons) {
    std::vector<const NEvent*> mine;
    for (const NEvent* e : evs)
      if (e->person == p) mine.push_back(e);
    bool active = false;
    for (const NEvent* e : mine) active |= e->ts >= lo && e->ts < hi;
    if (!active) continue;
    m.active++;
    auto paid_between = [&](int64_t a, int64_t b) {
      for (const NEvent* e : mine)
        if (e->event == "pay" && e->ts >= a && e->ts <= b) return true;
      return false;
    };
    // orders: id -> (earliest ts, largest amount); events without an id: their own
    std::map<std::string, std::pair<int64_t, double>> named;
    std::vector<std::pair<int64_t, double>> orders;
    const NEvent* reg = nullptr;
    for (const NEvent* e : mine)
      if ((first_seen || e->event == "register") && (!reg || e->ts < reg->ts)) reg = e;
    for (const NEvent* e : mine) {
      if (e->ts < lo || e->ts >= hi) continue;
      if (e->event == "pay") {
        if (!e->order) {
          orders.push_back({e->ts, e->amount});
        } else if (!named.count(*e->order)) {
          named[*e->order] = {e->ts, e->amount};
        } else {
          auto& o = named[*e->order];
          o.first = std::min(o.first, e->ts);
          o.second = std::max(o.second, e->amount);
        }
      } else if (e->event == "refund") {
        m.refunds++;
        m.refund_amount += e->amount;
      } else if (e->event == "add_to_cart") {
        m.carts++;
        if (!paid_between(e->ts, e->ts + cart_hours * 3'600'000LL)) m.abandoned++;
      }
    }
    for (auto& [k, o] : named) orders.push_back(o);
    std::sort(orders.begin(), orders.end());
    if (!orders.empty()) {
      m.payers++;
      m.orders += static_cast<int64_t>(orders.size());
      if (orders.size() >= 2) m.repeat++;
      for (size_t i = 0; i < orders.size(); i++) {
        m.gmv_gross += orders[i].second;
        if (i) m.gaps.push_back(static_cast<double>(orders[i].first - orders[i - 1].first) / 86'400'000.0);
      }
    }
    if (reg && reg->ts >= lo && reg->ts < hi) {
      m.registered++;
      if (paid_between(reg->ts, reg->ts + fp_days * kDay)) m.converted++;
    }
  }
  return m;
}

void ExpectMetrics(const json& got, const NMetrics& w, const std::string& what) {
  SCOPED_TRACE(what);
  auto ratio = [](double a, double b) { return b > 0 ? json(a / b) : json(); };
  auto near = [&](const char* key, const json& want) {
    ASSERT_TRUE(got.contains(key)) << key;
    if (want.is_null()) {
      EXPECT_TRUE(got[key].is_null()) << key << " " << got[key];
    } else {
      ASSERT_TRUE(got[key].is_number()) << key << " " << got[key];
      EXPECT_NEAR(got[key].get<double>(), want.get<double>(), 1e-9 * std::max(1.0, std::abs(want.get<double>())))
          << key;
    }
  };
  EXPECT_EQ(got["gmv"].get<double>(), w.gmv_gross - w.refund_amount);
  EXPECT_EQ(got["gmv_gross"].get<double>(), w.gmv_gross);
  EXPECT_EQ(got["refund_amount"].get<double>(), w.refund_amount);
  EXPECT_EQ(got["refunds"], w.refunds);
  EXPECT_EQ(got["orders"], w.orders);
  EXPECT_EQ(got["paying_persons"], w.payers);
  EXPECT_EQ(got["active_persons"], w.active);
  EXPECT_EQ(got["repeat_payers"], w.repeat);
  EXPECT_EQ(got["registered_persons"], w.registered);
  EXPECT_EQ(got["first_purchase_persons"], w.converted);
  EXPECT_EQ(got["carts"], w.carts);
  EXPECT_EQ(got["abandoned_carts"], w.abandoned);
  EXPECT_EQ(got["repurchase_gaps"], w.gaps.size());
  near("aov", ratio(w.gmv_gross, static_cast<double>(w.orders)));
  near("paid_conversion_rate", ratio(static_cast<double>(w.payers), static_cast<double>(w.active)));
  near("first_purchase_conversion", ratio(static_cast<double>(w.converted), static_cast<double>(w.registered)));
  near("repurchase_rate", ratio(static_cast<double>(w.repeat), static_cast<double>(w.payers)));
  near("cart_abandonment_rate", ratio(static_cast<double>(w.abandoned), static_cast<double>(w.carts)));
  json median;
  if (!w.gaps.empty()) {
    std::vector<double> g = w.gaps;
    std::sort(g.begin(), g.end());
    median = g.size() % 2 ? g[g.size() / 2] : (g[g.size() / 2 - 1] + g[g.size() / 2]) / 2;
  }
  near("repurchase_cycle_days", median);
}

class CommerceReference : public ::testing::TestWithParam<int> {};

TEST_P(CommerceReference, MatchesNaive) {
  const int seed = GetParam();
  // Odd seeds with tiny person tiles (query/person_scan.h): commerce evaluates each tile of
  // persons once its rows are in, so tile edges are checked as well.
  struct TileGuard {
    explicit TileGuard(uint32_t n) { SequenceScanTuning().tile_persons = n; }
    ~TileGuard() { SequenceScanTuning().tile_persons = kScanTilePersons; }
  } tiles(seed % 2 ? static_cast<uint32_t>(1 + seed % 5) : kScanTilePersons);
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 7919 + 13);
  auto R = [&](int lo, int hi) {
    return static_cast<int>(lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)));
  };
  const std::string zone_name = seed % 4 == 3 ? "America/New_York" : "Asia/Shanghai";
  const date::time_zone* zone = date::locate_zone(zone_name);
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());

  // 70 local days from 2025-02-20 (New York's DST change on 2025-03-09 inside).
  const int day0 = static_cast<int>(date::sys_days{date::year{2025} / 2 / 20}.time_since_epoch().count());
  const int span = 70;
  const int persons = R(1, 14);
  const int nevents = R(0, 250);
  std::vector<NEvent> sent;
  for (int i = 0; i < nevents; i++) {
    NEvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(i);
    const int p = R(1, persons);
    e.did = (R(0, 1) ? "u" : "a") + std::to_string(p);
    const int tr = R(0, 99);
    const int day = day0 + R(0, span - 1);
    if (tr < 50 || sent.empty()) {
      e.ts = LocalMidnight(zone, day) + R(0, 86'399'999);
    } else if (tr < 75) {
      static const int64_t kOff[] = {-1, 0, 1, -1000, 999};
      e.ts = LocalMidnight(zone, day) + kOff[R(0, 4)];
    } else {
      // Equal to an earlier event's time, or exactly a window's length after it.
      const NEvent& o = sent[static_cast<size_t>(R(0, static_cast<int>(sent.size()) - 1))];
      static const int64_t kAfter[] = {0, 0, 3'600'000, 24 * 3'600'000LL, kDay * 7, kDay * 3};
      e.ts = o.ts + kAfter[R(0, 5)];
    }
    if (R(0, 3)) e.channel = std::string(1, static_cast<char>('a' + R(0, 2)));
    const int roll = R(0, 99);
    if (roll < 8) {
      e.event = "$identify";
      e.did = "u" + std::to_string(p);
      e.anon = "a" + std::to_string(p);
    } else if (roll < 45 || (roll < 55)) {
      e.event = roll < 45 ? "pay" : "refund";
      const int a = R(0, 99);
      const int k = R(-4, 400);
      const double v = k * 0.5;
      if (a < 50) {
        e.amount_prop = PropValue::Num(v);
        e.amount = v;
      } else if (a < 70) {
        e.amount_prop = PropValue::Str((k < 0 ? "-" : "") + std::to_string(std::abs(k) / 2) + (k % 2 ? ".5" : ""));
        e.amount = v;
      } else if (a < 85) {
        static const char* kText[] = {"abc", "12abc", "", "NaN", "inf"};
        e.amount_prop = PropValue::Str(kText[R(0, 4)]);
      }
      const int o = R(0, 99);
      if (e.event == "pay" && o < 55) {
        e.order = "o" + std::to_string(R(1, 5));
        e.order_prop = PropValue::Str(*e.order);
      } else if (e.event == "pay" && o < 65) {
        const int n = R(1001, 1003);
        e.order = std::to_string(n);
        e.order_prop = PropValue::Num(n);
      } else if (o < 70) {
        e.order_prop = PropValue::Str("");  // empty: no order id
      }
    } else if (roll < 70) {
      e.event = "add_to_cart";
    } else if (roll < 80) {
      e.event = "register";
    } else {
      e.event = "view";
    }
    if (R(0, 6) == 0 && e.did[0] == 'u') e.plan = p % 2 ? "pro" : "free";  // one plan per person
    sent.push_back(e);
  }

  // The store: events in shuffled order, some retried, several segments.
  std::vector<NEvent> deliveries = sent;
  for (int i = 0; i < nevents / 10; i++) deliveries.push_back(sent[rng() % sent.size()]);
  std::shuffle(deliveries.begin(), deliveries.end(), rng);
  MemTempDir dir;
  NoSyncEnv env;
  StoreOptions so;
  so.background = false;
  so.env = &env;
  so.seal_rows = static_cast<size_t>(R(3, 60));
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  for (size_t pos = 0; pos < deliveries.size();) {
    const size_t n = std::min(deliveries.size() - pos, static_cast<size_t>(R(1, 60)));
    std::vector<Event> batch;
    for (size_t i = pos; i < pos + n; i++) {
      const NEvent& r = deliveries[i];
      Event e;
      e.uuid = Uuid::FromClientId(r.uuid);
      e.has_uuid = true;
      e.distinct_id = r.did;
      e.event = r.event;
      e.ts_ms = r.ts;
      if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
      if (r.amount_prop) e.props.push_back({"amount", *r.amount_prop});
      if (r.order_prop) e.props.push_back({"order_id", *r.order_prop});
      if (r.plan) e.person_set.push_back({"plan", PropValue::Str(*r.plan)});
      if (r.anon) {
        e.props.push_back({"$anon_distinct_id", PropValue::Str(*r.anon)});
        e.merge_with.push_back(*r.anon);
      }
      batch.push_back(std::move(e));
    }
    pos += n;
    auto res = (*store)->Append(std::move(batch), Durability::kUnlogged);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    if (R(0, 5) == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
  }

  // The naive world: each event once, persons by union-find ($identify joins a<p> to u<p>).
  std::map<std::string, std::string> parent;
  std::function<std::string(const std::string&)> root = [&](const std::string& d) -> std::string {
    auto it = parent.find(d);
    return it == parent.end() || it->second == d ? d : root(it->second);
  };
  std::vector<NEvent> world;
  std::set<std::string> seen;
  for (const NEvent& e : sent)
    if (seen.insert(e.uuid).second) world.push_back(e);
  for (const NEvent& e : world) {
    if (!e.anon) continue;
    std::string a = root(e.did), b = root(*e.anon);
    if (a != b) parent[b] = a;
  }
  std::map<std::string, std::string> plan_of;  // person (root) -> plan
  for (NEvent& e : world) {
    e.person = root(e.did);
    if (e.plan) plan_of[e.person] = *e.plan;
    e.day = LocalDay(zone, e.ts);
  }

  // ---- commerce ----
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    int from = day0 + R(-5, span), to = from + R(0, 40);
    if (R(0, 9) == 0) from = to = day0 + span + 30;  // an empty range
    const int fp_days = R(0, 2) ? 7 : R(1, 10);
    const int cart_hours = R(0, 2) ? 24 : R(1, 72);
    const bool first_seen = R(0, 3) == 0;
    static const char* kIntervals[] = {"", "day", "week", "month"};
    const std::string interval = kIntervals[R(0, 3)];
    const int breakdown = R(0, 5);  // 0, 1: channel; 2: person.plan
    json filters = json::array();
    const int f = R(0, 5);
    if (f == 1) filters.push_back({{"property", "channel"}, {"op", "eq"}, {"value", "a"}});
    if (f == 2) filters.push_back({{"property", "channel"}, {"op", "neq"}, {"value", "b"}});
    if (f == 3) filters.push_back({{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}});
    json q{{"kind", "commerce"}, {"date_from", DayString(from)}, {"date_to", DayString(to)}, {"filters", filters}};
    if (fp_days != 7 || R(0, 1)) q["first_purchase_days"] = fp_days;
    if (cart_hours != 24 || R(0, 1)) q["cart_window_hours"] = cart_hours;
    if (first_seen) q["register_event"] = "$first_seen";
    if (!interval.empty()) q["interval"] = interval;
    if (breakdown <= 2) q["breakdown"] = breakdown == 2 ? "person.plan" : "channel";
    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();

    auto passes = [&](const NEvent& e) {
      if (f == 1) return e.channel && *e.channel == "a";
      if (f == 2) return !e.channel || *e.channel != "b";
      if (f == 3) return plan_of.count(e.person) && plan_of.at(e.person) == "pro";
      return true;
    };
    std::vector<const NEvent*> evs;
    for (const NEvent& e : world)
      if (passes(e)) evs.push_back(&e);
    const int64_t lo = LocalMidnight(zone, from), hi = LocalMidnight(zone, to + 1);
    ExpectMetrics(*got, Naive(evs, lo, hi, fp_days, cart_hours, first_seen), "total " + q.dump());
    EXPECT_EQ((*got)["date_from"], DayString(from));
    EXPECT_EQ((*got)["timezone"], zone_name);

    if (!interval.empty()) {
      std::vector<std::pair<int, int>> buckets;  // local days [first, last]
      for (int d = from; d <= to; d++) {
        if (buckets.empty() || PeriodStart(d, interval) != PeriodStart(buckets.back().first, interval))
          buckets.push_back({d, d});
        buckets.back().second = d;
      }
      ASSERT_EQ((*got)["series"].size(), buckets.size());
      for (size_t k = 0; k < buckets.size(); k++) {
        const json& s = (*got)["series"][k];
        EXPECT_EQ(s["date"], DayString(PeriodStart(buckets[k].first, interval)));
        ExpectMetrics(s,
                      Naive(evs, LocalMidnight(zone, buckets[k].first), LocalMidnight(zone, buckets[k].second + 1),
                            fp_days, cart_hours, first_seen),
                      "bucket " + std::to_string(k));
      }
    } else {
      EXPECT_FALSE(got->contains("series"));
    }
    if (breakdown <= 2) {
      // Every value seen in the range (null: no channel), each as a filter on the events.
      std::set<std::optional<std::string>> values;
      auto value_of = [&](const NEvent* e) -> std::optional<std::string> {
        if (breakdown < 2) return e->channel;
        auto it = plan_of.find(e->person);
        return it == plan_of.end() ? std::nullopt : std::optional<std::string>(it->second);
      };
      for (const NEvent* e : evs)
        if (e->ts >= lo && e->ts < hi) values.insert(value_of(e));
      std::vector<std::pair<json, NMetrics>> want;
      for (const auto& v : values) {
        std::vector<const NEvent*> sub;
        for (const NEvent* e : evs)
          if (value_of(e) == v) sub.push_back(e);
        want.emplace_back(v ? json(*v) : json(), Naive(sub, lo, hi, fp_days, cart_hours, first_seen));
      }
      std::sort(want.begin(), want.end(), [](const auto& a, const auto& b) {
        const double ga = a.second.gmv_gross - a.second.refund_amount, gb = b.second.gmv_gross - b.second.refund_amount;
        if (ga != gb) return ga > gb;
        if (a.second.orders != b.second.orders) return a.second.orders > b.second.orders;
        return a.first.dump() < b.first.dump();
      });
      ASSERT_EQ((*got)["breakdowns"].size(), want.size());
      for (size_t k = 0; k < want.size(); k++) {
        EXPECT_EQ((*got)["breakdowns"][k]["breakdown_value"], want[k].first);
        ExpectMetrics((*got)["breakdowns"][k], want[k].second, "breakdown " + want[k].first.dump());
      }
    }
  }

  // ---- ltv ----
  for (int round = 0; round < 2; round++) {
    SCOPED_TRACE("seed " + std::to_string(seed) + " ltv round " + std::to_string(round));
    const std::string period = R(0, 1) ? "month" : "week";
    const int periods = R(1, 6);
    const int from = day0 + R(-5, span), to = from + R(0, 40);
    const int as_of = to + R(0, 60);
    const bool filtered = R(0, 2) == 0;
    json q{{"kind", "ltv"},    {"date_from", DayString(from)}, {"date_to", DayString(to)},
           {"period", period}, {"periods", periods},           {"as_of", DayString(as_of)}};
    if (filtered) q["filters"] = json::array({{{"property", "channel"}, {"op", "neq"}, {"value", "c"}}});
    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();
    const int64_t end = LocalMidnight(zone, as_of + 1);
    std::map<std::string, std::vector<const NEvent*>> by_person;
    for (const NEvent& e : world)
      if (e.ts < end && (!filtered || !e.channel || *e.channel != "c")) by_person[e.person].push_back(&e);
    std::map<int, std::pair<int64_t, std::vector<double>>> cohorts;  // start -> persons, revenue per period
    for (auto& [p, evs] : by_person) {
      std::map<std::string, std::pair<int64_t, double>> named;
      std::vector<std::pair<int64_t, double>> orders;
      for (const NEvent* e : evs) {
        if (e->event != "pay") continue;
        if (!e->order) {
          orders.push_back({e->ts, e->amount});
        } else if (!named.count(*e->order)) {
          named[*e->order] = {e->ts, e->amount};
        } else {
          named[*e->order].first = std::min(named[*e->order].first, e->ts);
          named[*e->order].second = std::max(named[*e->order].second, e->amount);
        }
      }
      for (auto& [k, o] : named) orders.push_back(o);
      if (orders.empty()) continue;
      int64_t first = orders[0].first;
      for (auto& o : orders) first = std::min(first, o.first);
      const int fday = LocalDay(zone, first);
      if (fday < from || fday > to) continue;
      auto& c = cohorts[PeriodStart(fday, period)];
      c.first++;
      c.second.resize(static_cast<size_t>(periods), 0);
      auto add = [&](int64_t ts, double v) {
        const int k = PeriodIndex(fday, LocalDay(zone, ts), period);
        if (k >= 0 && k < periods) c.second[static_cast<size_t>(k)] += v;
      };
      for (auto& o : orders) add(o.first, o.second);
      for (const NEvent* e : evs)
        if (e->event == "refund" && e->ts >= first) add(e->ts, -e->amount);
    }
    ASSERT_EQ((*got)["cohorts"].size(), cohorts.size());
    size_t k = 0;
    for (auto& [start, c] : cohorts) {
      const json& g = (*got)["cohorts"][k++];
      EXPECT_EQ(g["cohort"], DayString(start));
      EXPECT_EQ(g["persons"], c.first);
      const int shown = std::min(periods, PeriodIndex(start, as_of, period) + 1);
      ASSERT_EQ(g["revenue"].size(), static_cast<size_t>(shown)) << g.dump();
      double sum = 0;
      for (int x = 0; x < shown; x++) {
        sum += c.second[static_cast<size_t>(x)];
        EXPECT_EQ(g["revenue"][x].get<double>(), sum) << "period " << x;
        EXPECT_DOUBLE_EQ(g["ltv"][x].get<double>(), sum / static_cast<double>(c.first));
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, CommerceReference, ::testing::Range(0, 240));

TEST(CommerceQuery, ValidationNamesTheField) {
  auto bad = [](json q, const std::string& field) {
    const QueryKind* k = FindQueryKind(q["kind"].get<std::string>());
    ASSERT_NE(k, nullptr);
    EXPECT_THAT(k->check(q), testing::StatusIs(StatusCode::kInvalidArgument, ::testing::_, field)) << q.dump();
  };
  json base{{"kind", "commerce"}, {"date_from", "2025-01-01"}, {"date_to", "2025-01-31"}};
  bad(json{{"kind", "commerce"}, {"date_to", "2025-01-31"}}, "date_from");
  for (auto [key, value] : std::vector<std::pair<std::string, json>>{{"interval", "hour"},
                                                                     {"first_purchase_days", 0},
                                                                     {"cart_window_hours", -1},
                                                                     {"breakdown", 3},
                                                                     {"cart_event", "$any"},
                                                                     {"refund_event", "$first_seen"},
                                                                     {"windw", 1}}) {
    json q = base;
    q[key] = value;
    bad(q, key);
  }
  json l{{"kind", "ltv"}, {"date_from", "2025-01-01"}, {"date_to", "2025-01-31"}};
  for (auto [key, value] : std::vector<std::pair<std::string, json>>{
           {"period", "day"}, {"periods", 0}, {"as_of", "2024-12-31"}, {"refund_event", "$any"}}) {
    json q = l;
    q[key] = value;
    bad(q, key);
  }
}

}  // namespace
}  // namespace ns

namespace ns {
namespace {

// The worked example of docs/queries.md "Commerce" and "LTV", figure for figure.
TEST(CommerceQuery, DocumentedExample) {
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok());
  std::vector<Event> batch;
  int n = 0;
  auto add = [&](const std::string& did, const std::string& event, const std::string& when,
                 std::optional<double> amount = std::nullopt, std::optional<std::string> order = std::nullopt) {
    Event e;
    e.uuid = Uuid::FromClientId("doc-" + std::to_string(n++));
    e.has_uuid = true;
    e.distinct_id = did;
    e.event = event;
    auto ts = ParseIsoTimestamp(when, *tz);
    ASSERT_TRUE(ts.ok()) << when;
    e.ts_ms = *ts;
    if (amount) e.props.push_back({"amount", PropValue::Num(*amount)});
    if (order) e.props.push_back({"order_id", PropValue::Str(*order)});
    if (event == "$identify") {
      e.props.push_back({"$anon_distinct_id", PropValue::Str("a2")});
      e.merge_with.push_back("a2");
    }
    batch.push_back(std::move(e));
  };
  add("u1", "register", "2026-11-01 23:30:00");
  add("u1", "add_to_cart", "2026-11-02 10:00:00");
  add("u1", "pay", "2026-11-02 10:30:00", 100, "A1");
  add("u1", "pay", "2026-11-02 10:31:00", 100, "A1");  // a retry of order A1
  add("u1", "pay", "2026-11-05 10:30:00", 60, "A2");
  add("u1", "refund", "2026-11-06 12:00:00", 40);
  add("u1", "pay", "2026-12-03 09:00:00", 50, "A3");
  add("a2", "register", "2026-11-03 09:00:00");
  add("a2", "add_to_cart", "2026-11-03 09:10:00");
  add("u2", "$identify", "2026-11-07 20:00:00");
  add("u2", "pay", "2026-11-09 08:00:00", 80, "B1");
  add("u3", "view", "2026-11-04 15:00:00");
  add("u3", "register", "2026-11-08 23:59:59.999");
  ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());

  auto got = RunQuery(json{{"kind", "commerce"}, {"date_from", "2026-11-02"}, {"date_to", "2026-11-08"}}, **store, *tz);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  json want{{"gmv", 120.0},
            {"gmv_gross", 160.0},
            {"refunds", 1},
            {"refund_amount", 40.0},
            {"orders", 2},
            {"paying_persons", 1},
            {"active_persons", 3},
            {"aov", 80.0},
            {"registered_persons", 2},
            {"first_purchase_persons", 1},
            {"first_purchase_conversion", 0.5},
            {"repeat_payers", 1},
            {"repurchase_rate", 1.0},
            {"repurchase_cycle_days", 3.0},
            {"carts", 2},
            {"abandoned_carts", 1},
            {"cart_abandonment_rate", 0.5}};
  for (auto& [k, v] : want.items()) EXPECT_EQ((*got)[k], v) << k;
  EXPECT_NEAR((*got)["paid_conversion_rate"].get<double>(), 1.0 / 3, 1e-12);

  auto ltv = RunQuery(json{{"kind", "ltv"},
                           {"date_from", "2026-11-01"},
                           {"date_to", "2026-11-30"},
                           {"periods", 3},
                           {"as_of", "2026-12-06"}},
                      **store, *tz);
  ASSERT_TRUE(ltv.ok()) << ltv.status().ToString();
  ASSERT_EQ((*ltv)["cohorts"].size(), 1u);
  EXPECT_EQ((*ltv)["cohorts"][0]["cohort"], "2026-11-01");
  EXPECT_EQ((*ltv)["cohorts"][0]["persons"], 2);
  EXPECT_EQ((*ltv)["cohorts"][0]["revenue"], json({200.0, 250.0}));
  EXPECT_EQ((*ltv)["cohorts"][0]["ltv"], json({100.0, 125.0}));

  // As a KPI of the operations layer: one metric, ratios as numerator / denominator.
  const KpiReducer* kpi = FindKpiReducer("commerce");
  ASSERT_NE(kpi, nullptr);
  json q{{"kind", "commerce"}, {"date_from", "2026-11-02"}, {"date_to", "2026-11-08"}, {"interval", "day"}};
  json reduce = json::object();
  ASSERT_TRUE(kpi->validate(q, reduce).ok());
  EXPECT_EQ(reduce["metric"], "gmv");
  kpi->shape(q, reduce);
  EXPECT_FALSE(q.contains("interval"));
  QueryScope scope(**store, *tz);
  auto gmv = kpi->reduce(q, reduce, PeriodRange{0, 0}, false, scope.ctx());
  ASSERT_TRUE(gmv.ok()) << gmv.status().ToString();
  EXPECT_EQ(gmv->at("").Value(), 120.0);
  json rate{{"metric", "cart_abandonment_rate"}};
  ASSERT_TRUE(kpi->validate(q, rate).ok());
  auto parts = kpi->reduce(q, rate, PeriodRange{0, 0}, false, scope.ctx());
  ASSERT_TRUE(parts.ok());
  EXPECT_TRUE(parts->at("").ratio);
  EXPECT_EQ(parts->at("").num, 1.0);
  EXPECT_EQ(parts->at("").den, 2.0);
  json bad{{"metric", "repurchase_cycle_days"}};
  EXPECT_THAT(kpi->validate(q, bad), testing::StatusIs(StatusCode::kInvalidArgument, ::testing::_, "reduce.metric"));
}

}  // namespace
}  // namespace ns
