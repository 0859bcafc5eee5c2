// PersonOrderScan (query/person_scan.h) against the plain definition of its order, on 240
// random stores: for every UTC day part, the rows of the range in (person, ts) order and
// nothing else. The scan visits single sorted blocks in place, merges a day's sorted runs,
// keeps the sorted order of other blocks (memtable blocks, segments whose persons merged) in
// a cache per block and merge version, and keeps each multi-block day's merged order per store
// and day in two levels (merged at divisors from 1 to 100,000), merging in only the blocks the
// day gained; queries interleaved with appends, flushes, compactions and merges make sure a
// kept order is never used after a merge changed it or with a block that is gone, and the
// plain path (keep_day_orders off) is checked too.
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "core/time_zone.h"
#include "query/person_scan.h"
#include "reference_test_util.h"
#include "storage/event_store.h"

namespace ns {
namespace {

// (person, ts, block pointer, row) of every row of `snap` with ts in [from, to), sorted: what
// the scan's parts, concatenated in day order, must list (ties in any order).
using RowKey = std::tuple<int32_t, uint32_t, int64_t, const Block*, uint32_t>;

std::vector<RowKey> NaiveOrder(const StoreSnapshot& snap, int64_t from, int64_t to) {
  std::vector<RowKey> rows;
  for (const auto& bp : snap.blocks)
    for (uint32_t i = 0; i < bp->size(); i++) {
      const int64_t t = bp->ts()[i];
      if (t >= from && t < to) rows.emplace_back(UtcDay(t), snap.persons->PersonOf(bp->did()[i]), t, bp.get(), i);
    }
  std::sort(rows.begin(), rows.end());
  return rows;
}

// Checks the scan of [from, to) on snap against NaiveOrder: rows listed in (day, person, ts)
// order, every row of the range exactly once.
void ExpectScanInOrder(const StoreSnapshot& snap, int64_t from, int64_t to, const std::string& where) {
  PersonOrderScan scan(snap, from, to);
  std::vector<RowKey> got;
  for (const auto& part : scan.parts())
    PersonOrderScan::ForEachRow(scan.blocks(), part, [&](uint32_t b, uint32_t r) {
      const Block* blk = scan.blocks()[b];
      const int64_t t = blk->ts()[r];
      if (t >= from && t < to) got.emplace_back(UtcDay(t), snap.persons->PersonOf(blk->did()[r]), t, blk, r);
    });
  // In order by (day, person, ts) as listed...
  for (size_t i = 1; i < got.size(); i++) {
    auto key = [](const RowKey& k) { return std::make_tuple(std::get<0>(k), std::get<1>(k), std::get<2>(k)); };
    ASSERT_LE(key(got[i - 1]), key(got[i])) << where << " position " << i;
  }
  // ... and every row of the range exactly once.
  std::sort(got.begin(), got.end());
  ASSERT_EQ(got, NaiveOrder(snap, from, to)) << where;
}

struct KeepDayOrders {
  explicit KeepDayOrders(bool on) { SequenceScanTuning().keep_day_orders = on; }
  ~KeepDayOrders() { SequenceScanTuning().keep_day_orders = SequenceScanOptions().keep_day_orders; }
};

// Kept day orders merge their recent level into the base one past 1/divisor of it: divisor 1
// lets the recent level grow as large as the base, a large one merges it at almost every
// gained block, so both levels (and their filtering when blocks go) hold rows in these tests.
struct RecentLevelDivisor {
  explicit RecentLevelDivisor(uint32_t divisor) { SequenceScanTuning().recent_level_divisor = divisor; }
  ~RecentLevelDivisor() { SequenceScanTuning().recent_level_divisor = SequenceScanOptions().recent_level_divisor; }
};

class PersonOrderScanTest : public ::testing::TestWithParam<int> {};

// Interleaves appends (sealed and open memtable rows, sealed by the ingest or by a snapshot),
// flushes, compactions and merges with scans: fresh snapshots (the later ones take the kept
// orders), an older snapshot scanned after a newer one (its days lack blocks the kept order
// has), and the plain path (every day merged per scan).
TEST_P(PersonOrderScanTest, PartsListTheRangeInPersonTimeOrder) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 2654435761u + 5);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  // Snapshots seal the open rows from 1..30 of them on (or never, the default 1,024 here).
  const size_t snapshot_seal = R(0, 2) ? static_cast<size_t>(R(1, 30)) : StoreOptions().snapshot_seal_rows;
  const uint32_t divisors[] = {1, 2, 8, 64, 100000};
  RecentLevelDivisor divisor(divisors[R(0, 4)]);
  ThrowAwayStore store(static_cast<size_t>(R(2, 60)), snapshot_seal);
  ASSERT_TRUE(store.ok());
  const int64_t base = 1741046400000LL;  // 2025-03-04T00:00Z
  const int persons = R(2, 40);
  int next = 0;
  std::shared_ptr<const StoreSnapshot> older;
  for (int round = 0; round < 6; round++) {
    std::vector<Event> events;
    for (int i = R(10, 150); i > 0; i--) {
      const int p = R(1, persons);
      std::vector<std::string> merge;
      std::string did = (R(0, 2) == 0 ? "a" : "u") + std::to_string(p);
      if (R(0, 11) == 0) {  // a login: the anonymous id joins the user (often after a scan)
        did = "u" + std::to_string(p);
        merge.push_back("a" + std::to_string(p));
      }
      const int64_t ts = base + static_cast<int64_t>(R(0, 5 * 24 * 12)) * 300'000;  // 5 days, 5-minute grid
      events.push_back(StoredEvent("e" + std::to_string(seed) + "-" + std::to_string(next++), did,
                                   merge.empty() ? "view" : "$identify", ts, merge));
    }
    std::shuffle(events.begin(), events.end(), rng);
    ASSERT_NO_FATAL_FAILURE(AppendInBatches(store, std::move(events), BatchPolicy{}, R));
    const std::string where = "seed " + std::to_string(seed) + " round " + std::to_string(round);
    for (int q = 0; q < 3; q++) {  // the later scans take kept orders
      auto snap = store->Snapshot();
      const int64_t from = base + static_cast<int64_t>(R(-1, 3)) * 86'400'000 + R(0, 1) * 3'600'000;
      const int64_t to = from + static_cast<int64_t>(R(0, 4)) * 86'400'000 + R(0, 1) * 7'200'000;
      ASSERT_NO_FATAL_FAILURE(ExpectScanInOrder(*snap, from, to, where + " scan " + std::to_string(q)));
      if (q == 1) {
        KeepDayOrders plain(false);
        ASSERT_NO_FATAL_FAILURE(ExpectScanInOrder(*snap, from, to, where + " plain"));
      }
    }
    if (older) {
      ASSERT_NO_FATAL_FAILURE(ExpectScanInOrder(*older, base - 86'400'000, base + 6 * 86'400'000, where + " older"));
    }
    if (R(0, 1)) older = store->Snapshot();
    if (R(0, 2) == 0) {  // a few rows more: the older snapshot lacks them, and its open rows
      std::vector<Event> few;
      for (int i = R(1, 5); i > 0; i--)
        few.push_back(StoredEvent("f" + std::to_string(seed) + "-" + std::to_string(next++),
                                  "u" + std::to_string(R(1, persons)), "view",
                                  base + static_cast<int64_t>(R(0, 5 * 24 * 12)) * 300'000, {}));
      ASSERT_TRUE(store->Append(std::move(few), Durability::kUnlogged).ok());
    }
  }
}

// Two stores with rows of the same days, scanned in turn: each keeps its own day orders.
TEST(PersonOrderScanTwoStores, KeptDayOrdersAreTheirStores) {
  std::mt19937_64 rng(7);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  ThrowAwayStore a(8), b(13);
  ASSERT_TRUE(a.ok() && b.ok());
  const int64_t base = 1741046400000LL;
  int next = 0;
  for (int round = 0; round < 20; round++) {
    for (ThrowAwayStore* s : {&a, &b}) {
      std::vector<Event> events;
      for (int i = R(5, 60); i > 0; i--)
        events.push_back(StoredEvent("t" + std::to_string(next++), "u" + std::to_string(R(1, 30)), "view",
                                     base + static_cast<int64_t>(R(0, 2 * 24 * 12)) * 300'000, {}));
      ASSERT_NO_FATAL_FAILURE(AppendInBatches(*s, std::move(events), BatchPolicy{}, R));
    }
    for (ThrowAwayStore* s : {&a, &b, &a})
      ASSERT_NO_FATAL_FAILURE(
          ExpectScanInOrder(*(*s)->Snapshot(), base, base + 2 * 86'400'000, "round " + std::to_string(round)));
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PersonOrderScanTest, ::testing::Range(0, 240));

// A day of over 65,536 rows in several memtable blocks: its row lists come from the pool of
// finished scans' lists (person_scan.cc, RowBufferPool), which a later, larger day must not
// see stale rows of. Scans of the day after each append, two alive at a time.
TEST(PersonOrderScanLargeDay, ReusedRowListsListTheDayExactly) {
  std::mt19937_64 rng(99);
  ThrowAwayStore store(/*seal_rows=*/9000);
  ASSERT_TRUE(store.ok());
  const int64_t base = 1741046400000LL;  // 2025-03-04T00:00Z
  int next = 0;
  for (int round = 0; round < 4; round++) {
    std::vector<Event> events;
    for (int i = 0; i < 30000; i++)
      events.push_back(StoredEvent("big-" + std::to_string(next++), "u" + std::to_string(rng() % 5000), "view",
                                   base + static_cast<int64_t>(rng() % 86'400'000), {}));
    ASSERT_TRUE(store->Append(std::move(events), Durability::kUnlogged).ok());
    const std::string where = "round " + std::to_string(round);
    auto snap = store->Snapshot();
    PersonOrderScan alive(*snap, base, base + 86'400'000);  // its lists go back when it ends
    if (round >= 2) {                                       // a merged day large enough for the pool
      ASSERT_EQ(alive.parts().size(), 1u) << where;
      ASSERT_GE(alive.parts()[0].rows.size(), 65536u) << where;
    }
    ASSERT_NO_FATAL_FAILURE(ExpectScanInOrder(*snap, base, base + 86'400'000, where + " scan 1"));
    ASSERT_NO_FATAL_FAILURE(ExpectScanInOrder(*snap, base, base + 86'400'000, where + " scan 2"));
  }
}

// ParallelPersonChunks: every person in exactly one range, each slot's ranges increasing,
// one range per slot without chunks, and no slot beyond `slots`.
TEST(ParallelPersonChunks, CoverEveryPersonOnceInIncreasingRangesPerSlot) {
  for (size_t persons : {0, 5, 1023, 1024, 1500, 40000})
    for (int slots : {1, 2, 3, 8})
      for (int chunks : {1, 2, 4, 7}) {
        std::mutex mu;
        std::vector<int> covered(persons, 0);
        std::vector<std::vector<std::pair<uint32_t, uint32_t>>> by_slot(8);
        ParallelPersonChunks(persons, slots, chunks, [&](uint32_t lo, uint32_t hi, int slot) {
          std::lock_guard lk(mu);
          ASSERT_GE(slot, 0);
          ASSERT_LT(slot, slots);
          by_slot[static_cast<size_t>(slot)].push_back({lo, hi});
          for (uint32_t p = lo; p < hi; p++) covered[p]++;
        });
        const std::string where = std::to_string(persons) + " persons, " + std::to_string(slots) + " slots, " +
                                  std::to_string(chunks) + " chunks";
        for (size_t p = 0; p < persons; p++) ASSERT_EQ(covered[p], 1) << where << " person " << p;
        size_t calls = 0;
        for (const auto& ranges : by_slot) {
          calls += ranges.size();
          for (size_t i = 1; i < ranges.size(); i++) ASSERT_LE(ranges[i - 1].second, ranges[i].first) << where;
          if (chunks == 1) {
            ASSERT_LE(ranges.size(), 1u) << where;
          }
        }
        const size_t want = PersonRangeCount(persons, slots) == 1 ? 1 : static_cast<size_t>(slots * chunks);
        ASSERT_EQ(calls, want) << where;
      }
}

}  // namespace
}  // namespace ns
