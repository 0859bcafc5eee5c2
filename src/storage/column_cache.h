// ColumnCache: the process-wide memory budget for decoded segment columns (issue 15).
//
// A segment block decodes a column (did, ts, ev, uuid, a property, an event's row index)
// on first use and keeps it in a CachedSlot. Every resident slot is counted here; when the
// bytes exceed the budget, the least recently used slots that no running reader can still
// be holding are freed, and decode again on their next use.
//
// Pinning, by reader epochs. Operators hold plain references to columns (Block::ts()
// returns a const std::vector&) for as long as their query runs, so a column may only be
// freed once every reader that could have touched it is gone. Each reader (a store
// snapshot, a compaction) holds a ReadTicket, whose epoch is taken from a global counter
// when it is created; each use of a slot raises the slot's stamp to the current epoch
// (cheap: one compare when it is already there). A slot is evictable only when its stamp is
// below the epoch of the oldest live ticket: no live reader has touched it since. The
// order of eviction is the stamp (the query that last used the slot), so it is LRU at the
// granularity of readers.
//
// Consequences: a query never sees a column freed under it, except one it retired itself
// (Retire, below: a scan that has passed a block for good); a query whose columns exceed the
// budget still runs (the cache goes over budget while it runs, and is trimmed back when its
// ticket is released), and frees what it retires as it goes when it is the only reader; a
// long-running reader keeps every column it used and did not retire.
//
// Threading: everything is thread-safe. The slot's fast path is three atomic loads.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace ns {

// What a slot holds: a decoded column of some type (see block.h).
struct CachedData {
  virtual ~CachedData() = default;
  virtual size_t Bytes() const = 0;
};

class ColumnCache;

// One decoded column of one block. Either permanent (in-memory blocks: set once, never
// evicted, not counted) or managed by the cache (segment blocks).
class CachedSlot {
 public:
  CachedSlot() = default;
  CachedSlot(const CachedSlot&) = delete;
  CachedSlot& operator=(const CachedSlot&) = delete;
  ~CachedSlot();

  // Makes `data` the slot's permanent content (in-memory blocks). REQUIRES: empty slot, not
  // yet shared with other threads.
  void SetPermanent(std::unique_ptr<CachedData> data);

  // The slot's data, decoded by `load` (which returns the new object) if it is not resident.
  // The reference stays valid while the calling reader's ticket lives.
  template <typename T, typename Load>
  const T& Get(Load&& load) const {
    const uint64_t e = epoch_.load(std::memory_order_relaxed);
    if (stamp_.load(std::memory_order_seq_cst) >= e) {
      if (CachedData* p = data_.load(std::memory_order_seq_cst)) return *static_cast<const T*>(p);
    }
    return *static_cast<const T*>(GetSlow(e, std::function<std::unique_ptr<CachedData>()>(std::forward<Load>(load))));
  }
  // Whether the data is decoded now, and its size (accounting only: no decode, no stamp).
  bool resident() const { return data_.load(std::memory_order_acquire) != nullptr; }
  size_t bytes() const { return bytes_.load(std::memory_order_relaxed); }

 private:
  friend class ColumnCache;
  CachedData* GetSlow(uint64_t e, const std::function<std::unique_ptr<CachedData>()>& load) const;
  static std::atomic<uint64_t> epoch_;  // the newest ticket's epoch (ColumnCache::ReadTicket)

  // Permanent slots have stamp UINT64_MAX, so the fast path always takes them.
  mutable std::atomic<uint64_t> stamp_{0};
  mutable std::atomic<CachedData*> data_{nullptr};
  mutable std::atomic<size_t> bytes_{0};
  mutable std::mutex mu_;        // decoding and eviction of this slot
  mutable bool linked_ = false;  // in the cache's resident set (guarded by the cache's mutex)
  mutable size_t index_ = 0;     // position in the resident set (guarded by the cache's mutex)
};

struct ColumnCacheStats {
  uint64_t budget_bytes = 0;
  uint64_t resident_bytes = 0, resident_columns = 0;
  uint64_t peak_bytes = 0;  // highest resident_bytes seen
  uint64_t hits = 0;        // a reader's first use of a column that was resident
  uint64_t misses = 0;      // decodes
  uint64_t evictions = 0, evicted_bytes = 0;
  uint64_t readers = 0;  // live tickets
};

class ColumnCache {
 public:
  // The process-wide cache every segment block uses.
  static ColumnCache& Global();

  // The budget in bytes (0 = unlimited). Lowering it evicts at once what no reader holds.
  void SetBudget(uint64_t bytes);
  uint64_t budget() const { return budget_.load(std::memory_order_relaxed); }
  // Whether a budget is set and the resident columns exceed it.
  bool OverBudget() const {
    const uint64_t b = budget_.load(std::memory_order_relaxed);
    return b != 0 && resident_.load(std::memory_order_relaxed) > b;
  }
  ColumnCacheStats Stats() const;
  // Frees every column no live reader can hold (tests, and `northstar` tools after a scan).
  void EvictUnpinned();

  // The reader with ticket epoch `reader` will not read these slots again (a scan that has
  // passed a block for good; none of its threads still uses them). If the cache is over its
  // budget when called, the ones no other live reader can hold are freed now, not when the
  // reader ends: a query whose columns exceed the budget then holds about the blocks it is
  // reading, not every block it has read. A live reader holds a slot only if it touched it,
  // and touching raises the slot's stamp to the newest epoch, at least that reader's; so a
  // slot is the caller's alone when every live ticket with an epoch at or below its stamp is
  // the caller's. Hence a conservative limit: while any other reader is live (another
  // query, in any project, or a compaction), what this reader touched after that reader
  // began is not freed until one of them ends. Under the budget: nothing happens.
  void Retire(const std::vector<const CachedSlot*>& slots, uint64_t reader);

  // A reader: while it lives, no column it (or any later reader) touched is freed.
  class ReadTicket {
   public:
    ReadTicket();
    ~ReadTicket();
    ReadTicket(const ReadTicket&) = delete;
    ReadTicket& operator=(const ReadTicket&) = delete;

    uint64_t epoch() const { return epoch_; }

   private:
    uint64_t epoch_;
  };
  static std::shared_ptr<ReadTicket> NewTicket() { return std::make_shared<ReadTicket>(); }

  // A default budget for this machine: a quarter of physical memory, at least 256 MiB.
  static uint64_t DefaultBudget();
  // Physical memory, or the memory limit of the process's cgroup (v2 or v1) if lower.
  static uint64_t MachineMemory();

 private:
  friend class CachedSlot;
  ColumnCache() = default;
  void Link(const CachedSlot* s, size_t bytes);                                        // REQUIRES: s->mu_ held
  void Unlink(const CachedSlot* s);                                                    // REQUIRES: mu_ held
  void EvictLocked(uint64_t target, std::vector<std::unique_ptr<CachedData>>* freed);  // REQUIRES: mu_ held
  void EvictIfOver();                                                                  // outside any slot lock
  // Frees s's data unless it is being decoded or its stamp is (or becomes) >= keep_from.
  void FreeUnlessStampReaches(const CachedSlot* s, uint64_t keep_from,
                              std::vector<std::unique_ptr<CachedData>>* freed);  // REQUIRES: mu_ held

  mutable std::mutex mu_;
  std::atomic<uint64_t> budget_{0};
  std::atomic<uint64_t> resident_{0};
  std::vector<const CachedSlot*> slots_;                   // resident managed slots; guarded by mu_
  std::map<uint64_t, uint32_t> live_;                      // ticket epoch -> count; guarded by mu_
  uint64_t peak_ = 0, evictions_ = 0, evicted_bytes_ = 0;  // guarded by mu_
  std::atomic<uint64_t> hits_{0}, misses_{0};
};

// Parses a memory budget setting: bytes ("536870912"), a size with a binary unit ("512MiB",
// "512M", "2GiB", "64KiB"; K, M, G, T and KB, MB, GB, TB mean the same), a share of the
// machine's memory ("25%", 1-100) or "unlimited" (0). InvalidArgument naming `field`.
StatusOr<uint64_t> ParseMemoryBudget(std::string_view text, const std::string& field);

}  // namespace ns
