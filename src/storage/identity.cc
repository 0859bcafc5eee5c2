#include "storage/identity.h"

#include <algorithm>
#include <map>
#include <set>
#include <utility>

#include <spdlog/spdlog.h>

#include "core/env.h"
#include "storage/binary_io.h"

namespace ns {
namespace {
enum RecordType : uint8_t {
  kNewDid = 1,
  kMerge = 2,
  kSet = 3,
  kSetOnce = 4,
  kIdentified = 5,
  kErased = 6,
  kCompacted = 7,  // starts a file holding the whole state (RewriteWithoutErased)
};

// The distinct id string a rewritten log gives an erased did (RewriteWithoutErased): NUL and
// the did's number. Unique, so every did keeps its own index entry until its erasure
// entry, and never a real id (ids with control characters are refused at ingest).
std::string ErasedPlaceholder(uint32_t did) { return std::string(1, '\0') + std::to_string(did); }
bool IsPlaceholder(std::string_view id) { return !id.empty() && id[0] == '\0'; }

// Sets bit `i` of a per-did vector, growing it.
void SetBit(std::vector<uint8_t>& v, size_t i) {
  if (v.size() <= i) v.resize(i + 1, 0);
  v[i] = 1;
}
bool Bit(const std::vector<uint8_t>& v, size_t i) { return i < v.size() && v[i]; }
}  // namespace

StatusOr<std::unique_ptr<IdentityMap>> IdentityMap::Open(Env* env, const std::string& dir) {
  NS_RETURN_IF_ERROR(env->CreateDirs(dir));
  auto m = std::unique_ptr<IdentityMap>(new IdentityMap());
  m->dir_ = dir;
  m->env_ = env;
  m->recovering_ = true;  // until EndRecovery: the store's WAL replay asks ErasedInWal
  NS_RETURN_IF_ERROR(m->Load());
  return m;
}

IdentityLogReport IdentityMap::Inspect(Env* env, const std::string& dir) {
  IdentityLogReport out;
  IdentityMap m;
  m.dir_ = dir;
  m.env_ = env;
  auto seqs = ListWalFiles(env, dir);
  if (!seqs.ok()) return out;  // no identity log yet
  std::lock_guard lk(m.mu_);
  for (uint64_t s : *seqs) {
    WalReplayStats st;
    m.replay_seq_ = s;
    bool first = true;
    Status rs = ReplayWal(
        env, dir, s, /*truncate=*/false,
        [&](std::string_view p) {
          const bool file_start = std::exchange(first, false);
          return m.ApplyRecord(p, file_start);
        },
        &st);
    if (!rs.ok()) {
      out.problems.push_back(dir + "/" + WalFileName(s) + ": " + rs.message());
      break;  // later files would misnumber the distinct ids
    }
    if (st.truncated_bytes)
      out.torn_tails.push_back(dir + "/" + WalFileName(s) + ": torn tail of " + std::to_string(st.truncated_bytes) +
                               " bytes");
  }
  out.distinct_ids = m.ids_.size();
  for (size_t d = 0; d < m.erased_.size(); d++) {
    if (!m.erased_[d]) continue;
    out.erased_ids_on_disk += Bit(m.string_on_disk_, d);
    out.erased_props_on_disk += Bit(m.props_on_disk_, d);
  }
  out.erased = std::move(m.erased_);
  return out;
}

void IdentityMap::ResetState() {
  ids_.Reset();
  parent_.clear();
  members_.clear();
  moved_.clear();
  columns_.clear();
  newest_did_.clear();
  identified_.clear();
  did_identified_.clear();
  newest_identified_did_.clear();
  erased_.clear();
  erased_list_.clear();
  erased_shared_.reset();
  erased_list_shared_.reset();
  replay_erased_.clear();
  max_erase_wal_seq_ = 0;
  version_++;
  merge_version_++;
  snapshot_.reset();
}

Status IdentityMap::Load() {
  std::lock_guard lk(mu_);
  reloads_++;
  ResetState();
  string_on_disk_.clear();
  props_on_disk_.clear();
  compacted_seq_ = 0;
  pending_.clear();
  log_.reset();
  NS_ASSIGN_OR_RETURN(auto seqs, ListWalFiles(env_, dir_));
  uint64_t seq = seqs.empty() ? 1 : seqs.back();
  for (uint64_t s : seqs) {
    WalReplayStats st;
    replay_seq_ = s;
    bool first = true;
    Status rs = ReplayWal(
        env_, dir_, s, /*truncate=*/true,
        [&](std::string_view p) {
          const bool file_start = std::exchange(first, false);
          return ApplyRecord(p, file_start);
        },
        &st);
    if (!rs.ok()) return Status(rs.code(), dir_ + "/" + WalFileName(s) + ": " + rs.message());
    if (st.truncated_bytes)
      spdlog::warn("identity log {}/{}: truncated a torn tail of {} bytes (an unacknowledged write)", dir_,
                   WalFileName(s), st.truncated_bytes);
  }
  // What an interrupted rewrite (RewriteWithoutErased) left: the files its new one
  // supersedes (newest first, so a crash here too leaves a log that replays), and its
  // unfinished temporary file.
  bool removed = false;
  for (auto it = seqs.rbegin(); it != seqs.rend(); ++it)
    if (*it < compacted_seq_) removed |= env_->RemoveFile(dir_ + "/" + WalFileName(*it)).ok();
  if (auto names = env_->ListDir(dir_); names.ok())
    for (const auto& n : *names)
      if (n.size() > 8 && n.compare(n.size() - 8, 8, ".wal.tmp") == 0) removed |= env_->RemoveFile(dir_ + "/" + n).ok();
  if (removed) (void)env_->SyncDir(dir_);
  NS_ASSIGN_OR_RETURN(log_, WalWriter::Open(env_, dir_, seq));
  return Status::OK();
}

Status IdentityMap::ApplyRecord(std::string_view payload, bool file_start) {
  BinReader r(payload);
  bool first = file_start;
  while (r.remaining() > 0 && r.ok()) {
    uint8_t type = r.U8();
    const bool at_start = std::exchange(first, false);
    if (type == kCompacted) {
      (void)r.U64();  // the last file it supersedes: for people reading the log
      if (!r.ok() || !at_start)
        return Corruption("identity log: a compaction entry (type 7) that does not start its file");
      // Everything the files before this one said is in this one: start over.
      ResetState();
      compacted_seq_ = replay_seq_;
    } else if (type == kNewDid) {
      uint32_t expect = r.U32();
      std::string_view id = r.Str();
      if (!r.ok()) return Corruption("identity log: truncated record");
      if (expect != ids_.size())
        return Corruption("identity log: distinct id #" + std::to_string(expect) + " follows #" +
                          std::to_string(ids_.size() - 1) + " (records are missing)");
      // A string gets a new did only once its previous did was erased (Resolve finds it
      // otherwise): a second live did of one string could never be found again.
      if (const int64_t older = ids_.Find(id); older >= 0)
        return Corruption("identity log: distinct id #" + std::to_string(expect) + " repeats the id of #" +
                          std::to_string(older));
      NewDid(id);
    } else if (type == kMerge) {
      uint32_t a = r.U32(), b = r.U32();
      if (r.ok() && a < ids_.size() && b < ids_.size()) DoMerge(a, b);
    } else if (type == kIdentified) {
      uint32_t did = r.U32();
      if (r.ok() && did < ids_.size()) {
        const uint32_t root = Find(did);
        identified_[root] = 1;
        did_identified_[did] = 1;
        newest_identified_did_[root] = std::max<int64_t>(newest_identified_did_[root], did);
      }
    } else if (type == kErased) {
      (void)r.U64();  // the tombstone id: for the audit trail, not needed to replay
      const uint64_t wal_seq = r.U64();
      const uint32_t n = r.U32();
      if (!r.ok() || n > r.remaining() / 4) return Corruption("identity log: truncated erasure record");
      std::vector<uint32_t> dids(n);
      for (auto& d : dids) d = r.U32();
      if (r.ok()) DoErase(dids, wal_seq);
    } else if (type == kSet || type == kSetOnce) {
      uint32_t did = r.U32();
      std::vector<Property> props;
      if (DecodeProperties(r, &props) && did < ids_.size()) {
        SetBit(props_on_disk_, did);
        DoSet(did, props, type == kSetOnce);
      }
    } else {
      return Corruption("identity log: unknown record type " + std::to_string(type) +
                        " (written by a newer version of northstar?)");
    }
  }
  return Status::OK();
}

void IdentityMap::NewDid(std::string_view id) {
  uint32_t did = static_cast<uint32_t>(ids_.size());
  if (!id.empty() && !IsPlaceholder(id)) SetBit(string_on_disk_, did);
  ids_.Add(id);
  parent_.push_back(did);
  newest_did_.push_back(did);
  identified_.push_back(0);
  did_identified_.push_back(0);
  newest_identified_did_.push_back(-1);
  erased_.push_back(0);
  version_++;
}

uint32_t IdentityMap::Find(uint32_t did) const {
  while (parent_[did] != did) {
    parent_[did] = parent_[parent_[did]];
    did = parent_[did];
  }
  return did;
}

void IdentityMap::DoMerge(uint32_t a, uint32_t b) {
  uint32_t ra = Find(a), rb = Find(b);
  if (ra == rb) return;
  if (rb < ra) std::swap(ra, rb);
  parent_[rb] = ra;
  newest_did_[ra] = std::max(newest_did_[ra], newest_did_[rb]);
  newest_identified_did_[ra] = std::max(newest_identified_did_[ra], newest_identified_did_[rb]);
  // Every merge comes from an identify or an alias, so the merged person is identified
  // (logs written before the identified records existed replay to the same rule).
  identified_[ra] = 1;
  merge_version_++;
  // rb's ids now belong to ra.
  std::vector<uint32_t> moved;
  if (auto it = members_.find(rb); it != members_.end()) {
    moved = std::move(it->second);
    members_.erase(it);
  } else {
    moved = {rb};
  }
  auto& into = members_[ra];
  if (into.empty()) into.push_back(ra);
  into.insert(into.end(), moved.begin(), moved.end());
  moved_.insert(moved_.end(), moved.begin(), moved.end());
  // The surviving person keeps its properties and gains the other's missing ones.
  for (auto& [key, col] : columns_) {
    const PropValue* v = col->Get(rb);
    if (!v) continue;
    const PropValue value = *v;  // a copy: MutableColumn may copy the chunk v points into
    PersonColumn& c = MutableColumn(key);
    if (!c.Get(ra)) c.Set(ra, value);
    c.Erase(rb);
  }
  version_++;
}

// The column to change; a snapshot holding it keeps its copy (chunks are shared and copied
// one at a time by PersonColumn).
PersonColumn& IdentityMap::MutableColumn(const std::string& key) {
  auto& col = columns_[key];
  if (!col)
    col = std::make_shared<PersonColumn>();
  else if (col.use_count() > 1)
    col = std::make_shared<PersonColumn>(*col);
  return *col;
}

void IdentityMap::DoSet(uint32_t did, const std::vector<Property>& props, bool once) {
  uint32_t root = Find(did);
  for (const auto& p : props) {
    auto it = columns_.find(p.key);
    if (once && it != columns_.end() && it->second->Get(root)) continue;
    MutableColumn(p.key).Set(root, p.value);
  }
  version_++;
}

void IdentityMap::DoErase(const std::vector<uint32_t>& dids, uint64_t wal_seq) {
  max_erase_wal_seq_ = std::max(max_erase_wal_seq_, wal_seq);
  for (uint32_t d : dids) {
    if (d >= ids_.size() || erased_[d]) continue;
    const uint32_t root = Find(d);
    for (auto& [key, col] : columns_)
      if (col->Get(root)) MutableColumn(key).Erase(root);
    members_.erase(root);
    if (recovering_) {  // the WAL replay still has to recognise this id's older events
      uint64_t& seq = replay_erased_[std::string(ids_.Id(d))];
      seq = std::max(seq, wal_seq);
    }
    // Out of the index (the string may name a newer did by now, erased then seen again:
    // that one stays) and out of memory.
    ids_.Clear(d);
    erased_[d] = 1;
    erased_list_.push_back(d);
  }
  version_++;
}

std::vector<uint32_t> IdentityMap::Erase(uint32_t did, uint64_t tombstone, uint64_t wal_seq) {
  std::lock_guard lk(mu_);
  if (did >= ids_.size() || erased_[did]) return {};
  const uint32_t root = Find(did);
  std::vector<uint32_t> dids;
  if (auto it = members_.find(root); it != members_.end())
    dids = it->second;
  else
    dids = {root};
  std::sort(dids.begin(), dids.end());
  BinWriter w;
  w.U8(kErased);
  w.U64(tombstone);
  w.U64(wal_seq);
  w.U32(static_cast<uint32_t>(dids.size()));
  for (uint32_t d : dids) w.U32(d);
  pending_.push_back(std::move(w.str()));
  DoErase(dids, wal_seq);
  return dids;
}

bool IdentityMap::ErasedInWal(std::string_view distinct_id, uint64_t wal_seq) const {
  std::lock_guard lk(mu_);
  auto it = replay_erased_.find(distinct_id);
  return it != replay_erased_.end() && wal_seq <= it->second;
}

void IdentityMap::EndRecovery() {
  std::lock_guard lk(mu_);
  recovering_ = false;
  decltype(replay_erased_)().swap(replay_erased_);
}

uint32_t IdentityMap::Resolve(std::string_view distinct_id) {
  std::lock_guard lk(mu_);
  if (const int64_t did = ids_.Find(distinct_id); did >= 0) return static_cast<uint32_t>(did);
  BinWriter w;
  w.U8(kNewDid);
  w.U32(static_cast<uint32_t>(ids_.size()));
  w.Str(distinct_id);
  pending_.push_back(std::move(w.str()));
  NewDid(distinct_id);
  return static_cast<uint32_t>(ids_.size() - 1);
}

void IdentityMap::PrefetchResolve(std::span<const std::string_view> ids) const {
  std::lock_guard lk(mu_);
  ids_.Prefetch(ids);
}

int64_t IdentityMap::Find(std::string_view distinct_id) const {
  std::lock_guard lk(mu_);
  return ids_.Find(distinct_id);
}

bool IdentityMap::Merge(uint32_t a, uint32_t b, bool allow_identified) {
  std::lock_guard lk(mu_);
  const uint32_t ra = Find(a), rb = Find(b);
  if (ra == rb) return true;
  if (!allow_identified && identified_[ra] && identified_[rb]) return false;
  BinWriter w;
  w.U8(kMerge);
  w.U32(a);
  w.U32(b);
  pending_.push_back(std::move(w.str()));
  DoMerge(a, b);
  return true;
}

void IdentityMap::MarkIdentified(uint32_t did) {
  std::lock_guard lk(mu_);
  const uint32_t root = Find(did);
  // Recorded once per did (not once per person) so the display id can be the newest login
  // id of a person that was identified before.
  if (did_identified_[did]) return;
  BinWriter w;
  w.U8(kIdentified);
  w.U32(did);
  pending_.push_back(std::move(w.str()));
  identified_[root] = 1;
  did_identified_[did] = 1;
  newest_identified_did_[root] = std::max<int64_t>(newest_identified_did_[root], did);
}

bool IdentityMap::Identified(uint32_t did) const {
  std::lock_guard lk(mu_);
  return did < ids_.size() && identified_[Find(did)] != 0;
}

void IdentityMap::SetProps(uint32_t did, const std::vector<Property>& props, bool once) {
  if (props.empty()) return;
  std::lock_guard lk(mu_);
  BinWriter w;
  w.U8(once ? kSetOnce : kSet);
  w.U32(did);
  EncodeProperties(w, props);
  pending_.push_back(std::move(w.str()));
  SetBit(props_on_disk_, did);
  DoSet(did, props, once);
}

uint32_t IdentityMap::Person(uint32_t did) const {
  std::lock_guard lk(mu_);
  return Find(did);
}

Status IdentityMap::Commit() {
  if (pending_.empty()) return Status::OK();
  if (!log_) return WritePending();  // reloads, and fails this commit
  Status st = WritePending();
  if (st.ok()) st = SyncLogThrough(LogWritten());
  if (!st.ok()) {
    Status reload = RollbackUnsynced();
    if (!reload.ok()) return Internal(st.message() + "; and reloading identity failed: " + reload.message());
  }
  return st;
}

Status IdentityMap::WritePending() {
  if (pending_.empty()) return Status::OK();
  if (!log_) {
    // The reload after an earlier failed write could not reopen the log (read-only file
    // system): the dids handed out since may not match the log. Reload (drops pending_)
    // and fail this round; the client retries.
    Status reload = Load();
    return Unavailable("identity log " + dir_ + " could not be reopened after a failed write" +
                       (reload.ok() ? std::string("; reopened now, retry") : ": " + reload.message()));
  }
  std::string payload;
  {
    std::lock_guard lk(mu_);
    for (const auto& r : pending_) payload += r;
  }
  NS_RETURN_IF_ERROR(log_->Append(payload));
  NS_RETURN_IF_ERROR(log_->Write());
  std::lock_guard lk(mu_);
  pending_.clear();
  return Status::OK();
}

uint64_t IdentityMap::LogWritten() const { return log_ ? log_->written() : 0; }

Status IdentityMap::SyncLogThrough(uint64_t end) { return log_ ? log_->SyncThrough(end) : Status::OK(); }

Status IdentityMap::RollbackUnsynced() {
  if (log_) (void)log_->Rollback();  // if the file cannot be cut, Load truncates a torn tail
  return Load();
}

std::shared_ptr<const PersonTable> IdentityMap::Snapshot() {
  std::lock_guard lk(mu_);
  if (snapshot_ && snapshot_->version == version_) return snapshot_;
  auto t = std::make_shared<PersonTable>();
  t->version = version_;
  t->merge_version = merge_version_;
  t->did_count = ids_.size();
  if (!snapshot_) {  // the first snapshot since the log was loaded: every id once
    auto po = std::make_shared<std::vector<uint32_t>>(ids_.size());
    for (uint32_t d = 0; d < ids_.size(); d++) (*po)[d] = Find(d);
    t->person_of_ids = std::move(po);
  } else if (snapshot_->merge_version == merge_version_) {
    t->person_of_ids = snapshot_->person_of_ids;  // no merge: new ids are their own persons
  } else {
    // After merges: the previous mapping, extended to every id, with the moved ids patched.
    auto po = std::make_shared<std::vector<uint32_t>>(*snapshot_->person_of_ids);
    const uint32_t from = static_cast<uint32_t>(po->size());
    po->resize(ids_.size());
    for (uint32_t d = from; d < ids_.size(); d++) (*po)[d] = d;
    for (uint32_t d : moved_) (*po)[d] = Find(d);
    t->person_of_ids = std::move(po);
  }
  moved_.clear();
  for (const auto& [key, col] : columns_) t->columns.emplace(key, col);
  // Erasures are rare: the erased set is copied only when one happened since the last snapshot.
  if (!erased_list_shared_ || erased_list_shared_->size() != erased_list_.size()) {
    erased_shared_ = erased_list_.empty() ? nullptr : std::make_shared<const std::vector<uint8_t>>(erased_);
    erased_list_shared_ = std::make_shared<const std::vector<uint32_t>>(erased_list_);
  }
  t->erased_ids = erased_shared_;
  t->erased_list = erased_list_shared_;
  t->erase_version = erased_list_.size();
  snapshot_ = t;
  return t;
}

std::string IdentityMap::DistinctId(uint32_t did) const {
  std::lock_guard lk(mu_);
  return did < ids_.size() ? std::string(ids_.Id(did)) : std::string();
}

std::string IdentityMap::DisplayId(uint32_t person) const {
  std::lock_guard lk(mu_);
  if (person >= ids_.size()) return std::string();
  const uint32_t root = Find(person);
  const int64_t login = newest_identified_did_[root];
  return std::string(ids_.Id(login >= 0 ? static_cast<uint32_t>(login) : newest_did_[root]));
}

std::string IdentityMap::FirstIdentifiedId(uint32_t person) const {
  std::lock_guard lk(mu_);
  if (person >= ids_.size()) return std::string();
  const uint32_t root = Find(person);
  if (newest_identified_did_[root] < 0) return std::string();
  int64_t first = -1;
  auto consider = [&](uint32_t d) {
    if (did_identified_[d] && !erased_[d] && (first < 0 || d < first)) first = d;
  };
  if (auto it = members_.find(root); it != members_.end()) {
    for (uint32_t d : it->second) consider(d);
  } else {
    consider(root);
  }
  return first < 0 ? std::string() : std::string(ids_.Id(static_cast<uint32_t>(first)));
}

size_t IdentityMap::did_count() const {
  std::lock_guard lk(mu_);
  return ids_.size();
}

bool IdentityMap::ErasedDataOnDisk() const {
  std::lock_guard lk(mu_);
  for (size_t d = 0; d < erased_.size(); d++)
    if (erased_[d] && (Bit(string_on_disk_, d) || Bit(props_on_disk_, d))) return true;
  return false;
}

uint64_t IdentityMap::LastErasureWalSeq() const {
  std::lock_guard lk(mu_);
  return max_erase_wal_seq_;
}

std::string IdentityMap::Difference(const IdentityMap& o) const {
  if (!(ids_ == o.ids_)) return "distinct ids";
  if (erased_ != o.erased_) return "erased ids";
  for (uint32_t d = 0; d < ids_.size(); d++) {
    const uint32_t r = Find(d);
    if (r != o.Find(d)) return "person of did " + std::to_string(d);
    if (did_identified_[d] != o.did_identified_[d]) return "identifying did " + std::to_string(d);
    if (r != d) continue;
    if (identified_[r] != o.identified_[r] || newest_did_[r] != o.newest_did_[r] ||
        newest_identified_did_[r] != o.newest_identified_did_[r])
      return "identified / display id of person " + std::to_string(r);
  }
  auto values = [](const IdentityMap& m, const std::string& key) {
    std::map<uint32_t, PropValue> out;
    if (auto it = m.columns_.find(key); it != m.columns_.end())
      it->second->ForEach([&](uint32_t p, const PropValue& v) { out.emplace(p, v); });
    return out;
  };
  std::set<std::string> keys;
  for (const auto& [k, c] : columns_) keys.insert(k);
  for (const auto& [k, c] : o.columns_) keys.insert(k);
  for (const auto& k : keys)
    if (values(*this, k) != values(o, k)) return "person property " + k;
  return "";
}

Status IdentityMap::RewriteWithoutErased() {
  std::lock_guard lk(mu_);
  if (!pending_.empty()) return FailedPrecondition("identity log " + dir_ + ": changes are pending");
  NS_ASSIGN_OR_RETURN(auto seqs, ListWalFiles(env_, dir_));
  const uint64_t next = (seqs.empty() ? 0 : seqs.back()) + 1;
  // The new file: its entries are the log's as a replay applies them (those after the last
  // type-7 entry), without the erased dids' strings and $set values; records of at most
  // about 1 MiB, the first starting with the type-7 entry.
  std::string file, record;
  auto start = [&] {
    file.clear();
    record.clear();
    BinWriter w;
    w.U8(kCompacted);
    w.U64(next - 1);
    record = std::move(w.str());
  };
  auto emit = [&](std::string_view entry) {
    if (record.size() + entry.size() > (1u << 20)) {
      AppendWalRecord(file, record);
      record.clear();
    }
    record.append(entry);
  };
  auto erased = [&](uint32_t did) { return did < erased_.size() && erased_[did]; };
  start();
  for (uint64_t seq : seqs) {
    WalReplayStats stats;  // a torn tail was never acknowledged: it is left out here too
    Status rs = ReplayWal(
        env_, dir_, seq, /*truncate=*/false,
        [&](std::string_view payload) -> Status {
          BinReader r(payload);
          while (r.remaining() > 0 && r.ok()) {
            const size_t from = payload.size() - r.remaining();
            const uint8_t type = r.U8();
            bool keep = true;
            if (type == kCompacted) {
              (void)r.U64();
              start();  // what came before is in this file
              continue;
            } else if (type == kNewDid) {
              const uint32_t did = r.U32();
              (void)r.Str();
              if (!r.ok()) return Corruption("identity log: truncated record");
              if (erased(did)) {  // the did stays (dids are positional); its string goes
                BinWriter w;
                w.U8(kNewDid);
                w.U32(did);
                w.Str(ErasedPlaceholder(did));
                emit(w.str());
                keep = false;
              }
            } else if (type == kMerge) {
              (void)r.U32();
              (void)r.U32();
            } else if (type == kIdentified) {
              (void)r.U32();
            } else if (type == kErased) {
              (void)r.U64();
              (void)r.U64();
              const uint32_t n = r.U32();
              if (!r.ok() || n > r.remaining() / 4) return Corruption("identity log: truncated erasure record");
              for (uint32_t i = 0; i < n; i++) (void)r.U32();
            } else if (type == kSet || type == kSetOnce) {
              const uint32_t did = r.U32();
              std::vector<Property> props;
              if (!DecodeProperties(r, &props)) break;  // as the replay: the rest of the record is not applied
              keep = !erased(did);
            } else {
              return Corruption("identity log: unknown record type " + std::to_string(type));
            }
            if (!r.ok()) break;
            if (keep) emit(payload.substr(from, payload.size() - r.remaining() - from));
          }
          return Status::OK();
        },
        &stats);
    if (!rs.ok()) return Status(rs.code(), dir_ + "/" + WalFileName(seq) + ": " + rs.message());
  }
  AppendWalRecord(file, record);

  // The new file must replay to this very state before it may replace the old ones.
  IdentityMap check;
  check.dir_ = dir_;
  check.env_ = env_;
  check.replay_seq_ = next;
  bool first = true;
  uint64_t records = 0;
  auto parsed = ParseWalRecords(
      file,
      [&](std::string_view p) {
        const bool file_start = std::exchange(first, false);
        return check.ApplyRecord(p, file_start);
      },
      &records);
  if (!parsed.ok() || *parsed != file.size())
    return Internal("identity log rewrite: the new file does not replay (" +
                    (parsed.ok() ? std::string("torn") : parsed.status().message()) + "); nothing changed");
  if (std::string diff = Difference(check); !diff.empty())
    return Internal("identity log rewrite: the new file replays to other " + diff + "; nothing changed");

  const std::string path = dir_ + "/" + WalFileName(next), tmp = path + ".tmp";
  {
    NS_ASSIGN_OR_RETURN(auto f, env_->NewWritableFile(tmp));
    Status st = f->Append(file);
    if (st.ok()) st = f->Sync();
    if (st.ok()) st = f->Close();
    if (!st.ok()) {
      (void)env_->RemoveFile(tmp);
      return st;
    }
  }
  if (Status st = env_->RenameFile(tmp, path); !st.ok()) {
    (void)env_->RemoveFile(tmp);
    return st;
  }
  // Renamed: from now on a replay starts at the new file (its type-7 entry), so appends must
  // go there, whatever happens next.
  Status synced = env_->SyncDir(dir_);
  log_.reset();
  compacted_seq_ = next;
  bool removed = synced.ok();
  if (removed)  // only once the rename is durable; newest first, so what stays is a prefix
    for (auto it = seqs.rbegin(); it != seqs.rend(); ++it)
      removed = env_->RemoveFile(dir_ + "/" + WalFileName(*it)).ok() && removed;
  if (removed) removed = env_->SyncDir(dir_).ok();
  if (removed)
    for (size_t d = 0; d < erased_.size(); d++)
      if (erased_[d]) {
        if (d < string_on_disk_.size()) string_on_disk_[d] = 0;
        if (d < props_on_disk_.size()) props_on_disk_[d] = 0;
      }
  NS_ASSIGN_OR_RETURN(log_, WalWriter::Open(env_, dir_, next));
  if (!synced.ok()) return synced;
  if (!removed) return Unavailable("identity log " + dir_ + ": the files the rewrite replaced are not all removed yet");
  return Status::OK();
}

}  // namespace ns
