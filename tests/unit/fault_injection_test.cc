// Fault injection over every write path of the event store (docs/reliability.md, "Fault
// injection"): a fixed workload (appends with kWal durability that create distinct ids,
// merge persons and set person properties; a flush; more appends on a second day; a flush;
// CompactAll; more appends; the flush at close) runs once per N = 1, 2, 3, ... with the Nth
// file operation (create, write, sync, truncate, rename, unlink, mkdir, directory sync)
// failing, until a run ends without reaching N. After each run the store is reopened with
// the default Env and checked:
//   - it opens (no Corruption) and accepts a write;
//   - every event of an Append that returned OK is there exactly once (counted by uuid),
//     and so is every merge of such an Append;
//   - no event of an Append that returned an error is there (with a single fault), or at
//     most once (when every later operation fails too, so that the WAL cannot be cut
//     back: documented, the client's retry is then a duplicate and is skipped);
//   - every failed Append failed with Unavailable (503, retryable), and with a single
//     fault the store recovers: the workload's last Append, retried once, succeeds.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fault_injection_env.h"
#include "storage/block.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {
namespace {

constexpr int64_t kDay1 = 1'790'000'000'000;  // 2026-09-21
constexpr int64_t kDay2 = kDay1 + 86'400'000;

struct Batch {
  std::string tag;
  std::vector<Event> events;
  std::vector<std::pair<std::string, std::string>> merges;  // (distinct id, merged id)
};

// Batch i: 6 events of 3 persons; every second batch logs an anonymous device in
// ($identify with $anon_distinct_id) and sets a person property.
Batch MakeBatch(int i, int64_t day) {
  Batch b;
  b.tag = "b" + std::to_string(i);
  for (int k = 0; k < 6; k++) {
    Event e;
    e.event = k % 2 ? "view" : "click";
    e.distinct_id = "user-" + std::to_string((i + k) % 5);
    e.ts_ms = day + i * 1000 + k;
    e.uuid = Uuid::FromClientId(b.tag + "-" + std::to_string(k));
    e.has_uuid = true;
    e.props.push_back({"k", PropValue::Str("v" + std::to_string(k))});
    e.props.push_back({"n", PropValue::Num(i * 10 + k)});
    if (k == 0 && i % 2 == 0) {
      e.event = "$identify";
      std::string anon = "anon-" + std::to_string(i);
      e.merge_with.push_back(anon);
      e.person_set.push_back({"plan", PropValue::Str("p" + std::to_string(i))});
      b.merges.emplace_back(e.distinct_id, anon);
    }
    b.events.push_back(std::move(e));
  }
  return b;
}

struct Outcome {
  std::set<std::pair<uint64_t, uint64_t>> acked, refused;  // uuids (hi, lo)
  std::vector<std::pair<std::string, std::string>> acked_merges;
  std::vector<std::string> bad_codes;  // failures that were not Unavailable
  bool last_append_ok = false;
};

void Record(Outcome& out, const Batch& b, const StatusOr<AppendResult>& r) {
  for (const auto& e : b.events) (r.ok() ? out.acked : out.refused).insert({e.uuid.hi, e.uuid.lo});
  if (r.ok()) {
    out.acked_merges.insert(out.acked_merges.end(), b.merges.begin(), b.merges.end());
  } else if (r.status().code() != StatusCode::kUnavailable) {
    out.bad_codes.push_back(b.tag + ": " + r.status().ToString());
  }
}

// The fixed workload. Batches that fail are retried once, as an SDK would.
Outcome RunWorkload(const std::string& dir, Env* env) {
  Outcome out;
  StoreOptions so;
  so.background = false;
  so.env = env;
  so.seal_rows = 8;
  auto s = EventStore::Open(dir, so);
  if (!s.ok()) {  // the fault hit the open: it fails cleanly, and a second open (a restart) works
    if (s.status().code() != StatusCode::kUnavailable) out.bad_codes.push_back("open: " + s.status().ToString());
    s = EventStore::Open(dir, so);
    if (!s.ok()) {
      if (s.status().code() != StatusCode::kUnavailable)
        out.bad_codes.push_back("second open: " + s.status().ToString());
      return out;
    }
  }
  EventStore& store = **s;
  auto append = [&](int i, int64_t day) {
    Batch b = MakeBatch(i, day);
    auto r = store.Append(b.events, Durability::kWal);
    if (!r.ok()) {
      Record(out, b, r);
      r = store.Append(b.events, Durability::kWal);
    }
    Record(out, b, r);
    return r.ok();
  };
  for (int i = 0; i < 4; i++) append(i, kDay1);
  (void)store.Flush();
  for (int i = 4; i < 7; i++) append(i, i % 2 ? kDay1 : kDay2);
  (void)store.Flush();
  (void)store.CompactAll();
  for (int i = 7; i < 9; i++) append(i, kDay2);
  out.last_append_ok = append(9, kDay2);
  return out;  // ~EventStore flushes once more
}

std::string FreshDir(const std::string& root, const std::string& name) {
  std::string d = root + "/" + name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

std::string Describe(const std::pair<uint64_t, uint64_t>& u) {
  return std::to_string(u.first) + ":" + std::to_string(u.second);
}

// Reopens dir with the default Env and checks the invariants of the file comment.
void Verify(const std::string& dir, const Outcome& out, bool sticky, const std::string& ctx) {
  SCOPED_TRACE(ctx);
  for (const auto& c : out.bad_codes) ADD_FAILURE() << "failed with a code other than Unavailable: " << c;
  StoreOptions so;
  so.background = false;
  auto s = EventStore::Open(dir, so);
  ASSERT_TRUE(s.ok()) << "reopen: " << s.status().ToString();
  EventStore& store = **s;
  std::map<std::pair<uint64_t, uint64_t>, int> count;
  {
    auto snap = store.Snapshot();
    for (const auto& b : snap->blocks) {
      const auto& has = b->has_uuid();
      const auto& ids = b->uuid();
      for (size_t i = 0; i < b->size(); i++)
        if (has[i]) count[{ids[i].hi, ids[i].lo}]++;
    }
  }
  for (const auto& u : out.acked) EXPECT_EQ(count[u], 1) << "acknowledged event " << Describe(u);
  for (const auto& u : out.refused) {
    if (out.acked.count(u)) continue;  // its retry succeeded
    EXPECT_LE(count[u], sticky ? 1 : 0) << "refused event " << Describe(u);
  }
  for (const auto& [k, n] : count) EXPECT_LE(n, 1) << "duplicated event " << Describe(k);
  auto persons = store.Snapshot()->persons;
  for (const auto& [a, b] : out.acked_merges) {
    int64_t da = store.FindDistinctId(a), db = store.FindDistinctId(b);
    ASSERT_GE(da, 0) << a;
    ASSERT_GE(db, 0) << b;
    EXPECT_EQ(persons->PersonOf(static_cast<uint32_t>(da)), persons->PersonOf(static_cast<uint32_t>(db)))
        << a << " + " << b;
  }
  if (!sticky) {
    EXPECT_TRUE(out.last_append_ok) << "the store did not recover from a single fault";
  }
  auto more = store.Append(MakeBatch(100, kDay2).events, Durability::kWal);
  EXPECT_TRUE(more.ok()) << more.status().ToString();
}

std::string Root() {
  // tmpfs when there is one: a walk syncs thousands of times.
  std::error_code ec;
  if (std::filesystem::is_directory("/dev/shm", ec)) return "/dev/shm";
  return std::filesystem::temp_directory_path().string();
}

void Walk(int err, bool sticky) {
  spdlog::set_level(spdlog::level::off);
  const std::string root = Root() + "/ns-fault-" + std::to_string(::getpid());
  testing::FaultInjectionEnv env;
  // A run without faults counts the operations and is itself checked.
  {
    std::string dir = FreshDir(root, "ref");
    env.FailNth(UINT64_MAX, err);
    Outcome out = RunWorkload(dir, &env);
    ASSERT_FALSE(env.fired());
    EXPECT_EQ(out.refused.size(), 0u);
    Verify(dir, out, sticky, "no fault");
  }
  const uint64_t total = [&] {
    std::string dir = FreshDir(root, "count");
    env.FailNth(UINT64_MAX, err);
    (void)RunWorkload(dir, &env);
    return env.count();
  }();
  ASSERT_GT(total, 50u);  // the workload reaches every kind of write
  uint64_t n = 1;
  for (;; n++) {
    std::string dir = FreshDir(root, "n" + std::to_string(n));
    env.FailNth(n, err, testing::kFaultAll, sticky);
    Outcome out = RunWorkload(dir, &env);
    const bool fired = env.fired();
    const std::string what = env.fired_what();
    env.Disarm();
    if (!fired) break;
    Verify(dir, out, sticky,
           "operation " + std::to_string(n) + " (" + what + ") failed with " + std::strerror(err) +
               (sticky ? ", and every later one" : ""));
    std::filesystem::remove_all(dir);
    if (::testing::Test::HasFatalFailure()) break;
  }
  EXPECT_EQ(n, total + 1) << "the walk ended before the last operation";
  std::printf("walked %llu file operations\n", static_cast<unsigned long long>(total));
  std::filesystem::remove_all(root);
}

TEST(FaultInjection, EveryWriteFailsOnceWithEio) { Walk(EIO, false); }
TEST(FaultInjection, EveryWriteFailsOnceWithEnospc) { Walk(ENOSPC, false); }
// A disk that stops accepting anything: the fault stays for every later operation.
TEST(FaultInjection, EveryWriteFailsFromThereOnWithEio) { Walk(EIO, true); }

// The pipelined group commit under faults: writers append concurrently, so a round is
// written while earlier ones sync, a flusher rotates the WAL beside them, and the Nth write
// or sync fails. A failure fails every
// round no fsync covered; each writer retries a failed batch until it is stored, as an SDK
// would. Afterwards every event is there exactly once (a failed round's uuids left the
// dedup set, so its retry is stored, not skipped as a duplicate), every merge is there,
// and the append listener saw every event once, each writer's batches in its order.
TEST(FaultInjection, ConcurrentRoundsUnderAFaultLoseAndRepeatNothing) {
  spdlog::set_level(spdlog::level::off);
  const std::string root = Root() + "/ns-fault-pipe-" + std::to_string(::getpid());
  constexpr int kWriters = 4, kBatches = 25;
  testing::FaultInjectionEnv env;
  int fired = 0;
  for (uint64_t n = 1; n <= 120; n += (n < 40 ? 1 : 7)) {
    SCOPED_TRACE("write or sync " + std::to_string(n) + " fails");
    std::string dir = FreshDir(root, "n" + std::to_string(n));
    std::mutex mu;
    std::map<std::pair<uint64_t, uint64_t>, int> heard;  // uuid -> times the listener saw it
    std::vector<std::vector<int64_t>> heard_ts(kWriters);
    std::vector<std::pair<std::string, std::string>> merges;
    std::vector<Event> sent;
    std::vector<std::string> errors;
    {
      StoreOptions so;
      so.background = false;
      so.env = &env;
      so.seal_rows = 16;
      auto s = EventStore::Open(dir, so);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      EventStore& store = **s;
      store.AddAppendListener([&](const std::vector<AppendedEvent>& events) {
        std::lock_guard lk(mu);
        for (const auto& e : events) {
          // The writer and the batch are in the timestamp: kDay1 + writer * 1e6 + batch * 100 + k.
          heard_ts[(e.ts_ms - kDay1) / 1'000'000].push_back(e.ts_ms);
        }
      });
      env.FailNth(n, EIO, testing::kFaultAppend | testing::kFaultSync);
      std::vector<std::thread> threads;
      for (int w = 0; w < kWriters; w++)
        threads.emplace_back([&, w] {
          for (int b = 0; b < kBatches; b++) {
            std::vector<Event> batch;
            for (int k = 0; k < 5; k++) {
              Event e;
              e.event = k % 2 ? "view" : "click";
              e.distinct_id = "w" + std::to_string(w) + "-u" + std::to_string((b + k) % 7);
              e.ts_ms = kDay1 + w * 1'000'000 + b * 100 + k;
              e.uuid = Uuid::FromClientId("w" + std::to_string(w) + "-b" + std::to_string(b) + "-" + std::to_string(k));
              e.has_uuid = true;
              e.props.push_back({"n", PropValue::Num(b * 10 + k)});
              if (k == 0 && b % 3 == 0) {
                std::string anon = "anon-w" + std::to_string(w) + "-b" + std::to_string(b);
                e.merge_with.push_back(anon);
                e.person_set.push_back({"plan", PropValue::Str("p" + std::to_string(b))});
                std::lock_guard lk(mu);
                merges.emplace_back(e.distinct_id, anon);
              }
              batch.push_back(std::move(e));
            }
            {
              std::lock_guard lk(mu);
              sent.insert(sent.end(), batch.begin(), batch.end());
            }
            for (int attempt = 0;; attempt++) {
              auto r = store.Append(batch, Durability::kWal);
              if (r.ok()) {
                if (r->accepted + r->duplicates != batch.size()) {
                  std::lock_guard lk(mu);
                  errors.push_back("batch " + std::to_string(b) + " of writer " + std::to_string(w) + ": " +
                                   std::to_string(r->accepted) + " accepted");
                }
                break;
              }
              if (r.status().code() != StatusCode::kUnavailable || attempt == 20) {
                std::lock_guard lk(mu);
                errors.push_back(r.status().ToString());
                break;
              }
            }
          }
        });
      // A flusher beside them: a flush rotates the WAL and retires the old one, so it must
      // never miss a round that is written but not yet durable.
      std::atomic<bool> writing{true};
      std::thread flusher([&] {
        while (writing.load()) {
          (void)store.Flush();
          std::this_thread::sleep_for(std::chrono::microseconds(300));
        }
      });
      for (auto& t : threads) t.join();
      writing = false;
      flusher.join();
      fired += env.fired();
      env.Disarm();
    }
    for (const auto& e : errors) ADD_FAILURE() << e;
    // The listener: every event once, each writer's in the order it sent them.
    for (int w = 0; w < kWriters; w++) {
      EXPECT_EQ(heard_ts[w].size(), size_t{kBatches} * 5) << "writer " << w;
      EXPECT_TRUE(std::is_sorted(heard_ts[w].begin(), heard_ts[w].end())) << "writer " << w;
      EXPECT_EQ(std::set<int64_t>(heard_ts[w].begin(), heard_ts[w].end()).size(), heard_ts[w].size());
    }
    // After a restart: every event once, every merge.
    StoreOptions so;
    so.background = false;
    auto s = EventStore::Open(dir, so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::map<std::pair<uint64_t, uint64_t>, int> count;
    auto snap = (*s)->Snapshot();
    for (const auto& b : snap->blocks)
      for (size_t i = 0; i < b->size(); i++)
        if (b->has_uuid()[i]) count[{b->uuid()[i].hi, b->uuid()[i].lo}]++;
    for (const auto& e : sent) EXPECT_EQ((count[{e.uuid.hi, e.uuid.lo}]), 1) << e.distinct_id << " at " << e.ts_ms;
    EXPECT_EQ(count.size(), size_t{kWriters} * kBatches * 5);
    for (const auto& [a, b] : merges) {
      int64_t da = (*s)->FindDistinctId(a), db = (*s)->FindDistinctId(b);
      ASSERT_GE(da, 0) << a;
      ASSERT_GE(db, 0) << b;
      EXPECT_EQ(snap->persons->PersonOf(static_cast<uint32_t>(da)), snap->persons->PersonOf(static_cast<uint32_t>(db)))
          << a << " + " << b;
    }
    std::filesystem::remove_all(dir);
    if (::testing::Test::HasFailure()) break;
  }
  EXPECT_GT(fired, 30) << "the faults did not reach the writes";
  std::filesystem::remove_all(root);
}

}  // namespace
}  // namespace ns
