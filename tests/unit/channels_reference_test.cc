// The channels query kind against a deliberately naive reference written here: plain loops
// over a vector of events, persons by a union-find over distinct ids, local days from the
// date library (not ns::TimeZone). Random data on many seeds: identity merges after the fact
// (a merge can change a person's first event, so their channel and whether they are new),
// equal timestamps (the channel is the smallest value among the first events), events a
// millisecond either side of local midnight (Asia/Shanghai; some seeds America/New_York across
// a DST change), channel or only utm_source or neither, pay events whose order_id repeats
// across the events of one order, spend rows inside and outside the range, empty ranges.
// The channels KPI reducer's parts (ROAS, CAC, the stop-loss count) on the same data. Then
// the stop-loss rule and the budget split on hand-made cases.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <set>

#include "core/env.h"
#include "ops/kpi_reducers.h"
#include "query/person_facts.h"
#include "query/query_kind.h"
#include "query/spend_source.h"
#include "reference_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::ns::testing::StatusIs;

struct PEvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::vector<std::string> merge_with;
  std::optional<std::string> channel, utm, order;
  std::optional<double> amount;
};

struct World {
  std::vector<PEvent> events;
  std::map<std::string, std::string> parent;
  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  void Finish() {
    for (auto& e : events) {
      Root(e.did);
      for (auto& o : e.merge_with) {
        std::string a = Root(e.did), b = Root(o);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
      }
    }
  }
};

// ---- the naive channels ----

struct NChannel {
  int64_t new_persons = 0, converted = 0, paying = 0;
  double spend = 0, revenue = 0, cumulative = 0;
  std::map<int, double> daily_spend, daily_revenue, revenue_by_day;
  std::set<std::string> currencies;
};

// acq: the acquisition event ("" = any event); conv_seconds: the conversion window in seconds
// instead of conv_days local days.
std::map<std::string, NChannel> NaiveChannels(World& w, const date::time_zone* z, int d0, int d1, int conv_days,
                                              bool orders, const std::vector<SpendRow>& spend,
                                              const std::string& acq = "",
                                              std::optional<int64_t> conv_seconds = std::nullopt) {
  std::map<std::string, NChannel> out;
  std::map<std::string, int64_t> first;
  for (const PEvent& e : w.events) {
    if (!acq.empty() && e.event != acq) continue;
    auto [it, fresh] = first.try_emplace(w.Root(e.did), e.ts);
    if (!fresh) it->second = std::min(it->second, e.ts);
  }
  std::map<std::string, std::string> channel;  // new persons only
  for (auto& [root, ts] : first) {
    const int day = LocalDay(z, ts);
    if (day < d0 || day > d1) continue;
    std::optional<std::string> best;
    for (const PEvent& e : w.events) {
      if (w.Root(e.did) != root || e.ts != ts || (!acq.empty() && e.event != acq)) continue;
      std::optional<std::string> v;
      if (e.channel && !e.channel->empty())
        v = e.channel;
      else if (e.utm && !e.utm->empty())
        v = e.utm;
      if (v && (!best || *v < *best)) best = v;
    }
    channel[root] = best ? *best : "(none)";
  }
  // Orders of the new persons: (first time, largest amount).
  std::map<std::string, std::vector<std::pair<int64_t, double>>> person_orders;
  std::map<std::pair<std::string, std::string>, std::pair<int64_t, double>> keyed;
  for (const PEvent& e : w.events) {
    const std::string root = w.Root(e.did);
    if (e.event != "pay" || !channel.count(root)) continue;
    const double a = e.amount.value_or(0);
    if (orders && e.order && !e.order->empty()) {
      auto [it, fresh] = keyed.try_emplace({root, *e.order}, std::make_pair(e.ts, a));
      if (!fresh) it->second = {std::min(it->second.first, e.ts), std::max(it->second.second, a)};
    } else {
      person_orders[root].push_back({e.ts, a});
    }
  }
  for (auto& [k, v] : keyed) person_orders[k.first].push_back(v);
  for (auto& [root, ch] : channel) {
    NChannel& c = out[ch];
    c.new_persons++;
    int64_t first_order = std::numeric_limits<int64_t>::max();
    bool paid = false;
    for (auto& [ts, a] : person_orders[root]) {
      first_order = std::min(first_order, ts);
      const int day = LocalDay(z, ts);
      paid = paid || day <= d1;
      c.cumulative += a;
      c.revenue_by_day[day] += a;
      if (day >= d0 && day <= d1) {
        c.revenue += a;
        c.daily_revenue[day] += a;
      }
    }
    c.paying += paid;
    const int64_t acquired = first.at(root);
    if (first_order != std::numeric_limits<int64_t>::max() && first_order >= acquired &&
        (conv_seconds ? first_order - acquired <= *conv_seconds * 1000
                      : LocalDay(z, first_order) - LocalDay(z, acquired) < conv_days))
      c.converted++;
  }
  for (const SpendRow& r : spend) {
    if (r.day < d0 || r.day > d1) continue;
    NChannel& c = out[r.channel];
    c.spend += r.spend;
    c.daily_spend[r.day] += r.spend;
    c.currencies.insert(r.currency);
  }
  return out;
}

void ExpectNear(const json& got, double want, const std::string& what) {
  ASSERT_TRUE(got.is_number()) << what << ": " << got.dump();
  EXPECT_NEAR(got.get<double>(), want, 1e-9 * std::max(1.0, std::fabs(want))) << what;
}
void ExpectRatio(const json& got, double num, double den, const std::string& what) {
  if (den > 0)
    ExpectNear(got, num / den, what);
  else
    EXPECT_TRUE(got.is_null()) << what << ": " << got.dump();
}

class ChannelsReference : public ::testing::TestWithParam<int> {};

TEST_P(ChannelsReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 7919 + 13);
  auto R = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)); };
  const std::string zone_name = seed % 4 == 3 ? "America/New_York" : "Asia/Shanghai";
  const date::time_zone* zone = date::locate_zone(zone_name);
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());
  PeopleSettings ps;
  const bool orders = seed % 5 != 4;
  if (!orders) ps.order_property = "";

  // 60 local days from 2025-02-20 (New York's DST change on 2025-03-09 inside).
  const int day0 = static_cast<int>(date::sys_days{date::year{2025} / 2 / 20}.time_since_epoch().count());
  const int span = 60;
  const int persons = R(2, 25);
  const int nevents = R(20, 250);
  static const char* kChannels[] = {"ads", "feed", "seo", ""};
  std::vector<PEvent> sent;
  for (int i = 0; i < nevents; i++) {
    PEvent e;
    e.uuid = "c" + std::to_string(seed) + "-" + std::to_string(i);
    const int p = R(1, persons);
    const int kind = R(0, 99);
    e.did = std::string(1, kind < 50 ? 'u' : kind < 85 ? 'a' : 'd') + std::to_string(p);
    const int tr = R(0, 99);
    const int day = day0 + R(0, span - 1);
    if (tr < 50 || sent.empty()) {
      e.ts = LocalMidnight(zone, day) + R(0, 86'399'999);
    } else if (tr < 75) {
      static const int64_t kOff[] = {-1, 0, 1, -1000, 999};
      e.ts = LocalMidnight(zone, day) + kOff[R(0, 4)];
    } else {
      e.ts = sent[static_cast<size_t>(R(0, static_cast<int>(sent.size()) - 1))].ts;
    }
    if (R(0, 2) == 0) e.channel = kChannels[R(0, 3)];
    if (R(0, 2) == 0) e.utm = kChannels[R(0, 3)];
    const int roll = R(0, 99);
    if (roll < 8) {
      e.event = "$identify";
      e.did = "u" + std::to_string(p);
      e.merge_with.push_back(std::string(1, R(0, 2) ? 'a' : 'd') + std::to_string(p));
    } else if (roll < 10 && p + 2 <= persons) {
      e.event = "$create_alias";
      e.did = "u" + std::to_string(p);
      e.merge_with.push_back("u" + std::to_string(p + 2));
    } else if (roll < 45) {
      e.event = "pay";
      if (R(0, 9)) e.amount = R(-2, 300) * 0.5;
      const int o = R(0, 99);
      if (o < 55)
        e.order = "o" + std::to_string(R(1, 5));
      else if (o < 60)
        e.order = "";
    } else {
      e.event = R(0, 1) ? "view" : "signup";
    }
    sent.push_back(e);
  }
  // Deliveries shuffled, some retried; merges arrive after the events they join.
  std::vector<PEvent> deliveries = sent;
  for (int i = 0; i < nevents / 10; i++) deliveries.push_back(sent[rng() % sent.size()]);
  std::shuffle(deliveries.begin(), deliveries.end(), rng);
  World w;
  {
    std::set<std::string> seen;
    for (const PEvent& e : deliveries)
      if (seen.insert(e.uuid).second) w.events.push_back(e);
    w.Finish();
  }

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
      const PEvent& r = deliveries[i];
      Event e;
      e.uuid = Uuid::FromClientId(r.uuid);
      e.has_uuid = true;
      e.distinct_id = r.did;
      e.event = r.event;
      e.ts_ms = r.ts;
      if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
      if (r.utm) e.props.push_back({"utm_source", PropValue::Str(*r.utm)});
      if (r.amount) e.props.push_back({"amount", PropValue::Num(*r.amount)});
      if (r.order) e.props.push_back({"order_id", PropValue::Str(*r.order)});
      for (auto& m : r.merge_with) {
        e.props.push_back({r.event == "$identify" ? "$anon_distinct_id" : "alias", PropValue::Str(m)});
        e.merge_with.push_back(m);
      }
      batch.push_back(std::move(e));
    }
    pos += n;
    auto res = (*store)->Append(std::move(batch), Durability::kUnlogged);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    const int action = R(0, 9);
    if (action == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
    if (action == 1) {
      ASSERT_TRUE((*store)->CompactAll().ok());
    }
  }

  // Spend: some channels, some days, also outside the range and for a channel nobody came by.
  std::vector<SpendRow> spend;
  static const char* kSpendChannels[] = {"ads", "feed", "seo", "tv"};
  for (int c = 0; c < 4; c++) {
    if (R(0, 3) == 0) continue;
    for (int d = day0 - 3; d < day0 + span + 3; d++)
      if (R(0, 2))
        spend.push_back(SpendRow{d, kSpendChannels[c], R(0, 1) ? "" : "cmp", static_cast<double>(R(0, 40)),
                                 c == 1 && R(0, 5) == 0 ? "USD" : "CNY"});
  }
  FixedSpendSource source(spend);
  QueryOptions qo;
  qo.people = &ps;
  qo.spend = &source;

  for (int t = 0; t < 4; t++) {
    int d0 = day0 + R(-5, span), d1 = d0 + R(0, 40);
    if (t == 3 && R(0, 1)) {  // a range with no events at all
      d0 = day0 + span + 10;
      d1 = d0 + 3;
    }
    const int conv = R(0, 2) ? 7 : R(1, 20);
    json q{{"kind", "channels"}, {"date_from", DayString(d0)}, {"date_to", DayString(d1)}, {"conversion_days", conv}};
    // Acquisition by a named event (Q5 of the benchmark: register), and windows in seconds
    // (a day, or a few hours: the window's end falls inside a day).
    std::string acq;
    if (R(0, 2) == 0) acq = R(0, 1) ? "signup" : "pay";
    if (!acq.empty()) q["acquisition_event"] = acq;
    std::optional<int64_t> conv_seconds;
    if (R(0, 2) == 0) conv_seconds = R(0, 1) ? 86400 : R(0, 30) * 3600;
    if (conv_seconds) q["conversion_seconds"] = *conv_seconds;
    const double line = R(0, 1) ? 1.0 : R(1, 8) * 0.5;
    const int streak = R(1, 5);
    q["stop_loss"] = {{"roas_below", line}, {"days", streak}};
    const std::string where = "seed " + std::to_string(seed) + " query " + q.dump();
    auto got = RunQuery(q, **store, *tz, qo);
    ASSERT_TRUE(got.ok()) << where << ": " << got.status().ToString();
    const auto want = NaiveChannels(w, zone, d0, d1, conv, orders, spend, acq, conv_seconds);
    ASSERT_EQ((*got)["channels"].size(), want.size()) << where << "\n" << got->dump();
    for (const json& c : (*got)["channels"]) {
      const std::string name = c["channel"];
      ASSERT_TRUE(want.count(name)) << where << " channel " << name;
      const NChannel& n = want.at(name);
      const std::string at = where + " channel " + name;
      EXPECT_EQ(c["new_persons"], n.new_persons) << at;
      EXPECT_EQ(c["converted_persons"], n.converted) << at;
      EXPECT_EQ(c["paying_persons"], n.paying) << at;
      ExpectNear(c["spend"], n.spend, at + " spend");
      ExpectNear(c["revenue"], n.revenue, at + " revenue");
      ExpectNear(c["revenue_cumulative"], n.cumulative, at + " cumulative");
      ExpectRatio(c["cac"], n.spend, static_cast<double>(n.new_persons), at + " cac");
      ExpectRatio(c["first_order_conversion"], static_cast<double>(n.converted), static_cast<double>(n.new_persons),
                  at + " conversion");
      ExpectRatio(c["roas"], n.revenue, n.spend, at + " roas");
      ExpectRatio(c["roas_cumulative"], n.cumulative, n.spend, at + " roas_cumulative");
      EXPECT_EQ(c["currencies"], json(std::vector<std::string>(n.currencies.begin(), n.currencies.end()))) << at;
      // Payback: the first day whose cumulative revenue (from date_from) reaches the spend.
      json payback = nullptr;
      if (n.spend > 0) {
        double sum = 0;
        for (int d = d0; d <= d0 + 400 && payback.is_null(); d++) {
          auto it = n.revenue_by_day.find(d);
          sum += it == n.revenue_by_day.end() ? 0 : it->second;
          if (sum >= n.spend && (it != n.revenue_by_day.end())) payback = d - d0;
        }
      }
      EXPECT_EQ(c["payback_days"], payback) << at;
      // Daily rows and the stop-loss streak counted back from date_to.
      ASSERT_EQ(c["daily"].size(), static_cast<size_t>(d1 - d0 + 1)) << at;
      int below = 0;
      bool run = true;
      for (int d = d1; d >= d0; d--) {
        auto s = n.daily_spend.find(d);
        auto r = n.daily_revenue.find(d);
        const double sp = s == n.daily_spend.end() ? 0 : s->second;
        const double rv = r == n.daily_revenue.end() ? 0 : r->second;
        const json& row = c["daily"][static_cast<size_t>(d - d0)];
        EXPECT_EQ(row["date"], DayString(d)) << at;
        ExpectNear(row["spend"], sp, at + " daily spend " + DayString(d));
        ExpectNear(row["revenue"], rv, at + " daily revenue " + DayString(d));
        if (run && sp > 0 && rv < line * sp)
          below++;
        else
          run = false;
      }
      EXPECT_EQ(c["stop_loss"]["below_days"], below) << at;
      EXPECT_EQ(c["stop_loss"]["triggered"], below >= streak) << at;
    }
    int64_t total_new = 0;
    for (auto& [name, n] : want) total_new += n.new_persons;
    EXPECT_EQ((*got)["totals"]["new_persons"], total_new) << where;

    // The KPI reducer (ops/kpi_reducers.h): ROAS and CAC as parts that add up over channels,
    // per channel when broken down by "channel"; the stop-loss count over the trailing
    // streak + 1 days (a last day without spend skipped).
    const KpiReducer* kpi = FindKpiReducer("channels");
    ASSERT_NE(kpi, nullptr);
    QueryScope scope(**store, *tz, qo);
    const auto sl = NaiveChannels(w, zone, d1 - streak, d1, conv, orders, spend, acq, conv_seconds);
    auto past_line = [&](const NChannel& n) {
      auto at = [](const std::map<int, double>& m, int d) {
        auto it = m.find(d);
        return it == m.end() ? 0.0 : it->second;
      };
      int end = d1, below = 0;
      if (!(at(n.daily_spend, end) > 0)) end--;
      for (int d = end; d >= d1 - streak; d--) {
        const double sp = at(n.daily_spend, d), rv = at(n.daily_revenue, d);
        if (!(sp > 0) || !(rv < line * sp)) break;
        below++;
      }
      return below >= streak;
    };
    for (const char* metric : {"roas", "cac", "stop_loss_channels"}) {
      for (bool by_channel : {false, true}) {
        json red{{"metric", metric}}, kq = q;
        ASSERT_TRUE(kpi->validate(kq, red).ok()) << where;
        kpi->shape(kq, red);
        if (by_channel) kq["breakdown"] = "channel";
        auto parts = kpi->reduce(kq, red, PeriodRange{d0, d1}, by_channel, scope.ctx());
        ASSERT_TRUE(parts.ok()) << where << ": " << parts.status().ToString();
        std::map<std::string, KpiParts> expect;
        const auto& src = std::string(metric) == "stop_loss_channels" ? sl : want;
        for (auto& [name, n] : src) {
          KpiParts p{0, 0, std::string(metric) != "stop_loss_channels"};
          if (std::string(metric) == "roas") p = {n.revenue, n.spend, true};
          if (std::string(metric) == "cac") p = {n.spend, static_cast<double>(n.new_persons), true};
          if (std::string(metric) == "stop_loss_channels") p.num = past_line(n) ? 1 : 0;
          KpiParts& e = expect[by_channel ? name : ""];
          e.ratio = p.ratio;
          e.num += p.num;
          e.den += p.den;
        }
        if (!by_channel && expect.empty()) expect[""] = KpiParts{0, 0, std::string(metric) != "stop_loss_channels"};
        ASSERT_EQ(parts->size(), expect.size()) << where << " " << metric;
        for (auto& [k, e] : expect) {
          const std::string at = where + " kpi " + metric + " " + k;
          ASSERT_TRUE(parts->count(k)) << at;
          EXPECT_NEAR(parts->at(k).num, e.num, 1e-6) << at;
          EXPECT_NEAR(parts->at(k).den, e.den, 1e-6) << at;
          EXPECT_EQ(parts->at(k).ratio, e.ratio) << at;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ChannelsReference, ::testing::Range(0, 220));

// ---- hand-made cases: the stop-loss rule and the budget split ----

class ChannelsRules : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = EventStore::Open(dir_.path(), StoreOptions{});
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    auto z = TimeZone::Load("Asia/Shanghai");
    ASSERT_TRUE(z.ok());
    tz_ = std::make_unique<TimeZone>(*z);
  }
  int Day(int y, int m, int d) {
    return static_cast<int>(date::sys_days{date::year{y} / m / d}.time_since_epoch().count());
  }
  // One person acquired by `channel` on `day` who pays `amount` that day.
  void Buyer(const std::string& id, const std::string& channel, int day, double amount) {
    std::vector<Event> batch;
    for (int k = 0; k < 2; k++) {
      Event e;
      e.distinct_id = id;
      e.event = k == 0 ? "signup" : "pay";
      e.ts_ms = tz_->DayStartMs(day) + 3600'000 + k;
      if (k == 0) e.props.push_back({"channel", PropValue::Str(channel)});
      if (k == 1) e.props.push_back({"amount", PropValue::Num(amount)});
      batch.push_back(std::move(e));
    }
    ASSERT_TRUE(store_->Append(std::move(batch), Durability::kUnlogged).ok());
  }
  json Run(const json& q, const std::vector<SpendRow>& spend) {
    FixedSpendSource source(spend);
    QueryOptions qo;
    qo.spend = &source;
    auto r = RunQuery(q, *store_, *tz_, qo);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json();
  }
  const json& Channel(const json& r, const std::string& name) {
    for (const json& c : r["channels"])
      if (c["channel"] == name) return c;
    static const json kNone;
    ADD_FAILURE() << "no channel " << name << " in " << r.dump();
    return kNone;
  }
  ::ns::testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  std::unique_ptr<TimeZone> tz_;
};

TEST_F(ChannelsRules, StopLossNeedsTheLastNDaysBelowTheLine) {
  const int d0 = Day(2025, 5, 1);
  std::vector<SpendRow> spend;
  // "ads": 10 a day for 10 days; revenue 30 on day 0-2, then 5 a day (ROAS 0.5) on days 3-9.
  for (int i = 0; i < 10; i++) {
    spend.push_back({d0 + i, "ads", "", 10, "CNY"});
    Buyer("a" + std::to_string(i), "ads", d0 + i, i < 3 ? 30 : 5);
  }
  json q{{"kind", "channels"}, {"date_from", DayString(d0)}, {"date_to", DayString(d0 + 9)}};
  json r = Run(q, spend);
  EXPECT_EQ(Channel(r, "ads")["stop_loss"], (json{{"triggered", true}, {"below_days", 7}}));
  q["stop_loss"] = {{"days", 8}};
  r = Run(q, spend);
  EXPECT_EQ(Channel(r, "ads")["stop_loss"], (json{{"triggered", false}, {"below_days", 7}}));
  // A day without spend ends the streak: no money was lost that day.
  spend[5].spend = 0;
  q["stop_loss"] = {{"days", 4}, {"roas_below", 0.6}};
  r = Run(q, spend);
  EXPECT_EQ(Channel(r, "ads")["stop_loss"], (json{{"triggered", true}, {"below_days", 4}}));
}

TEST_F(ChannelsRules, BudgetFollowsMarginalRoas) {
  const int d0 = Day(2025, 5, 1);
  std::vector<SpendRow> spend;
  // "ads": spend 10, 20, 30, 40 bringing revenue 20, 30, 40, 50: slope 1 (average ROAS 1.4).
  // "feed": spend 10 every day, revenue 30: constant spend, so its average ROAS 3.
  // "tv": spend 10, 20, 30, 40 bringing 40, 30, 20, 10: slope < 0, so 0.
  for (int i = 0; i < 4; i++) {
    spend.push_back({d0 + i, "ads", "", 10.0 * (i + 1), "CNY"});
    Buyer("a" + std::to_string(i), "ads", d0 + i, 20.0 + 10 * i);
    spend.push_back({d0 + i, "feed", "", 10, "CNY"});
    Buyer("f" + std::to_string(i), "feed", d0 + i, 30);
    spend.push_back({d0 + i, "tv", "", 10.0 * (i + 1), "CNY"});
    Buyer("t" + std::to_string(i), "tv", d0 + i, 40.0 - 10 * i);
  }
  json q{{"kind", "channels"}, {"date_from", DayString(d0)}, {"date_to", DayString(d0 + 3)}, {"budget", 1000}};
  json r = Run(q, spend);
  ASSERT_TRUE(r.contains("budget")) << r.dump();
  const json& split = r["budget"]["split"];
  ASSERT_EQ(split.size(), 3u) << r.dump();
  EXPECT_EQ(split[0]["channel"], "feed");
  EXPECT_NEAR(split[0]["marginal_roas"].get<double>(), 3.0, 1e-9);
  EXPECT_NEAR(split[0]["budget"].get<double>(), 750, 1e-9);
  EXPECT_EQ(split[1]["channel"], "ads");
  EXPECT_NEAR(split[1]["marginal_roas"].get<double>(), 1.0, 1e-9);
  EXPECT_NEAR(split[1]["budget"].get<double>(), 250, 1e-9);
  EXPECT_EQ(split[2]["channel"], "tv");
  EXPECT_EQ(split[2]["share"], 0.0);
  // A lookback of 1 day: one point, so the average ROAS of that day.
  q["budget_lookback_days"] = 1;
  r = Run(q, spend);
  EXPECT_EQ(r["budget"]["window_from"], DayString(d0 + 3));
  double sum = 0;
  for (const json& s : r["budget"]["split"]) sum += s["budget"].get<double>();
  EXPECT_NEAR(sum, 1000, 1e-9);
}

TEST_F(ChannelsRules, ValidationNamesTheField) {
  auto run = [&](const json& q) { return RunQuery(q, *store_, *tz_, QueryOptions{}); };
  json base{{"kind", "channels"}, {"date_from", "2025-05-01"}, {"date_to", "2025-05-03"}};
  json q = base;
  q["budget"] = -1;
  EXPECT_THAT(run(q), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "budget"));
  q = base;
  q["stop_loss"] = {{"days", 0}};
  EXPECT_THAT(run(q), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "stop_loss.days"));
  q = base;
  q["channel_properties"] = json::array({"channel", 3});
  EXPECT_THAT(run(q), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "channel_properties[1]"));
  q = base;
  q["conversion_seconds"] = -1;
  EXPECT_THAT(run(q), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "conversion_seconds"));
  q = base;
  q["acquisition_event"] = 7;
  EXPECT_THAT(run(q), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "acquisition_event"));
  q = base;
  q["windw"] = 3;
  EXPECT_THAT(run(q), StatusIs(StatusCode::kInvalidArgument, ::testing::HasSubstr("windw")));
  // No events and no spend: an empty list, never an error.
  auto r = run(base);
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE((*r)["channels"].empty());
  EXPECT_TRUE((*r)["totals"]["cac"].is_null());
}

}  // namespace
}  // namespace ns
