// What every naive reference test shares: local days through the date library (not
// ns::TimeZone, which is under test), a seed's random source, fast throw-away stores (no
// fsync, in memory: durability is not under test there) filled in random batches with
// flushes, compactions and restarts, and the check that the naive persons are the store's.
#pragma once

#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "core/env.h"
#include "core/uuid.h"
#include "storage/event.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {
// ---- local days with the date library ----

// The local day (days since 1970-01-01) of instant `ms` in zone `z`.
inline int LocalDay(const date::time_zone* z, int64_t ms) {
  auto lt = z->to_local(date::sys_time<std::chrono::milliseconds>{std::chrono::milliseconds{ms}});
  return static_cast<int>(date::floor<date::days>(lt).time_since_epoch().count());
}

inline std::string DayString(int days) { return date::format("%F", date::sys_days{date::days{days}}); }

// "YYYY-MM-DD" -> days since 1970-01-01.
inline int DaysFromCivil(const std::string& d) {
  int y = std::stoi(d.substr(0, 4)), m = std::stoi(d.substr(5, 2)), dd = std::stoi(d.substr(8, 2));
  return static_cast<int>(date::sys_days{date::year{y} / m / dd}.time_since_epoch().count());
}

// First instant of a local day (the end of a DST gap if midnight does not exist).
inline int64_t LocalMidnight(const date::time_zone* z, int day) {
  date::local_days ld{date::days{day}};
  auto info = z->get_info(ld);
  if (info.result == date::local_info::nonexistent)
    return date::sys_seconds(info.first.end).time_since_epoch().count() * 1000;
  return (date::sys_seconds{ld.time_since_epoch()} - info.first.offset).time_since_epoch().count() * 1000;
}

// ---- random data ----

// A seed's random source: R(lo, hi) is uniform on [lo, hi]; `rng` for std::shuffle.
class SeedRandom {
 public:
  explicit SeedRandom(uint64_t seed) : rng(seed) {}
  int operator()(int lo, int hi) { return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1)); }
  std::mt19937_64 rng;
};

// Random rows for the sequence fast-path tests (funnel_plain_path, retention_fast_paths,
// sequence_fast_paths): `count` events of persons 1..persons on a coarse grid of `step` ms
// over `days` days from `base` (equal timestamps, steps exactly a window apart), each named
// names[min of two draws] (earlier names more often), a third under the person's anonymous
// id "aP" (else "uP"), and one in `login_every` a login by "uP" merging "aP" (sometimes after
// the anonymous rows were flushed). `extras(event, person)` runs before the login draw
// (properties, moved timestamps). Uuids are "<prefix>-<i>".
template <typename Rand, typename Extras>
std::vector<Event> GridEvents(std::mt19937_64& rng, Rand&& R, const std::string& prefix, int persons, int count,
                              const char* const* names, int nnames, int64_t base, int64_t step, int days,
                              uint64_t login_every, Extras&& extras) {
  std::vector<Event> events;
  for (int i = 0; i < count; i++) {
    Event e;
    e.uuid = Uuid::FromClientId(prefix + "-" + std::to_string(i));
    e.has_uuid = true;
    const int p = R(1, persons);
    e.distinct_id = (rng() % 3 == 0 ? "a" : "u") + std::to_string(p);
    e.event = names[std::min(R(0, nnames), R(0, nnames)) % nnames];
    e.ts_ms = base + static_cast<int64_t>(R(0, static_cast<int>(days * 86'400'000LL / step))) * step;
    extras(e, p);
    if (rng() % login_every == 0) {
      e.event = "login";
      e.distinct_id = "u" + std::to_string(p);
      e.props.push_back({"$anon_distinct_id", PropValue::Str("a" + std::to_string(p))});
      e.merge_with.push_back("a" + std::to_string(p));
    }
    events.push_back(std::move(e));
  }
  return events;
}

// ---- throw-away stores ----

// The POSIX file system without fsync: durability is not under test here, and hundreds of
// stores each syncing every append would spend the test's time waiting on the disk.
class NoSyncEnv : public Env {
 public:
  StatusOr<std::unique_ptr<WritableFile>> NewWritableFile(const std::string& path) override {
    return Wrap(base_->NewWritableFile(path));
  }
  StatusOr<std::unique_ptr<WritableFile>> NewAppendableFile(const std::string& path) override {
    return Wrap(base_->NewAppendableFile(path));
  }
  StatusOr<std::string> ReadFile(const std::string& path) override { return base_->ReadFile(path); }
  StatusOr<MappedFile> MapFile(const std::string& path) override { return base_->MapFile(path); }
  Status RenameFile(const std::string& from, const std::string& to) override { return base_->RenameFile(from, to); }
  Status RemoveFile(const std::string& path) override { return base_->RemoveFile(path); }
  Status CreateDirs(const std::string& dir) override { return base_->CreateDirs(dir); }
  StatusOr<std::vector<std::string>> ListDir(const std::string& dir) override { return base_->ListDir(dir); }
  Status SyncDir(const std::string&) override { return Status::OK(); }
  bool FileExists(const std::string& path) override { return base_->FileExists(path); }

 private:
  class File : public WritableFile {
   public:
    explicit File(std::unique_ptr<WritableFile> f) : f_(std::move(f)) {}
    Status Append(std::string_view data) override { return f_->Append(data); }
    Status Sync() override { return Status::OK(); }
    Status Truncate(uint64_t size) override { return f_->Truncate(size); }
    Status Close() override { return f_->Close(); }
    uint64_t size() const override { return f_->size(); }

   private:
    std::unique_ptr<WritableFile> f_;
  };
  static StatusOr<std::unique_ptr<WritableFile>> Wrap(StatusOr<std::unique_ptr<WritableFile>> f) {
    if (!f.ok()) return f.status();
    return std::unique_ptr<WritableFile>(new File(std::move(*f)));
  }
  Env* base_ = Env::Default();
};

// A temporary directory in memory (/dev/shm) where there is one: creating and removing the
// thousands of segment files of these stores costs more on ext4 than all the rest.
class MemTempDir {
 public:
  MemTempDir() {
    std::error_code ec;
    std::filesystem::path base =
        std::filesystem::is_directory("/dev/shm", ec) ? "/dev/shm" : std::filesystem::temp_directory_path();
    std::string tmpl = (base / "nstest-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) ADD_FAILURE() << "mkdtemp " << tmpl << ": " << std::strerror(errno);
    path_ = tmpl;
  }
  ~MemTempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  MemTempDir(const MemTempDir&) = delete;
  MemTempDir& operator=(const MemTempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A random store on a MemTempDir without fsync (background off: flushes and compactions
// only when the test asks), sealing its memtable every `seal_rows` rows.
class ThrowAwayStore {
 public:
  explicit ThrowAwayStore(size_t seal_rows, size_t snapshot_seal_rows = StoreOptions().snapshot_seal_rows) {
    options_.background = false;
    options_.env = &env_;
    options_.seal_rows = seal_rows;
    options_.snapshot_seal_rows = snapshot_seal_rows;
    Reopen();
  }
  // Closes and opens the store again (a restart: the WAL is replayed).
  void Reopen() {
    store_.reset();
    auto s = EventStore::Open(dir_.path(), options_);
    if (!s.ok()) {
      ADD_FAILURE() << s.status().ToString();
      return;
    }
    store_ = std::move(*s);
  }
  EventStore* operator->() const { return store_.get(); }
  EventStore& operator*() const { return *store_; }
  bool ok() const { return store_ != nullptr; }

 private:
  MemTempDir dir_;
  NoSyncEnv env_;
  StoreOptions options_;
  std::unique_ptr<EventStore> store_;
};

// A naive event as the store gets it: a client uuid (a resend is a duplicate) and each id it
// merges with both as merge_with and as the SDK's property ($anon_distinct_id for an
// $identify, alias otherwise).
inline Event StoredEvent(const std::string& uuid, const std::string& did, const std::string& name, int64_t ts,
                         const std::vector<std::string>& merge_with) {
  Event e;
  e.uuid = Uuid::FromClientId(uuid);
  e.has_uuid = true;
  e.distinct_id = did;
  e.event = name;
  e.ts_ms = ts;
  for (const auto& m : merge_with) {
    e.props.push_back({name == "$identify" ? "$anon_distinct_id" : "alias", PropValue::Str(m)});
    e.merge_with.push_back(m);
  }
  return e;
}

// Where the rows of a random store end up: after each batch, with `rand(0, 9)` == 0 a flush
// (segments), == 1 a compaction, == 2 a restart (WAL replay; with `restarts` only); else the
// rows stay in sealed and open memtable blocks.
struct BatchPolicy {
  size_t max_batch = 80;
  bool segments = true;  // flushes and compactions
  bool restarts = false;
  Durability durability = Durability::kUnlogged;
};

// What happens after a batch under `policy` (above): a flush, a compaction, a restart or
// nothing, by one rand(0, 9) draw (none without segments).
template <typename Rand>
void AfterBatch(ThrowAwayStore& store, const BatchPolicy& policy, Rand&& rand) {
  const int action = policy.segments ? rand(0, 9) : 9;
  if (action == 0) {
    ASSERT_TRUE(store->Flush().ok());
  }
  if (action == 1) {
    ASSERT_TRUE(store->CompactAll().ok());
  }
  if (action == 2 && policy.restarts) store.Reopen();
}

// Appends `events` in order in random batches of 1..max_batch, each acknowledged with no
// merge refused (the tests' merges are trusted, as an import's are).
template <typename Rand>
void AppendInBatches(ThrowAwayStore& store, std::vector<Event> events, const BatchPolicy& policy, Rand&& rand) {
  for (size_t pos = 0; pos < events.size() && store.ok();) {
    const size_t n = std::min(events.size() - pos, static_cast<size_t>(rand(1, static_cast<int>(policy.max_batch))));
    std::vector<Event> batch(std::make_move_iterator(events.begin() + static_cast<std::ptrdiff_t>(pos)),
                             std::make_move_iterator(events.begin() + static_cast<std::ptrdiff_t>(pos + n)));
    pos += n;
    auto res = store->Append(std::move(batch), policy.durability);
    ASSERT_TRUE(res.ok()) << res.status().ToString();
    ASSERT_EQ(res->merges_refused, 0u);
    AfterBatch(store, policy, rand);
    if (::testing::Test::HasFatalFailure()) return;
  }
}

// Each naive person (root(id) of the distinct ids `ids`) -> its person id in `snap`,
// checking that every id is known, that the ids of one naive person are one person and
// that no two naive persons share one (non-fatal failures; the caller stops on them).
template <typename RootFn>
std::map<std::string, uint32_t> NaivePersonIds(const EventStore& store, const StoreSnapshot& snap,
                                               const std::set<std::string>& ids, RootFn&& root) {
  std::map<std::string, uint32_t> pid;
  std::map<uint32_t, std::string> back;
  for (const std::string& id : ids) {
    const int64_t did = store.FindDistinctId(id);
    EXPECT_GE(did, 0) << id;
    if (did < 0) continue;
    const uint32_t p = snap.persons->PersonOf(static_cast<uint32_t>(did));
    const std::string r = root(id);
    auto [it, fresh] = pid.try_emplace(r, p);
    EXPECT_EQ(it->second, p) << "ids of one person " << r << " map to two persons";
    auto [bt, bfresh] = back.try_emplace(p, r);
    EXPECT_EQ(bt->second, r) << "person " << p << " holds two naive persons";
  }
  return pid;
}

}  // namespace ns
