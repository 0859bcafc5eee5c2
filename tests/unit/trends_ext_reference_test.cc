// The trends extensions (formula, compare, smoothing, weekly/monthly active, per-person
// maths, cumulative, display number) and the stickiness kind against a deliberately naive
// reference written here: per-event lists, every interval's value recomputed from scratch
// by brute force, on many random seeds. The data has equal timestamps, events exactly at
// local midnight (and a millisecond either side), out-of-order and repeated deliveries,
// identity merges after the fact, events a year earlier, several segments and memtable
// blocks per day, five time zones (two with DST changes in the range) and empty ranges.
// Also: the formula parser (precedence, null on division by zero, errors with positions),
// the validation of every new field, and small hand-computed cases.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <random>
#include <set>

#include "core/env.h"
#include "ops/kpi_reducers.h"
#include "query/formula.h"
#include "query/operators.h"
#include "reference_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

// ---------------------------------------------------------------- the naive world

struct RefEvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::optional<std::string> channel;
  std::optional<double> amount;
  std::string merge_with;           // $anon_distinct_id
  std::optional<std::string> plan;  // person property set by this event
  std::string day, hour;            // local day and local clock hour (computed once)
};

struct World {
  std::vector<RefEvent> events;  // stored (deduplicated) events
  std::map<std::string, std::string> parent;
  std::map<std::string, std::string> plan;  // person root -> plan
  std::string tz;

  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  // After the events are stored: persons by union-find of merges, local days and hours.
  void Finish();
  std::string Person(const RefEvent& e) { return Root(e.did); }
};

date::local_seconds ToLocal(const std::string& tz, int64_t ms) {
  auto z = date::locate_zone(tz);
  return z->to_local(date::sys_seconds{std::chrono::seconds{ms / 1000 - (ms % 1000 < 0 ? 1 : 0)}});
}
std::string LocalDate(const std::string& tz, int64_t ms) {
  return date::format("%F", date::floor<date::days>(ToLocal(tz, ms)));
}
std::string LocalHour(const std::string& tz, int64_t ms) {
  return date::format("%F %H:00", date::floor<std::chrono::hours>(ToLocal(tz, ms)));
}

void World::Finish() {
  for (auto& e : events) {
    e.day = LocalDate(tz, e.ts);
    e.hour = LocalHour(tz, e.ts);
  }
  for (auto& e : events)
    if (!e.merge_with.empty()) {
      std::string a = Root(e.did), b = Root(e.merge_with);
      if (a != b) parent[std::max(a, b)] = std::min(a, b);
    }
  for (auto& e : events)
    if (e.plan) plan[Root(e.did)] = *e.plan;
}

int Civil(const std::string& d) {
  int y = std::stoi(d.substr(0, 4)), m = std::stoi(d.substr(5, 2)), dd = std::stoi(d.substr(8, 2));
  return static_cast<int>(date::sys_days{date::year{y} / m / dd}.time_since_epoch().count());
}
std::string Date(int days) { return date::format("%F", date::sys_days{date::days{days}}); }
std::string PeriodLabel(const std::string& day, const std::string& interval) {
  if (interval == "day") return day;
  if (interval == "month") return day.substr(0, 8) + "01";
  int d = Civil(day);
  date::weekday wd{date::sys_days{date::days{d}}};
  return Date(d - static_cast<int>((wd.c_encoding() + 6) % 7));
}
std::string MonthEnd(const std::string& first) {  // last day of the month starting on `first`
  return Date(Civil(PeriodLabel(Date(Civil(first) + 31), "month")) - 1);
}
std::string AddMonths(const std::string& day, int months) {  // day of month clamped
  int y = std::stoi(day.substr(0, 4)), m = std::stoi(day.substr(5, 2)), d = std::stoi(day.substr(8, 2));
  int idx = y * 12 + (m - 1) + months;
  y = idx / 12;
  m = idx % 12 + 1;
  char first[32];
  std::snprintf(first, sizeof first, "%04d-%02d-01", y, m);
  int last = std::stoi(MonthEnd(first).substr(8, 2));
  return Date(Civil(first) + std::min(d, last) - 1);
}
int64_t LocalMidnight(const std::string& tz, const std::string& day) {
  auto z = date::locate_zone(tz);
  date::local_days ld{date::days{Civil(day)}};
  auto info = z->get_info(ld);
  if (info.result == date::local_info::nonexistent)
    return date::sys_seconds(info.first.end).time_since_epoch().count() * 1000;
  return (date::sys_seconds{std::chrono::seconds{ld.time_since_epoch() / std::chrono::seconds(1)}} - info.first.offset)
             .time_since_epoch()
             .count() *
         1000;
}

bool PassFilter(const json& f, World& w, const RefEvent& e) {
  std::string prop = f["property"], op = f["op"];
  std::optional<json> v;
  if (prop == "channel" && e.channel) v = *e.channel;
  if (prop == "amount" && e.amount) v = *e.amount;
  if (prop == "person.plan") {
    auto it = w.plan.find(w.Person(e));
    if (it != w.plan.end()) v = it->second;
  }
  if (op == "neq") return !v || *v != f["value"];
  if (!v) return false;
  if (op == "eq") return *v == f["value"];
  if (op == "gt") return v->is_number() && v->get<double>() > f["value"].get<double>();
  ADD_FAILURE() << "op " << op;
  return false;
}
bool PassAll(const json& filters, World& w, const RefEvent& e) {
  for (auto& f : filters)
    if (!PassFilter(f, w, e)) return false;
  return true;
}

// ---------------------------------------------------------------- naive trends

// One bucket: events whose key (local period label, or local hour) is `label` and whose local
// day is in [lo, hi] ("" = unbounded); `end` is the last local day it covers.
struct NaiveBucket {
  std::string label, lo, hi, end;
};

std::string KeyOf(World& w, const RefEvent& e, const std::string& interval) {
  return interval == "hour" ? e.hour : PeriodLabel(e.day, interval);
}

std::vector<NaiveBucket> MainBuckets(World& w, const std::string& from, const std::string& to,
                                     const std::string& interval) {
  std::vector<NaiveBucket> out;
  if (interval == "hour") {
    std::set<std::string> seen;
    for (int64_t t = LocalMidnight(w.tz, from); t < LocalMidnight(w.tz, Date(Civil(to) + 1)); t += 15 * 60'000)
      if (seen.insert(LocalHour(w.tz, t)).second) out.push_back({LocalHour(w.tz, t), from, to, LocalDate(w.tz, t)});
    return out;
  }
  for (int d = Civil(from); d <= Civil(to); d++) {
    std::string l = PeriodLabel(Date(d), interval);
    if (!out.empty() && out.back().label == l) continue;
    std::string end = interval == "day" ? l : interval == "week" ? Date(Civil(l) + 6) : MonthEnd(l);
    out.push_back({l, from, to, std::min(end, to)});
  }
  return out;
}

// The `lead` whole intervals before the one holding `from` (smoothing reads them).
std::vector<NaiveBucket> LeadBuckets(World& w, const std::string& from, const std::string& interval, int lead) {
  std::vector<NaiveBucket> out;
  if (interval == "hour") {
    std::vector<std::string> labels;
    for (int64_t t = LocalMidnight(w.tz, from) - 15 * 60'000; static_cast<int>(labels.size()) < lead; t -= 15 * 60'000)
      if (labels.empty() || labels.back() != LocalHour(w.tz, t)) labels.push_back(LocalHour(w.tz, t));
    for (auto it = labels.rbegin(); it != labels.rend(); ++it) out.push_back({*it, "", "", it->substr(0, 10)});
    return out;
  }
  std::string p = PeriodLabel(from, interval);
  for (int j = 0; j < lead; j++) {
    p = PeriodLabel(Date(Civil(p) - 1), interval);
    std::string end = interval == "day" ? p : interval == "week" ? Date(Civil(p) + 6) : MonthEnd(p);
    out.insert(out.begin(), NaiveBucket{p, "", "", end});
  }
  return out;
}

bool InBucket(World& w, const RefEvent& e, const NaiveBucket& b, const std::string& interval) {
  if (KeyOf(w, e, interval) != b.label) return false;
  const std::string& d = e.day;
  return (b.lo.empty() || d >= b.lo) && (b.hi.empty() || d <= b.hi);
}

double Interpolate(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  double pos = p * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(pos), hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// The math over a list of rows, from scratch.
json MathOf(World& w, const std::string& math, const std::vector<const RefEvent*>& rows) {
  if (math == "total") return rows.size();
  std::set<std::string> persons;
  std::map<std::string, double> per_person;
  for (auto* e : rows) {
    persons.insert(w.Person(*e));
    per_person[w.Person(*e)] += 1;
  }
  if (math == "dau" || math == "weekly_active" || math == "monthly_active") return persons.size();
  if (math == "avg_per_person" || math == "median_per_person" || math == "p90_per_person") {
    if (rows.empty()) return nullptr;
    if (math == "avg_per_person") return static_cast<double>(rows.size()) / static_cast<double>(persons.size());
    std::vector<double> counts;
    for (auto& [p, n] : per_person) counts.push_back(n);
    return Interpolate(counts, math == "median_per_person" ? 0.5 : 0.9);
  }
  std::vector<double> v;
  for (auto* e : rows) v.push_back(*e->amount);
  if (math == "sum") {
    double s = 0;
    for (double x : v) s += x;
    return s;
  }
  if (v.empty()) return nullptr;
  if (math == "min") return *std::min_element(v.begin(), v.end());
  if (math == "max") return *std::max_element(v.begin(), v.end());
  if (math == "avg") {
    double s = 0;
    for (double x : v) s += x;
    return s / static_cast<double>(v.size());
  }
  return Interpolate(v, math == "p50" ? 0.5 : 0.9);
}

int Window(const std::string& math) { return math == "weekly_active" ? 7 : math == "monthly_active" ? 28 : 0; }

json GroupOf(World& w, const json& q, const RefEvent& e) {
  if (!q.contains("breakdown")) return nullptr;
  if (q["breakdown"] == "channel") return e.channel ? json(*e.channel) : json(nullptr);
  auto it = w.plan.find(w.Person(e));
  return it == w.plan.end() ? json(nullptr) : json(it->second);
}

struct NaiveShown {
  std::vector<json> values;
  json aggregated;
  std::vector<std::string> labels;
};

// Does the series read the event at all (before grouping)?
bool SeriesMatches(World& w, const json& q, const json& s, const RefEvent& e) {
  if (s["event"] != "$any" && s["event"] != e.event) return false;
  std::string math = s.value("math", "total");
  bool value_math = math == "sum" || math == "avg" || math == "min" || math == "max" || math == "p50" || math == "p90";
  if (value_math && !e.amount) return false;
  return PassAll(q.value("filters", json::array()), w, e) && PassAll(s.value("filters", json::array()), w, e);
}

// One series (of one breakdown group, or every row when group is "*") over [from, to].
NaiveShown NaiveSeries(World& w, const json& q, const json& s, const json& group, const std::string& from,
                       const std::string& to) {
  const std::string interval = q.value("interval", "day"), math = s.value("math", "total");
  const int smoothing = q.value("smoothing", 1);
  const bool cumulative = q.value("cumulative", false), number = q.value("display", "series") == "number";
  std::vector<NaiveBucket> main = MainBuckets(w, from, to, interval);
  std::vector<NaiveBucket> grid = LeadBuckets(w, from, interval, smoothing - 1);
  grid.insert(grid.end(), main.begin(), main.end());
  std::vector<const RefEvent*> rows;
  for (auto& e : w.events)
    if (SeriesMatches(w, q, s, e) && (group == "*" || GroupOf(w, q, e) == group)) rows.push_back(&e);
  auto in = [&](const NaiveBucket& b) {
    std::vector<const RefEvent*> r;
    for (auto* e : rows)
      if (InBucket(w, *e, b, interval)) r.push_back(e);
    return r;
  };
  auto rolling = [&](const std::string& end) {
    std::vector<const RefEvent*> r;
    for (auto* e : rows) {
      const std::string& d = e->day;
      if (d <= end && Civil(d) > Civil(end) - Window(math)) r.push_back(e);
    }
    return MathOf(w, math, r);
  };
  std::vector<json> base;
  for (auto& b : grid) base.push_back(Window(math) ? rolling(b.end) : MathOf(w, math, in(b)));
  NaiveShown out;
  for (auto& b : main) out.labels.push_back(b.label);
  const size_t lead = static_cast<size_t>(smoothing - 1);
  std::vector<const RefEvent*> so_far;
  for (size_t k = lead; k < grid.size(); k++) {
    if (cumulative) {
      auto r = in(grid[k]);
      so_far.insert(so_far.end(), r.begin(), r.end());
      out.values.push_back(MathOf(w, math, so_far));
    } else if (smoothing > 1) {
      double sum = 0;
      int n = 0;
      for (size_t j = k - lead; j <= k; j++)
        if (!base[j].is_null()) {
          sum += base[j].get<double>();
          n++;
        }
      out.values.push_back(n ? json(sum / n) : json(nullptr));
    } else {
      out.values.push_back(base[k]);
    }
  }
  if (number) {
    if (Window(math)) {
      out.aggregated = base.back();
    } else {
      std::vector<const RefEvent*> all;
      for (auto& b : main)
        for (auto* e : in(b)) all.push_back(e);
      out.aggregated = MathOf(w, math, all);
    }
  }
  return out;
}

// The breakdown values a series has over what it reads (lead intervals and rolling windows
// included).
std::set<json> NaiveGroups(World& w, const json& q, const json& s) {
  const std::string interval = q.value("interval", "day"), math = s.value("math", "total");
  const std::string from = q["date_from"], to = q["date_to"];
  std::vector<NaiveBucket> grid = LeadBuckets(w, from, interval, q.value("smoothing", 1) - 1);
  for (auto& b : MainBuckets(w, from, to, interval)) grid.push_back(b);
  std::set<json> out;
  for (auto& e : w.events) {
    if (!SeriesMatches(w, q, s, e)) continue;
    bool read = false;
    if (Window(math)) {
      const std::string& d = e.day;
      read = d <= to && Civil(d) > Civil(grid.front().end) - Window(math);
    } else {
      for (auto& b : grid) read |= InBucket(w, e, b, interval);
    }
    if (read) out.insert(GroupOf(w, q, e));
  }
  return out;
}

std::pair<std::string, std::string> NaiveCompareRange(World& w, const json& q) {
  const std::string from = q["date_from"], to = q["date_to"], interval = q.value("interval", "day");
  const bool year = q["compare"] == "previous_year";
  const int len = Civil(to) - Civil(from);
  const int n = static_cast<int>(MainBuckets(w, from, to, interval).size());
  std::string f;
  if (interval == "month") {
    int m = year ? 12 : n;
    return {AddMonths(from, -m), AddMonths(to, -m)};
  }
  if (interval == "week")
    f = Date(Civil(from) - (year ? 364 : 7 * n));
  else
    f = year ? AddMonths(from, -12) : Date(Civil(from) - (len + 1));
  return {f, Date(Civil(f) + len)};
}

struct FormulaCase {
  const char* text;
  size_t letters;  // series needed
  std::function<std::optional<double>(const std::vector<std::optional<double>>&)> f;
};
const std::vector<FormulaCase>& FormulaCases() {
  using V = std::vector<std::optional<double>>;
  using R = std::optional<double>;
  static const std::vector<FormulaCase> cases = {
      {"A / B * 100", 2, [](const V& v) { return !v[0] || !v[1] || *v[1] == 0 ? R() : R(*v[0] / *v[1] * 100); }},
      {"A + B", 2, [](const V& v) { return !v[0] || !v[1] ? R() : R(*v[0] + *v[1]); }},
      {"(A - B) / 2", 2, [](const V& v) { return !v[0] || !v[1] ? R() : R((*v[0] - *v[1]) / 2); }},
      {"-A + 3 * B", 2, [](const V& v) { return !v[0] || !v[1] ? R() : R(-*v[0] + 3 * *v[1]); }},
      {"A / (B - B)", 2, [](const V&) { return R(); }},
      {"a*2 - 1", 1, [](const V& v) { return !v[0] ? R() : R(*v[0] * 2 - 1); }},
      {"100 / A", 1, [](const V& v) { return !v[0] || *v[0] == 0 ? R() : R(100 / *v[0]); }},
      {"(A + B + C) / 3", 3, [](const V& v) { return !v[0] || !v[1] || !v[2] ? R() : R((*v[0] + *v[1] + *v[2]) / 3); }},
      {"-(A - C) * (B + 0.5)", 3,
       [](const V& v) { return !v[0] || !v[1] || !v[2] ? R() : R(-(*v[0] - *v[2]) * (*v[1] + 0.5)); }},
  };
  return cases;
}

struct NaiveRow {
  std::vector<json> values;
  json aggregated;
  std::vector<json> dates;
};

json ToJsonValue(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }
std::optional<double> FromJsonValue(const json& v) {
  return v.is_null() ? std::nullopt : std::optional<double>(v.get<double>());
}

// Every row the answer should have, keyed by label + "|" + breakdown value.
std::map<std::string, NaiveRow> NaiveTrendsExt(World& w, const json& q, const FormulaCase* formula) {
  std::map<std::string, NaiveRow> out;
  const json& series = q["series"];
  const bool comparing = q.contains("compare"), formula_only = q.value("formula_only", false);
  const bool number = q.value("display", "series") == "number";
  const std::string from = q["date_from"], to = q["date_to"];
  const size_t n = MainBuckets(w, from, to, q.value("interval", "day")).size();
  std::string cfrom, cto;
  if (comparing) std::tie(cfrom, cto) = NaiveCompareRange(w, q);
  const std::string suffix = q.value("compare", "") == "previous_year" ? " (previous year)" : " (previous period)";
  auto groups_of = [&](const json& s) {
    std::set<json> g = NaiveGroups(w, q, s);
    if (!q.contains("breakdown")) g = {json(nullptr)};
    return g;
  };
  auto group_arg = [&](const json& g) { return q.contains("breakdown") ? g : json("*"); };
  auto add = [&](const std::string& label, const json& g, NaiveShown shown, bool previous) {
    NaiveRow r;
    shown.values.resize(n, nullptr);
    r.values = shown.values;
    r.aggregated = shown.aggregated;
    for (auto& l : shown.labels) r.dates.push_back(l);
    r.dates.resize(n, nullptr);
    out[(previous ? label + suffix : label) + "|" + g.dump()] = r;
  };
  for (int pass = 0; pass < (comparing ? 2 : 1); pass++) {
    const bool previous = pass == 1;
    const std::string f = previous ? cfrom : from, t = previous ? cto : to;
    if (!formula_only)
      for (auto& s : series)
        for (auto& g : groups_of(s)) add(s["label"], g, NaiveSeries(w, q, s, group_arg(g), f, t), previous);
    if (formula) {
      std::set<json> groups;
      for (size_t i = 0; i < formula->letters; i++)
        for (auto& g : groups_of(series[i])) groups.insert(g);
      for (auto& g : groups) {
        std::vector<NaiveShown> in;
        for (size_t i = 0; i < formula->letters; i++) in.push_back(NaiveSeries(w, q, series[i], group_arg(g), f, t));
        NaiveShown fs;
        fs.labels = in[0].labels;
        for (size_t k = 0; k < in[0].values.size(); k++) {
          std::vector<std::optional<double>> vars;
          for (auto& x : in) vars.push_back(FromJsonValue(x.values[k]));
          fs.values.push_back(ToJsonValue(formula->f(vars)));
        }
        if (number) {
          std::vector<std::optional<double>> vars;
          for (auto& x : in) vars.push_back(FromJsonValue(x.aggregated));
          fs.aggregated = ToJsonValue(formula->f(vars));
        }
        add(formula->text, g, fs, previous);
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------- naive stickiness

std::vector<std::vector<uint64_t>> NaiveStickiness(World& w, const json& q) {
  const std::string interval = q.value("interval", "day"), from = q["date_from"], to = q["date_to"];
  std::vector<NaiveBucket> buckets = MainBuckets(w, from, to, interval);
  std::vector<std::vector<uint64_t>> out;
  for (auto& s : q["series"]) {
    std::map<std::string, std::set<std::string>> active;  // person -> interval labels
    for (auto& e : w.events) {
      if (s["event"] != "$any" && s["event"] != e.event) continue;
      if (!PassAll(q.value("filters", json::array()), w, e) || !PassAll(s.value("filters", json::array()), w, e))
        continue;
      for (auto& b : buckets)
        if (InBucket(w, e, b, interval)) active[w.Person(e)].insert(b.label);
    }
    std::vector<uint64_t> counts(buckets.size(), 0);
    for (auto& [p, labels] : active) counts[labels.size() - 1]++;
    out.push_back(counts);
  }
  return out;
}

// ---------------------------------------------------------------- the random test

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kNames[] = {"s0", "s1", "s2", "x", "login"};
const char* kMaths[] = {"total",
                        "dau",
                        "sum",
                        "avg",
                        "min",
                        "max",
                        "p50",
                        "p90",
                        "weekly_active",
                        "monthly_active",
                        "avg_per_person",
                        "median_per_person",
                        "p90_per_person"};

void ExpectSame(const json& got, const json& want, const std::string& what) {
  if (want.is_null()) {
    EXPECT_TRUE(got.is_null()) << what << ": got " << got.dump() << ", want null";
    return;
  }
  ASSERT_TRUE(got.is_number()) << what << ": got " << got.dump() << ", want " << want.dump();
  const double g = got.get<double>(), x = want.get<double>();
  EXPECT_NEAR(g, x, 1e-9 * std::max(1.0, std::fabs(x))) << what;
}

class TrendsExtReference : public ::testing::TestWithParam<int> {};

TEST_P(TrendsExtReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 7);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  World w;
  w.tz = kZones[seed % 5];
  auto tz = TimeZone::Load(w.tz);
  ASSERT_TRUE(tz.ok());
  // Around the 2025-03-09 US / 2025-03-30 EU DST changes.
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;  // 2025-03-04
  const int64_t step = std::vector<int64_t>{1000, 60'000, 3'600'000}[static_cast<size_t>(seed % 3)];
  const int persons = R(2, 20);
  const int nevents = R(30, 220);
  std::vector<RefEvent> sent;
  for (int i = 0; i < nevents; i++) {
    RefEvent e;
    e.uuid = "e" + std::to_string(seed) + "-" + std::to_string(i);
    int p = R(1, persons);
    e.did = (rng() % 3 == 0 ? "a" : "u") + std::to_string(p);
    e.event = kNames[R(0, 3)];
    e.ts = base + static_cast<int64_t>(R(0, static_cast<int>(30LL * 86'400'000 / step))) * step;
    const int when = R(0, 19);
    if (when == 0 && !sent.empty()) e.ts = sent[rng() % sent.size()].ts;  // equal timestamps
    if (when == 1)  // at a local midnight, or a millisecond either side
      e.ts = LocalMidnight(w.tz, LocalDate(w.tz, base + R(0, 30) * 86'400'000LL)) + R(-1, 1);
    if (when == 2) e.ts -= 365LL * 86'400'000;  // a year earlier (compare previous_year)
    if (rng() % 4) e.channel = std::string(1, static_cast<char>('a' + R(0, 2)));
    if (rng() % 2) e.amount = R(1, 50) * 1.5;
    if (rng() % 15 == 0) {
      e.event = "login";
      e.did = "u" + std::to_string(p);
      e.merge_with = "a" + std::to_string(p);
    }
    if (rng() % 10 == 0 && e.did[0] == 'u') e.plan = (p % 2) ? "pro" : "free";
    sent.push_back(e);
  }
  std::vector<RefEvent> deliveries = sent;
  for (int i = 0; i < nevents / 10; i++) deliveries.push_back(sent[rng() % sent.size()]);
  std::shuffle(deliveries.begin(), deliveries.end(), rng);
  {
    std::set<std::string> seen;
    for (auto& e : deliveries)
      if (seen.insert(e.uuid).second) w.events.push_back(e);
  }
  w.Finish();

  testing::TempDir dir;
  NoSyncEnv env;
  StoreOptions so;
  so.background = false;
  so.env = &env;
  so.seal_rows = static_cast<size_t>(R(3, 40));
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  size_t pos = 0;
  while (pos < deliveries.size()) {
    size_t n = static_cast<size_t>(R(1, 60));
    std::vector<Event> batch;
    for (size_t i = pos; i < std::min(deliveries.size(), pos + n); i++) {
      const RefEvent& r = deliveries[i];
      Event e;
      e.uuid = Uuid::FromClientId(r.uuid);
      e.has_uuid = true;
      e.distinct_id = r.did;
      e.event = r.event;
      e.ts_ms = r.ts;
      if (r.channel) e.props.push_back({"channel", PropValue::Str(*r.channel)});
      if (r.amount) e.props.push_back({"amount", PropValue::Num(*r.amount)});
      if (!r.merge_with.empty()) {
        e.props.push_back({"$anon_distinct_id", PropValue::Str(r.merge_with)});
        e.merge_with.push_back(r.merge_with);
      }
      if (r.plan) e.person_set.push_back({"plan", PropValue::Str(*r.plan)});
      batch.push_back(std::move(e));
    }
    pos += n;
    ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
    int action = R(0, 9);
    if (action == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
    if (action == 1) {
      ASSERT_TRUE((*store)->CompactAll().ok());
    }
  }
  auto day = [&](int64_t off_days) { return LocalDate(w.tz, base + off_days * 86'400'000); };
  auto random_filters = [&]() {
    json f = json::array();
    for (int i = R(0, 1); i > 0; i--) {
      switch (R(0, 3)) {
        case 0: f.push_back({{"property", "channel"}, {"op", "eq"}, {"value", "a"}}); break;
        case 1: f.push_back({{"property", "channel"}, {"op", "neq"}, {"value", "b"}}); break;
        case 2: f.push_back({{"property", "amount"}, {"op", "gt"}, {"value", 20}}); break;
        default: f.push_back({{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}); break;
      }
    }
    return f;
  };

  // Trends with extensions.
  for (int t = 0; t < 4; t++) {
    json q{{"kind", "trends"}};
    const std::string interval = std::vector<std::string>{"day", "day", "week", "month", "hour"}[R(0, 4)];
    q["interval"] = interval;
    const int a = R(-3, 30);
    const int len = interval == "hour" ? R(0, 2) : interval == "month" ? R(0, 70) : R(0, 20);
    q["date_from"] = day(a);
    q["date_to"] = day(a + len);
    if (R(0, 15) == 0) {  // far from any data
      q["date_from"] = "2023-06-01";
      q["date_to"] = "2023-06-03";
    }
    json series = json::array();
    const int ns = R(1, 3);
    for (int s = 0; s < ns; s++) {
      std::string math = kMaths[R(0, 12)];
      if (interval == "hour" && Window(math)) math = "dau";
      json sj{{"event", R(0, 3) == 0 ? "$any" : kNames[R(0, 4)]}, {"math", math}, {"label", "L" + std::to_string(s)}};
      if (R(0, 1)) sj["property"] = "amount";
      if (math == "sum" || math == "avg" || math == "min" || math == "max" || math == "p50" || math == "p90")
        sj["property"] = "amount";
      if (R(0, 3) == 0) sj["filters"] = random_filters();
      series.push_back(sj);
    }
    q["series"] = series;
    if (R(0, 3) == 0) q["filters"] = random_filters();
    if (R(0, 3) == 0) q["breakdown"] = R(0, 1) ? "channel" : "person.plan";
    q["breakdown_limit"] = 1000;
    const FormulaCase* formula = nullptr;
    if (R(0, 1)) {
      std::vector<const FormulaCase*> fit;
      for (auto& c : FormulaCases())
        if (c.letters <= static_cast<size_t>(ns)) fit.push_back(&c);
      formula = fit[rng() % fit.size()];
      q["formula"] = formula->text;
      if (R(0, 3) == 0) q["formula_only"] = true;
    }
    if (R(0, 2) == 0) q["compare"] = R(0, 1) ? "previous_period" : "previous_year";
    bool rolling = false;
    for (auto& s : series) rolling |= Window(s["math"]) > 0;
    const int post = R(0, 3);
    if (post == 0) q["smoothing"] = R(2, interval == "month" ? 3 : 5);
    if (post == 1 && !rolling) q["cumulative"] = true;
    if (R(0, 2) == 0) q["display"] = "number";
    SCOPED_TRACE(q.dump());

    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    std::map<std::string, NaiveRow> want = NaiveTrendsExt(w, q, formula);
    std::map<std::string, const json*> got_by;
    for (auto& s : (*got)["series"]) got_by[s["label"].get<std::string>() + "|" + s["breakdown_value"].dump()] = &s;
    std::set<std::string> got_keys, want_keys;
    for (auto& [k, v] : got_by) got_keys.insert(k);
    for (auto& [k, v] : want) want_keys.insert(k);
    ASSERT_EQ(got_keys, want_keys) << got->dump();
    ASSERT_EQ(got_by.size(), (*got)["series"].size()) << "duplicate series " << got->dump();
    for (auto& [k, row] : want) {
      const json& g = *got_by[k];
      ASSERT_EQ(g["values"].size(), row.values.size()) << k;
      for (size_t i = 0; i < row.values.size(); i++)
        ExpectSame(g["values"][i], row.values[i], k + " interval " + std::to_string(i));
      EXPECT_EQ(g["dates"], json(row.dates)) << k;
      if (q.contains("display")) ExpectSame(g["aggregated_value"], row.aggregated, k + " aggregated_value");
      if (formula && k.rfind(formula->text, 0) == 0) {
        EXPECT_EQ(g["formula"], formula->text) << k;
      }
    }
    if (q.contains("compare")) {
      auto [cf, ct] = NaiveCompareRange(w, q);
      EXPECT_EQ((*got)["compare_date_from"], cf);
      EXPECT_EQ((*got)["compare_date_to"], ct);
    }
  }

  // Stickiness.
  for (int t = 0; t < 2; t++) {
    json q{{"kind", "stickiness"}};
    const std::string interval = std::vector<std::string>{"day", "day", "week", "month", "hour"}[R(0, 4)];
    q["interval"] = interval;
    const int a = R(-3, 30);
    q["date_from"] = day(a);
    q["date_to"] = day(a + (interval == "hour" ? R(0, 1) : interval == "day" ? R(0, 10) : R(0, 40)));
    json series = json::array();
    for (int s = R(1, 3); s > 0; s--) {
      json sj{{"event", R(0, 3) == 0 ? "$any" : kNames[R(0, 4)]}};
      if (R(0, 3) == 0) sj["filters"] = random_filters();
      series.push_back(sj);
    }
    q["series"] = series;
    if (R(0, 3) == 0) q["filters"] = random_filters();
    SCOPED_TRACE(q.dump());
    auto got = RunQuery(q, **store, *tz);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto want = NaiveStickiness(w, q);
    ASSERT_EQ((*got)["series"].size(), want.size());
    for (size_t s = 0; s < want.size(); s++) {
      const json& gs = (*got)["series"][s];
      ASSERT_EQ(gs["counts"].size(), want[s].size()) << got->dump();
      uint64_t total = 0;
      for (size_t k = 0; k < want[s].size(); k++) {
        EXPECT_EQ(gs["counts"][k]["intervals"], k + 1);
        EXPECT_EQ(gs["counts"][k]["persons"], want[s][k]) << "series " << s << " intervals " << k + 1;
        total += want[s][k];
      }
      EXPECT_EQ(gs["persons"], total);
    }
    EXPECT_EQ((*got)["intervals"], want[0].size());
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, TrendsExtReference, ::testing::Range(0, 220));

// ---------------------------------------------------------------- the formula parser

std::optional<double> Eval(const std::string& text, std::vector<std::optional<double>> vars = {}) {
  auto f = Formula::Parse(text, std::max<size_t>(vars.size(), 1), "formula");
  EXPECT_TRUE(f.ok()) << text << ": " << f.status().ToString();
  return f.ok() ? f->Evaluate(vars) : std::nullopt;
}

TEST(Formula, PrecedenceAssociativityAndUnaryMinus) {
  EXPECT_EQ(Eval("2 + 3 * 4"), 14);
  EXPECT_EQ(Eval("(2 + 3) * 4"), 20);
  EXPECT_EQ(Eval("10 - 4 - 3"), 3);    // left to right
  EXPECT_EQ(Eval("10 / 4 / 5"), 0.5);  // left to right
  EXPECT_EQ(Eval("-2 * -3"), 6);
  EXPECT_EQ(Eval("--2"), 2);
  EXPECT_EQ(Eval("-(1 + 2) * 2"), -6);
  EXPECT_EQ(Eval("2 - -2"), 4);
  EXPECT_EQ(Eval(".5 + 1.25 + 3."), 4.75);
  EXPECT_EQ(Eval("A / B * 100", {1, 4}), 25);
  EXPECT_EQ(Eval("a / b * 100", {1, 4}), 25);  // lower case letters are the same series
  EXPECT_EQ(Eval("  A+B*C ", {1, 2, 3}), 7);
  EXPECT_EQ(Eval("(A + B) * C", {1, 2, 3}), 9);
}

TEST(Formula, NoValueInsteadOfErrors) {
  EXPECT_EQ(Eval("A / B", {1, 0}), std::nullopt);  // division by zero
  EXPECT_EQ(Eval("A / (B - B)", {1, 5}), std::nullopt);
  EXPECT_EQ(Eval("0 / 0"), std::nullopt);
  EXPECT_EQ(Eval("A + 1", {std::nullopt}), std::nullopt);  // a series without a value
  EXPECT_EQ(Eval("B * 0", {std::nullopt, 3}), 0);          // A is not read
  auto f = Formula::Parse("A - C + A", 3, "formula");
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->letters(), (std::vector<size_t>{0, 2}));
  EXPECT_EQ(f->text(), "A - C + A");
}

TEST(Formula, ErrorsNameTheFieldAndThePosition) {
  struct Bad {
    std::string text;
    size_t series;
    std::string message;
  };
  const Bad cases[] = {
      {"", 2, "formula: must not be empty"},
      {"   ", 2, "formula: must not be empty"},
      {"A +", 2, "formula: unexpected end of formula at position 4 (expected a number, a series letter or '(')"},
      {"A $ B", 2,
       "formula: unexpected character '$' at position 3 (a formula has numbers, series letters A-Z, + - * / and "
       "parentheses)"},
      {"(A + B", 2, "formula: expected ')' for the '(' at position 1, got end of formula at position 7"},
      {"(A + B]", 2, "formula: expected ')' for the '(' at position 1, got ']' at position 7"},
      {"A B", 2, "formula: unexpected 'B' at position 3 (expected an operator)"},
      {"AB", 2, "formula: unexpected 'B' at position 2 (expected an operator)"},
      {"A)", 2, "formula: unexpected ')' at position 2 (expected an operator)"},
      {"A * / B", 2, "formula: unexpected '/' at position 5 (expected a number, a series letter or '(')"},
      {"C / A", 2, "formula: C at position 1 refers to series 3, but the query has 2 series (A..B)"},
      {"A + b", 1, "formula: b at position 5 refers to series 2, but the query has 1 series (A)"},
      {"1 + .", 1, "formula: unexpected '.' at position 5 (expected a number)"},
      {"1e5", 1, "formula: unexpected 'e' at position 2 (expected an operator)"},
      {"sqrt(A)", 1, "formula: s at position 1 refers to series 19, but the query has 1 series (A)"},
      {"A \u00d7 2", 1,
       "formula: unexpected character byte 0xC3 at position 3 (a formula has numbers, series letters A-Z, + - * / and "
       "parentheses)"},
      {"A ** 2", 1, "formula: unexpected '*' at position 4 (expected a number, a series letter or '(')"},
      {std::string(60, '(') + "A" + std::string(60, ')'), 1,
       "formula: nested too deeply at position 52 (at most 50 levels)"},
      {std::string(501, '1'), 1, "formula: 501 characters; at most 500"},
  };
  for (const Bad& b : cases) {
    auto f = Formula::Parse(b.text, b.series, "formula");
    ASSERT_FALSE(f.ok()) << b.text;
    EXPECT_EQ(f.status().code(), StatusCode::kInvalidArgument) << b.text;
    EXPECT_EQ(f.status().message(), b.message) << b.text;
    EXPECT_EQ(f.status().field(), "formula") << b.text;
  }
}

// ---------------------------------------------------------------- hand-computed cases

class TrendsExtFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    auto s = EventStore::Open(dir_.path(), so);
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    tz_ = *TimeZone::Load("Asia/Shanghai");
  }
  void Add(const std::string& did, const std::string& name, const std::string& iso, std::vector<Property> props = {}) {
    Event e;
    e.distinct_id = did;
    e.event = name;
    e.ts_ms = *ParseIsoTimestamp(iso, tz_);
    e.props = std::move(props);
    ASSERT_TRUE(store_->Append({e}).ok());
  }
  json Run(const json& q) {
    auto r = RunQuery(q, *store_, tz_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json();
  }
  Status Error(const json& q) {
    auto r = RunQuery(q, *store_, tz_);
    return r.ok() ? Status::OK() : r.status();
  }
  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  TimeZone tz_;
};

TEST_F(TrendsExtFixture, FormulaSeriesAfterTheInputsAndNullOnDivisionByZero) {
  Add("u1", "view", "2025-03-01T10:00:00+08:00");
  Add("u2", "view", "2025-03-01T11:00:00+08:00");
  Add("u1", "pay", "2025-03-01T12:00:00+08:00");
  Add("u1", "view", "2025-03-02T10:00:00+08:00");
  json r = Run({{"kind", "trends"},
                {"series", {{{"event", "pay"}}, {{"event", "view"}}}},
                {"formula", "A / B * 100"},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-03"}});
  ASSERT_EQ(r["series"].size(), 3u);
  const json& f = r["series"][2];
  EXPECT_EQ(f["label"], "A / B * 100");
  EXPECT_EQ(f["formula"], "A / B * 100");
  EXPECT_EQ(f["dates"], json({"2025-03-01", "2025-03-02", "2025-03-03"}));
  EXPECT_EQ(f["values"], json({50.0, 0.0, nullptr}));  // 1/2, 0/1, 0/0
  EXPECT_EQ(r["formula"], "A / B * 100");
  json only = Run({{"kind", "trends"},
                   {"series", {{{"event", "pay"}}, {{"event", "view"}}}},
                   {"formula", "A / B * 100"},
                   {"formula_only", true},
                   {"date_from", "2025-03-01"},
                   {"date_to", "2025-03-03"}});
  ASSERT_EQ(only["series"].size(), 1u);
  EXPECT_EQ(only["series"][0]["values"], f["values"]);
}

TEST_F(TrendsExtFixture, FormulaPerBreakdownValueRankedAndLimited) {
  // Channel a: 2 pays / 4 views; b: 1 / 1; c: no pay / 2 views.
  for (int i = 0; i < 4; i++)
    Add("a" + std::to_string(i), "view", "2025-03-01T10:00:00+08:00", {{"channel", PropValue::Str("a")}});
  for (int i = 0; i < 2; i++)
    Add("a" + std::to_string(i), "pay", "2025-03-01T11:00:00+08:00", {{"channel", PropValue::Str("a")}});
  Add("b0", "view", "2025-03-01T10:00:00+08:00", {{"channel", PropValue::Str("b")}});
  Add("b0", "pay", "2025-03-01T10:30:00+08:00", {{"channel", PropValue::Str("b")}});
  for (int i = 0; i < 2; i++)
    Add("c" + std::to_string(i), "view", "2025-03-01T10:00:00+08:00", {{"channel", PropValue::Str("c")}});
  json r = Run({{"kind", "trends"},
                {"series", {{{"event", "pay"}}, {{"event", "view"}}}},
                {"formula", "A / B"},
                {"formula_only", true},
                {"breakdown", "channel"},
                {"breakdown_limit", 2},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-01"}});
  ASSERT_EQ(r["series"].size(), 2u);  // b (1.0), a (0.5); c (0.0) is cut by the limit
  EXPECT_EQ(r["series"][0]["breakdown_value"], "b");
  EXPECT_EQ(r["series"][0]["values"], json({1.0}));
  EXPECT_EQ(r["series"][1]["breakdown_value"], "a");
  EXPECT_EQ(r["series"][1]["values"], json({0.5}));
}

TEST_F(TrendsExtFixture, ComparePreviousPeriodIsLabelledAndShifted) {
  Add("u1", "x", "2025-03-01T10:00:00+08:00");
  Add("u1", "x", "2025-03-03T10:00:00+08:00");
  Add("u2", "x", "2025-03-04T10:00:00+08:00");
  json r = Run({{"kind", "trends"},
                {"series", {{{"event", "x"}, {"label", "x"}}}},
                {"compare", "previous_period"},
                {"date_from", "2025-03-03"},
                {"date_to", "2025-03-04"}});
  EXPECT_EQ(r["compare"], "previous_period");
  EXPECT_EQ(r["compare_date_from"], "2025-03-01");
  EXPECT_EQ(r["compare_date_to"], "2025-03-02");
  ASSERT_EQ(r["series"].size(), 2u);
  EXPECT_EQ(r["series"][0]["compare_label"], "current");
  EXPECT_EQ(r["series"][0]["values"], json({1, 1}));
  EXPECT_EQ(r["series"][1]["label"], "x (previous period)");
  EXPECT_EQ(r["series"][1]["compare_label"], "previous");
  EXPECT_EQ(r["series"][1]["compare"], true);
  EXPECT_EQ(r["series"][1]["dates"], json({"2025-03-01", "2025-03-02"}));
  EXPECT_EQ(r["series"][1]["values"], json({1, 0}));
}

TEST_F(TrendsExtFixture, DisplayNumberCountsDistinctPersonsOverTheRange) {
  // u1 on three days, u2 on one: daily counts sum to 4, but 2 persons were active.
  Add("u1", "x", "2025-03-01T10:00:00+08:00");
  Add("u1", "x", "2025-03-02T10:00:00+08:00");
  Add("u1", "x", "2025-03-03T10:00:00+08:00");
  Add("u2", "x", "2025-03-03T11:00:00+08:00");
  json r = Run({{"kind", "trends"},
                {"series", {{{"event", "x"}, {"math", "dau"}}, {{"event", "x"}, {"math", "median_per_person"}}}},
                {"display", "number"},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-03"}});
  EXPECT_EQ(r["series"][0]["values"], json({1, 1, 2}));
  EXPECT_EQ(r["series"][0]["aggregated_value"], 2);
  EXPECT_EQ(r["series"][1]["aggregated_value"], 2.0);  // counts 3 and 1
  json c = Run({{"kind", "trends"},
                {"series", {{{"event", "x"}, {"math", "dau"}}}},
                {"cumulative", true},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-03"}});
  EXPECT_EQ(c["series"][0]["values"], json({1, 1, 2}));  // cumulative distinct persons
}

TEST_F(TrendsExtFixture, WeeklyActiveReadsTheDaysBeforeTheRange) {
  Add("u1", "x", "2025-02-26T10:00:00+08:00");  // 7 days before 03-04 counts on 03-01..03-04
  Add("u2", "x", "2025-03-02T23:59:59+08:00");
  json r = Run({{"kind", "trends"},
                {"series", {{{"event", "x"}, {"math", "weekly_active"}}}},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-05"}});
  EXPECT_EQ(r["series"][0]["values"], json({1, 2, 2, 2, 1}));
}

TEST_F(TrendsExtFixture, SmoothingAveragesTheIntervalsBeforeTheRangeToo) {
  Add("u1", "x", "2025-02-28T10:00:00+08:00");
  Add("u1", "x", "2025-02-28T11:00:00+08:00");
  Add("u1", "x", "2025-03-02T10:00:00+08:00");
  json r = Run({{"kind", "trends"},
                {"series", {{{"event", "x"}}}},
                {"smoothing", 2},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-02"}});
  EXPECT_EQ(r["series"][0]["values"], json({1.0, 0.5}));  // (2 + 0) / 2, (0 + 1) / 2
}

TEST_F(TrendsExtFixture, Stickiness) {
  Add("u1", "x", "2025-03-01T10:00:00+08:00");
  Add("u1", "x", "2025-03-01T11:00:00+08:00");
  Add("u1", "x", "2025-03-02T10:00:00+08:00");
  Add("u2", "x", "2025-03-03T10:00:00+08:00");
  Add("u3", "y", "2025-03-03T10:00:00+08:00");
  json r = Run({{"kind", "stickiness"},
                {"series", {{{"event", "x"}}, {{"event", "$any"}, {"label", "any"}}}},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-03"}});
  EXPECT_EQ(r["intervals"], 3);
  EXPECT_EQ(r["series"][0]["label"], "x");
  EXPECT_EQ(r["series"][0]["counts"], json::parse(R"([{"intervals":1,"persons":1},{"intervals":2,"persons":1},
                                                      {"intervals":3,"persons":0}])"));
  EXPECT_EQ(r["series"][0]["persons"], 2);
  EXPECT_EQ(r["series"][1]["persons"], 3);
}

TEST_F(TrendsExtFixture, TrendsKpiReadsItsOneSeries) {
  // A saved trends query with a formula and a comparison can still be a KPI on its series B.
  Add("u1", "view", "2025-03-01T10:00:00+08:00");
  Add("u2", "view", "2025-03-02T10:00:00+08:00");
  Add("u1", "pay", "2025-03-02T11:00:00+08:00");
  const KpiReducer* r = FindKpiReducer("trends");
  ASSERT_NE(r, nullptr);
  json q{{"kind", "trends"},
         {"series", {{{"event", "pay"}}, {{"event", "view"}}}},
         {"formula", "A / B"},
         {"formula_only", true},
         {"compare", "previous_period"},
         {"date_from", "2025-03-01"},
         {"date_to", "2025-03-02"}};
  json reduce{{"series", 1}};
  ASSERT_TRUE(r->validate(q, reduce).ok());
  r->shape(q, reduce);
  EXPECT_FALSE(q.contains("formula") || q.contains("formula_only") || q.contains("compare")) << q.dump();
  QueryScope scope(*store_, tz_);
  auto parts = r->reduce(q, reduce, PeriodRange{}, false, scope.ctx());
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ((*parts)[""].Value(), 2);  // two views
}

TEST_F(TrendsExtFixture, ValidationNamesTheField) {
  struct Bad {
    std::string query;
    std::string field;
    std::string message;
  };
  const std::string range = R"("date_from":"2025-03-01","date_to":"2025-03-02")";
  const Bad cases[] = {
      {R"({"kind":"trends","series":[{"event":"a"}],"formula":"A / C",)" + range + "}", "formula",
       "formula: C at position 5 refers to series 3, but the query has 1 series (A)"},
      {R"({"kind":"trends","series":[{"event":"a"}],"formula":7,)" + range + "}", "formula",
       "formula: expected a string such as \"A / B * 100\", got number"},
      {R"({"kind":"trends","series":[{"event":"a"}],"formula_only":true,)" + range + "}", "formula_only",
       "formula_only: needs a formula"},
      {R"({"kind":"trends","series":[{"event":"a"}],"compare":"last_week",)" + range + "}", "compare",
       "compare: unknown comparison 'last_week' (expected previous_period or previous_year)"},
      {R"({"kind":"trends","series":[{"event":"a"}],"smoothing":0,)" + range + "}", "smoothing",
       "smoothing: 0 is out of range [1, 90]"},
      {R"({"kind":"trends","series":[{"event":"a"}],"smoothing":7,"cumulative":true,)" + range + "}", "smoothing",
       "smoothing: a cumulative series is not smoothed (use one of cumulative or smoothing)"},
      {R"({"kind":"trends","series":[{"event":"a","math":"weekly_active"}],"cumulative":true,)" + range + "}",
       "cumulative", "cumulative: series[0] counts persons over a rolling window, which does not accumulate"},
      {R"({"kind":"trends","series":[{"event":"a","math":"monthly_active"}],"interval":"hour",)" + range + "}",
       "series[0].math",
       "series[0].math: 'monthly_active' counts persons over whole local days; use interval day, week or month"},
      {R"({"kind":"trends","series":[{"event":"a"}],"display":"table",)" + range + "}", "display",
       "display: unknown display 'table' (expected series or number)"},
      {R"({"kind":"stickiness",)" + range + "}", "series", "series: required field is missing"},
      {R"({"kind":"stickiness","series":[{"event":"a","math":"dau"}],)" + range + "}", "series[0].math",
       "series[0].math: unknown field; known fields: event, filters, label"},
      {R"({"kind":"stickiness","series":[{"event":""}],)" + range + "}", "series[0].event",
       "series[0].event: must not be empty"},
      {R"({"kind":"stickiness","series":[{"event":"a"}],"interval":"minute",)" + range + "}", "interval",
       "unknown interval 'minute' (expected hour, day, week or month)"},
      {R"({"kind":"stickiness","series":[{"event":"a"}],"interval":"hour","date_from":"2025-01-01","date_to":"2025-06-01"})",
       "interval", "interval: hour is limited to ranges of at most 94 days"},
  };
  for (const Bad& b : cases) {
    Status st = Error(json::parse(b.query));
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << b.query;
    EXPECT_EQ(st.field(), b.field) << b.query;
    EXPECT_EQ(st.message(), b.message) << b.query;
  }
}

}  // namespace
}  // namespace ns
