// The memory budget of decoded segment columns (storage/column_cache.h, issue 15): the
// cache's accounting and pinning on hand-made slots, then every query kind's answers under
// a budget of a few KB (every column evicted as soon as no reader holds it, from two threads
// at once) against the same store without a budget, on random stores.
#include "storage/column_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "core/time_zone.h"
#include "query/operators.h"
#include "query/query_kind.h"
#include "reference_test_util.h"
#include "storage/block.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::ns::testing::StatusIs;
using ::testing::HasSubstr;

struct Blob : CachedData {
  explicit Blob(size_t n) : v(n, 7) {}
  std::vector<char> v;
  size_t Bytes() const override { return v.size(); }
};

// Restores the process-wide budget a test changed.
class BudgetScope {
 public:
  explicit BudgetScope(uint64_t bytes) : saved_(ColumnCache::Global().budget()) {
    ColumnCache::Global().SetBudget(bytes);
  }
  ~BudgetScope() { ColumnCache::Global().SetBudget(saved_); }

 private:
  uint64_t saved_;
};

TEST(ColumnCache, CountsDecodesHitsAndResidentBytes) {
  BudgetScope budget(0);  // unlimited
  ColumnCache& c = ColumnCache::Global();
  c.EvictUnpinned();
  const ColumnCacheStats s0 = c.Stats();
  int loads = 0;
  auto load = [&] {
    loads++;
    return std::make_unique<Blob>(1000);
  };
  {
    CachedSlot a, b;
    {
      ColumnCache::ReadTicket reading;
      EXPECT_EQ(a.Get<Blob>(load).v.size(), 1000u);
      EXPECT_EQ(a.Get<Blob>(load).v.size(), 1000u);  // same reader: the fast path, no count
      (void)b.Get<Blob>(load);
    }
    {
      ColumnCache::ReadTicket reading;
      (void)a.Get<Blob>(load);  // a new reader's first use of a resident column: a hit
    }
    EXPECT_EQ(loads, 2);
    const ColumnCacheStats s1 = c.Stats();
    EXPECT_EQ(s1.misses - s0.misses, 2u);
    EXPECT_EQ(s1.hits - s0.hits, 1u);
    EXPECT_EQ(s1.resident_bytes - s0.resident_bytes, 2000u);
    EXPECT_EQ(s1.resident_columns - s0.resident_columns, 2u);
    EXPECT_TRUE(a.resident());
    EXPECT_EQ(a.bytes(), 1000u);
  }
  // Destroyed slots leave the accounting.
  EXPECT_EQ(c.Stats().resident_bytes, s0.resident_bytes);
  EXPECT_EQ(c.Stats().resident_columns, s0.resident_columns);
}

TEST(ColumnCache, PermanentSlotsAreNeitherCountedNorEvicted) {
  BudgetScope budget(1);
  ColumnCache& c = ColumnCache::Global();
  const uint64_t before = c.Stats().resident_bytes;
  CachedSlot p;
  p.SetPermanent(std::make_unique<Blob>(5000));
  c.EvictUnpinned();
  EXPECT_TRUE(p.resident());
  EXPECT_EQ(c.Stats().resident_bytes, before);
  int loads = 0;
  EXPECT_EQ(p.Get<Blob>([&] {
               loads++;
               return std::make_unique<Blob>(1);
             }).v.size(),
            5000u);
  EXPECT_EQ(loads, 0);
}

TEST(ColumnCache, EvictsLeastRecentlyUsedOverBudgetAndNeverWhatALiveReaderTouched) {
  ColumnCache& c = ColumnCache::Global();
  BudgetScope budget(0);
  c.EvictUnpinned();
  auto load = [] { return std::make_unique<Blob>(1000); };
  CachedSlot s[4];
  for (int i = 0; i < 4; i++) {
    ColumnCache::ReadTicket reading;  // one reader each: s[0] is the least recently used
    (void)s[i].Get<Blob>(load);
  }
  const uint64_t ev0 = c.Stats().evictions;
  {
    ColumnCache::ReadTicket holder;
    const Blob& held = s[0].Get<Blob>(load);  // s[0] becomes the most recent, and pinned
    c.SetBudget(2500);                        // evicts down to 90 %: the two oldest unpinned
    EXPECT_TRUE(s[0].resident());
    EXPECT_FALSE(s[1].resident());
    EXPECT_FALSE(s[2].resident());
    EXPECT_TRUE(s[3].resident());
    EXPECT_EQ(held.v[999], 7);  // still readable
    EXPECT_EQ(c.Stats().evictions - ev0, 2u);
    c.SetBudget(1);  // s[3] goes, s[0] is pinned by `holder`
    EXPECT_TRUE(s[0].resident());
    EXPECT_FALSE(s[3].resident());
    EXPECT_EQ(held.v[0], 7);
  }
  // The holder is gone: its release trims the cache to the budget.
  EXPECT_FALSE(s[0].resident());
  EXPECT_EQ(c.Stats().evictions - ev0, 4u);
  // An evicted column decodes again on its next use.
  ColumnCache::ReadTicket again;
  EXPECT_EQ(s[1].Get<Blob>(load).v.size(), 1000u);
  EXPECT_TRUE(s[1].resident());
}

TEST(ColumnCache, AnOlderLiveReaderPinsColumnsANewerReaderUsed) {
  // Epochs order readers, not columns: while an older reader lives, a column used by any
  // later reader stays (the older one might hold it too).
  BudgetScope budget(1);
  auto load = [] { return std::make_unique<Blob>(100); };
  CachedSlot a;
  auto old_reader = std::make_unique<ColumnCache::ReadTicket>();
  {
    ColumnCache::ReadTicket newer;
    (void)a.Get<Blob>(load);
  }
  EXPECT_TRUE(a.resident());
  old_reader.reset();
  EXPECT_FALSE(a.resident());
}

TEST(ColumnCache, RetireFreesOnlyWhatNoOtherReaderCanHold) {
  // A reader that will not read slots again retires them: over the budget, each is freed at
  // once unless another live reader may hold it (one that touched it, or any older one).
  BudgetScope budget(0);
  ColumnCache& c = ColumnCache::Global();
  c.EvictUnpinned();
  auto load = [] { return std::make_unique<Blob>(1000); };
  CachedSlot a, b, d;
  ColumnCache::ReadTicket mine;
  (void)a.Get<Blob>(load);
  (void)b.Get<Blob>(load);
  // Under the budget (unlimited here), retiring changes nothing.
  c.Retire({&a}, mine.epoch());
  EXPECT_TRUE(a.resident());
  c.SetBudget(1);  // over it now, but `mine` pins a and b
  EXPECT_TRUE(a.resident());
  c.Retire({&a}, mine.epoch());
  EXPECT_FALSE(a.resident());  // only `mine` could hold it
  {
    ColumnCache::ReadTicket newer;
    (void)b.Get<Blob>(load);  // `newer` holds b too
    c.Retire({&b}, mine.epoch());
    EXPECT_TRUE(b.resident());
    c.Retire({&b}, newer.epoch());  // `mine` is older and touched it
    EXPECT_TRUE(b.resident());
    (void)d.Get<Blob>(load);  // touched by `newer` only; `mine` is older, so it may hold it
    c.Retire({&d}, newer.epoch());
    EXPECT_TRUE(d.resident());
  }
  c.Retire({&b}, mine.epoch());  // `newer` is gone: b is mine alone again
  EXPECT_FALSE(b.resident());
  // A retired slot decodes again on its next use.
  EXPECT_EQ(a.Get<Blob>(load).v.size(), 1000u);
  EXPECT_TRUE(a.resident());
}

TEST(ColumnCache, ParsesBudgetSettings) {
  EXPECT_EQ(*ParseMemoryBudget("512MiB", "memory_budget"), uint64_t{512} << 20);
  EXPECT_EQ(*ParseMemoryBudget("2g", "memory_budget"), uint64_t{2} << 30);
  EXPECT_EQ(*ParseMemoryBudget("64 KB", "memory_budget"), uint64_t{64} << 10);
  EXPECT_EQ(*ParseMemoryBudget("1048576", "memory_budget"), uint64_t{1} << 20);
  EXPECT_EQ(*ParseMemoryBudget("unlimited", "memory_budget"), 0u);
  EXPECT_EQ(*ParseMemoryBudget("100%", "memory_budget"), ColumnCache::MachineMemory() / 100 * 100);
  EXPECT_GE(ColumnCache::DefaultBudget(), uint64_t{256} << 20);
  EXPECT_THAT(ParseMemoryBudget("lots", "memory_budget"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("'lots' is not a memory size"), "memory_budget"));
  EXPECT_THAT(ParseMemoryBudget("512QB", "storage.memory_budget"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown unit"), "storage.memory_budget"));
  EXPECT_THAT(ParseMemoryBudget("0%", "memory_budget"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("between 1% and 100%")));
  EXPECT_THAT(ParseMemoryBudget("99999999999999T", "memory_budget"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("too large")));
}

// ---- every query's answer under a tiny budget equals its answer without one ----

const char* const kNames[] = {"signup", "view", "click", "pay", "refund"};

json RandomQueries(SeedRandom& R, const std::string& from, const std::string& to) {
  json qs = json::array();
  auto range = [&](json q) {
    q["date_from"] = from;
    q["date_to"] = to;
    return q;
  };
  auto filter = [&]() -> json {
    switch (R(0, 3)) {
      case 0: return json::array({{{"property", "channel"}, {"op", "eq"}, {"value", "a"}}});
      case 1: return json::array({{{"property", "amount"}, {"op", "gt"}, {"value", 20}}});
      case 2: return json::array({{{"property", "person.plan"}, {"op", "eq"}, {"value", "pro"}}});
      default: return json::array();
    }
  };
  const char* maths[] = {"total", "dau", "sum", "avg", "p90"};
  json t{
      {"kind", "trends"},
      {"series", {{{"event", R(0, 2) ? kNames[R(0, 4)] : "$any"}, {"math", maths[R(0, 4)]}, {"property", "amount"}}}},
      {"filters", filter()},
      {"interval", R(0, 1) ? "day" : "week"}};
  if (R(0, 1)) t["breakdown"] = "channel";
  qs.push_back(range(t));
  json steps = json::array();
  for (int i = 0, n = R(2, 4); i < n; i++) steps.push_back({{"event", kNames[R(0, 4)]}});
  json f{{"kind", "funnel"}, {"steps", steps}, {"window_seconds", 86400 * R(1, 7)}, {"filters", filter()}};
  if (R(0, 1)) f["breakdown"] = "channel";
  qs.push_back(range(f));
  qs.push_back(range({{"kind", "retention"},
                      {"start_event", kNames[R(0, 4)]},
                      {"return_event", R(0, 1) ? "$any" : kNames[R(0, 4)]},
                      {"periods", R(1, 8)},
                      {"first_time", R(0, 1) == 1},
                      {"filters", filter()}}));
  qs.push_back(range({{"kind", "lifecycle"}, {"interval", "day"}, {"filters", filter()}}));
  qs.push_back(range({{"kind", "stickiness"}, {"series", {{{"event", kNames[R(0, 4)]}}}}}));
  // The plain funnel and plain retention passes (Q2 and Q3 of the benchmark), which free
  // blocks as they pass them when over the budget (ScanRetirer).
  json plain_steps = json::array();
  for (int i = 0, n = R(2, 5); i < n; i++) plain_steps.push_back({{"event", kNames[R(0, 4)]}});
  qs.push_back(range({{"kind", "funnel"}, {"steps", plain_steps}, {"window_seconds", 86400 * R(1, 7)}}));
  qs.push_back(range({{"kind", "retention"},
                      {"start_event", kNames[R(0, 4)]},
                      {"return_event", R(0, 1) ? "$any" : kNames[R(0, 4)]},
                      {"period", "day"},
                      {"periods", R(1, 31)}}));
  // Block scans that free each block once read when over the budget (RetireWhenDone).
  qs.push_back(range({{"kind", "channels"},
                      {"acquisition_event", kNames[R(0, 4)]},
                      {"channel_properties", {"channel"}},
                      {"conversion_seconds", 86400 * R(1, 7)}}));
  return qs;
}

json Answer(const json& q, EventStore& store, const TimeZone& tz) {
  auto r = RunQuery(q, store, tz);
  if (!r.ok()) return json{{"error", r.status().ToString()}};
  r->erase("took_ms");
  return *r;
}

class BudgetEquivalence : public ::testing::TestWithParam<int> {};

TEST_P(BudgetEquivalence, TinyBudgetAnswersEqualUnlimited) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 104729 + 7);
  auto tz = TimeZone::Load(seed % 2 ? "Asia/Shanghai" : "America/New_York");
  ASSERT_TRUE(tz.ok());
  const int64_t base = 1741046400000LL;  // 2025-03-04
  ThrowAwayStore store(static_cast<size_t>(R(5, 60)));
  std::vector<Event> events;
  const int persons = R(2, 30), n = R(40, 400);
  for (int i = 0; i < n; i++) {
    const int p = R(1, persons);
    const bool merge = R(0, 14) == 0;
    Event e = StoredEvent("e" + std::to_string(i), (merge || R(0, 2) ? "u" : "a") + std::to_string(p),
                          merge ? "$identify" : kNames[R(0, 4)], base + int64_t{R(0, 20 * 86400)} * 1000,
                          merge ? std::vector<std::string>{"a" + std::to_string(p)} : std::vector<std::string>{});
    if (R(0, 3)) e.props.push_back({"channel", PropValue::Str(std::string(1, static_cast<char>('a' + R(0, 2))))});
    if (R(0, 1)) e.props.push_back({"amount", PropValue::Num(R(1, 50) * 1.5)});
    if (R(0, 9) == 0) e.person_set.push_back({"plan", PropValue::Str(p % 2 ? "pro" : "free")});
    events.push_back(std::move(e));
  }
  BatchPolicy policy;
  policy.restarts = seed % 3 == 0;
  policy.durability = policy.restarts ? Durability::kWal : Durability::kUnlogged;
  AppendInBatches(store, std::move(events), policy, R);
  const bool segments = R(0, 3) != 0;
  if (segments) {
    ASSERT_TRUE(store->Flush().ok());  // mostly segments (cached columns)
  }
  if (R(0, 3) == 0) store.Reopen();  // segments opened afresh (ev decoded at open)
  const std::string from = DayString(static_cast<int>(base / 86'400'000) + R(-1, 5));
  const std::string to = DayString(static_cast<int>(base / 86'400'000) + R(6, 22));
  json queries = RandomQueries(R, from, to);

  std::vector<json> want;
  {
    BudgetScope unlimited(0);
    for (const auto& q : queries) {
      want.push_back(Answer(q, *store, *tz));
      ASSERT_FALSE(want.back().contains("error")) << q.dump() << ": " << want.back().dump();
    }
  }
  BudgetScope tiny(4096);
  ColumnCache::Global().EvictUnpinned();
  const uint64_t misses0 = ColumnCache::Global().Stats().misses;
  // Two threads run every query twice, in opposite orders, sharing the store's blocks.
  std::vector<std::vector<json>> got(2);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; t++)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < queries.size(); i++) {
          const size_t k = t == 0 ? i : queries.size() - 1 - i;
          got[static_cast<size_t>(t)].push_back(Answer(queries[k], *store, *tz));
        }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 2; t++)
    for (size_t j = 0; j < got[static_cast<size_t>(t)].size(); j++) {
      const size_t i = j % queries.size();
      const size_t k = t == 0 ? i : queries.size() - 1 - i;
      ASSERT_EQ(got[static_cast<size_t>(t)][j], want[k]) << "seed " << seed << " query " << queries[k].dump();
    }
  // The columns were decoded again (after the eviction above, and as the budget freed them).
  if (segments) {
    EXPECT_GT(ColumnCache::Global().Stats().misses, misses0);
  }
  // Between queries nothing is pinned: the cache is back within the budget.
  EXPECT_LE(ColumnCache::Global().Stats().resident_bytes, 4096u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, BudgetEquivalence, ::testing::Range(0, 200));

// The plain funnel and retention passes over the budget (ScanRetirer): thousands of persons,
// so the threads walk separate person ranges day by day, wait for each other and free the
// days they passed; days of one segment, of several (merged order) and of memtable rows.
class TightScans : public ::testing::TestWithParam<int> {};

TEST_P(TightScans, AnswerAsWithoutBudget) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 7919 + 3);
  auto tz = TimeZone::Load(seed % 2 ? "Asia/Shanghai" : "UTC");
  ASSERT_TRUE(tz.ok());
  const int64_t base = 1741046400000LL;  // 2025-03-04
  ThrowAwayStore store(4096);
  const int persons = R(1100, 3000), days = R(5, 20);
  auto events_for = [&](int n, int first_day, int last_day, const std::string& tag) {
    std::vector<Event> ev;
    for (int i = 0; i < n; i++) {
      // Early persons are active from the first day, later ones join later: the person
      // ranges of the threads get uneven shares of each day.
      const int p = R(1, persons);
      const int join = first_day + (last_day - first_day) * p / persons / 2;
      const int day = R(join, last_day);
      ev.push_back(StoredEvent(tag + std::to_string(i), "u" + std::to_string(p), kNames[R(0, 4)],
                               base + int64_t{day} * 86'400'000 + int64_t{R(0, 86'399)} * 1000, {}));
      if (R(0, 1)) ev.back().props.push_back({"channel", PropValue::Str(std::string(1, 'a' + R(0, 3)))});
      if (R(0, 2) == 0) ev.back().props.push_back({"amount", PropValue::Num(R(1, 90))});
    }
    return ev;
  };
  ASSERT_TRUE(store->Append(events_for(R(4000, 12000), 0, days - 1, "a"), Durability::kUnlogged).ok());
  ASSERT_TRUE(store->Flush().ok());
  if (R(0, 1)) {  // a second segment per day: merged day orders
    ASSERT_TRUE(store->Append(events_for(R(500, 3000), 0, days - 1, "b"), Durability::kUnlogged).ok());
    ASSERT_TRUE(store->Flush().ok());
  }
  if (R(0, 1)) {  // rows still in the memtable
    ASSERT_TRUE(store->Append(events_for(R(100, 1000), days - 3, days - 1, "c"), Durability::kUnlogged).ok());
  }
  const std::string from = DayString(static_cast<int>(base / 86'400'000) + R(0, 2));
  const std::string to = DayString(static_cast<int>(base / 86'400'000) + days - R(0, 2));
  json steps = json::array();
  for (int i = 0, n = R(2, 5); i < n; i++) steps.push_back({{"event", kNames[R(0, 4)]}});
  const json queries = json::array(
      {{{"kind", "funnel"},
        {"steps", steps},
        {"window_seconds", 86400 * R(1, 7)},
        {"date_from", from},
        {"date_to", to}},
       {{"kind", "funnel"},
        {"steps", steps},
        {"order", "strict"},
        {"window_seconds", 86400 * R(1, 3)},
        {"date_from", from},
        {"date_to", to}},
       {{"kind", "retention"},
        {"start_event", kNames[R(0, 4)]},
        {"return_event", R(0, 1) ? "$any" : kNames[R(0, 4)]},
        {"period", "day"},
        {"periods", R(1, 31)},
        {"date_from", from},
        {"date_to", to}},
       {{"kind", "trends"}, {"series", {{{"event", "$any"}, {"math", "dau"}}}}, {"date_from", from}, {"date_to", to}},
       {{"kind", "channels"},
        {"acquisition_event", kNames[R(0, 4)]},
        {"channel_properties", {"channel"}},
        {"date_from", from},
        {"date_to", to}}});
  std::vector<json> want;
  {
    BudgetScope unlimited(0);
    for (const auto& q : queries) want.push_back(Answer(q, *store, *tz));
  }
  BudgetScope tiny(4096);
  ColumnCache::Global().EvictUnpinned();
  const uint64_t evictions0 = ColumnCache::Global().Stats().evictions;
  for (size_t i = 0; i < queries.size(); i++) {
    ASSERT_FALSE(want[i].contains("error")) << want[i].dump();
    EXPECT_EQ(Answer(queries[i], *store, *tz), want[i]) << "seed " << seed << " query " << queries[i].dump();
  }
  EXPECT_GT(ColumnCache::Global().Stats().evictions, evictions0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, TightScans, ::testing::Range(0, 24));

}  // namespace
}  // namespace ns
