// The one metadata database (meta/meta_db.h: migrations per subsystem, the conversion of
// the older layout) and the project registry, whose open stores share one background
// runner (issue 8, finding 19: threads must not grow with projects).
#include <gtest/gtest.h>
#include <sqlite3.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "storage/maintenance_runner.h"
#include "test_util.h"

namespace ns {
namespace {

int ThreadCount() {
  int n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator("/proc/self/task")) n++;
  return n;
}

TEST(MetaDb, MigrationsAreAppliedOncePerSubsystem) {
  testing::TempDir dir;
  const std::vector<Migration> a = {{1, "t1", "CREATE TABLE a1(x INTEGER)"}, {2, "t2", "CREATE TABLE a2(x INTEGER)"}};
  const std::vector<Migration> b = {{1, "u1", "CREATE TABLE b1(x INTEGER)"}};
  {
    auto db = MetaDb::Open(dir.path() + "/meta.db");
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    ASSERT_TRUE((*db)->Migrate("a", a).ok());
    ASSERT_TRUE((*db)->Migrate("b", b).ok());
    EXPECT_EQ((*db)->SchemaVersion("a"), 2);
    EXPECT_EQ((*db)->SchemaVersion("b"), 1);
    EXPECT_EQ((*db)->SchemaVersion("c"), 0);
  }
  auto db = MetaDb::Open(dir.path() + "/meta.db");
  ASSERT_TRUE(db.ok());
  ASSERT_TRUE((*db)->Migrate("a", a).ok()) << "applied migrations are skipped, not re-run";
  auto more = a;
  more.push_back({3, "t3", "CREATE TABLE a3(x INTEGER)"});
  ASSERT_TRUE((*db)->Migrate("a", more).ok());
  EXPECT_EQ((*db)->SchemaVersions(), (std::map<std::string, int>{{"a", 3}, {"b", 1}}));
}

TEST(MetaDb, AFailedMigrationChangesNothingAndNamesItself) {
  testing::TempDir dir;
  auto db = MetaDb::Open(dir.path() + "/meta.db");
  ASSERT_TRUE(db.ok());
  Status st = (*db)->Migrate("a", {{1, "broken", "CREATE TABLE t(x INTEGER); CREATE TABLE t(y INTEGER)"}});
  EXPECT_EQ(st.code(), StatusCode::kInternal);
  EXPECT_NE(st.message().find("a migration 1 (broken)"), std::string::npos) << st.message();
  EXPECT_EQ((*db)->SchemaVersion("a"), 0);
  EXPECT_TRUE((*db)->Query("SELECT * FROM t").status().code() != StatusCode::kOk) << "rolled back";
  EXPECT_EQ((*db)->Migrate("a", {{2, "x", "SELECT 1"}, {1, "y", "SELECT 1"}}).code(), StatusCode::kInternal)
      << "out-of-order versions are a programming error";
}

// A meta.db of the layout before issue 9: the registry's schema_version table and the
// operations layer's schema_migrations(version, ...).
TEST(MetaDb, OlderLayoutIsConverted) {
  testing::TempDir dir;
  std::string path = dir.path() + "/meta.db";
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(raw,
                         "CREATE TABLE schema_version(version INTEGER NOT NULL); INSERT INTO schema_version VALUES(1);"
                         "CREATE TABLE projects(name TEXT PRIMARY KEY, timezone TEXT NOT NULL, write_key TEXT NOT NULL "
                         "UNIQUE, secret_key_sha256 TEXT NOT NULL UNIQUE, created_at_ms INTEGER NOT NULL);"
                         "INSERT INTO projects VALUES('old', 'UTC', 'nsw_1', 'h', 5);"
                         "CREATE TABLE schema_migrations(version INTEGER PRIMARY KEY, description TEXT NOT NULL, "
                         "applied_at INTEGER NOT NULL);"
                         "INSERT INTO schema_migrations VALUES(1, 'first', 10), (2, 'second', 11);",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(raw);
  auto reg = ProjectRegistry::Open(dir.path());
  ASSERT_TRUE(reg.ok()) << reg.status().ToString();
  EXPECT_EQ((*reg)->meta_db().SchemaVersions(), (std::map<std::string, int>{{"ops", 2}, {"projects", 1}}));
  auto old = (*reg)->Get("old");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->write_key, "nsw_1");
  EXPECT_FALSE((*reg)->meta_db().Query("SELECT * FROM schema_version").ok()) << "the old table is gone";
  ASSERT_TRUE((*reg)->Create("new", "UTC").ok());
  EXPECT_EQ((*reg)->List().size(), 2u);
}

TEST(ProjectRegistry, KeysAndErrors) {
  testing::TempDir dir;
  auto reg = ProjectRegistry::Open(dir.path());
  ASSERT_TRUE(reg.ok());
  auto c = (*reg)->Create("shop", "Asia/Shanghai");
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*reg)->Create("shop", "UTC").status().code(), StatusCode::kAlreadyExists);
  EXPECT_EQ((*reg)->Create("Bad Name", "UTC").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*reg)->Create("x", "Mars/Olympus").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*reg)->ByWriteKey(c->info.write_key)->name, "shop");
  EXPECT_EQ((*reg)->BySecretKey(c->secret_key)->name, "shop");
  EXPECT_EQ((*reg)->BySecretKey(c->info.write_key).status().code(), StatusCode::kUnauthenticated);
  auto rotated = (*reg)->RotateSecretKey("shop");
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ((*reg)->BySecretKey(c->secret_key).status().code(), StatusCode::kUnauthenticated);
  EXPECT_EQ((*reg)->BySecretKey(*rotated)->name, "shop");
  EXPECT_EQ((*reg)->RotateSecretKey("nope").status().code(), StatusCode::kNotFound);
}

// Every collection request asks for its write key's project: the answer is remembered, and an
// unknown key is asked again each time, so a project created by another process on the same
// data directory (`northstar admin create-project` beside a running server) is found.
TEST(ProjectRegistry, WriteKeysAreRememberedAndUnknownOnesAskedAgain) {
  testing::TempDir dir;
  auto reg = ProjectRegistry::Open(dir.path());
  ASSERT_TRUE(reg.ok());
  auto shop = (*reg)->Create("shop", "Asia/Shanghai");
  ASSERT_TRUE(shop.ok());
  for (int i = 0; i < 3; i++) {
    auto found = (*reg)->ByWriteKey(shop->info.write_key);
    ASSERT_TRUE(found.ok());
    EXPECT_EQ(found->name, "shop");
    EXPECT_EQ(found->timezone, "Asia/Shanghai");
  }
  EXPECT_EQ((*reg)->ByWriteKey("nsw_unknown").status().code(), StatusCode::kUnauthenticated);
  auto other = ProjectRegistry::Open(dir.path());  // as the CLI does beside the server
  ASSERT_TRUE(other.ok());
  auto blog = (*other)->Create("blog", "UTC");
  ASSERT_TRUE(blog.ok());
  EXPECT_EQ((*reg)->ByWriteKey(blog->info.write_key)->name, "blog");
  EXPECT_EQ((*reg)->ByWriteKey(shop->info.write_key)->name, "shop");
  // An open project is answered without asking the database, and stays the same object.
  auto p1 = (*reg)->OpenProject("shop");
  auto p2 = (*reg)->OpenProject("shop");
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(*p1, *p2);
  EXPECT_EQ((*reg)->OpenProject("nope").status().code(), StatusCode::kNotFound);
}

// Finding 19: 200 open projects cost 438 threads. Stores own no thread now: writes run on
// the callers' threads (group commit) and background work on the registry's runner.
TEST(ProjectRegistry, OpenProjectsShareTheBackgroundThreads) {
  testing::TempDir dir;
  StoreOptions so;
  so.flush_rows = 50;  // the runner flushes: background work really runs
  auto reg = ProjectRegistry::Open(dir.path(), so);
  ASSERT_TRUE(reg.ok());
  const int before = ThreadCount();
  constexpr int kProjects = 200;
  for (int i = 0; i < kProjects; i++) {
    std::string name = "p" + std::to_string(i);
    ASSERT_TRUE((*reg)->Create(name, "UTC").ok());
    auto p = (*reg)->OpenProject(name);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    std::vector<Event> events(60);
    for (int k = 0; k < 60; k++) {
      events[k].distinct_id = "u" + std::to_string(k % 7);
      events[k].event = "e";
      events[k].ts_ms = 1'700'000'000'000 + k;
    }
    ASSERT_TRUE((*p)->store->Append(std::move(events), Durability::kUnlogged).ok());
  }
  EXPECT_LE(ThreadCount() - before, (*reg)->background_threads()) << "threads grew with projects";
  // The runner flushes every project's memtable (over flush_rows) without a thread per store.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool flushed = false;
  while (!flushed && std::chrono::steady_clock::now() < deadline) {
    flushed = true;
    for (int i = 0; i < kProjects && flushed; i++)
      flushed = (*(*reg)->OpenProject("p" + std::to_string(i)))->store->memtable_rows() == 0;
    if (!flushed) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_TRUE(flushed);
  (*reg)->CloseAll();
}

TEST(MaintenanceRunner, RunsOnWakeNeverTwiceAtOnceAndSurvivesAThrow) {
  MaintenanceRunner runner(2, std::chrono::milliseconds(20));
  std::atomic<int> runs{0}, inside{0}, overlap{0};
  uint64_t id = runner.Add([&] {
    if (inside.fetch_add(1) != 0) overlap++;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    runs++;
    inside--;
  });
  uint64_t thrower = runner.Add([] { throw std::runtime_error("boom"); });
  for (int i = 0; i < 50; i++) runner.Wake(id);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (runs < 5 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_GE(runs.load(), 5) << "ticks keep running the task after another task threw";
  runner.Remove(id);
  int after = runs.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  EXPECT_EQ(runs.load(), after) << "a removed task never runs again";
  EXPECT_EQ(overlap.load(), 0);
  runner.Remove(thrower);
}

}  // namespace
}  // namespace ns
