#include "query/person_scan.h"

#include <algorithm>
#include <map>
#include <thread>

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

PersonOrderScan::PersonOrderScan(const StoreSnapshot& snap, int64_t from_ms, int64_t to_ms) {
  const PersonTable& persons = *snap.persons;
  struct Day {
    std::vector<uint32_t> whole;  // blocks entirely in this day and sorted
    std::vector<std::pair<uint32_t, uint32_t>> rows;
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
    const auto& ts = b.ts();
    for (uint32_t i = 0; i < b.size(); i++)
      if (ts[i] >= from_ms && ts[i] < to_ms) days[UtcDay(ts[i])].rows.push_back({bi, i});
  }
  for (auto& [day, d] : days) {
    Part part;
    if (d.whole.size() == 1 && d.rows.empty()) {
      part.whole_block = static_cast<int>(d.whole[0]);
      parts_.push_back(std::move(part));
      continue;
    }
    for (uint32_t bi : d.whole)
      for (uint32_t i = 0; i < blocks_[bi]->size(); i++) d.rows.push_back({bi, i});
    // Sort by (person, ts); compute keys once.
    struct Key {
      uint32_t person;
      int64_t ts;
      uint32_t b, r;
    };
    std::vector<Key> keys;
    keys.reserve(d.rows.size());
    for (auto [bi, i] : d.rows) {
      uint32_t did = blocks_[bi]->did()[i];
      keys.push_back({persons.PersonOf(did), blocks_[bi]->ts()[i], bi, i});
    }
    std::sort(keys.begin(), keys.end(),
              [](const Key& a, const Key& b) { return a.person != b.person ? a.person < b.person : a.ts < b.ts; });
    part.rows.reserve(keys.size());
    for (const auto& k : keys) part.rows.push_back({k.b, k.r});
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
