#include "meta/meta_db.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>

namespace ns {

int64_t SqlRow::Int(size_t i) const {
  if (auto p = std::get_if<int64_t>(&cols[i])) return *p;
  if (auto p = std::get_if<double>(&cols[i])) return static_cast<int64_t>(*p);
  if (auto p = std::get_if<std::string>(&cols[i])) return std::atoll(p->c_str());
  return 0;
}

double SqlRow::Real(size_t i) const {
  if (auto p = std::get_if<double>(&cols[i])) return *p;
  if (auto p = std::get_if<int64_t>(&cols[i])) return static_cast<double>(*p);
  if (auto p = std::get_if<std::string>(&cols[i])) return std::atof(p->c_str());
  return 0;
}

std::string SqlRow::Str(size_t i) const {
  if (auto p = std::get_if<std::string>(&cols[i])) return *p;
  if (auto p = std::get_if<int64_t>(&cols[i])) return std::to_string(*p);
  if (auto p = std::get_if<double>(&cols[i])) return std::to_string(*p);
  return {};
}

MetaDb::~MetaDb() {
  for (auto& [sql, s] : stmts_) sqlite3_finalize(s);
  if (db_) sqlite3_close(db_);
}

Status MetaDb::Err(const std::string& what) {
  int code = sqlite3_extended_errcode(db_);
  std::string msg = what + ": " + sqlite3_errmsg(db_);
  if ((code & 0xff) == SQLITE_CONSTRAINT) {
    if (code == SQLITE_CONSTRAINT_UNIQUE || code == SQLITE_CONSTRAINT_PRIMARYKEY) return AlreadyExists(msg);
    return FailedPrecondition(msg);
  }
  if ((code & 0xff) == SQLITE_FULL || (code & 0xff) == SQLITE_READONLY || (code & 0xff) == SQLITE_BUSY ||
      (code & 0xff) == SQLITE_IOERR)
    return Unavailable(msg);
  return Internal(msg);
}

StatusOr<std::unique_ptr<MetaDb>> MetaDb::Open(const std::string& path) {
  auto db = std::unique_ptr<MetaDb>(new MetaDb());
  // Password hashes and channel secrets live here: owner only (issue 8, finding 18), also
  // for a file created by an older version.
  for (const char* suffix : {"", "-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  if (sqlite3_open_v2(path.c_str(), &db->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK)
    return Unavailable("cannot open metadata database " + path + ": " +
                       (db->db_ ? sqlite3_errmsg(db->db_) : "out of memory"));
  sqlite3_busy_timeout(db->db_, 5000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA foreign_keys=ON", "PRAGMA synchronous=FULL"})
    if (sqlite3_exec(db->db_, pragma, nullptr, nullptr, nullptr) != SQLITE_OK) return db->Err(pragma);
  NS_RETURN_IF_ERROR(db->UpgradeBookkeeping());
  return db;
}

// Until issue 9 the registry kept its own `schema_version` table beside the operations
// layer's `schema_migrations(version, ...)`. Both become rows of one table keyed by
// (subsystem, version); the registry's single version becomes "projects" 1.
Status MetaDb::UpgradeBookkeeping() {
  return Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(auto cols, Query("SELECT name FROM pragma_table_info('schema_migrations')"));
    bool has_table = !cols.empty(), has_subsystem = false;
    for (auto& c : cols) has_subsystem |= c.Str(0) == "subsystem";
    if (has_table && !has_subsystem) {
      NS_RETURN_IF_ERROR(Exec("ALTER TABLE schema_migrations RENAME TO schema_migrations_v1"));
      has_table = false;
    }
    if (!has_table)
      NS_RETURN_IF_ERROR(
          Exec("CREATE TABLE schema_migrations(subsystem TEXT NOT NULL, version INTEGER NOT NULL, "
               "description TEXT NOT NULL, applied_at INTEGER NOT NULL, PRIMARY KEY(subsystem, version))"));
    NS_ASSIGN_OR_RETURN(auto old, Query("SELECT name FROM sqlite_master WHERE type = 'table' AND name IN "
                                        "('schema_migrations_v1', 'schema_version')"));
    for (auto& t : old) {
      if (t.Str(0) == "schema_migrations_v1") {
        NS_RETURN_IF_ERROR(
            Exec("INSERT INTO schema_migrations(subsystem, version, description, applied_at) "
                 "SELECT 'ops', version, description, applied_at FROM schema_migrations_v1"));
        NS_RETURN_IF_ERROR(Exec("DROP TABLE schema_migrations_v1"));
      } else {
        NS_RETURN_IF_ERROR(
            Exec("INSERT OR IGNORE INTO schema_migrations(subsystem, version, description, applied_at) "
                 "VALUES('projects', 1, 'projects table (was schema_version 1)', strftime('%s','now'))"));
        NS_RETURN_IF_ERROR(Exec("DROP TABLE schema_version"));
      }
    }
    return Status::OK();
  });
}

Status MetaDb::Migrate(const std::string& subsystem, const std::vector<Migration>& migrations) {
  std::lock_guard lock(mu_);
  int have = SchemaVersion(subsystem);
  int last = 0;
  for (const Migration& m : migrations) {
    if (m.version <= last)
      return Internal(subsystem + " migration " + std::to_string(m.version) + " is out of order (after " +
                      std::to_string(last) + ")");
    last = m.version;
    if (m.version <= have) continue;
    Status st = Tx([&]() -> Status {
      char* err = nullptr;
      if (sqlite3_exec(db_, m.sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string e = err ? err : "unknown error";
        sqlite3_free(err);
        return Internal(subsystem + " migration " + std::to_string(m.version) + " (" + m.description +
                        ") failed: " + e);
      }
      return Exec(
          "INSERT INTO schema_migrations(subsystem, version, description, applied_at) "
          "VALUES(?, ?, ?, strftime('%s','now'))",
          {subsystem, int64_t{m.version}, std::string(m.description)});
    });
    NS_RETURN_IF_ERROR(st);
  }
  return Status::OK();
}

int MetaDb::SchemaVersion(const std::string& subsystem) {
  auto rows = Query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations WHERE subsystem = ?", {subsystem});
  return rows.ok() && !rows->empty() ? static_cast<int>((*rows)[0].Int(0)) : 0;
}

std::map<std::string, int> MetaDb::SchemaVersions() {
  std::map<std::string, int> out;
  auto rows = Query("SELECT subsystem, MAX(version) FROM schema_migrations GROUP BY subsystem");
  if (rows.ok())
    for (auto& r : *rows) out[r.Str(0)] = static_cast<int>(r.Int(1));
  return out;
}

StatusOr<sqlite3_stmt*> MetaDb::Prepare(const std::string& sql) {
  auto it = stmts_.find(sql);
  if (it != stmts_.end()) {
    sqlite3_reset(it->second);
    sqlite3_clear_bindings(it->second);
    return it->second;
  }
  sqlite3_stmt* s = nullptr;
  if (sqlite3_prepare_v2(db_, sql.c_str(), static_cast<int>(sql.size()), &s, nullptr) != SQLITE_OK)
    return Err("prepare '" + sql + "'");
  stmts_[sql] = s;
  return s;
}

Status MetaDb::Bind(sqlite3_stmt* s, const std::vector<SqlValue>& args, const std::string& sql) {
  if (static_cast<int>(args.size()) != sqlite3_bind_parameter_count(s))
    return Internal("statement '" + sql + "' takes " + std::to_string(sqlite3_bind_parameter_count(s)) +
                    " parameters, got " + std::to_string(args.size()));
  for (size_t i = 0; i < args.size(); i++) {
    int k = static_cast<int>(i + 1);
    const SqlValue& v = args[i];
    int rc;
    if (std::holds_alternative<std::nullptr_t>(v))
      rc = sqlite3_bind_null(s, k);
    else if (auto p = std::get_if<int64_t>(&v))
      rc = sqlite3_bind_int64(s, k, *p);
    else if (auto p = std::get_if<double>(&v))
      rc = sqlite3_bind_double(s, k, *p);
    else {
      const auto& str = std::get<std::string>(v);
      rc = sqlite3_bind_text(s, k, str.data(), static_cast<int>(str.size()), SQLITE_TRANSIENT);
    }
    if (rc != SQLITE_OK) return Err("bind");
  }
  return Status::OK();
}

StatusOr<std::vector<SqlRow>> MetaDb::Query(const std::string& sql, const std::vector<SqlValue>& args) {
  std::lock_guard lock(mu_);
  NS_ASSIGN_OR_RETURN(sqlite3_stmt * s, Prepare(sql));
  NS_RETURN_IF_ERROR(Bind(s, args, sql));
  std::vector<SqlRow> rows;
  int n = sqlite3_column_count(s);
  for (;;) {
    int rc = sqlite3_step(s);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      Status st = Err("query");
      sqlite3_reset(s);
      return st;
    }
    SqlRow row;
    row.cols.reserve(static_cast<size_t>(n));
    for (int i = 0; i < n; i++) {
      switch (sqlite3_column_type(s, i)) {
        case SQLITE_NULL: row.cols.emplace_back(nullptr); break;
        case SQLITE_INTEGER: row.cols.emplace_back(static_cast<int64_t>(sqlite3_column_int64(s, i))); break;
        case SQLITE_FLOAT: row.cols.emplace_back(sqlite3_column_double(s, i)); break;
        default: {
          auto p = reinterpret_cast<const char*>(sqlite3_column_text(s, i));
          row.cols.emplace_back(std::string(p ? p : "", static_cast<size_t>(sqlite3_column_bytes(s, i))));
        }
      }
    }
    rows.push_back(std::move(row));
  }
  sqlite3_reset(s);
  return rows;
}

Status MetaDb::Exec(const std::string& sql, const std::vector<SqlValue>& args) {
  std::lock_guard lock(mu_);
  NS_ASSIGN_OR_RETURN(sqlite3_stmt * s, Prepare(sql));
  NS_RETURN_IF_ERROR(Bind(s, args, sql));
  int rc;
  while ((rc = sqlite3_step(s)) == SQLITE_ROW) {}
  Status st = rc == SQLITE_DONE ? Status::OK() : Err("exec");
  sqlite3_reset(s);
  return st;
}

StatusOr<int64_t> MetaDb::Insert(const std::string& sql, const std::vector<SqlValue>& args) {
  std::lock_guard lock(mu_);
  NS_RETURN_IF_ERROR(Exec(sql, args));
  return static_cast<int64_t>(sqlite3_last_insert_rowid(db_));
}

int64_t MetaDb::Changes() {
  std::lock_guard lock(mu_);
  return sqlite3_changes(db_);
}

Status MetaDb::Tx(const std::function<Status()>& fn) {
  std::lock_guard lock(mu_);
  if (tx_depth_ > 0) {
    tx_depth_++;
    Status st = fn();
    tx_depth_--;
    return st;
  }
  if (sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return Err("begin");
  tx_depth_ = 1;
  Status st;
  try {
    st = fn();
  } catch (...) {
    tx_depth_ = 0;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    throw;
  }
  tx_depth_ = 0;
  if (!st.ok()) {
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return st;
  }
  if (sqlite3_exec(db_, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
    Status e = Err("commit");
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return e;
  }
  return Status::OK();
}

Status MetaDb::Backup(const std::string& out_path) {
  std::lock_guard lock(mu_);
  sqlite3* dst = nullptr;
  if (sqlite3_open(out_path.c_str(), &dst) != SQLITE_OK) {
    std::string e = dst ? sqlite3_errmsg(dst) : "out of memory";
    sqlite3_close(dst);
    return Unavailable("cannot create backup " + out_path + ": " + e);
  }
  sqlite3_backup* b = sqlite3_backup_init(dst, "main", db_, "main");
  if (!b) {
    std::string e = sqlite3_errmsg(dst);
    sqlite3_close(dst);
    return Internal("backup: " + e);
  }
  int rc = sqlite3_backup_step(b, -1);
  sqlite3_backup_finish(b);
  std::string e = sqlite3_errmsg(dst);
  sqlite3_close(dst);
  if (rc != SQLITE_DONE) return Unavailable("backup to " + out_path + " failed: " + e);
  return Status::OK();
}

}  // namespace ns
