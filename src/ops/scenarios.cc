#include "ops/scenarios.h"

#include <algorithm>
#include <cstdio>
#include <functional>
#include <map>
#include <set>

#include "core/csv_text.h"
#include "core/time_zone.h"
#include "query/query_spec.h"

namespace ns {

using nlohmann::json;

namespace {

const std::set<std::string> kScenarioFields = {"name",        "business_module",  "goal",    "key_user_group",
                                               "pain_points", "success_criteria", "owner",   "period",
                                               "status",      "funnel",           "from_sop"};
const std::set<std::string> kActionFields = {
    "strategy",          "action", "owner",      "start_date", "due_date",     "resources",
    "delivery_standard", "status", "depends_on", "progress",   "progress_note"};

Status CheckString(const json& v, const std::string& field, size_t max_len, bool required) {
  if (!v.is_string()) return InvalidArgument(field + ": expected a string", field);
  const auto& s = v.get_ref<const std::string&>();
  if (required && s.empty()) return InvalidArgument(field + ": must not be empty", field);
  if (s.size() > max_len) return InvalidArgument(field + ": at most " + std::to_string(max_len) + " bytes", field);
  return Status::OK();
}

Status CheckDate(const json& v, const std::string& field) {
  if (!v.is_string()) return InvalidArgument(field + ": expected a date YYYY-MM-DD", field);
  return ParseDate(v.get<std::string>(), field).status();
}

Status CheckUnknown(const json& body, const std::set<std::string>& known, const std::string& what) {
  for (auto it = body.begin(); it != body.end(); ++it)
    if (!known.count(it.key())) {
      std::string list;
      for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
      return InvalidArgument(what + ": unknown field '" + it.key() + "' (known: " + list + ")", it.key());
    }
  return Status::OK();
}

template <size_t N>
bool OneOf(const std::string& s, const char* const (&list)[N]) {
  for (const char* x : list)
    if (s == x) return true;
  return false;
}

template <size_t N>
std::string Join(const char* const (&list)[N]) {
  std::string s;
  for (const char* x : list) s += (s.empty() ? "" : ", ") + std::string(x);
  return s;
}

}  // namespace

StatusOr<json> ValidateScenario(const json& body, const json* base) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object with the scenario's fields");
  NS_RETURN_IF_ERROR(CheckUnknown(body, kScenarioFields, "scenario"));
  json d = base ? *base : json::object();
  for (auto it = body.begin(); it != body.end(); ++it) d[it.key()] = it.value();
  if (!d.contains("name")) return InvalidArgument("name: required", "name");
  NS_RETURN_IF_ERROR(CheckString(d["name"], "name", 200, true));
  for (const char* f : {"business_module", "owner", "key_user_group", "pain_points"}) {
    if (!d.contains(f) || d[f].is_null()) {
      d[f] = "";
      continue;
    }
    if (std::string(f) == "key_user_group" && d[f].is_object()) {
      // {"cohort_id": N} and/or {"description": "..."}; that the cohort exists is checked
      // against the project (Scenarios::CheckCohort).
      for (auto it = d[f].begin(); it != d[f].end(); ++it)
        if (it.key() != "cohort_id" && it.key() != "description")
          return InvalidArgument("key_user_group: expected a description or {\"cohort_id\"|\"description\"}", f);
      if (d[f].contains("cohort_id") &&
          (!d[f]["cohort_id"].is_number_integer() || d[f]["cohort_id"].get<int64_t>() <= 0))
        return InvalidArgument(
            "key_user_group.cohort_id: expected a cohort id (a positive integer), got " + d[f]["cohort_id"].dump(),
            "key_user_group.cohort_id");
      if (d[f].contains("description"))
        NS_RETURN_IF_ERROR(CheckString(d[f]["description"], "key_user_group.description", 4000, false));
      continue;
    }
    if (std::string(f) == "pain_points" && d[f].is_array()) {
      for (auto& p : d[f]) NS_RETURN_IF_ERROR(CheckString(p, "pain_points[]", 2000, false));
      continue;
    }
    NS_RETURN_IF_ERROR(CheckString(d[f], f, 4000, false));
  }
  if (!d.contains("goal") || d["goal"].is_null()) d["goal"] = json::object();
  if (d["goal"].is_object()) {
    const json& g = d["goal"];
    if (g.contains("target") && !g["target"].is_number())
      return InvalidArgument("goal.target: expected a number", "goal.target");
    if (g.contains("metric")) NS_RETURN_IF_ERROR(CheckString(g["metric"], "goal.metric", 200, false));
    if (g.contains("kpi_id") && !g["kpi_id"].is_number_integer())
      return InvalidArgument("goal.kpi_id: expected a KPI id", "goal.kpi_id");
  } else if (!d["goal"].is_string()) {
    return InvalidArgument("goal: expected {\"metric\",\"target\",...} or a description", "goal");
  }
  if (!d.contains("success_criteria") || d["success_criteria"].is_null()) d["success_criteria"] = json::array();
  if (!d["success_criteria"].is_array())
    return InvalidArgument("success_criteria: expected a list of 1 to 3 criteria", "success_criteria");
  if (d["success_criteria"].size() > 3)
    return InvalidArgument("success_criteria: at most 3 criteria (got " + std::to_string(d["success_criteria"].size()) +
                               "); the method keeps a scenario focused on 1-3 KPIs: split it into several scenarios "
                               "or move the others to monitoring-only KPIs",
                           "success_criteria");
  for (auto& c : d["success_criteria"])
    if (!c.is_string() && !c.is_object())
      return InvalidArgument("success_criteria[]: expected a text or {\"metric\",\"target\"}", "success_criteria");
  if (d.contains("period") && !d["period"].is_null()) {
    const json& p = d["period"];
    if (!p.is_object() || !p.contains("from") || !p.contains("to"))
      return InvalidArgument("period: expected {\"from\":\"YYYY-MM-DD\",\"to\":\"YYYY-MM-DD\"}", "period");
    NS_RETURN_IF_ERROR(CheckDate(p["from"], "period.from"));
    NS_RETURN_IF_ERROR(CheckDate(p["to"], "period.to"));
    if (p["to"].get<std::string>() < p["from"].get<std::string>())
      return InvalidArgument("period: 'to' is before 'from'", "period.to");
  } else {
    d["period"] = nullptr;
  }
  if (!d.contains("status") || d["status"].is_null()) d["status"] = "active";
  if (!d["status"].is_string() || !OneOf(d["status"].get<std::string>(), kScenarioStatuses))
    return InvalidArgument("status: expected one of " + Join(kScenarioStatuses), "status");
  if (d.contains("funnel") && !d["funnel"].is_null()) {
    json f = d["funnel"];
    if (!f.is_object()) return InvalidArgument("funnel: expected a funnel query", "funnel");
    f["kind"] = "funnel";
    if (!f.contains("date_from")) f["date_from"] = "2000-01-01";
    if (!f.contains("date_to")) f["date_to"] = "2000-01-01";
    auto q = ParseFunnelQuery(f);
    if (!q.ok()) return InvalidArgument("funnel: " + q.status().message(), "funnel");
    d["funnel"]["kind"] = "funnel";
  } else {
    d["funnel"] = nullptr;
  }
  return d;
}

StatusOr<json> ValidateAction(const json& body, const json* base, int32_t today) {
  if (!body.is_object()) return InvalidArgument("expected a JSON object with the action's fields");
  NS_RETURN_IF_ERROR(CheckUnknown(body, kActionFields, "action"));
  json d = base ? *base : json::object();
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "progress_note") d[it.key()] = it.value();
  if (!d.contains("action")) return InvalidArgument("action: required (what will be done)", "action");
  NS_RETURN_IF_ERROR(CheckString(d["action"], "action", 2000, true));
  for (const char* f : {"strategy", "owner", "delivery_standard"}) {
    if (!d.contains(f) || d[f].is_null()) d[f] = "";
    NS_RETURN_IF_ERROR(CheckString(d[f], f, 4000, false));
  }
  for (const char* f : {"start_date", "due_date"}) {
    if (!d.contains(f) || d[f].is_null() || (d[f].is_string() && d[f].get<std::string>().empty())) {
      d[f] = nullptr;
      continue;
    }
    NS_RETURN_IF_ERROR(CheckDate(d[f], f));
  }
  if (d["start_date"].is_string() && d["due_date"].is_string() &&
      d["due_date"].get<std::string>() < d["start_date"].get<std::string>())
    return InvalidArgument("due_date: is before start_date", "due_date");
  if (!d.contains("resources") || d["resources"].is_null()) d["resources"] = json::object();
  if (!d["resources"].is_object())
    return InvalidArgument("resources: expected {\"budget\":number,\"engineer_days\":number,\"channels\":[...]}",
                           "resources");
  for (auto it = d["resources"].begin(); it != d["resources"].end(); ++it) {
    const std::string& k = it.key();
    if (k == "budget" || k == "engineer_days") {
      if (!it.value().is_number() || it.value().get<double>() < 0)
        return InvalidArgument("resources." + k + ": expected a number >= 0", "resources." + k);
    } else if (k == "channels") {
      if (!it.value().is_array())
        return InvalidArgument("resources.channels: expected a list of names", "resources.channels");
      for (auto& c : it.value()) NS_RETURN_IF_ERROR(CheckString(c, "resources.channels[]", 200, true));
    } else if (k == "currency" || k == "note") {
      NS_RETURN_IF_ERROR(CheckString(it.value(), "resources." + k, 1000, false));
    } else {
      return InvalidArgument(
          "resources: unknown field '" + k + "' (known: budget, currency, engineer_days, channels, note)",
          "resources." + k);
    }
  }
  if (!d.contains("status") || d["status"].is_null()) d["status"] = "not_started";
  if (!d["status"].is_string() || !OneOf(d["status"].get<std::string>(), kActionStatuses))
    return InvalidArgument("status: expected one of " + Join(kActionStatuses), "status");
  if (!d.contains("depends_on") || d["depends_on"].is_null()) d["depends_on"] = json::array();
  if (!d["depends_on"].is_array()) return InvalidArgument("depends_on: expected a list of action ids", "depends_on");
  std::set<int64_t> seen;
  for (auto& x : d["depends_on"]) {
    if (!x.is_number_integer() || x.get<int64_t>() <= 0)
      return InvalidArgument("depends_on: expected a list of action ids", "depends_on");
    if (!seen.insert(x.get<int64_t>()).second)
      return InvalidArgument("depends_on: action " + x.dump() + " listed twice", "depends_on");
  }
  if (!d.contains("progress") || d["progress"].is_null()) d["progress"] = json::array();
  if (!d["progress"].is_array()) return InvalidArgument("progress: expected a list of {\"date\",\"note\"}", "progress");
  for (auto& p : d["progress"]) {
    if (!p.is_object() || !p.contains("note"))
      return InvalidArgument("progress[]: expected {\"date\",\"note\"}", "progress");
    NS_RETURN_IF_ERROR(CheckString(p["note"], "progress[].note", 4000, true));
    if (p.contains("date")) NS_RETURN_IF_ERROR(CheckDate(p["date"], "progress[].date"));
  }
  if (body.contains("progress_note")) {
    // A dated progress note appended to the list (today in the project's time zone unless
    // the caller passes {"date","note"}).
    json n = body["progress_note"];
    if (n.is_string()) n = json{{"note", n}};
    if (!n.is_object() || !n.contains("note"))
      return InvalidArgument("progress_note: expected a text or {\"date\",\"note\"}", "progress_note");
    NS_RETURN_IF_ERROR(CheckString(n["note"], "progress_note", 4000, true));
    if (!n.contains("date")) n["date"] = FormatDate(today);
    NS_RETURN_IF_ERROR(CheckDate(n["date"], "progress_note.date"));
    d["progress"].push_back(n);
  }
  return d;
}

json ScenarioRow::ToJson() const {
  json d = doc.ToJson();
  d["id"] = id;
  d["created_at"] = created_at;
  d["updated_at"] = updated_at;
  return d;
}

json ActionRow::ToJson() const {
  json a = doc.ToJson();
  a["id"] = id;
  a["scenario_id"] = scenario_id;
  a["created_at"] = created_at;
  a["updated_at"] = updated_at;
  return a;
}

StatusOr<ScenarioRow> Scenarios::Load(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT doc, created_at, updated_at FROM scenarios WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no scenario " + std::to_string(id));
  ScenarioRow sc{id, {}, rows[0].Int(1), rows[0].Int(2)};
  NS_ASSIGN_OR_RETURN(sc.doc, ParseStored<ScenarioDoc>(id, rows[0].Str(0)));
  return sc;
}

StatusOr<int32_t> Scenarios::Today(const std::string& project) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  return p->tz.LocalDay(NowMs());
}

std::string Scenarios::ProjectOf(int64_t scenario_id) {
  auto rows = db_.Query("SELECT project FROM scenarios WHERE id = ?", {scenario_id});
  return rows.ok() && !rows->empty() ? (*rows)[0].Str(0) : "";
}

StatusOr<int64_t> Scenarios::Create(const Principal& who, const json& body) {
  NS_ASSIGN_OR_RETURN(json d, ValidateScenario(body, nullptr));
  NS_ASSIGN_OR_RETURN(std::string text, StoredText<ScenarioDoc>(d));
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    // In the transaction: a cohort deleted meanwhile (PeopleService::DeleteCohort asks
    // UsingCohort in its own) cannot slip between the check and the insert.
    NS_RETURN_IF_ERROR(CheckCohort(who.project, d["key_user_group"]));
    NS_RETURN_IF_ERROR(CheckGoalKpi(who.project, d["goal"]));
    int64_t now = NowMs();
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO scenarios(project, doc, created_at, updated_at) VALUES(?, ?, ?, ?)",
                                       {who.project, text, now, now}));
    return Audit(db_, who, "create", "scenario", id, nullptr, d);
  }));
  return id;
}

// An action past its due date and not done or cancelled is `delayed` at once: on every read,
// and stored so by a PATCH. A new action is stored as given, so the daily job still finds it,
// stores `delayed`, writes the `auto_delayed` audit entry and notifies.
static void ApplyOverdue(ActionDoc& a, int32_t today) {
  if ((a.status != "not_started" && a.status != "in_progress") || !a.due_date) return;
  auto due = ParseDate(*a.due_date, "due_date");
  if (due.ok() && *due < today) a.status = "delayed";
}

StatusOr<std::vector<ActionRow>> Scenarios::Actions(int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT id, doc, created_at, updated_at FROM actions WHERE scenario_id = ? ORDER BY id",
                                {scenario_id}));
  std::vector<ActionRow> out;
  for (auto& r : rows) {
    ActionRow a{r.Int(0), scenario_id, {}, r.Int(2), r.Int(3)};
    NS_ASSIGN_OR_RETURN(a.doc, ParseStored<ActionDoc>(a.id, r.Str(1)));
    out.push_back(std::move(a));
  }
  if (!out.empty()) {
    std::string project = ProjectOf(scenario_id);
    if (auto today = Today(project); today.ok())
      for (auto& a : out) ApplyOverdue(a.doc, *today);
  }
  return out;
}

namespace {

// The cohort id a key user group names (0: none).
int64_t CohortIdOf(const json& key_user_group) {
  if (!key_user_group.is_object()) return 0;
  auto it = key_user_group.find("cohort_id");
  return it != key_user_group.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

}  // namespace

Status Scenarios::CheckCohort(const std::string& project, const json& key_user_group) {
  const int64_t id = CohortIdOf(key_user_group);
  if (id == 0) return Status::OK();
  const std::string field = "key_user_group.cohort_id";
  if (!cohorts_)
    return FailedPrecondition(field + ": cohorts are not available here (no people layer); describe the group instead");
  auto c = cohorts_->Find(project, id, false);
  if (c.status().code() == StatusCode::kNotFound)
    return InvalidArgument(
        field + ": project '" + project + "' has no cohort " + std::to_string(id) + " (GET /api/v1/cohorts lists them)",
        field);
  return c.status();
}

Status Scenarios::CheckGoalKpi(const std::string& project, const json& goal) {
  if (!goal.is_object() || !goal.contains("kpi_id") || !goal["kpi_id"].is_number_integer()) return Status::OK();
  const int64_t id = goal["kpi_id"].get<int64_t>();
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id FROM kpis WHERE project = ? AND id = ?", {project, id}));
  if (rows.empty())
    return InvalidArgument(
        "goal.kpi_id: project '" + project + "' has no KPI " + std::to_string(id) + " (GET /api/v1/kpis lists them)",
        "goal.kpi_id");
  return Status::OK();
}

json Scenarios::KeyUserGroupCohort(const std::string& project, const json& key_user_group) {
  const int64_t id = CohortIdOf(key_user_group);
  if (id == 0 || !cohorts_) return nullptr;
  auto c = cohorts_->Find(project, id, true);
  if (c.status().code() == StatusCode::kNotFound) return json{{"id", id}, {"name", nullptr}, {"deleted", true}};
  if (!c.ok()) return json{{"id", id}, {"name", nullptr}, {"error", c.status().message()}};
  return json{{"id", c->id},
              {"name", c->name},
              {"size", c->size ? json(*c->size) : json(nullptr)},
              {"as_of", c->as_of_ms ? json(FormatIsoUtc(c->as_of_ms)) : json(nullptr)}};
}

StatusOr<std::vector<std::string>> Scenarios::UsingCohort(const std::string& project, int64_t cohort_id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id, doc FROM scenarios WHERE project = ? ORDER BY id", {project}));
  std::vector<std::string> out;
  for (const auto& r : rows) {
    NS_ASSIGN_OR_RETURN(ScenarioDoc doc, ParseStored<ScenarioDoc>(r.Int(0), r.Str(1)));
    if (CohortIdOf(doc.key_user_group) == cohort_id)
      out.push_back("scenario " + std::to_string(r.Int(0)) + " '" + doc.name + "'");
  }
  return out;
}

StatusOr<json> Scenarios::Get(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(ScenarioRow sc, Load(project, id));
  NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, Actions(id));
  json d = sc.ToJson();
  d["actions"] = json::array();
  for (const ActionRow& a : acts) d["actions"].push_back(a.ToJson());
  if (json c = KeyUserGroupCohort(project, sc.doc.key_user_group); !c.is_null()) d["key_user_group_cohort"] = c;
  return d;
}

StatusOr<json> Scenarios::List(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT id FROM scenarios WHERE project = ? ORDER BY id", {project}));
  json out = json::array();
  for (auto& r : rows) {
    NS_ASSIGN_OR_RETURN(ScenarioRow sc, Load(project, r.Int(0)));
    NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, Actions(r.Int(0)));
    json d = sc.ToJson();
    std::map<std::string, int> by_status;
    for (const ActionRow& a : acts) by_status[a.doc.status]++;
    json counts = json::object();
    for (const char* s : kActionStatuses) counts[s] = by_status[s];
    d["action_counts"] = counts;
    if (json c = KeyUserGroupCohort(project, sc.doc.key_user_group); !c.is_null()) d["key_user_group_cohort"] = c;
    out.push_back(std::move(d));
  }
  return out;
}

Status Scenarios::Patch(const Principal& who, int64_t id, const json& body) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(ScenarioRow before, Load(who.project, id));
    json base = before.doc.ToJson();
    NS_ASSIGN_OR_RETURN(json d, ValidateScenario(body, &base));
    if (body.is_object() && body.contains("key_user_group"))
      NS_RETURN_IF_ERROR(CheckCohort(who.project, d["key_user_group"]));
    if (body.is_object() && body.contains("goal")) NS_RETURN_IF_ERROR(CheckGoalKpi(who.project, d["goal"]));
    NS_ASSIGN_OR_RETURN(std::string text, StoredText<ScenarioDoc>(d));
    NS_RETURN_IF_ERROR(db_.Exec("UPDATE scenarios SET doc = ?, updated_at = ? WHERE id = ?", {text, NowMs(), id}));
    return Audit(db_, who, "update", "scenario", id, base, d);
  });
}

Status Scenarios::Delete(const Principal& who, int64_t id) {
  return db_.Tx([&]() -> Status {
    // The audit's "before": the document and its actions (no cohort size: not evaluated
    // while the transaction holds the database).
    NS_ASSIGN_OR_RETURN(ScenarioRow sc, Load(who.project, id));
    NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, Actions(id));
    json before = sc.ToJson();
    before["actions"] = json::array();
    for (const ActionRow& a : acts) before["actions"].push_back(a.ToJson());
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM scenarios WHERE id = ?", {id}));
    return Audit(db_, who, "delete", "scenario", id, before, nullptr);
  });
}

Status Scenarios::CheckDag(int64_t scenario_id, int64_t action_id, const std::vector<int64_t>& depends_on) {
  NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, Actions(scenario_id));
  std::map<int64_t, std::vector<int64_t>> edges;
  for (const ActionRow& a : acts) edges[a.id] = a.doc.depends_on;
  for (int64_t dep : depends_on) {
    if (dep == action_id) return InvalidArgument("depends_on: an action cannot depend on itself", "depends_on");
    if (!edges.count(dep))
      return InvalidArgument(
          "depends_on: action " + std::to_string(dep) + " is not an action of scenario " + std::to_string(scenario_id),
          "depends_on");
  }
  edges[action_id] = depends_on;
  // A cycle through action_id: some dependency reaches action_id again.
  std::vector<int64_t> path;
  std::set<int64_t> done;
  std::function<bool(int64_t)> reaches = [&](int64_t n) -> bool {
    if (n == action_id) return true;
    if (done.count(n)) return false;
    done.insert(n);
    for (int64_t m : edges[n]) {
      path.push_back(m);
      if (reaches(m)) return true;
      path.pop_back();
    }
    return false;
  };
  for (int64_t dep : depends_on) {
    path = {dep};
    done.clear();
    if (reaches(dep)) {
      std::string cyc = std::to_string(action_id);
      for (int64_t n : path) cyc += " -> " + std::to_string(n);
      return InvalidArgument("depends_on: would create a cycle (" + cyc + "); dependencies must form a DAG",
                             "depends_on");
    }
  }
  return Status::OK();
}

StatusOr<int64_t> Scenarios::AddAction(const Principal& who, int64_t scenario_id, const json& body) {
  NS_ASSIGN_OR_RETURN(int32_t today, Today(who.project));
  NS_ASSIGN_OR_RETURN(json d, ValidateAction(body, nullptr, today));
  NS_ASSIGN_OR_RETURN(std::string text, StoredText<ActionDoc>(d));
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_RETURN_IF_ERROR(Load(who.project, scenario_id).status());
    int64_t now = NowMs();
    NS_ASSIGN_OR_RETURN(id,
                        db_.Insert("INSERT INTO actions(scenario_id, doc, created_at, updated_at) VALUES(?, ?, ?, ?)",
                                   {scenario_id, text, now, now}));
    NS_RETURN_IF_ERROR(CheckDag(scenario_id, id, d["depends_on"].get<std::vector<int64_t>>()));
    return Audit(db_, who, "create", "action", id, nullptr, d);
  }));
  return id;
}

StatusOr<ActionRow> Scenarios::LoadAction(const std::string& project, int64_t action_id) {
  NS_ASSIGN_OR_RETURN(
      auto rows, db_.Query("SELECT a.doc, a.scenario_id, a.created_at, a.updated_at FROM actions a JOIN scenarios s "
                           "ON s.id = a.scenario_id WHERE a.id = ? AND s.project = ?",
                           {action_id, project}));
  if (rows.empty()) return NotFound("no action " + std::to_string(action_id));
  ActionRow a{action_id, rows[0].Int(1), {}, rows[0].Int(2), rows[0].Int(3)};
  NS_ASSIGN_OR_RETURN(a.doc, ParseStored<ActionDoc>(action_id, rows[0].Str(0)));
  if (auto today = Today(project); today.ok()) ApplyOverdue(a.doc, *today);
  return a;
}

StatusOr<json> Scenarios::GetAction(const std::string& project, int64_t action_id) {
  NS_ASSIGN_OR_RETURN(ActionRow a, LoadAction(project, action_id));
  return a.ToJson();
}

Status Scenarios::PatchAction(const Principal& who, int64_t action_id, const json& body) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(ActionRow before, LoadAction(who.project, action_id));
    json base = before.doc.ToJson();
    NS_ASSIGN_OR_RETURN(int32_t today, Today(who.project));
    NS_ASSIGN_OR_RETURN(json validated, ValidateAction(body, &base, today));
    NS_ASSIGN_OR_RETURN(ActionDoc d, FromValidated<ActionDoc>(validated));
    ApplyOverdue(d, today);
    NS_RETURN_IF_ERROR(CheckDag(before.scenario_id, action_id, d.depends_on));
    json after = d.ToJson();
    NS_RETURN_IF_ERROR(
        db_.Exec("UPDATE actions SET doc = ?, updated_at = ? WHERE id = ?", {after.dump(), NowMs(), action_id}));
    return Audit(db_, who, "update", "action", action_id, base, after);
  });
}

Status Scenarios::DeleteAction(const Principal& who, int64_t action_id) {
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(ActionRow before, LoadAction(who.project, action_id));
    // Others that depend on it lose that dependency.
    NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, Actions(before.scenario_id));
    for (ActionRow& a : acts) {
      auto it = std::find(a.doc.depends_on.begin(), a.doc.depends_on.end(), action_id);
      if (it == a.doc.depends_on.end()) continue;
      a.doc.depends_on.erase(it);
      NS_RETURN_IF_ERROR(
          db_.Exec("UPDATE actions SET doc = ?, updated_at = ? WHERE id = ?", {a.doc.ToJson().dump(), NowMs(), a.id}));
    }
    NS_RETURN_IF_ERROR(db_.Exec("DELETE FROM actions WHERE id = ?", {action_id}));
    return Audit(db_, who, "delete", "action", action_id, before.ToJson(), nullptr);
  });
}

StatusOr<json> Scenarios::Gantt(const std::string& project, int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(ScenarioRow sc, Load(project, scenario_id));
  NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, Actions(scenario_id));
  // Critical path method over days. An action without dates starts at the scenario's
  // period start (or its creation day) and lasts one day.
  NS_ASSIGN_OR_RETURN(int32_t default_start, Today(project));
  if (std::optional<int32_t> first = sc.doc.FirstDay()) default_start = *first;
  struct Node {
    int64_t id;
    int32_t start, dur;
    std::vector<int64_t> deps;
    int32_t es = 0, ef = 0, ls = 0, lf = 0;
  };
  std::map<int64_t, Node> nodes;
  std::vector<int64_t> order;
  for (const ActionRow& a : acts) {
    Node n;
    n.id = a.id;
    const std::optional<std::string>& start = a.doc.start_date;  // dates checked by ActionDoc::Parse
    const std::optional<std::string>& due = a.doc.due_date;
    int32_t s = start ? ParseDate(*start, "").value() : default_start;
    int32_t e = due ? ParseDate(*due, "").value() : s;
    if (!start && due) s = e;
    n.start = s;
    n.dur = std::max(1, e - s + 1);
    n.deps = a.doc.depends_on;
    nodes[n.id] = n;
  }
  // Topological order (the DAG is guaranteed acyclic on write).
  std::set<int64_t> visited;
  std::function<void(int64_t)> visit = [&](int64_t id) {
    if (visited.count(id) || !nodes.count(id)) return;
    visited.insert(id);
    for (int64_t d : nodes[id].deps) visit(d);
    order.push_back(id);
  };
  for (auto& [id, n] : nodes) visit(id);
  int32_t end = INT32_MIN;
  for (int64_t id : order) {
    Node& n = nodes[id];
    n.es = n.start;
    for (int64_t d : n.deps)
      if (nodes.count(d)) n.es = std::max(n.es, nodes[d].ef);
    n.ef = n.es + n.dur;
    end = std::max(end, n.ef);
  }
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node& n = nodes[*it];
    n.lf = end;
    for (auto& [oid, o] : nodes)
      if (std::find(o.deps.begin(), o.deps.end(), n.id) != o.deps.end()) n.lf = std::min(n.lf, o.ls);
    n.ls = n.lf - n.dur;
  }
  json rows = json::array();
  json critical = json::array();
  for (int64_t id : order) {
    const Node& n = nodes[id];
    bool crit = n.ls == n.es;
    if (crit) critical.push_back(id);
  }
  for (const ActionRow& a : acts) {
    const Node& n = nodes[a.id];
    rows.push_back({{"id", n.id},
                    {"action", a.doc.action},
                    {"strategy", a.doc.strategy},
                    {"owner", a.doc.owner},
                    {"status", a.doc.status},
                    {"start", FormatDate(n.start)},
                    {"due", FormatDate(n.start + n.dur - 1)},
                    {"depends_on", n.deps},
                    {"earliest_start", FormatDate(n.es)},
                    {"earliest_finish", FormatDate(n.ef - 1)},
                    {"latest_start", FormatDate(n.ls)},
                    {"latest_finish", FormatDate(n.lf - 1)},
                    {"slack_days", n.ls - n.es},
                    {"critical", n.ls == n.es},
                    {"schedule_slip_days", std::max(0, n.es - n.start)}});
  }
  json out{{"scenario_id", scenario_id}, {"name", sc.doc.name}, {"tasks", rows}, {"critical_path", critical}};
  if (!nodes.empty()) out["finish"] = FormatDate(end - 1);
  return out;
}

StatusOr<int> Scenarios::MarkDelayed(const std::string& project, int32_t today) {
  int changed = 0;
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT a.id, a.doc FROM actions a JOIN scenarios s ON s.id = a.scenario_id "
                                           "WHERE s.project = ?",
                                           {project}));
  Principal sched{"scheduler", 0, project, Role::kAdmin, Credential::kSystem};
  for (auto& r : rows) {
    NS_ASSIGN_OR_RETURN(ActionDoc d, ParseStored<ActionDoc>(r.Int(0), r.Str(1)));
    const std::string st = d.status;
    if (st != "not_started" && st != "in_progress") continue;
    if (!d.due_date) continue;
    int32_t due = ParseDate(*d.due_date, "").value();
    if (due >= today) continue;
    d.status = "delayed";
    NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
      NS_RETURN_IF_ERROR(
          db_.Exec("UPDATE actions SET doc = ?, updated_at = ? WHERE id = ?", {d.ToJson().dump(), NowMs(), r.Int(0)}));
      return Audit(db_, sched, "auto_delayed", "action", r.Int(0), json{{"status", st}},
                   json{{"status", "delayed"}, {"due_date", *d.due_date}, {"reason", "past due date and not done"}});
    }));
    changed++;
  }
  return changed;
}

StatusOr<std::vector<int64_t>> Scenarios::ImportActionsCsv(const Principal& who, int64_t scenario_id,
                                                           std::string_view csv) {
  NS_ASSIGN_OR_RETURN(auto table, ParseCsvText(csv));
  if (table.empty()) return InvalidArgument("CSV is empty: expected a header row and one row per action");
  // Column names: API field names, the English template headings or the Chinese ones.
  static const std::map<std::string, std::string> kAlias = {
      {"strategy", "strategy"},
      {"strategy direction", "strategy"},
      {"策略方向", "strategy"},
      {"action", "action"},
      {"concrete action", "action"},
      {"具体动作", "action"},
      {"owner", "owner"},
      {"负责人", "owner"},
      {"start_date", "start_date"},
      {"start date", "start_date"},
      {"开始日期", "start_date"},
      {"due_date", "due_date"},
      {"due date", "due_date"},
      {"截止日期", "due_date"},
      {"完成时间", "due_date"},
      {"budget", "budget"},
      {"预算", "budget"},
      {"engineer_days", "engineer_days"},
      {"engineer-days", "engineer_days"},
      {"研发人天", "engineer_days"},
      {"channels", "channels"},
      {"渠道", "channels"},
      {"delivery_standard", "delivery_standard"},
      {"delivery standard", "delivery_standard"},
      {"交付标准", "delivery_standard"},
      {"status", "status"},
      {"状态", "status"},
      {"resources", "resources_note"},
      {"所需资源", "resources_note"},
      // The other columns of an exported process table: ids and dependencies refer to the
      // source scenario's actions (ignored); progress lines "YYYY-MM-DD note" are kept.
      {"id", "-"},
      {"编号", "-"},
      {"depends on", "-"},
      {"depends_on", "-"},
      {"依赖", "-"},
      {"progress", "progress"},
      {"进展", "progress"}};
  static const std::map<std::string, std::string> kStatusAlias = {
      {"未开始", "not_started"},     {"进行中", "in_progress"}, {"已完成", "done"},
      {"延期", "delayed"},           {"已取消", "cancelled"},   {"not started", "not_started"},
      {"in progress", "in_progress"}};
  std::vector<std::string> cols;
  for (auto h : table[0]) {
    std::string k = h;
    if (k.rfind("\xEF\xBB\xBF", 0) == 0) k = k.substr(3);  // UTF-8 BOM from Excel
    std::string lower = k;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    auto it = kAlias.find(lower);
    if (it == kAlias.end())
      return InvalidArgument("CSV header: unknown column '" + k +
                             "' (use strategy, action, owner, start_date, due_date, "
                             "budget, engineer_days, channels, delivery_standard, status, or the template headings)");
    cols.push_back(it->second);
  }
  std::vector<int64_t> ids;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    for (size_t li = 1; li < table.size(); li++) {
      const auto& row = table[li];
      if (row.size() == 1 && row[0].empty()) continue;
      json body = json::object();
      json res = json::object();
      for (size_t c = 0; c < cols.size() && c < row.size(); c++) {
        const std::string& v = row[c];
        if (v.empty()) continue;
        const std::string& f = cols[c];
        if (f == "budget" || f == "engineer_days") {
          char* end = nullptr;
          double x = std::strtod(v.c_str(), &end);
          if (end == v.c_str() || *end != '\0')
            return InvalidArgument("CSV line " + std::to_string(li + 1) + ": " + f + " '" + v + "' is not a number");
          res[f] = x;
        } else if (f == "channels") {
          // Separators ; | and 、 (U+3001, three bytes: match it whole, never its bytes,
          // which also occur inside other characters such as 推送).
          json ch = json::array();
          std::string part;
          auto flush = [&] {
            while (!part.empty() && part.front() == ' ') part.erase(0, 1);
            while (!part.empty() && part.back() == ' ') part.pop_back();
            if (!part.empty()) ch.push_back(part);
            part.clear();
          };
          for (size_t i = 0; i < v.size(); i++) {
            if (v[i] == ';' || v[i] == '|') {
              flush();
            } else if (v.compare(i, 3, "\xE3\x80\x81") == 0) {
              flush();
              i += 2;
            } else {
              part += v[i];
            }
          }
          flush();
          res["channels"] = ch;
        } else if (f == "resources_note") {
          res["note"] = v;
        } else if (f == "status") {
          // API values, Chinese labels, or the English labels of an export in any case.
          std::string lv = v;
          std::transform(lv.begin(), lv.end(), lv.begin(), [](unsigned char ch) { return std::tolower(ch); });
          auto it = kStatusAlias.find(lv);
          body["status"] = it == kStatusAlias.end() ? lv : it->second;
        } else if (f == "-") {
          continue;
        } else if (f == "progress") {
          json prog = json::array();
          size_t s = 0;
          while (s < v.size()) {
            size_t e = v.find('\n', s);
            std::string line = v.substr(s, e == std::string::npos ? std::string::npos : e - s);
            s = e == std::string::npos ? v.size() : e + 1;
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line.empty()) continue;
            if (line.size() > 11 && line[10] == ' ' && ParseDate(line.substr(0, 10), "").ok())
              prog.push_back({{"date", line.substr(0, 10)}, {"note", line.substr(11)}});
            else
              prog.push_back({{"note", line}});
          }
          body["progress"] = prog;
        } else {
          body[f] = v;
        }
      }
      if (!res.empty()) body["resources"] = res;
      auto id = AddAction(who, scenario_id, body);
      if (!id.ok())
        return Status(id.status().code(), "CSV line " + std::to_string(li + 1) + ": " + id.status().message(),
                      id.status().field());
      ids.push_back(*id);
    }
    return Status::OK();
  }));
  return ids;
}

}  // namespace ns
