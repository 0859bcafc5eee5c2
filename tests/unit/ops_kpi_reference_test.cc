// The operations layer's numbers against naive reference implementations written here,
// on random data and many seeds (the project's rule for every query operator, see
// query_reference_test.cc): Kpis::Evaluate (trends sum/avg/last/max/min, funnel step
// conversions, retention period k; with and without a breakdown dimension), Kpis::Daily,
// formula KPIs and EvalFormula, Alerts::RootCause (the additive decomposition of a change
// over breakdown values must add up to the change exactly), AchievementRate/LightFor at
// their boundaries and Kpis::CurrentPeriod around month, quarter and year ends.
//
// The naive side works on a plain vector of events: local days from the date library,
// persons = distinct ids (no merges), per-person loops. Timestamps are unique, so "later"
// is never ambiguous.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>

#include <unistd.h>

#include "core/time_zone.h"
#include "core/uuid.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "ops/alerts.h"
#include "ops/kpis.h"
#include "ops/schema.h"
#include "storage/event_store.h"

namespace ns {
namespace {

using nlohmann::json;

constexpr double kTol = 1e-9;

// ---------------------------------------------------------------- naive calendar

int Civil(int y, unsigned m, unsigned d) {
  return static_cast<int>(date::sys_days{date::year{y} / date::month{m} / date::day{d}}.time_since_epoch().count());
}
date::year_month_day Ymd(int day) { return date::year_month_day{date::sys_days{date::days{day}}}; }
std::string DayStr(int day) { return date::format("%F", date::sys_days{date::days{day}}); }

int LocalDayOf(const date::time_zone* z, int64_t ms) {
  auto lt = z->to_local(date::sys_seconds{std::chrono::seconds{ms / 1000}});
  return static_cast<int>(date::floor<date::days>(lt).time_since_epoch().count());
}

// UTC ms of local (day, second of day); in a DST gap, the instant the gap ends.
int64_t LocalMs(const date::time_zone* z, int day, int sec) {
  date::local_seconds ls{date::local_days{date::days{day}} + std::chrono::seconds{sec}};
  auto info = z->get_info(ls);
  if (info.result == date::local_info::nonexistent)
    return date::sys_seconds{info.first.end}.time_since_epoch().count() * 1000;
  return (date::sys_seconds{ls.time_since_epoch()} - info.first.offset).time_since_epoch().count() * 1000;
}

int WeekStart(int day) {
  date::weekday wd{date::sys_days{date::days{day}}};
  return day - static_cast<int>((wd.c_encoding() + 6) % 7);  // Monday
}
int MonthStart(int day) {
  auto ymd = Ymd(day);
  return Civil(static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()), 1);
}
int MonthEnd(int day) {
  auto ymd = Ymd(day);
  date::year_month_day_last l{ymd.year(), date::month_day_last{ymd.month()}};
  return static_cast<int>(date::sys_days{l}.time_since_epoch().count());
}
int PeriodStart(int day, const std::string& p) {
  return p == "week" ? WeekStart(day) : p == "month" ? MonthStart(day) : day;
}
// First day of the period k periods after the one starting at `start`.
int PeriodKStart(int start, int k, const std::string& p) {
  if (p == "day") return start + k;
  if (p == "week") return start + 7 * k;
  auto ymd = Ymd(start);
  auto ym = date::year_month{ymd.year(), ymd.month()} + date::months{k};
  return static_cast<int>(date::sys_days{ym / 1}.time_since_epoch().count());
}
int PeriodsBetween(int cohort, int day, const std::string& p) {
  if (p == "day") return day - cohort;
  if (p == "week") return (WeekStart(day) - cohort) / 7;
  auto a = Ymd(cohort), b = Ymd(day);
  return (static_cast<int>(b.year()) - static_cast<int>(a.year())) * 12 +
         static_cast<int>(static_cast<unsigned>(b.month())) - static_cast<int>(static_cast<unsigned>(a.month()));
}

// ---------------------------------------------------------------- the naive world

struct Ev {
  std::string did, name;
  int64_t ts;
  int day;  // local day
  std::optional<std::string> channel, platform;
  std::optional<double> amount;
  std::string Prop(const std::string& dim) const {
    const auto& v = dim == "channel" ? channel : platform;
    return v ? *v : "(none)";
  }
};

struct Range {
  int from, to;
};

bool Matches(const std::string& want, const Ev& e) { return want == "$any" || want == e.name; }

// Trends: the daily values of one series over [from, to], per breakdown key ("" without).
std::map<std::string, std::vector<double>> NaiveTrendDaily(const std::vector<Ev>& evs, const std::string& name,
                                                           const std::string& math, Range r, const std::string& dim) {
  std::map<std::string, std::vector<double>> out;
  std::map<std::string, std::vector<std::set<std::string>>> persons;
  std::set<std::string> matched;
  size_t n = static_cast<size_t>(r.to - r.from + 1);
  for (const Ev& e : evs) {
    if (!Matches(name, e) || e.day < r.from || e.day > r.to) continue;
    if (math == "sum" && !e.amount) continue;  // a property math only sees events with the property
    std::string key = dim.empty() ? "" : e.Prop(dim);
    auto& v = out[key];
    auto& ps = persons[key];
    if (v.empty()) v.assign(n, 0.0), ps.resize(n);
    size_t i = static_cast<size_t>(e.day - r.from);
    if (math == "total")
      v[i] += 1;
    else if (math == "sum")
      v[i] += *e.amount;
    else
      ps[i].insert(e.did);
  }
  if (math == "dau")
    for (auto& [k, v] : out)
      for (size_t i = 0; i < n; i++) v[i] = static_cast<double>(persons[k][i].size());
  if (dim.empty() && out.empty()) out[""].assign(n, 0.0);
  return out;
}

KpiParts Reduce(const std::vector<double>& daily, const std::string& op) {
  KpiParts p;
  if (op == "sum" || op == "avg") {
    for (double x : daily) p.num += x;
    if (op == "avg") p.den = static_cast<double>(daily.size()), p.ratio = true;
  } else if (op == "last") {
    p.num = daily.empty() ? 0 : daily.back();
  } else if (op == "max") {
    p.num = daily.empty() ? 0 : *std::max_element(daily.begin(), daily.end());
  } else {
    p.num = daily.empty() ? 0 : *std::min_element(daily.begin(), daily.end());
  }
  return p;
}

std::map<std::string, std::vector<const Ev*>> ByPerson(const std::vector<Ev>& evs) {
  std::map<std::string, std::vector<const Ev*>> by;
  for (const Ev& e : evs) by[e.did].push_back(&e);
  for (auto& [d, v] : by) std::sort(v.begin(), v.end(), [](const Ev* a, const Ev* b) { return a->ts < b->ts; });
  return by;
}

// Ordered funnel: per person, the furthest step reached from any entry (step 1 event with
// its local day in the range), taking the earliest next step event each time (optimal
// with unique timestamps); the breakdown key is that of the first entry in the range.
// Returns per key the number of persons reaching each step.
std::map<std::string, std::vector<double>> NaiveFunnel(const std::map<std::string, std::vector<const Ev*>>& by,
                                                       const std::vector<std::string>& steps, int64_t window_ms,
                                                       Range r, const std::string& dim) {
  std::map<std::string, std::vector<double>> out;
  const size_t n = steps.size();
  for (const auto& [did, tl] : by) {
    size_t best = 0;
    std::string key;
    bool entered = false;
    for (size_t i = 0; i < tl.size(); i++) {
      const Ev& e = *tl[i];
      if (!Matches(steps[0], e) || e.day < r.from || e.day > r.to) continue;
      if (!entered) entered = true, key = dim.empty() ? "" : e.Prop(dim);
      size_t reached = 1, j = i;
      while (reached < n) {
        bool found = false;
        size_t nj = j + 1;
        for (; nj < tl.size() && tl[nj]->ts - e.ts <= window_ms; nj++)
          if (Matches(steps[reached], *tl[nj])) {
            found = true;
            break;
          }
        if (!found) break;
        j = nj;
        reached++;
      }
      best = std::max(best, reached);
    }
    if (!entered) continue;
    auto& c = out[key];
    if (c.empty()) c.assign(n, 0.0);
    for (size_t k = 0; k < best; k++) c[k] += 1;
  }
  if (dim.empty() && out.empty()) out[""].assign(n, 0.0);
  return out;
}

struct Cohort {
  double size = 0;
  std::vector<double> values;
};

// Retention (mode exact): cohorts per (period start, key).
std::map<std::pair<int, std::string>, Cohort> NaiveRetention(const std::map<std::string, std::vector<const Ev*>>& by,
                                                             const std::string& start, const std::string& ret,
                                                             const std::string& period, int periods, bool first_time,
                                                             Range r, const std::string& dim) {
  std::map<std::pair<int, std::string>, Cohort> out;
  for (const auto& [did, tl] : by) {
    std::vector<size_t> anchors;
    for (size_t i = 0; i < tl.size(); i++) {
      if (!Matches(start, *tl[i])) continue;
      if (first_time) {
        if (tl[i]->day >= r.from && tl[i]->day <= r.to) anchors.push_back(i);
        break;  // only the first-ever start event can anchor
      }
      if (tl[i]->day < r.from || tl[i]->day > r.to) continue;
      if (anchors.empty() || PeriodStart(tl[anchors.back()]->day, period) != PeriodStart(tl[i]->day, period))
        anchors.push_back(i);
    }
    for (size_t a : anchors) {
      int cohort = PeriodStart(tl[a]->day, period);
      std::vector<double> returned(static_cast<size_t>(periods), 0.0);
      for (size_t j = a + 1; j < tl.size(); j++) {
        if (!Matches(ret, *tl[j])) continue;
        int k = PeriodsBetween(cohort, tl[j]->day, period);
        if (k >= 0 && k < periods) returned[static_cast<size_t>(k)] = 1;
      }
      Cohort& c = out[{cohort, dim.empty() ? "" : tl[a]->Prop(dim)}];
      if (c.values.empty()) c.values.assign(static_cast<size_t>(periods), 0.0);
      c.size += 1;
      for (int k = 0; k < periods; k++) c.values[static_cast<size_t>(k)] += returned[static_cast<size_t>(k)];
    }
  }
  return out;
}

// ---------------------------------------------------------------- fixture

// A temporary directory in memory when /dev/shm is there: this test checks arithmetic, and
// on a busy disk the stores' and SQLite's fsyncs would take 10x the time of everything else.
class ScratchDir {
 public:
  ScratchDir() {
    std::error_code ec;
    std::string base = std::filesystem::is_directory("/dev/shm", ec) && ::access("/dev/shm", W_OK) == 0
                           ? "/dev/shm"
                           : std::filesystem::temp_directory_path().string();
    std::string tmpl = base + "/ns-opsref-XXXXXX";
    char* p = ::mkdtemp(tmpl.data());
    path_ = p ? p : tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct Ops {
  ScratchDir dir;
  std::unique_ptr<ProjectRegistry> registry;
  std::unique_ptr<MetaDb> db;
  std::unique_ptr<Kpis> kpis;
  std::unique_ptr<Channels> channels;
  std::unique_ptr<Alerts> alerts;
  Principal who{"test", 0, "p", Role::kAdmin, Credential::kSystem};

  void Open(const std::string& tz, size_t seal_rows = 16'384) {
    StoreOptions so;
    so.background = false;
    so.seal_rows = seal_rows;  // small: several memtable blocks
    auto reg = ProjectRegistry::Open(dir.path() + "/data", so);
    ASSERT_TRUE(reg.ok()) << reg.status().ToString();
    registry = std::move(*reg);
    ASSERT_TRUE(registry->Create("p", tz).ok());
    auto m = MetaDb::Open(dir.path() + "/ops.db");
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    db = std::move(*m);
    ASSERT_TRUE(db->Migrate("ops", OpsMigrations()).ok());
    kpis = std::make_unique<Kpis>(*db, *registry);
    channels = std::make_unique<Channels>(*db);
    alerts = std::make_unique<Alerts>(*db, *kpis, *channels);
  }
};

json Validated(json body) {
  if (!body.contains("name")) body["name"] = "k";
  auto d = ValidateKpi(body, nullptr);
  EXPECT_TRUE(d.ok()) << d.status().ToString() << " " << body.dump();
  return d.ok() ? *d : json();
}

std::string Where(const json& doc, Range r, const std::string& dim = "") {
  return doc["query"].dump() + " reduce " + doc["reduce"].dump() + " range " + DayStr(r.from) + ".." + DayStr(r.to) +
         (dim.empty() ? "" : " by " + dim);
}

void ExpectParts(const KpiParts& got, const KpiParts& want, const std::string& where) {
  EXPECT_NEAR(got.num, want.num, kTol * std::max(1.0, std::fabs(want.num))) << "num " << where;
  EXPECT_NEAR(got.den, want.den, kTol * std::max(1.0, std::fabs(want.den))) << "den " << where;
  EXPECT_EQ(got.ratio, want.ratio) << "ratio " << where;
}

// Compares per-key parts; keys missing on one side must be empty on the other.
void ExpectPartsByKey(const std::map<std::string, KpiParts>& got, const std::map<std::string, KpiParts>& want,
                      const std::string& where) {
  std::set<std::string> keys;
  for (auto& [k, v] : got) keys.insert(k);
  for (auto& [k, v] : want) keys.insert(k);
  for (const auto& k : keys) {
    auto g = got.find(k), w = want.find(k);
    if (g == got.end()) {
      EXPECT_EQ(w->second.num, 0) << "missing key " << k << " " << where;
    } else if (w == want.end()) {
      EXPECT_EQ(g->second.num, 0) << "extra key " << k << " " << where;
    } else {
      ExpectParts(g->second, w->second, where + " key " + k);
    }
  }
}

const char* kZones[] = {"Asia/Shanghai", "UTC", "America/New_York"};
const char* kNames[] = {"visit", "cart", "pay", "signup"};
const char* kDims[] = {"channel", "platform"};

class OpsKpiReference : public ::testing::TestWithParam<int> {};

TEST_P(OpsKpiReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 7);
  auto R = [&](int lo, int hi) {
    return static_cast<int>(lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)));
  };
  auto pick = [&](auto& arr) {
    return std::string(arr[static_cast<size_t>(R(0, static_cast<int>(std::size(arr)) - 1))]);
  };
  const std::string tzname = kZones[seed % 3];
  const date::time_zone* zone = date::locate_zone(tzname);
  Ops ops;
  ASSERT_NO_FATAL_FAILURE(ops.Open(tzname, static_cast<size_t>(R(3, 60))));
  auto proj = ops.registry->OpenProject("p");
  ASSERT_TRUE(proj.ok());

  // ---- random events: 24 local days from late February (month end, a US DST change)
  const int first = Civil(2025, 2, 18) + R(0, 6);
  const int span = 24;
  const int persons = R(4, 30);
  const int nevents = R(80, 420);
  std::vector<Ev> evs;
  std::set<int64_t> used_ts;
  for (int i = 0; i < nevents; i++) {
    Ev e;
    int p = R(1, persons);
    e.did = "u" + std::to_string(p);
    // Persons are active around their own days (funnels and returns happen).
    int day = std::min(first + span - 1, first + (p * 5) % span + R(0, 8));
    int64_t ts;
    do ts = LocalMs(zone, day, R(0, 86399));
    while (!used_ts.insert(ts).second);
    e.ts = ts;
    e.day = LocalDayOf(zone, ts);
    e.name = pick(kNames);
    if (R(0, 3)) e.channel = std::string(1, static_cast<char>('a' + R(0, 2)));
    if (R(0, 4) < 3) e.platform = R(0, 1) ? "ios" : "android";
    if (R(0, 1)) e.amount = R(1, 60) * 0.5;
    evs.push_back(e);
  }
  {
    std::vector<Ev> order = evs;
    std::shuffle(order.begin(), order.end(), rng);
    size_t pos = 0;
    int k = 0;
    bool flushed = false;
    while (pos < order.size()) {
      size_t n = static_cast<size_t>(R(1, 120));
      std::vector<Event> batch;
      for (size_t i = pos; i < std::min(order.size(), pos + n); i++) {
        const Ev& r = order[i];
        Event e;
        e.uuid = Uuid::FromClientId("s" + std::to_string(seed) + "-" + std::to_string(k++));
        e.has_uuid = true;
        e.distinct_id = r.did;
        e.event = r.name;
        e.ts_ms = r.ts;
        if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
        if (r.platform) e.props.push_back({"platform", PropValue::Str(*r.platform)});
        if (r.amount) e.props.push_back({"amount", PropValue::Num(*r.amount)});
        batch.push_back(std::move(e));
      }
      pos += n;
      auto st = (*proj)->store->Append(std::move(batch), Durability::kUnlogged);
      ASSERT_TRUE(st.ok()) << st.status().ToString();
      if (seed % 3 == 0 && k >= nevents / 2 && !flushed) {  // half in segments, half in the memtable
        ASSERT_TRUE((*proj)->store->Flush().ok());
        flushed = true;
      }
    }
  }
  const auto by = ByPerson(evs);
  auto random_range = [&]() {
    int a = first + R(-2, span - 2);
    return Range{a, a + R(0, 12)};
  };
  Kpis& kpis = *ops.kpis;

  // ---- trends: sum / avg / last / max / min of daily total, sum(amount) or dau
  for (int t = 0; t < 6; t++) {
    std::string name = R(0, 4) == 0 ? "$any" : pick(kNames);
    std::string math = std::vector<std::string>{"total", "sum", "dau"}[static_cast<size_t>(R(0, 2))];
    std::string op = std::vector<std::string>{"sum", "avg", "last", "max", "min"}[static_cast<size_t>(R(0, 4))];
    json series{{"event", name}, {"math", math}};
    if (math == "sum") series["property"] = "amount";
    json doc = Validated(
        {{"query", {{"kind", "trends"}, {"series", json::array({series})}}}, {"reduce", {{"series", 0}, {"op", op}}}});
    Range r = random_range();
    auto got = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto daily = NaiveTrendDaily(evs, name, math, r, "");
    KpiParts want = Reduce(daily[""], op);
    ExpectParts((*got)[""], want, Where(doc, r));
    // Daily: the series' value of every day.
    auto ds = kpis.Daily("p", doc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(ds.ok());
    ASSERT_EQ(ds->values.size(), daily[""].size());
    EXPECT_EQ(ds->first_day, r.from);
    for (size_t i = 0; i < daily[""].size(); i++)
      EXPECT_NEAR(ds->values[i], daily[""][i], kTol) << "daily " << i << " " << Where(doc, r);
    // By a dimension: each value's parts; for additive measures the parts add up.
    std::string dim = pick(kDims);
    auto gb = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to}, dim);
    ASSERT_TRUE(gb.ok());
    std::map<std::string, KpiParts> wb;
    for (auto& [k, v] : NaiveTrendDaily(evs, name, math, r, dim)) wb[k] = Reduce(v, op);
    ExpectPartsByKey(*gb, wb, Where(doc, r, dim));
    if (math != "dau" && (op == "sum" || op == "avg")) {
      double s = 0;
      for (auto& [k, v] : *gb) s += v.num;
      EXPECT_NEAR(s, want.num, kTol * std::max(1.0, want.num)) << "parts add up " << Where(doc, r, dim);
    }
  }

  // ---- funnels: persons at to_step / persons at from_step
  for (int t = 0; t < 5; t++) {
    size_t n = static_cast<size_t>(R(2, 4));
    std::vector<std::string> steps;
    json sj = json::array();
    for (size_t k = 0; k < n; k++) {
      steps.push_back(pick(kNames));
      sj.push_back({{"event", steps.back()}});
    }
    int64_t window = std::vector<int64_t>{600, 3600, 86400, 3 * 86400, 7 * 86400}[static_cast<size_t>(R(0, 4))];
    int f = R(1, static_cast<int>(n) - 1), to = R(f + 1, static_cast<int>(n));
    json doc = Validated({{"query", {{"kind", "funnel"}, {"steps", sj}, {"window_seconds", window}}},
                          {"reduce", {{"from_step", f}, {"to_step", to}}}});
    Range r = random_range();
    auto got = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto want = NaiveFunnel(by, steps, window * 1000, r, "")[""];
    ExpectParts((*got)[""], KpiParts{want[static_cast<size_t>(to - 1)], want[static_cast<size_t>(f - 1)], true},
                Where(doc, r));
    std::string dim = pick(kDims);
    auto gb = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to}, dim);
    ASSERT_TRUE(gb.ok());
    std::map<std::string, KpiParts> wb;
    for (auto& [k, c] : NaiveFunnel(by, steps, window * 1000, r, dim))
      wb[k] = KpiParts{c[static_cast<size_t>(to - 1)], c[static_cast<size_t>(f - 1)], true};
    ExpectPartsByKey(*gb, wb, Where(doc, r, dim));
    double sn = 0, sd = 0;
    for (auto& [k, v] : *gb) sn += v.num, sd += v.den;
    EXPECT_EQ(sn, (*got)[""].num) << "numerators add up " << Where(doc, r, dim);
    EXPECT_EQ(sd, (*got)[""].den) << "denominators add up " << Where(doc, r, dim);
    // Daily: one funnel per entry day; no value (NaN) where nobody entered.
    if (t < 2) {
      auto ds = kpis.Daily("p", doc, PeriodRange{r.from, r.to});
      ASSERT_TRUE(ds.ok());
      ASSERT_EQ(ds->weights.size(), ds->values.size());
      for (int d = r.from; d <= r.to; d++) {
        auto c = NaiveFunnel(by, steps, window * 1000, Range{d, d}, "")[""];
        size_t i = static_cast<size_t>(d - r.from);
        double den = c[static_cast<size_t>(f - 1)];
        EXPECT_EQ(ds->weights[i], den) << "daily weight " << DayStr(d) << " " << Where(doc, r);
        if (den == 0)
          EXPECT_TRUE(std::isnan(ds->values[i])) << DayStr(d);
        else
          EXPECT_NEAR(ds->values[i], c[static_cast<size_t>(to - 1)] / den, kTol)
              << "daily " << DayStr(d) << " " << Where(doc, r);
      }
    }
  }

  // ---- retention: persons returned in period k / cohort size, over the cohorts whose
  // period k has ended by the end of the range
  for (int t = 0; t < 4; t++) {
    std::string start = pick(kNames), ret = R(0, 3) == 0 ? "$any" : pick(kNames);
    std::string period = std::vector<std::string>{"day", "day", "week", "month"}[static_cast<size_t>(R(0, 3))];
    int k = period == "day" ? R(0, 5) : R(0, 1);
    int periods = k + R(1, 3);
    bool first_time = R(0, 2) != 0;
    json doc = Validated({{"query",
                           {{"kind", "retention"},
                            {"start_event", start},
                            {"return_event", ret},
                            {"period", period},
                            {"periods", periods},
                            {"first_time", first_time}}},
                          {"reduce", {{"period", k}}}});
    Range r = random_range();
    r.to += R(0, 14);
    auto included = [&](int cohort) { return PeriodKStart(cohort, k + 1, period) - 1 <= r.to; };
    auto got = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    KpiParts want{0, 0, true};
    for (auto& [key, c] : NaiveRetention(by, start, ret, period, periods, first_time, r, ""))
      if (included(key.first)) want.num += c.values[static_cast<size_t>(k)], want.den += c.size;
    ExpectParts((*got)[""], want, Where(doc, r));
    std::string dim = pick(kDims);
    auto gb = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to}, dim);
    ASSERT_TRUE(gb.ok());
    std::map<std::string, KpiParts> wb;
    for (auto& [key, c] : NaiveRetention(by, start, ret, period, periods, first_time, r, dim)) {
      if (!included(key.first)) continue;
      KpiParts& p = wb[key.second];
      p.ratio = true;
      p.num += c.values[static_cast<size_t>(k)];
      p.den += c.size;
    }
    ExpectPartsByKey(*gb, wb, Where(doc, r, dim));
    double sn = 0, sd = 0;
    for (auto& [key, v] : *gb) sn += v.num, sd += v.den;
    EXPECT_EQ(sn, (*got)[""].num) << "numerators add up " << Where(doc, r, dim);
    EXPECT_EQ(sd, (*got)[""].den) << "denominators add up " << Where(doc, r, dim);
    // Daily: each cohort day of the range (period k begun) with its rate and size.
    auto ds = kpis.Daily("p", doc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(ds.ok());
    std::vector<double> wv(static_cast<size_t>(r.to - r.from + 1), std::nan("")), ww(wv.size(), 0.0);
    for (auto& [key, c] : NaiveRetention(by, start, ret, period, periods, first_time, r, "")) {
      if (key.first < r.from || !included(key.first) || c.size == 0) continue;
      size_t i = static_cast<size_t>(key.first - r.from);
      wv[i] = c.values[static_cast<size_t>(k)] / c.size;
      ww[i] = c.size;
    }
    ASSERT_EQ(ds->values.size(), wv.size());
    for (size_t i = 0; i < wv.size(); i++) {
      if (std::isnan(wv[i]))
        EXPECT_TRUE(std::isnan(ds->values[i])) << "daily " << i << " " << Where(doc, r) << " got " << ds->values[i];
      else
        EXPECT_NEAR(ds->values[i], wv[i], kTol) << "daily " << i << " " << Where(doc, r);
      EXPECT_EQ(ds->weights[i], ww[i]) << "daily weight " << i << " " << Where(doc, r);
    }
  }

  // ---- commerce KPIs (evaluated one day at a time): a sum has a value on every day, 0
  // included, that adds up to the range's; a ratio has one where its denominator is > 0.
  for (const char* metric : {"gmv", "orders", "aov"}) {
    json doc = Validated({{"query", {{"kind", "commerce"}}}, {"reduce", {{"metric", metric}}}});
    Range r = random_range();
    auto ds = kpis.Daily("p", doc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(ds.ok()) << ds.status().ToString();
    ASSERT_EQ(ds->values.size(), static_cast<size_t>(r.to - r.from + 1));
    double sum = 0;
    for (int d = r.from; d <= r.to; d++) {
      auto one = kpis.Evaluate("p", doc, PeriodRange{d, d});
      ASSERT_TRUE(one.ok()) << one.status().ToString();
      const KpiParts& kp = (*one)[""];
      const double got = ds->values[static_cast<size_t>(d - r.from)];
      if (kp.ratio && !(kp.den > 0)) {
        EXPECT_TRUE(std::isnan(got)) << "day " << DayStr(d) << " " << Where(doc, r);
      } else {
        EXPECT_NEAR(got, kp.Value(), kTol) << "day " << DayStr(d) << " " << Where(doc, r);
        sum += got;
      }
    }
    if (std::string(metric) != "aov") {
      auto whole = kpis.Evaluate("p", doc, PeriodRange{r.from, r.to});
      ASSERT_TRUE(whole.ok());
      EXPECT_NEAR(sum, (*whole)[""].Value(), kTol * std::max(1.0, sum)) << "days add up " << Where(doc, r);
    }
  }

  // ---- formula KPIs over stored KPIs: Evaluate and Daily
  {
    std::string a = pick(kNames), b = pick(kNames);
    json sa = json::array({json{{"event", a}, {"math", "sum"}, {"property", "amount"}}});
    json sb = json::array({json{{"event", b}}});
    auto ka = kpis.Create(
        ops.who,
        {{"name", "a"}, {"query", {{"kind", "trends"}, {"series", sa}}}, {"reduce", {{"series", 0}, {"op", "sum"}}}});
    auto kb = kpis.Create(
        ops.who,
        {{"name", "b"}, {"query", {{"kind", "trends"}, {"series", sb}}}, {"reduce", {{"series", 0}, {"op", "sum"}}}});
    std::vector<std::string> fsteps = {pick(kNames), pick(kNames)};
    json fs = json::array({json{{"event", fsteps[0]}}, json{{"event", fsteps[1]}}});
    auto kc = kpis.Create(ops.who, {{"name", "c"},
                                    {"query", {{"kind", "funnel"}, {"steps", fs}, {"window_seconds", 86400}}},
                                    {"reduce", {{"from_step", 1}, {"to_step", 2}}}});
    ASSERT_TRUE(ka.ok() && kb.ok() && kc.ok())
        << ka.status().ToString() << kb.status().ToString() << kc.status().ToString();
    std::string f = "k" + std::to_string(*ka) + " / k" + std::to_string(*kb) + " + 2 * k" + std::to_string(*kc);
    auto kf = kpis.Create(ops.who, {{"name", "f"}, {"reduce", {{"formula", f}}}});
    ASSERT_TRUE(kf.ok()) << kf.status().ToString();
    auto fdoc = kpis.Doc("p", *kf);
    ASSERT_TRUE(fdoc.ok());
    Range r = random_range();
    auto value = [&](Range rr, double* va, double* vb, double* vc) {
      *va = Reduce(NaiveTrendDaily(evs, a, "sum", rr, "")[""], "sum").num;
      *vb = Reduce(NaiveTrendDaily(evs, b, "total", rr, "")[""], "sum").num;
      auto c = NaiveFunnel(by, fsteps, 86400'000, rr, "")[""];
      *vc = c[0] > 0 ? c[1] / c[0] : std::nan("");
    };
    double va, vb, vc;
    value(r, &va, &vb, &vc);
    auto got = kpis.Evaluate("p", *fdoc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    double want = (vb == 0 ? 0.0 : va / vb) + 2 * (std::isnan(vc) ? 0.0 : vc);  // x/0 reads as 0; an empty funnel as 0
    EXPECT_NEAR((*got)[""].Value(), want, kTol) << f;
    auto ds = kpis.Daily("p", *fdoc, PeriodRange{r.from, r.to});
    ASSERT_TRUE(ds.ok());
    for (int d = r.from; d <= r.to; d++) {
      value(Range{d, d}, &va, &vb, &vc);
      double v = ds->values[static_cast<size_t>(d - r.from)];
      if (std::isnan(vc))
        EXPECT_TRUE(std::isnan(v)) << "formula daily " << DayStr(d);  // a part without a value
      else
        EXPECT_NEAR(v, (vb == 0 ? 0.0 : va / vb) + 2 * vc, kTol) << "formula daily " << DayStr(d);
    }
  }

  // ---- root cause: the contributions of the values of each dimension add up to the
  // change; the top 3 reported are the naive top 3
  for (int t = 0; t < 4; t++) {
    json doc;
    std::vector<std::string> steps;
    int64_t window = 0;
    std::string name, math, op;
    int kind = t % 4;  // 0 funnel, 1 retention, 2 trends sum, 3 trends avg
    if (kind == 0) {
      steps = {pick(kNames), pick(kNames), pick(kNames)};
      window = std::vector<int64_t>{3600, 86400, 3 * 86400}[static_cast<size_t>(R(0, 2))];
      json sj = json::array({json{{"event", steps[0]}}, json{{"event", steps[1]}}, json{{"event", steps[2]}}});
      doc = Validated({{"query", {{"kind", "funnel"}, {"window_seconds", window}, {"steps", sj}}},
                       {"reduce", {{"from_step", 1}, {"to_step", R(2, 3)}}},
                       {"dimensions", json::array({"channel", "platform"})}});
    } else if (kind == 1) {
      name = pick(kNames);
      doc = Validated({{"query",
                        {{"kind", "retention"},
                         {"start_event", name},
                         {"return_event", "$any"},
                         {"period", "day"},
                         {"periods", 4},
                         {"first_time", false}}},
                       {"reduce", {{"period", R(0, 2)}}},
                       {"dimensions", json::array({"channel", "platform"})}});
    } else {
      name = R(0, 3) == 0 ? "$any" : pick(kNames);
      math = R(0, 1) ? "total" : "sum";
      op = kind == 2 ? "sum" : "avg";
      json series{{"event", name}, {"math", math}};
      if (math == "sum") series["property"] = "amount";
      doc = Validated({{"query", {{"kind", "trends"}, {"series", json::array({series})}}},
                       {"reduce", {{"series", 0}, {"op", op}}},
                       {"dimensions", json::array({"channel", "platform"})}});
    }
    Range cur = random_range(), prev = random_range();
    if (R(0, 1)) {  // adjacent windows of equal length, as the alert rules use them
      int len = R(1, 8);
      cur = Range{first + R(len, span - 1), 0};
      cur.to = std::min(cur.from + len - 1, first + span - 1);
      prev = Range{cur.from - (cur.to - cur.from + 1), cur.from - 1};
    }
    // Naive parts of a window, total ("") or per value of a dimension.
    auto parts = [&](Range r, const std::string& dim) {
      std::map<std::string, KpiParts> out;
      if (kind == 0) {
        int f = doc["reduce"]["from_step"], to = doc["reduce"]["to_step"];
        for (auto& [key, c] : NaiveFunnel(by, steps, window * 1000, r, dim))
          out[key] = KpiParts{c[static_cast<size_t>(to - 1)], c[static_cast<size_t>(f - 1)], true};
      } else if (kind == 1) {
        int k = doc["reduce"]["period"];
        for (auto& [key, c] : NaiveRetention(by, name, "$any", "day", 4, false, r, dim)) {
          if (key.first + k > r.to) continue;
          KpiParts& p = out[key.second];
          p.ratio = true;
          p.num += c.values[static_cast<size_t>(k)];
          p.den += c.size;
        }
        if (dim.empty() && out.empty()) out[""] = KpiParts{0, 0, true};
      } else {
        for (auto& [key, v] : NaiveTrendDaily(evs, name, math, r, dim)) out[key] = Reduce(v, op);
      }
      return out;
    };
    KpiParts t0 = parts(prev, "")[""], t1 = parts(cur, "")[""];
    double r0 = t0.Value(), r1 = t1.Value(), delta = r1 - r0;
    auto rc = ops.alerts->RootCause("p", doc, PeriodRange{cur.from, cur.to}, PeriodRange{prev.from, prev.to});
    ASSERT_TRUE(rc.ok()) << rc.status().ToString();
    std::string where = Where(doc, cur) + " vs " + DayStr(prev.from) + ".." + DayStr(prev.to);
    EXPECT_NEAR((*rc)["previous"].get<double>(), r0, kTol) << where;
    EXPECT_NEAR((*rc)["current"].get<double>(), r1, kTol) << where;
    EXPECT_NEAR((*rc)["change"].get<double>(), delta, kTol) << where;
    // Every contribution, naively: ratio R = N/D: (N1v - R0 D1v)/D1 - (N0v - R0 D0v)/D0;
    // a mean of daily values (common denominator, the days): N1v/D1 - N0v/D0; sums: V1v - V0v.
    std::map<std::pair<std::string, std::string>, double> contrib;
    for (const char* dim : kDims) {
      auto b0 = parts(prev, dim), b1 = parts(cur, dim);
      std::set<std::string> keys;
      for (auto& [k, v] : b0) keys.insert(k);
      for (auto& [k, v] : b1) keys.insert(k);
      if (keys.empty() || (keys.size() == 1 && *keys.begin() == "(none)")) continue;
      double sum = 0;
      for (const auto& k : keys) {
        KpiParts p0 = b0.count(k) ? b0[k] : KpiParts{}, p1 = b1.count(k) ? b1[k] : KpiParts{};
        double c;
        if (kind <= 1) {
          c = (t1.den > 0 ? (p1.num - r0 * p1.den) / t1.den : 0) - (t0.den > 0 ? (p0.num - r0 * p0.den) / t0.den : 0);
        } else if (kind == 3) {
          c = (t1.den > 0 ? p1.num / t1.den : 0) - (t0.den > 0 ? p0.num / t0.den : 0);
        } else {
          c = p1.num - p0.num;
        }
        contrib[{dim, k}] = c;
        sum += c;
      }
      // Exact whenever both windows have a denominator (a ratio of nothing reads as 0).
      if (kind == 2 || (t0.den > 0 && t1.den > 0)) {
        EXPECT_NEAR(sum, delta, kTol) << "sum over " << dim << " " << where;
      }
    }
    std::vector<double> want_top;
    for (auto& [key, c] : contrib)
      if (delta != 0 && c != 0 && (c < 0) == (delta < 0)) want_top.push_back(c);
    std::sort(want_top.begin(), want_top.end(), [&](double x, double y) { return delta < 0 ? x < y : x > y; });
    const json& top = (*rc)["top_contributors"];
    ASSERT_LE(top.size(), 3u);
    size_t big = 0;  // naive contributions clearly in the direction of the change
    for (double c : want_top) big += std::fabs(c) > 1e-12;
    EXPECT_GE(top.size(), std::min<size_t>(3, big)) << where << " " << rc->dump();
    for (size_t i = 0; i < top.size(); i++) {
      auto key = std::make_pair(top[i]["dimension"].get<std::string>(), top[i]["value"].get<std::string>());
      ASSERT_TRUE(contrib.count(key)) << key.first << "=" << key.second << " " << where;
      double c = top[i]["contribution"].get<double>();
      EXPECT_NEAR(c, contrib[key], kTol) << key.first << "=" << key.second << " " << where;
      EXPECT_NEAR(c, want_top[i], kTol) << "rank " << i << " " << where << " " << rc->dump();
      EXPECT_NEAR(top[i]["share"].get<double>(), c / delta, kTol) << where;
    }
    if (kind == 0) {
      EXPECT_EQ((*rc)["steps"].size(), 2u) << where;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, OpsKpiReference, ::testing::Range(0, 60));

// Monthly and weekly retention: a cohort counts for period k once that period has ended by
// the end of the range (docs/ops-api.md), whatever the lengths of the months.
TEST(OpsRetention, PeriodKMustHaveEnded) {
  Ops ops;
  ASSERT_NO_FATAL_FAILURE(ops.Open("UTC"));
  auto proj = ops.registry->OpenProject("p");
  ASSERT_TRUE(proj.ok());
  const date::time_zone* utc = date::locate_zone("UTC");
  std::vector<Event> batch;
  auto add = [&](const std::string& did, const std::string& name, int day) {
    Event e;
    e.uuid = Uuid::FromClientId(did + name + std::to_string(day));
    e.has_uuid = true;
    e.distinct_id = did;
    e.event = name;
    e.ts_ms = LocalMs(utc, day, 12 * 3600);
    batch.push_back(e);
  };
  add("u1", "signup", Civil(2025, 2, 10));  // February cohort, back in March
  add("u1", "visit", Civil(2025, 3, 5));
  add("u2", "signup", Civil(2025, 3, 3));  // March cohort, back in April
  add("u2", "visit", Civil(2025, 4, 2));
  ASSERT_TRUE((*proj)->store->Append(std::move(batch), Durability::kUnlogged).ok());
  json doc = Validated({{"query",
                         {{"kind", "retention"},
                          {"start_event", "signup"},
                          {"return_event", "visit"},
                          {"period", "month"},
                          {"periods", 3}}},
                        {"reduce", {{"period", 1}}}});
  struct Case {
    int from, to;
    double num, den;
  } cases[] = {
      {Civil(2025, 2, 1), Civil(2025, 3, 3), 0, 0},  // February cohort: March has not ended
      {Civil(2025, 2, 1), Civil(2025, 3, 30), 0, 0}, {Civil(2025, 2, 1), Civil(2025, 3, 31), 1, 1},  // it has
      {Civil(2025, 3, 1), Civil(2025, 3, 31), 0, 0},  // March cohort: April has not ended
      {Civil(2025, 3, 1), Civil(2025, 4, 29), 0, 0}, {Civil(2025, 3, 1), Civil(2025, 4, 30), 1, 1},
      {Civil(2025, 2, 1), Civil(2025, 4, 30), 2, 2},
  };
  for (const Case& c : cases) {
    auto got = ops.kpis->Evaluate("p", doc, PeriodRange{c.from, c.to});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    EXPECT_EQ((*got)[""].num, c.num) << DayStr(c.from) << ".." << DayStr(c.to);
    EXPECT_EQ((*got)[""].den, c.den) << DayStr(c.from) << ".." << DayStr(c.to);
    auto ds = ops.kpis->Daily("p", doc, PeriodRange{c.from, c.to});
    ASSERT_TRUE(ds.ok());
    double w = 0;
    for (double x : ds->weights) w += x;
    EXPECT_EQ(w, c.den) << "daily weights " << DayStr(c.from) << ".." << DayStr(c.to);
  }
  // Weekly: u1's cohort is the week of Monday 2025-02-10; week 1 is 02-17..02-23.
  json wdoc = Validated({{"query",
                          {{"kind", "retention"},
                           {"start_event", "signup"},
                           {"return_event", "$any"},
                           {"period", "week"},
                           {"periods", 8}}},
                         {"reduce", {{"period", 3}}}});  // week 3: 03-03..03-09, u1 is back on 03-05
  for (auto [to, den] : {std::pair{Civil(2025, 3, 3), 0.0}, {Civil(2025, 3, 8), 0.0}, {Civil(2025, 3, 9), 1.0}}) {
    auto got = ops.kpis->Evaluate("p", wdoc, PeriodRange{Civil(2025, 2, 10), to});
    ASSERT_TRUE(got.ok());
    EXPECT_EQ((*got)[""].den, den) << "weekly, to " << DayStr(to);
    EXPECT_EQ((*got)[""].num, den) << "weekly, to " << DayStr(to);
  }
}

// "Below target by >= X%": 18% against a 20% target is exactly 10% below: the light is
// yellow and a 10% rule fires; an 11% rule does not. The alert carries the root cause.
TEST(OpsAlerts, BelowTargetAtExactlyTheThreshold) {
  Ops ops;
  ASSERT_NO_FATAL_FAILURE(ops.Open("Asia/Shanghai"));
  auto proj = ops.registry->OpenProject("p");
  ASSERT_TRUE(proj.ok());
  const date::time_zone* z = date::locate_zone("Asia/Shanghai");
  const int d0 = Civil(2025, 6, 2), d1 = Civil(2025, 6, 3);
  std::vector<Event> batch;
  int n = 0;
  auto add = [&](const std::string& did, const std::string& name, int day, int sec, const std::string& channel) {
    Event e;
    e.uuid = Uuid::FromClientId("e" + std::to_string(n++));
    e.has_uuid = true;
    e.distinct_id = did;
    e.event = name;
    e.ts_ms = LocalMs(z, day, sec);
    e.props.push_back({"channel", PropValue::Str(channel)});
    batch.push_back(e);
  };
  // The period (d1): 50 sign-ups, 9 pay (18%). The day before (d0): 50 sign-ups, 12 pay;
  // the 3 lost payments are all channel=feed_ads.
  for (int i = 0; i < 50; i++) {
    std::string ch = i < 20 ? "feed_ads" : "organic";
    add("a" + std::to_string(i), "signup", d0, 36000 + i, ch);
    if (i < 6 || (i >= 20 && i < 26)) add("a" + std::to_string(i), "pay", d0, 40000 + i, ch);
    add("b" + std::to_string(i), "signup", d1, 36000 + i, ch);
    if (i < 3 || (i >= 20 && i < 26)) add("b" + std::to_string(i), "pay", d1, 40000 + i, ch);
  }
  ASSERT_TRUE((*proj)->store->Append(std::move(batch), Durability::kUnlogged).ok());
  json steps = json::array({json{{"event", "signup"}}, json{{"event", "pay"}}});
  auto kid = ops.kpis->Create(ops.who, {{"name", "pay conversion"},
                                        {"query", {{"kind", "funnel"}, {"steps", steps}, {"window_seconds", 86400}}},
                                        {"reduce", {{"from_step", 1}, {"to_step", 2}}},
                                        {"target", 0.2},
                                        {"period", {{"type", "custom"}, {"from", DayStr(d1)}, {"to", DayStr(d1)}}},
                                        {"dimensions", json::array({"channel"})}});
  ASSERT_TRUE(kid.ok()) << kid.status().ToString();
  std::map<int, int64_t> rules;
  for (int pct : {9, 10, 11}) {
    auto r = ops.alerts->CreateRule(ops.who, {{"kpi_id", *kid}, {"type", "below_target"}, {"threshold_pct", pct}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    rules[pct] = *r;
  }
  auto k = ops.kpis->Refresh("p", *kid);
  ASSERT_TRUE(k.ok()) << k.status().ToString();
  EXPECT_NEAR((*k)["actual"].get<double>(), 0.18, kTol);
  EXPECT_NEAR((*k)["achievement_rate"].get<double>(), 0.9, kTol);
  EXPECT_EQ((*k)["light"], "yellow");
  auto fired = ops.alerts->EvaluateKpi("p", *kid);
  ASSERT_TRUE(fired.ok()) << fired.status().ToString();
  std::set<int64_t> fired_rules;
  for (auto& a : *fired) fired_rules.insert(a["rule_id"].get<int64_t>());
  EXPECT_EQ(fired_rules, (std::set<int64_t>{rules[9], rules[10]}));
  ASSERT_FALSE(fired->empty());
  std::string msg = (*fired)[0]["message"];
  EXPECT_NE(msg.find("18.0% vs target 20.0% (90% achieved)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("100% of the drop from channel=feed_ads"), std::string::npos) << msg;
  EXPECT_NE(msg.find("step signup\u2192pay \u221225%"), std::string::npos) << msg;
  // One problem, one message: evaluating again fires nothing new.
  auto again = ops.alerts->EvaluateKpi("p", *kid);
  ASSERT_TRUE(again.ok());
  EXPECT_TRUE(again->empty()) << again->dump();
}

// ---------------------------------------------------------------- backfilled history

// Kpis::BackfillSnapshot (the first-start demo's history): a snapshot of each past day holds
// the value of the period containing that day, counted through that day, with its target,
// achievement and light, stamped as asked; the KPI's state is untouched; a day that is not
// in the past is refused naming "day".
TEST(OpsHistory, BackfillSnapshotIsTheValueAsOfThatDay) {
  Ops ops;
  ASSERT_NO_FATAL_FAILURE(ops.Open("UTC"));
  auto proj = ops.registry->OpenProject("p");
  ASSERT_TRUE(proj.ok());
  const date::time_zone* utc = date::locate_zone("UTC");
  const int today = LocalDayOf(utc, NowMs());
  std::map<int, int> pays;  // day -> pay events
  std::vector<Event> batch;
  for (int day = today - 20; day <= today; day++) {
    pays[day] = 1 + (day % 7 + 7) % 7;
    for (int i = 0; i < pays[day]; i++) {
      Event e;
      e.uuid = Uuid::FromClientId("b" + std::to_string(day) + "-" + std::to_string(i));
      e.has_uuid = true;
      e.distinct_id = "u" + std::to_string(i);
      e.event = "pay";
      e.ts_ms = LocalMs(utc, day, 600 + i);
      batch.push_back(e);
    }
  }
  ASSERT_TRUE((*proj)->store->Append(std::move(batch), Durability::kUnlogged).ok());
  auto kid = ops.kpis->Create(ops.who, {{"name", "payments this week"},
                                        {"query", {{"kind", "trends"}, {"series", json::array({{{"event", "pay"}}})}}},
                                        {"reduce", {{"series", 0}, {"op", "sum"}}},
                                        {"target", 20},
                                        {"period", {{"type", "week"}}}});
  ASSERT_TRUE(kid.ok()) << kid.status().ToString();
  for (int back = 14; back >= 1; back--)
    ASSERT_TRUE(ops.kpis->BackfillSnapshot("p", *kid, today - back, 1000 * back).ok());
  auto row = ops.kpis->LoadRow("p", *kid);
  ASSERT_TRUE(row.ok());
  EXPECT_FALSE(row->state.has_value()) << "a backfill must not set the current state";
  auto rows = ops.db->Query(
      "SELECT taken_at, as_of, period_from, period_to, actual, target, achievement_rate, light FROM kpi_snapshots "
      "WHERE kpi_id = ? ORDER BY id",
      {*kid});
  ASSERT_TRUE(rows.ok());
  ASSERT_EQ(rows->size(), 14u);
  for (int back = 14; back >= 1; back--) {
    const SqlRow& r = (*rows)[static_cast<size_t>(14 - back)];
    const int day = today - back;
    double want = 0;
    for (int d = WeekStart(day); d <= day; d++) want += pays[d];
    EXPECT_EQ(r.Int(0), 1000 * back);
    EXPECT_EQ(r.Str(1), DayStr(day));
    EXPECT_EQ(r.Str(2), DayStr(WeekStart(day)));
    EXPECT_EQ(r.Str(3), DayStr(WeekStart(day) + 6));
    EXPECT_DOUBLE_EQ(r.Real(4), want) << DayStr(day);
    EXPECT_DOUBLE_EQ(r.Real(5), 20);
    EXPECT_NEAR(r.Real(6), want / 20, kTol);
    EXPECT_EQ(r.Str(7), LightFor(want / 20, json{{"green", 1.0}, {"yellow", 0.9}}));
  }
  for (int day : {today + 1, today + 30}) {
    Status st = ops.kpis->BackfillSnapshot("p", *kid, day, 0);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(st.field(), "day");
  }
  // A day before a custom period: a snapshot without a value (the period had not begun).
  auto later =
      ops.kpis->Create(ops.who, {{"name", "later"},
                                 {"query", {{"kind", "trends"}, {"series", json::array({{{"event", "pay"}}})}}},
                                 {"reduce", {{"series", 0}, {"op", "sum"}}},
                                 {"target", 5},
                                 {"period", {{"from", DayStr(today - 3)}, {"to", DayStr(today + 3)}}}});
  ASSERT_TRUE(later.ok()) << later.status().ToString();
  ASSERT_TRUE(ops.kpis->BackfillSnapshot("p", *later, today - 5, 1).ok());
  ASSERT_TRUE(ops.kpis->BackfillSnapshot("p", *later, today - 2, 2).ok());
  auto got = ops.kpis->Get("p", *later);  // computes today's state and lists the history
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  const json& h = (*got)["history"];
  ASSERT_EQ(h.size(), 3u) << h.dump();
  EXPECT_TRUE(h[0]["actual"].is_null()) << h.dump();
  EXPECT_TRUE(h[0]["light"].is_null()) << h.dump();
  EXPECT_DOUBLE_EQ(h[1]["actual"].get<double>(), pays[today - 3] + pays[today - 2]) << h.dump();
  EXPECT_EQ(h[2]["as_of"], DayStr(today));
}

// ---------------------------------------------------------------- formulas

struct Node {
  char op = 0;  // 0 number, 'k' reference, 'n' negation, else + - * /
  double num = 0;
  int64_t ref = 0;
  std::unique_ptr<Node> l, r;
};

int Prec(const Node& n) { return n.op == '+' || n.op == '-' ? 1 : n.op == '*' || n.op == '/' ? 2 : 3; }

double Eval(const Node& n, const std::map<int64_t, double>& v) {
  switch (n.op) {
    case 0: return n.num;
    case 'k': return v.at(n.ref);
    case 'n': return -Eval(*n.l, v);
    case '+': return Eval(*n.l, v) + Eval(*n.r, v);
    case '-': return Eval(*n.l, v) - Eval(*n.r, v);
    case '*': return Eval(*n.l, v) * Eval(*n.r, v);
    default: {
      double a = Eval(*n.l, v), b = Eval(*n.r, v);
      return b == 0 ? 0.0 : a / b;  // documented: x/0 reads as 0
    }
  }
}

// The text of a tree; numbers are set to the value their text denotes.
std::string Render(Node& n, std::mt19937_64& rng, bool full_parens) {
  auto sp = [&]() { return std::string(static_cast<size_t>(rng() % 3 == 0 ? rng() % 3 : 0), ' '); };
  if (n.op == 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, rng() % 2 ? "%.0f" : "%.3f", n.num);
    n.num = std::strtod(buf, nullptr);
    return sp() + buf + sp();
  }
  if (n.op == 'k') return sp() + (rng() % 5 == 0 ? "K" : "k") + std::to_string(n.ref) + sp();
  if (n.op == 'n') {
    bool atom = n.l->op == 0 || n.l->op == 'k';
    return sp() + "-" + (atom ? Render(*n.l, rng, full_parens) : "(" + Render(*n.l, rng, full_parens) + ")");
  }
  std::string a = Render(*n.l, rng, full_parens), b = Render(*n.r, rng, full_parens);
  if (full_parens || Prec(*n.l) < Prec(n)) a = "(" + a + ")";
  if (full_parens || Prec(*n.r) <= Prec(n)) b = "(" + b + ")";  // left-associative
  return a + sp() + std::string(1, n.op) + sp() + b;
}

std::unique_ptr<Node> RandomExpr(std::mt19937_64& rng, int depth, const std::vector<int64_t>& ids) {
  auto n = std::make_unique<Node>();
  int c = depth <= 0 ? static_cast<int>(rng() % 2) : static_cast<int>(rng() % 7);
  if (c == 0) {
    n->op = 0;
    n->num = rng() % 4 == 0 ? 0.0 : static_cast<double>(rng() % 20000) / (rng() % 2 ? 1000.0 : 1.0);
  } else if (c == 1) {
    n->op = 'k';
    n->ref = ids[rng() % ids.size()];
  } else if (c == 2) {
    n->op = 'n';
    n->l = RandomExpr(rng, depth - 1, ids);
  } else {
    n->op = "+-*/"[rng() % 4];
    n->l = RandomExpr(rng, depth - 1, ids);
    n->r = RandomExpr(rng, depth - 1, ids);
  }
  return n;
}

void CollectRefs(const Node& n, std::vector<int64_t>* out) {
  if (n.op == 'k') out->push_back(n.ref);
  if (n.l) CollectRefs(*n.l, out);
  if (n.r) CollectRefs(*n.r, out);
}

TEST(OpsFormula, RandomExpressionsMatchDirectEvaluation) {
  for (int seed = 0; seed < 3000; seed++) {
    std::mt19937_64 rng(static_cast<uint64_t>(seed) + 99);
    std::vector<int64_t> ids = {1, 7, 12, 13, 250};
    std::map<int64_t, double> vals;
    for (int64_t id : ids) vals[id] = rng() % 5 == 0 ? 0.0 : (static_cast<double>(rng() % 200001) - 100000.0) / 97.0;
    auto e = RandomExpr(rng, static_cast<int>(rng() % 6), ids);
    bool full = rng() % 3 == 0;
    std::string text = Render(*e, rng, full);
    double want = Eval(*e, vals);
    auto got = EvalFormula(text, vals);
    ASSERT_TRUE(got.ok()) << text << ": " << got.status().ToString();
    if (std::isnan(want))
      EXPECT_TRUE(std::isnan(*got)) << text;
    else
      EXPECT_NEAR(*got, want, 1e-9 * std::max(1.0, std::fabs(want))) << text;
    std::vector<int64_t> want_refs;
    CollectRefs(*e, &want_refs);
    auto refs = FormulaRefs(text);
    ASSERT_TRUE(refs.ok()) << text;
    EXPECT_EQ(*refs, want_refs) << text;
  }
}

TEST(OpsFormula, Errors) {
  std::map<int64_t, double> v{{1, 2.0}, {2, 4.0}};
  EXPECT_DOUBLE_EQ(*EvalFormula("k1 / k2", v), 0.5);
  EXPECT_DOUBLE_EQ(*EvalFormula("(k1 + k2) * -k1", v), -12.0);
  EXPECT_DOUBLE_EQ(*EvalFormula("k1 - k2 - k1", v), -4.0);  // left-associative
  EXPECT_DOUBLE_EQ(*EvalFormula("k2 / k1 / k1", v), 1.0);
  EXPECT_DOUBLE_EQ(*EvalFormula("k1 / (k2 - 4)", v), 0.0);  // x/0 reads as 0
  for (const char* bad : {"", "k", "k1 +", "(k1", "k1)", "k3", "k1 $ k2", "k1 k2", "1 2", "abc"}) {
    auto r = EvalFormula(bad, v);
    EXPECT_FALSE(r.ok()) << "'" << bad << "' gave " << (r.ok() ? *r : 0.0);
  }
  EXPECT_FALSE(FormulaRefs("k1 / ").ok());
  EXPECT_EQ(*FormulaRefs("k12/k13 + k12"), (std::vector<int64_t>{12, 13, 12}));
}

// ---------------------------------------------------------------- lights

TEST(OpsLights, AchievementRateAndLightBoundaries) {
  json def = json{{"green", 1.0}, {"yellow", 0.9}};
  // Higher is better: exactly 90% and 100% of the target, for targets at many scales,
  // whatever rounding the division does (18% / 20% = 0.8999999999999999).
  for (int b = 10; b <= 2000; b += 10) {
    for (double scale : {1e-4, 0.01, 1.0, 1000.0, 1e6}) {
      double target = b * scale, at90 = (b / 10 * 9) * scale, full = b * scale;
      EXPECT_EQ(LightFor(AchievementRate(at90, target, true), def), "yellow") << at90 << "/" << target;
      EXPECT_EQ(LightFor(AchievementRate(full, target, true), def), "green") << target;
      EXPECT_EQ(LightFor(AchievementRate(at90 * (1 - 1e-6), target, true), def), "red") << at90 << "/" << target;
      EXPECT_EQ(LightFor(AchievementRate(full * (1 - 1e-6), target, true), def), "yellow") << target;
      // Lower is better: target / actual.
      EXPECT_EQ(LightFor(AchievementRate(target, target, false), def), "green");
      EXPECT_EQ(LightFor(AchievementRate(target / 0.9, target, false), def), "yellow") << target;
      EXPECT_EQ(LightFor(AchievementRate(target / 0.8, target, false), def), "red") << target;
    }
  }
  // The seed examples.
  EXPECT_NEAR(AchievementRate(0.18, 0.20, true), 0.9, 1e-12);
  EXPECT_EQ(LightFor(AchievementRate(0.18, 0.20, true), def), "yellow");
  EXPECT_NEAR(AchievementRate(0.12, 0.15, true), 0.8, 1e-12);
  EXPECT_EQ(LightFor(AchievementRate(0.12, 0.15, true), def), "red");
  EXPECT_EQ(LightFor(AchievementRate(90.0 / 500, 0.2, true), def), "yellow");
  // Zero targets and zero actuals.
  EXPECT_EQ(AchievementRate(0, 0, true), 1.0);
  EXPECT_EQ(AchievementRate(5, 0, true), 1.0);
  EXPECT_EQ(AchievementRate(-1, 0, true), 0.0);
  EXPECT_EQ(AchievementRate(0, 3, false), 1.0);  // lower is better, nothing happened: met
  EXPECT_EQ(AchievementRate(0, 3, true), 0.0);
  EXPECT_DOUBLE_EQ(AchievementRate(4, 2, false), 0.5);
  // Custom thresholds, and their defaults.
  json custom{{"green", 0.95}, {"yellow", 0.8}};
  EXPECT_EQ(LightFor(0.95, custom), "green");
  EXPECT_EQ(LightFor(0.9499, custom), "yellow");
  EXPECT_EQ(LightFor(0.8, custom), "yellow");
  EXPECT_EQ(LightFor(0.7999, custom), "red");
  EXPECT_EQ(LightFor(AchievementRate(0.24, 0.3, true), custom), "yellow");  // 0.7999999999999999
  EXPECT_EQ(LightFor(0.9, json()), "yellow");
  EXPECT_EQ(LightFor(0.8999, json()), "red");
  EXPECT_EQ(LightFor(1.0, json::object()), "green");
  EXPECT_EQ(LightFor(1.7, def), "green");
}

// ---------------------------------------------------------------- periods

TEST(OpsPeriods, CurrentPeriodAroundMonthQuarterYearEnds) {
  // Every day from mid-December 2023 (a leap year follows) to mid-January 2026.
  for (int day = Civil(2023, 12, 15); day <= Civil(2026, 1, 15); day++) {
    auto ymd = Ymd(day);
    std::string at = DayStr(day);
    auto d = Kpis::CurrentPeriod(json{{"type", "day"}}, day);
    ASSERT_TRUE(d.ok());
    EXPECT_EQ(d->from, day) << at;
    EXPECT_EQ(d->to, day) << at;
    auto w = Kpis::CurrentPeriod(json{{"type", "week"}}, day);
    ASSERT_TRUE(w.ok());
    EXPECT_EQ(w->from, WeekStart(day)) << at;
    EXPECT_EQ(w->to, WeekStart(day) + 6) << at;
    EXPECT_EQ(date::weekday{date::sys_days{date::days{w->from}}}, date::Monday) << at;
    auto m = Kpis::CurrentPeriod(json{{"type", "month"}}, day);
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(m->from, MonthStart(day)) << at;
    EXPECT_EQ(m->to, MonthEnd(day)) << at;
    auto q = Kpis::CurrentPeriod(json{{"type", "quarter"}}, day);
    ASSERT_TRUE(q.ok());
    unsigned qm = (static_cast<unsigned>(ymd.month()) - 1) / 3 * 3 + 1;
    int y = static_cast<int>(ymd.year());
    EXPECT_EQ(DayStr(q->from), DayStr(Civil(y, qm, 1))) << at;
    EXPECT_EQ(DayStr(q->to), DayStr(MonthEnd(Civil(y, qm + 2, 1)))) << at;
    EXPECT_TRUE(q->from <= day && day <= q->to) << at;
    auto c = Kpis::CurrentPeriod(json{{"type", "custom"}, {"from", "2025-02-27"}, {"to", "2025-03-02"}}, day);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->from, Civil(2025, 2, 27));
    EXPECT_EQ(c->to, Civil(2025, 3, 2));
  }
  // Spot checks named by date.
  auto q = Kpis::CurrentPeriod(json{{"type", "quarter"}}, Civil(2024, 12, 31));
  EXPECT_EQ(DayStr(q->from) + "/" + DayStr(q->to), "2024-10-01/2024-12-31");
  q = Kpis::CurrentPeriod(json{{"type", "quarter"}}, Civil(2025, 1, 1));
  EXPECT_EQ(DayStr(q->from) + "/" + DayStr(q->to), "2025-01-01/2025-03-31");
  auto m = Kpis::CurrentPeriod(json{{"type", "month"}}, Civil(2024, 2, 29));
  EXPECT_EQ(DayStr(m->from) + "/" + DayStr(m->to), "2024-02-01/2024-02-29");
  auto w = Kpis::CurrentPeriod(json{{"type", "week"}}, Civil(2025, 1, 1));  // a Wednesday
  EXPECT_EQ(DayStr(w->from) + "/" + DayStr(w->to), "2024-12-30/2025-01-05");
}

}  // namespace
}  // namespace ns
