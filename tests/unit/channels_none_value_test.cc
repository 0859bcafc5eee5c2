// A channel value that is literally "(none)" (as GA's utm_medium for direct traffic) shares
// its channel with the persons who have no channel value: both are the "(none)" channel,
// whose payback counts the revenue of both (the flat (channel, day) table of channels.cc
// holds them under two ids that must add up, not overwrite each other).
#include <gtest/gtest.h>

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

TEST(ChannelsNoneValue, PaybackAddsTheLiteralAndTheAbsentChannel) {
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  PeopleSettings ps;
  MemTempDir dir;
  NoSyncEnv env;
  StoreOptions so;
  so.background = false;
  so.env = &env;
  auto store = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  const int day = 20139;  // 2025-02-20
  const int64_t noon = LocalMidnight(date::locate_zone(tz->name()), day) + 12 * 3'600'000;
  std::vector<Event> batch;
  auto add = [&](const std::string& id, const std::string& name, int64_t ts, std::optional<std::string> channel,
                 double amount) {
    Event e;
    e.uuid = Uuid::FromClientId(id + name + std::to_string(ts));
    e.has_uuid = true;
    e.distinct_id = id;
    e.event = name;
    e.ts_ms = ts;
    if (channel) e.props.push_back({"channel", PropValue::Str(*channel)});
    if (amount > 0) e.props.push_back({"amount", PropValue::Num(amount)});
    batch.push_back(std::move(e));
  };
  add("a", "view", noon, "(none)", 0);  // a's channel: the text "(none)"
  add("a", "pay", noon + 1000, std::nullopt, 10);
  add("b", "view", noon, std::nullopt, 0);  // b has none
  add("b", "pay", noon + 1000, std::nullopt, 10);
  ASSERT_TRUE((*store)->Append(std::move(batch), Durability::kUnlogged).ok());
  FixedSpendSource source({SpendRow{day, "(none)", "", 15.0, "CNY"}});
  QueryOptions qo;
  qo.people = &ps;
  qo.spend = &source;
  for (int threads : {1, 2}) {
    ChannelsScanTuning().threads = threads;
    json q{{"kind", "channels"}, {"date_from", DayString(day)}, {"date_to", DayString(day)}};
    auto r = RunQuery(q, **store, *tz, qo);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    ASSERT_EQ((*r)["channels"].size(), 1u) << r->dump();
    const json& c = (*r)["channels"][0];
    EXPECT_EQ(c["channel"], "(none)");
    EXPECT_EQ(c["new_persons"], 2);
    EXPECT_DOUBLE_EQ(c["revenue"].get<double>(), 20.0);
    // 20 of revenue on day 0 against 15 of spend: paid back on day 0.
    EXPECT_EQ(c["payback_days"], 0) << r->dump();
  }
  ChannelsScanTuning() = ChannelsTuning{};
}

}  // namespace
}  // namespace ns
