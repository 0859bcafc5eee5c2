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

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "storage/event.h"
#include "storage/person_table.h"

namespace ns {

class Block;
class Env;
class EventDict;
class MaintenanceRunner;

struct StoreOptions {
  // Memtable rows that trigger a flush to segments. Larger: fewer, bigger segments and
  // more memory; WAL replay after a crash is bounded by this many events.
  size_t flush_rows = 1'000'000;
  // A non-empty memtable older than this is flushed (ms). 0 disables time-based flushes.
  int64_t flush_interval_ms = 30'000;
  // Open memtable rows are sealed into an immutable block every this many rows.
  size_t seal_rows = 16'384;
  // A snapshot seals the open rows once there are this many, rather than building a block of
  // them that the next write throws away: under an ingest with queries, rebuilding the open
  // rows for every query cost more than the ingest's own sealing (docs/benchmarks.md,
  // "queries' p99 under ingest"). Fewer open rows are built into a block per snapshot.
  size_t snapshot_seal_rows = 1'024;
  // Flush and compact in the background. Off in tools that flush explicitly (import, tests).
  bool background = true;
  // Where background work runs: the server passes one runner for all its projects; when
  // null (and background is on) the store makes a one-thread runner of its own.
  MaintenanceRunner* runner = nullptr;
  // A partition with this many segments is compacted even if it is still receiving events.
  size_t compact_trigger = 8;
  // The file system every file of the store is written and read through (WAL, identity
  // log, segments, CHECKPOINT, directory syncs); not owned, it must outlive the store.
  // Null means Env::Default(), POSIX. Tests pass a FaultInjectionEnv to fail the Nth
  // write, sync or rename (tests/unit/fault_injection_test.cc).
  Env* env = nullptr;
};

// What a query reads: immutable blocks and the person table, consistent with each other
// as of one moment. Holding a snapshot keeps its files mapped.
struct StoreSnapshot {
  // Keeps the segment columns this snapshot's readers decode from being freed by the
  // memory budget while it lives (a ColumnCache::ReadTicket, storage/column_cache.h).
  std::shared_ptr<void> column_pin;
  // That ticket's epoch (0: none), for Block::Retire.
  uint64_t reader_epoch = 0;
  std::vector<std::shared_ptr<const Block>> blocks;
  std::shared_ptr<const PersonTable> persons;
  const EventDict* events = nullptr;
  // The block of blocks that holds the memtable's open (unsealed) rows, null if none: the
  // next write replaces it, so readers do not keep anything keyed by it.
  const Block* open_rows_block = nullptr;
};

// OK, or the Corruption (naming the segment file and column) of a block of snap whose
// column failed to decode while it was read (Block::status()). A reader of a snapshot
// calls it once when done and answers that error instead of what it computed.
Status CheckBlocks(const StoreSnapshot& snap);

struct StoreStats {
  uint64_t segments = 0, segment_rows = 0, segment_bytes = 0;
  uint64_t memtable_rows = 0;
  uint64_t persons = 0, distinct_ids = 0;
  uint64_t wal_replayed_records = 0, wal_truncated_bytes = 0;
  uint64_t generation = 0;
};

// What an append listener sees of one stored event, once it is durable.
struct AppendedEvent {
  uint32_t did;
  uint32_t person;      // as the round is published (its merges applied; maybe later rounds' too)
  uint32_t event_code;  // EventDict code
  int64_t ts_ms;
  const std::vector<Property>* props;  // valid during the call only
};
// Called after each committed write round with its events, in commit order, on a
// writing thread, before the round's writers are answered (the next round may be writing
// meanwhile): keep it short (queue the work), and never call Append from it.
using AppendListener = std::function<void(const std::vector<AppendedEvent>& events)>;

// What ErasePerson removed. No distinct id strings: this is what an audit may keep.
struct ErasureResult {
  std::vector<uint32_t> dids;  // the person's distinct ids (numbers; their strings are gone)
  uint64_t events = 0;         // its stored events, hidden now and removed at flush/compaction
  std::string tombstone;       // opaque id of the erasure (16 hex digits), also in the identity log
};

enum class Durability {
  kWal,       // acknowledged after the WAL is fsynced (HTTP ingest)
  kUnlogged,  // no WAL: durable only after Flush() (bulk import)
};

// The store's interface (LevelDB's DB in front of DBImpl): what the rest of Northstar
// may do with a project's events. The implementation and every on-disk format (WAL,
// segments, identity log, CHECKPOINT) stay inside storage/ (event_store_impl.h); nothing
// here hands out a mutable internal.
class EventStore {
 public:
  virtual ~EventStore() = default;
  static StatusOr<std::unique_ptr<EventStore>> Open(const std::string& dir, StoreOptions options = {});

  // Stores a batch. Events whose uuid is already stored (or repeated in the batch) are
  // counted as duplicates and skipped. With kWal the call returns after the WAL fsync that
  // covers the batch; concurrent callers share fsyncs (group commit). `trust` decides
  // whether merges may join two identified persons (IdentityMap::Merge): the HTTP routes,
  // the trust boundary, pass the key's; local callers (import, demo, tests) are trusted.
  virtual StatusOr<AppendResult> Append(std::vector<Event> events, Durability durability = Durability::kWal,
                                        IdentityTrust trust = IdentityTrust::kSecretKey) = 0;
  // Writes the memtable to segments, then truncates the WAL. Idempotent.
  virtual Status Flush() = 0;
  // Merges the segments of every partition that has more than one, and rewrites every
  // segment that holds rows of erased persons.
  virtual Status CompactAll() = 0;
  // Erases the person of `did` (docs/people.md, "Erasure"): when it returns, a durable
  // tombstone (identity log, fsynced) hides the person from every later snapshot and
  // lookup; its rows leave the memtable and WAL at the next flush and the segment files at
  // the next compaction. A later event of one of its distinct ids starts a new person.
  // NotFound if did is unknown or already erased.
  virtual StatusOr<ErasureResult> ErasePerson(uint32_t did) = 0;
  // Rewrites the identity log without the distinct id strings and $set values of erased
  // persons (docs/people.md "Erasure"), after a flush so that no WAL file a restart replays
  // needs them; a no-op when there are none. Crash-safe (a new file, fsynced, renamed, the
  // directory fsynced, then the old files removed). It holds every write off while it runs
  // (seconds for millions of ids), so `northstar compact` calls it, not the server.
  virtual Status CompactIdentityLog() = 0;

  // The append hook (automation's triggers, incremental cohorts subscribe to it). An
  // exception from a listener is logged and ignored: the events are already durable.
  virtual uint64_t AddAppendListener(AppendListener listener) = 0;
  virtual void RemoveAppendListener(uint64_t id) = 0;

  virtual std::shared_ptr<const StoreSnapshot> Snapshot() = 0;
  // Person properties computed by the models (docs/models.md: $churn_risk, $clv, $p_alive),
  // laid over the identity map's columns in every later snapshot, so filters, cohorts and
  // breakdowns read them like any $set property (a computed key hides a $set one of the same
  // name). Replaces the previous set; null removes it. Not durable: the owner (models/)
  // keeps them in meta.db and sets them again after a restart.
  virtual void SetComputedPersonColumns(std::shared_ptr<const PersonColumns> columns) = 0;
  virtual StoreStats Stats() = 0;
  // Rows not yet in segments (cheap, unlike Stats()).
  virtual uint64_t memtable_rows() = 0;
  // Identity lookups for answers (read-only).
  virtual int64_t FindDistinctId(std::string_view distinct_id) const = 0;  // its did, or -1
  virtual bool Identified(uint32_t did) const = 0;
  // The distinct id to show for a person: the newest of its ids (the login id after an
  // $identify, not the first anonymous one).
  virtual std::string DisplayId(uint32_t person) const = 0;
  // The person's oldest distinct id that was the subject of an identifying event ("" if it
  // has none): feature flags hash it, so an assignment is sticky across merges.
  virtual std::string FirstIdentifiedId(uint32_t person) const = 0;
  // The distinct id string of a did ("" if unknown).
  virtual std::string DistinctId(uint32_t did) const = 0;
  virtual std::vector<std::string> EventNames() const = 0;
  virtual const std::string& dir() const = 0;
};

// What `northstar check` reports of one project directory, read without changing it:
// the identity log, CHECKPOINT, WAL files and every segment fully decoded.
struct StoreCheckReport {
  std::vector<std::string> problems, warnings, ok;  // ok: "PATH  N rows" per good segment
  uint64_t segments = 0, rows = 0;
};
StoreCheckReport CheckStoreDirectory(const std::string& dir);

}  // namespace ns
