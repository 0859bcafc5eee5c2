// The columnar person table (storage/person_table.h) against a naive model: every person a
// std::map of properties, merges by re-labelling. Randomised over many seeds; snapshots
// taken earlier must not change when later writes copy-on-write their chunks.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "storage/event_store.h"
#include "storage/identity.h"
#include "test_util.h"

namespace ns {
namespace {

struct NaiveIdentity {
  std::vector<uint32_t> person;                                  // did -> person (smallest did)
  std::map<uint32_t, std::map<std::string, std::string>> props;  // person -> key -> value

  uint32_t Root(uint32_t d) const { return person[d]; }
  void NewDid() { person.push_back(static_cast<uint32_t>(person.size())); }
  void Merge(uint32_t a, uint32_t b) {
    uint32_t ra = Root(a), rb = Root(b);
    if (ra == rb) return;
    if (rb < ra) std::swap(ra, rb);
    for (auto& p : person)
      if (p == rb) p = ra;
    auto moved = props[rb];
    props.erase(rb);
    for (auto& [k, v] : moved) props[ra].try_emplace(k, v);
  }
  void Set(uint32_t d, const std::string& k, const std::string& v, bool once) {
    auto& m = props[Root(d)];
    if (once)
      m.try_emplace(k, v);
    else
      m[k] = v;
  }
};

void ExpectSame(const PersonTable& t, const NaiveIdentity& n, const std::vector<std::string>& keys, int seed) {
  ASSERT_EQ(t.size(), n.person.size()) << "seed " << seed;
  for (uint32_t d = 0; d < n.person.size(); d++) {
    ASSERT_EQ(t.PersonOf(d), n.Root(d)) << "seed " << seed << " did " << d;
    ASSERT_EQ(t.IsPerson(d), n.Root(d) == d);
    for (const auto& k : keys) {
      const PropValue* v = t.IsPerson(d) ? t.Prop(d, k) : nullptr;
      auto it = n.props.find(d);
      const std::string* want = nullptr;
      if (n.Root(d) == d && it != n.props.end() && it->second.count(k)) want = &it->second.at(k);
      ASSERT_EQ(v != nullptr, want != nullptr) << "seed " << seed << " did " << d << " key " << k;
      if (v) {
        ASSERT_EQ(v->str, *want) << "seed " << seed << " did " << d << " key " << k;
      }
    }
  }
}

TEST(PersonTable, MatchesANaiveModelAndSnapshotsNeverChange) {
  const std::vector<std::string> keys = {"city", "plan", "channel"};
  for (int seed = 1; seed <= 60; seed++) {
    testing::TempDir dir;
    auto m = IdentityMap::Open(Env::Default(), dir.path());
    ASSERT_TRUE(m.ok());
    IdentityMap& ids = **m;
    NaiveIdentity naive;
    std::mt19937 rng(seed);
    std::vector<std::pair<std::shared_ptr<const PersonTable>, NaiveIdentity>> kept;
    const int ops = 300 + seed * 20;
    for (int i = 0; i < ops; i++) {
      int what = rng() % 10;
      if (naive.person.empty() || what < 3) {
        // Ids past a chunk edge too (PersonColumn::kChunk = 256).
        ids.Resolve("u" + std::to_string(naive.person.size()));
        naive.NewDid();
      } else if (what < 5) {
        uint32_t a = rng() % naive.person.size(), b = rng() % naive.person.size();
        ids.Merge(a, b, /*allow_identified=*/true);
        naive.Merge(a, b);
      } else if (what < 9) {
        uint32_t d = rng() % naive.person.size();
        std::string k = keys[rng() % keys.size()], v = "v" + std::to_string(rng() % 7);
        bool once = rng() % 3 == 0;
        ids.SetProps(d, {{k, PropValue::Str(v)}}, once);
        naive.Set(d, k, v, once);
      } else {
        kept.emplace_back(ids.Snapshot(), naive);
      }
    }
    ExpectSame(*ids.Snapshot(), naive, keys, seed);
    for (auto& [snap, then] : kept) ExpectSame(*snap, then, keys, seed);  // unchanged by later writes
    ASSERT_TRUE(ids.Commit().ok());
    auto reopened = IdentityMap::Open(Env::Default(), dir.path());
    ASSERT_TRUE(reopened.ok());
    ExpectSame(*(*reopened)->Snapshot(), naive, keys, seed);  // the log replays to the same table
  }
}

TEST(PersonTable, NewIdsShareTheMappingAndStoredPersonSetsSurviveMerges) {
  testing::TempDir dir;
  auto m = IdentityMap::Open(Env::Default(), dir.path());
  ASSERT_TRUE(m.ok());
  IdentityMap& ids = **m;
  for (int i = 0; i < 10; i++) ids.Resolve("u" + std::to_string(i));
  auto s1 = ids.Snapshot();
  ids.Resolve("u10");
  auto s2 = ids.Snapshot();
  EXPECT_EQ(s1->person_of_ids.get(), s2->person_of_ids.get()) << "a new id does not rebuild the mapping";
  EXPECT_EQ(s2->size(), 11u);
  EXPECT_EQ(s2->PersonOf(10), 10u);
  std::vector<uint32_t> cohort = {3, 7, 9};  // stored as of s2
  ids.Merge(7, 3, true);
  ids.Merge(9, 2, true);
  auto s3 = ids.Snapshot();
  EXPECT_NE(s2->merge_version, s3->merge_version);
  s3->CanonicalPersons(&cohort);
  EXPECT_EQ(cohort, (std::vector<uint32_t>{2, 3}));
}

TEST(EventStore, AppendListenersSeeDurableEventsInCommitOrder) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  std::vector<std::pair<uint32_t, int64_t>> seen;
  uint64_t id = (*s)->AddAppendListener([&](const std::vector<AppendedEvent>& events) {
    for (const auto& e : events) seen.push_back({e.person, e.ts_ms});
  });
  Event a;
  a.distinct_id = "anon";
  a.event = "view";
  a.ts_ms = 1'700'000'000'000;
  ASSERT_TRUE((*s)->Append({a}).ok());
  Event b = a;
  b.distinct_id = "user";
  b.ts_ms++;
  b.merge_with.push_back("anon");
  ASSERT_TRUE((*s)->Append({b}).ok());
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].second, a.ts_ms);
  EXPECT_EQ(seen[1].first, 0u) << "the person after the batch's merge (anon's did 0 is the smaller)";
  (*s)->RemoveAppendListener(id);
  a.ts_ms += 10;
  ASSERT_TRUE((*s)->Append({a}).ok());
  EXPECT_EQ(seen.size(), 2u);
}

// PersonColumn's chunks keep each distinct value once (a code per person): against a
// std::map on random sets and erasures, few and many distinct values (full chunks compact),
// numbers and strings, with copies taken along the way that must not change.
TEST(PersonTable, ColumnMatchesAMapOnRandomSetsAndErasures) {
  for (int seed = 1; seed <= 250; seed++) {
    std::mt19937 rng(seed);
    const uint32_t persons = 1 + rng() % 1200;
    const uint32_t distinct = seed % 3 == 0 ? 3 : seed % 3 == 1 ? 40 : 5000;  // 5000: chunks fill up
    PersonColumn col;
    std::map<uint32_t, PropValue> want;
    std::vector<std::pair<PersonColumn, std::map<uint32_t, PropValue>>> copies;
    auto check = [&](const PersonColumn& c, const std::map<uint32_t, PropValue>& w) {
      for (uint32_t p = 0; p < persons + 300; p++) {
        const PropValue* v = c.Get(p);
        auto it = w.find(p);
        ASSERT_EQ(v != nullptr, it != w.end()) << "seed " << seed << " person " << p;
        if (v) {
          ASSERT_EQ(*v, it->second) << "seed " << seed << " person " << p;
        }
      }
      std::map<uint32_t, PropValue> seen;
      c.ForEach([&](uint32_t p, const PropValue& v) { seen.emplace(p, v); });
      ASSERT_EQ(seen, w) << "seed " << seed;
    };
    const int ops = 100 + static_cast<int>(rng() % 4000);
    for (int op = 0; op < ops; op++) {
      const uint32_t p = rng() % persons;
      if (rng() % 5 == 0) {
        col.Erase(p);
        want.erase(p);
      } else {
        const uint32_t x = rng() % distinct;
        const PropValue v = x % 4 == 0 ? PropValue::Num(x * 0.5) : PropValue::Str("v" + std::to_string(x));
        col.Set(p, v);
        want[p] = v;
      }
      if (rng() % 700 == 0) copies.emplace_back(col, want);  // a snapshot's copy: shares chunks
    }
    check(col, want);
    for (const auto& [c, w] : copies) check(c, w);
  }
}

}  // namespace
}  // namespace ns
