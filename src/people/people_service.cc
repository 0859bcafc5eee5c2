#include "people/people_service.h"

#include <algorithm>
#include <cctype>
#include <set>

#include "core/csv_text.h"
#include "people/cohort_eval.h"
#include "people/masking.h"
#include "people/tags.h"
#include "people/tiers.h"
#include "query/json_fields.h"
#include "query/person_models.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

using nlohmann::json;

const std::vector<Migration>& PeopleMigrations() {
  static const std::vector<Migration> m = {
      {1, "cohorts, static members, people settings",
       R"(CREATE TABLE cohorts(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            project TEXT NOT NULL,
            name TEXT NOT NULL,
            description TEXT NOT NULL DEFAULT '',
            kind TEXT NOT NULL,
            definition TEXT,
            version INTEGER NOT NULL DEFAULT 1,
            created_by TEXT NOT NULL DEFAULT '',
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            UNIQUE(project, name));
          CREATE TABLE cohort_members(
            cohort_id INTEGER NOT NULL REFERENCES cohorts(id) ON DELETE CASCADE,
            did INTEGER NOT NULL,
            PRIMARY KEY(cohort_id, did));
          CREATE TABLE people_settings(
            project TEXT PRIMARY KEY,
            settings TEXT NOT NULL,
            updated_at INTEGER NOT NULL);)"},
      {2, "user-defined rule tags are cohorts marked tag",
       "ALTER TABLE cohorts ADD COLUMN is_tag INTEGER NOT NULL DEFAULT 0;"},
  };
  return m;
}

namespace {

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

json PropJson(const PropValue& v) {
  if (v.kind == PropValue::kNum) return v.num;
  if (v.kind == PropValue::kJson) {
    json j = json::parse(v.str, nullptr, false);
    return j.is_discarded() ? json(v.str) : j;
  }
  return v.str;
}

// The person's properties (current values: person properties have no history).
json PersonProperties(const PersonTable& pt, uint32_t person, const PeopleSettings& s, bool unmasked) {
  json props = json::object();
  for (const auto& [key, col] : pt.columns)
    if (const PropValue* v = col->Get(person)) props[key] = PropJson(*v);
  if (!unmasked) MaskProperties(props, s.masked_properties);
  return props;
}

class ProjectCohortSource : public CohortSource {
 public:
  ProjectCohortSource(PeopleService& s, std::string project) : s_(s), project_(std::move(project)) {}
  StatusOr<std::shared_ptr<const Roaring>> Members(int64_t id, const StoreSnapshot& snap,
                                                   const TimeZone& tz) const override {
    return s_.Members(project_, id, snap, tz);
  }

 private:
  PeopleService& s_;
  std::string project_;
};

}  // namespace

StatusOr<std::unique_ptr<PeopleService>> PeopleService::Open(ProjectRegistry& registry) {
  NS_RETURN_IF_ERROR(registry.meta_db().Migrate("people", PeopleMigrations()));
  return std::unique_ptr<PeopleService>(new PeopleService(registry));
}

std::unique_ptr<CohortSource> PeopleService::Source(const std::string& project) {
  return std::make_unique<ProjectCohortSource>(*this, project);
}

// ---------------------------------------------------------------- settings

StatusOr<PeopleSettings> PeopleService::Settings(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT settings FROM people_settings WHERE project = ?", {project}));
  if (rows.empty()) return PeopleSettings{};
  json j = json::parse(rows[0].Str(0), nullptr, false);
  auto s = PeopleSettings::FromJson(j, PeopleSettings{});
  if (!s.ok()) return Corruption("people_settings of project '" + project + "': " + s.status().message());
  return s;
}

StatusOr<std::string> PeopleService::DefinitionsVersion(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto settings, db_.Query("SELECT settings FROM people_settings WHERE project = ?", {project}));
  std::string out = settings.empty() ? "-" : settings[0].Str(0);
  NS_ASSIGN_OR_RETURN(auto cohorts,
                      db_.Query("SELECT id, version FROM cohorts WHERE project = ? ORDER BY id", {project}));
  for (const SqlRow& r : cohorts) out += " " + std::to_string(r.Int(0)) + ":" + std::to_string(r.Int(1));
  return out;
}

StatusOr<PeopleSettings> PeopleService::UpdateSettings(const std::string& project, const json& patch) {
  NS_ASSIGN_OR_RETURN(PeopleSettings cur, Settings(project));
  NS_ASSIGN_OR_RETURN(PeopleSettings next, PeopleSettings::FromJson(patch, cur));
  NS_RETURN_IF_ERROR(
      db_.Exec("INSERT INTO people_settings(project, settings, updated_at) VALUES(?, ?, ?) "
               "ON CONFLICT(project) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at",
               {project, next.ToJson().dump(), NowMs()}));
  return next;
}

// ---------------------------------------------------------------- cohorts

StatusOr<PeopleService::CohortRow> PeopleService::LoadCohort(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, name, description, kind, definition, version, created_by, "
                                           "created_at, updated_at, is_tag FROM cohorts WHERE project = ? AND id = ?",
                                           {project, id}));
  if (rows.empty()) return NotFound("no cohort " + std::to_string(id) + " in project '" + project + "'");
  const SqlRow& r = rows[0];
  CohortRow c;
  c.id = r.Int(0);
  c.name = r.Str(1);
  c.description = r.Str(2);
  c.kind = r.Str(3);
  if (!r.IsNull(4)) {
    c.definition = json::parse(r.Str(4), nullptr, false);
    if (c.definition.is_discarded())
      return Corruption("cohorts row " + std::to_string(id) + ": definition is not JSON");
  }
  c.version = r.Int(5);
  c.created_by = r.Str(6);
  c.created_at = r.Int(7);
  c.updated_at = r.Int(8);
  c.is_tag = r.Int(9) != 0;
  return c;
}

Status PeopleService::CheckNoCycle(const std::string& project, int64_t id, const CohortCondition& def) {
  // Depth-first over the stored definitions from `def`; reaching `id` again is a cycle.
  std::vector<int64_t> path{id};
  std::function<Status(const CohortCondition&)> walk = [&](const CohortCondition& d) -> Status {
    for (int64_t ref : ReferencedCohorts(d)) {
      if (std::find(path.begin(), path.end(), ref) != path.end()) {
        std::string p;
        for (int64_t x : path) p += "cohort " + std::to_string(x) + " -> ";
        return InvalidArgument(
            "definition: cohorts refer to each other in a cycle: " + p + "cohort " + std::to_string(ref), "definition");
      }
      auto row = LoadCohort(project, ref);
      if (!row.ok()) {
        if (row.status().code() == StatusCode::kNotFound)
          return InvalidArgument("definition: refers to cohort " + std::to_string(ref) + ", which does not exist",
                                 "definition");
        return row.status();
      }
      if (row->kind != "behavioral") continue;
      NS_ASSIGN_OR_RETURN(CohortCondition sub, ParseCohortDefinition(row->definition));
      path.push_back(ref);
      NS_RETURN_IF_ERROR(walk(sub));
      path.pop_back();
    }
    return Status::OK();
  };
  return walk(def);
}

StatusOr<json> PeopleService::CreateCohort(const std::string& project, const json& body, const std::string& actor) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object", "body");
  NS_RETURN_IF_ERROR(CheckFields(body, "", {"name", "description", "kind", "definition", "tag"}));
  NS_ASSIGN_OR_RETURN(bool is_tag, GetBool(body, "tag", "", false));
  NS_ASSIGN_OR_RETURN(std::string name, GetString(body, "name", "", true));
  if (name.empty() || name.size() > 200) return InvalidArgument("name: expected 1 to 200 characters", "name");
  NS_ASSIGN_OR_RETURN(std::string description, GetString(body, "description", "", false));
  NS_ASSIGN_OR_RETURN(std::string kind, GetString(body, "kind", "", false, "behavioral"));
  if (kind == "behavioural") kind = "behavioral";
  if (kind != "static" && kind != "behavioral")
    return InvalidArgument("kind: expected static or behavioral, got '" + kind + "'", "kind");
  json definition;
  if (kind == "behavioral") {
    if (!body.contains("definition"))
      return InvalidArgument("definition: required for a behavioral cohort", "definition");
    definition = body["definition"];
    NS_ASSIGN_OR_RETURN(CohortCondition def, ParseCohortDefinition(definition));
    NS_RETURN_IF_ERROR(CheckNoCycle(project, 0, def));
  } else if (body.contains("definition") && !body["definition"].is_null()) {
    return InvalidArgument("definition: a static cohort has members, not a definition", "definition");
  }
  NS_ASSIGN_OR_RETURN(auto dup, db_.Query("SELECT id FROM cohorts WHERE project = ? AND name = ?", {project, name}));
  if (!dup.empty())
    return AlreadyExists("name: a cohort named '" + name + "' already exists (id " + std::to_string(dup[0].Int(0)) +
                         ")");
  const int64_t now = NowMs();
  NS_ASSIGN_OR_RETURN(
      int64_t id, db_.Insert("INSERT INTO cohorts(project, name, description, kind, definition, created_by, "
                             "created_at, updated_at, is_tag) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             {project, name, description, kind,
                              definition.is_null() ? SqlValue(nullptr) : SqlValue(definition.dump()), actor, now, now,
                              int64_t{is_tag}}));
  return GetCohort(project, id);
}

StatusOr<json> PeopleService::CohortJson(const std::string& project, const CohortRow& row, bool with_size) {
  json j{{"id", row.id},
         {"name", row.name},
         {"description", row.description},
         {"kind", row.kind},
         {"definition", row.definition},
         {"version", row.version},
         {"tag", row.is_tag},
         {"created_by", row.created_by},
         {"created_at", FormatIsoUtc(row.created_at)},
         {"updated_at", FormatIsoUtc(row.updated_at)}};
  if (with_size) {
    NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
    auto snap = p->store->Snapshot();
    const int64_t as_of = NowMs();
    auto m = Members(project, row.id, *snap, p->tz);
    if (!m.ok()) {
      j["size"] = nullptr;
      j["error"] = m.status().message();
    } else {
      j["size"] = (*m)->cardinality();
    }
    j["as_of"] = FormatIsoUtc(as_of);
  }
  return j;
}

StatusOr<PeopleService::CohortHeadline> PeopleService::Headline(const std::string& project, int64_t id,
                                                                bool with_size) {
  NS_ASSIGN_OR_RETURN(CohortRow row, LoadCohort(project, id));
  CohortHeadline h{row.name, std::nullopt, 0};
  if (!with_size) return h;
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  auto snap = p->store->Snapshot();
  h.as_of_ms = NowMs();
  if (auto m = Members(project, id, *snap, p->tz); m.ok()) h.size = static_cast<int64_t>((*m)->cardinality());
  return h;
}

StatusOr<json> PeopleService::GetCohort(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(CohortRow row, LoadCohort(project, id));
  return CohortJson(project, row, true);
}

StatusOr<json> PeopleService::ListCohorts(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id FROM cohorts WHERE project = ? ORDER BY id", {project}));
  json out = json::array();
  for (const auto& r : rows) {
    NS_ASSIGN_OR_RETURN(json c, GetCohort(project, r.Int(0)));
    out.push_back(std::move(c));
  }
  return json{{"cohorts", out}};
}

StatusOr<json> PeopleService::UpdateCohort(const std::string& project, int64_t id, const json& patch) {
  if (!patch.is_object()) return InvalidArgument("expected a JSON object", "body");
  NS_RETURN_IF_ERROR(CheckFields(patch, "", {"name", "description", "definition"}));
  NS_ASSIGN_OR_RETURN(CohortRow row, LoadCohort(project, id));
  if (patch.contains("name")) {
    NS_ASSIGN_OR_RETURN(row.name, GetString(patch, "name", "", true));
    if (row.name.empty() || row.name.size() > 200) return InvalidArgument("name: expected 1 to 200 characters", "name");
    NS_ASSIGN_OR_RETURN(auto dup, db_.Query("SELECT id FROM cohorts WHERE project = ? AND name = ? AND id <> ?",
                                            {project, row.name, id}));
    if (!dup.empty()) return AlreadyExists("name: a cohort named '" + row.name + "' already exists");
  }
  if (patch.contains("description")) {
    NS_ASSIGN_OR_RETURN(row.description, GetString(patch, "description", "", false));
  }
  if (patch.contains("definition")) {
    if (row.kind != "behavioral")
      return InvalidArgument("definition: a static cohort has members, not a definition", "definition");
    NS_ASSIGN_OR_RETURN(CohortCondition def, ParseCohortDefinition(patch["definition"]));
    NS_RETURN_IF_ERROR(CheckNoCycle(project, id, def));
    row.definition = patch["definition"];
  }
  NS_RETURN_IF_ERROR(
      db_.Exec("UPDATE cohorts SET name = ?, description = ?, definition = ?, version = version + 1, updated_at = ? "
               "WHERE project = ? AND id = ?",
               {row.name, row.description,
                row.definition.is_null() ? SqlValue(nullptr) : SqlValue(row.definition.dump()), NowMs(), project, id}));
  return GetCohort(project, id);
}

StatusOr<json> PeopleService::PreviewCohorts(const std::string& project, const json& body) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object", "body");
  NS_RETURN_IF_ERROR(CheckFields(body, "", {"definition", "definitions"}));
  const bool batch = body.contains("definitions");
  if (batch == body.contains("definition"))
    return InvalidArgument("definition: give a definition, or definitions (a list)", "definition");
  std::vector<CohortCondition> defs;
  if (batch) {
    const json& list = body["definitions"];
    if (!list.is_array() || list.empty() || list.size() > 100)
      return InvalidArgument("definitions: expected a list of 1 to 100 definitions", "definitions");
    for (size_t i = 0; i < list.size(); i++) {
      auto d = ParseCohortDefinition(list[i]);
      // The parser names fields from "definition"; in a list, say which one.
      if (!d.ok()) {
        const std::string at = "definitions[" + std::to_string(i) + "]";
        std::string field = d.status().field();
        if (field.rfind("definition", 0) == 0) field = at + field.substr(10);
        return InvalidArgument(at + ": " + d.status().message(), field.empty() ? at : field);
      }
      defs.push_back(std::move(*d));
    }
  } else {
    NS_ASSIGN_OR_RETURN(CohortCondition d, ParseCohortDefinition(body["definition"]));
    defs.push_back(std::move(d));
  }
  for (const auto& d : defs) NS_RETURN_IF_ERROR(CheckNoCycle(project, 0, d));
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(PeopleSettings settings, Settings(project));
  auto snap = p->store->Snapshot();
  const int64_t as_of = NowMs();
  const int32_t today = p->tz.LocalDay(as_of);
  json sizes = json::array();
  for (const auto& d : defs) {
    std::vector<int64_t> path;
    NS_ASSIGN_OR_RETURN(Roaring m, EvaluateCohort(d, EvalContext(project, *snap, p->tz, settings, today, path)));
    sizes.push_back(m.cardinality());
  }
  json out{{"as_of", FormatIsoUtc(as_of)}};
  if (batch) {
    out["sizes"] = std::move(sizes);
  } else {
    out["size"] = sizes[0];
  }
  return out;
}

Status PeopleService::DeleteCohort(const std::string& project, int64_t id) {
  // One transaction: a cohort or scenario that starts naming it meanwhile is either seen
  // here or refused for want of it.
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(LoadCohort(project, id).status());
    // A cohort something refers to stays: deleting it would break the other silently.
    NS_ASSIGN_OR_RETURN(auto all, db_.Query("SELECT id, definition FROM cohorts WHERE project = ? AND kind = "
                                            "'behavioral' AND id <> ?",
                                            {project, id}));
    std::vector<std::string> users;
    for (const auto& r : all) {
      auto def = ParseCohortDefinition(json::parse(r.Str(1), nullptr, false));
      if (!def.ok()) continue;
      auto refs = ReferencedCohorts(*def);
      if (std::binary_search(refs.begin(), refs.end(), id)) users.push_back("cohort " + std::to_string(r.Int(0)));
    }
    for (const auto& referrers : referrers_) {
      NS_ASSIGN_OR_RETURN(std::vector<std::string> more, referrers(project, id));
      users.insert(users.end(), more.begin(), more.end());
    }
    if (!users.empty()) {
      std::string list;
      for (const auto& u : users) list += (list.empty() ? "" : ", ") + u;
      return FailedPrecondition("cohort " + std::to_string(id) + " is used by " + list + "; change " +
                                (users.size() == 1 ? "it" : "them") + " first");
    }
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM cohort_members WHERE cohort_id = ?", {id}));
    return db_.Exec("DELETE FROM cohorts WHERE project = ? AND id = ?", {project, id});
  }));
  MutexLock l(&mu_);
  cache_.erase(id);
  return Status::OK();
}

StatusOr<json> PeopleService::AddMembers(const std::string& project, int64_t id, const std::string& body, bool csv) {
  NS_ASSIGN_OR_RETURN(CohortRow row, LoadCohort(project, id));
  if (row.kind != "static")
    return InvalidArgument("cohort " + std::to_string(id) + " is behavioral: its members follow its definition",
                           "kind");
  std::vector<std::string> ids;
  if (csv) {
    NS_ASSIGN_OR_RETURN(auto rows, ParseCsvText(body));
    for (size_t i = 0; i < rows.size(); i++) {
      if (rows[i].empty() || rows[i][0].empty()) continue;
      std::string v = rows[i][0];
      if (v.rfind("\xEF\xBB\xBF", 0) == 0) v = v.substr(3);       // a spreadsheet's BOM
      if (i == 0 && (v == "distinct_id" || v == "id")) continue;  // the header
      ids.push_back(v);
    }
  } else {
    json j = json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("distinct_ids")) j = j["distinct_ids"];
    if (!j.is_array())
      return InvalidArgument("distinct_ids: expected a JSON array of distinct ids or {\"distinct_ids\":[...]}",
                             "distinct_ids");
    for (size_t i = 0; i < j.size(); i++) {
      if (!j[i].is_string() && !j[i].is_number())
        return InvalidArgument("distinct_ids[" + std::to_string(i) + "]: expected a string", "distinct_ids");
      ids.push_back(j[i].is_string() ? j[i].get<std::string>() : j[i].dump());
    }
  }
  if (ids.size() > 1'000'000) return InvalidArgument("distinct_ids: at most 1,000,000 per request", "distinct_ids");
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  json unknown = json::array();
  std::vector<int64_t> dids;
  for (const auto& s : ids) {
    int64_t d = p->store->FindDistinctId(s);
    if (d < 0) {
      unknown.push_back(s);
    } else {
      dids.push_back(d);
    }
  }
  int64_t added = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    for (int64_t d : dids) {
      NS_RETURN_IF_ERROR(db_.Exec("INSERT OR IGNORE INTO cohort_members(cohort_id, did) VALUES(?, ?)", {id, d}));
      added += db_.Changes();
    }
    return db_.Exec("UPDATE cohorts SET version = version + 1, updated_at = ? WHERE id = ?", {NowMs(), id});
  }));
  NS_ASSIGN_OR_RETURN(json c, GetCohort(project, id));
  return json{{"added", added},
              {"already_members", static_cast<int64_t>(dids.size()) - added},
              {"unknown", unknown},
              {"size", c["size"]}};
}

StatusOr<std::shared_ptr<const Roaring>> PeopleService::Members(const std::string& project, int64_t id,
                                                                const StoreSnapshot& snap, const TimeZone& tz) {
  std::vector<int64_t> path;
  return MembersOf(project, id, snap, tz, path);
}

StatusOr<std::shared_ptr<const Roaring>> PeopleService::MembersOf(const std::string& project, int64_t id,
                                                                  const StoreSnapshot& snap, const TimeZone& tz,
                                                                  std::vector<int64_t>& path) {
  if (std::find(path.begin(), path.end(), id) != path.end())
    return InvalidArgument("definition: cohorts refer to each other in a cycle through cohort " + std::to_string(id),
                           "definition");
  NS_ASSIGN_OR_RETURN(CohortRow row, LoadCohort(project, id));
  const int32_t today = tz.LocalDay(NowMs());
  const PersonTable& pt = *snap.persons;
  NS_ASSIGN_OR_RETURN(PeopleSettings settings, Settings(project));
  StateKey state = StateOf(snap, today, settings);
  {
    MutexLock l(&mu_);
    auto it = cache_.find(id);
    if (it != cache_.end() && it->second.version == row.version && it->second.state == state) return it->second.members;
  }
  Roaring members;
  if (row.kind == "static") {
    NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT did FROM cohort_members WHERE cohort_id = ?", {id}));
    for (const auto& r : rows) {
      const int64_t d = r.Int(0);
      if (d >= 0 && static_cast<size_t>(d) < pt.size() && !pt.Erased(static_cast<uint32_t>(d)))
        members.add(pt.PersonOf(static_cast<uint32_t>(d)));
    }
  } else {
    NS_ASSIGN_OR_RETURN(CohortCondition def, ParseCohortDefinition(row.definition));
    path.push_back(id);
    CohortEvalContext ctx = EvalContext(project, snap, tz, settings, today, path);
    auto r = EvaluateCohort(def, ctx);
    path.pop_back();
    if (!r.ok()) return r.status();
    members = std::move(*r);
  }
  auto shared = std::make_shared<const Roaring>(std::move(members));
  MutexLock l(&mu_);
  cache_[id] = CacheEntry{row.version, std::move(state), shared};
  return shared;
}

namespace {

// The built-in rule tags name the default events ("pay", "add_to_cart", ...: the defaults
// of PeopleSettings::EventSettings()); a project that calls them otherwise gets its own
// names in their place.
json WithProjectEvents(json def, const PeopleSettings& s) {
  if (def.is_object()) {
    if (auto it = def.find("event"); it != def.end() && it->is_string()) {
      for (const auto& e : PeopleSettings::EventSettings())
        if (*it == e.default_name) {
          *it = s.*e.member;
          break;
        }
    }
    for (auto& [k, v] : def.items()) v = WithProjectEvents(v, s);
  } else if (def.is_array()) {
    for (auto& v : def) v = WithProjectEvents(v, s);
  }
  return def;
}

}  // namespace

PeopleService::StateKey PeopleService::StateOf(const StoreSnapshot& snap, int32_t today,
                                               const PeopleSettings& settings) {
  return StateKey{SnapshotState::Of(snap), today, settings.ToJson().dump()};
}

CohortEvalContext PeopleService::EvalContext(const std::string& project, const StoreSnapshot& snap, const TimeZone& tz,
                                             const PeopleSettings& settings, int32_t today,
                                             std::vector<int64_t>& path) {
  Project* p = nullptr;
  if (auto r = registry_.OpenProject(project); r.ok()) p = *r;
  return CohortEvalContext{
      snap,
      tz,
      settings,
      today,
      [this, &project, &snap, &tz, &path](int64_t ref, const std::string&) {
        return MembersOf(project, ref, snap, tz, path);
      },
      [this, &project, &snap, &tz, &path](const std::string& key, const std::vector<std::string>& values) {
        return TagMembers(project, key, values, snap, tz, path);
      },
      [p](std::string_view id) { return p ? p->store->FindDistinctId(id) : -1; }};
}

StatusOr<std::shared_ptr<const Roaring>> PeopleService::TagMembers(const std::string& project, const std::string& key,
                                                                   const std::vector<std::string>& values,
                                                                   const StoreSnapshot& snap, const TimeZone& tz,
                                                                   std::vector<int64_t>& path) {
  const int32_t today = tz.LocalDay(NowMs());
  std::string cache_key = project + '\x1f' + key;
  for (const auto& v : values) cache_key += '\x1f' + v;
  NS_ASSIGN_OR_RETURN(PeopleSettings settings, Settings(project));
  const StateKey state = StateOf(snap, today, settings);
  {
    MutexLock l(&mu_);
    auto it = tag_cache_.find(cache_key);
    if (it != tag_cache_.end() && it->second.first == state) return it->second.second;
  }
  Roaring members;
  if (const RuleTag* rule = FindRuleTag(key)) {
    // Rule tags may refer to rule tags: cycles among built-ins are a bug, caught by the path.
    const int64_t marker = -1 - static_cast<int64_t>(rule - RuleTags().data());
    if (std::find(path.begin(), path.end(), marker) != path.end())
      return Internal("rule tag " + key + " refers to itself");
    NS_ASSIGN_OR_RETURN(CohortCondition def,
                        ParseCohortDefinition(WithProjectEvents(json::parse(rule->definition), settings)));
    path.push_back(marker);
    auto r = EvaluateCohort(def, EvalContext(project, snap, tz, settings, today, path));
    path.pop_back();
    if (!r.ok()) return r.status();
    members = std::move(*r);
  } else if (const BaseTag* base = FindBaseTag(key)) {
    NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
    auto facts = GetPersonFacts(snap, tz, settings, today);
    auto tiers =
        GetPersonTiers(snap, tz, settings, today, [p](std::string_view id) { return p->store->FindDistinctId(id); });
    BaseTagContext ctx{snap, tz, settings, *facts, *tiers, std::nullopt};
    base->compute(ctx, [&](uint32_t person, const std::string& value) {
      if (values.empty() || std::find(values.begin(), values.end(), value) != values.end()) members.add(person);
    });
  } else {
    // A project's own rule tag: a cohort marked tag, by name.
    NS_ASSIGN_OR_RETURN(
        auto rows, db_.Query("SELECT id FROM cohorts WHERE project = ? AND is_tag = 1 AND name = ?", {project, key}));
    if (rows.empty()) return InvalidArgument("tag: unknown tag '" + key + "' (GET /api/v1/tags lists them)", "tag");
    NS_ASSIGN_OR_RETURN(auto m, MembersOf(project, rows[0].Int(0), snap, tz, path));
    members = *m;
  }
  auto shared = std::make_shared<const Roaring>(std::move(members));
  MutexLock l(&mu_);
  if (tag_cache_.size() > 256) tag_cache_.clear();
  tag_cache_[cache_key] = {state, shared};
  return shared;
}

StatusOr<json> PeopleService::Tags(const std::string& project) {
  json out = TagCatalogue();
  // The rule tags as this project evaluates them: its event names in their definitions.
  NS_ASSIGN_OR_RETURN(PeopleSettings settings, Settings(project));
  for (json& t : out["rule_tags"]) t["definition"] = WithProjectEvents(t["definition"], settings);
  json own = json::array();
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, name, description FROM cohorts WHERE project = ? AND is_tag = 1 "
                                           "ORDER BY id",
                                           {project}));
  for (const auto& r : rows) own.push_back({{"cohort", r.Int(0)}, {"key", r.Str(1)}, {"description", r.Str(2)}});
  out["project_tags"] = own;
  return out;
}

StatusOr<json> PeopleService::TagValues(const std::string& project, const std::string& key, size_t limit,
                                        bool unmasked) {
  const BaseTag* base = FindBaseTag(key);
  if (base == nullptr) {
    if (FindRuleTag(key) != nullptr)
      return InvalidArgument("tag: '" + key + "' is a rule tag: it has members, not values (GET /api/v1/persons?tag=" +
                                 key + " lists them)",
                             "tag");
    return NotFound("no base tag '" + key + "' (GET /api/v1/tags lists them)");
  }
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(PeopleSettings settings, Settings(project));
  auto snap = p->store->Snapshot();
  const int64_t as_of = NowMs();
  const int32_t today = p->tz.LocalDay(as_of);
  auto facts = GetPersonFacts(*snap, p->tz, settings, today);
  auto tiers =
      GetPersonTiers(*snap, p->tz, settings, today, [p](std::string_view id) { return p->store->FindDistinctId(id); });
  BaseTagContext ctx{*snap, p->tz, settings, *facts, *tiers, std::nullopt};
  // A person has one value of a tag; the set guards the count against a tag reporting twice.
  std::map<std::string, Roaring> by_value;
  base->compute(ctx, [&](uint32_t person, const std::string& value) { by_value[value].add(person); });
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  std::vector<std::pair<std::string, uint64_t>> counts;
  uint64_t persons = 0;
  for (const auto& [v, m] : by_value) {
    counts.push_back({v, m.cardinality()});
    persons += m.cardinality();
  }
  std::stable_sort(counts.begin(), counts.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  const bool masked = !unmasked && IsMaskedProperty(key, settings.masked_properties);
  json values = json::array();
  for (size_t i = 0; i < counts.size() && i < limit; i++)
    values.push_back({{"value", masked ? MaskValue(counts[i].first) : counts[i].first}, {"persons", counts[i].second}});
  return json{{"tag", key},
              {"label_zh", base->label_zh},
              {"label", base->label_en},
              {"values", values},
              {"persons", persons},
              {"other_values", counts.size() - values.size()},
              {"as_of", FormatIsoUtc(as_of)}};
}

// ---------------------------------------------------------------- persons

StatusOr<json> PeopleService::Person(const std::string& project, const std::string& distinct_id,
                                     std::optional<int32_t> as_of_day, bool unmasked) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const int64_t did = p->store->FindDistinctId(distinct_id);
  if (did < 0) return NotFound("no person with distinct id '" + distinct_id + "'");
  auto snap = p->store->Snapshot();
  const PersonTable& pt = *snap->persons;
  if (static_cast<size_t>(did) >= pt.size()) return NotFound("no person with distinct id '" + distinct_id + "' yet");
  const uint32_t person = pt.PersonOf(static_cast<uint32_t>(did));
  NS_ASSIGN_OR_RETURN(PeopleSettings s, Settings(project));
  const int32_t day = as_of_day ? *as_of_day : p->tz.LocalDay(NowMs());
  auto facts = GetPersonFacts(*snap, p->tz, s, day);

  json ids = json::array();
  const auto& po = pt.person_of();
  for (uint32_t d = 0; d < pt.size(); d++)
    if ((d < po.size() ? po[d] : d) == person) ids.push_back(p->store->DistinctId(d));
  json out{{"distinct_id", distinct_id}, {"display_id", p->store->DisplayId(person)},
           {"distinct_ids", ids},        {"properties", PersonProperties(pt, person, s, unmasked)},
           {"as_of", FormatDate(day)},   {"timezone", p->tz.name()}};
  if (facts->Has(person)) {
    out["first_seen"] = FormatIsoUtc(facts->first_ts[person]);
    out["last_seen"] = FormatIsoUtc(facts->last_ts[person]);
    out["event_count"] = facts->events[person];
    out["lifecycle"] = std::string(LifecycleStage(*facts, s, p->tz, person));
  } else {
    out["first_seen"] = nullptr;
    out["last_seen"] = nullptr;
    out["event_count"] = 0;
    out["lifecycle"] = nullptr;
  }
  RfmModel rfm = RfmModel::Build(*facts, p->tz, RfmScoring{});
  const RfmPerson* r = rfm.Find(person);
  out["rfm"] = r ? RfmPersonJson(*r) : json(nullptr);
  auto tiers = GetPersonTiers(*snap, p->tz, s, day, [p](std::string_view id) { return p->store->FindDistinctId(id); });
  json tj = json::object();
  for (int d = 0; d < kTierDimensions; d++) {
    const auto dim = static_cast<TierDimension>(d);
    const int l = tiers->Level(dim, person);
    tj[std::string(TierDimensionName(dim))] = l < 0 ? json(nullptr) : json(std::string(TierLevels(dim)[l]));
  }
  out["tiers"] = tj;
  // Base tags from this person's rows only; rule tags are cohorts, evaluated (cached) today.
  json base = json::object();
  const auto person_rows = PersonRows(*snap, person, facts->end_ms);
  BaseTagContext tctx{*snap, p->tz, s, *facts, *tiers, person, &person_rows};
  for (const BaseTag& t : BaseTags())
    t.compute(tctx, [&](uint32_t who, const std::string& v) {
      if (who == person) base[t.key] = v;
    });
  out["base_tags"] = base;
  json tags = json::array();
  std::vector<int64_t> path;
  if (day == p->tz.LocalDay(NowMs())) {
    for (const RuleTag& t : RuleTags()) {
      auto m = TagMembers(project, t.key, {}, *snap, p->tz, path);
      if (m.ok() && (*m)->contains(person)) tags.push_back(t.key);
    }
  }
  json cohorts = json::array();
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT id, name, is_tag FROM cohorts WHERE project = ? ORDER BY id", {project}));
  for (const auto& row : rows) {
    auto m = Members(project, row.Int(0), *snap, p->tz);
    if (!m.ok() || !(*m)->contains(person)) continue;
    cohorts.push_back(row.Int(0));
    if (row.Int(2)) tags.push_back(row.Str(1));
  }
  out["tags"] = tags;
  out["cohorts"] = cohorts;
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  return out;
}

StatusOr<json> PeopleService::Timeline(const std::string& project, const std::string& distinct_id,
                                       const std::string& before, size_t limit, bool unmasked) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const int64_t did = p->store->FindDistinctId(distinct_id);
  if (did < 0) return NotFound("no person with distinct id '" + distinct_id + "'");
  // Cursor "TS:SKIP": rows older than TS, plus rows at TS after the first SKIP of them.
  int64_t before_ts = INT64_MAX;
  size_t skip = 0;
  if (!before.empty()) {
    auto colon = before.find(':');
    char* end = nullptr;
    before_ts = std::strtoll(before.c_str(), &end, 10);
    bool ok = end && (*end == ':' || *end == '\0') && end != before.c_str();
    if (ok && colon != std::string::npos) {
      char* e2 = nullptr;
      skip = std::strtoull(before.c_str() + colon + 1, &e2, 10);
      ok = e2 && *e2 == '\0';
    }
    if (!ok) {  // an ISO timestamp works too
      auto ts = ParseIsoTimestamp(before, p->tz);
      if (!ts.ok())
        return InvalidArgument("before: expected a cursor from \"next\" or an ISO-8601 time, got '" + before + "'",
                               "before");
      before_ts = *ts;
      skip = 0;
    }
  }
  auto snap = p->store->Snapshot();
  const PersonTable& pt = *snap->persons;
  if (static_cast<size_t>(did) >= pt.size()) return json{{"events", json::array()}, {"next", nullptr}};
  const uint32_t person = pt.PersonOf(static_cast<uint32_t>(did));
  PersonOrderScan scan(*snap, INT64_MIN, before_ts == INT64_MAX ? INT64_MAX : before_ts + 1);
  struct Row {
    int64_t ts;
    uint32_t block, row;
  };
  std::vector<Row> rows;
  for (const auto& part : scan.parts()) {
    const size_t lo = scan.LowerBound(part, person, pt), hi = scan.LowerBound(part, person + 1, pt);
    PersonOrderScan::ForEachRowIn(scan.blocks(), part, lo, hi, [&](uint32_t b, uint32_t i) {
      const int64_t ts = scan.blocks()[b]->ts()[i];
      if (ts <= before_ts) rows.push_back({ts, b, i});
    });
  }
  // Newest first; rows of one instant in a stable order (uuid, then event), so "SKIP" holds.
  auto key = [&](const Row& r) {
    const Block& b = *scan.blocks()[r.block];
    return std::make_tuple(r.ts, b.has_uuid()[r.row] ? b.uuid()[r.row].ToString() : std::string(), b.ev()[r.row],
                           b.did()[r.row]);
  };
  std::sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) { return key(a) > key(b); });
  NS_ASSIGN_OR_RETURN(PeopleSettings s, Settings(project));
  json events = json::array();
  size_t i = 0, at_before = 0;
  while (i < rows.size() && rows[i].ts == before_ts && at_before < skip) {
    i++;
    at_before++;
  }
  std::vector<Property> props;
  const auto names = p->store->EventNames();
  int64_t last_ts = INT64_MIN;
  size_t same = 0;
  for (; i < rows.size() && events.size() < limit; i++) {
    const Block& b = *scan.blocks()[rows[i].block];
    const uint32_t r = rows[i].row;
    props.clear();
    b.RowProps(r, &props);
    json pj = json::object();
    for (const auto& pr : props) pj[pr.key] = PropJson(pr.value);
    if (!unmasked) MaskProperties(pj, s.masked_properties);
    const uint32_t ev = b.ev()[r];
    events.push_back({{"event", ev < names.size() ? names[ev] : std::string()},
                      {"timestamp", FormatIsoUtc(rows[i].ts)},
                      {"distinct_id", p->store->DistinctId(b.did()[r])},
                      {"properties", pj}});
    same = rows[i].ts == last_ts ? same + 1 : 1;
    last_ts = rows[i].ts;
  }
  json next = nullptr;
  if (i < rows.size()) {
    const size_t skip_next = last_ts == before_ts ? same + skip : same;
    next = std::to_string(last_ts) + ":" + std::to_string(skip_next);
  }
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  return json{{"events", events}, {"next", next}};
}

StatusOr<std::vector<uint32_t>> PeopleService::MatchPersons(Project& p, const StoreSnapshot& snap,
                                                            const PersonFacts& facts, const PersonListRequest& req,
                                                            const PeopleSettings& s) {
  const PersonTable& pt = *snap.persons;
  std::vector<uint8_t> ok(pt.size(), 0);
  for (uint32_t x = 0; x < pt.size(); x++) ok[x] = pt.IsPerson(x) && facts.Has(x);
  std::vector<Filter> filters = req.filters;
  if (req.cohort > 0) {
    if (auto row = LoadCohort(p.info.name, req.cohort); !row.ok()) {
      if (row.status().code() != StatusCode::kNotFound) return row.status();
      return InvalidArgument("cohort: no cohort " + std::to_string(req.cohort) + " in this project", "cohort");
    }
    Filter f;
    f.cohort = req.cohort;
    f.person = true;
    f.op = FilterOp::kIn;
    f.field = "cohort";
    filters.push_back(f);
  }
  NS_RETURN_IF_ERROR(BindCohorts(filters, Source(p.info.name).get(), snap, p.tz));
  if (!filters.empty()) {
    std::vector<uint8_t> v = FilterSet(filters, snap).PersonVerdicts();
    for (size_t x = 0; x < ok.size(); x++) ok[x] &= x < v.size() && v[x];
  }
  for (const CohortCondition& c : req.conditions) {
    NS_RETURN_IF_ERROR(CheckNoCycle(p.info.name, 0, c));
    std::vector<int64_t> path;
    NS_ASSIGN_OR_RETURN(Roaring m,
                        EvaluateCohort(c, EvalContext(p.info.name, snap, p.tz, s, p.tz.LocalDay(NowMs()), path)));
    for (uint32_t x = 0; x < ok.size(); x++) ok[x] &= m.contains(x);
  }
  if (!req.q.empty()) {
    // A distinct id or a property value containing q (case-insensitive).
    const std::string q = Lower(req.q);
    std::vector<uint8_t> hit(pt.size(), 0);
    const auto& po = pt.person_of();
    for (uint32_t d = 0; d < pt.size(); d++) {
      const uint32_t person = d < po.size() ? po[d] : d;
      if (!ok[person] || hit[person]) continue;
      if (Lower(p.store->DistinctId(d)).find(q) != std::string::npos) hit[person] = 1;
    }
    for (const auto& [key, col] : pt.columns) {
      if (IsMaskedProperty(key, s.masked_properties)) continue;  // no search by hidden data
      col->ForEach([&](uint32_t person, const PropValue& v) {
        if (person < ok.size() && ok[person] && !hit[person] && Lower(v.AsString()).find(q) != std::string::npos)
          hit[person] = 1;
      });
    }
    for (size_t x = 0; x < ok.size(); x++) ok[x] &= hit[x];
  }
  std::vector<uint32_t> out;
  for (uint32_t x = 0; x < ok.size(); x++)
    if (ok[x]) out.push_back(x);
  auto value = [&](uint32_t x) -> int64_t {
    if (req.order_by == "first_seen") return facts.first_ts[x];
    if (req.order_by == "event_count") return facts.events[x];
    return facts.last_ts[x];
  };
  std::stable_sort(out.begin(), out.end(), [&](uint32_t a, uint32_t b) { return value(a) > value(b); });
  return out;
}

StatusOr<json> PeopleService::ListPersons(const std::string& project, const PersonListRequest& req, bool unmasked) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(PeopleSettings s, Settings(project));
  auto snap = p->store->Snapshot();
  const int32_t today = p->tz.LocalDay(NowMs());
  auto facts = GetPersonFacts(*snap, p->tz, s, today);
  NS_ASSIGN_OR_RETURN(std::vector<uint32_t> match, MatchPersons(*p, *snap, *facts, req, s));
  json persons = json::array();
  for (size_t i = req.offset; i < match.size() && persons.size() < req.limit; i++) {
    const uint32_t x = match[i];
    persons.push_back({{"distinct_id", p->store->DisplayId(x)},
                       {"properties", PersonProperties(*snap->persons, x, s, unmasked)},
                       {"first_seen", FormatIsoUtc(facts->first_ts[x])},
                       {"last_seen", FormatIsoUtc(facts->last_ts[x])},
                       {"event_count", facts->events[x]},
                       {"lifecycle", std::string(LifecycleStage(*facts, s, p->tz, x))}});
  }
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  const size_t next = req.offset + persons.size();
  return json{{"persons", persons},
              {"total", match.size()},
              {"next", next < match.size() ? json(std::to_string(next)) : json(nullptr)},
              {"as_of", FormatIsoUtc(NowMs())}};
}

StatusOr<PeopleService::CsvProducer> PeopleService::PersonsCsv(const std::string& project, PersonListRequest req,
                                                               bool unmasked) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(PeopleSettings s, Settings(project));
  std::shared_ptr<const StoreSnapshot> snap = p->store->Snapshot();
  auto facts = GetPersonFacts(*snap, p->tz, s, p->tz.LocalDay(NowMs()));
  NS_ASSIGN_OR_RETURN(std::vector<uint32_t> match, MatchPersons(*p, *snap, *facts, req, s));
  // The rows need only the facts and the person table: every block the export depends on
  // has been read, so a damaged one is an error now, not a cut body later.
  NS_RETURN_IF_ERROR(CheckBlocks(*snap));
  // The project outlives the server's requests (the registry keeps it open).
  return CsvProducer([p, s = std::move(s), snap = std::move(snap), facts = std::move(facts), match = std::move(match),
                      unmasked](const CsvWrite& write) {
    const PersonTable& pt = *snap->persons;
    std::vector<std::string> keys;
    for (const auto& [key, col] : pt.columns) keys.push_back(key);
    std::string piece(kUtf8Bom);
    std::vector<std::string> cells{"distinct_id", "first_seen", "last_seen", "event_count", "lifecycle"};
    cells.insert(cells.end(), keys.begin(), keys.end());
    AppendCsvRow(piece, cells);
    constexpr size_t kPiece = 64 << 10;
    for (uint32_t x : match) {
      cells.clear();
      cells.push_back(p->store->DisplayId(x));
      cells.push_back(FormatIsoUtc(facts->first_ts[x]));
      cells.push_back(FormatIsoUtc(facts->last_ts[x]));
      cells.push_back(std::to_string(facts->events[x]));
      cells.emplace_back(LifecycleStage(*facts, s, p->tz, x));
      for (const auto& k : keys) {
        const PropValue* v = pt.Prop(x, k);
        std::string text = v ? v->AsString() : std::string();
        if (v && !unmasked && IsMaskedProperty(k, s.masked_properties)) text = MaskValue(text);
        cells.push_back(std::move(text));
      }
      AppendCsvRow(piece, cells);
      if (piece.size() >= kPiece) {
        if (!write(piece)) return;  // the client is gone
        piece.clear();
      }
    }
    write(piece);
  });
}

// ---------------------------------------------------------------- erasure

StatusOr<json> PeopleService::ErasePerson(const std::string& project, const std::string& distinct_id) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const int64_t did = p->store->FindDistinctId(distinct_id);
  if (did < 0) return NotFound("no person with distinct id '" + distinct_id + "'");
  NS_ASSIGN_OR_RETURN(ErasureResult r, p->store->ErasePerson(static_cast<uint32_t>(did)));
  // The erasure is durable now. Static cohorts already skip erased dids (MembersOf); their
  // rows go too. A failure here leaves rows that point at no one, so it does not fail the call.
  (void)db_.Tx([&]() -> Status {
    for (uint32_t d : r.dids)
      NS_RETURN_IF_ERROR(db_.Exec(
          "DELETE FROM cohort_members WHERE did = ? AND cohort_id IN (SELECT id FROM cohorts WHERE project = ?)",
          {int64_t{d}, project}));
    return Status::OK();
  });
  return json{{"erased", true},
              {"tombstone", r.tombstone},
              {"distinct_ids", r.dids.size()},
              {"events", r.events},
              {"at", FormatIsoUtc(NowMs())}};
}

}  // namespace ns
