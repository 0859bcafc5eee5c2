#include "meta/project_registry.h"

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <chrono>

#include "core/file_util.h"

namespace ns {

namespace {

// RAII prepared statement.
class Stmt {
 public:
  Stmt(sqlite3* db, const char* sql) { sqlite3_prepare_v2(db, sql, -1, &s_, nullptr); }
  ~Stmt() { sqlite3_finalize(s_); }
  bool ok() const { return s_ != nullptr; }
  Stmt& Bind(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& Bind(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  int Step() { return sqlite3_step(s_); }
  std::string Text(int i) {
    auto p = sqlite3_column_text(s_, i);
    return p ? reinterpret_cast<const char*>(p) : "";
  }
  int64_t Int(int i) { return sqlite3_column_int64(s_, i); }

 private:
  sqlite3_stmt* s_ = nullptr;
};

ProjectInfo RowInfo(Stmt& s) { return ProjectInfo{s.Text(0), s.Text(1), s.Text(2), s.Int(3)}; }

}  // namespace

std::string Sha256Hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned i = 0; i < len; i++) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

std::string RandomToken(const std::string& prefix, size_t hex_chars) {
  std::string bytes((hex_chars + 1) / 2, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  static const char* kHex = "0123456789abcdef";
  std::string out = prefix;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  out.resize(prefix.size() + hex_chars);
  return out;
}

Status ValidateProjectName(const std::string& name) {
  if (name.empty() || name.size() > 64)
    return InvalidArgument("project name must be 1 to 64 characters, got " + std::to_string(name.size()), "project");
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-'))
      return InvalidArgument("project name '" + name + "' may contain only a-z, 0-9, '_' and '-'", "project");
  return Status::OK();
}

ProjectRegistry::~ProjectRegistry() {
  CloseAll();
  if (db_) sqlite3_close(db_);
}

Status ProjectRegistry::Exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string m = err ? err : "unknown error";
    sqlite3_free(err);
    return Internal("metadata store: " + m);
  }
  return Status::OK();
}

StatusOr<std::unique_ptr<ProjectRegistry>> ProjectRegistry::Open(const std::string& data_dir, StoreOptions store_options) {
  NS_RETURN_IF_ERROR(MakeDirs(data_dir + "/projects"));
  auto r = std::unique_ptr<ProjectRegistry>(new ProjectRegistry());
  r->dir_ = data_dir;
  r->store_options_ = store_options;
  std::string path = data_dir + "/meta.db";
  // Password hashes, channel secrets and events live here: owner only (finding 18). Files
  // created later inherit the process umask (0077, set in main); older directories are fixed.
  ::chmod(data_dir.c_str(), 0700);
  for (const char* suffix : {"", "-wal", "-shm"}) ::chmod((path + suffix).c_str(), 0600);
  if (sqlite3_open_v2(path.c_str(), &r->db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK)
    return Unavailable("cannot open metadata store " + path + ": " + sqlite3_errmsg(r->db_));
  sqlite3_busy_timeout(r->db_, 5000);
  NS_RETURN_IF_ERROR(r->Exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON; PRAGMA synchronous=FULL;"));
  NS_RETURN_IF_ERROR(r->Exec(
      "CREATE TABLE IF NOT EXISTS schema_version(version INTEGER NOT NULL);"
      "CREATE TABLE IF NOT EXISTS projects(name TEXT PRIMARY KEY, timezone TEXT NOT NULL, write_key TEXT NOT NULL UNIQUE,"
      " secret_key_sha256 TEXT NOT NULL UNIQUE, created_at_ms INTEGER NOT NULL);"));
  {
    Stmt s(r->db_, "SELECT COUNT(*) FROM schema_version");
    if (s.ok() && s.Step() == SQLITE_ROW && s.Int(0) == 0) NS_RETURN_IF_ERROR(r->Exec("INSERT INTO schema_version VALUES(1)"));
  }
  return r;
}

StatusOr<CreatedProject> ProjectRegistry::Create(const std::string& name, const std::string& timezone) {
  NS_RETURN_IF_ERROR(ValidateProjectName(name));
  NS_ASSIGN_OR_RETURN(TimeZone tz, TimeZone::Load(timezone));
  CreatedProject c;
  c.info = ProjectInfo{name, tz.name(), RandomToken("nsw_", 32), NowMs()};
  c.secret_key = RandomToken("nss_", 40);
  std::lock_guard lk(mu_);
  Stmt s(db_, "INSERT INTO projects(name, timezone, write_key, secret_key_sha256, created_at_ms) VALUES(?,?,?,?,?)");
  s.Bind(1, name).Bind(2, c.info.timezone).Bind(3, c.info.write_key).Bind(4, Sha256Hex(c.secret_key)).Bind(5, c.info.created_at_ms);
  int rc = s.Step();
  if (rc == SQLITE_CONSTRAINT) return AlreadyExists("project '" + name + "' already exists");
  if (rc != SQLITE_DONE) return Internal(std::string("metadata store: ") + sqlite3_errmsg(db_));
  return c;
}

StatusOr<ProjectInfo> ProjectRegistry::Get(const std::string& name) {
  std::lock_guard lk(mu_);
  Stmt s(db_, "SELECT name, timezone, write_key, created_at_ms FROM projects WHERE name = ?");
  s.Bind(1, name);
  if (s.Step() != SQLITE_ROW) return NotFound("no project named '" + name + "'");
  return RowInfo(s);
}

std::vector<ProjectInfo> ProjectRegistry::List() {
  std::lock_guard lk(mu_);
  std::vector<ProjectInfo> out;
  Stmt s(db_, "SELECT name, timezone, write_key, created_at_ms FROM projects ORDER BY name");
  while (s.Step() == SQLITE_ROW) out.push_back(RowInfo(s));
  return out;
}

StatusOr<std::string> ProjectRegistry::RotateSecretKey(const std::string& name) {
  std::string key = RandomToken("nss_", 40);
  std::lock_guard lk(mu_);
  Stmt s(db_, "UPDATE projects SET secret_key_sha256 = ? WHERE name = ?");
  s.Bind(1, Sha256Hex(key)).Bind(2, name);
  if (s.Step() != SQLITE_DONE) return Internal(std::string("metadata store: ") + sqlite3_errmsg(db_));
  if (sqlite3_changes(db_) == 0) return NotFound("no project named '" + name + "'");
  return key;
}

StatusOr<ProjectInfo> ProjectRegistry::ByWriteKey(const std::string& key) {
  std::lock_guard lk(mu_);
  Stmt s(db_, "SELECT name, timezone, write_key, created_at_ms FROM projects WHERE write_key = ?");
  s.Bind(1, key);
  if (s.Step() != SQLITE_ROW) return Unauthenticated("unknown write key");
  return RowInfo(s);
}

StatusOr<ProjectInfo> ProjectRegistry::BySecretKey(const std::string& key) {
  std::lock_guard lk(mu_);
  Stmt s(db_, "SELECT name, timezone, write_key, created_at_ms FROM projects WHERE secret_key_sha256 = ?");
  s.Bind(1, Sha256Hex(key));
  if (s.Step() != SQLITE_ROW) return Unauthenticated("unknown secret key");
  return RowInfo(s);
}

StatusOr<Project*> ProjectRegistry::OpenProject(const std::string& name) {
  NS_ASSIGN_OR_RETURN(ProjectInfo info, Get(name));
  std::lock_guard lk(mu_);
  auto it = open_.find(name);
  if (it != open_.end()) return it->second.get();
  auto p = std::make_unique<Project>();
  p->info = info;
  NS_ASSIGN_OR_RETURN(p->tz, TimeZone::Load(info.timezone));
  NS_ASSIGN_OR_RETURN(p->store, EventStore::Open(dir_ + "/projects/" + name, store_options_));
  Project* raw = p.get();
  open_[name] = std::move(p);
  return raw;
}

void ProjectRegistry::CloseAll() {
  std::lock_guard lk(mu_);
  open_.clear();
}

}  // namespace ns
