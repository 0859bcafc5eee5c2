// Shared scan machinery of the query operators: event matching, filter evaluation per
// block, property values per row, block pruning, and per-person timelines.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/deadline.h"
#include "core/time_zone.h"
#include "query/query_spec.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

// Matches rows by event name. "$any" matches all; an unknown name matches nothing.
struct EventMatcher {
  bool any = false;
  bool none = false;
  uint32_t code = 0;
  static EventMatcher Make(std::string_view name, const EventDict& dict);
  bool MayMatch(const Block& b) const { return any || (!none && b.HasEvent(code)); }
};

// A conjunction of filters, compiled against a snapshot (person filters are evaluated
// once per person) and then per block (dictionary codes are evaluated once per block).
class FilterSet {
 public:
  FilterSet() = default;
  FilterSet(const std::vector<Filter>& filters, const StoreSnapshot& snap);
  bool empty() const { return filters_.empty(); }

  // Per-block evaluator. Valid while the block lives.
  class BlockEval {
   public:
    bool Match(size_t row) const;
    bool always_true = true;
    bool always_false = false;

   private:
    friend class FilterSet;
    struct Term {
      const PropColumn* col = nullptr;
      const Filter* f = nullptr;
      std::vector<uint8_t> code_ok;  // dictionary column: per code
      bool absent_ok = false;
      const std::vector<uint8_t>* person_ok = nullptr;
    };
    std::vector<Term> terms;
    const std::vector<uint32_t>* did = nullptr;
    const std::vector<uint32_t>* person_of = nullptr;
  };
  BlockEval ForBlock(const Block& b) const;
  // Per person id: 1 if the person passes every person filter (property and cohort) of the
  // set; event-property filters are ignored. Only canonical persons can pass.
  std::vector<uint8_t> PersonVerdicts() const;

 private:
  std::vector<Filter> filters_;
  std::vector<std::vector<uint8_t>> person_ok_;  // per person filter: result per person
  const StoreSnapshot* snap_ = nullptr;
};

// Does value v satisfy filter f? (absent values are handled by the caller)
bool FilterMatchesValue(const Filter& f, const PropValue& v);

// Breakdown group ids of one block's rows: a table per dictionary code when the breakdown is
// one string event property (no memory per row), otherwise one id per row.
class BlockGroups {
 public:
  uint32_t operator[](size_t row) const {
    if (table_mode_) return col_ ? table_[col_->CodeAt(row)] : 0;
    return rows_.empty() ? 0 : rows_[row];
  }

 private:
  friend class BreakdownResolver;
  bool table_mode_ = false;
  const PropColumn* col_ = nullptr;
  std::vector<uint32_t> table_;
  std::vector<uint32_t> rows_;
};

// Values of a breakdown property per row of a block, as dense group ids (0 = property
// absent, shown as null). Group ids are shared across blocks through `names`.
class BreakdownResolver {
 public:
  BreakdownResolver(std::vector<PropertyRef> props, const StoreSnapshot& snap)
      : props_(std::move(props)), snap_(&snap) {}
  bool active() const { return !props_.empty(); }
  // Group id of each row of b (all 0 if inactive). Only rows where want[i] is true are
  // computed when want is given.
  void Resolve(const Block& b, std::vector<uint32_t>* out);
  // The same, compactly (see BlockGroups).
  void ResolveBlock(const Block& b, BlockGroups* out);
  // Group id of a row (slower, row at a time).
  uint32_t ResolveRow(const Block& b, size_t row);
  // JSON value of a group: null, a string, or (several properties) an array.
  nlohmann::json Value(uint32_t group) const;
  size_t groups() const { return keys_.size(); }

 private:
  uint32_t Intern(const std::string& key);
  std::vector<PropertyRef> props_;
  const StoreSnapshot* snap_;
  std::vector<std::string> keys_{std::string("\x01")};  // group 0: all absent
  std::unordered_map<std::string, uint32_t> index_{{std::string("\x01"), 0}};
  std::vector<nlohmann::json> values_{nlohmann::json()};
};

// Maps instants to local days quickly over a known range (binary search over day starts).
class DayIndex {
 public:
  DayIndex(const TimeZone& tz, int32_t first_day, int32_t last_day);
  // Local day of ts; clamps to [first_day - 1, last_day + 1] outside the range.
  int32_t Day(int64_t ts) const;

 private:
  int32_t first_;
  std::vector<int64_t> starts_;  // starts_[i] = start of first_ + i; one extra for the end
};

// One row of a person's timeline (tile_timelines.h), for the operators that look at a
// person's whole history at once. Timelines are sorted by (ts, order, tag), where order is
// the index of the lowest set bit of tag within the operator's order mask (64 if none).
struct TimelineEntry {
  int64_t ts;
  uint64_t tag;
  uint32_t aux;  // operator data (breakdown group of the row)
  uint32_t order;
};

}  // namespace ns
