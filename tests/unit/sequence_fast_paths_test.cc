// The fast paths of the per-person sequence scan (query/person_scan.h) against the plain
// ones, on 240 random stores: person tiles (every part over a few persons at a time) and
// the operators' own shortcuts (retention applying an anchored person's returns as rows
// arrive) must give byte-identical answers to one tile per range with no shortcuts. The
// answers themselves are checked against naive references elsewhere
// (funnel_ext_reference_test, retention_ext_reference_test, query_reference_test); this
// test makes sure the fast paths are exercised on small data (tiles of 1..8 persons).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>

#include "core/env.h"
#include "core/time_zone.h"
#include "query/operators.h"
#include "query/person_scan.h"
#include "reference_test_util.h"
#include "scan_tuning_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kNames[] = {"s0", "s1", "s2", "s3", "x", "refund"};

class SequenceFastPaths : public ::testing::TestWithParam<int> {};

TEST_P(SequenceFastPaths, SameAnswersAsThePlainScan) {
  TuningGuard guard;
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 7919 + 3);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  auto tz = TimeZone::Load(kZones[seed % 5]);
  ASSERT_TRUE(tz.ok());

  // Up to 60 persons over ~20 days: many parts, many tiles; coarse time steps make ties;
  // logins merge anonymous ids (sometimes after their events were flushed).
  ThrowAwayStore store(static_cast<size_t>(R(3, 80)));
  ASSERT_TRUE(store.ok());
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;  // 2025-03-04
  const int64_t step = std::vector<int64_t>{1000, 60'000, 1'800'000, 3'600'000}[static_cast<size_t>(seed % 4)];
  const int persons = R(2, 60);
  const int nevents = R(50, 600);
  std::vector<Event> events = GridEvents(
      rng, R, "f" + std::to_string(seed), persons, nevents, kNames, 6, base, step, /*days=*/20, /*login_every=*/15,
      [&](Event& e, int) {
        if (rng() % 4) e.props.push_back({"channel", PropValue::Str(std::string(1, static_cast<char>('a' + R(0, 2))))});
        if (rng() % 3 == 0)
          e.props.push_back({"$session_id", PropValue::Str(std::string(1, static_cast<char>('A' + R(0, 2))))});
      });
  std::shuffle(events.begin(), events.end(), rng);
  // Rows end in open and sealed memtable blocks, segments and compacted segments.
  AppendInBatches(store, std::move(events), BatchPolicy{}, R);
  auto day = [&](int off) { return FormatDate(tz->LocalDay(base) + off); };

  std::vector<json> queries;
  for (int t = 0; t < 8; t++) {
    json q{{"kind", "funnel"}};
    const int a = R(-2, 18);
    q["date_from"] = day(a);
    q["date_to"] = day(a + R(0, 8));
    const int n = R(2, 5);
    q["order"] = std::vector<std::string>{"ordered", "ordered", "strict"}[static_cast<size_t>(R(0, 2))];
    json steps = json::array();
    for (int k = 0; k < n; k++) {
      json s{{"event", R(0, 12) == 0 ? "$any" : kNames[R(0, 3)]}};
      if (R(0, 6) == 0) s["filters"] = json::array({{{"property", "channel"}, {"op", "neq"}, {"value", "b"}}});
      if (k > 0 && k < n - 1 && R(0, 4) == 0) s["optional"] = true;
      if (R(0, 9) == 0) s["first_ever"] = true;
      steps.push_back(s);
    }
    q["steps"] = steps;
    q["window_seconds"] = std::vector<int>{60, 3600, 86400, 3 * 86400, 7 * 86400}[static_cast<size_t>(R(0, 4))];
    if (R(0, 3) == 0) q["exclusions"] = json::array({{{"event", "refund"}, {"from_step", 0}, {"to_step", n - 1}}});
    if (R(0, 3) == 0) q["aggregate_by"] = "session";
    if (R(0, 2) == 0) {
      q["breakdown"] = "channel";
      q["breakdown_attribution"] = std::vector<std::string>{"first_touch", "last_touch"}[static_cast<size_t>(R(0, 1))];
    }
    q["dropoff_limit"] = 0;
    const int viz = R(0, 3);
    if (viz == 1 || viz == 2) {
      q["viz"] = viz == 1 ? "trends" : "time_to_convert";
      q["from_step"] = 0;
      q["to_step"] = n - 1;
      for (auto& s : q["steps"]) s.erase("optional");
    }
    queries.push_back(q);
  }
  for (int t = 0; t < 8; t++) {
    json q{{"kind", "retention"}};
    const int a = R(-2, 18);
    q["date_from"] = day(a);
    q["date_to"] = day(a + R(0, 10));
    q["start_event"] = R(0, 5) == 0 ? "$any" : kNames[R(0, 3)];
    q["return_event"] = R(0, 2) == 0 ? "$any" : kNames[R(0, 3)];
    q["period"] = std::vector<std::string>{"day", "day", "week", "month"}[static_cast<size_t>(R(0, 3))];
    q["periods"] = R(1, 12);
    q["first_time"] = R(0, 3) != 0;
    q["mode"] = R(0, 1) ? "exact" : "on_or_after";
    if (R(0, 3) == 0) q["return_filters"] = json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "a"}}});
    if (R(0, 3) == 0) q["start_filters"] = json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "b"}}});
    if (R(0, 3) == 0) q["breakdown"] = "channel";
    queries.push_back(q);
  }
  // Other users of the driver: their answers must not depend on the tiles either.
  queries.push_back({{"kind", "lifecycle"}, {"event", kNames[R(0, 2)]}, {"date_from", day(2)}, {"date_to", day(15)}});
  queries.push_back({{"kind", "stickiness"},
                     {"series", {{{"event", kNames[R(0, 2)]}}}},
                     {"date_from", day(0)},
                     {"date_to", day(19)}});

  for (const json& q : queries) {
    ASSERT_NO_FATAL_FAILURE(ExpectFastScanSameAsPlain(q, *store, *tz, static_cast<uint32_t>(R(1, 8)), seed));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, SequenceFastPaths, ::testing::Range(0, 240));

}  // namespace
}  // namespace ns
