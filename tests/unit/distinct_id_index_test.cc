// DistinctIdIndex (storage/distinct_id_index.h) against a naive model: a vector of strings
// and a std::unordered_map, on random sequences of adds (new ids, repeats of live and
// cleared ids, empty and long ids) and clears, over 300 seeds; plus the identity map's
// replay of merges and erasures through it. Prefetch is called between the operations.
#include "storage/distinct_id_index.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace ns {
namespace {

struct NaiveIndex {
  std::vector<std::string> ids;
  std::vector<bool> cleared;
  std::unordered_map<std::string, uint32_t> index;
  void Add(const std::string& id) {
    ids.push_back(id);
    cleared.push_back(false);
    index.emplace(id, static_cast<uint32_t>(ids.size() - 1));
  }
  void Clear(uint32_t d) {
    if (cleared[d]) return;
    if (auto it = index.find(ids[d]); it != index.end() && it->second == d) index.erase(it);
    ids[d].clear();
    cleared[d] = true;
  }
  int64_t Find(const std::string& id) const {
    auto it = index.find(id);
    return it == index.end() ? -1 : int64_t{it->second};
  }
};

std::string RandomId(std::mt19937_64& rng, int universe) {
  const int kind = static_cast<int>(rng() % 20);
  if (kind == 0) return "";
  if (kind == 1) return std::string(1, '\0') + std::to_string(rng() % 50);  // a rewrite's placeholder
  std::string s = "u" + std::to_string(rng() % universe);
  if (kind == 2) s += std::string(40 + rng() % 40, 'x');  // longer than any small-string buffer
  return s;
}

void CheckSame(const DistinctIdIndex& got, const NaiveIndex& want, std::mt19937_64& rng, int universe) {
  ASSERT_EQ(got.size(), want.ids.size());
  for (uint32_t d = 0; d < got.size(); d++) ASSERT_EQ(got.Id(d), want.ids[d]) << "did " << d;
  for (const auto& [id, d] : want.index) ASSERT_EQ(got.Find(id), int64_t{d}) << id;
  for (int i = 0; i < 50; i++) {
    const std::string id = RandomId(rng, universe * 2);
    ASSERT_EQ(got.Find(id), want.Find(id)) << id;
  }
}

TEST(DistinctIdIndexTest, MatchesUnorderedMapOnRandomOperations) {
  for (uint64_t seed = 1; seed <= 300; seed++) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed);
    // Small universes make repeats, clears of re-added ids and long probe runs common.
    const int universe = seed % 3 == 0 ? 20 : seed % 3 == 1 ? 500 : 5000;
    const int ops = 200 + static_cast<int>(rng() % 3000);
    DistinctIdIndex got;
    NaiveIndex want;
    if (seed % 5 == 0) got.Reserve(rng() % 4000);
    for (int op = 0; op < ops; op++) {
      const int what = static_cast<int>(rng() % 10);
      if (what < 6 || want.ids.empty()) {
        // As IdentityMap::Resolve: a new did only for an id not indexed; the log's replay of
        // a rewrite may add an id again (Add keeps the older did in the index then).
        const std::string id = RandomId(rng, universe);
        if (what == 0 || got.Find(id) < 0) {
          got.Add(id);
          want.Add(id);
        }
      } else if (what < 8) {
        const uint32_t d = static_cast<uint32_t>(rng() % want.ids.size());
        got.Clear(d);
        want.Clear(d);
      } else {
        const std::string id = RandomId(rng, universe), other = RandomId(rng, universe);
        // Prefetch (the write path's, ahead of a round's lookups) changes nothing, whether
        // the ids are indexed, cleared or unknown (and the sanitizer builds check it reads
        // nothing out of bounds).
        const std::string_view soon[] = {id, other, ""};
        got.Prefetch(soon);
        ASSERT_EQ(got.Find(id), want.Find(id)) << id;
      }
      if (op % 500 == 0) CheckSame(got, want, rng, universe);
    }
    CheckSame(got, want, rng, universe);
    DistinctIdIndex copy;
    for (uint32_t d = 0; d < got.size(); d++) copy.Add(std::string(got.Id(d)));
    for (uint32_t d = 0; d < got.size(); d++)
      if (want.cleared[d]) copy.Clear(d);
    EXPECT_TRUE(copy == got);
    got.Reset();
    const std::string_view soon[] = {"u1"};
    got.Prefetch(soon);
    EXPECT_EQ(got.size(), 0u);
    EXPECT_EQ(got.Find("u1"), -1);
  }
}

TEST(DistinctIdIndexTest, ClearZeroesTheStringInMemory) {
  DistinctIdIndex ix;
  ix.Add("alice@example.com");
  ix.Add("bob");
  const char* p = ix.Id(0).data();
  ix.Clear(0);
  EXPECT_EQ(ix.Id(0), "");
  EXPECT_EQ(ix.Find("alice@example.com"), -1);
  EXPECT_EQ(std::string(p, 17), std::string(17, '\0'));
  EXPECT_EQ(ix.Find("bob"), 1);
  ix.Add("alice@example.com");  // seen again: a new did
  EXPECT_EQ(ix.Find("alice@example.com"), 2);
  ix.Clear(0);  // twice: no-op
  EXPECT_EQ(ix.Find("alice@example.com"), 2);
}

TEST(DistinctIdIndexTest, GrowsPastAMillionIds) {
  DistinctIdIndex ix;
  for (uint32_t i = 0; i < 1'100'000; i++) ix.Add(std::to_string(i));
  for (uint32_t i = 0; i < 1'100'000; i += 997) ASSERT_EQ(ix.Find(std::to_string(i)), int64_t{i});
  EXPECT_EQ(ix.Find("x"), -1);
  // ~6.5 B of string, 8 B of offset (16 with the vector's doubling) and 11-21 B of slots per id.
  EXPECT_LT(ix.MemoryBytes(), size_t{48} << 20);
}

}  // namespace
}  // namespace ns
