// PersonOrderScan (query/person_scan.h) against the plain definition of its order, on 240
// random stores: for every UTC day part, the rows of the range in (person, ts) order and
// nothing else. The scan visits single sorted blocks in place, merges a day's sorted runs and
// keeps the sorted order of other blocks (memtable blocks, segments whose persons merged) in
// a cache per block and merge version; queries interleaved with appends and merges make sure
// a cached order is never used after a merge changed it.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
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

class PersonOrderScanTest : public ::testing::TestWithParam<int> {};

TEST_P(PersonOrderScanTest, PartsListTheRangeInPersonTimeOrder) {
  const int seed = GetParam();
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 2654435761u + 5);
  auto R = [&](int lo, int hi) { return static_cast<int>(lo + rng() % static_cast<uint64_t>(hi - lo + 1)); };
  ThrowAwayStore store(static_cast<size_t>(R(2, 60)));
  ASSERT_TRUE(store.ok());
  const int64_t base = 1741046400000LL;  // 2025-03-04T00:00Z
  const int persons = R(2, 40);
  int next = 0;
  for (int round = 0; round < 4; round++) {
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
    for (int q = 0; q < 2; q++) {  // twice: the second scan takes cached orders
      auto snap = store->Snapshot();
      const int64_t from = base + static_cast<int64_t>(R(-1, 3)) * 86'400'000 + R(0, 1) * 3'600'000;
      const int64_t to = from + static_cast<int64_t>(R(0, 4)) * 86'400'000 + R(0, 1) * 7'200'000;
      PersonOrderScan scan(*snap, from, to);
      std::vector<RowKey> got;
      for (const auto& part : scan.parts())
        PersonOrderScan::ForEachRow(scan.blocks(), part, [&](uint32_t b, uint32_t r) {
          const Block* blk = scan.blocks()[b];
          const int64_t t = blk->ts()[r];
          if (t >= from && t < to) got.emplace_back(UtcDay(t), snap->persons->PersonOf(blk->did()[r]), t, blk, r);
        });
      // In order by (day, person, ts) as listed...
      for (size_t i = 1; i < got.size(); i++) {
        auto key = [](const RowKey& k) { return std::make_tuple(std::get<0>(k), std::get<1>(k), std::get<2>(k)); };
        ASSERT_LE(key(got[i - 1]), key(got[i])) << "seed " << seed << " round " << round << " position " << i;
      }
      // ... and every row of the range exactly once.
      std::sort(got.begin(), got.end());
      ASSERT_EQ(got, NaiveOrder(*snap, from, to)) << "seed " << seed << " round " << round;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, PersonOrderScanTest, ::testing::Range(0, 240));

}  // namespace
}  // namespace ns
