#include "ops/evaluations.h"

#include "core/time_zone.h"
#include "ops/documents.h"

namespace ns {

using nlohmann::json;

StatusOr<json> Evaluations::Draft(const std::string& project, int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(ScenarioRow sc, scenarios_.Load(project, scenario_id));
  NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, scenarios_.Actions(scenario_id));
  json ev;
  ev["scenario_id"] = scenario_id;
  ev["scenario"] = sc.doc.name;
  ev["period"] = sc.doc.period;
  ev["owner"] = sc.doc.owner;
  NS_ASSIGN_OR_RETURN(json kpis, kpis_.List(project, scenario_id));
  json results = json::array();
  for (auto& k : kpis)
    results.push_back({{"kpi_id", k["id"]},
                       {"name", k["name"]},
                       {"target", k["target"]},
                       {"actual", k.value("actual", json())},
                       {"achievement_rate", k.value("achievement_rate", json())},
                       {"light", k.value("light", json())},
                       {"direction", k["direction"]},
                       {"period", k.value("period", json())}});
  ev["kpis"] = results;
  int done = 0, late = 0, cancelled = 0, open = 0;
  json late_list = json::array();
  for (const ActionRow& a : acts) {
    const std::string& st = a.doc.status;
    bool is_late = st == "delayed";
    if (st == "done")
      done++;
    else if (st == "cancelled")
      cancelled++;
    else
      open++;
    if (is_late) {
      late++;
      late_list.push_back({{"id", a.id},
                           {"action", a.doc.action},
                           {"owner", a.doc.owner},
                           {"due_date", a.doc.due_date ? json(*a.doc.due_date) : json()}});
    }
  }
  ev["actions"] = {{"total", acts.size()},   {"done", done}, {"late", late},
                   {"cancelled", cancelled}, {"open", open}, {"late_actions", late_list}};
  // Biggest movers: the root-cause contributors of the scenario's alerts, strongest first.
  json movers = json::array();
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT a.id, a.detail FROM alerts a JOIN kpis k ON k.id = a.kpi_id "
                                           "WHERE k.scenario_id = ? ORDER BY a.id DESC LIMIT 20",
                                           {scenario_id}));
  for (auto& r : rows) {
    NS_ASSIGN_OR_RETURN(AlertDetail d, ParseStored<AlertDetail>(r.Int(0), r.Str(1)));
    const json& rc = d.root_cause;  // the parts read here are checked by AlertDetail::Parse
    if (rc.contains("top_contributors"))
      for (const json& c : rc["top_contributors"])
        movers.push_back({{"kpi", d.kpi_name},
                          {"dimension", c["dimension"]},
                          {"value", c["value"]},
                          {"contribution", c["contribution"]},
                          {"share", c["share"]}});
    if (rc.contains("step") && rc["step"].is_object()) {
      const json& step = rc["step"];
      movers.push_back({{"kpi", d.kpi_name},
                        {"step", step["from"].get<std::string>() + "\u2192" + step["to"].get<std::string>()},
                        {"relative_change", step["relative_change"]}});
    }
    if (movers.size() >= 10) break;
  }
  ev["biggest_movers"] = movers;
  for (const char* f : {"what_worked", "problems", "next_measures"}) ev[f] = "";
  ev["status"] = "draft";
  return ev;
}

StatusOr<json> Evaluations::Get(const std::string& project, int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(json ev, Merged(project, scenario_id));
  // Who the scenario was for, as it is now (not stored).
  NS_ASSIGN_OR_RETURN(ScenarioRow sc, scenarios_.Load(project, scenario_id));
  ev["key_user_group"] = sc.doc.key_user_group;
  if (json c = scenarios_.KeyUserGroupCohort(project, sc.doc.key_user_group); !c.is_null())
    ev["key_user_group_cohort"] = c;
  return ev;
}

StatusOr<json> Evaluations::Merged(const std::string& project, int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(json ev, Draft(project, scenario_id));
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT id, doc, created_at, updated_at FROM evaluations WHERE scenario_id = ?", {scenario_id}));
  if (!rows.empty()) {
    NS_ASSIGN_OR_RETURN(EvaluationDoc saved, ParseStored<EvaluationDoc>(rows[0].Int(0), rows[0].Str(1)));
    ev["what_worked"] = saved.what_worked;
    ev["problems"] = saved.problems;
    ev["next_measures"] = saved.next_measures;
    ev["owner"] = saved.owner;
    ev["status"] = saved.status;
    // A final evaluation keeps the numbers it was finished with.
    if (saved.status == "final") ev["kpis"] = saved.kpis, ev["actions"] = saved.actions;
    ev["id"] = rows[0].Int(0);
    ev["created_at"] = rows[0].Int(2);
    ev["updated_at"] = rows[0].Int(3);
  }
  return ev;
}

Status Evaluations::Save(const Principal& who, int64_t scenario_id, const json& body) {
  if (!body.is_object())
    return InvalidArgument("expected {\"what_worked\",\"problems\",\"next_measures\",\"owner\",\"status\"}");
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    if (k != "what_worked" && k != "problems" && k != "next_measures" && k != "owner" && k != "status")
      return InvalidArgument("unknown field '" + k + "' (known: what_worked, problems, next_measures, owner, status)",
                             k);
    if (!it.value().is_string()) return InvalidArgument(k + ": expected a string", k);
    if (it.value().get<std::string>().size() > 20000) return InvalidArgument(k + ": at most 20000 bytes", k);
  }
  if (body.contains("status") && body["status"] != "draft" && body["status"] != "final")
    return InvalidArgument("status: expected draft or final", "status");
  return db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(json ev, Merged(who.project, scenario_id));
    json before = ev;
    for (auto it = body.begin(); it != body.end(); ++it) ev[it.key()] = it.value();
    json doc = ev;
    for (const char* k : {"id", "created_at", "updated_at"}) doc.erase(k);
    NS_ASSIGN_OR_RETURN(std::string text, StoredText<EvaluationDoc>(doc));
    int64_t now = NowMs();
    NS_RETURN_IF_ERROR(
        db_.Exec("INSERT INTO evaluations(scenario_id, doc, created_at, updated_at) VALUES(?, ?, ?, ?) "
                 "ON CONFLICT(scenario_id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                 {scenario_id, text, now, now}));
    return Audit(db_, who, "update", "evaluation", scenario_id, before, doc);
  });
}

StatusOr<int> Evaluations::DraftEnded(const std::string& project, int32_t today) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT s.id, s.doc FROM scenarios s LEFT JOIN evaluations e ON e.scenario_id = s.id "
                                "WHERE s.project = ? AND e.id IS NULL",
                                {project}));
  int n = 0;
  for (auto& r : rows) {
    NS_ASSIGN_OR_RETURN(ScenarioDoc d, ParseStored<ScenarioDoc>(r.Int(0), r.Str(1)));
    std::optional<int32_t> to = d.LastDay();
    if (!to || *to >= today) continue;
    NS_ASSIGN_OR_RETURN(json ev, Draft(project, r.Int(0)));
    NS_ASSIGN_OR_RETURN(std::string text, StoredText<EvaluationDoc>(ev));
    int64_t now = NowMs();
    NS_RETURN_IF_ERROR(db_.Exec("INSERT INTO evaluations(scenario_id, doc, created_at, updated_at) VALUES(?, ?, ?, ?)",
                                {r.Int(0), text, now, now}));
    n++;
  }
  return n;
}

StatusOr<int64_t> Evaluations::SaveAsSop(const Principal& who, int64_t scenario_id, const json& body) {
  NS_ASSIGN_OR_RETURN(json ev, Get(who.project, scenario_id));
  if (ev["status"] != "final")
    return FailedPrecondition("the evaluation of scenario " + std::to_string(scenario_id) +
                              " is not finished: save it with \"status\":\"final\" first");
  NS_ASSIGN_OR_RETURN(ScenarioRow sc, scenarios_.Load(who.project, scenario_id));
  NS_ASSIGN_OR_RETURN(std::vector<ActionRow> acts, scenarios_.Actions(scenario_id));
  SopDoc sop;
  sop.name = body.is_object() && body.contains("name") && body["name"].is_string() ? body["name"].get<std::string>()
                                                                                   : sc.doc.name;
  if (sop.name.empty() || sop.name.size() > 200) return InvalidArgument("name: 1 to 200 bytes", "name");
  sop.scenario = {{"business_module", sc.doc.business_module},   {"goal", sc.doc.goal},
                  {"key_user_group", sc.doc.key_user_group},     {"pain_points", sc.doc.pain_points},
                  {"success_criteria", sc.doc.success_criteria}, {"funnel", sc.doc.funnel}};
  // Actions keep their content and their timing relative to the scenario start.
  const int32_t start = sc.doc.FirstDay().value_or(0);
  std::map<int64_t, size_t> index;
  for (const ActionRow& a : acts) {
    const size_t pos = index.size();
    index[a.id] = pos;
  }
  for (const ActionRow& a : acts) {
    SopAction t;
    t.strategy = a.doc.strategy;
    t.action = a.doc.action;
    t.owner = a.doc.owner;
    t.delivery_standard = a.doc.delivery_standard;
    t.resources = a.doc.resources;
    if (start && a.doc.start_date) t.start_offset_days = ParseDate(*a.doc.start_date, "").value() - start;
    if (start && a.doc.due_date) t.due_offset_days = ParseDate(*a.doc.due_date, "").value() - start;
    for (int64_t d : a.doc.depends_on)
      if (index.count(d)) t.depends_on_index.push_back(index[d]);
    sop.actions.push_back(std::move(t));
  }
  sop.source_scenario_id = scenario_id;
  // Get's answer: these are the stored evaluation's texts.
  sop.what_worked = ev["what_worked"].get<std::string>();
  sop.problems = ev["problems"].get<std::string>();
  sop.next_measures = ev["next_measures"].get<std::string>();
  sop.results = ev["kpis"];
  const json doc = sop.ToJson();
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO sops(project, name, doc, created_at) VALUES(?, ?, ?, ?)",
                                       {who.project, sop.name, doc.dump(), NowMs()}));
    return Audit(db_, who, "create", "sop", id, nullptr, doc);
  }));
  return id;
}

StatusOr<json> Evaluations::ListSops(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT id, doc, created_at FROM sops WHERE project = ? ORDER BY id", {project}));
  return DocList<SopDoc>(rows);
}

StatusOr<SopDoc> Evaluations::LoadSop(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT doc FROM sops WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no SOP " + std::to_string(id));
  return ParseStored<SopDoc>(id, rows[0].Str(0));
}

StatusOr<json> Evaluations::GetSop(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT doc, created_at FROM sops WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no SOP " + std::to_string(id));
  NS_ASSIGN_OR_RETURN(SopDoc sop, ParseStored<SopDoc>(id, rows[0].Str(0)));
  json d = sop.ToJson();
  d["id"] = id;
  d["created_at"] = rows[0].Int(1);
  return d;
}

StatusOr<int64_t> Evaluations::StartFromSop(const Principal& who, int64_t sop_id, const json& body) {
  NS_ASSIGN_OR_RETURN(SopDoc sop, LoadSop(who.project, sop_id));
  json sc = sop.scenario;
  sc["name"] = sop.name;
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "from_sop") sc[it.key()] = it.value();
  sc["from_sop"] = sop_id;
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(id, scenarios_.Create(who, sc));
    NS_ASSIGN_OR_RETURN(ScenarioRow created, scenarios_.Load(who.project, id));
    const int32_t start = created.doc.FirstDay().value_or(0);
    std::vector<int64_t> ids;
    for (const SopAction& t : sop.actions) {
      json a{{"strategy", t.strategy},
             {"action", t.action},
             {"resources", t.resources},
             {"delivery_standard", t.delivery_standard},
             {"owner", t.owner}};
      if (start && t.start_offset_days) a["start_date"] = FormatDate(start + *t.start_offset_days);
      if (start && t.due_offset_days) a["due_date"] = FormatDate(start + *t.due_offset_days);
      NS_ASSIGN_OR_RETURN(int64_t aid, scenarios_.AddAction(who, id, a));
      ids.push_back(aid);
    }
    // Dependencies once every action exists: an action may depend on a later one (added
    // by a PATCH in the source scenario). The source graph is a DAG, so is this one.
    for (size_t i = 0; i < ids.size(); i++) {
      json deps = json::array();
      for (size_t di : sop.actions[i].depends_on_index)
        if (di < ids.size()) deps.push_back(ids[di]);
      if (!deps.empty()) NS_RETURN_IF_ERROR(scenarios_.PatchAction(who, ids[i], json{{"depends_on", deps}}));
    }
    return Status::OK();
  }));
  return id;
}

}  // namespace ns
