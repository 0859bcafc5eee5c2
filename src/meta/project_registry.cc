#include "meta/project_registry.h"

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <chrono>

#include "core/file_util.h"

namespace ns {

namespace {

constexpr const char* kInfoColumns = "SELECT name, timezone, write_key, created_at_ms FROM projects";

ProjectInfo RowInfo(const SqlRow& r) { return ProjectInfo{r.Str(0), r.Str(1), r.Str(2), r.Int(3)}; }

}  // namespace

const std::vector<Migration>& RegistryMigrations() {
  // IF NOT EXISTS: databases made before the registry used MetaDb already have the table.
  static const std::vector<Migration> kMigrations = {
      {1, "projects and their keys",
       "CREATE TABLE IF NOT EXISTS projects(name TEXT PRIMARY KEY, timezone TEXT NOT NULL, "
       "write_key TEXT NOT NULL UNIQUE, secret_key_sha256 TEXT NOT NULL UNIQUE, created_at_ms INTEGER NOT NULL);"},
  };
  return kMigrations;
}

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

ProjectRegistry::~ProjectRegistry() { CloseAll(); }

StatusOr<std::unique_ptr<ProjectRegistry>> ProjectRegistry::Open(const std::string& data_dir,
                                                                 StoreOptions store_options) {
  NS_RETURN_IF_ERROR(MakeDirs(data_dir + "/projects"));
  auto r = std::unique_ptr<ProjectRegistry>(new ProjectRegistry());
  r->dir_ = data_dir;
  r->store_options_ = store_options;
  // Events live here: owner only (finding 18); a directory made by an older version is fixed.
  ::chmod(data_dir.c_str(), 0700);
  NS_ASSIGN_OR_RETURN(r->db_, MetaDb::Open(data_dir + "/meta.db"));
  NS_RETURN_IF_ERROR(r->db_->Migrate("projects", RegistryMigrations()));
  if (store_options.background && !store_options.runner) {
    r->runner_ = std::make_unique<MaintenanceRunner>(2);
    r->store_options_.runner = r->runner_.get();
  }
  return r;
}

StatusOr<CreatedProject> ProjectRegistry::Create(const std::string& name, const std::string& timezone) {
  NS_RETURN_IF_ERROR(ValidateProjectName(name));
  NS_ASSIGN_OR_RETURN(TimeZone tz, TimeZone::Load(timezone));
  CreatedProject c;
  c.info = ProjectInfo{name, tz.name(), RandomToken("nsw_", 32), NowMs()};
  c.secret_key = RandomToken("nss_", 40);
  Status st =
      db_->Exec("INSERT INTO projects(name, timezone, write_key, secret_key_sha256, created_at_ms) VALUES(?,?,?,?,?)",
                {name, c.info.timezone, c.info.write_key, Sha256Hex(c.secret_key), c.info.created_at_ms});
  if (st.code() == StatusCode::kAlreadyExists) return AlreadyExists("project '" + name + "' already exists");
  NS_RETURN_IF_ERROR(st);
  return c;
}

StatusOr<ProjectInfo> ProjectRegistry::Get(const std::string& name) {
  NS_ASSIGN_OR_RETURN(auto rows, db_->Query(std::string(kInfoColumns) + " WHERE name = ?", {name}));
  if (rows.empty()) return NotFound("no project named '" + name + "'");
  return RowInfo(rows[0]);
}

std::vector<ProjectInfo> ProjectRegistry::List() {
  std::vector<ProjectInfo> out;
  auto rows = db_->Query(std::string(kInfoColumns) + " ORDER BY name");
  if (rows.ok())
    for (auto& r : *rows) out.push_back(RowInfo(r));
  return out;
}

StatusOr<std::string> ProjectRegistry::RotateSecretKey(const std::string& name) {
  std::string key = RandomToken("nss_", 40);
  int64_t changed = 0;
  NS_RETURN_IF_ERROR(db_->Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(db_->Exec("UPDATE projects SET secret_key_sha256 = ? WHERE name = ?", {Sha256Hex(key), name}));
    changed = db_->Changes();
    return Status::OK();
  }));
  if (changed == 0) return NotFound("no project named '" + name + "'");
  return key;
}

StatusOr<ProjectInfo> ProjectRegistry::ByWriteKey(const std::string& key) {
  {
    MutexLock l(&mu_);
    if (auto it = by_write_key_.find(key); it != by_write_key_.end()) return it->second;
  }
  NS_ASSIGN_OR_RETURN(auto rows, db_->Query(std::string(kInfoColumns) + " WHERE write_key = ?", {key}));
  if (rows.empty()) return Unauthenticated("unknown write key");
  ProjectInfo info = RowInfo(rows[0]);
  MutexLock l(&mu_);
  by_write_key_.emplace(key, info);
  return info;
}

StatusOr<ProjectInfo> ProjectRegistry::BySecretKey(const std::string& key) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_->Query(std::string(kInfoColumns) + " WHERE secret_key_sha256 = ?", {Sha256Hex(key)}));
  if (rows.empty()) return Unauthenticated("unknown secret key");
  return RowInfo(rows[0]);
}

StatusOr<Project*> ProjectRegistry::OpenProject(const std::string& name) {
  {
    MutexLock l(&mu_);
    if (auto it = open_.find(name); it != open_.end()) return it->second.get();
  }
  NS_ASSIGN_OR_RETURN(ProjectInfo info, Get(name));
  MutexLock l(&mu_);
  auto it = open_.find(name);
  if (it != open_.end()) return it->second.get();
  auto p = std::make_unique<Project>();
  p->info = info;
  NS_ASSIGN_OR_RETURN(p->tz, TimeZone::Load(info.timezone));
  NS_ASSIGN_OR_RETURN(p->store, EventStore::Open(dir_ + "/projects/" + name, store_options_));
  p->earliest_event_ms = EarliestEventMs(name);
  Project* raw = p.get();
  open_[name] = std::move(p);
  return raw;
}

int64_t ProjectRegistry::EarliestEventMs(const std::string& name) {
  auto rows =
      db_->Query("SELECT value FROM project_settings WHERE project = ? AND key = 'earliest_event_date'", {name});
  if (!rows.ok() || rows->empty()) return kDefaultEarliestEventMs;  // unset, or no table before ops' migrations
  auto day = ParseDate((*rows)[0].Str(0), "earliest_event_date");
  return day.ok() ? int64_t{*day} * 86'400'000 : kDefaultEarliestEventMs;
}

void ProjectRegistry::CloseAll() {
  std::map<std::string, std::unique_ptr<Project>> closing;
  {
    MutexLock l(&mu_);
    closing.swap(open_);
  }
  closing.clear();  // flushes each store, outside the lock
}

}  // namespace ns
