// Storage: WAL framing and torn tails, segment round trip and corruption detection,
// dedup across restarts, identity merges, flush/compaction crash recovery.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "core/checksum.h"
#include "core/file_util.h"
#include "core/time_zone.h"
#include "fault_injection_env.h"
#include "query/query_kind.h"
#include "storage/binary_io.h"
#include "storage/event_store.h"
#include "storage/fingerprint_set.h"
#include "storage/person_table.h"
#include "storage/segment.h"
#include "storage/wal.h"
#include "test_util.h"

namespace ns {
namespace {

Event Ev(const std::string& did, const std::string& name, int64_t ts, const std::string& uuid = "") {
  Event e;
  e.distinct_id = did;
  e.event = name;
  e.ts_ms = ts;
  if (!uuid.empty()) {
    e.uuid = Uuid::FromClientId(uuid);
    e.has_uuid = true;
  }
  return e;
}

uint64_t TotalRows(EventStore& s) {
  uint64_t n = 0;
  auto snap = s.Snapshot();
  for (auto& b : snap->blocks) n += b->size();
  return n;
}

constexpr int64_t kT0 = 1'740'000'000'000;  // 2025-02-19

// The payloads of WAL file `seq` in dir, in order (ReplayWal; a torn tail cut if `truncate`).
std::vector<std::string> ReplayedRecords(const std::string& dir, uint64_t seq, bool truncate, WalReplayStats* st) {
  std::vector<std::string> got;
  EXPECT_TRUE(ReplayWal(
                  Env::Default(), dir, seq, truncate,
                  [&](std::string_view p) {
                    got.emplace_back(p);
                    return Status::OK();
                  },
                  st)
                  .ok());
  return got;
}

TEST(Wal, ReplaysRecordsAndTruncatesTornTail) {
  testing::TempDir dir;
  {
    auto w = WalWriter::Open(Env::Default(), dir.path(), 1);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Append("first").ok());
    ASSERT_TRUE((*w)->Append("second").ok());
    ASSERT_TRUE((*w)->Sync().ok());
  }
  std::string path = dir.path() + "/" + WalFileName(1);
  auto size = std::filesystem::file_size(path);
  {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f.write("\x10\x00\x00\x00garbage", 11);  // a record header promising 16 bytes, then too few
  }
  WalReplayStats st;
  EXPECT_EQ(ReplayedRecords(dir.path(), 1, true, &st), (std::vector<std::string>{"first", "second"}));
  EXPECT_EQ(st.truncated_bytes, 11u);
  EXPECT_EQ(std::filesystem::file_size(path), size);
}

// The pipelined writer API (the event store's group commit): Write without fsync,
// SyncThrough an earlier end, a failed Write that refuses the next ones until Rollback,
// and Rollback cutting the file back to what was synced, never further.
TEST(Wal, PipelinedWriteSyncThroughAndRollback) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  auto replay = [&] {
    WalReplayStats st;
    std::vector<std::string> got = ReplayedRecords(dir.path(), 3, false, &st);
    EXPECT_EQ(st.truncated_bytes, 0u);
    return got;
  };
  const std::string path = dir.path() + "/" + WalFileName(3);
  auto w = WalWriter::Open(&env, dir.path(), 3);
  ASSERT_TRUE(w.ok());
  WalWriter& wal = **w;
  ASSERT_TRUE(wal.Append("a").ok());
  ASSERT_TRUE(wal.Write().ok());
  const uint64_t after_a = wal.written();
  EXPECT_EQ(after_a, 9u);  // 8-byte header + payload
  ASSERT_TRUE(wal.Append("bb").ok());
  ASSERT_TRUE(wal.Write().ok());
  const uint64_t after_b = wal.written();
  ASSERT_TRUE(wal.Append("ccc").ok());
  ASSERT_TRUE(wal.Write().ok());
  EXPECT_EQ(std::filesystem::file_size(path), wal.written());  // written, not yet durable
  // An fsync through "bb"; a later SyncThrough of an end it covered does not fsync again.
  env.FailNth(UINT64_MAX, EIO, testing::kFaultSync);
  ASSERT_TRUE(wal.SyncThrough(after_b).ok());
  ASSERT_TRUE(wal.SyncThrough(after_a).ok());
  EXPECT_EQ(env.count(), 1u);
  // Rollback cuts "ccc" (written, never synced) and nothing before it.
  ASSERT_TRUE(wal.Rollback().ok());
  EXPECT_EQ(wal.written(), after_b);
  EXPECT_EQ(replay(), (std::vector<std::string>{"a", "bb"}));
  // A failed write (half of it reaches the file) refuses every later write until Rollback.
  env.FailNth(1, ENOSPC, testing::kFaultAppend);
  ASSERT_TRUE(wal.Append("dddd").ok());
  EXPECT_FALSE(wal.Write().ok());
  env.Disarm();
  ASSERT_TRUE(wal.Append("ee").ok());
  Status refused = wal.Write();
  EXPECT_EQ(refused.code(), StatusCode::kUnavailable) << refused.ToString();
  EXPECT_GT(std::filesystem::file_size(path), after_b);  // the torn half
  ASSERT_TRUE(wal.Rollback().ok());
  EXPECT_EQ(std::filesystem::file_size(path), after_b);
  ASSERT_TRUE(wal.Append("ff").ok());
  ASSERT_TRUE(wal.Sync().ok());
  EXPECT_EQ(replay(), (std::vector<std::string>{"a", "bb", "ff"}));
}

TEST(Wal, CorruptRecordEndsReplay) {
  testing::TempDir dir;
  {
    auto w = WalWriter::Open(Env::Default(), dir.path(), 7);
    ASSERT_TRUE(w.ok());
    for (auto s : {"a", "bb", "ccc"}) ASSERT_TRUE((*w)->Append(s).ok());
    ASSERT_TRUE((*w)->Sync().ok());
  }
  std::string path = dir.path() + "/" + WalFileName(7);
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8 + 1 + 8);  // first byte of the second payload
    f.put('X');
  }
  int n = 0;
  WalReplayStats st;
  ASSERT_TRUE(ReplayWal(
                  Env::Default(), dir.path(), 7, false,
                  [&](std::string_view) {
                    n++;
                    return Status::OK();
                  },
                  &st)
                  .ok());
  EXPECT_EQ(n, 1);
  EXPECT_GT(st.truncated_bytes, 0u);
}

TEST(Segment, RoundTripAndChecksum) {
  testing::TempDir dir;
  EventDict dict;
  BlockBuilder b;
  std::vector<Property> props{
      {"channel", PropValue::Str("ads")}, {"amount", PropValue::Num(12.5)}, {"flag", PropValue::Json("true")}};
  Uuid u = Uuid::FromClientId("0190a6b2-7c3d-7e1f-8a9b-0c1d2e3f4a5b");
  b.Append(3, kT0, dict.Intern("pay"), &u, props);
  b.Append(3, kT0 + 5, dict.Intern("order"), nullptr, {{"amount", PropValue::Num(7)}});
  b.Append(9, kT0 + 1, dict.Intern("pay"), nullptr, {{"channel", PropValue::Str("seo")}});
  auto block = b.Finish();
  std::string path = dir.path() + "/" + SegmentFileName(20138, 1);
  ASSERT_TRUE(WriteSegment(Env::Default(), path, *block, SegmentMeta{20138, 1, {}}, dict).ok());
  EventDict dict2;
  auto info = OpenSegment(Env::Default(), path, dict2);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const Block& r = *info->block;
  ASSERT_EQ(r.size(), 3u);
  EXPECT_EQ(r.did(), (std::vector<uint32_t>{3, 3, 9}));
  EXPECT_EQ(r.ts(), (std::vector<int64_t>{kT0, kT0 + 5, kT0 + 1}));
  EXPECT_EQ(dict2.Name(r.ev()[1]), "order");
  EXPECT_EQ(r.uuid()[0], u);
  EXPECT_EQ(r.has_uuid(), (std::vector<uint8_t>{1, 0, 0}));
  EXPECT_EQ(r.prop("channel")->Get(0).str, "ads");
  EXPECT_FALSE(r.prop("channel")->Present(1));
  EXPECT_TRUE(r.prop("amount")->numeric);
  EXPECT_EQ(r.prop("amount")->Get(1).num, 7);
  EXPECT_EQ(r.prop("flag")->Get(0).kind, PropValue::kJson);
  EXPECT_EQ(r.min_ts(), kT0);
  EXPECT_EQ(r.max_ts(), kT0 + 5);

  // Flip one byte inside the column data: the checksum must catch it, naming the file.
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(14);
    char c;
    f.seekg(14);
    f.get(c);
    f.seekp(14);
    f.put(static_cast<char>(c ^ 0x5a));
  }
  auto bad = OpenSegment(Env::Default(), path, dict2);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kCorruption);
  EXPECT_NE(bad.status().message().find(path), std::string::npos);
  EXPECT_NE(bad.status().message().find("checksum mismatch"), std::string::npos);
}

TEST(Segment, TruncatedFileIsCorruption) {
  testing::TempDir dir;
  EventDict dict;
  BlockBuilder b;
  b.Append(1, kT0, dict.Intern("a"), nullptr, {});
  std::string path = dir.path() + "/x.nseg";
  ASSERT_TRUE(WriteSegment(Env::Default(), path, *b.Finish(), SegmentMeta{1, 1, {}}, dict).ok());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 3);
  auto r = OpenSegment(Env::Default(), path, dict);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kCorruption);
}

TEST(EventStore, DedupAcrossRestartsAndFlushes) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    auto r = (*s)->Append({Ev("u1", "a", kT0, "id-1"), Ev("u1", "a", kT0 + 1, "id-2"), Ev("u1", "a", kT0 + 1, "id-2")});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->accepted, 2u);
    EXPECT_EQ(r->duplicates, 1u);
  }  // closed: flushed to segments
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    auto r = (*s)->Append({Ev("u1", "a", kT0, "id-1"), Ev("u2", "b", kT0, "id-3"), Ev("u2", "b", kT0)});
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->accepted, 2u);
    EXPECT_EQ(r->duplicates, 1u);
    EXPECT_EQ(TotalRows(**s), 4u);
  }
}

TEST(EventStore, WalReplayAfterCrashWithoutFlush) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  // Simulate a crash: copy the directory while the store is open (WAL written, no flush).
  testing::TempDir copy;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Append({Ev("u1", "a", kT0, "w-1"), Ev("u2", "a", kT0 + 86'400'000, "w-2")}).ok());
    std::filesystem::copy(dir.path(), copy.path(),
                          std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
  }
  std::filesystem::remove(copy.path() + "/LOCK");
  auto s = EventStore::Open(copy.path(), so);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(TotalRows(**s), 2u);
  EXPECT_EQ((*s)->Stats().wal_replayed_records, 1u);
  auto r = (*s)->Append({Ev("u1", "a", kT0, "w-1")});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->duplicates, 1u);
}

// Open rows are sealed outside the store's locks (by the write round's leader after it has
// answered, and by snapshots), while other writers, snapshots and flushes go on. Every
// snapshot must hold each event acknowledged before it began exactly once, and after a
// reopen every acknowledged event is there once.
TEST(EventStore, SealsOutsideTheLockLoseAndRepeatNothing) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  so.seal_rows = 64;
  so.snapshot_seal_rows = 8;
  constexpr int kWriters = 3, kBatches = 150, kBatch = 7;
  std::atomic<uint64_t> acked{0};
  std::atomic<bool> failed{false};
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    EventStore& store = **s;
    std::atomic<int> writing{kWriters};
    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; w++)
      threads.emplace_back([&, w] {
        for (int b = 0; b < kBatches; b++) {
          std::vector<Event> events;
          for (int k = 0; k < kBatch; k++) {
            const int n = (w * kBatches + b) * kBatch + k;
            events.push_back(Ev("u" + std::to_string(n % 37), "e", kT0 + n, "id-" + std::to_string(n)));
          }
          auto r = store.Append(std::move(events));
          if (!r.ok() || r->accepted != kBatch) failed = true;
          acked += kBatch;
        }
        writing--;
      });
    // Readers: rows counted per uuid fingerprint would be costly; the count must never fall
    // below what was acknowledged before the snapshot, nor exceed what was sent.
    for (int r = 0; r < 2; r++)
      threads.emplace_back([&] {
        while (writing.load() > 0) {
          const uint64_t before = acked.load();
          const uint64_t rows = TotalRows(store);
          if (rows < before || rows > uint64_t{kWriters} * kBatches * kBatch) failed = true;
        }
      });
    threads.emplace_back([&] {  // flushes now and then: rows being sealed must not be skipped
      while (writing.load() > 0) {
        if (!store.Flush().ok()) failed = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(3));
      }
    });
    for (auto& t : threads) t.join();
    EXPECT_FALSE(failed.load());
    EXPECT_EQ(TotalRows(store), acked.load());
  }
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(TotalRows(**s), uint64_t{kWriters} * kBatches * kBatch);
  // Every uuid once: a repeat of the whole load is all duplicates.
  std::vector<Event> again;
  for (int n = 0; n < kWriters * kBatches * kBatch; n++)
    again.push_back(Ev("u" + std::to_string(n % 37), "e", kT0 + n, "id-" + std::to_string(n)));
  auto r = (*s)->Append(std::move(again));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->accepted, 0u);
  // Distinct (ts) values: each event once in the rows.
  std::set<int64_t> ts;
  uint64_t rows = 0;
  auto snap = (*s)->Snapshot();
  for (auto& b : snap->blocks)
    for (int64_t t : b->ts()) {
      ts.insert(t);
      rows++;
    }
  EXPECT_EQ(ts.size(), rows);
}

// The dedup set against std::set, on fingerprints crowded into a few home slots (long
// probe runs, some wrapping past the table's end), with erasures (a failed write round
// takes its fingerprints out again) and growth.
TEST(FingerprintSet, MatchesAStdSetOnRandomInsertsAndErasures) {
  for (int seed = 1; seed <= 100; seed++) {
    std::mt19937_64 rng(seed);
    FingerprintSet set;
    std::set<uint64_t> want;
    std::vector<uint64_t> keys;
    // Low bits from a few homes near both ends of the 1024-slot table (runs from its end
    // wrap to its start, past entries whose home is there); high bits random.
    const uint64_t pool[] = {1021, 0, 1022, 3, 511, 1023, 2};
    const int homes = 1 + seed % 7;
    for (int i = 0; i < 1500; i++) {
      uint64_t f = (rng() << 16) | pool[rng() % homes];
      if (f == 0) f = 1;
      keys.push_back(f);
    }
    const int ops = 400 + seed * 30;
    for (int i = 0; i < ops; i++) {
      const uint64_t f = keys[rng() % keys.size()];
      if (rng() % 3 == 0) {
        set.Erase(f);
        want.erase(f);
      } else {
        set.Insert(f);
        want.insert(f);
      }
      if (i % 200 == 0 || i == ops - 1) {
        ASSERT_EQ(set.size(), want.size()) << "seed " << seed << " op " << i;
        for (uint64_t k : keys) ASSERT_EQ(set.Contains(k), want.count(k) > 0) << "seed " << seed << " op " << i;
      }
    }
  }
}

TEST(EventStore, UnfinishedFlushSegmentsAreRemoved) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Append({Ev("u1", "a", kT0, "f-1")}).ok());
    ASSERT_TRUE((*s)->Flush().ok());
  }
  // A segment of a generation newer than the checkpoint: a flush that crashed before commit.
  EventDict dict;
  BlockBuilder b;
  b.Append(0, kT0, dict.Intern("a"), nullptr, {});
  int32_t day = static_cast<int32_t>(kT0 / kMsPerDay);
  ASSERT_TRUE(WriteSegment(Env::Default(), dir.path() + "/segments/" + SegmentFileName(day, 99), *b.Finish(),
                           SegmentMeta{day, 99, {}}, dict)
                  .ok());
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(TotalRows(**s), 1u);
  EXPECT_FALSE(FileExists(dir.path() + "/segments/" + SegmentFileName(day, 99)));
}

// Identity lookups through the store's interface (the facade hands out no IdentityMap).
struct Ids {
  EventStore* s;
  int64_t Find(std::string_view id) const { return s->FindDistinctId(id); }
  bool Identified(uint32_t d) const { return s->Identified(d); }
  uint32_t Person(uint32_t d) const { return s->Snapshot()->persons->PersonOf(d); }
};

TEST(EventStore, IdentityMergeAfterTheFactAppliesToPastEvents) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  ASSERT_TRUE((*s)->Append({Ev("anon-1", "page_view", kT0), Ev("anon-1", "page_view", kT0 + 1)}).ok());
  ASSERT_TRUE((*s)->Flush().ok());
  Event login = Ev("user-1", "login", kT0 + 2);
  login.merge_with.push_back("anon-1");
  login.person_set.push_back({"city", PropValue::Str("Hangzhou")});
  ASSERT_TRUE((*s)->Append({login}).ok());
  auto snap = (*s)->Snapshot();
  Ids ids{s->get()};
  uint32_t a = static_cast<uint32_t>(ids.Find(std::string_view("anon-1")));
  uint32_t u = static_cast<uint32_t>(ids.Find(std::string_view("user-1")));
  EXPECT_EQ(snap->persons->PersonOf(a), snap->persons->PersonOf(u));
  EXPECT_EQ(snap->persons->Prop(snap->persons->PersonOf(u), "city")->str, "Hangzhou");
  // Persisted: reopen and check again.
  s = Status::OK();
  auto s2 = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s2.ok());
  auto snap2 = (*s2)->Snapshot();
  EXPECT_EQ(snap2->persons->PersonOf(a), snap2->persons->PersonOf(u));
  EXPECT_EQ(snap2->persons->Prop(snap2->persons->PersonOf(a), "city")->str, "Hangzhou");
}

// Numeric text is text that is entirely a finite number (docs/queries.md): from_chars alone
// also reads "nan", "inf" and "infinity", which made sums and amounts NaN or infinite.
TEST(PropColumn, GetNumReadsOnlyFiniteNumericText) {
  for (const char* s : {"12", "-0.5", "1e3", "0", "3.25E-2"}) {
    double v = -1;
    EXPECT_TRUE(ParseNumericText(s, &v)) << s;
    EXPECT_EQ(v, std::strtod(s, nullptr)) << s;
  }
  for (const char* s : {"", "nan", "NaN", "-nan", "inf", "-inf", "INF", "infinity", "-Infinity", "1e999", " 1", "1 ",
                        "+1", "1x", "0x10", "--1"}) {
    double v = 7;
    EXPECT_FALSE(ParseNumericText(s, &v)) << s;
    EXPECT_EQ(v, 7) << s << ": untouched";
  }
  // Through a stored column (mixed text and numbers: a dictionary column), in memory and
  // flushed to a segment.
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  const std::vector<std::pair<std::string, std::optional<double>>> amounts = {
      {"12.5", 12.5}, {"nan", std::nullopt},       {"inf", std::nullopt}, {"Infinity", std::nullopt},
      {"1e3", 1000},  {"-infinity", std::nullopt}, {"abc", std::nullopt}};
  std::vector<Event> evs;
  for (size_t i = 0; i < amounts.size(); i++) {
    Event e = Ev("u" + std::to_string(i), "pay", kT0 + static_cast<int64_t>(i));
    e.props.push_back({"amount", PropValue::Str(amounts[i].first)});
    evs.push_back(e);
  }
  Event num = Ev("u-num", "pay", kT0 + 100);
  num.props.push_back({"amount", PropValue::Num(4)});
  evs.push_back(num);
  ASSERT_TRUE((*s)->Append(evs).ok());
  for (bool flushed : {false, true}) {
    if (flushed) {
      ASSERT_TRUE((*s)->Flush().ok());
    }
    std::map<std::string, std::optional<double>> got;
    auto snap = (*s)->Snapshot();
    for (const auto& b : snap->blocks) {
      const PropColumn* col = b->prop("amount");
      ASSERT_NE(col, nullptr);
      for (uint32_t i = 0; i < b->size(); i++) {
        double v = 0;
        const std::string text = col->Get(i).AsString();
        got[text] = col->GetNum(i, &v) ? std::optional<double>(v) : std::nullopt;
      }
    }
    SCOPED_TRACE(flushed ? "segment" : "memtable");
    for (const auto& [text, want] : amounts) EXPECT_EQ(got[text], want) << text;
    EXPECT_EQ(got["4"], std::optional<double>(4));
  }
}

// Finding 11 of docs/reliability.md: a write key cannot join two identified persons.
TEST(EventStore, WriteKeyCannotMergeTwoIdentifiedPersons) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  auto identify = [](const std::string& user, const std::string& anon, int64_t ts) {
    Event e = Ev(user, "$identify", ts);
    e.merge_with.push_back(anon);
    return e;
  };
  // Two customers log in on their own devices: each merge joins an anonymous person.
  auto a = (*s)->Append({identify("alice", "dev-a", kT0), identify("bob", "dev-b", kT0 + 1)}, Durability::kWal,
                        IdentityTrust::kWriteKey);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->merges_refused, 0u);
  // A login id without a merge is identified too.
  ASSERT_TRUE((*s)->Append({Ev("carol", "$identify", kT0 + 2)}, Durability::kWal, IdentityTrust::kWriteKey).ok());
  Ids ids{s->get()};
  auto did = [&](const char* id) { return static_cast<uint32_t>(ids.Find(std::string_view(id))); };
  EXPECT_TRUE(ids.Identified(did("alice")) && ids.Identified(did("dev-a")) && ids.Identified(did("carol")));
  // The attack: bob's id sent as the anonymous id of alice's $identify, and carol aliased to bob.
  Event alias = Ev("carol", "$create_alias", kT0 + 4);
  alias.merge_with.push_back("bob");
  a = (*s)->Append({identify("alice", "bob", kT0 + 3), alias}, Durability::kWal, IdentityTrust::kWriteKey);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->accepted, 2u);  // the events are stored, the merges are not applied
  EXPECT_EQ(a->merges_refused, 2u);
  EXPECT_NE(ids.Person(did("alice")), ids.Person(did("bob")));
  EXPECT_NE(ids.Person(did("carol")), ids.Person(did("bob")));
  // A new anonymous device still joins an identified person with the write key.
  a = (*s)->Append({identify("alice", "dev-a2", kT0 + 5)}, Durability::kWal, IdentityTrust::kWriteKey);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->merges_refused, 0u);
  EXPECT_EQ(ids.Person(did("alice")), ids.Person(did("dev-a2")));
  // The secret key may join identified persons.
  a = (*s)->Append({identify("alice", "carol", kT0 + 6)}, Durability::kWal, IdentityTrust::kSecretKey);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->merges_refused, 0u);
  EXPECT_EQ(ids.Person(did("alice")), ids.Person(did("carol")));
  // After a restart: the same persons, and the identified bits survive (carol's came from
  // a record of its own, not from a merge, before the secret-key merge).
  const uint32_t alice = did("alice"), bob = did("bob"), carol = did("carol");
  s = Status::OK();
  auto s2 = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s2.ok());
  Ids ids2{s2->get()};
  EXPECT_EQ(ids2.Person(alice), ids2.Person(carol));
  EXPECT_NE(ids2.Person(alice), ids2.Person(bob));
  EXPECT_TRUE(ids2.Identified(bob));
  a = (*s2)->Append({identify("bob", "alice", kT0 + 7)}, Durability::kWal, IdentityTrust::kWriteKey);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->merges_refused, 1u);
}

TEST(EventStore, IdentifiedBitOfAPersonWithoutMergesSurvivesRestart) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  uint32_t u = 0, v = 0;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Append({Ev("u1", "$identify", kT0), Ev("u2", "$identify", kT0)}).ok());
    u = static_cast<uint32_t>((*s)->FindDistinctId(std::string_view("u1")));
    v = static_cast<uint32_t>((*s)->FindDistinctId(std::string_view("u2")));
  }
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE((*s)->Identified(u));
  Event e = Ev("u1", "$identify", kT0 + 1);
  e.merge_with.push_back("u2");
  auto a = (*s)->Append({e}, Durability::kWal, IdentityTrust::kWriteKey);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->merges_refused, 1u);
  EXPECT_NE((*s)->Snapshot()->persons->PersonOf(u), (*s)->Snapshot()->persons->PersonOf(v));
}

TEST(EventStore, CompactionMergesPartitionSegments) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok());
  for (int i = 0; i < 3; i++) {
    ASSERT_TRUE((*s)->Append({Ev("u" + std::to_string(i), "a", kT0 + i)}).ok());
    ASSERT_TRUE((*s)->Flush().ok());
  }
  EXPECT_EQ((*s)->Stats().segments, 3u);
  ASSERT_TRUE((*s)->CompactAll().ok());
  EXPECT_EQ((*s)->Stats().segments, 1u);
  EXPECT_EQ(TotalRows(**s), 3u);
  auto names = ListDir(dir.path() + "/segments");
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(names->size(), 1u);
}

TEST(EventStore, SecondOpenOfADirectoryIsRefused) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  auto a = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(a.ok());
  auto b = EventStore::Open(dir.path(), so);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(b.status().message().find("in use by another northstar process"), std::string::npos);
}

// Makes the footer of a segment file declare one byte more for column `name` than its
// zstd frame holds (checksums recomputed): the file opens, and the column fails to decode
// when it is first read.
void BreakColumn(const std::string& path, const std::string& name) {
  std::ifstream in(path, std::ios::binary);
  std::string f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  uint32_t flen;
  std::memcpy(&flen, f.data() + f.size() - 16, 4);
  const size_t fstart = f.size() - 16 - flen;
  std::string key(5, '\0');
  key[0] = '\0';
  uint32_t len = static_cast<uint32_t>(name.size());
  std::memcpy(key.data() + 1, &len, 4);
  key = key.substr(1) + name;  // str: u32 length, bytes
  size_t at = f.find(key, fstart);
  ASSERT_NE(at, std::string::npos) << name;
  size_t raw_at = at + key.size() + 16;  // after offset and comp_len
  uint64_t raw;
  std::memcpy(&raw, f.data() + raw_at, 8);
  raw++;
  std::memcpy(f.data() + raw_at, &raw, 8);
  uint32_t crc = Crc32c(f.data() + fstart, flen);
  std::memcpy(f.data() + f.size() - 12, &crc, 4);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(f.data(), static_cast<std::streamsize>(f.size()));
}

// Issue 9: a column that fails to decode is a Corruption naming the file and the column,
// recorded by the block (its accessors stay in bounds and never throw).
TEST(Segment, MalformedColumnIsCorruptionNotException) {
  testing::TempDir dir;
  EventDict dict;
  BlockBuilder b;
  for (uint32_t i = 0; i < 5; i++)
    b.Append(i, kT0 + i, dict.Intern("a"), nullptr, {{"k", PropValue::Str("v" + std::to_string(i))}});
  const std::string path = dir.path() + "/seg.nseg";
  const int32_t day = static_cast<int32_t>(kT0 / kMsPerDay);
  ASSERT_TRUE(WriteSegment(Env::Default(), path, *b.Finish(), SegmentMeta{day, 1, {}}, dict).ok());
  BreakColumn(path, "ts");
  BreakColumn(path, "k");
  auto info = OpenSegment(Env::Default(), path, dict);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  const Block& blk = *info->block;
  EXPECT_TRUE(blk.status().ok());
  EXPECT_EQ(blk.did().size(), 5u);
  EXPECT_TRUE(blk.status().ok());
  EXPECT_EQ(blk.ts().size(), 5u);  // the empty stand-in
  Status st = blk.status();
  EXPECT_EQ(st.code(), StatusCode::kCorruption);
  EXPECT_NE(st.message().find(path), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("column 'ts'"), std::string::npos) << st.message();
  const PropColumn* k = blk.prop("k");
  ASSERT_NE(k, nullptr);
  EXPECT_FALSE(k->Present(0));
  EXPECT_EQ(blk.LoadAll().message(), st.message());  // the first failure stays
}

// A query over a store holding such a segment answers the Corruption, never a partial or
// wrong result, and never an exception out of a scan thread.
TEST(EventStore, QueryOverMalformedColumnAnswersCorruption) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->Append({Ev("u1", "a", kT0, "q-1"), Ev("u2", "a", kT0 + 5, "q-2")}).ok());
    ASSERT_TRUE((*s)->Flush().ok());
  }
  auto names = ListDir(dir.path() + "/segments");
  ASSERT_TRUE(names.ok());
  ASSERT_EQ(names->size(), 1u);
  BreakColumn(dir.path() + "/segments/" + (*names)[0], "ts");
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto tz = TimeZone::Load("UTC");
  ASSERT_TRUE(tz.ok());
  nlohmann::json q = {{"kind", "trends"},
                      {"series", {{{"event", "a"}, {"math", "total"}}}},
                      {"date_from", "2025-02-01"},
                      {"date_to", "2025-02-28"}};
  auto got = RunQuery(q, **s, *tz);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().code(), StatusCode::kCorruption);
  EXPECT_NE(got.status().message().find("column 'ts'"), std::string::npos) << got.status().message();
  // Compaction refuses to rewrite it (and so to delete it).
  ASSERT_TRUE((*s)->Append({Ev("u3", "a", kT0 + 9, "q-3")}).ok());
  ASSERT_TRUE((*s)->Flush().ok());
  EXPECT_EQ((*s)->CompactAll().code(), StatusCode::kCorruption);
}

// BinWriter writes into spare room it grows itself (a fast path over std::string::append):
// random field sequences across many growths, with str() taken midway, must give exactly the
// bytes of plain appends, and read back field by field.
TEST(BinWriter, MatchesPlainAppendsAcrossGrowth) {
  for (uint32_t seed = 0; seed < 300; seed++) {
    std::mt19937_64 rng(seed);
    BinWriter w;
    std::string want;
    auto raw = [&](const void* p, size_t n) { want.append(static_cast<const char*>(p), n); };
    struct Op {
      int kind;
      uint64_t u;
      std::string s;
    };
    std::vector<Op> ops;
    const size_t n_ops = rng() % 400;
    for (size_t i = 0; i < n_ops; i++) {
      Op op{static_cast<int>(rng() % 6), rng() >> (rng() % 64), {}};
      if (op.kind == 4) op.s.assign(rng() % (i % 50 == 0 ? 3000 : 40), static_cast<char>('a' + rng() % 26));
      switch (op.kind) {
        case 0: w.U8(static_cast<uint8_t>(op.u)), want.push_back(static_cast<char>(static_cast<uint8_t>(op.u))); break;
        case 1: {
          const uint32_t v = static_cast<uint32_t>(op.u);
          w.U32(v), raw(&v, 4);
          break;
        }
        case 2: w.U64(op.u), raw(&op.u, 8); break;
        case 3: {
          const double d = static_cast<double>(op.u) / 7;
          w.F64(d), raw(&d, 8);
          break;
        }
        case 4: {
          const uint32_t len = static_cast<uint32_t>(op.s.size());
          w.Str(op.s), raw(&len, 4), want += op.s;
          break;
        }
        case 5: {
          w.Varint(op.u);
          uint64_t v = op.u;
          for (; v >= 0x80; v >>= 7) want.push_back(static_cast<char>(static_cast<uint8_t>(v | 0x80)));
          want.push_back(static_cast<char>(static_cast<uint8_t>(v)));
          break;
        }
      }
      ops.push_back(std::move(op));
      ASSERT_EQ(w.size(), want.size()) << "seed " << seed << " op " << i;
      if (rng() % 97 == 0) {  // then writes go on
        ASSERT_EQ(w.str(), want) << "seed " << seed << " op " << i;
      }
    }
    ASSERT_EQ(w.str(), want) << "seed " << seed;
    BinReader r(w.str());
    for (const Op& op : ops) {
      switch (op.kind) {
        case 0: EXPECT_EQ(r.U8(), static_cast<uint8_t>(op.u)); break;
        case 1: EXPECT_EQ(r.U32(), static_cast<uint32_t>(op.u)); break;
        case 2: EXPECT_EQ(r.U64(), op.u); break;
        case 3: EXPECT_EQ(r.F64(), static_cast<double>(op.u) / 7); break;
        case 4: EXPECT_EQ(r.Str(), op.s); break;
        case 5: EXPECT_EQ(r.Varint(), op.u); break;
      }
    }
    EXPECT_TRUE(r.ok());
    EXPECT_EQ(r.remaining(), 0u) << "seed " << seed;
  }
}

}  // namespace
}  // namespace ns
