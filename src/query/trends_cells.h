// Internal to the trends operator: trends.cc plans the scan and fills cells in one pass over
// the blocks; trends_post.cc turns the cells into the answer (values per math, cumulative,
// smoothing, rolling active persons, numbers over the range, formulas, comparisons).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "query/query_spec.h"
#include "query/results.h"
#include "query/scan.h"

namespace ns {

// The rows of one (lane, breakdown group, time cell). Which members are filled depends on the
// lane's math: count always; sum/min/max for sum, avg, min, max; values for p50/p90; the
// distinct persons (list or bitset, TrendsDistinct) for dau and the rolling maths;
// row_persons (one entry per row) for the per-person maths.
struct TrendsCell {
  double sum = 0, min = INFINITY, max = -INFINITY;
  uint64_t count = 0;
  std::vector<double> values;         // percentiles
  std::vector<uint32_t> persons;      // distinct persons (list mode)
  std::vector<uint64_t> bits;         // distinct persons (dense mode): bit per person
  uint32_t last_person = UINT32_MAX;  // list mode: skips runs of the same person
  std::vector<uint32_t> row_persons;  // per-person maths: the person of every row
};

// Distinct persons of a cell: a list while it is smaller than a bitset over all persons, then
// the bitset. A cell's memory is so bounded by its rows, whatever the number of cells (a
// breakdown by a unique id over ten years of days is 100k x 3650 cells, nearly all empty).
struct TrendsDistinct {
  size_t words;  // bitset size in 64-bit words
  void Add(TrendsCell& c, uint32_t p) const {
    if (!c.bits.empty()) {
      c.bits[p >> 6] |= 1ULL << (p & 63);
    } else if (p != c.last_person) {
      c.persons.push_back(p);
      c.last_person = p;
      if (c.persons.size() > 2 * words) ToBits(c);
    }
  }
  void ToBits(TrendsCell& c) const {
    c.bits.assign(words, 0);
    for (uint32_t q : c.persons) c.bits[q >> 6] |= 1ULL << (q & 63);
    std::vector<uint32_t>().swap(c.persons);
  }
  void Merge(TrendsCell& a, TrendsCell& c) const {
    if (!c.bits.empty() && a.bits.empty()) ToBits(a);
    if (!a.bits.empty()) {
      for (uint32_t q : c.persons) a.bits[q >> 6] |= 1ULL << (q & 63);
      for (size_t w = 0; w < c.bits.size(); w++) a.bits[w] |= c.bits[w];
    } else {
      a.persons.insert(a.persons.end(), c.persons.begin(), c.persons.end());
      if (a.persons.size() > 2 * words) ToBits(a);
    }
  }
  // Distinct persons of the cell; a list is sorted and deduplicated in place (merged lists
  // may name a person twice).
  static uint64_t Count(TrendsCell& c) {
    if (!c.bits.empty()) {
      uint64_t n = 0;
      for (uint64_t w : c.bits) n += static_cast<uint64_t>(__builtin_popcountll(w));
      return n;
    }
    Normalize(c);
    return c.persons.size();
  }
  static void Normalize(TrendsCell& c) {
    std::sort(c.persons.begin(), c.persons.end());
    c.persons.erase(std::unique(c.persons.begin(), c.persons.end()), c.persons.end());
  }
  // Calls fn(person) once per distinct person of the cell.
  template <typename Fn>
  static void ForEach(TrendsCell& c, Fn&& fn) {
    if (c.bits.empty()) {
      Normalize(c);
      for (uint32_t p : c.persons) fn(p);
      return;
    }
    for (size_t w = 0; w < c.bits.size(); w++)
      for (uint64_t x = c.bits[w]; x; x &= x - 1)
        fn(static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(x))));
  }
};

// The cells of one breakdown group: one per time cell, dense without a breakdown (one group,
// every cell used), sparse with one (only the cells that have rows exist).
struct TrendsGroupCells {
  std::vector<TrendsCell> dense;
  std::unordered_map<uint32_t, TrendsCell> sparse;
  bool is_dense = false;
  TrendsCell& At(size_t cell) { return is_dense ? dense[cell] : sparse[static_cast<uint32_t>(cell)]; }
  TrendsCell* Find(size_t cell) {
    if (is_dense) return cell < dense.size() ? &dense[cell] : nullptr;
    auto it = sparse.find(static_cast<uint32_t>(cell));
    return it == sparse.end() ? nullptr : &it->second;
  }
  size_t cells() const { return is_dense ? dense.size() : sparse.size(); }
};

using TrendsLaneCells = std::map<uint32_t, TrendsGroupCells>;  // breakdown group -> cells

// One scan of a series over one time range: every series has its lane over the query's range;
// with "compare" a second lane over the shifted range. The scan reads each block once and
// feeds every lane whose range the block overlaps.
struct TrendsLane {
  size_t series = 0;                 // index in TrendsQuery::series
  bool previous = false;             // the comparison lane of the series
  int32_t from_day = 0, to_day = 0;  // the range the lane answers (shifted for a comparison)
  // The value buckets: `lead` whole intervals before the range (read so that a moving average
  // is true from the first interval on), then the range's buckets as TimeZone::MakeBuckets.
  std::vector<Bucket> grid;
  size_t lead = 0;
  std::vector<int32_t> end_day;  // last local day of each grid bucket
  // Rolling maths (weekly/monthly active) keep one cell per local day from first_day, other
  // maths one cell per grid bucket. Cell k covers [starts[k], ends[k]); rows between cells
  // (before a clipped first bucket) are not read.
  bool daily = false;
  int32_t first_day = 0;
  std::vector<int64_t> starts, ends;
  size_t shown() const { return grid.size() - lead; }
};

// The answer from the filled cells (trends_post.cc). `persons` is the person table's size.
StatusOr<TrendsResult> FinishTrends(const TrendsQuery& q, const std::vector<TrendsLane>& lanes,
                                    std::vector<TrendsLaneCells>& cells, const BreakdownResolver& breakdown,
                                    size_t persons, const TimeZone& tz);

// Cells a query may hold (~150 bytes each, plus their rows): beyond this it is refused with
// resource_exhausted instead of taking the machine's memory.
constexpr size_t kMaxTrendCells = 8u << 20;

}  // namespace ns
