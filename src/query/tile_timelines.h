// Per-person timelines (scan.h's TimelineEntry) built a tile of persons at a time, for the
// operators that look at a person's whole history at once (unordered funnels, recurring and
// min_occurrences retention). Gathering every tagged row of the range before looking at the
// first person (as these operators did) cost 56 bytes a row: 2.4–3.9 GiB on dataset M when
// most events count. Here the rows of one tile of persons per thread are held, and each
// person's timeline is handed over as soon as the tile's persons are complete
// (ScanPersonGroups' tile_done).
//
// Order: (ts, order, tag), then the row's stored position (snapshot block order, row): the
// order the gathered timelines had (a stable sort of rows read block by block).
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

// classify(block, row, &person, &entry): false skips the row; else its person and entry
// (entry.ts is the row's time). person_fn(slot, person, entries, count) runs once per person
// with at least one entry, on the slot's thread (slots as in ScanPersonGroups).
template <typename Classify, typename PersonFn>
void ScanTimelines(const PersonOrderScan& scan, const PersonTable& persons, int slots,
                   const std::vector<uint32_t>* codes, Classify&& classify, PersonFn&& person_fn,
                   const Deadline* deadline) {
  struct Row {
    TimelineEntry e;
    uint32_t block, row;
  };
  struct SlotState {
    std::vector<std::pair<uint32_t, Row>> rows;  // this tile's rows as they came: (person, row)
    std::vector<uint32_t> starts, at;
    std::vector<Row> by_person;
    std::vector<TimelineEntry> timeline;
  };
  std::vector<SlotState> state(static_cast<size_t>(std::max(1, slots)));
  auto before = [](const Row& x, const Row& y) {
    if (x.e.ts != y.e.ts) return x.e.ts < y.e.ts;
    if (x.e.order != y.e.order) return x.e.order < y.e.order;
    if (x.e.tag != y.e.tag) return x.e.tag < y.e.tag;
    return x.block != y.block ? x.block < y.block : x.row < y.row;
  };
  ScanPersonGroups<Row>(
      scan, persons, slots, codes,
      [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts, Row* row) {
        if (!classify(b, i, person, &row->e)) return false;
        *ts = row->e.ts;
        row->block = b;
        row->row = i;
        return true;
      },
      [&](int slot, uint32_t p, int64_t, std::vector<Row>& ties) {
        auto& rows = state[static_cast<size_t>(slot)].rows;
        for (const Row& r : ties) rows.push_back({p, r});
      },
      deadline,
      [&](int slot, uint32_t lo, uint32_t hi) {
        SlotState& ss = state[static_cast<size_t>(slot)];
        if (ss.rows.empty()) return;
        // The tile's rows by person (a counting sort keeps their time order), then each
        // person's in full timeline order.
        ss.starts.assign(static_cast<size_t>(hi - lo) + 1, 0);
        for (const auto& pr : ss.rows) ss.starts[pr.first - lo + 1]++;
        for (size_t k = 1; k < ss.starts.size(); k++) ss.starts[k] += ss.starts[k - 1];
        ss.at.assign(ss.starts.begin(), ss.starts.end() - 1);
        ss.by_person.resize(ss.rows.size());
        for (const auto& pr : ss.rows) ss.by_person[ss.at[pr.first - lo]++] = pr.second;
        for (size_t k = 0; k + 1 < ss.starts.size(); k++) {
          const auto first = ss.by_person.begin() + ss.starts[k], last = ss.by_person.begin() + ss.starts[k + 1];
          if (first == last) continue;
          if (!std::is_sorted(first, last, before)) std::sort(first, last, before);
          ss.timeline.clear();
          for (auto it = first; it != last; ++it) ss.timeline.push_back(it->e);
          person_fn(slot, lo + static_cast<uint32_t>(k), ss.timeline.data(), ss.timeline.size());
        }
        ss.rows.clear();
      });
}

}  // namespace ns
