// Projects (tenants) and their keys, kept in the metadata store (SQLite, data/meta.db),
// and the open event store of each project (data/projects/<name>/).
// A write key can only ingest; a secret key reads and administers. Secret keys are
// stored as SHA-256 hashes and shown once, at creation.
// Threading: all methods are thread-safe.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/mutex.h"
#include "core/status.h"
#include "core/time_zone.h"
#include "meta/meta_db.h"
#include "storage/event_store.h"
#include "storage/maintenance_runner.h"

namespace ns {

struct ProjectInfo {
  std::string name;
  std::string timezone;
  std::string write_key;
  int64_t created_at_ms = 0;
};

struct CreatedProject {
  ProjectInfo info;
  std::string secret_key;  // plain text: returned once
};

// Events before 2000-01-01 are refused by default as implausible (docs/api.md).
constexpr int64_t kDefaultEarliestEventMs = 946'684'800'000;

struct Project {
  ProjectInfo info;
  TimeZone tz;
  std::unique_ptr<EventStore> store;
  // The earliest accepted event time (UTC midnight of the project's earliest_event_date
  // setting), read by every ingest path; PATCH /api/v1/settings updates it.
  std::atomic<int64_t> earliest_event_ms{kDefaultEarliestEventMs};
};

class ProjectRegistry {
 public:
  ~ProjectRegistry();
  // Opens data_dir/meta.db (the one metadata database every subsystem shares: meta_db())
  // and applies the registry's migrations. Stores opened later share one MaintenanceRunner
  // when store_options.background is on.
  static StatusOr<std::unique_ptr<ProjectRegistry>> Open(const std::string& data_dir, StoreOptions store_options = {});
  MetaDb& meta_db() { return *db_; }

  StatusOr<CreatedProject> Create(const std::string& name, const std::string& timezone);
  StatusOr<ProjectInfo> Get(const std::string& name);
  std::vector<ProjectInfo> List();
  // The project's earliest_event_date setting (project_settings, the operations layer's
  // table) as UTC ms; the default when unset or when the table does not exist yet.
  int64_t EarliestEventMs(const std::string& name);
  // A new secret key for the project (the old one stops working).
  StatusOr<std::string> RotateSecretKey(const std::string& name);

  // Authentication: the project a key belongs to. Unauthenticated if none. Write keys found
  // are remembered: every collection request asks, and a write key never changes nor is
  // removed (no rotation, no project deletion; either would have to forget it here).
  StatusOr<ProjectInfo> ByWriteKey(const std::string& key);
  StatusOr<ProjectInfo> BySecretKey(const std::string& key);

  // The project's open store (opened on first use and kept open).
  StatusOr<Project*> OpenProject(const std::string& name);
  const std::string& data_dir() const { return dir_; }
  // Closes every open store (flushing memtables).
  void CloseAll() EXCLUDES(mu_);
  // Threads of the shared background runner (0 without background work).
  int background_threads() const { return runner_ ? runner_->threads() : 0; }

 private:
  std::string dir_;
  StoreOptions store_options_;
  std::unique_ptr<MetaDb> db_;
  // Declared before open_: the stores remove their tasks from it as they close.
  std::unique_ptr<MaintenanceRunner> runner_;
  Mutex mu_;
  std::map<std::string, std::unique_ptr<Project>> open_ GUARDED_BY(mu_);
  std::unordered_map<std::string, ProjectInfo> by_write_key_ GUARDED_BY(mu_);
};

// The registry's migrations (subsystem "projects").
const std::vector<Migration>& RegistryMigrations();

Status ValidateProjectName(const std::string& name);
std::string Sha256Hex(const std::string& s);
std::string RandomToken(const std::string& prefix, size_t hex_chars);

}  // namespace ns
