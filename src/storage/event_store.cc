#include "storage/event_store_impl.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <set>
#include <unordered_set>

#include "core/checksum.h"
#include "core/file_util.h"
#include "core/time_zone.h"
#include "storage/binary_io.h"
#include "storage/column_cache.h"

namespace ns {

namespace {
uint64_t Fingerprint(const Uuid& u) {
  uint64_t f = Mix64(u.hi ^ Mix64(u.lo));
  return f == 0 ? 1 : f;
}

// b without the rows of erased persons (b itself if it has none), cached on the block per
// erase_version: once per erasure per block, and a block whose did range holds none of the
// dids erased since its last check is not scanned again.
std::shared_ptr<const Block> WithoutErased(const std::shared_ptr<const Block>& b, const PersonTable& pt) {
  const uint64_t n = pt.erase_version;
  if (n == 0 || b->size() == 0) return b;
  std::shared_ptr<const Block> out = b;
  b->WithErasureView([&](Block::ErasureView& v) {
    if (v.version != n) {
      const auto& did = b->did();
      if (!v.range_known) {
        v.did_min = *std::min_element(did.begin(), did.end());
        v.did_max = *std::max_element(did.begin(), did.end());
        v.range_known = true;
      }
      const auto& list = *pt.erased_list;
      bool touched = false;
      for (uint64_t i = v.version; i < n && !touched; i++) touched = list[i] >= v.did_min && list[i] <= v.did_max;
      if (touched) {
        size_t hits = 0;
        for (uint32_t d : did) hits += pt.Erased(d);
        if (hits) {
          BlockBuilder bb;
          for (size_t i = 0; i < did.size(); i++)
            if (!pt.Erased(did[i])) bb.AppendFrom(*b, i);
          v.filtered = bb.Finish();
        }
      }
      // A block that does not decode stays as it is: its reader answers the Corruption.
      if (!b->status().ok()) v.filtered.reset();
      v.version = n;
    }
    if (v.filtered) out = v.filtered;
  });
  return out;
}
}  // namespace

bool EventStoreImpl::InsertUuid(const Uuid& u) {
  const uint64_t f = Fingerprint(u);
  if (seen_->Contains(f)) return false;
  seen_->Insert(f);
  return true;
}

EventStoreImpl::~EventStoreImpl() {
  {
    MutexLock l(&queue_mu_);
    stopping_ = true;
    while (!queue_.empty() || !unsynced_.empty() || sealers_ > 0) drained_cv_.Wait();  // rounds and their seals finish
  }
  if (runner_) runner_->Remove(task_id_);  // waits for a pass in progress
  own_runner_.reset();
  bool opened;
  {
    MutexLock wl(&write_mu_);
    opened = identity_ && wal_;
  }
  if (opened) {
    Status st = Flush();
    if (!st.ok()) spdlog::error("flush at shutdown failed (the WAL keeps the events): {}", st.ToString());
  }
}

StatusOr<std::unique_ptr<EventStore>> EventStore::Open(const std::string& dir, StoreOptions options) {
  NS_ASSIGN_OR_RETURN(auto impl, EventStoreImpl::Open(dir, options));
  return std::unique_ptr<EventStore>(std::move(impl));
}

StatusOr<std::unique_ptr<EventStoreImpl>> EventStoreImpl::Open(const std::string& dir, StoreOptions options) {
  auto s = std::unique_ptr<EventStoreImpl>(new EventStoreImpl());
  s->dir_ = dir;
  s->opt_ = options;
  s->env_ = options.env ? options.env : Env::Default();
  NS_RETURN_IF_ERROR(s->env_->CreateDirs(dir + "/wal"));
  NS_RETURN_IF_ERROR(s->env_->CreateDirs(dir + "/segments"));
  // The LOCK file is POSIX whatever the Env: an flock between processes, not store data.
  NS_ASSIGN_OR_RETURN(s->lock_, DirLock::Acquire(dir));
  NS_ASSIGN_OR_RETURN(s->identity_, IdentityMap::Open(s->env_, dir + "/identity"));
  s->seen_ = std::make_unique<FingerprintSet>();
  NS_RETURN_IF_ERROR(s->Recover());
  if (options.background) {
    s->runner_ = options.runner;
    if (!s->runner_) {
      s->own_runner_ = std::make_unique<MaintenanceRunner>(1);
      s->runner_ = s->own_runner_.get();
    }
    s->task_id_ = s->runner_->Add([p = s.get()] { p->Maintain(); });
  }
  return s;
}

StatusOr<Checkpoint> ParseCheckpoint(const std::string& text) {
  unsigned long long g = 0, w = 0;
  int version = 0;
  if (std::sscanf(text.c_str(), "northstar-checkpoint %d\ngeneration %llu\nwal_through %llu", &version, &g, &w) != 3)
    return Corruption("expected 'northstar-checkpoint 1', 'generation N' and 'wal_through N' lines");
  if (version != 1) return Corruption("format version " + std::to_string(version) + " (this northstar reads 1)");
  return Checkpoint{g, w};
}

Status EventStoreImpl::WriteCheckpoint(bool* renamed) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "northstar-checkpoint 1\ngeneration %llu\nwal_through %llu\n",
                static_cast<unsigned long long>(generation_), static_cast<unsigned long long>(wal_through_));
  return WriteFileAtomic(env_, dir_ + "/CHECKPOINT", buf, renamed);
}

// Single-threaded: runs inside Open, before the store is shared with any other thread.
Status EventStoreImpl::Recover() NO_THREAD_SAFETY_ANALYSIS {
  std::string cp_path = dir_ + "/CHECKPOINT";
  const bool has_checkpoint = env_->FileExists(cp_path);
  if (has_checkpoint) {
    NS_ASSIGN_OR_RETURN(std::string text, env_->ReadFile(cp_path));
    auto cp = ParseCheckpoint(text);
    if (!cp.ok()) return Corruption("CHECKPOINT in " + dir_ + " is malformed (" + cp.status().message() + ")");
    generation_ = cp->generation;
    wal_through_ = cp->wal_through;
    published_generation_ = generation_;
  }
  std::string seg_dir = dir_ + "/segments";
  NS_ASSIGN_OR_RETURN(auto names, env_->ListDir(seg_dir));
  if (!has_checkpoint) {
    for (const auto& n : names)
      if (n.size() > 5 && n.substr(n.size() - 5) == ".nseg")
        return Corruption(dir_ + "/CHECKPOINT is missing but " + seg_dir +
                          " holds segments; refusing to open (restore CHECKPOINT from a backup, or move the "
                          "segments away to start empty)");
    // A new store commits generation 0 at once. Without it, the first flush's segments
    // would be on disk before any CHECKPOINT, and a crash (or a disk gone read-only)
    // between the two left a store that refused to open with the error above; now they
    // are "newer than the checkpoint" and removed, as for every later flush.
    NS_RETURN_IF_ERROR(WriteCheckpoint(nullptr));
  }
  std::vector<SegmentInfo> segs;
  for (const auto& n : names) {
    std::string path = seg_dir + "/" + n;
    if (n.size() > 4 && n.substr(n.size() - 4) == ".tmp") {
      (void)env_->RemoveFile(path);
      continue;
    }
    if (n.size() < 5 || n.substr(n.size() - 5) != ".nseg") continue;
    // "<day>-<generation>.nseg": a generation newer than the checkpoint belongs to a flush or
    // compaction that did not commit; remove it without reading it.
    auto dash = n.find('-', 1);
    if (dash != std::string::npos) {
      unsigned long long file_gen = std::strtoull(n.c_str() + dash + 1, nullptr, 10);
      if (file_gen > generation_) {
        spdlog::warn("removing segment {} of an unfinished flush/compaction", path);
        (void)env_->RemoveFile(path);
        continue;
      }
    }
    NS_ASSIGN_OR_RETURN(SegmentInfo info, OpenSegment(env_, path, dict_));
    if (info.meta.generation > generation_) {
      spdlog::warn("removing segment {} of an unfinished flush/compaction", path);
      (void)env_->RemoveFile(path);
      continue;
    }
    segs.push_back(std::move(info));
  }
  std::set<std::pair<int32_t, uint64_t>> replaced;
  for (const auto& s : segs)
    for (uint64_t g : s.meta.replaces) replaced.insert({s.meta.partition_day, g});
  for (auto& s : segs) {
    if (replaced.count({s.meta.partition_day, s.meta.generation})) {
      spdlog::info("removing compacted segment {}", s.path);
      (void)env_->RemoveFile(s.path);
      continue;
    }
    std::vector<uint8_t> has;
    std::vector<Uuid> ids;
    NS_RETURN_IF_ERROR(s.block->ReadUuids(&has, &ids));
    for (size_t i = 0; i < has.size(); i++)
      if (has[i]) seen_->Insert(Fingerprint(ids[i]));
    partitions_[s.meta.partition_day].push_back(std::move(s));
  }
  // Replay the WAL files written after the last flush.
  std::string wal_dir = dir_ + "/wal";
  NS_ASSIGN_OR_RETURN(auto seqs, ListWalFiles(env_, wal_dir));
  uint64_t last = wal_through_;
  for (uint64_t seq : seqs) {
    last = std::max(last, seq);
    if (seq <= wal_through_) {
      (void)env_->RemoveFile(wal_dir + "/" + WalFileName(seq));
      continue;
    }
    WalReplayStats st;
    MutexLock wl(&write_mu_);
    Status s = ReplayWal(
        env_, wal_dir, seq, /*truncate=*/true,
        [&](std::string_view payload) -> Status {
          write_mu_.AssertHeld();  // wl, above
          std::vector<Event> events;
          if (Status ds = DecodeWalBatch(payload, &events); !ds.ok())
            return Corruption(wal_dir + "/" + WalFileName(seq) + ": " + ds.message());
          std::vector<MemRow> rows;
          for (Event& e : events) {
            // An event of a person erased after it was written: dropped (the file goes at
            // the next flush, which runs even if the memtable stays empty).
            if (identity_->ErasedInWal(e.distinct_id, seq)) {
              wal_holds_erased_ = true;
              continue;
            }
            if (e.has_uuid) {
              uint64_t f = Fingerprint(e.uuid);
              if (seen_->Contains(f)) continue;
              seen_->Insert(f);
            }
            rows.push_back(MemRow{identity_->Resolve(e.distinct_id), dict_.Intern(e.event), e.ts_ms, e.uuid, e.has_uuid,
                                  std::move(e.props)});
          }
          bool seal_due = false;
          AddToMemtable(rows, &seal_due);
          if (seal_due) SealOpenRowsUnlocked();
          return Status::OK();
        },
        &st);
    NS_RETURN_IF_ERROR(s);
    recovery_stats_.wal_replayed_records += st.records;
    recovery_stats_.wal_truncated_bytes += st.truncated_bytes;
    if (st.truncated_bytes)
      spdlog::warn("WAL {}/{}: truncated a torn tail of {} bytes (an unacknowledged write)", wal_dir, WalFileName(seq),
                   st.truncated_bytes);
  }
  identity_->EndRecovery();
  NS_RETURN_IF_ERROR(identity_->Commit());
  NS_ASSIGN_OR_RETURN(wal_, WalWriter::Open(env_, wal_dir, last + 1));
  return Status::OK();
}

StatusOr<AppendResult> EventStoreImpl::Append(std::vector<Event> events, Durability durability, IdentityTrust trust) {
  Request req(&queue_mu_);
  req.events = &events;
  req.durability = durability;
  req.trust = trust;
  MutexLock l(&queue_mu_);
  if (stopping_) return Unavailable("the event store is shutting down");
  queue_.push_back(&req);
  // Group commit, in two stages (LevelDB's leader and followers, twice). Writing: the
  // request at the front of the queue writes one round for every request queued behind it;
  // the others wait for their result.
  while (!req.done && (req.in_round || &req != queue_.front())) req.cv.Wait();
  if (req.done) return std::move(req.result);
  Round round;
  round.requests.assign(queue_.begin(), queue_.end());
  round.leader = &req;
  queue_mu_.Unlock();
  {
    MutexLock wl(&write_mu_);
    WriteRound(round);
    // Unsynced before write_mu_ is let go: whoever takes it next (a flush that rotates the
    // WAL, an erasure, a bulk load) waits for this round in Quiesce.
    queue_mu_.Lock();
    for (Request* r : round.requests) {
      queue_.pop_front();  // the round is the queue's prefix: only its leader pops
      r->in_round = true;
    }
    // The files hold an unknown tail: every round not yet durable fails, with a retryable
    // 503 whatever this round's own error was.
    if (round.files_failed && poisoned_.ok()) poisoned_ = Unavailable(round.status.message());
    unsynced_.push_back(&round);
    // Pipelining: the next round is written while this one waits for its fsync (the
    // fsyncs were ~2/3 of a round, with the write lock held through them).
    if (!queue_.empty()) queue_.front()->cv.Signal();  // the next round's leader
  }
  // Syncing: the leader of the first round not yet durable syncs every round written so far.
  while (!req.done && (syncing_ || unsynced_.front() != &round)) req.cv.Wait();
  if (req.done) return std::move(req.result);
  std::vector<Round*> batch(unsynced_.begin(), unsynced_.end());
  const Status poison = poisoned_;
  syncing_ = true;
  queue_mu_.Unlock();
  const bool seal_due = SyncAndPublish(batch, poison);
  queue_mu_.Lock();
  for (Round* b : batch) {
    unsynced_.pop_front();
    for (Request* r : b->requests) {
      r->done = true;
      if (r != &req) r->cv.Signal();
    }
  }
  syncing_ = false;
  if (!unsynced_.empty()) unsynced_.front()->leader->cv.Signal();    // the next sync's leader
  if (queue_.empty() || unsynced_.empty()) drained_cv_.SignalAll();  // the destructor, Quiesce
  if (seal_due) {
    // The open rows are sealed by this leader after its rounds are answered and the next
    // round has started: no write waits for the sort and the block build (they held every
    // write for ~10 ms per 16k rows when done under the locks).
    sealers_++;
    queue_mu_.Unlock();
    try {
      SealOpenRowsUnlocked();
    } catch (const std::exception& e) {  // the rows stay open (and durable): the next seal takes them
      spdlog::error("sealing the memtable's open rows failed (they stay open): {}", e.what());
    }
    queue_mu_.Lock();
    if (--sealers_ == 0 && queue_.empty()) drained_cv_.SignalAll();
  }
  return std::move(req.result);
}

void EventStoreImpl::WriteRound(Round& w) {
  const std::vector<Request*>& round = w.requests;
  w.results.resize(round.size());
  std::vector<uint64_t> new_fps;
  // The round's event names and their codes: a batch has few names, usually interleaved
  // (exposure, click, cart, ...), and the dictionary takes a lock and a std::string per call.
  // The views point into the requests' events, which outlive the round.
  std::vector<std::pair<std::string_view, uint32_t>> codes;
  bool poisoned;
  {
    MutexLock l(&queue_mu_);
    poisoned = !poisoned_.ok();
    while (!unsynced_fps_.empty() && unsynced_fps_.front().first <= synced_ticket_) unsynced_fps_.pop_front();
  }
  // After a failure, nothing is written until the logs are rolled back (the rounds written
  // meanwhile fail with it); otherwise this round is written while earlier ones sync.
  if (poisoned) {
    w.status = Quiesce();
    if (!w.status.ok()) return;
  }
  bool any_wal = false;
  Status& st = w.status;
  size_t events = 0;
  for (const Request* r : round) events += r->events->size();
  w.rows.reserve(events);
  {
    // The round's lookups in the dedup set and the distinct id index miss the cache on a
    // large store (~9 % of the write path's CPU at 2M stored events): asked for all at once
    // first, their misses overlap instead of following each other (issue 15).
    std::vector<std::string_view> ids;
    ids.reserve(events);
    for (const Request* r : round)
      for (const Event& e : *r->events) {
        if (e.has_uuid) seen_->Prefetch(Fingerprint(e.uuid));
        ids.push_back(e.distinct_id);
      }
    identity_->PrefetchResolve(ids);
  }
  for (size_t r = 0; r < round.size(); r++) {
    BinWriter payload;
    payload.U32(0);
    uint32_t n = 0;
    const bool trusted = round[r]->trust == IdentityTrust::kSecretKey;
    for (Event& e : *round[r]->events) {
      if (e.has_uuid) {
        // Into the dedup set now, before it is durable: later rounds (written while this
        // one syncs) must see it. A failure takes it out again (Quiesce).
        uint64_t f = Fingerprint(e.uuid);
        if (seen_->Contains(f)) {
          w.results[r].duplicates++;
          continue;
        }
        seen_->Insert(f);
        new_fps.push_back(f);
      }
      uint32_t did = identity_->Resolve(e.distinct_id);
      for (const auto& other : e.merge_with)
        if (!other.empty() && other != e.distinct_id && !identity_->Merge(did, identity_->Resolve(other), trusted))
          w.results[r].merges_refused++;
      if (IdentifiesPerson(e)) identity_->MarkIdentified(did);
      identity_->SetProps(did, e.person_set, false);
      identity_->SetProps(did, e.person_set_once, true);
      if (round[r]->durability == Durability::kWal) EncodeWalEvent(payload, e);
      n++;
      size_t c = 0;
      while (c < codes.size() && codes[c].first != e.event) c++;
      if (c == codes.size()) {
        if (codes.size() == 16) codes.erase(codes.begin());  // many names: a window of recent ones
        codes.emplace_back(e.event, dict_.Intern(e.event));
        c = codes.size() - 1;
      }
      w.rows.push_back(MemRow{did, codes[c].second, e.ts_ms, e.uuid, e.has_uuid, std::move(e.props)});
    }
    w.results[r].accepted = n;
    if (round[r]->durability == Durability::kWal && n > 0) {
      std::memcpy(payload.str().data(), &n, 4);
      st = wal_->Append(payload.str());
      any_wal = true;
      if (!st.ok()) break;
    }
  }
  if (!st.ok()) {
    // A record over the size limit: nothing reached a file. The round fails alone; the
    // identity changes stay pending (written with the next round, as a retry needs them).
    wal_->DropAppended();
    for (uint64_t f : new_fps) seen_->Erase(f);
    return;
  }
  st = identity_->WritePending();
  if (st.ok() && any_wal) st = wal_->Write();
  unsynced_fps_.emplace_back(written_ticket_ + 1, std::move(new_fps));
  if (!st.ok()) {
    w.files_failed = true;  // the files are in an unknown state: Append poisons the pipeline
    return;
  }
  w.ticket = ++written_ticket_;
  w.wal = wal_.get();
  w.wal_end = wal_->written();
  w.identity_end = identity_->LogWritten();
}

bool EventStoreImpl::SyncAndPublish(const std::vector<Round*>& batch, Status poison) {
  // The rounds' own failures stay theirs; the fsync's (or an earlier poison) fails them all.
  Status st = std::move(poison);
  uint64_t through = 0;
  const Round* last = nullptr;  // the last round written in full: its log ends cover the others
  for (const Round* r : batch)
    if (r->ticket) last = r;
  if (st.ok() && last) {
    // The identity records first: an event replayed from the WAL needs its merges.
    st = identity_->SyncLogThrough(last->identity_end);
    if (st.ok()) st = last->wal->SyncThrough(last->wal_end);
    through = last->ticket;
  }
  {
    MutexLock l(&queue_mu_);
    if (st.ok())
      synced_ticket_ = std::max(synced_ticket_, through);
    else if (poisoned_.ok())
      poisoned_ = st;
  }
  bool flush_due = false, seal_due = false;
  for (Round* w : batch) {
    const Status& rs = !w->status.ok() ? w->status : st;
    if (rs.ok()) {
      if (has_listeners_) NotifyListeners(w->rows);
      bool seal = false;
      flush_due |= AddToMemtable(w->rows, &seal);
      seal_due |= seal;
    }
    for (size_t r = 0; r < w->requests.size(); r++) {
      if (rs.ok()) w->requests[r]->result = w->results[r];
      // Any failure to write (disk full, read-only, EIO, EACCES, ...) is retryable for the
      // client: 503, never a 4xx that would make an SDK drop the batch.
      else
        w->requests[r]->result =
            Status(rs.code() == StatusCode::kResourceExhausted ? rs.code() : StatusCode::kUnavailable,
                   "events not stored: " + rs.message());
    }
  }
  if (flush_due && runner_) runner_->Wake(task_id_);
  return seal_due;
}

Status EventStoreImpl::Quiesce() {
  Status poison;
  uint64_t synced;
  {
    MutexLock l(&queue_mu_);
    while (!unsynced_.empty()) drained_cv_.Wait();
    poison = poisoned_;
    synced = synced_ticket_;
  }
  if (poison.ok()) {
    unsynced_fps_.clear();  // every round written so far is durable
    return Status::OK();
  }
  // Every round no fsync covered failed: its records leave both logs, its fingerprints
  // the dedup set and its identities the map.
  for (auto& [ticket, fps] : unsynced_fps_)
    if (ticket > synced)
      for (uint64_t f : fps) seen_->Erase(f);
  unsynced_fps_.clear();
  Status wal = wal_->Rollback();
  Status identity = identity_->RollbackUnsynced();
  if (!wal.ok() || !identity.ok())
    return Unavailable("an earlier write failed and could not be undone yet: " +
                       (wal.ok() ? identity.message() : wal.message()));
  MutexLock l(&queue_mu_);
  poisoned_ = Status::OK();
  return Status::OK();
}

uint64_t EventStoreImpl::AddAppendListener(AppendListener listener) {
  MutexLock l(&listeners_mu_);
  uint64_t id = next_listener_++;
  listeners_[id] = std::move(listener);
  has_listeners_ = true;
  return id;
}

void EventStoreImpl::RemoveAppendListener(uint64_t id) {
  MutexLock l(&listeners_mu_);  // listeners are called under it: none is running once this returns
  listeners_.erase(id);
  has_listeners_ = !listeners_.empty();
}

void EventStoreImpl::NotifyListeners(const std::vector<MemRow>& rows) {
  std::vector<AppendedEvent> events;
  events.reserve(rows.size());
  for (const MemRow& r : rows) events.push_back({r.did, identity_->Person(r.did), r.ev, r.ts, &r.props});
  MutexLock l(&listeners_mu_);
  for (auto& [id, fn] : listeners_) {
    try {
      fn(events);
    } catch (const std::exception& e) {
      spdlog::error("append listener {} failed: {}", id, e.what());
    }
  }
}

bool EventStoreImpl::AddToMemtable(std::vector<MemRow>& rows, bool* seal_due) {
  MutexLock l(&state_mu_);
  *seal_due = false;
  if (rows.empty()) return memtable_rows_ >= opt_.flush_rows;
  if (memtable_rows_ == 0) memtable_since_ms_ = NowMs();
  for (auto& r : rows) open_rows_.push_back(std::move(r));
  *seal_due = open_rows_.size() >= opt_.seal_rows && !sealing_;
  memtable_rows_ += rows.size();
  return memtable_rows_ >= opt_.flush_rows;
}

// Memtable rows as a block in (UTC day, person, ts) order, as a flush writes them: a block of
// one day is then already in the order a sequence query reads (PersonOrderScan takes it as a
// sorted run, read sequentially, instead of sorting it and reading it at random;
// docs/benchmarks.md, "queries' p99 under ingest"). Persons as of now; a later merge only
// makes a query sort the block again.
std::shared_ptr<Block> EventStoreImpl::BuildMemtableBlock(const std::vector<MemRow>& rows, const PersonTable& persons) {
  struct Key {
    int32_t day;
    uint32_t person;
    int64_t ts;
    uint32_t row;
  };
  std::vector<Key> keys(rows.size());
  for (uint32_t i = 0; i < keys.size(); i++) {
    const MemRow& r = rows[i];
    keys[i] = {UtcDay(r.ts), persons.PersonOf(r.did), r.ts, i};
  }
  std::sort(keys.begin(), keys.end(), [](const Key& x, const Key& y) {
    return x.day != y.day         ? x.day < y.day
           : x.person != y.person ? x.person < y.person
           : x.ts != y.ts         ? x.ts < y.ts
                                  : x.row < y.row;
  });
  BlockBuilder b;
  // Rows are read in person order, i.e. at random in memory, each with its own property
  // vector: fetch a row ahead and its properties a little less far ahead, or every row
  // waits for memory twice.
  constexpr size_t kRowAhead = 8, kPropsAhead = 4;
  for (size_t i = 0; i < keys.size(); i++) {
    if (i + kRowAhead < keys.size()) __builtin_prefetch(&rows[keys[i + kRowAhead].row]);
    if (i + kPropsAhead < keys.size()) {
      const std::vector<Property>& ahead = rows[keys[i + kPropsAhead].row].props;
      const char* p = reinterpret_cast<const char*>(ahead.data());
      const size_t bytes = std::min<size_t>(ahead.size() * sizeof(Property), 8 * 64);
      for (size_t off = 0; off < bytes; off += 64) __builtin_prefetch(p + off);
    }
    const MemRow& r = rows[keys[i].row];
    b.Append(r.did, r.ts, r.ev, r.has_uuid ? &r.uuid : nullptr, r.props);
  }
  return b.Finish();
}

std::shared_ptr<Block> EventStoreImpl::OpenRowsBlock() const {
  return BuildMemtableBlock(open_rows_, *identity_->Snapshot());
}

std::vector<EventStoreImpl::MemRow> EventStoreImpl::TakeOpenRows() {
  std::vector<MemRow> rows;
  rows.swap(open_rows_);
  open_rows_.reserve(std::min(opt_.seal_rows, rows.size()));
  open_block_cache_.reset();
  open_block_cache_rows_ = 0;
  return rows;
}

void EventStoreImpl::SealOpenRows() {
  if (open_rows_.empty()) return;
  sealed_.push_back(BuildMemtableBlock(TakeOpenRows(), *identity_->Snapshot()));
}

void EventStoreImpl::WaitForSeal() {
  while (sealing_) seal_done_cv_.Wait();
}

void EventStoreImpl::SealOpenRowsUnlocked() {
  std::vector<MemRow> rows;
  {
    MutexLock sl(&state_mu_);
    if (sealing_ || open_rows_.empty()) return;
    rows = TakeOpenRows();
    sealing_ = true;
  }
  std::shared_ptr<Block> block;
  try {
    block = BuildMemtableBlock(rows, *identity_->Snapshot());
  } catch (...) {  // (out of memory) the rows go back, ahead of those written since
    MutexLock sl(&state_mu_);
    for (MemRow& r : TakeOpenRows()) rows.push_back(std::move(r));
    open_rows_ = std::move(rows);
    sealing_ = false;
    seal_done_cv_.SignalAll();
    throw;
  }
  MutexLock sl(&state_mu_);
  sealed_.push_back(std::move(block));
  sealing_ = false;
  seal_done_cv_.SignalAll();
}

Status EventStoreImpl::Flush() {
  MutexLock ml(&maint_mu_);
  return FlushLocked();
}

namespace {
// Sorts rows of blocks by (person, ts) per UTC-day partition and builds one block per partition.
std::map<int32_t, std::shared_ptr<Block>> BuildPartitions(const std::vector<std::shared_ptr<const Block>>& blocks,
                                                          const PersonTable& persons) {
  struct Ref {
    uint32_t person;
    int64_t ts;
    uint32_t block;
    uint32_t row;
  };
  std::map<int32_t, std::vector<Ref>> parts;
  for (uint32_t b = 0; b < blocks.size(); b++) {
    const Block& blk = *blocks[b];
    const auto& ts = blk.ts();
    const auto& did = blk.did();
    for (uint32_t i = 0; i < blk.size(); i++) {
      if (persons.Erased(did[i])) continue;  // erasure: the rows leave the files here
      uint32_t person = persons.PersonOf(did[i]);
      parts[UtcDay(ts[i])].push_back({person, ts[i], b, i});
    }
  }
  std::map<int32_t, std::shared_ptr<Block>> out;
  for (auto& [day, refs] : parts) {
    std::stable_sort(refs.begin(), refs.end(), [](const Ref& a, const Ref& b) {
      return a.person != b.person ? a.person < b.person : a.ts < b.ts;
    });
    BlockBuilder bb;
    for (const auto& r : refs) bb.AppendFrom(*blocks[r.block], r.row);
    out[day] = bb.Finish();
  }
  return out;
}
}  // namespace

Status EventStoreImpl::FlushLocked() {
  uint64_t old_seq;
  std::vector<std::shared_ptr<const Block>> to_write;
  bool erased_wal = false;
  {
    MutexLock wl(&write_mu_);
    NS_RETURN_IF_ERROR(Quiesce());  // rows of rounds in flight are in the WAL files this flush retires
    MutexLock sl(&state_mu_);
    WaitForSeal();  // and so are rows being sealed
    SealOpenRows();
    // After an erasure the WAL files may hold its events: they go even with an empty memtable.
    if (sealed_.empty() && !wal_holds_erased_) return Status::OK();
    erased_wal = wal_holds_erased_.exchange(false);
    old_seq = wal_->seq();
    auto next = WalWriter::Open(env_, dir_ + "/wal", old_seq + 1);
    if (!next.ok()) return next.status();
    wal_ = std::move(next).value();
    flushing_ = std::move(sealed_);
    sealed_.clear();
    memtable_rows_ = 0;
    to_write = flushing_;
  }
  auto restore = [&] {
    if (erased_wal) wal_holds_erased_ = true;
    MutexLock sl(&state_mu_);
    sealed_.insert(sealed_.begin(), flushing_.begin(), flushing_.end());
    for (auto& b : flushing_) memtable_rows_ += b->size();
    flushing_.clear();
  };
  const uint64_t gen = generation_ + 1;
  auto parts = BuildPartitions(to_write, *identity_->Snapshot());
  std::vector<SegmentInfo> written;
  for (auto& [day, block] : parts) {
    std::string path = dir_ + "/segments/" + SegmentFileName(day, gen);
    Status st = WriteSegment(env_, path, *block, SegmentMeta{day, gen, {}}, dict_);
    StatusOr<SegmentInfo> info = st.ok() ? OpenSegment(env_, path, dict_) : StatusOr<SegmentInfo>(st);
    if (!info.ok()) {
      for (auto& w : written) (void)env_->RemoveFile(w.path);
      (void)env_->RemoveFile(path);
      restore();
      return info.status();
    }
    written.push_back(std::move(info).value());
  }
  uint64_t prev_gen = generation_, prev_through = wal_through_;
  generation_ = gen;
  wal_through_ = old_seq;
  bool renamed = false;
  Status commit = WriteCheckpoint(&renamed);
  if (!commit.ok() && !renamed) {
    generation_ = prev_gen;
    wal_through_ = prev_through;
    for (auto& w : written) (void)env_->RemoveFile(w.path);
    restore();
    return commit;
  }
  // Committed. If only the directory sync failed (renamed), the new CHECKPOINT is what the
  // next open reads, so the segments it names must stay; but an older CHECKPOINT may still
  // come back after a power loss, and it needs the WAL files: those are kept until a later
  // checkpoint is durable (it deletes every file up to its wal_through).
  published_generation_ = generation_;
  {
    MutexLock sl(&state_mu_);
    for (auto& w : written) partitions_[w.meta.partition_day].push_back(std::move(w));
    flushing_.clear();
  }
  if (!commit.ok()) {
    if (erased_wal) wal_holds_erased_ = true;  // the WAL files stay until a durable checkpoint
    return commit;
  }
  auto seqs = ListWalFiles(env_, dir_ + "/wal");
  if (seqs.ok())
    for (uint64_t s : *seqs)
      if (s <= wal_through_) (void)env_->RemoveFile(dir_ + "/wal/" + WalFileName(s));
  return Status::OK();
}

Status EventStoreImpl::CompactPartition(int32_t day) {
  std::vector<std::shared_ptr<const Block>> blocks;
  std::vector<SegmentInfo> old;
  {
    MutexLock sl(&state_mu_);
    auto it = partitions_.find(day);
    if (it == partitions_.end() || it->second.empty()) return Status::OK();
    old = it->second;
  }
  // One segment is rewritten only to drop the rows of erased persons.
  ColumnCache::ReadTicket reading;  // the merge holds every old column until it is written
  if (old.size() < 2 && !HoldsErased(old[0].block)) return Status::OK();
  SegmentMeta meta{day, generation_ + 1, {}};
  for (auto& s : old) {
    // A column that does not decode would be merged as its empty stand-in and the file
    // then deleted: never rewrite a segment that does not load in full.
    NS_RETURN_IF_ERROR(s.block->LoadAll());
    blocks.push_back(s.block);
    meta.replaces.push_back(s.meta.generation);
  }
  auto parts = BuildPartitions(blocks, *identity_->Snapshot());
  if (parts.size() > 1 || (parts.size() == 1 && parts.begin()->first != day))
    return Internal("compaction of partition " + std::to_string(day) + " found rows of other days");
  // Every row erased: an empty segment still records what it replaces (crash safety as usual).
  const std::shared_ptr<Block> merged = parts.empty() ? BlockBuilder().Finish() : parts.begin()->second;
  std::string path = dir_ + "/segments/" + SegmentFileName(day, meta.generation);
  NS_RETURN_IF_ERROR(WriteSegment(env_, path, *merged, meta, dict_));
  auto info = OpenSegment(env_, path, dict_);
  if (!info.ok()) {
    (void)env_->RemoveFile(path);
    return info.status();
  }
  generation_ = meta.generation;
  bool renamed = false;
  Status commit = WriteCheckpoint(&renamed);
  if (!commit.ok() && !renamed) {
    generation_--;
    (void)env_->RemoveFile(path);
    return commit;
  }
  // As in FlushLocked: a CHECKPOINT renamed into place is committed; if it is not durable
  // yet, the replaced segments stay on disk (an older CHECKPOINT still names them; the next
  // open removes them as replaced).
  published_generation_ = generation_;
  {
    MutexLock sl(&state_mu_);
    auto& list = partitions_[day];
    std::vector<SegmentInfo> keep;
    for (auto& s : list) {
      bool replaced = std::find(meta.replaces.begin(), meta.replaces.end(), s.meta.generation) != meta.replaces.end();
      if (!replaced) keep.push_back(std::move(s));
    }
    keep.insert(keep.begin(), std::move(info).value());
    list = std::move(keep);
  }
  if (!commit.ok()) return commit;
  for (auto& s : old) (void)env_->RemoveFile(s.path);
  return Status::OK();
}

Status EventStoreImpl::CompactAll() {
  MutexLock ml(&maint_mu_);
  std::vector<int32_t> days;
  for (auto& [d, blocks] : PartitionBlocks()) {
    bool erased = false;
    for (size_t i = 0; i < blocks.size() && !erased; i++) erased = HoldsErased(blocks[i]);
    if (blocks.size() > 1 || erased) days.push_back(d);
  }
  for (int32_t d : days) NS_RETURN_IF_ERROR(CompactPartition(d));
  return Status::OK();
}

// One pass of background work, run by the MaintenanceRunner: a flush when the memtable is
// large or old enough, then compaction.
void EventStoreImpl::Maintain() {
  bool flush;
  {
    MutexLock sl(&state_mu_);
    flush = memtable_rows_ >= opt_.flush_rows || (memtable_rows_ > 0 && opt_.flush_interval_ms > 0 &&
                                                  NowMs() - memtable_since_ms_ >= opt_.flush_interval_ms);
  }
  flush = flush || wal_holds_erased_;  // an erasure: its rows leave the memtable and WAL now
  MutexLock ml(&maint_mu_);
  if (flush) {
    if (Status st = FlushLocked(); !st.ok()) spdlog::error("flush failed (will retry): {}", st.ToString());
  }
  // Compaction: partitions with many segments, settled partitions (older than yesterday)
  // with more than one, and segments holding rows of erased persons (cached per block).
  std::vector<int32_t> days;
  int32_t settled = UtcDay(NowMs()) - 1;
  for (auto& [d, blocks] : PartitionBlocks()) {
    bool erased = false;
    for (size_t i = 0; i < blocks.size() && !erased; i++) erased = HoldsErased(blocks[i]);
    if (erased || blocks.size() >= opt_.compact_trigger || (blocks.size() > 1 && d < settled)) days.push_back(d);
  }
  for (int32_t d : days)
    if (Status st = CompactPartition(d); !st.ok()) spdlog::error("compaction of day {} failed: {}", d, st.ToString());
}

std::map<int32_t, std::vector<std::shared_ptr<const Block>>> EventStoreImpl::PartitionBlocks() {
  std::map<int32_t, std::vector<std::shared_ptr<const Block>>> out;
  MutexLock sl(&state_mu_);
  for (auto& [d, l] : partitions_)
    for (auto& seg : l) out[d].push_back(seg.block);
  return out;
}

bool EventStoreImpl::HoldsErased(const std::shared_ptr<const Block>& b) {
  ColumnCache::ReadTicket reading;
  auto persons = identity_->Snapshot();
  return persons->erase_version && WithoutErased(b, *persons) != b;
}

Status CheckBlocks(const StoreSnapshot& snap) {
  for (const auto& b : snap.blocks)
    if (Status st = b->status(); !st.ok()) return st;
  return Status::OK();
}

std::shared_ptr<const StoreSnapshot> EventStoreImpl::Snapshot() {
  auto snap = std::make_shared<StoreSnapshot>();
  auto ticket = ColumnCache::NewTicket();  // first: WithoutErased below reads columns
  snap->reader_epoch = ticket->epoch();
  snap->column_pin = std::move(ticket);
  snap->events = &dict_;
  bool seal;
  {
    MutexLock sl(&state_mu_);
    seal = open_rows_.size() >= opt_.snapshot_seal_rows;
  }
  // Sealed outside the lock: the writes go on meanwhile (they append to the next open rows,
  // which this snapshot takes as they are below).
  if (seal) SealOpenRowsUnlocked();
  {
    MutexLock sl(&state_mu_);
    WaitForSeal();
    for (auto& [d, l] : partitions_)
      for (auto& s : l) snap->blocks.push_back(s.block);
    snap->blocks.insert(snap->blocks.end(), flushing_.begin(), flushing_.end());
    snap->blocks.insert(snap->blocks.end(), sealed_.begin(), sealed_.end());
    if (!open_rows_.empty()) {
      if (!open_block_cache_ || open_block_cache_rows_ != open_rows_.size()) {
        open_block_cache_ = OpenRowsBlock();
        open_block_cache_rows_ = open_rows_.size();
      }
      snap->blocks.push_back(open_block_cache_);
      snap->open_rows_block = open_block_cache_.get();
    }
  }
  snap->persons = identity_->Snapshot();
  {
    MutexLock cl(&computed_mu_);
    if (computed_) {
      if (overlay_base_ != snap->persons || !overlay_ || overlay_->computed_version != computed_version_) {
        auto t = std::make_shared<PersonTable>(*snap->persons);  // shares every column and id map
        for (const auto& [key, col] : *computed_) t->columns[key] = col;
        t->computed_version = computed_version_;
        overlay_base_ = snap->persons;
        overlay_ = std::move(t);
      }
      snap->persons = overlay_;
    }
  }
  // Erased persons are hidden here, so no operator needs to know about erasure: a block
  // with their rows is replaced by its filtered copy (cached on the block).
  if (snap->persons->erase_version) {
    std::vector<std::shared_ptr<const Block>> kept;
    kept.reserve(snap->blocks.size());
    for (const auto& b : snap->blocks) {
      auto v = WithoutErased(b, *snap->persons);
      if (b.get() == snap->open_rows_block) snap->open_rows_block = v->size() ? v.get() : nullptr;
      if (v->size() || !b->size()) kept.push_back(std::move(v));
    }
    snap->blocks = std::move(kept);
  }
  return snap;
}

void EventStoreImpl::SetComputedPersonColumns(std::shared_ptr<const PersonColumns> columns) {
  MutexLock cl(&computed_mu_);
  computed_ = std::move(columns);
  computed_version_++;
  overlay_base_ = nullptr;
  overlay_ = nullptr;
}

StatusOr<ErasureResult> EventStoreImpl::ErasePerson(uint32_t did) {
  ErasureResult out;
  // No flush or compaction meanwhile, so the count of its events below is exact.
  MutexLock ml(&maint_mu_);
  {
    MutexLock wl(&write_mu_);
    NS_RETURN_IF_ERROR(Quiesce());
    if (did >= identity_->did_count()) return NotFound("no such distinct id");
    // The person's events so far are in WAL files <= s; later ones (a distinct id seen again
    // starts a new person) go to a new file, so a replay can tell the two apart.
    const uint64_t s = wal_->seq();
    NS_ASSIGN_OR_RETURN(auto next, WalWriter::Open(env_, dir_ + "/wal", s + 1));
    wal_ = std::move(next);
    uint64_t tombstone = Uuid::Random().hi;
    if (tombstone == 0) tombstone = 1;
    out.dids = identity_->Erase(did, tombstone, s);
    if (out.dids.empty()) return NotFound("the person was erased already");
    // Acknowledged only once durable: on failure the identity map reloads without it.
    if (Status st = identity_->Commit(); !st.ok())
      return Status(StatusCode::kUnavailable, "person not erased: " + st.message());
    wal_holds_erased_ = true;
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(tombstone));
    out.tombstone = hex;
  }
  // How many events it had (for the audit): the stored rows, before they are hidden.
  std::vector<std::shared_ptr<const Block>> blocks;
  {
    MutexLock sl(&state_mu_);
    WaitForSeal();  // first: the wait lets go of the lock, and a flush may move blocks meanwhile
    for (auto& [d, l] : partitions_)
      for (auto& seg : l) blocks.push_back(seg.block);
    blocks.insert(blocks.end(), flushing_.begin(), flushing_.end());
    blocks.insert(blocks.end(), sealed_.begin(), sealed_.end());
    for (const auto& r : open_rows_) out.events += std::binary_search(out.dids.begin(), out.dids.end(), r.did);
  }
  ColumnCache::ReadTicket reading;
  for (const auto& b : blocks)
    for (uint32_t d : b->did()) out.events += std::binary_search(out.dids.begin(), out.dids.end(), d);
  if (runner_) runner_->Wake(task_id_);  // flush the memtable and WAL, compact the segments
  return out;
}

Status EventStoreImpl::CompactIdentityLog() {
  MutexLock ml(&maint_mu_);
  if (!identity_->ErasedDataOnDisk()) return Status::OK();
  // A flush, even of an empty memtable (the flag forces it), moves wal_through_ past the WAL
  // file of every erasure: a restart then replays no event an erased id sent before its
  // erasure, so no longer needs the erased strings (IdentityMap::ErasedInWal).
  wal_holds_erased_ = true;
  NS_RETURN_IF_ERROR(FlushLocked());
  MutexLock wl(&write_mu_);
  NS_RETURN_IF_ERROR(Quiesce());
  if (wal_through_ < identity_->LastErasureWalSeq())
    return Internal("identity log not rewritten: the WAL after the last erasure is not flushed yet");
  return identity_->RewriteWithoutErased();
}

uint64_t EventStoreImpl::memtable_rows() {
  MutexLock sl(&state_mu_);
  uint64_t n = memtable_rows_;
  for (auto& b : flushing_) n += b->size();
  return n;
}

StoreStats EventStoreImpl::Stats() {
  StoreStats s = recovery_stats_;
  MutexLock sl(&state_mu_);
  for (auto& [d, l] : partitions_)
    for (auto& seg : l) {
      s.segments++;
      s.segment_rows += seg.block->size();
      s.segment_bytes += seg.file_bytes;
    }
  s.memtable_rows = memtable_rows_;
  for (auto& b : flushing_) s.memtable_rows += b->size();
  s.distinct_ids = identity_->did_count();
  auto persons = identity_->Snapshot();
  for (uint32_t d = 0; d < persons->size(); d++)
    if (persons->IsPerson(d)) s.persons++;
  s.generation = published_generation_;
  return s;
}

}  // namespace ns
