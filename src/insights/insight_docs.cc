#include "insights/insight_docs.h"

#include <algorithm>

#include "core/time_zone.h"
#include "query/json_fields.h"
#include "query/query_kind.h"
#include "query/relative_dates.h"

namespace ns {

using nlohmann::json;

namespace {

constexpr size_t kMaxName = 200, kMaxDescription = 2000, kMaxTags = 20, kMaxTag = 50, kMaxTiles = 50;
constexpr int kGridColumns = 12;

Status CheckText(const json& j, const char* key, size_t min, size_t max, std::string* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::OK();  // keeps the base's value
  if (!it->is_string()) return InvalidArgument(std::string(key) + ": expected a string, got " + TypeName(*it), key);
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() < min || s.size() > max)
    return InvalidArgument(std::string(key) + ": " + (min ? "required, " : "") + std::to_string(min) + " to " +
                               std::to_string(max) + " bytes, got " + std::to_string(s.size()),
                           key);
  *out = s;
  return Status::OK();
}

// A date expression: YYYY-MM-DD or relative.
Status CheckDateExpr(const json& v, int32_t today, const std::string& field) {
  if (!v.is_string()) return InvalidArgument(field + ": expected a date text, got " + TypeName(v), field);
  const std::string& s = v.get_ref<const std::string&>();
  if (IsRelativeDate(s)) return ResolveRelativeDate(s, today, field).status();
  return ParseDate(s, field).status();
}

// A query error as an error of the insight's "query" field.
Status InQuery(const Status& st) {
  return Status(st.code(), "query: " + st.message(), st.field().empty() ? "query" : "query." + st.field());
}

// Validates a saved query as the API would run it; answers its kind's canonical name.
StatusOr<std::string> CheckQuery(const json& query, int32_t today) {
  if (!query.is_object()) return InvalidArgument("query: expected a query object (with its \"kind\")", "query");
  json q = query;
  if (Status st = ResolveRelativeDates(q, today); !st.ok()) return InQuery(st);
  auto kind = QueryKindOf(q);
  if (!kind.ok()) return InQuery(kind.status());
  // "breakdown":"cohort" is answered by the registry (one query per cohort, RunQuery): the
  // kind sees the query without it.
  if (auto b = q.find("breakdown"); b != q.end() && b->is_string() && *b == "cohort") {
    auto ids = q.find("breakdown_cohorts");
    bool ok = ids != q.end() && ids->is_array() && !ids->empty() && ids->size() <= 25;
    if (ok)
      for (const json& id : *ids) ok &= id.is_number_integer() && id.get<int64_t>() > 0;
    if (!ok)
      return InvalidArgument("query: breakdown_cohorts: expected 1 to 25 cohort ids with \"breakdown\":\"cohort\"",
                             "query.breakdown_cohorts");
    q.erase("breakdown");
    q.erase("breakdown_cohorts");
  }
  if (Status st = (*kind)->check(q); !st.ok()) return InQuery(st);
  return std::string((*kind)->name);
}

}  // namespace

StatusOr<InsightDoc> ValidateInsight(const json& body, const InsightDoc* base, int32_t today) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object with the insight's fields", "body");
  NS_RETURN_IF_ERROR(CheckFields(body, "", {"name", "description", "query", "tags"}));
  InsightDoc d = base ? *base : InsightDoc{};
  if (!base && !body.contains("name")) return InvalidArgument("name: required field is missing", "name");
  NS_RETURN_IF_ERROR(CheckText(body, "name", 1, kMaxName, &d.name));
  NS_RETURN_IF_ERROR(CheckText(body, "description", 0, kMaxDescription, &d.description));
  if (auto t = body.find("tags"); t != body.end() && !t->is_null()) {
    if (!t->is_array()) return InvalidArgument("tags: expected an array of texts, got " + TypeName(*t), "tags");
    if (t->size() > kMaxTags) return InvalidArgument("tags: at most " + std::to_string(kMaxTags), "tags");
    d.tags.clear();
    for (size_t i = 0; i < t->size(); i++) {
      const json& x = (*t)[i];
      const std::string f = "tags[" + std::to_string(i) + "]";
      if (!x.is_string() || x.get_ref<const std::string&>().empty() || x.get_ref<const std::string&>().size() > kMaxTag)
        return InvalidArgument(f + ": expected a text of 1 to " + std::to_string(kMaxTag) + " bytes", f);
      if (std::find(d.tags.begin(), d.tags.end(), x.get<std::string>()) == d.tags.end()) d.tags.push_back(x);
    }
  } else if (t != body.end()) {
    d.tags.clear();
  }
  if (auto q = body.find("query"); q != body.end()) {
    NS_ASSIGN_OR_RETURN(d.kind, CheckQuery(*q, today));
    d.query = *q;
  } else if (!base) {
    return InvalidArgument("query: required field is missing (a query object as for POST /api/v1/query)", "query");
  }
  return d;
}

StatusOr<DashboardDoc> ValidateDashboard(const json& body, const DashboardDoc* base, int32_t today) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object with the dashboard's fields", "body");
  NS_RETURN_IF_ERROR(CheckFields(body, "", {"name", "description", "date_from", "date_to", "tiles"}));
  DashboardDoc d = base ? *base : DashboardDoc{};
  if (!base && !body.contains("name")) return InvalidArgument("name: required field is missing", "name");
  NS_RETURN_IF_ERROR(CheckText(body, "name", 1, kMaxName, &d.name));
  NS_RETURN_IF_ERROR(CheckText(body, "description", 0, kMaxDescription, &d.description));
  for (auto [key, slot] : {std::pair{"date_from", &d.date_from}, std::pair{"date_to", &d.date_to}}) {
    auto it = body.find(key);
    if (it == body.end()) continue;
    if (it->is_null()) {
      slot->reset();
      continue;
    }
    NS_RETURN_IF_ERROR(CheckDateExpr(*it, today, key));
    *slot = it->get<std::string>();
  }
  auto t = body.find("tiles");
  if (t == body.end()) return d;
  if (t->is_null()) {
    d.tiles.clear();
    return d;
  }
  if (!t->is_array()) return InvalidArgument("tiles: expected an array of tiles, got " + TypeName(*t), "tiles");
  if (t->size() > kMaxTiles) return InvalidArgument("tiles: at most " + std::to_string(kMaxTiles), "tiles");
  std::vector<DashboardTile> tiles;
  int bottom = 0;  // a tile without "y" goes below the ones before it
  for (size_t i = 0; i < t->size(); i++) {
    const json& tj = (*t)[i];
    const std::string f = "tiles[" + std::to_string(i) + "]";
    if (!tj.is_object()) return InvalidArgument(f + ": expected an object", f);
    NS_RETURN_IF_ERROR(CheckFields(tj, f, {"insight_id", "x", "y", "w", "h", "title"}));
    if (!tj.contains("insight_id") || tj["insight_id"].is_null())
      return InvalidArgument(f + ".insight_id: required field is missing", f + ".insight_id");
    DashboardTile tile;
    NS_ASSIGN_OR_RETURN(tile.insight_id, GetInt(tj, "insight_id", f, 0, 1, INT64_MAX));
    NS_ASSIGN_OR_RETURN(int64_t x, GetInt(tj, "x", f, 0, 0, kGridColumns - 1));
    NS_ASSIGN_OR_RETURN(int64_t w, GetInt(tj, "w", f, 6, 1, kGridColumns));
    NS_ASSIGN_OR_RETURN(int64_t y, GetInt(tj, "y", f, bottom, 0, 10'000));
    NS_ASSIGN_OR_RETURN(int64_t h, GetInt(tj, "h", f, 4, 1, 100));
    if (x + w > kGridColumns)
      return InvalidArgument(
          f + ".w: x + w is " + std::to_string(x + w) + "; the grid has " + std::to_string(kGridColumns) + " columns",
          f + ".w");
    tile.x = static_cast<int>(x), tile.y = static_cast<int>(y), tile.w = static_cast<int>(w),
    tile.h = static_cast<int>(h);
    NS_ASSIGN_OR_RETURN(tile.title, GetString(tj, "title", f, false));
    if (tile.title.size() > kMaxName)
      return InvalidArgument(f + ".title: at most " + std::to_string(kMaxName) + " bytes", f + ".title");
    for (size_t j = 0; j < tiles.size(); j++) {
      const DashboardTile& o = tiles[j];
      if (tile.x < o.x + o.w && o.x < tile.x + tile.w && tile.y < o.y + o.h && o.y < tile.y + tile.h)
        return InvalidArgument(f + ": overlaps tiles[" + std::to_string(j) + "] (columns " + std::to_string(o.x) + "-" +
                                   std::to_string(o.x + o.w - 1) + ", rows " + std::to_string(o.y) + "-" +
                                   std::to_string(o.y + o.h - 1) + ")",
                               f);
    }
    bottom = std::max(bottom, tile.y + tile.h);
    tiles.push_back(std::move(tile));
  }
  d.tiles = std::move(tiles);
  return d;
}

StatusOr<DateOverride> ParseDateOverride(const json& j, int32_t today, const std::string& prefix) {
  DateOverride o;
  if (!j.is_object()) return o;
  auto given = [&](const char* k) { return j.contains(k) && !j[k].is_null(); };
  if (given("date_range")) {
    if (given("date_from") || given("date_to"))
      return InvalidArgument(prefix + "date_range: give date_range or date_from/date_to, not both",
                             prefix + "date_range");
    NS_RETURN_IF_ERROR(CheckDateExpr(j["date_range"], today, prefix + "date_range"));
    o.from = o.to = j["date_range"].get<std::string>();
    return o;
  }
  for (auto [key, slot] : {std::pair{"date_from", &o.from}, std::pair{"date_to", &o.to}}) {
    if (!given(key)) continue;
    NS_RETURN_IF_ERROR(CheckDateExpr(j[key], today, prefix + key));
    *slot = j[key].get<std::string>();
  }
  return o;
}

json ApplyDateOverride(json query, const DateOverride& o) {
  if (!query.is_object()) return query;
  if (o.from && query.contains("date_from")) query["date_from"] = *o.from;
  if (o.to && query.contains("date_to")) query["date_to"] = *o.to;
  return query;
}

}  // namespace ns
