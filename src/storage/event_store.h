// EventStore: the durable event store of one project (DESIGN §4).
//
//   Append ──► writer thread (group commit): dedup, identity, WAL append + fsync ──► memtable
//   maintenance thread: memtable ──flush──► segments (one per UTC-day partition, sorted by
//   person, ts) ──► CHECKPOINT ──► old WAL files deleted; compaction merges a partition's
//   segments.
//
// Directory layout (docs/storage-format.md): wal/, identity/, segments/, CHECKPOINT.
// Threading: every public method is thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/file_util.h"
#include "core/status.h"
#include "storage/block.h"
#include "storage/event.h"
#include "storage/event_dict.h"
#include "storage/identity.h"
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
  // Run the flush/compaction thread. Off in tools that flush explicitly (import, tests).
  bool background = true;
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

  std::shared_ptr<const StoreSnapshot> Snapshot();
  StoreStats Stats();
  // Rows not yet in segments (cheap, unlike Stats()).
  uint64_t memtable_rows();
  IdentityMap& identity() { return *identity_; }
  EventDict& events() { return dict_; }
  const std::string& dir() const { return dir_; }

 private:
  struct Request {
    std::vector<Event>* events;
    Durability durability;
    IdentityTrust trust;
    std::promise<StatusOr<AppendResult>> done;
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
  Status Recover();
  void WriterLoop();
  void MaintenanceLoop();
  void ProcessRound(std::vector<Request*>& round);
  // REQUIRES: write_mu_ held.
  void AddToMemtable(std::vector<MemRow>& rows);
  void SealOpenRows();
  std::shared_ptr<Block> OpenRowsBlock() const;  // REQUIRES: state_mu_ held
  Status WriteCheckpoint();
  Status CompactPartition(int32_t day);
  Status FlushLocked();

  std::string dir_;
  StoreOptions opt_;
  std::unique_ptr<DirLock> lock_;
  EventDict dict_;
  std::unique_ptr<IdentityMap> identity_;
  std::unique_ptr<FingerprintSet> seen_;

  // Writer side (group commit).
  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Request*> queue_;
  bool stopping_ = false;
  std::thread writer_;

  std::mutex write_mu_;  // held by a write round and by flush's memtable rotation
  std::unique_ptr<WalWriter> wal_;

  // Readable state, guarded by state_mu_.
  std::mutex state_mu_;
  std::map<int32_t, std::vector<SegmentInfo>> partitions_;
  std::vector<std::shared_ptr<const Block>> flushing_;  // memtable being written out
  std::vector<std::shared_ptr<const Block>> sealed_;    // memtable, sealed blocks
  std::vector<MemRow> open_rows_;                       // memtable, not yet sealed
  std::shared_ptr<const Block> open_block_cache_;       // open_rows_ as a block (queries)
  size_t open_block_cache_rows_ = 0;
  size_t memtable_rows_ = 0;
  int64_t memtable_since_ms_ = 0;

  std::mutex maint_mu_;  // serialises flush and compaction
  uint64_t generation_ = 0;
  uint64_t wal_through_ = 0;
  std::thread maintenance_;
  std::condition_variable maint_cv_;
  std::mutex maint_wait_mu_;
  StoreStats recovery_stats_;
};

}  // namespace ns
