// Block: an immutable columnar batch of events, the unit the query engine scans.
// A block comes from a segment file (columns decoded lazily on first use, so a query
// touching three columns decodes three) or from the memtable (built in memory).
// A column of a file that fails to decode (a malformed file whose checksums still match)
// never throws: the block records the Corruption (status(), naming the file and column)
// and the column reads as empty (zeros, property absent), so whoever reads a block that
// came from a file checks status() once after reading it and discards what it computed
// (RunQuery, compaction, `northstar check`). The accessors stay as cheap as before.
// Memory: a segment block's decoded columns (and event indexes) live in the process-wide
// ColumnCache (column_cache.h), which frees cold ones under its budget and decodes them again
// on next use. So a reader of segment blocks must hold a ColumnCache::ReadTicket while it
// uses the references the accessors return (every StoreSnapshot holds one). In-memory
// blocks (memtable, BlockBuilder) keep theirs for their lifetime.
// Threading: all const methods are safe to call concurrently.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/uuid.h"
#include "storage/column_cache.h"
#include "storage/event.h"

namespace ns {

// One property key's values over a block's rows.
// Numeric columns (every present value is a number) hold doubles; others hold a dictionary
// of distinct values (code 0 = absent) where numbers appear as text with kind kNum.
// A numeric column is dense (a value and a presence byte per row: 9 bytes a row) or, when
// at least half of its rows are alike (absent, or 0: an order's amount among all events,
// issue 15's query memory), sparse: the usual state `fill` (NaN = absent), a bit per row
// for the rows that differ, the number of such rows before each 64-row word, and their
// values in row order (NaN = absent): 0.19 bytes a row plus 8 per differing row. Segment
// columns are made sparse when decoded (MakeSparseIfFew); in-memory blocks stay dense.
// Read a numeric column through Present / NumAt / GetNum, never its vectors.
struct PropColumn {
  bool numeric = false;
  bool sparse = false;           // numeric: the sparse form (below) instead of num/present
  std::vector<double> num;       // numeric, dense: value per row
  std::vector<uint8_t> present;  // numeric, dense: 1 if the row has the key
  double fill = 0;               // numeric, sparse: every unlisted row's value (NaN: absent)
  std::vector<uint64_t> bits;    // numeric, sparse: bit (row % 64) of word row / 64 = listed
  std::vector<uint32_t> rank;    // numeric, sparse: listed rows before each word
  std::vector<double> vals;      // numeric, sparse: the listed rows' values in row order (NaN: absent)
  // Dictionary codes per row (0 = absent), in `code`, or narrowed when the dictionary is
  // small (NarrowCodes: segment columns, 1 or 2 bytes a row instead of 4) in code8 / code16.
  // Read them through CodeAt.
  std::vector<uint32_t> code;              // dictionary: code per row, 0 = absent
  std::vector<uint8_t> code8;              // dictionary, narrowed: fewer than 256 entries
  std::vector<uint16_t> code16;            // dictionary, narrowed: fewer than 65536 entries
  uint8_t code_width = 4;                  // dictionary: which of code8 (1), code16 (2), code (4) holds the codes
  std::vector<std::string> dict;           // dictionary: dict[0] unused
  std::vector<PropValue::Kind> dict_kind;  // dictionary: kind of each entry

  uint32_t CodeAt(size_t row) const { return code_width == 1 ? code8[row] : code_width == 2 ? code16[row] : code[row]; }
  void PrefetchCode(size_t row) const {
    if (code_width == 1)
      __builtin_prefetch(&code8[row]);
    else if (code_width == 2)
      __builtin_prefetch(&code16[row]);
    else
      __builtin_prefetch(&code[row]);
  }
  // Moves a dictionary column's codes to the narrowest width its dictionary allows.
  void NarrowCodes();

  bool Present(size_t row) const {
    if (!numeric) return CodeAt(row) != 0;
    if (sparse) return SparseValue(row) == SparseValue(row);  // not NaN
    return present[row] != 0;
  }
  // The number of a numeric column's row. REQUIRES: Present(row).
  double NumAt(size_t row) const { return sparse ? SparseValue(row) : num[row]; }
  // Asks for a numeric row's cache lines early (scans that know their next rows).
  void PrefetchNum(size_t row) const {
    if (sparse) {
      __builtin_prefetch(&bits[row >> 6]);
      __builtin_prefetch(&rank[row >> 6]);
    } else {
      __builtin_prefetch(&num[row]);
      __builtin_prefetch(&present[row]);
    }
  }
  // Turns a dense numeric column of which at least half the rows are absent, or are +0,
  // into the sparse form (same answers from every accessor); anything else stays as it is.
  void MakeSparseIfFew();
  PropValue Get(size_t row) const;
  // Numeric value of the row, if the value is a number, or text that is entirely a finite
  // number (ParseNumericText: never "nan", "inf" or "infinity").
  bool GetNum(size_t row, double* out) const;
  // Approximate bytes held in memory.
  size_t Bytes() const;

 private:
  double SparseValue(size_t row) const {
    const uint64_t w = bits[row >> 6];
    if (!((w >> (row & 63)) & 1)) return fill;
    const uint64_t below = w & ((uint64_t{1} << (row & 63)) - 1);
    return vals[rank[row >> 6] + static_cast<uint32_t>(__builtin_popcountll(below))];
  }
};

class Block;

// Retires a block for a reader when it goes out of scope (Block::Retire): the end of the
// block's turn in a scan that reads each block once, however the turn ends.
class RetireWhenDone {
 public:
  RetireWhenDone(const Block& block, uint64_t reader_epoch) : block_(block), reader_(reader_epoch) {}
  RetireWhenDone(const RetireWhenDone&) = delete;
  RetireWhenDone& operator=(const RetireWhenDone&) = delete;
  inline ~RetireWhenDone();

 private:
  const Block& block_;
  const uint64_t reader_;
};

// Whether `s` is entirely a finite number ("12", "-0.5", "1e3"; not " 1", "1x", "+1", "nan",
// "inf", "infinity", "1e999"), and its value. Every reader that takes numeric text uses it
// (GetNum, query filters), as docs/queries.md says.
bool ParseNumericText(std::string_view s, double* out);

class Block {
 public:
  enum Column { kDid = 0, kTs, kEv, kUuid, kNumFixedColumns };
  // What the fixed columns decode into (CachedData, so the cache can hold them).
  template <typename T>
  struct VecData : CachedData {
    std::vector<T> v;
    size_t Bytes() const override { return v.capacity() * sizeof(T); }
  };
  struct UuidData : CachedData {
    std::vector<Uuid> ids;
    std::vector<uint8_t> has;
    size_t Bytes() const override { return ids.capacity() * sizeof(Uuid) + has.capacity(); }
  };
  struct PropData : CachedData {
    PropColumn col;
    size_t Bytes() const override { return col.Bytes(); }
  };
  // Fills one lazily-loaded fixed column (out is the column's type above: VecData<uint32_t>
  // for did and ev, VecData<int64_t> for ts, UuidData for uuid); a Corruption naming the
  // file and column if it cannot.
  using Loader = std::function<Status(int column, CachedData& out)>;

  size_t size() const { return size_; }
  int64_t min_ts() const { return min_ts_; }
  int64_t max_ts() const { return max_ts_; }
  // Global event code -> number of rows with that event, for skipping blocks.
  const std::vector<std::pair<uint32_t, uint32_t>>& event_counts() const { return event_counts_; }
  bool HasEvent(uint32_t code) const;
  const std::vector<std::string>& prop_keys() const { return prop_keys_; }

  const std::vector<uint32_t>& did() const { return Fixed<VecData<uint32_t>>(kDid).v; }
  const std::vector<int64_t>& ts() const { return Fixed<VecData<int64_t>>(kTs).v; }
  const std::vector<uint32_t>& ev() const { return Fixed<VecData<uint32_t>>(kEv).v; }
  // Client uuids; has_uuid[i] == 0 means the row has none.
  const std::vector<Uuid>& uuid() const { return Fixed<UuidData>(kUuid).ids; }
  const std::vector<uint8_t>& has_uuid() const { return Fixed<UuidData>(kUuid).has; }
  // Row positions (ascending) of the rows with event `code`, as [begin, end) (empty if none).
  // Built on first use per code and cached, so operators that need a few event names visit
  // only their rows and the index costs memory only for the events queried.
  std::pair<const uint32_t*, const uint32_t*> EventRows(uint32_t code) const;

  // Reads the uuid column without caching it in the block (startup dedup rebuild).
  Status ReadUuids(std::vector<uint8_t>* has, std::vector<Uuid>* ids) const;
  // OK, or the Corruption of the first column that failed to decode so far.
  Status status() const;
  // Decodes every column now (if not yet) and returns status().
  Status LoadAll() const;
  // nullptr if no row of the block has the key.
  const PropColumn* prop(std::string_view key) const;

  // Reads row i back as an event (without distinct id string: did only).
  void RowProps(size_t row, std::vector<Property>* out) const;

  // Cache for the query layer's "sorted by person" check: (identity version << 1) | sorted,
  // 0 = not checked. Benign race: concurrent checks store the same value.
  uint64_t sort_check_cache() const { return sort_check_.load(std::memory_order_relaxed); }
  void set_sort_check_cache(uint64_t v) const { sort_check_.store(v, std::memory_order_relaxed); }

  // Approximate bytes held in memory by decoded columns and event indexes now.
  size_t MemoryBytes() const;

  // The reader with this ticket epoch (StoreSnapshot::reader_epoch) will not read the block
  // again: over the memory budget, its decoded columns and event indexes that no other
  // reader can hold are freed now (ColumnCache::Retire). The caller must not use any column
  // reference of the block it took before, and no other thread of the same reader may still
  // be reading the block. A no-op for in-memory blocks, for epoch 0 and under the budget.
  void Retire(uint64_t reader_epoch) const;

  // What hides the rows of erased persons from snapshots (storage/event_store.cc), cached on
  // the block for the person table's erase_version it was computed at: a block is checked
  // once per erasure, and only rescanned if a newly erased did falls in its did range.
  struct ErasureView {
    uint64_t version = 0;                   // erase_version this answer is for
    std::shared_ptr<const Block> filtered;  // the block without erased rows; null: it has none
    bool range_known = false;
    uint32_t did_min = 0, did_max = 0;
  };
  // Runs fn on the block's erasure view under the block's own lock.
  void WithErasureView(const std::function<void(ErasureView&)>& fn) const {
    std::lock_guard lk(erasure_mu_);
    fn(erasure_view_);
  }

 private:
  friend class BlockBuilder;
  friend class SegmentReader;
  template <typename T>
  const T& Fixed(int column) const {
    return fixed_[column].Get<T>([this, column] { return LoadFixed(column); });
  }
  std::unique_ptr<CachedData> LoadFixed(int column) const;
  void SetError(const Status& st) const;
  struct LazyProp;
  std::unique_ptr<CachedData> LoadProp(const LazyProp& lp) const;

  size_t size_ = 0;
  mutable std::atomic<uint64_t> sort_check_{0};
  int64_t min_ts_ = 0, max_ts_ = 0;
  std::vector<std::pair<uint32_t, uint32_t>> event_counts_;
  std::vector<std::string> prop_keys_;

  CachedSlot fixed_[kNumFixedColumns];
  mutable std::atomic<bool> failed_{false};
  mutable std::mutex error_mu_;
  mutable Status error_;  // guarded by error_mu_; the first load failure
  mutable std::mutex index_mu_;
  mutable std::mutex erasure_mu_;
  mutable ErasureView erasure_view_;  // guarded by erasure_mu_
  // Event code -> its rows (EventRows); the slots live as long as the block.
  mutable std::unordered_map<uint32_t, std::unique_ptr<CachedSlot>> rows_by_code_;  // guarded by index_mu_

  struct LazyProp {
    CachedSlot slot;                          // PropData
    std::function<Status(PropColumn&)> load;  // empty for in-memory blocks
  };
  std::map<std::string, std::unique_ptr<LazyProp>, std::less<>> props_;
  Loader loader_;  // empty for in-memory blocks
  std::function<Status(std::vector<uint8_t>*, std::vector<Uuid>*)> uuid_reader_;
};

// Builds a Block row by row. Not thread-safe.
class BlockBuilder {
 public:
  void Append(uint32_t did, int64_t ts, uint32_t ev, const Uuid* uuid, const std::vector<Property>& props);
  // Appends row `row` of `src` (all columns).
  void AppendFrom(const Block& src, size_t row);
  size_t size() const { return did_.size(); }
  std::shared_ptr<Block> Finish();

 private:
  // One property key. Per row: code 0 = absent, kNumCode = the number in num[row], else a
  // dictionary code. Numbers are only turned into text at Finish() if the column turns out
  // to hold strings too.
  static constexpr uint32_t kNumCode = UINT32_MAX;
  struct PropBuilder {
    std::vector<uint32_t> code;
    std::vector<double> num;
    std::unordered_map<std::string, uint32_t> index;  // (kind byte + text) -> code
    std::vector<std::string> dict{""};
    std::vector<PropValue::Kind> kinds{PropValue::kStr};
    bool any_text = false;
    // Codes of recent text values, direct-mapped by a cheap hash, in front of `index`: in
    // (person, time) order a column's few common values alternate, so the last value alone
    // missed, and hashing the whole text into the map cost ~5 % of the CPU of ingest.
    struct RecentText {
      std::string text;
      PropValue::Kind kind = PropValue::kStr;
      uint32_t code = 0;  // 0: empty slot (code 0 is the absent value, never a text's)
    };
    std::array<RecentText, 16> recent;
  };
  // Builders of the previous row's keys, in order: events usually carry the same keys in
  // the same order, so a key is matched by one string compare instead of a map lookup.
  std::vector<std::pair<std::string, PropBuilder*>> last_keys_;
  PropBuilder& Prop(std::string_view key);
  void AddNum(PropBuilder& p, double v);
  void AddText(PropBuilder& p, PropValue::Kind kind, std::string_view text);
  bool Pad(PropBuilder& p);  // pads to the current row; false if the row already has the key

  // AppendFrom's per-source-block cache: builder of each source column, and source
  // dictionary code -> our code.
  struct SrcCache {
    const uint32_t* did;
    const int64_t* ts;
    const uint32_t* ev;
    const Uuid* uuid;
    const uint8_t* has_uuid;
    std::vector<const PropColumn*> cols;
    std::vector<PropBuilder*> builders;
    std::vector<std::vector<uint32_t>> codes;
  };
  std::unordered_map<const Block*, SrcCache> src_cache_;
  const Block* src_ = nullptr;
  SrcCache* src_entry_ = nullptr;

  std::vector<uint32_t> did_;
  std::vector<int64_t> ts_;
  std::vector<uint32_t> ev_;
  std::vector<Uuid> uuid_;
  std::vector<uint8_t> has_uuid_;
  std::map<std::string, PropBuilder, std::less<>> props_;
  std::string scratch_;
};

RetireWhenDone::~RetireWhenDone() { block_.Retire(reader_); }

}  // namespace ns
