// The metadata store of the whole server: one SQLite database (data/meta.db) in WAL mode
// with foreign keys on, one connection shared by every subsystem (the project registry,
// accounts, operations), each applying its own versioned migrations (Migrate), and every
// statement prepared once and cached. Callers speak plain parameterised SQL of the subset SQLite and
// PostgreSQL share (no SQLite-only functions), so a PostgreSQL MetaDb can replace this one
// behind the same interface (docs/decisions.md).
// Threading: thread-safe; one connection, serialised by a recursive mutex (Tx nests).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace ns {

using SqlValue = std::variant<std::nullptr_t, int64_t, double, std::string>;

struct SqlRow {
  std::vector<SqlValue> cols;
  bool IsNull(size_t i) const { return std::holds_alternative<std::nullptr_t>(cols[i]); }
  int64_t Int(size_t i) const;
  double Real(size_t i) const;
  std::string Str(size_t i) const;
};

struct Migration {
  int version;
  const char* description;
  const char* sql;  // may hold several statements
};

class MetaDb {
 public:
  ~MetaDb();
  // Opens (creating, owner-only) the database. A database of an older layout (the registry's
  // own schema_version table, migrations without a subsystem) is brought to this one.
  static StatusOr<std::unique_ptr<MetaDb>> Open(const std::string& path);
  // Applies the subsystem's migrations not yet applied, each in a transaction, recording
  // them in schema_migrations under (subsystem, version). Each subsystem calls it once
  // when it opens; versions count per subsystem.
  Status Migrate(const std::string& subsystem, const std::vector<Migration>& migrations);

  Status Exec(const std::string& sql, const std::vector<SqlValue>& args = {});
  StatusOr<std::vector<SqlRow>> Query(const std::string& sql, const std::vector<SqlValue>& args = {});
  // Inserts and returns the new row id.
  StatusOr<int64_t> Insert(const std::string& sql, const std::vector<SqlValue>& args = {});
  // Number of rows changed by the last Exec.
  int64_t Changes();
  // Runs fn in one transaction (BEGIN IMMEDIATE); rolls back if fn fails. Nests.
  Status Tx(const std::function<Status()>& fn);
  // A consistent online copy of the whole database (SQLite backup API).
  Status Backup(const std::string& out_path);
  // The newest applied migration of a subsystem (0 if none).
  int SchemaVersion(const std::string& subsystem);
  // Every subsystem's newest applied migration.
  std::map<std::string, int> SchemaVersions();

 private:
  StatusOr<sqlite3_stmt*> Prepare(const std::string& sql);
  Status Bind(sqlite3_stmt* s, const std::vector<SqlValue>& args, const std::string& sql);
  Status Err(const std::string& what);
  Status UpgradeBookkeeping();
  sqlite3* db_ = nullptr;
  std::recursive_mutex mu_;
  int tx_depth_ = 0;
  std::map<std::string, sqlite3_stmt*> stmts_;
};

}  // namespace ns
