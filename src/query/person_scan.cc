#include "query/person_scan.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "core/time_zone.h"

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

// The rows of a block that is not stored in (person, ts) order (memtable blocks; segments
// whose persons merged later; blocks spanning days), sorted once and kept while the block
// lives and no merge happened since: under a steady ingest every query asks for the same
// sealed memtable blocks, which re-sorting per query made the largest cost of a query
// (docs/benchmarks.md, "queries' p99 under ingest"). Bounded by kOrderCacheRows rows in all;
// past it, orders are computed per query as before.
struct CachedOrder {
  std::weak_ptr<const Block> block;
  uint64_t merge_version = 0;
  std::shared_ptr<const std::vector<uint32_t>> order;
};
constexpr size_t kOrderCacheRows = size_t{8} << 20;
std::mutex order_cache_mu;
std::unordered_map<const Block*, CachedOrder> order_cache;  // guarded by order_cache_mu
size_t order_cache_rows = 0;                                // guarded by order_cache_mu

std::shared_ptr<const std::vector<uint32_t>> SortRows(const Block& b, const PersonTable& persons) {
  struct Key {
    uint32_t person;
    int64_t ts;
    uint32_t row;
  };
  const auto& did = b.did();
  const auto& ts = b.ts();
  std::vector<Key> keys(b.size());
  for (uint32_t i = 0; i < b.size(); i++) keys[i] = {persons.PersonOf(did[i]), ts[i], i};
  std::sort(keys.begin(), keys.end(),
            [](const Key& x, const Key& y) { return x.person != y.person ? x.person < y.person : x.ts < y.ts; });
  auto order = std::make_shared<std::vector<uint32_t>>(keys.size());
  for (size_t i = 0; i < keys.size(); i++) (*order)[i] = keys[i].row;
  return order;
}

std::shared_ptr<const std::vector<uint32_t>> RowsInPersonOrder(const std::shared_ptr<const Block>& bp,
                                                               const PersonTable& persons) {
  {
    std::lock_guard lk(order_cache_mu);
    auto it = order_cache.find(bp.get());
    if (it != order_cache.end() && it->second.block.lock() == bp && it->second.merge_version == persons.merge_version)
      return it->second.order;
  }
  auto order = SortRows(*bp, persons);
  std::lock_guard lk(order_cache_mu);
  if (order_cache_rows + order->size() > kOrderCacheRows) {  // drop what no longer counts
    for (auto it = order_cache.begin(); it != order_cache.end();) {
      if (it->second.block.expired() || it->second.merge_version != persons.merge_version) {
        order_cache_rows -= it->second.order->size();
        it = order_cache.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (order_cache_rows + order->size() <= kOrderCacheRows) {
    auto [it, fresh] = order_cache.try_emplace(bp.get());
    if (!fresh) order_cache_rows -= it->second.order->size();
    it->second = CachedOrder{bp, persons.merge_version, order};
    order_cache_rows += order->size();
  }
  return order;
}

}  // namespace

PersonOrderScan::PersonOrderScan(const StoreSnapshot& snap, int64_t from_ms, int64_t to_ms) {
  const PersonTable& persons = *snap.persons;
  // Per UTC day, runs of rows each in (person, ts) order: a whole block stored in that order,
  // or one day's rows of another block in its sorted order. A day of one whole block is
  // visited in place; otherwise the day's runs are merged (k-way, no sort of the day).
  using Run = std::vector<std::pair<uint32_t, uint32_t>>;
  struct Day {
    std::vector<uint32_t> whole;  // blocks entirely in this day and sorted
    std::vector<Run> runs;
  };
  std::map<int32_t, Day> days;
  for (const auto& bp : snap.blocks) {
    const Block& b = *bp;
    if (b.size() == 0 || b.max_ts() < from_ms || b.min_ts() >= to_ms) continue;
    const uint32_t bi = static_cast<uint32_t>(blocks_.size());
    blocks_.push_back(&b);
    int32_t d0 = UtcDay(b.min_ts()), d1 = UtcDay(b.max_ts());
    if (d0 == d1 && BlockSortedByPerson(b, persons)) {
      days[d0].whole.push_back(bi);
      continue;
    }
    const auto order = RowsInPersonOrder(bp, persons);
    const auto& ts = b.ts();
    std::map<int32_t, Run> mine;  // this block's rows per day, each in person order
    for (uint32_t i : *order)
      if (ts[i] >= from_ms && ts[i] < to_ms) mine[UtcDay(ts[i])].push_back({bi, i});
    for (auto& [day, run] : mine) days[day].runs.push_back(std::move(run));
  }
  for (auto& [day, d] : days) {
    Part part;
    if (d.whole.size() == 1 && d.runs.empty()) {
      part.whole_block = static_cast<int>(d.whole[0]);
      parts_.push_back(std::move(part));
      continue;
    }
    for (uint32_t bi : d.whole) {
      Run run(blocks_[bi]->size());
      for (uint32_t i = 0; i < run.size(); i++) run[i] = {bi, i};
      d.runs.push_back(std::move(run));
    }
    size_t total = 0;
    for (const Run& r : d.runs) total += r.size();
    part.rows.reserve(total);
    if (d.runs.size() == 1) {
      part.rows = std::move(d.runs[0]);
      parts_.push_back(std::move(part));
      continue;
    }
    // k-way merge by (person, ts); a run's head key is computed once per row.
    struct Head {
      uint32_t person;
      int64_t ts;
      uint32_t run;
      uint32_t pos;
    };
    auto head_of = [&](uint32_t run, uint32_t pos) {
      const auto [bi, i] = d.runs[run][pos];
      return Head{persons.PersonOf(blocks_[bi]->did()[i]), blocks_[bi]->ts()[i], run, pos};
    };
    auto later = [](const Head& x, const Head& y) {
      return x.person != y.person ? x.person > y.person : x.ts != y.ts ? x.ts > y.ts : x.run > y.run;
    };
    std::vector<Head> heap;
    for (uint32_t r = 0; r < d.runs.size(); r++)
      if (!d.runs[r].empty()) heap.push_back(head_of(r, 0));
    std::make_heap(heap.begin(), heap.end(), later);
    while (!heap.empty()) {
      std::pop_heap(heap.begin(), heap.end(), later);
      const Head h = heap.back();
      heap.pop_back();
      part.rows.push_back(d.runs[h.run][h.pos]);
      if (h.pos + 1 < d.runs[h.run].size()) {
        heap.push_back(head_of(h.run, h.pos + 1));
        std::push_heap(heap.begin(), heap.end(), later);
      }
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

void ParallelPersonRanges(size_t persons, int slots, const std::function<void(uint32_t, uint32_t, int)>& fn) {
  if (slots <= 1 || persons < 1024) {
    fn(0, static_cast<uint32_t>(persons), 0);
    return;
  }
  std::vector<std::thread> threads;
  auto bound = [&](int s) {
    return static_cast<uint32_t>(persons * static_cast<size_t>(s) / static_cast<size_t>(slots));
  };
  for (int s = 1; s < slots; s++) threads.emplace_back([&, s] { fn(bound(s), bound(s + 1), s); });
  fn(bound(0), bound(1), 0);
  for (auto& t : threads) t.join();
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
