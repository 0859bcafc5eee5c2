// Person facts and the person-level query kinds (rfm, lifecycle) against a deliberately
// naive reference written here: plain loops over a vector of events, persons by a
// union-find over distinct ids, local days from the date library (not ns::TimeZone). Random
// data on many seeds: identity merges after the fact ($identify, $create_alias, also
// joining two identified persons), equal timestamps, events a millisecond either side of
// local midnight (Asia/Shanghai; some seeds America/New_York across a DST change), retries,
// out-of-order arrival, several segments and memtable blocks, pay events whose amount is a
// number, numeric text, other text (also "NaN" and "inf", which count 0 like any text that
// is not a number) or missing and whose order_id (text or number) repeats across the
// events of one order. The store is checked after part of the data and again after the
// rest, so a person-facts cache answering a stale state is caught. Amounts are halves, so
// sums are exact and equal monetary values tie in the ranks on both sides.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "core/env.h"
#include "payment_world_test_util.h"
#include "people_test_util.h"
#include "query/lifecycle_plain.h"
#include "query/person_facts.h"
#include "query/person_models.h"
#include "query/query_kind.h"
#include "storage/event_store.h"
#include "storage/person_table.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

// The first day of the period containing `day`: Monday of its week, the 1st of its month.
int PeriodStart(int day, const std::string& interval) {
  if (interval == "day") return day;
  date::sys_days sd{date::days{day}};
  if (interval == "week") {
    date::weekday wd{sd};
    return day - static_cast<int>((wd.c_encoding() + 6) % 7);
  }
  date::year_month_day ymd{sd};
  return static_cast<int>(date::sys_days{ymd.year() / ymd.month() / 1}.time_since_epoch().count());
}

// Index of the period containing `day`, counted from the period containing `base`.
int PeriodIndex(int base, int day, const std::string& interval) {
  if (interval == "day") return day - base;
  if (interval == "week") return (PeriodStart(day, "week") - PeriodStart(base, "week")) / 7;
  date::year_month_day a{date::sys_days{date::days{base}}}, b{date::sys_days{date::days{day}}};
  return (static_cast<int>(b.year()) - static_cast<int>(a.year())) * 12 + static_cast<int>(unsigned(b.month())) -
         static_cast<int>(unsigned(a.month()));
}

// ---- the naive world ----

struct Settings {
  int new_days = 7, active_days = 30, churn_days = 90;
  bool orders = true;  // order_property set: events of one order count once
};

// Facts of every person with an event on or before local day as_of.
std::map<std::string, NFacts> NaiveFacts(World& w, int as_of, std::optional<int> pay_from, const Settings& s) {
  NaiveFactsBuilder<std::string> facts;
  for (const PEvent& e : w.events) {
    if (e.day > as_of) continue;
    const std::string root = w.Root(e.did);
    facts.Event(root, e.ts);
    if (e.event != "pay" || (pay_from && e.day < *pay_from)) continue;
    facts.Payment(root, e.ts, e.amount, s.orders && e.order ? *e.order : "");
  }
  return facts.Finish();
}

bool PassFilter(const json& f, World& w, const PEvent& e) {
  const std::string prop = f["property"], op = f["op"];
  std::optional<std::string> v;
  if (prop == "channel") v = e.channel;
  if (prop == "person.plan") {
    auto it = w.plan.find(w.Root(e.did));
    if (it != w.plan.end()) v = it->second;
  }
  if (op == "is_set") return v.has_value();
  if (op == "is_not_set") return !v.has_value();
  if (op == "neq") return !v || *v != f["value"];
  if (!v) return false;
  if (op == "eq") return *v == f["value"];
  if (op == "in") {
    for (auto& x : f["value"])
      if (*v == x) return true;
    return false;
  }
  ADD_FAILURE() << "op " << op;
  return false;
}

// A person-level filter (rfm): its person property only.
bool PassPersonFilters(const json& filters, World& w, const std::string& root) {
  PEvent probe;
  probe.did = root;
  for (auto& f : filters)
    if (!PassFilter(f, w, probe)) return false;
  return true;
}

// ---- naive rfm ----

struct NRfm {
  std::string root;
  uint32_t pid = 0;
  int recency = 0;
  uint32_t frequency = 0;
  double monetary = 0;
  int r = 0, f = 0, m = 0, segment = 0;
};

struct NRfmResult {
  std::vector<NRfm> persons;
  double means[3] = {0, 0, 0};
};

NRfmResult NaiveRfm(const std::map<std::string, NFacts>& facts, World& w, const json& q, int as_of,
                    const std::map<std::string, uint32_t>& pid) {
  NRfmResult out;
  for (auto& [root, f] : facts) {
    if (f.orders == 0 || !PassPersonFilters(q.value("filters", json::array()), w, root)) continue;
    NRfm r;
    r.root = root;
    r.pid = pid.at(root);
    r.recency = as_of - LocalDay(w.zone, f.last_pay);
    r.frequency = f.orders;
    r.monetary = f.monetary;
    out.persons.push_back(r);
  }
  const size_t n = out.persons.size();
  if (n == 0) return out;
  const bool bins = q.contains("scoring") && q["scoring"].is_object();
  NaiveRfmScores scored;
  if (bins) {
    for (NRfm& x : out.persons) {
      auto le = [&](const char* k, double v) {
        int c = 0;
        for (auto& e : q["scoring"][k]) c += e.get<double>() <= v;
        return c;
      };
      scored.scores.push_back({5 - le("r", x.recency), 1 + le("f", x.frequency), 1 + le("m", x.monetary)});
    }
    NaiveRfmSegments(scored);
  } else {
    std::vector<std::array<double, 3>> values;
    for (const NRfm& x : out.persons) values.push_back({double(x.recency), double(x.frequency), x.monetary});
    scored = NaiveQuintileRfm(values);
  }
  for (size_t i = 0; i < n; i++) {
    NRfm& x = out.persons[i];
    x.r = scored.scores[i][0];
    x.f = scored.scores[i][1];
    x.m = scored.scores[i][2];
    x.segment = scored.segments[i];
  }
  for (int k = 0; k < 3; k++) out.means[k] = scored.means[k];
  return out;
}

void ExpectNear(double got, double want, const std::string& what) {
  EXPECT_NEAR(got, want, 1e-9 * std::max(1.0, std::fabs(want))) << what;
}

// ---- naive lifecycle ----

json NaiveLifecycle(World& w, const json& q, const Settings& s) {
  const std::string interval = q["interval"], mode = q["mode"], event = q["event"];
  auto parse = [](const std::string& d) {
    int y = std::stoi(d.substr(0, 4)), m = std::stoi(d.substr(5, 2)), dd = std::stoi(d.substr(8, 2));
    return static_cast<int>(date::sys_days{date::year{y} / m / dd}.time_since_epoch().count());
  };
  const int d0 = parse(q["date_from"].get<std::string>()), d1 = parse(q["date_to"].get<std::string>());
  // Buckets: one per period touching [d0, d1], labelled by the period's first day; a
  // bucket's last day is the day before the next period starts, or d1.
  std::vector<int> starts;
  for (int d = d0; d <= d1; d++)
    if (starts.empty() || PeriodStart(d, interval) != starts.back()) starts.push_back(PeriodStart(d, interval));
  const size_t K = starts.size();
  std::vector<int> last_day(K);
  for (size_t k = 0; k < K; k++) last_day[k] = k + 1 < K ? starts[k + 1] - 1 : d1;
  // Each person's active days (matching event and filters, up to d1).
  std::map<std::string, std::set<int>> active;
  for (const PEvent& e : w.events) {
    if (e.day > d1 || (event != "$any" && e.event != event)) continue;
    bool ok = true;
    for (auto& f : q.value("filters", json::array())) ok = ok && PassFilter(f, w, e);
    if (ok) active[w.Root(e.did)].insert(e.day);
  }
  std::vector<std::vector<int64_t>> series(4, std::vector<int64_t>(K, 0));
  for (auto& [root, days] : active) {
    if (mode == "stages") {
      for (size_t k = 0; k < K; k++) {
        const int D = last_day[k];
        auto it = days.upper_bound(D);
        if (it == days.begin()) continue;  // not seen by then
        const int first = *days.begin(), last = *std::prev(it);
        int stage = D - first < s.new_days ? 0 : D - last < s.active_days ? 1 : D - last < s.churn_days ? 2 : 3;
        series[static_cast<size_t>(stage)][k]++;
      }
    } else {
      std::set<int> J;
      for (int d : days) J.insert(PeriodIndex(d0, d, interval));
      const int first = *J.begin();
      for (int k = 0; k < static_cast<int>(K); k++) {
        const bool now = J.count(k), before = J.count(k - 1);
        if (now && k == first) series[0][static_cast<size_t>(k)]++;
        if (now && k != first && before) series[1][static_cast<size_t>(k)]++;
        if (now && k != first && !before) series[2][static_cast<size_t>(k)]++;
        if (!now && before) series[3][static_cast<size_t>(k)]--;
      }
    }
  }
  json dates = json::array();
  for (int st : starts) dates.push_back(DayString(st));
  static const char* kStages[4] = {"new", "active", "silent", "churned"};
  static const char* kActivity[4] = {"new", "returning", "resurrecting", "dormant"};
  json out{{"dates", dates}, {"series", json::object()}};
  for (size_t x = 0; x < 4; x++) out["series"][mode == "stages" ? kStages[x] : kActivity[x]] = series[x];
  return out;
}

// ---- the test ----

class PersonModelsReference : public ::testing::TestWithParam<int> {};

TEST_P(PersonModelsReference, MatchesNaive) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 104729 + 7);
  std::mt19937_64& rng = R.rng;
  const std::string zone_name = seed % 4 == 3 ? "America/New_York" : "Asia/Shanghai";
  const date::time_zone* zone = date::locate_zone(zone_name);
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());

  // Settings: the defaults on most seeds; other day counts and no order property on some.
  Settings st;
  PeopleSettings ps;
  if (seed % 5 == 4) {
    st = Settings{3, 10, 25, false};
    ps.new_days = 3;
    ps.active_days = 10;
    ps.churn_days = 25;
    ps.order_property = "";
  }
  QueryOptions qo;
  qo.people = &ps;

  const PaymentHistory history = RandomPaymentHistory(seed, R, zone);
  const int day0 = history.day0, span = history.span;
  const std::vector<PEvent>& deliveries = history.deliveries;
  const size_t cut = history.cut;
  auto world_of = [&](size_t upto) { return history.WorldOf(upto); };

  ThrowAwayStore store(static_cast<size_t>(R(3, 60)));
  ASSERT_TRUE(store.ok());
  const bool use_wal = seed % 6 == 0;
  auto deliver = [&](size_t from, size_t to) {
    std::vector<Event> batch;
    for (size_t i = from; i < to; i++) {
      const PEvent& r = deliveries[i];
      Event e = StoredEvent(r.uuid, r.did, r.event, r.ts, r.merge_with);
      if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
      if (r.amount_prop) e.props.push_back({"amount", *r.amount_prop});
      if (r.order_prop) e.props.push_back({"order_id", *r.order_prop});
      if (r.plan) e.person_set.push_back({"plan", PropValue::Str(*r.plan)});
      batch.push_back(std::move(e));
    }
    // Restarts (WAL replay) on the seeds that write the WAL.
    AppendInBatches(store, std::move(batch),
                    BatchPolicy{80, true, use_wal, use_wal ? Durability::kWal : Durability::kUnlogged}, R);
  };

  // Every naive person (root) -> its person id, checking that all its ids agree and that
  // no two naive persons share one.
  auto person_ids = [&](World& w, const StoreSnapshot& snap) {
    std::set<std::string> ids;
    for (auto& [id, par] : w.parent) ids.insert(id);
    return NaivePersonIds(*store, snap, ids, [&](const std::string& id) { return w.Root(id); });
  };

  auto check_facts = [&](World& w, const StoreSnapshot& snap, const std::map<std::string, uint32_t>& pid, int as_of,
                         std::optional<int> pay_from, const std::string& where) {
    const std::map<std::string, NFacts> want = NaiveFacts(w, as_of, pay_from, st);
    auto cached = GetPersonFacts(snap, *tz, ps, as_of, pay_from);
    auto fresh = ComputePersonFacts(snap, *tz, ps, as_of, pay_from);
    const std::string ctx = where + " as_of " + DayString(as_of) + (pay_from ? " from " + DayString(*pay_from) : "");
    for (const auto* facts : {cached.get(), fresh.get()}) {
      EXPECT_EQ(facts->as_of_day, as_of) << ctx;
      EXPECT_EQ(facts->end_ms, LocalMidnight(zone, as_of + 1)) << ctx;
      EXPECT_EQ(facts->active_persons, want.size()) << ctx;
      for (auto& [root, f] : want) {
        const uint32_t p = pid.at(root);
        ASSERT_TRUE(facts->Has(p)) << ctx << " " << root;
        EXPECT_EQ(facts->first_ts[p], f.first) << ctx << " first " << root;
        EXPECT_EQ(facts->last_ts[p], f.last) << ctx << " last " << root;
        EXPECT_EQ(facts->events[p], f.events) << ctx << " events " << root;
        EXPECT_EQ(facts->orders[p], f.orders) << ctx << " orders " << root;
        EXPECT_EQ(facts->Paid(p), f.orders > 0) << ctx << " paid " << root;
        ExpectNear(facts->monetary[p], f.monetary, ctx + " monetary " + root);
        if (f.orders) {
          EXPECT_EQ(facts->last_pay_ts[p], f.last_pay) << ctx << " last pay " << root;
        }
        // The stage of the person page: from all events as of that day.
        const int first = LocalDay(zone, f.first), idle = as_of - LocalDay(zone, f.last);
        const char* stage = as_of - first < st.new_days ? "new"
                            : idle < st.active_days     ? "active"
                            : idle < st.churn_days      ? "silent"
                                                        : "churned";
        EXPECT_EQ(LifecycleStage(*facts, ps, *tz, p), stage) << ctx << " stage " << root;
      }
    }
  };

  auto random_day = [&]() { return day0 + R(-3, span + 5); };

  // ---- phase 1: part of the data; facts cached at these days ----
  deliver(0, cut);
  if (::testing::Test::HasFatalFailure() || !store.ok()) return;
  const int as_of_a = random_day(), as_of_b = random_day();
  {
    World w = world_of(cut);
    auto snap = store->Snapshot();
    auto pid = person_ids(w, *snap);
    check_facts(w, *snap, pid, as_of_a, std::nullopt, "phase 1");
    check_facts(w, *snap, pid, as_of_b, as_of_b - R(0, 60), "phase 1");
  }

  // ---- phase 2: the rest (later merges join persons that already have facts) ----
  deliver(cut, deliveries.size());
  if (::testing::Test::HasFatalFailure() || !store.ok()) return;
  World w = world_of(deliveries.size());
  auto snap = store->Snapshot();
  auto pid = person_ids(w, *snap);
  check_facts(w, *snap, pid, as_of_a, std::nullopt, "phase 2");
  check_facts(w, *snap, pid, as_of_b, std::nullopt, "phase 2");

  // ---- rfm ----
  auto pick4 = [&](std::vector<double> pool) {
    std::shuffle(pool.begin(), pool.end(), rng);
    pool.resize(4);
    std::sort(pool.begin(), pool.end());
    return pool;
  };
  for (int t = 0; t < 6; t++) {
    json q{{"kind", "rfm"}};
    const int as_of = t == 0 ? as_of_a : random_day();
    q["as_of"] = DayString(as_of);
    std::optional<int> from;
    if (R(0, 2) == 0) {
      from = as_of - R(0, 90);
      q["date_from"] = DayString(*from);
    }
    if (R(0, 2) == 0) {
      std::vector<double> rp, fp, mp;
      for (int d = 0; d <= 120; d += 5) rp.push_back(d);
      fp = {1, 1.5, 2, 3, 4, 5, 6};
      for (int a = 0; a <= 800; a += 25) mp.push_back(a * 0.5);
      q["scoring"] = {{"r", pick4(rp)}, {"f", pick4(fp)}, {"m", pick4(mp)}};
    } else if (R(0, 1)) {
      q["scoring"] = "quintiles";
    }
    if (R(0, 3) == 0) {
      switch (R(0, 3)) {
        case 0: q["filters"] = {{{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}}; break;
        case 1: q["filters"] = {{{"property", "person.plan"}, {"op", "neq"}, {"value", "pro"}}}; break;
        case 2: q["filters"] = {{{"property", "person.plan"}, {"op", "is_set"}}}; break;
        default: q["filters"] = {{{"property", "person.plan"}, {"op", "is_not_set"}}}; break;
      }
    }
    const char* orders[] = {"monetary", "frequency", "recency_days"};
    const std::string order_by = orders[R(0, 2)];
    if (t > 0 || R(0, 1)) q["order_by"] = order_by;
    int segment = -1;
    if (R(0, 3) == 0) {
      segment = R(0, 7);
      q["segment"] = kSegmentKeys[segment];
    }
    const bool all = R(0, 1);
    const size_t limit = all ? 100000 : static_cast<size_t>(R(0, 12)), offset = all ? 0 : static_cast<size_t>(R(0, 20));
    if (!all || R(0, 1)) q["limit"] = limit;
    if (offset || R(0, 1)) q["offset"] = offset;
    const size_t eff_limit = q.contains("limit") ? limit : 100;

    auto got = RunQuery(q, *store, *tz, qo);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();
    const auto facts = NaiveFacts(w, as_of, from, st);
    NRfmResult want = NaiveRfm(facts, w, q, as_of, pid);
    const std::string ctx = "seed " + std::to_string(seed) + " " + q.dump();
    const size_t n = want.persons.size();
    EXPECT_EQ((*got)["persons_scored"], n) << ctx;
    EXPECT_EQ((*got)["as_of"], DayString(as_of)) << ctx;
    if (n) {
      ExpectNear((*got)["mean_scores"]["r"], want.means[0], ctx + " mean r");
      ExpectNear((*got)["mean_scores"]["f"], want.means[1], ctx + " mean f");
      ExpectNear((*got)["mean_scores"]["m"], want.means[2], ctx + " mean m");
    }
    // Segments: all eight, with their persons and revenue.
    double revenue = 0;
    for (auto& x : want.persons) revenue += x.monetary;
    ASSERT_EQ((*got)["segments"].size(), 8u) << ctx;
    std::set<std::string> keys;
    for (auto& s : (*got)["segments"]) {
      const std::string key = s["segment"];
      keys.insert(key);
      int idx = -1;
      for (int k = 0; k < 8; k++)
        if (key == kSegmentKeys[k]) idx = k;
      ASSERT_GE(idx, 0) << key;
      EXPECT_EQ(s["r"], idx & 4 ? "high" : "low") << ctx;
      EXPECT_EQ(s["f"], idx & 2 ? "high" : "low") << ctx;
      EXPECT_EQ(s["m"], idx & 1 ? "high" : "low") << ctx;
      uint64_t cnt = 0;
      double rev = 0, rec = 0, fr = 0;
      for (auto& x : want.persons)
        if (x.segment == idx) {
          cnt++;
          rev += x.monetary;
          rec += x.recency;
          fr += x.frequency;
        }
      EXPECT_EQ(s["persons"], cnt) << ctx << " segment " << key;
      ExpectNear(s["revenue"], rev, ctx + " revenue of " + key);
      ExpectNear(s["share"], n ? static_cast<double>(cnt) / static_cast<double>(n) : 0, ctx + " share of " + key);
      ExpectNear(s["revenue_share"], revenue > 0 ? rev / revenue : 0, ctx + " revenue share of " + key);
      if (cnt) {
        ExpectNear(s["avg_recency_days"], rec / static_cast<double>(cnt), ctx + " avg recency of " + key);
        ExpectNear(s["avg_frequency"], fr / static_cast<double>(cnt), ctx + " avg frequency of " + key);
        ExpectNear(s["avg_monetary"], rev / static_cast<double>(cnt), ctx + " avg monetary of " + key);
      }
    }
    EXPECT_EQ(keys.size(), 8u) << ctx;
    // The page: the segment's persons by order_by (ties by person id), offset, limit.
    std::vector<NRfm> list;
    for (auto& x : want.persons)
      if (segment < 0 || x.segment == segment) list.push_back(x);
    EXPECT_EQ((*got)["persons_total"], list.size()) << ctx;
    const std::string ob = q.value("order_by", "monetary");
    std::sort(list.begin(), list.end(), [&](const NRfm& a, const NRfm& b) {
      if (ob == "monetary" && a.monetary != b.monetary) return a.monetary > b.monetary;
      if (ob == "frequency" && a.frequency != b.frequency) return a.frequency > b.frequency;
      if (ob == "recency_days" && a.recency != b.recency) return a.recency < b.recency;
      return a.pid < b.pid;
    });
    const size_t begin = std::min(offset, list.size()), end = std::min(list.size(), offset + eff_limit);
    const json& page = (*got)["persons"];
    ASSERT_EQ(page.size(), end - begin) << ctx << "\n" << got->dump();
    for (size_t i = begin; i < end; i++) {
      const NRfm& x = list[i];
      const json& g = page[i - begin];
      const std::string where = ctx + " row " + std::to_string(i) + " " + x.root;
      EXPECT_EQ(w.Root(g["distinct_id"].get<std::string>()), x.root) << where << " got " << g.dump();
      EXPECT_EQ(g["recency_days"], x.recency) << where;
      EXPECT_EQ(g["frequency"], x.frequency) << where;
      ExpectNear(g["monetary"], x.monetary, where + " monetary");
      EXPECT_EQ(g["r"], x.r) << where;
      EXPECT_EQ(g["f"], x.f) << where;
      EXPECT_EQ(g["m"], x.m) << where;
      EXPECT_EQ(g["segment"], kSegmentKeys[x.segment]) << where;
    }
  }

  // ---- lifecycle ----
  for (int t = 0; t < 6; t++) {
    json q{{"kind", "lifecycle"}};
    q["mode"] = t % 2 ? "activity" : "stages";
    const char* intervals[] = {"day", "week", "month"};
    const std::string interval = intervals[R(0, 2)];
    q["interval"] = interval;
    const int from = day0 + R(-5, span);
    const int to = from + R(0, interval == "day" ? 45 : 130);
    q["date_from"] = DayString(from);
    q["date_to"] = DayString(to);
    const char* events[] = {"$any", "view", "pay", "signup", "refund"};  // no event is a refund
    q["event"] = events[R(0, 4)];
    json filters = json::array();
    for (int i = R(0, 2); i > 0; i--) {
      switch (R(0, 5)) {
        case 0: filters.push_back({{"property", "channel"}, {"op", "eq"}, {"value", "a"}}); break;
        case 1: filters.push_back({{"property", "channel"}, {"op", "neq"}, {"value", "b"}}); break;
        case 2: filters.push_back({{"property", "channel"}, {"op", "in"}, {"value", {"a", "c"}}}); break;
        case 3: filters.push_back({{"property", "channel"}, {"op", "is_not_set"}}); break;
        case 4: filters.push_back({{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}); break;
        default: filters.push_back({{"property", "person.plan"}, {"op", "is_set"}}); break;
      }
    }
    if (!filters.empty()) q["filters"] = filters;
    auto got = RunQuery(q, *store, *tz, qo);
    ASSERT_TRUE(got.ok()) << got.status().ToString() << " " << q.dump();
    json want = NaiveLifecycle(w, q, st);
    const std::string ctx = "seed " + std::to_string(seed) + " " + q.dump();
    // The day-bitmap path (the query's) against the per-person driver's (plain).
    {
      auto lq = ParseLifecycleQuery(q);
      ASSERT_TRUE(lq.ok()) << ctx;
      QueryScope scope(*store, *tz, qo);
      auto fast = RunLifecycle(*lq, scope.ctx());
      auto plain = RunLifecyclePlain(*lq, scope.ctx());
      ASSERT_TRUE(fast.ok() && plain.ok()) << ctx;
      EXPECT_EQ(ToJson(*fast), ToJson(*plain)) << ctx << " (day-bitmap path vs per-person driver)";
    }
    EXPECT_EQ((*got)["dates"], want["dates"]) << ctx;
    ASSERT_EQ((*got)["series"].size(), 4u) << ctx;
    for (auto& s : (*got)["series"]) {
      const std::string name = s["stage"];
      ASSERT_TRUE(want["series"].contains(name)) << ctx << " series " << name;
      EXPECT_EQ(s["values"], want["series"][name]) << ctx << " series " << name;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PersonModelsReference, ::testing::Range(0, 240));

}  // namespace
}  // namespace ns
