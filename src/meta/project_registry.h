// Projects (tenants) and their keys, kept in the metadata store (SQLite, data/meta.db),
// and the open event store of each project (data/projects/<name>/).
// A write key can only ingest; a secret key reads and administers. Secret keys are
// stored as SHA-256 hashes and shown once, at creation.
// Threading: all methods are thread-safe.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "storage/event_store.h"

struct sqlite3;

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

struct Project {
  ProjectInfo info;
  TimeZone tz;
  std::unique_ptr<EventStore> store;
};

class ProjectRegistry {
 public:
  ~ProjectRegistry();
  static StatusOr<std::unique_ptr<ProjectRegistry>> Open(const std::string& data_dir, StoreOptions store_options = {});

  StatusOr<CreatedProject> Create(const std::string& name, const std::string& timezone);
  StatusOr<ProjectInfo> Get(const std::string& name);
  std::vector<ProjectInfo> List();
  // A new secret key for the project (the old one stops working).
  StatusOr<std::string> RotateSecretKey(const std::string& name);

  // Authentication: the project a key belongs to. Unauthenticated if none.
  StatusOr<ProjectInfo> ByWriteKey(const std::string& key);
  StatusOr<ProjectInfo> BySecretKey(const std::string& key);

  // The project's open store (opened on first use and kept open).
  StatusOr<Project*> OpenProject(const std::string& name);
  const std::string& data_dir() const { return dir_; }
  // Closes every open store (flushing memtables).
  void CloseAll();

 private:
  Status Exec(const std::string& sql);
  std::string dir_;
  StoreOptions store_options_;
  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::map<std::string, std::unique_ptr<Project>> open_;
};

Status ValidateProjectName(const std::string& name);
std::string Sha256Hex(const std::string& s);
std::string RandomToken(const std::string& prefix, size_t hex_chars);

}  // namespace ns
