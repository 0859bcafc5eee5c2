// An experiment's sufficient statistics (experiments/experiment_metrics.h) against a
// deliberately naive reference written here: for each person (union-find over distinct ids),
// a plain loop over that person's raw events; funnel conversion by trying every choice of
// rows. Random stores on many seeds exercise equal timestamps, identity merges after the
// exposure (persons exposed to two variants), responses that are no variant, boolean
// responses, local-day edges around DST changes, CUPED windows, winsorisation and windows.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "experiments/experiment_doc.h"
#include "experiments/experiment_metrics.h"
#include "query/query_kind.h"
#include "reference_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

constexpr int64_t kDay = 86'400'000;

struct RefEvent {
  std::string did;
  std::string event;
  int64_t ts = 0;
  std::optional<std::string> flag;
  std::optional<PropValue> response;
  std::optional<PropValue> amount;
  std::string merge_with;
};

int LocalDay(const std::string& tz, int64_t ms) { return ::ns::LocalDay(date::locate_zone(tz), ms); }

// ---- the naive world
struct World {
  std::vector<RefEvent> events;
  std::map<std::string, std::string> parent;
  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  void Finish() {
    for (auto& e : events)
      if (!e.merge_with.empty()) {
        std::string a = Root(e.did), b = Root(e.merge_with);
        if (a != b) parent[std::max(a, b)] = std::min(a, b);
      }
  }
};

bool Matches(const std::string& want, const std::string& ev) {
  if (want == "$any") return ev != kExposureEvent;
  return want == ev;
}

double ValueOf(const PersonValueSpec& v, const RefEvent& e) {
  if (!v.sum) return 1;
  if (v.property != "amount" || !e.amount) return 0;
  if (e.amount->kind == PropValue::kNum) return std::isfinite(e.amount->num) ? e.amount->num : 0;
  double x = 0;
  return ParseNumericText(e.amount->str, &x) ? x : 0;
}

// Is there a choice of distinct rows, one per step in order, with non-decreasing times, all in
// [lo, hi]? (Every choice is tried.)
bool Converts(const std::vector<std::string>& steps, const std::vector<const RefEvent*>& rows, int64_t lo, int64_t hi) {
  std::vector<bool> used(rows.size(), false);
  std::function<bool(size_t, int64_t)> go = [&](size_t k, int64_t prev) {
    if (k == steps.size()) return true;
    for (size_t r = 0; r < rows.size(); r++) {
      if (used[r] || rows[r]->event != steps[k] || rows[r]->ts < prev || rows[r]->ts < lo || rows[r]->ts > hi) continue;
      used[r] = true;
      bool ok = go(k + 1, rows[r]->ts);
      used[r] = false;
      if (ok) return true;
    }
    return false;
  };
  return go(0, lo);
}

double NearestRank(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  if (v.empty()) return 0;
  long rank = static_cast<long>(std::ceil(p * static_cast<double>(v.size())));
  rank = std::max(1L, std::min(rank, static_cast<long>(v.size())));
  return v[static_cast<size_t>(rank - 1)];
}

ExperimentData Reference(World& w, const std::string& tz, const ExperimentScanSpec& spec,
                         const std::vector<ExperimentMetricSpec>& metrics) {
  const date::time_zone* zone = date::locate_zone(tz);
  const int64_t from_ms = LocalMidnight(zone, spec.from_day), to_ms = LocalMidnight(zone, spec.to_day + 1);
  const size_t nv = spec.variants.size();
  std::map<std::string, std::set<size_t>> variants_of;
  std::map<std::string, int64_t> first;
  for (const RefEvent& e : w.events) {
    if (e.event != kExposureEvent || !e.flag || *e.flag != spec.flag_key || !e.response) continue;
    if (e.ts < from_ms || e.ts >= to_ms) continue;
    int day = LocalDay(tz, e.ts);
    EXPECT_TRUE(day >= spec.from_day && day <= spec.to_day);
    auto it = std::find(spec.variants.begin(), spec.variants.end(), e.response->AsString());
    if (it == spec.variants.end()) continue;
    const std::string p = w.Root(e.did);
    variants_of[p].insert(static_cast<size_t>(it - spec.variants.begin()));
    if (!first.count(p) || e.ts < first[p]) first[p] = e.ts;
  }
  ExperimentData out;
  out.exposed.assign(nv, 0);
  out.exposures_by_day.assign(nv, std::vector<uint64_t>(static_cast<size_t>(spec.to_day - spec.from_day + 1), 0));
  std::vector<std::pair<std::string, size_t>> included;
  for (const auto& [p, vs] : variants_of) {
    if (vs.size() > 1) {
      out.multiple_exposures++;
      continue;
    }
    const size_t v = *vs.begin();
    included.push_back({p, v});
    out.exposed[v]++;
    out.exposures_by_day[v][static_cast<size_t>(LocalDay(tz, first[p]) - spec.from_day)]++;
  }
  for (const ExperimentMetricSpec& m : metrics) {
    ExperimentMetricData md;
    md.variants.resize(nv);
    md.kind = m.type == ExperimentMetricType::kMean    ? stats::MetricKind::kMean
              : m.type == ExperimentMetricType::kRatio ? stats::MetricKind::kRatio
                                                       : stats::MetricKind::kProportion;
    std::vector<double> values, pres;
    struct PersonValues {
      size_t v;
      double a, b, pre, pre_b;
      bool counted;
    };
    std::vector<PersonValues> pv;
    for (const auto& [p, v] : included) {
      const int64_t exp = first[p];
      std::vector<const RefEvent*> rows;
      for (const RefEvent& e : w.events)
        if (w.Root(e.did) == p && e.ts < to_ms) rows.push_back(&e);
      const int64_t hi = m.window_ms ? exp + m.window_ms : INT64_MAX;
      PersonValues x{v, 0, 0, 0, 0, true};
      switch (m.type) {
        case ExperimentMetricType::kFunnel: x.a = Converts(m.steps, rows, exp, hi) ? 1 : 0; break;
        case ExperimentMetricType::kMean:
          for (const RefEvent* e : rows) {
            if (!Matches(m.value.event, e->event)) continue;
            if (e->ts >= exp && e->ts <= hi) x.a += ValueOf(m.value, *e);
            if (spec.cuped_days && e->ts < exp && e->ts >= exp - spec.cuped_days * kDay) x.pre += ValueOf(m.value, *e);
          }
          break;
        case ExperimentMetricType::kRatio:
          for (const RefEvent* e : rows) {
            const bool pre = spec.cuped_days && e->ts < exp && e->ts >= exp - spec.cuped_days * kDay;
            if (pre) {
              if (Matches(m.value.event, e->event)) x.pre += ValueOf(m.value, *e);
              if (Matches(m.denominator.event, e->event)) x.pre_b += ValueOf(m.denominator, *e);
            }
            if (e->ts < exp || e->ts > hi) continue;
            if (Matches(m.value.event, e->event)) x.a += ValueOf(m.value, *e);
            if (Matches(m.denominator.event, e->event)) x.b += ValueOf(m.denominator, *e);
          }
          break;
        case ExperimentMetricType::kRetention: {
          const int target = LocalDay(tz, exp) + m.retention_day;
          x.counted = target <= spec.to_day;
          for (const RefEvent* e : rows)
            if (e->ts >= exp && Matches(m.retention_event, e->event) && LocalDay(tz, e->ts) == target) x.a = 1;
          break;
        }
      }
      values.push_back(x.a);
      pres.push_back(x.pre);
      pv.push_back(x);
    }
    double cap = INFINITY, pre_cap = INFINITY;
    if (m.type == ExperimentMetricType::kMean && spec.winsorize_percentile > 0) {
      cap = NearestRank(values, spec.winsorize_percentile);
      pre_cap = NearestRank(pres, spec.winsorize_percentile);
    }
    for (const PersonValues& x : pv) {
      if (!x.counted) continue;
      stats::VariantStatistics& s = md.variants[x.v];
      const double a = std::min(x.a, cap), pre = std::min(x.pre, pre_cap);
      s.n++;
      s.sum += a;
      s.sum_squares += a * a;
      s.denominator_sum += x.b;
      s.denominator_sum_squares += x.b * x.b;
      s.main_denominator_sum_product += a * x.b;
      if ((m.type == ExperimentMetricType::kMean || m.type == ExperimentMetricType::kRatio) && spec.cuped_days) {
        s.pre_sum += pre;
        s.pre_sum_squares += pre * pre;
        s.main_pre_sum_product += a * pre;
      }
      if (m.type == ExperimentMetricType::kRatio && spec.cuped_days) {
        s.pre_denominator_sum += x.pre_b;
        s.pre_denominator_sum_squares += x.pre_b * x.pre_b;
        s.denominator_pre_denominator_sum_product += x.b * x.pre_b;
        s.pre_pre_denominator_sum_product += x.pre * x.pre_b;
        s.main_pre_denominator_sum_product += a * x.pre_b;
        s.pre_denominator_sum_product += x.pre * x.b;
      }
    }
    out.metrics.push_back(md);
  }
  return out;
}

class ExperimentMetricsReference : public ::testing::TestWithParam<int> {};

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kEvents[] = {"pay", "order", "view", "signup"};

TEST_P(ExperimentMetricsReference, MatchesNaive) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 7);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  const std::string tzname = kZones[seed % 5];
  auto tz = TimeZone::Load(tzname);
  ASSERT_TRUE(tz.ok());
  const bool boolean_flag = seed % 4 == 3;
  std::vector<std::string> variants =
      boolean_flag ? std::vector<std::string>{"false", "true"} : std::vector<std::string>{"control", "test"};
  if (!boolean_flag && seed % 3 == 0) variants.push_back("test-b");
  // Around the 2025-03-09 US / 2025-03-30 EU DST changes.
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;  // 2025-03-04
  const int64_t step = std::vector<int64_t>{1000, 60'000, 3'600'000}[static_cast<size_t>(seed % 3)];
  const int persons = R(3, 30);
  const int nevents = R(40, 300);
  World w;
  for (int i = 0; i < nevents; i++) {
    RefEvent e;
    const int p = R(1, persons);
    e.did = (rng() % 3 == 0 ? "a" : "u") + std::to_string(p);
    e.ts = base + static_cast<int64_t>(R(0, static_cast<int>(30LL * kDay / step))) * step;
    if (rng() % 3 == 0) {
      e.event = kExposureEvent;
      e.flag = rng() % 8 == 0 ? "other-flag" : "new-checkout";
      if (rng() % 10 == 0) {
        e.response = PropValue::Str("unknown");
      } else if (boolean_flag) {
        e.response = PropValue::Json(rng() % 2 ? "true" : "false");
      } else {
        // Mostly sticky per distinct id; sometimes another variant (and merges join ids).
        size_t v = (static_cast<size_t>(p) + (rng() % 6 == 0 ? 1 : 0)) % variants.size();
        e.response = PropValue::Str(variants[v]);
      }
    } else {
      e.event = kEvents[R(0, 3)];
      int a = R(0, 9);
      if (a < 6)
        e.amount = PropValue::Num(R(1, 40) * 2.5);
      else if (a == 6)
        e.amount = PropValue::Str("12.5");
      else if (a == 7)
        e.amount = PropValue::Str("abc");
    }
    if (rng() % 12 == 0) {
      e.event = "login";
      e.did = "u" + std::to_string(p);
      e.merge_with = "a" + std::to_string(p);
      e.flag.reset();
      e.response.reset();
    }
    w.events.push_back(e);
  }
  // Several events at exactly one instant for some person (ties between exposure and steps).
  for (int i = 0; i < 4; i++) {
    RefEvent e = w.events[rng() % w.events.size()];
    e.event = kEvents[R(0, 3)];
    e.flag.reset();
    e.response.reset();
    e.merge_with.clear();
    w.events.push_back(e);
  }
  w.Finish();

  MemTempDir dir;
  static NoSyncEnv no_sync;
  StoreOptions so;
  so.env = &no_sync;
  so.background = false;
  so.seal_rows = static_cast<size_t>(R(3, 40));
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  std::vector<RefEvent> deliveries = w.events;
  std::shuffle(deliveries.begin(), deliveries.end(), rng);
  size_t pos = 0;
  int n_uuid = 0;
  while (pos < deliveries.size()) {
    const size_t n = static_cast<size_t>(R(1, 50));
    std::vector<Event> batch;
    for (size_t i = pos; i < std::min(deliveries.size(), pos + n); i++) {
      const RefEvent& r = deliveries[i];
      Event e;
      e.uuid = Uuid::FromClientId("x" + std::to_string(seed) + "-" + std::to_string(n_uuid++));
      e.has_uuid = true;
      e.distinct_id = r.did;
      e.event = r.event;
      e.ts_ms = r.ts;
      if (r.flag) e.props.push_back({kExposureFlagProperty, PropValue::Str(*r.flag)});
      if (r.response) e.props.push_back({kExposureVariantProperty, *r.response});
      if (r.amount) e.props.push_back({"amount", *r.amount});
      if (!r.merge_with.empty()) {
        e.props.push_back({"$anon_distinct_id", PropValue::Str(r.merge_with)});
        e.merge_with.push_back(r.merge_with);
      }
      batch.push_back(std::move(e));
    }
    pos += n;
    ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
    const int action = R(0, 9);
    if (action == 0) {
      ASSERT_TRUE((*store)->Flush().ok());
    }
    if (action == 1) {
      ASSERT_TRUE((*store)->CompactAll().ok());
    }
  }

  for (int round = 0; round < 3; round++) {
    ExperimentScanSpec spec;
    spec.flag_key = "new-checkout";
    spec.variants = variants;
    spec.from_day = LocalDay(tzname, base) + R(-1, 12);
    spec.to_day = spec.from_day + R(0, 20);
    spec.cuped_days = R(0, 2) == 0 ? 0 : R(1, 10);
    spec.winsorize_percentile = R(0, 2) == 0 ? std::vector<double>{0.5, 0.9, 0.99}[static_cast<size_t>(R(0, 2))] : 0;
    std::vector<ExperimentMetricSpec> metrics;
    const int nm = R(1, 5);
    for (int k = 0; k < nm; k++) {
      ExperimentMetricSpec m;
      const int t = R(0, 3);
      const int64_t window = R(0, 1) ? 0 : R(1, 96) * 3'600'000LL;
      auto value = [&]() {
        PersonValueSpec v;
        v.event = R(0, 4) == 0 ? "$any" : kEvents[R(0, 3)];
        v.sum = R(0, 1) == 1;
        if (v.sum) v.property = R(0, 5) == 0 ? "missing" : "amount";
        return v;
      };
      if (t == 0) {
        m.type = ExperimentMetricType::kFunnel;
        const int ns = R(1, 3);
        for (int s = 0; s < ns; s++) m.steps.push_back(kEvents[R(0, 3)]);
        m.window_ms = window;
      } else if (t == 1) {
        m.type = ExperimentMetricType::kMean;
        m.value = value();
        m.window_ms = window;
      } else if (t == 2) {
        m.type = ExperimentMetricType::kRatio;
        m.value = value();
        m.denominator = value();
        m.window_ms = window;
      } else {
        m.type = ExperimentMetricType::kRetention;
        m.retention_event = R(0, 2) == 0 ? "$any" : kEvents[R(0, 3)];
        m.retention_day = R(0, 3);
      }
      metrics.push_back(m);
    }
    QueryScope scope(**store, *tz);
    auto got = ComputeExperimentData(spec, metrics, scope.ctx());
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ExperimentData want = Reference(w, tzname, spec, metrics);
    SCOPED_TRACE("seed " + std::to_string(seed) + " round " + std::to_string(round));
    EXPECT_EQ(got->exposed, want.exposed);
    EXPECT_EQ(got->multiple_exposures, want.multiple_exposures);
    EXPECT_EQ(got->exposures_by_day, want.exposures_by_day);
    ASSERT_EQ(got->metrics.size(), want.metrics.size());
    for (size_t m = 0; m < metrics.size(); m++) {
      SCOPED_TRACE("metric " + std::to_string(m) + " type " + std::to_string(static_cast<int>(metrics[m].type)));
      EXPECT_EQ(got->metrics[m].kind, want.metrics[m].kind);
      for (size_t v = 0; v < variants.size(); v++) {
        const stats::VariantStatistics &g = got->metrics[m].variants[v], &r = want.metrics[m].variants[v];
        EXPECT_EQ(g.name, variants[v]);
        EXPECT_EQ(g.n, r.n);
        auto near = [](double a, double b) { return std::abs(a - b) <= 1e-9 * std::max(1.0, std::abs(b)); };
        EXPECT_PRED2(near, g.sum, r.sum);
        EXPECT_PRED2(near, g.sum_squares, r.sum_squares);
        if (metrics[m].type == ExperimentMetricType::kRatio) {
          EXPECT_PRED2(near, g.denominator_sum, r.denominator_sum);
          EXPECT_PRED2(near, g.denominator_sum_squares, r.denominator_sum_squares);
          EXPECT_PRED2(near, g.main_denominator_sum_product, r.main_denominator_sum_product);
        }
        EXPECT_EQ(g.has_pre, spec.cuped_days > 0 && (metrics[m].type == ExperimentMetricType::kMean ||
                                                     metrics[m].type == ExperimentMetricType::kRatio));
        EXPECT_PRED2(near, g.pre_denominator_sum, r.pre_denominator_sum);
        EXPECT_PRED2(near, g.pre_denominator_sum_squares, r.pre_denominator_sum_squares);
        EXPECT_PRED2(near, g.denominator_pre_denominator_sum_product, r.denominator_pre_denominator_sum_product);
        EXPECT_PRED2(near, g.pre_pre_denominator_sum_product, r.pre_pre_denominator_sum_product);
        EXPECT_PRED2(near, g.main_pre_denominator_sum_product, r.main_pre_denominator_sum_product);
        EXPECT_PRED2(near, g.pre_denominator_sum_product, r.pre_denominator_sum_product);
        EXPECT_PRED2(near, g.pre_sum, r.pre_sum);
        EXPECT_PRED2(near, g.pre_sum_squares, r.pre_sum_squares);
        EXPECT_PRED2(near, g.main_pre_sum_product, r.main_pre_sum_product);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ExperimentMetricsReference, ::testing::Range(0, 240));

// ---- docs/experiments.md's worked example, number for number.

TEST(ExperimentMetrics, WorkedExampleOfTheDocs) {
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  MemTempDir dir;
  static NoSyncEnv no_sync;
  StoreOptions so;
  so.env = &no_sync;
  so.background = false;
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok());
  // Local times in March 2025 (UTC+8).
  auto t = [](int day, int hour, int minute = 0) {
    return 1740758400000LL + (day - 1) * kDay + hour * 3'600'000LL + minute * 60'000LL;  // 2025-03-01 00:00 local
  };
  std::vector<Event> evs;
  auto add = [&](const std::string& did, const std::string& name, int64_t ts, std::vector<Property> props = {}) {
    Event e;
    e.distinct_id = did;
    e.event = name;
    e.ts_ms = ts;
    e.props = std::move(props);
    evs.push_back(std::move(e));
  };
  auto exposure = [&](const std::string& did, const std::string& v, int64_t ts) {
    add(did, kExposureEvent, ts,
        {{kExposureFlagProperty, PropValue::Str("new-checkout")}, {kExposureVariantProperty, PropValue::Str(v)}});
  };
  exposure("A", "control", t(2, 10));
  add("A", "pay", t(2, 10, 5), {{"amount", PropValue::Num(50)}});
  add("A", "app_launch", t(3, 9));
  add("A", "pay", t(5, 12), {{"amount", PropValue::Num(20)}});
  add("B", "pay", t(2, 12), {{"amount", PropValue::Num(80)}});
  exposure("B", "test", t(3, 11));
  add("B", "pay", t(3, 11), {{"amount", PropValue::Num(30)}});
  exposure("anon-c", "control", t(4, 12));
  exposure("c", "test", t(6, 12));
  exposure("D", "test", t(14, 23));
  ASSERT_TRUE((*store)->Append(std::move(evs), Durability::kUnlogged).ok());
  Event merge;
  merge.distinct_id = "c";
  merge.event = "$identify";
  merge.ts_ms = t(7, 12);
  merge.merge_with.push_back("anon-c");
  std::vector<Event> one;
  one.push_back(merge);
  ASSERT_TRUE((*store)->Append(std::move(one), Durability::kUnlogged).ok());

  ExperimentScanSpec spec;
  spec.flag_key = "new-checkout";
  spec.variants = {"control", "test"};
  spec.from_day = tz->LocalDay(t(1, 12));
  spec.to_day = spec.from_day + 13;
  spec.cuped_days = 7;
  std::vector<ExperimentMetricSpec> metrics(5);
  metrics[0].type = ExperimentMetricType::kFunnel;
  metrics[0].steps = {"pay"};
  metrics[1].type = ExperimentMetricType::kMean;
  metrics[1].value = {"pay", true, "amount"};
  metrics[2] = metrics[1];
  metrics[2].window_ms = 24 * 3'600'000LL;
  metrics[3].type = ExperimentMetricType::kRatio;
  metrics[3].value = {"pay", true, "amount"};
  metrics[3].denominator = {"pay", false, ""};
  metrics[4].type = ExperimentMetricType::kRetention;
  metrics[4].retention_event = "app_launch";
  metrics[4].retention_day = 1;
  QueryScope scope(**store, *tz);
  auto got = ComputeExperimentData(spec, metrics, scope.ctx());
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->exposed, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(got->multiple_exposures, 1u);
  const auto& m = got->metrics;
  EXPECT_EQ(m[0].variants[0].sum, 1);  // funnel: A
  EXPECT_EQ(m[0].variants[1].sum, 1);  // B (at the exposure's instant), not D
  EXPECT_EQ(m[0].variants[1].n, 2);
  EXPECT_EQ(m[1].variants[0].sum, 70);      // revenue: A 50 + 20
  EXPECT_EQ(m[1].variants[1].sum, 30);      // B 30, D 0
  EXPECT_EQ(m[1].variants[1].pre_sum, 80);  // B's payment before the exposure (CUPED, 7 days)
  EXPECT_EQ(m[1].variants[0].pre_sum, 0);
  EXPECT_EQ(m[2].variants[0].sum, 50);  // within 24 h
  EXPECT_EQ(m[3].variants[0].sum / m[3].variants[0].denominator_sum, 35);
  EXPECT_EQ(m[3].variants[1].sum / m[3].variants[1].denominator_sum, 30);
  EXPECT_EQ(m[4].variants[0].n, 1);  // A retained
  EXPECT_EQ(m[4].variants[0].sum, 1);
  EXPECT_EQ(m[4].variants[1].n, 1);  // B not; D left out (its day 1 is after the end)
  EXPECT_EQ(m[4].variants[1].sum, 0);
}

// ---- the document: defaults, round trip and errors naming the field.

TEST(ExperimentDoc, DefaultsAndRoundTrip) {
  auto d = ExperimentDoc::Parse(json{{"name", "checkout"},
                                     {"flag_key", "new-checkout"},
                                     {"primary_metrics", {{{"type", "funnel"}, {"steps", {"pay"}}}}}});
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->variants.size(), 2u);
  EXPECT_EQ(d->variants[0].key, "control");
  EXPECT_EQ(d->status, "draft");
  EXPECT_EQ(d->primary_metrics[0].name, "pay conversion");
  auto again = ExperimentDoc::Parse(d->ToJson());
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ(again->ToJson(), d->ToJson());
}

TEST(ExperimentDoc, ErrorsNameTheField) {
  using ::ns::testing::StatusIs;
  const json base{{"name", "x"}, {"flag_key", "f"}};
  auto with = [&](const char* k, json v) {
    json j = base;
    j[k] = std::move(v);
    return ExperimentDoc::Parse(j);
  };
  EXPECT_THAT(ExperimentDoc::Parse(json{{"flag_key", "f"}}),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "name"));
  EXPECT_THAT(ExperimentDoc::Parse(json{{"name", "x"}}),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "flag_key"));
  EXPECT_THAT(with("variants", json::array({"a"})), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "variants"));
  EXPECT_THAT(with("variants", json::array({"a", "a"})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "variants[1].key"));
  EXPECT_THAT(with("variants", json::array({json{{"key", "a"}, {"weight", 0}}, "b"})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "variants[0].weight"));
  EXPECT_THAT(with("status", "running"), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "start_date"));
  EXPECT_THAT(with("start_date", "2025-13-01"), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "start_date"));
  json j = base;
  j["start_date"] = "2025-03-10";
  j["end_date"] = "2025-03-01";
  EXPECT_THAT(ExperimentDoc::Parse(j), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "end_date"));
  EXPECT_THAT(with("primary_metrics", json::array({json{{"type", "funnel"}, {"steps", json::array({"$any"})}}})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "primary_metrics[0].steps[0].event"));
  EXPECT_THAT(with("primary_metrics", json::array({json{{"type", "mean"}, {"event", "pay"}, {"math", "avg"}}})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "primary_metrics[0].math"));
  EXPECT_THAT(with("secondary_metrics", json::array({json{{"type", "mean"}, {"event", "pay"}, {"math", "sum"}}})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "secondary_metrics[0].property"));
  EXPECT_THAT(with("guardrail_metrics",
                   json::array({json{{"type", "ratio"}, {"numerator", {{"event", "pay"}}}, {"denominator", 3}}})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "guardrail_metrics[0].denominator"));
  EXPECT_THAT(with("primary_metrics", json::array({json{{"type", "retention"}, {"event", "x"}, {"day", -1}}})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "primary_metrics[0].day"));
  EXPECT_THAT(with("primary_metrics", json::array({json{{"type", "mean"}, {"event", kExposureEvent}}})),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "primary_metrics[0].event"));
  EXPECT_THAT(with("analysis", json{{"alpha", 0}}),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "analysis.alpha"));
  EXPECT_THAT(with("analysis", json{{"method", "magic"}}),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "analysis.method"));
  EXPECT_THAT(with("analysis", json{{"winsorize_percentile", 1}}),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "analysis.winsorize_percentile"));
  EXPECT_THAT(with("analysis", json{{"cuped_days", 400}}),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "analysis.cuped_days"));
  EXPECT_THAT(with("minimum_detectable_effect", 0),
              StatusIs(StatusCode::kInvalidArgument, ::testing::_, "minimum_detectable_effect"));
  EXPECT_THAT(with("scenario_id", "1"), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "scenario_id"));
  EXPECT_THAT(with("colour", "red"), StatusIs(StatusCode::kInvalidArgument, ::testing::_, "colour"));
}

}  // namespace
}  // namespace ns
