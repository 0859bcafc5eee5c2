// EventStoreImpl: the event store of one project behind the EventStore interface
// (storage/event_store.h). Internal to storage/: only storage's own files include this.
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/file_util.h"
#include "core/mutex.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/event_store.h"
#include "storage/fingerprint_set.h"
#include "storage/identity.h"
#include "storage/maintenance_runner.h"
#include "storage/segment.h"
#include "storage/wal.h"

namespace ns {

// The CHECKPOINT file of a project directory (docs/storage-format.md): the generation of
// the newest complete flush and the last WAL file it covers.
struct Checkpoint {
  uint64_t generation = 0;
  uint64_t wal_through = 0;
};
// Corruption if the text is malformed or of another format version.
StatusOr<Checkpoint> ParseCheckpoint(const std::string& text);

class EventStoreImpl final : public EventStore {
 public:
  ~EventStoreImpl() override;
  static StatusOr<std::unique_ptr<EventStoreImpl>> Open(const std::string& dir, StoreOptions options);

  StatusOr<AppendResult> Append(std::vector<Event> events, Durability durability, IdentityTrust trust) override;
  Status Flush() override;
  Status CompactAll() override;
  StatusOr<ErasureResult> ErasePerson(uint32_t did) override EXCLUDES(maint_mu_, write_mu_, state_mu_);
  Status CompactIdentityLog() override EXCLUDES(maint_mu_, write_mu_, state_mu_);
  uint64_t AddAppendListener(AppendListener listener) override EXCLUDES(listeners_mu_);
  void RemoveAppendListener(uint64_t id) override EXCLUDES(listeners_mu_);
  std::shared_ptr<const StoreSnapshot> Snapshot() override;
  void SetComputedPersonColumns(std::shared_ptr<const PersonColumns> columns) override EXCLUDES(computed_mu_);
  StoreStats Stats() override;
  uint64_t memtable_rows() override;
  int64_t FindDistinctId(std::string_view distinct_id) const override { return identity_->Find(distinct_id); }
  bool Identified(uint32_t did) const override { return identity_->Identified(did); }
  std::string DisplayId(uint32_t person) const override { return identity_->DisplayId(person); }
  std::string FirstIdentifiedId(uint32_t person) const override { return identity_->FirstIdentifiedId(person); }
  std::string DistinctId(uint32_t did) const override { return identity_->DistinctId(did); }
  std::vector<std::string> EventNames() const override { return dict_.Names(); }
  const std::string& dir() const override { return dir_; }

 private:
  // One Append call waiting in the group-commit queue (LevelDB's DBImpl::Writer).
  struct Request {
    explicit Request(Mutex* mu) : cv(mu) {}
    std::vector<Event>* events = nullptr;
    Durability durability = Durability::kWal;
    IdentityTrust trust = IdentityTrust::kSecretKey;
    bool in_round = false;  // taken into a round by its leader (no longer in the queue)
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
  // One write round, from its write to its answer (owned by its leader's Append call).
  struct Round {
    std::vector<Request*> requests;  // a prefix of the queue, in order
    Request* leader = nullptr;
    uint64_t ticket = 0;        // write order (0: nothing written)
    Status status;              // the write's failure
    bool files_failed = false;  // a write to the logs failed: they hold an unknown tail
    std::vector<AppendResult> results;
    std::vector<MemRow> rows;
    // Where the logs end after this round: what an fsync must cover for it.
    WalWriter* wal = nullptr;
    uint64_t wal_end = 0, identity_end = 0;
  };
  friend class BulkLoader;  // storage/bulk_loader.cc: the import's bulk path

  EventStoreImpl() = default;
  // Bulk load's dedup: false if u was stored (or loaded) before, else remembers it.
  bool InsertUuid(const Uuid& u) REQUIRES(write_mu_);
  Status Recover() EXCLUDES(write_mu_, state_mu_);
  void Maintain() EXCLUDES(maint_mu_, state_mu_);
  // Pipelined group commit, step 1 (under write_mu_): dedup, identities, encoding, and the
  // round's identity records and WAL records written to their files, not yet durable.
  void WriteRound(Round& round) REQUIRES(write_mu_) EXCLUDES(queue_mu_);
  // Step 2, by the first written round not yet durable, for every round written so far
  // (`batch`): one fsync of the identity log, then one of the WAL (unless `poison`, the
  // pipeline's state when the batch was taken, fails them all); then the rows go to the
  // memtable and the listeners, and the results are set, in write order. True when the
  // open rows are due to be sealed.
  bool SyncAndPublish(const std::vector<Round*>& batch, Status poison) EXCLUDES(write_mu_, queue_mu_, state_mu_);
  // Waits until no round is between its write and its answer; after a failed write or
  // fsync, then rolls the logs, the identity map and the dedup set back to what is durable.
  // Everything that reads or changes the logs, the identities or the memtable as a whole
  // (flush, erasure, bulk load) calls it first. An error if the rollback failed.
  Status Quiesce() REQUIRES(write_mu_) EXCLUDES(queue_mu_);
  // True when the memtable reached flush_rows; *seal_due when the open rows reached seal_rows
  // (the caller seals them with SealOpenRowsUnlocked once it holds no lock).
  bool AddToMemtable(std::vector<MemRow>& rows, bool* seal_due) EXCLUDES(state_mu_);
  void NotifyListeners(const std::vector<MemRow>& rows) EXCLUDES(listeners_mu_);
  // The open rows, moved out (the open block cache forgotten with them).
  std::vector<MemRow> TakeOpenRows() REQUIRES(state_mu_);
  void SealOpenRows() REQUIRES(state_mu_);
  // Seals the open rows with the block built outside state_mu_, so that writes (which append
  // to the next open rows) and other work go on meanwhile. Readers that need every memtable
  // row wait for it (WaitForSeal). A no-op when another seal is in progress.
  void SealOpenRowsUnlocked() EXCLUDES(state_mu_);
  void WaitForSeal() REQUIRES(state_mu_);
  std::shared_ptr<Block> OpenRowsBlock() const REQUIRES(state_mu_);
  static std::shared_ptr<Block> BuildMemtableBlock(const std::vector<MemRow>& rows, const PersonTable& persons);
  // *renamed: see WriteFileAtomic (the new CHECKPOINT is in place, maybe not yet durable).
  Status WriteCheckpoint(bool* renamed) REQUIRES(maint_mu_);
  Status CompactPartition(int32_t day) REQUIRES(maint_mu_) EXCLUDES(state_mu_);
  Status FlushLocked() REQUIRES(maint_mu_) EXCLUDES(write_mu_, state_mu_);
  // The segment blocks of every partition (a copy: checked without holding state_mu_).
  std::map<int32_t, std::vector<std::shared_ptr<const Block>>> PartitionBlocks() EXCLUDES(state_mu_);
  // True if b holds rows of erased persons (decodes its did column once; cached per erasure).
  bool HoldsErased(const std::shared_ptr<const Block>& b);

  std::string dir_;
  StoreOptions opt_;
  Env* env_ = nullptr;  // opt_.env or Env::Default()
  std::unique_ptr<DirLock> lock_;
  EventDict dict_;
  std::unique_ptr<IdentityMap> identity_;  // mutated only under write_mu_
  std::unique_ptr<FingerprintSet> seen_ PT_GUARDED_BY(write_mu_);

  // Group commit: callers queue; the one at the front writes the round for everyone queued.
  Mutex queue_mu_;
  std::deque<Request*> queue_ GUARDED_BY(queue_mu_);
  bool stopping_ GUARDED_BY(queue_mu_) = false;
  int sealers_ GUARDED_BY(queue_mu_) = 0;  // Append calls sealing after their round (the destructor waits)
  CondVar drained_cv_{&queue_mu_};         // the queue became empty (the destructor waits for it)
  // Rounds written and not yet answered, in write order; the front one's leader syncs them.
  std::deque<Round*> unsynced_ GUARDED_BY(queue_mu_);
  bool syncing_ GUARDED_BY(queue_mu_) = false;
  uint64_t synced_ticket_ GUARDED_BY(queue_mu_) = 0;  // every round up to it is durable
  // A write or fsync failed: every round not yet durable fails, until Quiesce rolls back.
  Status poisoned_ GUARDED_BY(queue_mu_);

  Mutex write_mu_ ACQUIRED_BEFORE(queue_mu_, state_mu_);  // held by WriteRound and by flush's memtable rotation
  std::unique_ptr<WalWriter> wal_ PT_GUARDED_BY(write_mu_);
  uint64_t written_ticket_ GUARDED_BY(write_mu_) = 0;
  // Fingerprints a round put in seen_ before it was durable, by ticket: a failure takes
  // those of every round no fsync covered out again (Quiesce).
  std::deque<std::pair<uint64_t, std::vector<uint64_t>>> unsynced_fps_ GUARDED_BY(write_mu_);

  // Readable state.
  Mutex state_mu_;
  std::map<int32_t, std::vector<SegmentInfo>> partitions_ GUARDED_BY(state_mu_);
  std::vector<std::shared_ptr<const Block>> flushing_ GUARDED_BY(state_mu_);  // memtable being written out
  std::vector<std::shared_ptr<const Block>> sealed_ GUARDED_BY(state_mu_);    // memtable, sealed blocks
  std::vector<MemRow> open_rows_ GUARDED_BY(state_mu_);                       // memtable, not yet sealed
  // Open rows being sealed outside the lock (SealOpenRowsUnlocked): in neither open_rows_ nor
  // sealed_ until it ends, so snapshots, flushes and erasures wait for it.
  bool sealing_ GUARDED_BY(state_mu_) = false;
  CondVar seal_done_cv_{&state_mu_};
  std::shared_ptr<const Block> open_block_cache_ GUARDED_BY(state_mu_);  // open_rows_ as a block (queries)
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

  // Computed person columns (SetComputedPersonColumns) and the last person table they were
  // laid over, reused while neither changes (a snapshot then copies nothing).
  Mutex computed_mu_;
  std::shared_ptr<const PersonColumns> computed_ GUARDED_BY(computed_mu_);
  uint64_t computed_version_ GUARDED_BY(computed_mu_) = 0;
  std::shared_ptr<const PersonTable> overlay_base_ GUARDED_BY(computed_mu_), overlay_ GUARDED_BY(computed_mu_);

  Mutex listeners_mu_;
  std::map<uint64_t, AppendListener> listeners_ GUARDED_BY(listeners_mu_);
  uint64_t next_listener_ GUARDED_BY(listeners_mu_) = 1;
  std::atomic<bool> has_listeners_{false};
  // WAL files may hold events of erased persons: the next flush runs (and deletes them)
  // even with an empty memtable.
  std::atomic<bool> wal_holds_erased_{false};
};

}  // namespace ns
