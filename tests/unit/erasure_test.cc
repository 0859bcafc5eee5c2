// Erasure of a person (EventStore::ErasePerson, docs/people.md "Erasure"): hidden at once
// from snapshots and lookups, durable across a crash (WAL replay), physically gone from the
// segment files after flush and compaction (`northstar check` agrees), and a distinct id seen
// again afterwards starts a new person.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "core/env.h"
#include "core/file_util.h"
#include "storage/event_store.h"
#include "storage/identity.h"
#include "storage/person_table.h"
#include "storage/segment.h"
#include "test_util.h"

namespace ns {
namespace {

constexpr int64_t kT0 = 1'740'000'000'000;  // 2025-02-19
constexpr int64_t kDay = 86'400'000;

Event Ev(const std::string& id, const std::string& name, int64_t ts) {
  Event e;
  e.distinct_id = id;
  e.event = name;
  e.ts_ms = ts;
  return e;
}

// anon-1 + user-1 (one person after a login merge, with a property), and u2.
void AddPeople(EventStore& s) {
  ASSERT_TRUE(s.Append({Ev("anon-1", "page_view", kT0), Ev("u2", "page_view", kT0 + 5)}).ok());
  Event login = Ev("user-1", "login", kT0 + 10);
  login.merge_with.push_back("anon-1");
  login.person_set.push_back({"email", PropValue::Str("alice@example.com")});
  ASSERT_TRUE(s.Append({login, Ev("u2", "pay", kT0 + 20), Ev("user-1", "pay", kT0 + kDay)}).ok());
}

// Rows per did in a snapshot.
std::map<uint32_t, int> RowsByDid(EventStore& s) {
  std::map<uint32_t, int> out;
  auto snap = s.Snapshot();
  for (const auto& b : snap->blocks)
    for (uint32_t d : b->did()) out[d]++;
  return out;
}

uint64_t TotalRows(EventStore& s) {
  uint64_t n = 0;
  for (const auto& [d, rows] : RowsByDid(s)) n += rows;
  return n;
}

// Every did stored in the project's segment files.
std::set<uint32_t> SegmentDids(const std::string& dir) {
  std::set<uint32_t> out;
  EventDict dict;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/segments")) {
    if (e.path().extension() != ".nseg") continue;
    auto info = OpenSegment(Env::Default(), e.path().string(), dict);
    EXPECT_TRUE(info.ok()) << info.status().ToString();
    if (!info.ok()) continue;
    for (uint32_t d : info->block->did()) out.insert(d);
  }
  return out;
}

StoreOptions Opts() {
  StoreOptions so;
  so.background = false;
  return so;
}

TEST(Erasure, HidesThePersonOfAnyIdFromSnapshotsAndLookups) {
  testing::TempDir dir;
  auto s = EventStore::Open(dir.path(), Opts());
  ASSERT_TRUE(s.ok());
  AddPeople(**s);
  ASSERT_TRUE((*s)->Flush().ok());  // some rows in segments, some in the memtable
  ASSERT_TRUE((*s)->Append({Ev("anon-1", "page_view", kT0 + 30)}).ok());
  const int64_t anon = (*s)->FindDistinctId("anon-1"), user = (*s)->FindDistinctId("user-1");
  const int64_t u2 = (*s)->FindDistinctId("u2");
  ASSERT_GE(anon, 0);
  // Erased through the id the merge joined, not the first one.
  auto r = (*s)->ErasePerson(static_cast<uint32_t>(user));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dids.size(), 2u);
  EXPECT_EQ(r->events, 4u);
  EXPECT_EQ(r->tombstone.size(), 16u);
  EXPECT_EQ((*s)->FindDistinctId("anon-1"), -1);
  EXPECT_EQ((*s)->FindDistinctId("user-1"), -1);
  EXPECT_EQ((*s)->DistinctId(static_cast<uint32_t>(anon)), "");
  auto rows = RowsByDid(**s);
  EXPECT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[static_cast<uint32_t>(u2)], 2);
  auto snap = (*s)->Snapshot();
  EXPECT_FALSE(snap->persons->IsPerson(static_cast<uint32_t>(anon)));
  EXPECT_TRUE(snap->persons->Erased(static_cast<uint32_t>(user)));
  EXPECT_EQ(snap->persons->Prop(static_cast<uint32_t>(anon), "email"), nullptr);
  EXPECT_EQ((*s)->Stats().persons, 1u);
  // Twice is NotFound; the filtered blocks are shared between snapshots of one state.
  EXPECT_EQ((*s)->ErasePerson(static_cast<uint32_t>(anon)).status().code(), StatusCode::kNotFound);
  EXPECT_EQ((*s)->Snapshot()->blocks, (*s)->Snapshot()->blocks);
}

TEST(Erasure, SurvivesACrashAndTheWalReplay) {
  testing::TempDir dir, copy;
  uint32_t anon = 0, fresh = 0;
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok());
    AddPeople(**s);  // WAL only
    anon = static_cast<uint32_t>((*s)->FindDistinctId("anon-1"));
    ASSERT_TRUE((*s)->ErasePerson(anon).ok());
    // Seen again after the erasure: a new person, whose event must survive the replay.
    ASSERT_TRUE((*s)->Append({Ev("anon-1", "page_view", kT0 + 40)}).ok());
    fresh = static_cast<uint32_t>((*s)->FindDistinctId("anon-1"));
    // kill -9: the directory as it is now, before any flush.
    std::filesystem::copy(dir.path(), copy.path(),
                          std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  }
  std::filesystem::remove(copy.path() + "/LOCK");
  auto s = EventStore::Open(copy.path(), Opts());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ((*s)->FindDistinctId("user-1"), -1);
  EXPECT_EQ((*s)->FindDistinctId("anon-1"), fresh);
  EXPECT_NE(fresh, anon);
  auto rows = RowsByDid(**s);
  EXPECT_EQ(rows.count(anon), 0u);
  EXPECT_EQ(rows[fresh], 1);
  EXPECT_EQ(rows[static_cast<uint32_t>((*s)->FindDistinctId("u2"))], 2);
  EXPECT_TRUE((*s)->Snapshot()->persons->Erased(anon));
  // The flush writes the replayed rows without the erased ones and deletes the WAL files.
  ASSERT_TRUE((*s)->Flush().ok());
  EXPECT_EQ(SegmentDids(copy.path()).count(anon), 0u);
  EXPECT_EQ((*s)->Stats().segment_rows, 3u);
}

TEST(Erasure, ReplayOfAnEmptyMemtableStillDeletesTheWal) {
  testing::TempDir dir, copy;
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Append({Ev("solo", "a", kT0)}).ok());
    ASSERT_TRUE((*s)->ErasePerson(static_cast<uint32_t>((*s)->FindDistinctId("solo"))).ok());
    std::filesystem::copy(dir.path(), copy.path(), std::filesystem::copy_options::recursive);
  }
  std::filesystem::remove(copy.path() + "/LOCK");
  auto s = EventStore::Open(copy.path(), Opts());
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->memtable_rows(), 0u);
  ASSERT_TRUE((*s)->Flush().ok());
  // Only the new, empty WAL file is left: the one holding the erased event is gone.
  size_t wal_bytes = 0;
  for (const auto& e : std::filesystem::directory_iterator(copy.path() + "/wal")) wal_bytes += e.file_size();
  EXPECT_EQ(wal_bytes, 0u);
}

TEST(Erasure, FlushAndCompactionRemoveTheRowsFromTheFiles) {
  testing::TempDir dir;
  auto s = EventStore::Open(dir.path(), Opts());
  ASSERT_TRUE(s.ok());
  AddPeople(**s);
  ASSERT_TRUE((*s)->Flush().ok());  // day 0: u2 + person; day 1: only the person
  ASSERT_TRUE((*s)->Append({Ev("u2", "a", kT0 + 50), Ev("anon-1", "a", kT0 + 60)}).ok());
  ASSERT_TRUE((*s)->Flush().ok());                                // day 0 has two segments now
  ASSERT_TRUE((*s)->Append({Ev("user-1", "a", kT0 + 70)}).ok());  // memtable
  const uint32_t anon = static_cast<uint32_t>((*s)->FindDistinctId("anon-1"));
  const uint32_t user = static_cast<uint32_t>((*s)->FindDistinctId("user-1"));
  ASSERT_TRUE((*s)->ErasePerson(anon).ok());
  // Before compaction the rows are still in the files, and `northstar check` says so.
  EXPECT_EQ(SegmentDids(dir.path()).count(anon), 1u);
  StoreCheckReport before = CheckStoreDirectory(dir.path());
  EXPECT_FALSE(before.problems.empty());
  ASSERT_TRUE((*s)->Flush().ok());
  ASSERT_TRUE((*s)->CompactAll().ok());
  ASSERT_TRUE((*s)->CompactIdentityLog().ok());
  std::set<uint32_t> dids = SegmentDids(dir.path());
  EXPECT_EQ(dids.count(anon), 0u);
  EXPECT_EQ(dids.count(user), 0u);
  EXPECT_EQ(dids.size(), 1u);  // u2
  StoreCheckReport after = CheckStoreDirectory(dir.path());
  EXPECT_TRUE(after.problems.empty()) << after.problems[0];
  EXPECT_EQ(after.rows, 3u);
  EXPECT_EQ(TotalRows(**s), 3u);
  // And after a restart (the replaced files are gone for good).
  s = Status::OK();
  auto s2 = EventStore::Open(dir.path(), Opts());
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  EXPECT_EQ((*s2)->Stats().segment_rows, 3u);
  EXPECT_EQ((*s2)->FindDistinctId("anon-1"), -1);
}

TEST(Erasure, ALaterEventOfAnErasedIdStartsANewPerson) {
  testing::TempDir dir;
  uint32_t old_did = 0, new_did = 0;
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok());
    AddPeople(**s);
    old_did = static_cast<uint32_t>((*s)->FindDistinctId("user-1"));
    ASSERT_TRUE((*s)->ErasePerson(old_did).ok());
    Event e = Ev("user-1", "signup", kT0 + 2 * kDay);
    e.person_set.push_back({"plan", PropValue::Str("pro")});
    ASSERT_TRUE((*s)->Append({e}).ok());
    new_did = static_cast<uint32_t>((*s)->FindDistinctId("user-1"));
    EXPECT_GT(new_did, old_did);
    auto snap = (*s)->Snapshot();
    EXPECT_TRUE(snap->persons->IsPerson(new_did));
    EXPECT_EQ(snap->persons->Prop(new_did, "email"), nullptr);  // nothing of the erased person
    EXPECT_EQ(snap->persons->Prop(new_did, "plan")->str, "pro");
    EXPECT_EQ(RowsByDid(**s)[new_did], 1);
    EXPECT_EQ((*s)->DisplayId(new_did), "user-1");
    // The new person can be erased in turn.
    Event again = Ev("anon-1", "page_view", kT0 + 2 * kDay + 1);
    again.merge_with.push_back("user-1");
    ASSERT_TRUE((*s)->Append({again}).ok());
  }
  auto s = EventStore::Open(dir.path(), Opts());  // closed cleanly: flushed
  ASSERT_TRUE(s.ok());
  EXPECT_EQ((*s)->FindDistinctId("user-1"), new_did);
  auto snap = (*s)->Snapshot();
  EXPECT_TRUE(snap->persons->Erased(old_did));
  EXPECT_EQ(snap->persons->PersonOf(static_cast<uint32_t>((*s)->FindDistinctId("anon-1"))), new_did);
  auto r = (*s)->ErasePerson(new_did);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->dids.size(), 2u);
  EXPECT_EQ(r->events, 2u);
  ASSERT_TRUE((*s)->CompactAll().ok());
  ASSERT_TRUE((*s)->CompactIdentityLog().ok());
  EXPECT_TRUE(CheckStoreDirectory(dir.path()).problems.empty());
  EXPECT_EQ(RowsByDid(**s).size(), 1u);  // u2
}

// ---------------------------------------------------------------- the identity log

// Every byte of the identity log's files (names ending .wal).
std::string IdentityBytes(const std::string& dir) {
  std::string all;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/identity")) {
    auto text = ReadFile(e.path().string());
    if (text.ok()) all += *text;
  }
  return all;
}

std::vector<std::string> IdentityFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir + "/identity")) out.push_back(e.path().filename());
  std::sort(out.begin(), out.end());
  return out;
}

// The persons of a store as text: every known distinct id with its person's smallest did,
// erased flag and properties; equal texts, equal identity state.
std::string PersonsText(EventStore& s, const std::vector<std::string>& ids) {
  auto snap = s.Snapshot();
  std::string out;
  for (const auto& id : ids) {
    const int64_t d = s.FindDistinctId(id);
    out += id + "=" + std::to_string(d);
    if (d >= 0) {
      const uint32_t p = snap->persons->PersonOf(static_cast<uint32_t>(d));
      out += " person " + std::to_string(p) + " display " + s.DisplayId(p);
      for (const auto& [key, col] : snap->persons->columns)
        if (const PropValue* v = col->Get(p)) out += " " + key + ":" + v->AsString();
    }
    out += "\n";
  }
  for (uint32_t d = 0; d < snap->persons->size(); d++) out += snap->persons->Erased(d) ? "E" : ".";
  return out;
}

// An erased person's distinct ids and person properties leave the identity log's files
// when it is rewritten (`northstar compact`); everything else replays as before, a later
// event of an erased id keeps its new person, and writes after the rewrite go to the new file.
TEST(Erasure, CompactIdentityLogRemovesErasedIdsAndProperties) {
  testing::TempDir dir;
  const std::vector<std::string> ids = {"anon-1", "user-1", "u2", "u3"};
  std::string before_text;
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok());
    AddPeople(**s);
    Event u2 = Ev("u2", "login", kT0 + 30);
    u2.person_set.push_back({"phone", PropValue::Str("13900001111")});
    u2.person_set_once.push_back({"plan", PropValue::Str("free")});
    ASSERT_TRUE((*s)->Append({u2}).ok());
    EXPECT_TRUE((*s)->CompactIdentityLog().ok()) << "nothing erased yet: a no-op";
    const uint32_t user = static_cast<uint32_t>((*s)->FindDistinctId("user-1"));
    Event more = Ev("user-1", "pay", kT0 + 40);
    more.person_set.push_back({"phone", PropValue::Str("13812345678")});
    ASSERT_TRUE((*s)->Append({more}).ok());
    ASSERT_TRUE((*s)->ErasePerson(user).ok());
    // anon-1 comes back as a new person, with a property of its own.
    Event back = Ev("anon-1", "visit", kT0 + 3 * kDay);
    back.person_set.push_back({"city", PropValue::Str("Hangzhou")});
    ASSERT_TRUE((*s)->Append({back, Ev("u3", "visit", kT0 + 3 * kDay)}).ok());
    ASSERT_TRUE((*s)->Flush().ok());
    ASSERT_TRUE((*s)->CompactAll().ok());
    // The segments are clean now; the identity log is not, and `northstar check` says so.
    const std::string log = IdentityBytes(dir.path());
    EXPECT_NE(log.find("user-1"), std::string::npos);
    EXPECT_NE(log.find("alice@example.com"), std::string::npos);
    IdentityLogReport idlog = IdentityMap::Inspect(Env::Default(), dir.path() + "/identity");
    EXPECT_EQ(idlog.erased_ids_on_disk, 2u);    // anon-1 (the old did) and user-1
    EXPECT_EQ(idlog.erased_props_on_disk, 1u);  // user-1 (its email and phone)
    StoreCheckReport check = CheckStoreDirectory(dir.path());
    ASSERT_EQ(check.problems.size(), 1u);
    EXPECT_NE(check.problems[0].find("2 erased distinct ids still have their id string and 1 their person"),
              std::string::npos)
        << check.problems[0];
    before_text = PersonsText(**s, ids);

    ASSERT_TRUE((*s)->CompactIdentityLog().ok());
    EXPECT_EQ(PersonsText(**s, ids), before_text);
    // After the rewrite: writes go on (to the new file).
    Event late = Ev("u3", "login", kT0 + 4 * kDay);
    late.person_set.push_back({"plan", PropValue::Str("pro")});
    ASSERT_TRUE((*s)->Append({late}).ok());
    before_text = PersonsText(**s, ids);
  }
  EXPECT_EQ(IdentityFiles(dir.path()).size(), 1u);
  const std::string log = IdentityBytes(dir.path());
  for (const char* gone : {"user-1", "alice@example.com", "13812345678"})
    EXPECT_EQ(log.find(gone), std::string::npos) << gone << " is still in the identity log";
  for (const char* kept : {"anon-1", "u2", "13900001111", "Hangzhou", "pro"})
    EXPECT_NE(log.find(kept), std::string::npos) << kept << " is gone from the identity log";
  IdentityLogReport idlog = IdentityMap::Inspect(Env::Default(), dir.path() + "/identity");
  EXPECT_TRUE(idlog.problems.empty());
  EXPECT_EQ(idlog.erased_ids_on_disk + idlog.erased_props_on_disk, 0u);
  StoreCheckReport check = CheckStoreDirectory(dir.path());
  EXPECT_TRUE(check.problems.empty()) << check.problems[0];
  // A restart replays the new file to the same persons.
  auto s = EventStore::Open(dir.path(), Opts());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(PersonsText(**s, ids), before_text);
  EXPECT_EQ((*s)->FindDistinctId("user-1"), -1);
  EXPECT_TRUE((*s)->CompactIdentityLog().ok());  // nothing left to remove
  EXPECT_EQ(IdentityFiles(dir.path()).size(), 1u);
}

// A rewrite interrupted anywhere leaves a log that replays: before the rename an unfinished
// .wal.tmp (ignored, then removed); after it the old files beside the new one (the new one
// starts with a type-7 entry, so a replay forgets them; the next open removes them).
TEST(Erasure, AnInterruptedIdentityLogRewriteLeavesALogThatReplays) {
  testing::TempDir dir, saved;
  const std::vector<std::string> ids = {"anon-1", "user-1", "u2"};
  std::string text;
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok());
    AddPeople(**s);
    ASSERT_TRUE((*s)->ErasePerson(static_cast<uint32_t>((*s)->FindDistinctId("u2"))).ok());
    ASSERT_TRUE((*s)->Flush().ok());
    text = PersonsText(**s, ids);
  }
  const std::vector<std::string> old_files = IdentityFiles(dir.path());
  for (const auto& f : old_files) std::filesystem::copy_file(dir.path() + "/identity/" + f, saved.path() + "/" + f);
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->CompactIdentityLog().ok());
  }
  const std::vector<std::string> new_files = IdentityFiles(dir.path());
  ASSERT_EQ(new_files.size(), 1u);
  ASSERT_NE(new_files, old_files);

  // Crashed after the rename, before the old files went (and a stray temporary file).
  for (const auto& f : old_files) std::filesystem::copy_file(saved.path() + "/" + f, dir.path() + "/identity/" + f);
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/identity/000000000009.wal.tmp", "half a file").ok());
  EXPECT_FALSE(CheckStoreDirectory(dir.path()).problems.empty()) << "the old files still hold u2";
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(PersonsText(**s, ids), text);
  }
  EXPECT_EQ(IdentityFiles(dir.path()), new_files);
  EXPECT_TRUE(CheckStoreDirectory(dir.path()).problems.empty());

  // Crashed before the rename: the old files and an unfinished temporary file.
  std::filesystem::remove_all(dir.path() + "/identity");
  std::filesystem::create_directory(dir.path() + "/identity");
  for (const auto& f : old_files) std::filesystem::copy_file(saved.path() + "/" + f, dir.path() + "/identity/" + f);
  ASSERT_TRUE(WriteFileAtomic(dir.path() + "/identity/000000000002.wal.tmp", "\x07 torn").ok());
  {
    auto s = EventStore::Open(dir.path(), Opts());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    EXPECT_EQ(PersonsText(**s, ids), text);
  }
  EXPECT_EQ(IdentityFiles(dir.path()), old_files);
}

}  // namespace
}  // namespace ns
