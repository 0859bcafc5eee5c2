// Identity: distinct ids (device ids, login ids) -> dense ids ("dids") -> persons.
// A person is a set of dids merged by $identify / $create_alias / $anon_distinct_id; its
// id is the smallest did of the set (union-find root), so ids stay stable across merges.
// Person properties ($set, $set_once) live on the root.
// Durability: every change is a record in identity/<seq>.wal (same framing as the WAL),
// written and fsynced (Commit(), or WritePending() and SyncLogThrough()) before the events
// that need it are acknowledged.
// Threading: mutators are called by one writer thread; Snapshot()/DistinctId() are
// thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "storage/distinct_id_index.h"
#include "storage/event.h"
#include "storage/person_table.h"
#include "storage/wal.h"

namespace ns {

// What `northstar check` reports about an identity log, read without changing it.
struct IdentityLogReport {
  uint64_t distinct_ids = 0;
  std::vector<uint8_t> erased;  // per did: 1 if its person was erased
  // Erased dids whose distinct id string, or whose $set / $set_once values, a file of the
  // log still holds (until `northstar compact` rewrites it: RewriteWithoutErased).
  uint64_t erased_ids_on_disk = 0, erased_props_on_disk = 0;
  std::vector<std::string> problems;    // a file that does not replay (corrupt, unknown record type)
  std::vector<std::string> torn_tails;  // "FILE: torn tail of N bytes" (unacknowledged writes)
};

class IdentityMap {
 public:
  // Replays the log in `dir` read-only with the same parser as Open (a torn tail is
  // reported, not truncated).
  static IdentityLogReport Inspect(Env* env, const std::string& dir);
  // Opens dir (created if missing) and replays its log; a torn tail is truncated. Every
  // file operation goes through env (not owned; it must outlive the map).
  static StatusOr<std::unique_ptr<IdentityMap>> Open(Env* env, const std::string& dir);

  // The did of distinct_id, creating it (pending until Commit) when new.
  uint32_t Resolve(std::string_view distinct_id);
  // Brings what Resolve reads for each of `ids` into the cache (DistinctIdIndex::Prefetch).
  void PrefetchResolve(std::span<const std::string_view> ids) const;
  // Existing did of distinct_id, or -1.
  int64_t Find(std::string_view distinct_id) const;
  // Merges the persons of two dids (pending until Commit). No-op if already one person.
  // A merge that would join two identified persons is refused (returns false) unless
  // `allow_identified`: PostHog's rule, so that the public write key cannot glue two
  // customers' histories together; the secret key may (docs/identity.md).
  bool Merge(uint32_t a, uint32_t b, bool allow_identified);
  // Marks the person of did identified ($identify, an alias, a login id): pending until
  // Commit. A merged person is identified too.
  void MarkIdentified(uint32_t did);
  bool Identified(uint32_t did) const;
  // Applies $set (once=false) or $set_once (once=true) to the person of did.
  void SetProps(uint32_t did, const std::vector<Property>& props, bool once);
  uint32_t Person(uint32_t did) const;
  // Erases the person of did (docs/people.md, "Erasure"): every did of the person is
  // marked erased, their distinct id strings leave the index and memory (the next event of
  // one of them starts a new person) and the person's properties are cleared. Pending until
  // Commit, like every change. `tombstone` is the erasure's opaque id; `wal_seq` the last
  // event-WAL file whose events of these ids belong to the erased person. Returns the dids.
  std::vector<uint32_t> Erase(uint32_t did, uint64_t tombstone, uint64_t wal_seq);
  // While the store replays its event WAL after Open: true if an event of distinct_id
  // read from WAL file `wal_seq` belongs to an erased person (the store drops it).
  bool ErasedInWal(std::string_view distinct_id, uint64_t wal_seq) const;
  // Frees what ErasedInWal needs (the erased strings) once the WAL is replayed.
  void EndRecovery();

  // Writes and fsyncs pending records. On failure the in-memory state is reloaded from
  // disk, so it never holds what the log does not.
  Status Commit();

  // Commit in two steps, for the event store's pipelined group commit: WritePending writes
  // the pending records to the log file (not yet durable), LogWritten is the log's end
  // after them, and SyncLogThrough makes the log durable through such an end; it may run
  // on another thread while the next WritePending does. After a failure of either,
  // RollbackUnsynced (with neither running) cuts the log back to what is durable and
  // reloads the map from it.
  Status WritePending();
  // How often the map was reloaded from its log (a failed write rolled it back): a caller
  // holding dids across calls (the bulk loader) checks it did not change meanwhile.
  uint64_t reloads() const { return reloads_; }
  uint64_t LogWritten() const;
  Status SyncLogThrough(uint64_t end);
  Status RollbackUnsynced();

  // Whether a file of the log still holds the distinct id string or a $set value of an
  // erased did (what RewriteWithoutErased removes).
  bool ErasedDataOnDisk() const;
  // The newest event-WAL file an erasure named (0: none): every event of an erased person
  // is in a WAL file up to it (docs/storage-format.md §4.1).
  uint64_t LastErasureWalSeq() const;
  // Rewrites the log as one new file that replays to the same state but holds no erased
  // did's distinct id string (its type-1 entry keeps the did with a placeholder, NUL and the
  // did's number, so dids stay positional) and none of their $set / $set_once entries (docs/storage-format.md
  // §4.2). The new file is checked to replay to this state, written as <next seq>.wal.tmp,
  // fsynced, renamed to <next seq>.wal (the commit point: it starts with a type-7 entry,
  // after which a replay forgets the files before it), the directory fsynced; then the old
  // files are removed, newest first, so what a crash leaves always replays. REQUIRES:
  // nothing pending; no other change meanwhile (the store's write lock); no event-WAL file
  // a restart replays holds events of an erased id (a flush after the erasures), since
  // ErasedInWal needs the strings.
  Status RewriteWithoutErased();
  bool dirty() const { return !pending_.empty(); }

  std::shared_ptr<const PersonTable> Snapshot();
  std::string DistinctId(uint32_t did) const;
  // The distinct id to show for a person: the most recently created of its ids (after an
  // $identify that is the login id, not the anonymous device id).
  std::string DisplayId(uint32_t person) const;
  // The oldest of the person's distinct ids that was the subject of an identifying event
  // ("" if none): what feature flags hash, so a variant survives later merges.
  std::string FirstIdentifiedId(uint32_t person) const;
  // First distinct id of a person (its root's).
  size_t did_count() const;

 private:
  Status Load();
  // One framed record of the log; `file_start`: the first record of its file (the only
  // place a type-7 entry may stand).
  Status ApplyRecord(std::string_view payload, bool file_start);
  // Forgets every did, person and property (a type-7 entry: the file holds the whole state).
  void ResetState();
  // Whether `o` replays to the same dids, persons, identified flags, display ids, erasures
  // and person properties (the check of RewriteWithoutErased); "" if so, else what differs.
  std::string Difference(const IdentityMap& o) const;
  void NewDid(std::string_view id);
  void DoMerge(uint32_t a, uint32_t b);
  void DoSet(uint32_t did, const std::vector<Property>& props, bool once);
  void DoErase(const std::vector<uint32_t>& dids, uint64_t wal_seq);
  uint32_t Find(uint32_t did) const;
  PersonColumn& MutableColumn(const std::string& key);

  std::string dir_;
  Env* env_ = nullptr;
  std::unique_ptr<WalWriter> log_;
  mutable std::mutex mu_;  // guards everything below against Snapshot()/DistinctId()
  // The distinct id strings by did and the index string -> did (one arena, a flat table).
  DistinctIdIndex ids_;
  // Transparent hash: look distinct ids up by string_view without building a std::string.
  struct IdHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  mutable std::vector<uint32_t> parent_;
  // Members of every person with more than one distinct id (root -> dids), so a merge
  // knows whose person changed without walking all ids.
  std::unordered_map<uint32_t, std::vector<uint32_t>> members_;
  std::vector<uint32_t> moved_;  // dids whose person changed since the last snapshot
  std::map<std::string, std::shared_ptr<PersonColumn>, std::less<>> columns_;
  std::vector<uint32_t> newest_did_;  // per root: its largest did
  std::vector<uint8_t> identified_;   // per root: 1 once identified (an $identify, alias or merge)
  // The display id (DisplayId): per did, 1 if it was the subject of an identifying event
  // (the login id, not the anonymous id an $identify joins); per root, the newest such did
  // of the person (-1: none; then the newest did is shown).
  std::vector<uint8_t> did_identified_;
  std::vector<int64_t> newest_identified_did_;
  std::vector<uint8_t> erased_;                                // per did: 1 once erased
  std::vector<uint32_t> erased_list_;                          // erased dids in order of erasure
  std::shared_ptr<const std::vector<uint8_t>> erased_shared_;  // erased_ as of the last snapshot
  std::shared_ptr<const std::vector<uint32_t>> erased_list_shared_;
  // Only between Open and EndRecovery: erased distinct id -> the last WAL seq of an erasure.
  std::unordered_map<std::string, uint64_t, IdHash, std::equal_to<>> replay_erased_;
  bool recovering_ = false;
  // What the files on disk hold, per did, across every file (a type-7 reset does not clear
  // them: superseded files stay until removed): 1 if a type-1 entry carries its string, 1 if
  // a $set / $set_once entry names it.
  std::vector<uint8_t> string_on_disk_, props_on_disk_;
  uint64_t max_erase_wal_seq_ = 0;    // LastErasureWalSeq
  uint64_t replay_seq_ = 0;           // the file being replayed
  uint64_t compacted_seq_ = 0;        // the newest file that starts with a type-7 entry (0: none)
  std::vector<std::string> pending_;  // encoded records not yet committed
  uint64_t reloads_ = 0;              // Load() calls
  uint64_t version_ = 0;
  uint64_t merge_version_ = 1;
  std::shared_ptr<const PersonTable> snapshot_;
};

}  // namespace ns
