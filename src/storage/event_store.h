// EventStore: the durable event store of one project (DESIGN §4).
//
//   Append ──► group commit (the first waiting caller writes for all): dedup, identity,
//   WAL append + fsync ──► memtable
//   maintenance (a MaintenanceRunner shared by every store): memtable ──flush──► segments
//   (one per UTC-day partition, sorted by person, ts) ──► CHECKPOINT ──► old WAL files
//   deleted; compaction merges a partition's segments.
//
// Directory layout (docs/storage-format.md): wal/, identity/, segments/, CHECKPOINT.
// Threading: every public method is thread-safe. A store owns no thread (issue 8, finding
// 19): writes run on the callers' threads, background work on the runner's.
#pragma once

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "core/mutex.h"
#include "core/status.h"
#include "storage/block.h"
#include "storage/event.h"
#include "storage/event_dict.h"
#include "storage/identity.h"
#include "storage/maintenance_runner.h"
#include "storage/segment.h"
#include "storage/wal.h"

namespace ns {

struct StoreOptions {
  // Memtable rows that trigger a flush to segments. Larger: fewer, bigger segments and
  // more memory; WAL replay after a crash is bounded by this many events.
  size_t flush_rows = 1'000'000;
  // A non-empty memtable older than this is flushed (ms). 0 disables time-based flushes.
  int64_t flush_interval_ms = 30'000;
  // Open memtable rows are sealed into an immutable block every this many rows.
  size_t seal_rows = 16'384;
  // Flush and compact in the background. Off in tools that flush explicitly (import, tests).
  bool background = true;
  // Where background work runs: the server passes one runner for all its projects; when
  // null (and background is on) the store makes a one-thread runner of its own.
  MaintenanceRunner* runner = nullptr;
  // A partition with this many segments is compacted even if it is still receiving events.
  size_t compact_trigger = 8;
};

// What a query reads: immutable blocks and the person table, consistent with each other
// as of one moment. Holding a snapshot keeps its files mapped.
struct StoreSnapshot {
  std::vector<std::shared_ptr<const Block>> blocks;
  std::shared_ptr<const PersonTable> persons;
  const EventDict* events = nullptr;
};

struct StoreStats {
  uint64_t segments = 0, segment_rows = 0, segment_bytes = 0;
  uint64_t memtable_rows = 0;
  uint64_t persons = 0, distinct_ids = 0;
  uint64_t wal_replayed_records = 0, wal_truncated_bytes = 0;
  uint64_t generation = 0;
};

// The CHECKPOINT file of a project directory (docs/storage-format.md): the generation of
// the newest complete flush and the last WAL file it covers.
struct Checkpoint {
  uint64_t generation = 0;
  uint64_t wal_through = 0;
};
// Corruption if the text is malformed or of another format version.
StatusOr<Checkpoint> ParseCheckpoint(const std::string& text);

// What an append listener sees of one stored event, once it is durable.
struct AppendedEvent {
  uint32_t did;
  uint32_t person;      // as of the commit (merges in the same batch applied)
  uint32_t event_code;  // EventDict code
  int64_t ts_ms;
  const std::vector<Property>* props;  // valid during the call only
};
// Called after each committed write round with its events, in commit order, on the
// writing thread and under the store's write lock: keep it short (queue the work), and
// never call Append from it.
using AppendListener = std::function<void(const std::vector<AppendedEvent>& events)>;

enum class Durability {
  kWal,       // acknowledged after the WAL is fsynced (HTTP ingest)
  kUnlogged,  // no WAL: durable only after Flush() (bulk import)
};

class EventStore {
 public:
  ~EventStore();
  static StatusOr<std::unique_ptr<EventStore>> Open(const std::string& dir, StoreOptions options = {});

  // Stores a batch. Events whose uuid is already stored (or repeated in the batch) are
  // counted as duplicates and skipped. With kWal the call returns after the WAL fsync that
  // covers the batch; concurrent callers share fsyncs (group commit). `trust` decides
  // whether merges may join two identified persons (IdentityMap::Merge): the HTTP routes,
  // the trust boundary, pass the key's; local callers (import, demo, tests) are trusted.
  StatusOr<AppendResult> Append(std::vector<Event> events, Durability durability = Durability::kWal,
                                IdentityTrust trust = IdentityTrust::kSecretKey);

  // Writes the memtable to segments, then truncates the WAL. Idempotent.
  Status Flush();
  // Merges the segments of every partition that has more than one.
  Status CompactAll();

  // The append hook (automation's triggers, incremental cohorts subscribe to it). An
  // exception from a listener is logged and ignored: the events are already durable.
  uint64_t AddAppendListener(AppendListener listener) EXCLUDES(listeners_mu_);
  void RemoveAppendListener(uint64_t id) EXCLUDES(write_mu_, listeners_mu_);

  std::shared_ptr<const StoreSnapshot> Snapshot();
  StoreStats Stats();
  // Rows not yet in segments (cheap, unlike Stats()).
  uint64_t memtable_rows();
  IdentityMap& identity() { return *identity_; }
  EventDict& events() { return dict_; }
  const std::string& dir() const { return dir_; }

 private:
  // One Append call waiting in the group-commit queue (LevelDB's DBImpl::Writer).
  struct Request {
    explicit Request(Mutex* mu) : cv(mu) {}
    std::vector<Event>* events = nullptr;
    Durability durability = Durability::kWal;
    IdentityTrust trust = IdentityTrust::kSecretKey;
    bool done = false;
    StatusOr<AppendResult> result = AppendResult{};
    CondVar cv;
  };
  struct MemRow {
    uint32_t did;
    uint32_t ev;
    int64_t ts;
    Uuid uuid;
    bool has_uuid;
    std::vector<Property> props;
  };
  class FingerprintSet;

  EventStore() = default;
  Status Recover() EXCLUDES(write_mu_, state_mu_);
  void Maintain() EXCLUDES(maint_mu_, state_mu_);
  // Writes one round of queued requests (WAL, identity log, memtable) and sets their results.
  void ProcessRound(const std::vector<Request*>& round) EXCLUDES(write_mu_, state_mu_);
  // True when the memtable reached flush_rows.
  bool AddToMemtable(std::vector<MemRow>& rows) REQUIRES(write_mu_) EXCLUDES(state_mu_);
  void NotifyListeners(const std::vector<MemRow>& rows) REQUIRES(write_mu_) EXCLUDES(listeners_mu_);
  void SealOpenRows() REQUIRES(state_mu_);
  std::shared_ptr<Block> OpenRowsBlock() const REQUIRES(state_mu_);
  Status WriteCheckpoint() REQUIRES(maint_mu_);
  Status CompactPartition(int32_t day) REQUIRES(maint_mu_) EXCLUDES(state_mu_);
  Status FlushLocked() REQUIRES(maint_mu_) EXCLUDES(write_mu_, state_mu_);

  std::string dir_;
  StoreOptions opt_;
  std::unique_ptr<DirLock> lock_;
  EventDict dict_;
  std::unique_ptr<IdentityMap> identity_;  // mutated only under write_mu_
  std::unique_ptr<FingerprintSet> seen_ PT_GUARDED_BY(write_mu_);

  // Group commit: callers queue; the one at the front writes the round for everyone queued.
  Mutex queue_mu_;
  std::deque<Request*> queue_ GUARDED_BY(queue_mu_);
  bool stopping_ GUARDED_BY(queue_mu_) = false;
  CondVar drained_cv_{&queue_mu_};  // the queue became empty (the destructor waits for it)

  Mutex write_mu_ ACQUIRED_BEFORE(state_mu_);  // held by a write round and by flush's memtable rotation
  std::unique_ptr<WalWriter> wal_ PT_GUARDED_BY(write_mu_);

  // Readable state.
  Mutex state_mu_;
  std::map<int32_t, std::vector<SegmentInfo>> partitions_ GUARDED_BY(state_mu_);
  std::vector<std::shared_ptr<const Block>> flushing_ GUARDED_BY(state_mu_);  // memtable being written out
  std::vector<std::shared_ptr<const Block>> sealed_ GUARDED_BY(state_mu_);    // memtable, sealed blocks
  std::vector<MemRow> open_rows_ GUARDED_BY(state_mu_);                       // memtable, not yet sealed
  std::shared_ptr<const Block> open_block_cache_ GUARDED_BY(state_mu_);       // open_rows_ as a block (queries)
  size_t open_block_cache_rows_ GUARDED_BY(state_mu_) = 0;
  size_t memtable_rows_ GUARDED_BY(state_mu_) = 0;
  int64_t memtable_since_ms_ GUARDED_BY(state_mu_) = 0;

  Mutex maint_mu_ ACQUIRED_BEFORE(write_mu_);  // serialises flush and compaction
  uint64_t generation_ GUARDED_BY(maint_mu_) = 0;
  uint64_t wal_through_ GUARDED_BY(maint_mu_) = 0;
  // generation_ as last committed, for Stats() without waiting for a flush in progress.
  std::atomic<uint64_t> published_generation_{0};
  std::unique_ptr<MaintenanceRunner> own_runner_;  // when the options bring none
  MaintenanceRunner* runner_ = nullptr;
  uint64_t task_id_ = 0;
  StoreStats recovery_stats_;

  Mutex listeners_mu_;
  std::map<uint64_t, AppendListener> listeners_ GUARDED_BY(listeners_mu_);
  uint64_t next_listener_ GUARDED_BY(listeners_mu_) = 1;
  std::atomic<bool> has_listeners_{false};
};

}  // namespace ns
