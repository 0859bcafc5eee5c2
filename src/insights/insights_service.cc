#include "insights/insights_service.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>

#include "auth/accounts.h"
#include "core/time_zone.h"
#include "insights/insight_export.h"
#include "ops/documents.h"
#include "ops/kpi_reducers.h"
#include "ops/report_tables.h"
#include "query/json_fields.h"
#include "query/query_kind.h"
#include "query/relative_dates.h"

namespace ns {

using nlohmann::json;

const std::vector<Migration>& InsightMigrations() {
  static const std::vector<Migration> m = {
      {1, "saved insights, dashboards and their tiles", R"SQL(
CREATE TABLE insights(
  id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', kind TEXT NOT NULL, query TEXT NOT NULL, tags TEXT NOT NULL DEFAULT '[]',
  created_by TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX insights_project ON insights(project);
CREATE TABLE dashboards(
  id INTEGER PRIMARY KEY AUTOINCREMENT, project TEXT NOT NULL, name TEXT NOT NULL,
  description TEXT NOT NULL DEFAULT '', date_from TEXT, date_to TEXT,
  created_by TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX dashboards_project ON dashboards(project);
CREATE TABLE dashboard_tiles(
  dashboard_id INTEGER NOT NULL REFERENCES dashboards(id) ON DELETE CASCADE,
  position INTEGER NOT NULL,
  insight_id INTEGER NOT NULL REFERENCES insights(id),
  x INTEGER NOT NULL, y INTEGER NOT NULL, w INTEGER NOT NULL, h INTEGER NOT NULL, title TEXT NOT NULL DEFAULT '',
  PRIMARY KEY(dashboard_id, position));
CREATE INDEX dashboard_tiles_insight ON dashboard_tiles(insight_id);
)SQL"},
  };
  return m;
}

namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// A JSON column of a row, Corruption naming it when malformed.
StatusOr<json> StoredJson(const char* table, const char* column, int64_t id, const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return MalformedDocument(table, column, id, "not JSON");
  return j;
}

json InsightDocJson(const InsightDoc& d) {
  return json{{"name", d.name}, {"description", d.description}, {"kind", d.kind}, {"query", d.query}, {"tags", d.tags}};
}

json DashboardDocJson(const DashboardDoc& d) {
  json tiles = json::array();
  for (const DashboardTile& t : d.tiles)
    tiles.push_back({{"insight_id", t.insight_id}, {"x", t.x}, {"y", t.y}, {"w", t.w}, {"h", t.h}, {"title", t.title}});
  return json{{"name", d.name},
              {"description", d.description},
              {"date_from", d.date_from ? json(*d.date_from) : json()},
              {"date_to", d.date_to ? json(*d.date_to) : json()},
              {"tiles", tiles}};
}

json ErrorOf(const Status& st) {
  json e{{"code", std::string(st.ErrorName())}, {"message", st.message()}};
  if (!st.field().empty()) e["field"] = st.field();
  return e;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

SqlValue OptText(const std::optional<std::string>& s) { return s ? SqlValue(*s) : SqlValue(nullptr); }

}  // namespace

StatusOr<std::unique_ptr<InsightsService>> InsightsService::Open(ProjectRegistry& registry, Kpis& kpis,
                                                                 PeopleService* people) {
  NS_RETURN_IF_ERROR(registry.meta_db().Migrate("insights", InsightMigrations()));
  return std::unique_ptr<InsightsService>(new InsightsService(registry, kpis, people));
}

// ---------------------------------------------------------------- storage

StatusOr<InsightsService::InsightRow> InsightsService::LoadInsight(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT name, description, kind, query, tags, created_by, created_at, "
                                           "updated_at FROM insights WHERE id = ? AND project = ?",
                                           {id, project}));
  if (rows.empty()) return NotFound("no insight " + std::to_string(id));
  const SqlRow& r = rows[0];
  InsightRow row;
  row.id = id;
  row.doc.name = r.Str(0);
  row.doc.description = r.Str(1);
  row.doc.kind = r.Str(2);
  NS_ASSIGN_OR_RETURN(row.doc.query, StoredJson("insights", "query", id, r.Str(3)));
  NS_ASSIGN_OR_RETURN(json tags, StoredJson("insights", "tags", id, r.Str(4)));
  if (!tags.is_array()) return MalformedDocument("insights", "tags", id, "expected an array");
  for (const json& t : tags) {
    if (!t.is_string()) return MalformedDocument("insights", "tags", id, "expected texts");
    row.doc.tags.push_back(t);
  }
  row.created_by = r.Str(5);
  row.created_at = r.Int(6);
  row.updated_at = r.Int(7);
  return row;
}

StatusOr<InsightsService::DashboardRow> InsightsService::LoadDashboard(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT name, description, date_from, date_to, created_by, created_at, "
                                           "updated_at FROM dashboards WHERE id = ? AND project = ?",
                                           {id, project}));
  if (rows.empty()) return NotFound("no dashboard " + std::to_string(id));
  const SqlRow& r = rows[0];
  DashboardRow row;
  row.id = id;
  row.doc.name = r.Str(0);
  row.doc.description = r.Str(1);
  if (!r.IsNull(2)) row.doc.date_from = r.Str(2);
  if (!r.IsNull(3)) row.doc.date_to = r.Str(3);
  row.created_by = r.Str(4);
  row.created_at = r.Int(5);
  row.updated_at = r.Int(6);
  NS_ASSIGN_OR_RETURN(auto tiles, db_.Query("SELECT insight_id, x, y, w, h, title FROM dashboard_tiles "
                                            "WHERE dashboard_id = ? ORDER BY position",
                                            {id}));
  for (const SqlRow& t : tiles)
    row.doc.tiles.push_back(DashboardTile{t.Int(0), static_cast<int>(t.Int(1)), static_cast<int>(t.Int(2)),
                                          static_cast<int>(t.Int(3)), static_cast<int>(t.Int(4)), t.Str(5)});
  return row;
}

StatusOr<std::vector<int64_t>> InsightsService::DashboardsShowing(const std::string& project, int64_t insight_id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT DISTINCT t.dashboard_id FROM dashboard_tiles t JOIN dashboards d "
                                           "ON d.id = t.dashboard_id WHERE t.insight_id = ? AND d.project = ? "
                                           "ORDER BY t.dashboard_id",
                                           {insight_id, project}));
  std::vector<int64_t> out;
  for (const SqlRow& r : rows) out.push_back(r.Int(0));
  return out;
}

json InsightsService::InsightJson(const InsightRow& row, const std::vector<int64_t>& dashboards) const {
  json j = InsightDocJson(row.doc);
  j["id"] = row.id;
  j["created_by"] = row.created_by;
  j["created_at"] = row.created_at;
  j["updated_at"] = row.updated_at;
  j["dashboards"] = dashboards;
  return j;
}

StatusOr<json> InsightsService::DashboardJson(const std::string& project, const DashboardRow& row) {
  json j = DashboardDocJson(row.doc);
  for (json& t : j["tiles"]) {  // the insight's name and kind, for drawing the tile
    auto ins = LoadInsight(project, t["insight_id"].get<int64_t>());
    if (!ins.ok()) return ins.status();
    t["insight"] = {{"id", ins->id}, {"name", ins->doc.name}, {"kind", ins->doc.kind}};
  }
  j["id"] = row.id;
  j["created_by"] = row.created_by;
  j["created_at"] = row.created_at;
  j["updated_at"] = row.updated_at;
  return j;
}

StatusOr<int32_t> InsightsService::Today(const std::string& project) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  return p->tz.LocalDay(NowMs());
}

// ---------------------------------------------------------------- insights

StatusOr<json> InsightsService::CreateInsight(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(int32_t today, Today(who.project));
  NS_ASSIGN_OR_RETURN(InsightDoc d, ValidateInsight(body, nullptr, today));
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    const int64_t now = NowMs();
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO insights(project, name, description, kind, query, tags, "
                                       "created_by, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                       {who.project, d.name, d.description, d.kind, d.query.dump(), json(d.tags).dump(),
                                        who.actor, now, now}));
    return Audit(db_, who, "create", "insight", id, nullptr, InsightDocJson(d));
  }));
  return GetInsight(who.project, id);
}

StatusOr<json> InsightsService::GetInsight(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(project, id));
  NS_ASSIGN_OR_RETURN(auto dashboards, DashboardsShowing(project, id));
  return InsightJson(row, dashboards);
}

StatusOr<json> InsightsService::ListInsights(const std::string& project, const InsightListFilter& f) {
  NS_ASSIGN_OR_RETURN(auto ids, db_.Query("SELECT id FROM insights WHERE project = ? ORDER BY id", {project}));
  NS_ASSIGN_OR_RETURN(auto shown, db_.Query("SELECT DISTINCT t.insight_id, t.dashboard_id FROM dashboard_tiles t "
                                            "JOIN dashboards d ON d.id = t.dashboard_id WHERE d.project = ? "
                                            "ORDER BY t.dashboard_id",
                                            {project}));
  std::map<int64_t, std::vector<int64_t>> dashboards;
  for (const SqlRow& r : shown) dashboards[r.Int(0)].push_back(r.Int(1));
  const std::string needle = Lower(f.q);
  const QueryKind* kind = f.kind.empty() ? nullptr : FindQueryKind(f.kind);
  const std::string kind_name = kind ? std::string(kind->name) : f.kind;  // "funnels" lists funnels
  json list = json::array();
  for (const SqlRow& r : ids) {
    NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(project, r.Int(0)));
    if (!f.tag.empty() && std::find(row.doc.tags.begin(), row.doc.tags.end(), f.tag) == row.doc.tags.end()) continue;
    if (!f.kind.empty() && row.doc.kind != kind_name) continue;
    if (!needle.empty() && Lower(row.doc.name).find(needle) == std::string::npos &&
        Lower(row.doc.description).find(needle) == std::string::npos)
      continue;
    list.push_back(InsightJson(row, dashboards[row.id]));
  }
  return json{{"insights", list}};
}

StatusOr<json> InsightsService::UpdateInsight(const Principal& who, int64_t id, const json& patch) {
  NS_ASSIGN_OR_RETURN(int32_t today, Today(who.project));
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(who.project, id));
    NS_ASSIGN_OR_RETURN(InsightDoc d, ValidateInsight(patch, &row.doc, today));
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE insights SET name = ?, description = ?, kind = ?, query = ?, tags = ?, "
                 "updated_at = ? WHERE id = ?",
                 {d.name, d.description, d.kind, d.query.dump(), json(d.tags).dump(), NowMs(), id}));
    return Audit(db_, who, "update", "insight", id, InsightDocJson(row.doc), InsightDocJson(d));
  }));
  return GetInsight(who.project, id);
}

Status InsightsService::DeleteInsight(const Principal& who, int64_t id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(who.project, id));
    NS_ASSIGN_OR_RETURN(auto dashboards, DashboardsShowing(who.project, id));
    if (!dashboards.empty()) {
      std::string list;
      for (int64_t d : dashboards) list += (list.empty() ? "" : ", ") + std::to_string(d);
      return FailedPrecondition("insight " + std::to_string(id) + " is shown on dashboard" +
                                (dashboards.size() > 1 ? "s " : " ") + list + ": remove its tiles first");
    }
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM insights WHERE id = ?", {id}));
    return Audit(db_, who, "delete", "insight", id, InsightDocJson(row.doc), nullptr);
  });
}

// ---------------------------------------------------------------- running

StatusOr<InsightsService::RunContext> InsightsService::MakeRunContext(const std::string& project) {
  RunContext rc;
  NS_ASSIGN_OR_RETURN(rc.project, registry_.OpenProject(project));
  rc.today = rc.project->tz.LocalDay(NowMs());
  if (people_) {
    NS_ASSIGN_OR_RETURN(rc.definitions, people_->DefinitionsVersion(project));
    NS_ASSIGN_OR_RETURN(PeopleSettings s, people_->Settings(project));
    rc.settings = std::move(s);
    rc.cohorts = people_->Source(project);
  }
  if (spend_) rc.spend = spend_->Source(project);
  return rc;
}

StatusOr<InsightsService::RunOutcome> InsightsService::Run(RunContext& rc, const json& query, const DateOverride& o,
                                                           const Deadline* deadline) {
  RunOutcome out;
  out.query = ApplyDateOverride(query, o);
  NS_RETURN_IF_ERROR(ResolveRelativeDates(out.query, rc.today));
  // What else the answer depends on: the local day (defaults such as rfm's as_of, the
  // retention mean), and the cohorts and people settings its filters read.
  std::string key = out.query.dump() + '\n' + std::to_string(rc.today) + '\n' + rc.definitions;
  if (spend_) key += "\nspend " + std::to_string(spend_->generation());  // a spend import (rare) voids all
  const std::string& project = rc.project->info.name;
  EventStore& store = *rc.project->store;
  const SnapshotState before = SnapshotState::Of(*store.Snapshot());
  if (auto hit = cache_.Find(project, key, before)) {
    out.answer = std::move(hit);
    out.cached = true;
    return out;
  }
  QueryOptions options{deadline, rc.cohorts.get(), rc.settings ? &*rc.settings : nullptr, rc.spend.get()};
  NS_ASSIGN_OR_RETURN(json result, RunQuery(out.query, store, rc.project->tz, options));
  auto answer = std::make_shared<const CachedResult>(CachedResult{std::move(result), NowMs()});
  // RunQuery took its own snapshot in between: unchanged states before and after mean it
  // saw this one (states only move forward), so the answer belongs to it.
  if (SnapshotState::Of(*store.Snapshot()) == before) cache_.Put(project, key, before, answer);
  out.answer = std::move(answer);
  return out;
}

StatusOr<json> InsightsService::RunInsight(const std::string& project, int64_t id, const json& override_body,
                                           const Deadline* deadline) {
  const auto t0 = std::chrono::steady_clock::now();
  if (override_body.is_object())
    NS_RETURN_IF_ERROR(CheckFields(override_body, "", {"date_from", "date_to", "date_range"}));
  else if (!override_body.is_null())
    return InvalidArgument("expected a JSON object: {\"date_from\",\"date_to\"} or {\"date_range\"}", "body");
  NS_ASSIGN_OR_RETURN(RunContext rc, MakeRunContext(project));
  NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(project, id));
  NS_ASSIGN_OR_RETURN(DateOverride o, ParseDateOverride(override_body, rc.today));
  NS_ASSIGN_OR_RETURN(RunOutcome r, Run(rc, row.doc.query, o, deadline));
  return json{{"insight", {{"id", id}, {"name", row.doc.name}, {"kind", row.doc.kind}}},
              {"query", r.query},
              {"result", r.answer->result},
              {"cached", r.cached},
              {"computed_at", FormatIsoUtc(r.answer->computed_at)},
              {"took_ms", MsSince(t0)}};
}

StatusOr<ExportFile> InsightsService::ExportInsight(const std::string& project, int64_t id, const json& override_body,
                                                    const std::string& format, const std::string& lang,
                                                    const Deadline* deadline) {
  if (lang != "zh" && lang != "en") return InvalidArgument("lang: expected zh or en, got '" + lang + "'", "lang");
  if (format != "csv" && format != "xlsx") return InvalidArgument("format: expected csv or xlsx", "format");
  NS_ASSIGN_OR_RETURN(RunContext rc, MakeRunContext(project));
  NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(project, id));
  NS_ASSIGN_OR_RETURN(DateOverride o, ParseDateOverride(override_body, rc.today));
  NS_ASSIGN_OR_RETURN(RunOutcome r, Run(rc, row.doc.query, o, deadline));
  return WriteExport(id, row.doc, r, rc, format, lang);
}

StatusOr<ExportFile> InsightsService::ExportQuery(const std::string& project, const json& body,
                                                  const Deadline* deadline) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object: {\"query\",\"name\",\"lang\"}", "body");
  NS_RETURN_IF_ERROR(CheckFields(body, "", {"query", "name", "lang"}));
  std::string lang = "zh";
  if (body.contains("lang")) {
    if (!body["lang"].is_string() || (body["lang"] != "zh" && body["lang"] != "en"))
      return InvalidArgument("lang: expected zh or en, got " + body["lang"].dump(), "lang");
    lang = body["lang"].get<std::string>();
  }
  if (!body.contains("query") || !body["query"].is_object())
    return InvalidArgument("query: required, the query to run and export", "query");
  NS_ASSIGN_OR_RETURN(RunContext rc, MakeRunContext(project));
  json doc_body{{"query", body["query"]}};
  const json& kind = body["query"].contains("kind") ? body["query"]["kind"] : json();
  doc_body["name"] = body.contains("name") ? body["name"] : kind.is_string() ? kind : json("query");
  NS_ASSIGN_OR_RETURN(InsightDoc doc, ValidateInsight(doc_body, nullptr, rc.today));
  NS_ASSIGN_OR_RETURN(RunOutcome r, Run(rc, doc.query, DateOverride{}, deadline));
  return WriteExport(0, doc, r, rc, "xlsx", lang);
}

StatusOr<ExportFile> InsightsService::WriteExport(int64_t id, const InsightDoc& doc, const RunOutcome& r,
                                                  const RunContext& rc, const std::string& format,
                                                  const std::string& lang) {
  const QueryKind* kind = FindQueryKind(doc.kind);
  if (kind == nullptr) return MalformedDocument("insights", "kind", id, "unknown kind '" + doc.kind + "'");
  ReportTable table = InsightResultTable(*kind, r.answer->result, doc.name, lang);
  ExportFile f;
  f.filename = (id > 0 ? "insight-" + std::to_string(id) : std::string("query-") + doc.kind) + "." + format;
  if (format == "csv") {
    f.bytes = TableToCsv(table);
    f.content_type = "text/csv; charset=utf-8";
    return f;
  }
  ReportTable about = InsightAboutTable(id, doc, r.query, r.answer->computed_at, rc.project->tz, lang);
  if (table.title == about.title) table.title += " (1)";  // sheet names must differ
  NS_ASSIGN_OR_RETURN(f.bytes, TablesToXlsx({table, about}));
  f.content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
  return f;
}

StatusOr<int64_t> InsightsService::CreateKpi(const Principal& who, int64_t insight_id, const json& body) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object with the KPI's fields", "body");
  if (body.contains("query"))
    return InvalidArgument("query: a KPI made from an insight takes the insight's query", "query");
  NS_ASSIGN_OR_RETURN(InsightRow row, LoadInsight(who.project, insight_id));
  if (FindKpiReducer(row.doc.kind) == nullptr)
    return InvalidArgument(
        "query.kind: a " + row.doc.kind + " insight cannot be a KPI (expected " + KpiKindList() + ")", "query.kind");
  json kpi = body;
  json q = row.doc.query;
  q.erase("date_from");  // the KPI's period sets the dates of each evaluation
  q.erase("date_to");
  kpi["query"] = q;
  if (!kpi.contains("name")) kpi["name"] = row.doc.name;
  if (!kpi.contains("description"))
    kpi["description"] = "From insight #" + std::to_string(insight_id) + " (" + row.doc.name + ")";
  if (!kpi.contains("reduce")) {  // the kind's natural number
    if (row.doc.kind == "trends") {
      kpi["reduce"] = {{"series", 0}, {"op", "sum"}};
    } else if (row.doc.kind == "retention") {
      const int periods = q.value("periods", 11);
      kpi["reduce"] = {{"period", std::min(1, periods - 1)}};
    } else if (row.doc.kind == "funnel") {
      kpi["reduce"] = json::object();  // first step to last (the reducer's defaults)
    }                                  // other kinds: the KPI validation asks for it
  }
  return kpis_.Create(who, kpi);
}

// ---------------------------------------------------------------- dashboards

Status InsightsService::CheckTiles(const std::string& project, const DashboardDoc& doc) {
  for (size_t i = 0; i < doc.tiles.size(); i++) {
    auto ins = LoadInsight(project, doc.tiles[i].insight_id);
    if (ins.ok()) continue;
    const std::string f = "tiles[" + std::to_string(i) + "].insight_id";
    if (ins.status().code() == StatusCode::kNotFound)
      return InvalidArgument(f + ": no insight " + std::to_string(doc.tiles[i].insight_id) + " in this project", f);
    return ins.status();
  }
  return Status::OK();
}

Status InsightsService::SaveTiles(int64_t dashboard_id, const DashboardDoc& doc) {
  NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM dashboard_tiles WHERE dashboard_id = ?", {dashboard_id}));
  for (size_t i = 0; i < doc.tiles.size(); i++) {
    const DashboardTile& t = doc.tiles[i];
    NS_RETURN_IF_ERROR(
        db_.Exec("INSERT INTO dashboard_tiles(dashboard_id, position, insight_id, x, y, w, h, title) "
                 "VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                 {dashboard_id, static_cast<int64_t>(i), t.insight_id, int64_t{t.x}, int64_t{t.y}, int64_t{t.w},
                  int64_t{t.h}, t.title}));
  }
  return Status::OK();
}

StatusOr<json> InsightsService::CreateDashboard(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(int32_t today, Today(who.project));
  NS_ASSIGN_OR_RETURN(DashboardDoc d, ValidateDashboard(body, nullptr, today));
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(CheckTiles(who.project, d));
    const int64_t now = NowMs();
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO dashboards(project, name, description, date_from, date_to, "
                                       "created_by, created_at, updated_at) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                                       {who.project, d.name, d.description, OptText(d.date_from), OptText(d.date_to),
                                        who.actor, now, now}));
    NS_RETURN_IF_ERROR(SaveTiles(id, d));
    return Audit(db_, who, "create", "dashboard", id, nullptr, DashboardDocJson(d));
  }));
  return GetDashboard(who.project, id);
}

StatusOr<json> InsightsService::GetDashboard(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(DashboardRow row, LoadDashboard(project, id));
  return DashboardJson(project, row);
}

StatusOr<json> InsightsService::ListDashboards(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto ids, db_.Query("SELECT id FROM dashboards WHERE project = ? ORDER BY id", {project}));
  json list = json::array();
  for (const SqlRow& r : ids) {
    NS_ASSIGN_OR_RETURN(json d, GetDashboard(project, r.Int(0)));
    list.push_back(std::move(d));
  }
  return json{{"dashboards", list}};
}

StatusOr<json> InsightsService::UpdateDashboard(const Principal& who, int64_t id, const json& patch) {
  NS_ASSIGN_OR_RETURN(int32_t today, Today(who.project));
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(DashboardRow row, LoadDashboard(who.project, id));
    NS_ASSIGN_OR_RETURN(DashboardDoc d, ValidateDashboard(patch, &row.doc, today));
    NS_RETURN_IF_ERROR(CheckTiles(who.project, d));
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE dashboards SET name = ?, description = ?, date_from = ?, date_to = ?, "
                 "updated_at = ? WHERE id = ?",
                 {d.name, d.description, OptText(d.date_from), OptText(d.date_to), NowMs(), id}));
    NS_RETURN_IF_ERROR(SaveTiles(id, d));
    return Audit(db_, who, "update", "dashboard", id, DashboardDocJson(row.doc), DashboardDocJson(d));
  }));
  return GetDashboard(who.project, id);
}

Status InsightsService::DeleteDashboard(const Principal& who, int64_t id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(DashboardRow row, LoadDashboard(who.project, id));
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM dashboards WHERE id = ?", {id}));  // tiles cascade
    return Audit(db_, who, "delete", "dashboard", id, DashboardDocJson(row.doc), nullptr);
  });
}

StatusOr<json> InsightsService::RunDashboard(const std::string& project, int64_t id, const json& override_body,
                                             const Deadline* deadline) {
  const auto t0 = std::chrono::steady_clock::now();
  if (override_body.is_object())
    NS_RETURN_IF_ERROR(CheckFields(override_body, "", {"date_from", "date_to", "date_range"}));
  NS_ASSIGN_OR_RETURN(RunContext rc, MakeRunContext(project));
  NS_ASSIGN_OR_RETURN(DashboardRow dash, LoadDashboard(project, id));
  NS_ASSIGN_OR_RETURN(DateOverride o, ParseDateOverride(override_body, rc.today));
  // The request's dates first, then the dashboard's own.
  if (!o.from) o.from = dash.doc.date_from;
  if (!o.to) o.to = dash.doc.date_to;
  json tiles = json::array();
  int cached = 0;
  for (const DashboardTile& t : dash.doc.tiles) {
    json tj{{"insight_id", t.insight_id}, {"x", t.x}, {"y", t.y}, {"w", t.w}, {"h", t.h}, {"title", t.title}};
    auto ins = LoadInsight(project, t.insight_id);
    if (!ins.ok()) return ins.status();  // tiles keep their insights (foreign key): corruption
    tj["insight"] = {{"id", ins->id}, {"name", ins->doc.name}, {"kind", ins->doc.kind}};
    if (t.title.empty()) tj["title"] = ins->doc.name;
    auto r = Run(rc, ins->doc.query, o, deadline);
    if (r.ok()) {
      tj["query"] = r->query;
      tj["result"] = r->answer->result;
      tj["cached"] = r->cached;
      tj["computed_at"] = FormatIsoUtc(r->answer->computed_at);
      cached += r->cached ? 1 : 0;
    } else {
      tj["error"] = ErrorOf(r.status());
    }
    tiles.push_back(std::move(tj));
  }
  return json{{"dashboard",
               {{"id", id},
                {"name", dash.doc.name},
                {"description", dash.doc.description},
                {"date_from", o.from ? json(*o.from) : json()},
                {"date_to", o.to ? json(*o.to) : json()}}},
              {"tiles", tiles},
              {"cached_tiles", cached},
              {"took_ms", MsSince(t0)}};
}

}  // namespace ns
