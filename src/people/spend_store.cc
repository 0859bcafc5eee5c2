#include "people/spend_store.h"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <map>
#include <tuple>

#include "core/csv_text.h"
#include "core/time_zone.h"
#include "query/json_fields.h"

namespace ns {

using nlohmann::json;

const std::vector<Migration>& SpendMigrations() {
  static const std::vector<Migration> m = {
      {1, "advertising spend per day, channel and campaign", R"SQL(
CREATE TABLE spend(
  project TEXT NOT NULL, day INTEGER NOT NULL, channel TEXT NOT NULL, campaign TEXT NOT NULL DEFAULT '',
  spend REAL NOT NULL, currency TEXT NOT NULL, updated_at INTEGER NOT NULL,
  PRIMARY KEY(project, day, channel, campaign));
)SQL"},
  };
  return m;
}

namespace {

constexpr size_t kMaxName = 200;

// The checks every row passes, whichever format it came in; `at` names the row in errors
// ("rows[3]" or "line 4"), `sep` joins it to the field name.
struct RowChecker {
  std::string at, sep;
  std::string Field(const char* f) const { return at + sep + f; }

  StatusOr<int32_t> Date(const std::string& v) const {
    if (v.empty()) return InvalidArgument(Field("date") + ": required (YYYY-MM-DD)", Field("date"));
    return ParseDate(v, Field("date"));
  }
  StatusOr<std::string> Name(const char* f, const std::string& v, bool required) const {
    if (v.empty() && required) return InvalidArgument(Field(f) + ": required", Field(f));
    if (v.size() > kMaxName)
      return InvalidArgument(Field(f) + ": at most " + std::to_string(kMaxName) + " bytes", Field(f));
    if (!v.empty() && v[0] == '(')
      return InvalidArgument(Field(f) + ": must not start with '(' (reserved for \"(none)\")", Field(f));
    return v;
  }
  StatusOr<double> Spend(double v) const {
    if (!std::isfinite(v) || v < 0)
      return InvalidArgument(Field("spend") + ": expected a number 0 or more", Field("spend"));
    return v;
  }
  StatusOr<std::string> Currency(std::string v) const {
    for (char& c : v) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    bool ok = v.size() == 3;
    for (char c : v) ok = ok && c >= 'A' && c <= 'Z';
    if (!ok)
      return InvalidArgument(Field("currency") + ": expected a 3-letter ISO 4217 code such as CNY, got '" + v + "'",
                             Field("currency"));
    return v;
  }
};

// Refuses a second row of one key: which of the two was meant is the sender's call.
Status CheckUnique(const std::vector<SpendRow>& rows, const std::vector<std::string>& names) {
  std::map<std::tuple<int32_t, std::string, std::string>, size_t> seen;
  for (size_t i = 0; i < rows.size(); i++) {
    auto [it, fresh] = seen.try_emplace({rows[i].day, rows[i].channel, rows[i].campaign}, i);
    if (!fresh)
      return InvalidArgument(names[i] + ": repeats " + names[it->second] + " (same date, channel and campaign)",
                             names[i]);
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::vector<SpendRow>> ParseSpendJson(const json& body) {
  const json* arr = &body;
  if (body.is_object()) {
    NS_RETURN_IF_ERROR(CheckFields(body, "", {"rows"}));
    auto it = body.find("rows");
    if (it == body.end()) return InvalidArgument("rows: required field is missing", "rows");
    arr = &*it;
  }
  if (!arr->is_array()) return InvalidArgument("rows: expected an array of spend rows", "rows");
  if (arr->empty()) return InvalidArgument("rows: expected at least one row", "rows");
  if (arr->size() > kMaxSpendImportRows)
    return InvalidArgument("rows: at most " + std::to_string(kMaxSpendImportRows) + " rows per import", "rows");
  std::vector<SpendRow> rows;
  std::vector<std::string> names;
  for (size_t i = 0; i < arr->size(); i++) {
    const json& r = (*arr)[i];
    RowChecker c{"rows[" + std::to_string(i) + "]", "."};
    if (!r.is_object()) return InvalidArgument(c.at + ": expected an object", c.at);
    NS_RETURN_IF_ERROR(CheckFields(r, c.at, {"date", "channel", "campaign", "spend", "currency"}));
    SpendRow row;
    NS_ASSIGN_OR_RETURN(std::string date, GetString(r, "date", c.at, true));
    NS_ASSIGN_OR_RETURN(row.day, c.Date(date));
    NS_ASSIGN_OR_RETURN(std::string channel, GetString(r, "channel", c.at, true));
    NS_ASSIGN_OR_RETURN(row.channel, c.Name("channel", channel, true));
    NS_ASSIGN_OR_RETURN(std::string campaign, GetString(r, "campaign", c.at, false));
    NS_ASSIGN_OR_RETURN(row.campaign, c.Name("campaign", campaign, false));
    auto sp = r.find("spend");
    if (sp == r.end() || !sp->is_number())
      return InvalidArgument(
          c.Field("spend") + (sp == r.end() ? ": required" : ": expected a number, got " + TypeName(*sp)),
          c.Field("spend"));
    NS_ASSIGN_OR_RETURN(row.spend, c.Spend(sp->get<double>()));
    NS_ASSIGN_OR_RETURN(std::string currency, GetString(r, "currency", c.at, true));
    NS_ASSIGN_OR_RETURN(row.currency, c.Currency(currency));
    rows.push_back(std::move(row));
    names.push_back(c.at);
  }
  NS_RETURN_IF_ERROR(CheckUnique(rows, names));
  return rows;
}

StatusOr<std::vector<SpendRow>> ParseSpendCsv(std::string_view text) {
  NS_ASSIGN_OR_RETURN(auto table, ParseCsvText(text));
  while (!table.empty() && table.back().size() == 1 && table.back()[0].empty()) table.pop_back();
  if (table.empty())
    return InvalidArgument("csv: expected a header line (date,channel,campaign,spend,currency)", "csv");
  std::map<std::string, size_t> col;
  for (size_t i = 0; i < table[0].size(); i++) {
    std::string h = table[0][i];
    while (!h.empty() && std::isspace(static_cast<unsigned char>(h.back()))) h.pop_back();
    while (!h.empty() && std::isspace(static_cast<unsigned char>(h.front()))) h.erase(0, 1);
    if (h != "date" && h != "channel" && h != "campaign" && h != "spend" && h != "currency")
      return InvalidArgument("line 1: unknown column '" + h + "' (expected date, channel, campaign, spend, currency)",
                             "line 1");
    if (!col.emplace(h, i).second) return InvalidArgument("line 1: column '" + h + "' appears twice", "line 1");
  }
  for (const char* need : {"date", "channel", "spend", "currency"})
    if (!col.count(need)) return InvalidArgument(std::string("line 1: the column '") + need + "' is missing", "line 1");
  if (table.size() == 1) return InvalidArgument("csv: expected at least one row after the header", "csv");
  if (table.size() - 1 > kMaxSpendImportRows)
    return InvalidArgument("csv: at most " + std::to_string(kMaxSpendImportRows) + " rows per import", "csv");
  std::vector<SpendRow> rows;
  std::vector<std::string> names;
  for (size_t li = 1; li < table.size(); li++) {
    const auto& cells = table[li];
    RowChecker c{"line " + std::to_string(li + 1), ": "};
    if (cells.size() != table[0].size())
      return InvalidArgument(
          c.at + ": expected " + std::to_string(table[0].size()) + " fields, got " + std::to_string(cells.size()),
          c.at);
    auto cell = [&](const char* name) { return col.count(name) ? cells[col.at(name)] : std::string(); };
    SpendRow row;
    NS_ASSIGN_OR_RETURN(row.day, c.Date(cell("date")));
    NS_ASSIGN_OR_RETURN(row.channel, c.Name("channel", cell("channel"), true));
    NS_ASSIGN_OR_RETURN(row.campaign, c.Name("campaign", cell("campaign"), false));
    const std::string s = cell("spend");
    char* end = nullptr;
    const double v = s.empty() ? 0 : std::strtod(s.c_str(), &end);
    if (s.empty() || *end != '\0')
      return InvalidArgument(c.Field("spend") + ": expected a number, got '" + s + "'", c.Field("spend"));
    NS_ASSIGN_OR_RETURN(row.spend, c.Spend(v));
    NS_ASSIGN_OR_RETURN(row.currency, c.Currency(cell("currency")));
    rows.push_back(std::move(row));
    names.push_back(c.at);
  }
  NS_RETURN_IF_ERROR(CheckUnique(rows, names));
  return rows;
}

StatusOr<std::unique_ptr<SpendStore>> SpendStore::Open(MetaDb& db) {
  NS_RETURN_IF_ERROR(db.Migrate("spend", SpendMigrations()));
  return std::unique_ptr<SpendStore>(new SpendStore(db));
}

StatusOr<json> SpendStore::Import(const std::string& project, const std::vector<SpendRow>& rows) {
  int64_t replaced = 0;
  const int64_t now = NowMs();
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    for (const SpendRow& r : rows) {
      NS_ASSIGN_OR_RETURN(auto old, db_.Query("SELECT 1 FROM spend WHERE project = ? AND day = ? AND channel = ? "
                                              "AND campaign = ?",
                                              {project, int64_t{r.day}, r.channel, r.campaign}));
      replaced += old.empty() ? 0 : 1;
      NS_RETURN_IF_ERROR(
          db_.Exec("INSERT OR REPLACE INTO spend(project, day, channel, campaign, spend, currency, "
                   "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                   {project, int64_t{r.day}, r.channel, r.campaign, r.spend, r.currency, now}));
    }
    return Status::OK();
  }));
  generation_++;
  return json{{"imported", rows.size()}, {"replaced", replaced}};
}

namespace {

StatusOr<std::vector<SpendRow>> QueryRows(MetaDb& db, const std::string& project, const SpendFilter& f) {
  std::string sql = "SELECT day, channel, campaign, spend, currency FROM spend WHERE project = ?";
  std::vector<SqlValue> args{project};
  if (f.from_day) {
    sql += " AND day >= ?";
    args.push_back(int64_t{*f.from_day});
  }
  if (f.to_day) {
    sql += " AND day <= ?";
    args.push_back(int64_t{*f.to_day});
  }
  if (!f.channel.empty()) {
    sql += " AND channel = ?";
    args.push_back(f.channel);
  }
  sql += " ORDER BY day, channel, campaign LIMIT ?";
  args.push_back(static_cast<int64_t>(f.limit));
  NS_ASSIGN_OR_RETURN(auto found, db.Query(sql, args));
  std::vector<SpendRow> rows;
  for (const SqlRow& r : found)
    rows.push_back(SpendRow{static_cast<int32_t>(r.Int(0)), r.Str(1), r.Str(2), r.Real(3), r.Str(4)});
  return rows;
}

class StoredSpendSource : public SpendSource {
 public:
  StoredSpendSource(MetaDb& db, std::string project) : db_(db), project_(std::move(project)) {}
  StatusOr<std::vector<SpendRow>> Rows(int32_t from_day, int32_t to_day) const override {
    SpendFilter f;
    f.from_day = from_day;
    f.to_day = to_day;
    f.limit = static_cast<size_t>(INT64_MAX);
    return QueryRows(db_, project_, f);
  }

 private:
  MetaDb& db_;
  std::string project_;
};

}  // namespace

StatusOr<json> SpendStore::List(const std::string& project, const SpendFilter& filter) {
  SpendFilter f = filter;
  f.limit = filter.limit + 1;  // one more: was the answer cut?
  NS_ASSIGN_OR_RETURN(std::vector<SpendRow> rows, QueryRows(db_, project, f));
  const bool truncated = rows.size() > filter.limit;
  if (truncated) rows.resize(filter.limit);
  json out = json::array();
  for (const SpendRow& r : rows)
    out.push_back({{"date", FormatDate(r.day)},
                   {"channel", r.channel},
                   {"campaign", r.campaign},
                   {"spend", r.spend},
                   {"currency", r.currency}});
  return json{{"rows", out}, {"count", rows.size()}, {"truncated", truncated}};
}

std::unique_ptr<SpendSource> SpendStore::Source(const std::string& project) {
  return std::make_unique<StoredSpendSource>(db_, project);
}

}  // namespace ns
