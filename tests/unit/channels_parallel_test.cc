// The channels query's passes on several threads against the same passes on one thread
// (ChannelsScanTuning().threads = 1, the serial path): the whole answer must be identical,
// sums included (pass 2 joins the blocks' payments in block order whatever the thread count).
// Random stores of many small blocks on 220 seeds: identity merges after the fact, equal
// timestamps across blocks (the channel is the smallest value at the first timestamp, which
// the threads' partial results must agree on), channel values as text, as numbers and empty,
// a second channel property, payments (amounts in cents, whose sums depend on their order)
// with and without order ids repeated across blocks, an acquisition event or none, windows
// in days or seconds. The naive reference of the answer itself is channels_reference_test.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "core/env.h"
#include "query/channels.h"
#include "query/person_facts.h"
#include "query/query_kind.h"
#include "query/spend_source.h"
#include "reference_test_util.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

class ChannelsParallel : public ::testing::TestWithParam<int> {
 protected:
  void TearDown() override { ChannelsScanTuning() = ChannelsTuning{}; }
};

TEST_P(ChannelsParallel, SameAnswerOnOneAndManyThreads) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 104729 + 7);
  auto R = [&](int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)); };
  auto tz = TimeZone::Load(seed % 3 == 2 ? "America/New_York" : "Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  PeopleSettings ps;
  if (seed % 5 == 4) ps.order_property = "";

  const int day0 = 20139;  // 2025-02-20
  const int persons = R(2, 30);
  const int nevents = R(50, 600);
  ThrowAwayStore store(static_cast<size_t>(R(3, 40)));
  ASSERT_TRUE(store.ok());
  static const char* kChannels[] = {"ads", "feed", "seo", "", "kol"};
  std::map<int, std::vector<int64_t>> stamps;  // by person
  for (int pos = 0; pos < nevents;) {
    const int n = std::min(nevents - pos, R(1, 40));
    std::vector<Event> batch;
    for (int i = 0; i < n; i++, pos++) {
      Event e;
      e.uuid = Uuid::FromClientId("p" + std::to_string(seed) + "-" + std::to_string(pos));
      e.has_uuid = true;
      const int p = R(1, persons);
      e.distinct_id = std::string(1, R(0, 3) ? 'u' : 'a') + std::to_string(p);
      std::vector<int64_t>& mine = stamps[p];
      if (mine.empty() || R(0, 1))
        e.ts_ms = LocalMidnight(date::locate_zone(tz->name()), day0 + R(0, 40)) + R(-1, 1) * R(0, 3) +
                  R(0, 3) * int64_t{R(0, 28'800'000)};
      else
        e.ts_ms = mine[rng() % mine.size()];  // the same person at the same time, often in another block
      mine.push_back(e.ts_ms);
      const int roll = R(0, 99);
      if (roll < 6) {
        e.event = "$identify";
        e.distinct_id = "u" + std::to_string(p);
        e.props.push_back({"$anon_distinct_id", PropValue::Str("a" + std::to_string(p))});
        e.merge_with.push_back("a" + std::to_string(p));
      } else if (roll < 40) {
        e.event = "pay";
        if (R(0, 9)) e.props.push_back({"amount", PropValue::Num(R(-20, 4000) * 0.01)});
        if (R(0, 1)) e.props.push_back({"order_id", PropValue::Str(R(0, 4) ? "o" + std::to_string(R(1, 6)) : "")});
      } else {
        e.event = R(0, 1) ? "register" : "view";
      }
      const int c = R(0, 9);
      if (c < 5)
        e.props.push_back({"channel", PropValue::Str(kChannels[R(0, 4)])});
      else if (c == 5)
        e.props.push_back({"channel", PropValue::Num(R(1, 3))});  // a number: read as text
      if (R(0, 2) == 0) e.props.push_back({"utm_source", PropValue::Str(kChannels[R(0, 4)])});
      batch.push_back(std::move(e));
    }
    ASSERT_TRUE(store->Append(std::move(batch), Durability::kUnlogged).ok());
    AfterBatch(store, BatchPolicy{}, R);
    ASSERT_FALSE(::testing::Test::HasFatalFailure());
  }
  std::vector<SpendRow> spend;
  for (int d = day0 - 2; d < day0 + 44; d += R(1, 4))
    spend.push_back(SpendRow{d, kChannels[R(0, 2)], "", static_cast<double>(R(0, 50)), "CNY"});
  FixedSpendSource source(spend);
  QueryOptions qo;
  qo.people = &ps;
  qo.spend = &source;

  for (int t = 0; t < 3; t++) {
    const int d0 = day0 + R(-3, 30), d1 = d0 + R(0, 20);
    json q{{"kind", "channels"}, {"date_from", DayString(d0)}, {"date_to", DayString(d1)}};
    if (R(0, 1)) q["acquisition_event"] = R(0, 2) ? "register" : "pay";
    if (R(0, 1)) q["conversion_seconds"] = R(0, 4) * 21600;
    if (R(0, 1)) q["channel_properties"] = R(0, 1) ? json{"channel"} : json{"utm_source", "channel"};
    if (R(0, 2) == 0) q["budget"] = 1000;
    ChannelsScanTuning().threads = 1;
    auto serial = RunQuery(q, *store, *tz, qo);
    ASSERT_TRUE(serial.ok()) << serial.status().ToString();
    serial->erase("took_ms");
    for (int threads : {2, 3, 5}) {
      ChannelsScanTuning().threads = threads;
      ChannelsScanTuning().strided = threads != 5;  // 5: blocks to the next free thread, as in use
      auto parallel = RunQuery(q, *store, *tz, qo);
      ASSERT_TRUE(parallel.ok()) << parallel.status().ToString();
      parallel->erase("took_ms");
      ASSERT_EQ(parallel->dump(), serial->dump()) << "seed " << seed << " threads " << threads << " query " << q.dump();
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ChannelsParallel, ::testing::Range(0, 220));

}  // namespace
}  // namespace ns
