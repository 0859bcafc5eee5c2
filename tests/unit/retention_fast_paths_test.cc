// Retention's fast paths (query/retention.cc) against its plain ones, on 240 random stores:
// the dedicated plain pass (first_time, no filters or breakdown; calendar periods and 24h
// windows) and the per-person stream for 24h windows must give byte-identical answers to
// the plain scan (one tile per range, no shortcuts: the general stream for calendar
// periods, per-person timelines for 24h windows). The answers themselves are checked
// against naive references in retention_ext_reference_test and query_reference_test.
//
// The data is made to hit the edges: coarse time steps that divide a day (equal timestamps,
// returns exactly k x 24 h after the anchor), zones with DST changes and odd offsets
// (local midnights inside UTC days, 23- and 25-hour days), start events long before the
// range (first_time history), logins merging anonymous ids after their events were flushed,
// empty ranges, and more than 64 periods (the plain pass's limit).
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

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

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kathmandu", "Europe/Berlin"};
const char* kNames[] = {"register", "s1", "s2", "x", "pay"};

class RetentionFastPaths : public ::testing::TestWithParam<int> {};

TEST_P(RetentionFastPaths, SameAnswersAsThePlainScan) {
  TuningGuard guard;
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 11);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  auto tz = TimeZone::Load(kZones[seed % 5]);
  ASSERT_TRUE(tz.ok());

  ThrowAwayStore store(static_cast<size_t>(R(3, 80)));
  ASSERT_TRUE(store.ok());
  // 2025-03-04 at a local-ish midnight or any second: US DST starts 03-09, EU 03-30.
  const int64_t base = 1741046400000LL + (seed % 3 == 0 ? 0 : R(0, 86400) * 1000LL);
  const int64_t step =
      std::vector<int64_t>{1000, 900'000, 1'800'000, 3'600'000, 21'600'000}[static_cast<size_t>(seed % 5)];
  const int persons = R(2, 60);
  const int nevents = R(50, 700);
  std::vector<Event> events =
      GridEvents(rng, R, "r" + std::to_string(seed), persons, nevents, kNames, 5, base, step, /*days=*/30,
                 /*login_every=*/12, [&](Event& e, int p) {
                   if (R(0, 19) == 0) e.ts_ms -= 200LL * 86'400'000;  // long before any range
                   // The channel depends on the person and the instant only: which of several start
                   // events at one instant anchors is not defined, so their breakdown values must agree.
                   const int64_t h = (p * 31 + e.ts_ms / step) % 4;
                   if (h < 3)
                     e.props.push_back({"channel", PropValue::Str(std::string(1, static_cast<char>('a' + h)))});
                 });
  std::shuffle(events.begin(), events.end(), rng);
  // Rows end in open and sealed memtable blocks, segments and compacted segments.
  AppendInBatches(store, std::move(events), BatchPolicy{}, R);
  auto day = [&](int off) { return FormatDate(tz->LocalDay(base) + off); };

  for (int t = 0; t < 12; t++) {
    json q{{"kind", "retention"}};
    int a = R(-2, 28), b = a + R(0, 12);
    if (R(0, 12) == 0) a = 60, b = 64;  // an empty range
    q["date_from"] = day(a);
    q["date_to"] = day(b);
    q["start_event"] = R(0, 6) == 0 ? "$any" : R(0, 9) == 0 ? "absent" : kNames[R(0, 2)];
    q["return_event"] = R(0, 1) == 0 ? "$any" : R(0, 9) == 0 ? "absent" : kNames[R(0, 4)];
    q["period"] = std::vector<std::string>{"day", "day", "day", "week", "month"}[static_cast<size_t>(R(0, 4))];
    q["periods"] = R(0, 9) == 0 ? R(60, 70) : R(1, 35);
    q["first_time"] = R(0, 5) != 0;
    q["mode"] = R(0, 1) ? "exact" : "on_or_after";
    if (q["period"] != "month" && R(0, 1)) q["time_window"] = "24h";
    if (R(0, 9) == 0) q["min_occurrences"] = 2;
    if (R(0, 5) == 0) q["return_filters"] = json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "a"}}});
    if (R(0, 6) == 0) q["start_filters"] = json::array({{{"property", "channel"}, {"op", "neq"}, {"value", "b"}}});
    if (R(0, 5) == 0) {
      q["breakdown"] = "channel";
      q["breakdown_limit"] = 100;
    }
    ASSERT_NO_FATAL_FAILURE(ExpectFastScanSameAsPlain(q, *store, *tz, static_cast<uint32_t>(R(1, 8)), seed));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, RetentionFastPaths, ::testing::Range(0, 240));

}  // namespace
}  // namespace ns
