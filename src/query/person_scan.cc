#include "query/person_scan.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <queue>
#include <thread>
#include <unordered_map>

#include "core/time_zone.h"
#include "storage/column_cache.h"
#include "storage/event_dict.h"

namespace ns {

bool BlockSortedByPerson(const Block& b, const PersonTable& persons) {
  const uint64_t want = persons.merge_version << 1;
  uint64_t cached = b.sort_check_cache();
  if (cached >> 1 == persons.merge_version && cached != 0) return cached & 1;
  const auto& did = b.did();
  const auto& ts = b.ts();
  const auto& po = persons.person_of();
  bool ok = true;
  uint32_t prev_p = 0;
  int64_t prev_t = INT64_MIN;
  for (size_t i = 0; i < b.size(); i++) {
    uint32_t p = did[i] < po.size() ? po[did[i]] : did[i];
    if (p < prev_p || (p == prev_p && ts[i] < prev_t)) {
      ok = false;
      break;
    }
    prev_p = p;
    prev_t = ts[i];
  }
  b.set_sort_check_cache(want | (ok ? 1 : 0));
  return ok;
}

namespace {

using Row = std::pair<uint32_t, uint32_t>;  // (block, row)

// A block's rows sorted by (UTC day, person, ts), and each day's range of that order: the
// rows of one day in (person, ts) order are rows[begin, end).
struct BlockOrder {
  struct DayRange {
    int32_t day;
    uint32_t begin, end;
  };
  std::vector<uint32_t> rows;
  std::vector<DayRange> days;
};

// The order of a block that is not stored in (person, ts) order (memtable blocks; segments
// whose persons merged later; blocks spanning days), sorted once and kept while the block
// lives and no merge happened since: under a steady ingest every query asks for the same
// sealed memtable blocks, which re-sorting per query made the largest cost of a query
// (docs/benchmarks.md, "queries' p99 under ingest"). Bounded by kOrderCacheRows rows in all;
// past it, orders are computed per query as before.
struct CachedOrder {
  std::weak_ptr<const Block> block;
  uint64_t merge_version = 0;
  std::shared_ptr<const BlockOrder> order;
};
constexpr size_t kOrderCacheRows = size_t{8} << 20;
std::mutex order_cache_mu;
std::unordered_map<const Block*, CachedOrder> order_cache;  // guarded by order_cache_mu
size_t order_cache_rows = 0;                                // guarded by order_cache_mu

std::shared_ptr<const BlockOrder> SortRows(const Block& b, const PersonTable& persons) {
  struct Key {
    int32_t day;
    uint32_t person;
    int64_t ts;
    uint32_t row;
  };
  const auto& did = b.did();
  const auto& ts = b.ts();
  std::vector<Key> keys(b.size());
  for (uint32_t i = 0; i < b.size(); i++) keys[i] = {UtcDay(ts[i]), persons.PersonOf(did[i]), ts[i], i};
  std::sort(keys.begin(), keys.end(), [](const Key& x, const Key& y) {
    return x.day != y.day ? x.day < y.day : x.person != y.person ? x.person < y.person : x.ts < y.ts;
  });
  auto order = std::make_shared<BlockOrder>();
  order->rows.resize(keys.size());
  for (uint32_t i = 0; i < keys.size(); i++) {
    order->rows[i] = keys[i].row;
    if (i == 0 || keys[i].day != keys[i - 1].day) order->days.push_back({keys[i].day, i, i});
    order->days.back().end = i + 1;
  }
  return order;
}

std::shared_ptr<const BlockOrder> RowsInPersonOrder(const std::shared_ptr<const Block>& bp,
                                                    const PersonTable& persons) {
  {
    std::lock_guard lk(order_cache_mu);
    auto it = order_cache.find(bp.get());
    if (it != order_cache.end() && it->second.block.lock() == bp && it->second.merge_version == persons.merge_version)
      return it->second.order;
  }
  auto order = SortRows(*bp, persons);
  const size_t n = order->rows.size();
  std::lock_guard lk(order_cache_mu);
  if (order_cache_rows + n > kOrderCacheRows) {  // drop what no longer counts
    for (auto it = order_cache.begin(); it != order_cache.end();) {
      if (it->second.block.expired() || it->second.merge_version != persons.merge_version) {
        order_cache_rows -= it->second.order->rows.size();
        it = order_cache.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (order_cache_rows + n <= kOrderCacheRows) {
    auto [it, fresh] = order_cache.try_emplace(bp.get());
    if (!fresh) order_cache_rows -= it->second.order->rows.size();
    it->second = CachedOrder{bp, persons.merge_version, order};
    order_cache_rows += n;
  }
  return order;
}

// One block's rows of one day, in (person, ts) order: order->rows[begin, end), or, when
// order is null (a block stored sorted), the rows [begin, end) themselves.
struct DayRun {
  uint32_t block;  // index in the scan's blocks
  std::shared_ptr<const Block> owner;
  std::shared_ptr<const BlockOrder> order;
  uint32_t begin, end;
  uint32_t size() const { return end - begin; }
  uint32_t at(uint32_t k) const { return order ? order->rows[begin + k] : begin + k; }
};

// (person, ts) of a row, for the merges below.
struct RowKey {
  uint32_t person;
  int64_t ts;
  bool operator<(const RowKey& o) const { return person != o.person ? person < o.person : ts < o.ts; }
};
inline RowKey KeyOf(const Block& b, uint32_t row, const PersonTable& persons) {
  return {persons.PersonOf(b.did()[row]), b.ts()[row]};
}

// The plain path (keep_day_orders off): k-way merge by (person, ts) of sorted runs of rows;
// a run's head key is computed once per row. `block_of(b)` is the Block of block index b.
template <typename BlockOf>
std::vector<Row> MergeRuns(const std::vector<std::vector<Row>>& runs, const PersonTable& persons, BlockOf&& block_of) {
  if (runs.size() == 1) return runs[0];
  size_t total = 0;
  for (const auto& r : runs) total += r.size();
  std::vector<Row> out;
  out.reserve(total);
  struct Head {
    RowKey key;
    uint32_t run;
    uint32_t pos;
  };
  auto head_of = [&](uint32_t run, uint32_t pos) {
    const Row r = runs[run][pos];
    return Head{KeyOf(block_of(r.first), r.second, persons), run, pos};
  };
  auto later = [](const Head& x, const Head& y) { return y.key < x.key || (!(x.key < y.key) && x.run > y.run); };
  std::vector<Head> heap;
  for (uint32_t r = 0; r < runs.size(); r++)
    if (!runs[r].empty()) heap.push_back(head_of(r, 0));
  std::make_heap(heap.begin(), heap.end(), later);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Head h = heap.back();
    heap.pop_back();
    out.push_back(runs[h.run][h.pos]);
    if (h.pos + 1 < runs[h.run].size()) {
      heap.push_back(head_of(h.run, h.pos + 1));
      std::push_heap(heap.begin(), heap.end(), later);
    }
  }
  return out;
}

// Rows of one day with their (person, ts) sort keys packed in one integer: the person in the
// high half, the ms since the UTC day's start in the low half (a day has 86.4M of them), so
// merges compare integers and never read a block for a key twice.
struct KeyedRows {
  std::vector<uint64_t> keys;
  std::vector<Row> rows;
  size_t size() const { return rows.size(); }
};
inline uint64_t PackKey(uint32_t person, int64_t ts, int64_t day_start) {
  return uint64_t{person} << 32 | static_cast<uint32_t>(ts - day_start);
}

// The day's rows of `runs` (each in (person, ts) order) with their keys, merged (k-way, on
// the keys, each computed once). `block_of(b)` is the Block of block index b.
template <typename BlockOf>
KeyedRows MergeKeyedRuns(const std::vector<std::vector<Row>>& runs, int64_t day_start, const PersonTable& persons,
                         BlockOf&& block_of) {
  std::vector<KeyedRows> keyed(runs.size());
  size_t total = 0;
  for (size_t r = 0; r < runs.size(); r++) {
    keyed[r].rows = runs[r];
    keyed[r].keys.resize(runs[r].size());
    for (size_t k = 0; k < runs[r].size(); k++) {
      const Block& b = block_of(runs[r][k].first);
      const uint32_t i = runs[r][k].second;
      keyed[r].keys[k] = PackKey(persons.PersonOf(b.did()[i]), b.ts()[i], day_start);
    }
    total += runs[r].size();
  }
  if (keyed.size() == 1) return std::move(keyed[0]);
  KeyedRows out;
  out.keys.reserve(total);
  out.rows.reserve(total);
  using Head = std::pair<uint64_t, uint32_t>;  // (key, run)
  std::vector<size_t> pos(keyed.size(), 0);
  std::priority_queue<Head, std::vector<Head>, std::greater<Head>> heap;
  for (uint32_t r = 0; r < keyed.size(); r++)
    if (keyed[r].size()) heap.push({keyed[r].keys[0], r});
  while (!heap.empty()) {
    const uint32_t r = heap.top().second;
    heap.pop();
    const size_t k = pos[r]++;
    out.keys.push_back(keyed[r].keys[k]);
    out.rows.push_back(keyed[r].rows[k]);
    if (k + 1 < keyed[r].size()) heap.push({keyed[r].keys[k + 1], r});
  }
  return out;
}

// Merges the sorted `add` into sorted keys `base[0, n)` in one pass that copies base in
// stretches: for each added row, the base rows before it are found by galloping from the
// last position (a few key reads per added row when add is short against base, as for the
// rows a few queries later). emit_base(first, last) takes base[first, last); emit_add(k) the
// k-th added row.
template <typename EmitBase, typename EmitAdd>
void GallopMerge(const uint64_t* base, size_t n, const std::vector<uint64_t>& add, EmitBase&& emit_base,
                 EmitAdd&& emit_add) {
  size_t pos = 0;
  for (size_t a = 0; a < add.size(); a++) {
    const uint64_t k = add[a];
    // The first base position >= pos whose key is after k (base rows of equal key first).
    size_t lo = pos, hi = pos, step = 1;
    while (hi < n && base[hi] <= k) {
      lo = hi + 1;
      hi = std::min(n, hi + step);
      step *= 2;
    }
    hi = static_cast<size_t>(std::upper_bound(base + lo, base + hi, k) - base);
    if (hi > pos) emit_base(pos, hi);
    emit_add(a);
    pos = hi;
  }
  if (pos < n) emit_base(pos, n);
}

// The merged (person, ts) order of one day of one store over its stable blocks (every block
// but the memtable's open rows, which the next write replaces), kept between queries. A
// query whose day gained blocks (sealed memtable rows, a flushed or compacted segment) merges
// only their rows into it instead of merging the whole day again; blocks gone from the store
// (flushed, compacted) are filtered out. Rows are (slot, row), a slot indexing `blocks`.
//
// Two sorted levels, like a small LSM tree: the gained rows are merged into `recent`, and
// `recent` into `base` only once it holds more than 1/recent_level_divisor of it. Under a
// steady ingest a block is sealed every few queries; with one level each of them copied the
// whole day's order (O(rows of the day), ~40 % of a loaded query's CPU at 1.5M rows of the
// day), now they copy the recent level and each row is copied into `base` a bounded number
// of times as the day grows (docs/benchmarks.md, "queries' p99 under ingest"). A query
// merges the two levels (and the open rows) while it copies its rows out.
struct DayOrder {
  std::mutex mu;
  uint64_t merge_version = 0;                      // guarded by mu
  std::vector<std::weak_ptr<const Block>> blocks;  // guarded by mu
  std::shared_ptr<const KeyedRows> base;           // guarded by mu
  std::shared_ptr<const KeyedRows> recent;         // guarded by mu
  uint64_t last_use = 0;                           // guarded by day_orders_mu
};
constexpr size_t kDayOrderRows = size_t{8} << 20;  // all days' kept orders together (16 bytes a row)
std::mutex day_orders_mu;
// Keyed by (store, UTC day); the store is told apart by its event dictionary, which lives as
// long as the store (a new store at the same address shares no block with the old one, so
// it finds nothing to keep).
std::map<std::pair<const EventDict*, int32_t>, std::shared_ptr<DayOrder>> day_orders;  // guarded by day_orders_mu
std::unordered_map<const DayOrder*, size_t> day_order_rows;                            // guarded by day_orders_mu
uint64_t day_order_clock = 0;                                                          // guarded by day_orders_mu

// Records the size of `d`'s kept order and drops other days' orders, least recently used
// first, while all together exceed kDayOrderRows; drops `d` too if it alone is too large.
void AccountDayOrder(const DayOrder* d, size_t rows) {
  std::lock_guard lk(day_orders_mu);
  day_order_rows[d] = rows;
  size_t total = 0;
  for (const auto& [p, n] : day_order_rows) total += n;
  while (total > kDayOrderRows) {
    auto victim = day_orders.end();
    for (auto it = day_orders.begin(); it != day_orders.end(); ++it)
      if (victim == day_orders.end() || (it->second.get() != d && it->second->last_use < victim->second->last_use) ||
          victim->second.get() == d)
        victim = it;
    if (victim == day_orders.end()) break;
    auto r = day_order_rows.find(victim->second.get());
    if (r != day_order_rows.end()) {
      total -= r->second;
      day_order_rows.erase(r);
    }
    day_orders.erase(victim);
  }
}

// A run's rows as (block, row), the block numbered `block`.
std::vector<Row> RunRows(const DayRun& r, uint32_t block) {
  std::vector<Row> run(r.size());
  for (uint32_t k = 0; k < run.size(); k++) run[k] = {block, r.at(k)};
  return run;
}

// Row lists of finished scans, kept for the next scan's multi-block days. A fresh list of a
// day's rows (12 MB at 1.5M rows) cost ~7 ms of page faults on a 2-vCPU VM, since jemalloc
// gives an extent that large back to the kernel when it is freed, against ~1.3 ms for the
// copy into it (docs/benchmarks.md, "Run of 2026-12-07 09:33 UTC"). Under a query loop on
// fresh rows every query made one. Bounded: lists of at least kMinRows rows, kMaxBytes in
// all; a taken list is sized with a quarter of headroom, so that the next queries fit in it
// as the day grows.
class RowBufferPool {
 public:
  static RowBufferPool& Global() {
    static RowBufferPool pool;
    return pool;
  }
  // An empty list with room for `n` rows: a kept one if one is large enough.
  std::vector<Row> Take(size_t n) {
    if (n >= kMinRows) {
      std::lock_guard lk(mu_);
      size_t best = free_.size();
      for (size_t i = 0; i < free_.size(); i++)
        if (free_[i].capacity() >= n && (best == free_.size() || free_[i].capacity() < free_[best].capacity()))
          best = i;
      if (best != free_.size()) {
        std::vector<Row> v = std::move(free_[best]);
        free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(best));
        bytes_ -= v.capacity() * sizeof(Row);
        v.clear();
        return v;
      }
    }
    std::vector<Row> v;
    v.reserve(n >= kMinRows ? n + n / 4 : n);
    return v;
  }
  // Keeps `v`'s memory for a later Take, dropping the smallest kept lists past kMaxBytes.
  void Give(std::vector<Row>&& v) {
    const size_t b = v.capacity() * sizeof(Row);
    if (v.capacity() < kMinRows || b > kMaxBytes) return;
    std::vector<std::vector<Row>> dropped;  // freed outside the lock
    std::lock_guard lk(mu_);
    while (bytes_ + b > kMaxBytes && !free_.empty()) {
      auto smallest = std::min_element(free_.begin(), free_.end(),
                                       [](const auto& x, const auto& y) { return x.capacity() < y.capacity(); });
      bytes_ -= smallest->capacity() * sizeof(Row);
      dropped.push_back(std::move(*smallest));
      free_.erase(smallest);
    }
    bytes_ += b;
    free_.push_back(std::move(v));
  }

 private:
  static constexpr size_t kMinRows = size_t{1} << 16;
  static constexpr size_t kMaxBytes = size_t{64} << 20;
  std::mutex mu_;
  std::vector<std::vector<Row>> free_;  // guarded by mu_
  size_t bytes_ = 0;                    // guarded by mu_
};

// The merge of sorted `a` and `b` (rows of `a` first on equal keys). With `renumber`, a's
// rows have their slots renumbered through it, and those renumbered to UINT32_MAX are left
// out; b's rows are taken as they are.
KeyedRows MergeKeyed(const KeyedRows& a, const KeyedRows& b, const std::vector<uint32_t>* renumber = nullptr) {
  KeyedRows out;
  out.keys.reserve(a.size() + b.size());
  out.rows.reserve(a.size() + b.size());
  GallopMerge(
      a.keys.data(), a.size(), b.keys,
      [&](size_t first, size_t last) {
        if (!renumber) {
          out.keys.insert(out.keys.end(), a.keys.begin() + first, a.keys.begin() + last);
          out.rows.insert(out.rows.end(), a.rows.begin() + first, a.rows.begin() + last);
          return;
        }
        for (size_t i = first; i < last; i++)
          if (const uint32_t s = (*renumber)[a.rows[i].first]; s != UINT32_MAX) {
            out.keys.push_back(a.keys[i]);
            out.rows.push_back({s, a.rows[i].second});
          }
      },
      [&](size_t k) {
        out.keys.push_back(b.keys[k]);
        out.rows.push_back(b.rows[k]);
      });
  return out;
}

// The rows of one day for the scan: the kept order of its stable runs brought up to date,
// its two levels and the volatile runs (the open memtable rows) merged while copied out.
std::vector<Row> CachedDayRows(const EventDict* store, int32_t day, const std::vector<DayRun>& stable,
                               const std::vector<DayRun>& volatile_runs, const std::vector<const Block*>& scan_blocks,
                               const PersonTable& persons) {
  const int64_t day_start = int64_t{day} * kMsPerDay;
  const size_t divisor = std::max<uint32_t>(1, SequenceScanTuning().recent_level_divisor);
  std::shared_ptr<DayOrder> d;
  {
    std::lock_guard lk(day_orders_mu);
    auto& slot = day_orders[{store, day}];
    if (!slot) slot = std::make_shared<DayOrder>();
    d = slot;
    d->last_use = ++day_order_clock;
  }
  std::shared_ptr<const KeyedRows> base, recent;
  std::vector<std::shared_ptr<const Block>> slots;  // held while the rows are read
  {
    std::lock_guard lk(d->mu);
    if (d->merge_version != persons.merge_version || !d->base) {
      d->merge_version = persons.merge_version;
      d->blocks.clear();
      d->base = d->recent = std::make_shared<const KeyedRows>();
    }
    slots.reserve(d->blocks.size());
    for (const auto& w : d->blocks) slots.push_back(w.lock());
    std::unordered_map<const Block*, uint32_t> slot_of;
    for (uint32_t s = 0; s < slots.size(); s++)
      if (slots[s]) slot_of[slots[s].get()] = s;
    std::vector<const DayRun*> added;
    std::vector<uint8_t> present(slots.size(), 0);
    for (const DayRun& r : stable) {
      auto it = slot_of.find(r.owner.get());
      if (it == slot_of.end())
        added.push_back(&r);
      else
        present[it->second] = 1;
    }
    bool dead = false;
    for (const auto& s : slots) dead = dead || !s;
    base = d->base;
    recent = d->recent;
    if (dead || !added.empty()) {
      // New slots: the kept blocks (in slot order; with blocks added, only those this query
      // has: the others are gone or newer than its snapshot), then the added ones.
      std::vector<uint32_t> renumber(slots.size(), UINT32_MAX);
      std::vector<std::shared_ptr<const Block>> next;
      for (uint32_t s = 0; s < slots.size(); s++)
        if (slots[s] && (present[s] || added.empty())) {
          renumber[s] = static_cast<uint32_t>(next.size());
          next.push_back(slots[s]);
        }
      // Without a slot dropped the levels stay as they are (the common case: a query after
      // more rows were sealed); otherwise filtered, renumbered copies.
      if (next.size() != slots.size()) {
        base = std::make_shared<const KeyedRows>(MergeKeyed(*base, KeyedRows(), &renumber));
        recent = std::make_shared<const KeyedRows>(MergeKeyed(*recent, KeyedRows(), &renumber));
      }
      if (!added.empty()) {
        std::vector<std::vector<Row>> runs;
        for (const DayRun* r : added) {
          runs.push_back(RunRows(*r, static_cast<uint32_t>(next.size())));
          next.push_back(r->owner);
        }
        const KeyedRows add =
            MergeKeyedRuns(runs, day_start, persons, [&](uint32_t s) -> const Block& { return *next[s]; });
        auto grown = std::make_shared<const KeyedRows>(MergeKeyed(*recent, add));
        if (base->size() == 0) {
          base = std::move(grown);
          recent = std::make_shared<const KeyedRows>();
        } else if (grown->size() * divisor > base->size()) {
          base = std::make_shared<const KeyedRows>(MergeKeyed(*base, *grown));
          recent = std::make_shared<const KeyedRows>();
        } else {
          recent = std::move(grown);
        }
      }
      d->blocks.assign(next.begin(), next.end());
      d->base = base;
      d->recent = recent;
      slots = std::move(next);
    }
  }
  AccountDayOrder(d.get(), base->size() + recent->size());
  // Out: slots -> the scan's block indices (rows of slots this snapshot lacks are skipped).
  std::vector<uint32_t> to_scan(slots.size(), UINT32_MAX);
  {
    std::unordered_map<const Block*, uint32_t> scan_index;
    for (const DayRun& r : stable) scan_index[r.owner.get()] = r.block;
    for (uint32_t s = 0; s < slots.size(); s++)
      if (auto it = scan_index.find(slots[s].get()); it != scan_index.end()) to_scan[s] = it->second;
  }
  // The small side, in scan block indices: the recent level merged with the volatile runs.
  KeyedRows add;
  if (!volatile_runs.empty()) {
    std::vector<std::vector<Row>> runs;
    for (const DayRun& r : volatile_runs) runs.push_back(RunRows(r, r.block));
    add = MergeKeyedRuns(runs, day_start, persons, [&](uint32_t b) -> const Block& { return *scan_blocks[b]; });
  }
  KeyedRows side = recent->size() ? MergeKeyed(*recent, add, &to_scan) : std::move(add);
  // Written through a pointer, a base row of a slot this snapshot lacks overwritten by the
  // next (no branch, no capacity check per row: this copy is O(rows of the day) per query).
  std::vector<Row> out = RowBufferPool::Global().Take(base->size() + side.size());
  out.resize(base->size() + side.size());
  Row* w = out.data();
  const Row* base_rows = base->rows.data();
  const uint32_t* slot_to_scan = to_scan.data();
  GallopMerge(
      base->keys.data(), base->size(), side.keys,
      [&](size_t first, size_t last) {
        for (size_t i = first; i < last; i++) {
          const uint32_t b = slot_to_scan[base_rows[i].first];
          *w = {b, base_rows[i].second};
          w += b != UINT32_MAX;
        }
      },
      [&](size_t k) { *w++ = side.rows[k]; });
  out.resize(static_cast<size_t>(w - out.data()));
  return out;
}

}  // namespace

PersonOrderScan::~PersonOrderScan() {
  for (Part& p : parts_)
    if (!p.rows.empty()) RowBufferPool::Global().Give(std::move(p.rows));
}

PersonOrderScan::PersonOrderScan(const StoreSnapshot& snap, int64_t from_ms, int64_t to_ms) {
  const PersonTable& persons = *snap.persons;
  const bool keep_day_orders = SequenceScanTuning().keep_day_orders;
  // Per UTC day, runs of rows each in (person, ts) order: a whole block stored in that order,
  // or one day's rows of another block in its sorted order. A day of one whole block is
  // visited in place; otherwise the day's runs are merged (k-way, no sort of the day), or
  // taken from the day's kept order (CachedDayRows).
  struct Day {
    std::vector<uint32_t> whole;        // blocks entirely in this day and sorted
    std::vector<DayRun> runs;           // the day's rows of other blocks
    std::vector<DayRun> volatile_runs;  // of the open memtable rows (kept day orders only)
  };
  std::map<int32_t, Day> days;
  std::vector<std::shared_ptr<const Block>> owners;
  auto in_range = [&](const Block& b) { return b.size() != 0 && b.max_ts() >= from_ms && b.min_ts() < to_ms; };
  uint64_t rows = 0;
  for (const auto& bp : snap.blocks)
    if (in_range(*bp)) rows += bp->size();
  const uint64_t budget = ColumnCache::Global().budget();
  tight_ = budget != 0 && rows * ScanRetirer::kBytesPerRow > budget;
  // A tight scan frees the person columns the checks below read as it goes (ScanRetirer).
  auto checked = [&](const Block& b) {
    if (tight_) b.Retire(snap.reader_epoch);
  };
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    if (!in_range(b)) continue;
    const uint32_t bi = static_cast<uint32_t>(blocks_.size());
    blocks_.push_back(&b);
    owners.push_back(bp);
    // The open memtable rows change with every write: nothing is kept of them.
    const bool is_volatile = &b == snap.open_rows_block && keep_day_orders;
    int32_t d0 = UtcDay(b.min_ts()), d1 = UtcDay(b.max_ts());
    const bool sorted = d0 == d1 && BlockSortedByPerson(b, persons);
    if (sorted) checked(b);
    if (sorted) {
      if (is_volatile)
        days[d0].volatile_runs.push_back(DayRun{bi, bp, nullptr, 0, static_cast<uint32_t>(b.size())});
      else
        days[d0].whole.push_back(bi);
      continue;
    }
    const auto order = is_volatile ? SortRows(b, persons) : RowsInPersonOrder(bp, persons);
    checked(b);
    // The days of the range the block has rows in (a day's rows outside the range come
    // along: callers filter by ts).
    const int32_t first_day = UtcDay(std::max(from_ms, b.min_ts())), last_day = UtcDay(std::min(to_ms - 1, b.max_ts()));
    for (const auto& dr : order->days) {
      if (dr.day < first_day || dr.day > last_day) continue;
      DayRun run{bi, bp, order, dr.begin, dr.end};
      (is_volatile ? days[dr.day].volatile_runs : days[dr.day].runs).push_back(std::move(run));
    }
  }
  for (auto& [day, d] : days) {
    Part part;
    const bool sorted_open_rows_alone =
        d.whole.empty() && d.runs.empty() && d.volatile_runs.size() == 1 && !d.volatile_runs[0].order;
    if (sorted_open_rows_alone) d.whole.push_back(d.volatile_runs[0].block);
    if (d.whole.size() == 1 && d.runs.empty() && (d.volatile_runs.empty() || sorted_open_rows_alone)) {
      part.whole_block = static_cast<int>(d.whole[0]);
      parts_.push_back(std::move(part));
      continue;
    }
    for (uint32_t bi : d.whole)
      d.runs.push_back(DayRun{bi, owners[bi], nullptr, 0, static_cast<uint32_t>(blocks_[bi]->size())});
    if (d.runs.size() + d.volatile_runs.size() == 1) {  // one run: its rows as they are
      const DayRun& r = d.runs.empty() ? d.volatile_runs[0] : d.runs[0];
      part.rows = RunRows(r, r.block);
    } else if (keep_day_orders) {
      part.rows = CachedDayRows(snap.events, day, d.runs, d.volatile_runs, blocks_, persons);
    } else {  // the plain path: every run of the day merged for this query
      std::vector<std::vector<Row>> runs;
      for (const DayRun& r : d.runs) runs.push_back(RunRows(r, r.block));
      part.rows = MergeRuns(runs, persons, [&](uint32_t b) -> const Block& { return *blocks_[b]; });
    }
    parts_.push_back(std::move(part));
  }
}

}  // namespace ns

namespace ns {

uint32_t PersonOrderScan::PersonAt(const Part& p, size_t pos, const PersonTable& persons) const {
  const uint32_t b = p.whole_block >= 0 ? static_cast<uint32_t>(p.whole_block) : p.rows[pos].first;
  const uint32_t r = p.whole_block >= 0 ? static_cast<uint32_t>(pos) : p.rows[pos].second;
  return persons.PersonOf(blocks_[b]->did()[r]);
}

size_t PersonOrderScan::LowerBound(const Part& p, uint32_t person, const PersonTable& persons) const {
  size_t lo = 0, hi = PartSize(blocks_, p);
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (PersonAt(p, mid, persons) < person)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

size_t PersonOrderScan::LowerBoundFrom(const Part& p, size_t from, size_t to, uint32_t person,
                                       const PersonTable& persons) const {
  // Gallop: the first of from, from+1, from+3, from+7, ... whose person is >= person bounds
  // the answer; then a binary search below it.
  size_t lo = from, step = 1, hi = from;
  while (hi < to && PersonAt(p, hi, persons) < person) {
    lo = hi + 1;
    hi = std::min(to, hi + step);
    step *= 2;
  }
  while (lo < hi) {
    size_t mid = (lo + hi) / 2;
    if (PersonAt(p, mid, persons) < person)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

int PersonRangeCount(size_t persons, int slots) { return slots <= 1 || persons < 1024 ? 1 : slots; }

void ParallelPersonRanges(size_t persons, int slots, const std::function<void(uint32_t, uint32_t, int)>& fn) {
  ParallelPersonChunks(persons, slots, 1, fn);
}

void ParallelPersonChunks(size_t persons, int slots, int chunks_per_slot,
                          const std::function<void(uint32_t, uint32_t, int)>& fn) {
  if (PersonRangeCount(persons, slots) == 1) {
    fn(0, static_cast<uint32_t>(persons), 0);
    return;
  }
  const size_t chunks = static_cast<size_t>(slots) * static_cast<size_t>(std::max(1, chunks_per_slot));
  auto bound = [&](size_t c) { return static_cast<uint32_t>(persons * c / chunks); };
  std::atomic<size_t> next{0};
  auto work = [&](int s) {
    if (chunks == static_cast<size_t>(slots)) {  // one range per slot
      fn(bound(static_cast<size_t>(s)), bound(static_cast<size_t>(s) + 1), s);
      return;
    }
    for (size_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks;
         c = next.fetch_add(1, std::memory_order_relaxed))
      fn(bound(c), bound(c + 1), s);
  };
  std::vector<std::thread> threads;
  for (int s = 1; s < slots; s++) threads.emplace_back(work, s);
  work(0);
  for (auto& t : threads) t.join();
}

ScanRetirer::ScanRetirer(const PersonOrderScan& scan, const StoreSnapshot& snap, size_t persons, int slots)
    : scan_(scan), reader_(snap.reader_epoch) {
  const auto& parts = scan.parts();
  part_blocks_.resize(parts.size());
  part_left_ = std::make_unique<std::atomic<int>[]>(parts.size());
  block_left_ = std::make_unique<std::atomic<int>[]>(scan.blocks().size());
  const int ranges = PersonRangeCount(persons, slots);
  passed_.assign(static_cast<size_t>(ranges), 0);
  std::vector<uint32_t> seen(scan.blocks().size(), UINT32_MAX);  // the last part that listed block b
  for (size_t j = 0; j < parts.size(); j++) {
    part_left_[j].store(ranges, std::memory_order_relaxed);
    auto add = [&](uint32_t b) {
      if (seen[b] == j) return;
      seen[b] = static_cast<uint32_t>(j);
      part_blocks_[j].push_back(b);
      block_left_[b].fetch_add(1, std::memory_order_relaxed);
    };
    if (parts[j].whole_block >= 0)
      add(static_cast<uint32_t>(parts[j].whole_block));
    else
      for (const auto& [b, r] : parts[j].rows) add(b);
  }
}

void ScanRetirer::RetireAll() const {
  for (const Block* b : scan_.blocks()) b->Retire(reader_);
}

void ScanRetirer::PartDone(int slot, size_t j) {
  {
    std::unique_lock lk(mu_);
    passed_[static_cast<size_t>(slot)] = j + 1;
    cv_.notify_all();
    // Keep at most kAhead parts ahead of the slowest slot: the parts between are pinned.
    cv_.wait(lk, [&] {
      for (size_t p : passed_)
        if (p + kAhead < j + 1) return false;
      return true;
    });
  }
  if (part_left_[j].fetch_sub(1, std::memory_order_acq_rel) != 1) return;
  for (uint32_t b : part_blocks_[j])
    if (block_left_[b].fetch_sub(1, std::memory_order_acq_rel) == 1) scan_.blocks()[b]->Retire(reader_);
}

void ScanRetirer::SlotDone(int slot) {
  std::lock_guard lk(mu_);
  passed_[static_cast<size_t>(slot)] = SIZE_MAX / 2;  // never waited for again
  cv_.notify_all();
}

SequenceScanOptions& SequenceScanTuning() {
  static SequenceScanOptions options;
  return options;
}

int QueryThreads() {
  static const int n = [] {
    unsigned hc = std::thread::hardware_concurrency();
    return static_cast<int>(hc == 0 ? 1 : hc > 8 ? 8 : hc);
  }();
  return n;
}

}  // namespace ns
