#include "query/properties.h"

#include <algorithm>
#include <map>
#include <unordered_map>

#include "ingest/native_parser.h"

namespace ns {
namespace {

using nlohmann::json;

// booleans, null, arrays and objects are stored as JSON text (kJson).
const char* KindName(const PropValue& v) {
  if (v.kind == PropValue::kNum) return "number";
  if (v.kind == PropValue::kStr) return "string";
  return v.str == "true" || v.str == "false" ? "boolean" : "json";
}

// Counts of one property's values and kinds.
struct Tally {
  uint64_t rows = 0;
  std::map<std::string, const char*> seen_kinds;  // kind name -> itself (a small set)
  std::unordered_map<std::string, uint64_t> values;
  std::unordered_map<std::string, json> shown;    // the value as JSON, by its text
  static constexpr size_t kMaxDistinct = 10'000;  // beyond it, new values are not counted

  void Add(const PropValue& v) {
    rows++;
    const char* kind = KindName(v);
    seen_kinds.emplace(kind, kind);
    std::string key = v.kind == PropValue::kNum ? json(v.num).dump() : std::string(kind) + ":" + v.str;
    auto it = values.find(key);
    if (it != values.end()) {
      it->second++;
    } else if (values.size() < kMaxDistinct) {
      values.emplace(key, 1);
      shown.emplace(key, PropValueToJson(v));
    }
  }

  json ToJson(const std::string& name, const char* count_field, size_t top) const {
    std::vector<std::pair<uint64_t, std::string>> order;
    order.reserve(values.size());
    for (const auto& [k, n] : values) order.emplace_back(n, k);
    std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    json tv = json::array();
    for (size_t i = 0; i < order.size() && i < top; i++)
      tv.push_back({{"value", shown.at(order[i].second)}, {"count", order[i].first}});
    return {{"name", name},
            {"type", seen_kinds.size() == 1 ? seen_kinds.begin()->second : "mixed"},
            {count_field, rows},
            {"top_values", tv}};
  }
};

json Sorted(std::map<std::string, Tally>& tallies, const char* count_field, size_t top) {
  std::vector<std::pair<const std::string*, const Tally*>> order;
  for (const auto& [k, t] : tallies) order.emplace_back(&k, &t);
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.second->rows > b.second->rows; });
  json out = json::array();
  for (const auto& [k, t] : order) out.push_back(t->ToJson(*k, count_field, top));
  return out;
}

}  // namespace

StatusOr<json> ListProperties(const StoreSnapshot& snap, const PropertyListOptions& o) {
  std::optional<uint32_t> code;
  if (o.event) {
    code = snap.events ? snap.events->Find(*o.event) : std::nullopt;
    if (!code)
      return Status(StatusCode::kNotFound, "event: no event named '" + *o.event + "' has been stored", "event");
  }
  std::vector<const Block*> blocks;
  for (const auto& b : snap.blocks)
    if (!code || b->HasEvent(*code)) blocks.push_back(b.get());
  std::stable_sort(blocks.begin(), blocks.end(),
                   [](const Block* a, const Block* b) { return a->max_ts() > b->max_ts(); });
  std::map<std::string, Tally> props;
  uint64_t scanned = 0;
  bool complete = true;
  try {
    for (const Block* b : blocks) {
      if (scanned >= o.max_rows) {
        complete = false;
        break;
      }
      std::vector<uint32_t> rows;
      if (code) {
        auto [rb, re] = b->EventRows(*code);
        if (rb) rows.assign(rb, re);
      } else {
        rows.resize(b->size());
        for (uint32_t i = 0; i < rows.size(); i++) rows[i] = i;
      }
      if (rows.size() > o.max_rows - scanned) {
        rows.resize(o.max_rows - scanned);
        complete = false;
      }
      scanned += rows.size();
      for (const std::string& key : b->prop_keys()) {
        const PropColumn* col = b->prop(key);
        if (col == nullptr) continue;
        Tally& t = props[key];
        for (uint32_t r : rows)
          if (col->Present(r)) t.Add(col->Get(r));
      }
    }
  } catch (const std::exception& e) {
    return Internal(std::string("reading properties failed: ") + e.what());
  }
  for (auto it = props.begin(); it != props.end();) it = it->second.rows == 0 ? props.erase(it) : std::next(it);
  std::map<std::string, Tally> person;
  if (snap.persons) {
    const PersonTable& pt = *snap.persons;
    for (const auto& [key, col] : pt.columns)
      col->ForEach([&](uint32_t p, const PropValue& v) {
        if (pt.IsPerson(p)) person[key].Add(v);
      });
  }
  return json{{"event", o.event ? json(*o.event) : json()},
              {"scanned_rows", scanned},
              {"complete", complete},
              {"properties", Sorted(props, "rows", o.top_values)},
              {"person_properties", Sorted(person, "persons", o.top_values)}};
}

}  // namespace ns
