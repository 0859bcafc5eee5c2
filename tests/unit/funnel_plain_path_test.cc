// The plain funnel's own scan (query/funnel_plain.h) against the general attempt-set engine
// of funnel.cc, on 240 random stores: ordered and strict funnels of 1-6 steps (steps
// repeating an event, events that are no step), windows from 0 s to 7 days on coarse time
// grids (equal timestamps, steps exactly at the window's edge), date ranges in five zones
// (local day edges, empty ranges), logins merging anonymous ids after their events were
// flushed. Answers must be byte-identical, and so must each person's first reach of each
// step (what paths.cc asks RunFunnel for). The general engine itself is checked against
// naive references in query_reference_test and funnel_ext_reference_test.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <tuple>

#include "core/env.h"
#include "core/time_zone.h"
#include "query/funnel_plain.h"
#include "query/operators.h"
#include "query/person_scan.h"
#include "query/query_kind.h"
#include "reference_test_util.h"
#include "scan_tuning_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

const char* kZones[] = {"Asia/Shanghai", "America/New_York", "UTC", "Asia/Kolkata", "Europe/Berlin"};
const char* kNames[] = {"s0", "s1", "s2", "s3", "x"};

class FunnelPlainPath : public ::testing::TestWithParam<int> {};

TEST_P(FunnelPlainPath, SameAnswersAsTheGeneralEngine) {
  TuningGuard guard;
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 11);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  auto tz = TimeZone::Load(kZones[seed % 5]);
  ASSERT_TRUE(tz.ok());

  ThrowAwayStore store(static_cast<size_t>(R(3, 80)));
  ASSERT_TRUE(store.ok());
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;  // 2025-03-04
  // Coarse grids make equal timestamps and steps exactly a window apart.
  const int64_t step = std::vector<int64_t>{1000, 60'000, 1'800'000, 3'600'000}[static_cast<size_t>(seed % 4)];
  const int persons = R(2, 60);
  const int nevents = R(50, 700);
  std::vector<Event> events = GridEvents(rng, R, "p" + std::to_string(seed), persons, nevents, kNames, 5, base, step,
                                         /*days=*/20, /*login_every=*/15, [](Event&, int) {});
  std::shuffle(events.begin(), events.end(), rng);
  // Rows end in open and sealed memtable blocks, segments and compacted segments.
  AppendInBatches(store, std::move(events), BatchPolicy{}, R);
  auto day = [&](int off) { return FormatDate(tz->LocalDay(base) + off); };

  for (int t = 0; t < 10; t++) {
    json q{{"kind", "funnel"}};
    const int a = R(-3, 20);
    q["date_from"] = day(a);
    q["date_to"] = day(a + R(0, 10));
    q["order"] = R(0, 2) == 0 ? "strict" : "ordered";
    const int n = R(1, 6);
    json steps = json::array();
    for (int k = 0; k < n; k++) steps.push_back({{"event", kNames[R(0, 4)]}});
    if (R(0, 9) == 0) steps[static_cast<size_t>(R(0, n - 1))]["event"] = "never_seen";
    q["steps"] = steps;
    q["window_seconds"] =
        std::vector<int>{0, 1, 60, 3600, 7200, 86400, 3 * 86400, 7 * 86400}[static_cast<size_t>(R(0, 7))];
    q["dropoff_limit"] = R(0, 1) ? 0 : R(1, 5);
    if (R(0, 2) == 0) q["converted_limit"] = R(0, 4);

    auto parsed = ParseFunnelQuery(q);
    ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
    ASSERT_TRUE(PlainFunnelApplies(*parsed)) << q.dump();  // the test exercises the fast path

    const uint32_t tile = R(0, 3) == 0 ? kScanTilePersons : static_cast<uint32_t>(R(1, 8));
    ASSERT_NO_FATAL_FAILURE(ExpectFastScanSameAsPlain(q, *store, *tz, tile, seed));

    // Every person's first reach of every step, as paths.cc reads them.
    auto snap = store->Snapshot();
    auto reaches = [&](std::vector<FunnelReach>* out) {
      auto r = RunFunnel(*parsed, *snap, *tz, nullptr, nullptr, out);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      std::sort(out->begin(), out->end(), [](const FunnelReach& x, const FunnelReach& y) {
        return std::tie(x.person, x.step, x.ts) < std::tie(y.person, y.step, y.ts);
      });
    };
    std::vector<FunnelReach> plain_reaches, fast_reaches;
    UsePlainScan();
    reaches(&plain_reaches);
    UseFastScan(tile);
    reaches(&fast_reaches);
    ASSERT_EQ(fast_reaches.size(), plain_reaches.size()) << "seed " << seed << "\n" << q.dump();
    for (size_t i = 0; i < plain_reaches.size(); i++) {
      EXPECT_EQ(fast_reaches[i].person, plain_reaches[i].person) << "seed " << seed << " reach " << i;
      EXPECT_EQ(fast_reaches[i].step, plain_reaches[i].step) << "seed " << seed << " reach " << i;
      EXPECT_EQ(fast_reaches[i].ts, plain_reaches[i].ts) << "seed " << seed << " reach " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, FunnelPlainPath, ::testing::Range(0, 240));

// Enough persons (1,100-3,000) for the passes to run in parallel person ranges: the plain
// funnel and retention, whose threads take several chunks each (ParallelPersonChunks), must
// answer as the plain scan's one range per thread. Breakdowns and filters keep retention on
// its general walk, without them it takes its fast paths.
class ChunkedPersonRanges : public ::testing::TestWithParam<int> {};

TEST_P(ChunkedPersonRanges, AnswerAsOneRangePerThread) {
  TuningGuard guard;
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 7919 + 3);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  auto tz = TimeZone::Load(kZones[seed % 5]);
  ASSERT_TRUE(tz.ok());
  ThrowAwayStore store(static_cast<size_t>(R(200, 3000)));
  ASSERT_TRUE(store.ok());
  const int64_t base = 1741046400000LL + R(0, 86400) * 1000LL;
  const int persons = R(1100, 3000);
  std::vector<Event> events = GridEvents(rng, R, "c" + std::to_string(seed), persons, persons * R(3, 8), kNames, 5,
                                         base, 600'000, /*days=*/14, /*login_every=*/25, [&](Event& e, int) {
                                           e.props.push_back(Property{"channel", PropValue::Str(R(0, 1) ? "a" : "b")});
                                         });
  std::shuffle(events.begin(), events.end(), rng);
  AppendInBatches(store, std::move(events), BatchPolicy{}, R);
  auto day = [&](int off) { return FormatDate(tz->LocalDay(base) + off); };
  for (int t = 0; t < 6; t++) {
    json q;
    if (t % 2 == 0) {
      q = {{"kind", "funnel"}, {"order", R(0, 2) == 0 ? "strict" : "ordered"}};
      json steps = json::array();
      for (int k = R(2, 5); k > 0; k--) steps.push_back({{"event", kNames[R(0, 4)]}});
      q["steps"] = steps;
      q["window_seconds"] = std::vector<int>{3600, 86400, 7 * 86400}[static_cast<size_t>(R(0, 2))];
      q["dropoff_limit"] = R(0, 5);
    } else {
      q = {{"kind", "retention"}, {"start_event", kNames[R(0, 2)]}, {"return_event", kNames[R(0, 4)]}};
      q["period"] = R(0, 2) ? "day" : "week";
      q["periods"] = R(3, 14);
      q["mode"] = R(0, 1) ? "exact" : "on_or_after";
      if (R(0, 2) == 0) q["breakdown"] = "channel";
    }
    const int a = R(-2, 10);
    q["date_from"] = day(a);
    q["date_to"] = day(a + R(0, 6));
    const int chunks = std::vector<int>{2, 3, 4, 7}[static_cast<size_t>(R(0, 3))];
    const uint32_t tile = R(0, 1) ? kScanTilePersons : static_cast<uint32_t>(R(1, 64));
    ASSERT_NO_FATAL_FAILURE(ExpectFastScanSameAsPlain(q, *store, *tz, tile, seed, chunks));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ChunkedPersonRanges, ::testing::Range(0, 12));

// Funnels the general engine keeps: anything beyond plain steps.
TEST(FunnelPlainPathChoice, OnlyPlainFunnels) {
  auto parse = [](const json& extra) {
    json q{{"kind", "funnel"},
           {"date_from", "2025-03-01"},
           {"date_to", "2025-03-05"},
           {"steps", json::array({{{"event", "a"}}, {{"event", "b"}}, {{"event", "c"}}})}};
    for (auto& [k, v] : extra.items()) q[k] = v;
    auto p = ParseFunnelQuery(q);
    EXPECT_TRUE(p.ok()) << p.status().ToString();
    return *p;
  };
  EXPECT_TRUE(PlainFunnelApplies(parse(json::object())));
  EXPECT_TRUE(PlainFunnelApplies(parse({{"order", "strict"}})));
  EXPECT_FALSE(PlainFunnelApplies(parse({{"order", "unordered"}})));
  EXPECT_FALSE(PlainFunnelApplies(parse({{"breakdown", "channel"}})));
  EXPECT_FALSE(PlainFunnelApplies(parse({{"aggregate_by", "session"}})));
  EXPECT_FALSE(PlainFunnelApplies(parse({{"viz", "trends"}})));
  EXPECT_FALSE(
      PlainFunnelApplies(parse({{"filters", json::array({{{"property", "x"}, {"op", "eq"}, {"value", "1"}}})}})));
  EXPECT_FALSE(
      PlainFunnelApplies(parse({{"exclusions", json::array({{{"event", "d"}, {"from_step", 0}, {"to_step", 2}}})}})));
  EXPECT_FALSE(PlainFunnelApplies(
      parse({{"steps", json::array({{{"event", "a"}}, {{"event", "b"}, {"optional", true}}, {{"event", "c"}}})}})));
  EXPECT_FALSE(PlainFunnelApplies(parse({{"steps", json::array({{{"event", "a"}, {"first_ever", true}}})}})));
  EXPECT_FALSE(PlainFunnelApplies(parse({{"steps", json::array({{{"event", "$any"}}, {{"event", "b"}}})}})));
  EXPECT_FALSE(PlainFunnelApplies(parse(
      {{"steps", json::array({{{"event", "a"},
                               {"filters", json::array({{{"property", "x"}, {"op", "eq"}, {"value", "1"}}})}}})}})));
}

}  // namespace
}  // namespace ns
