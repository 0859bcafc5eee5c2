#include "ops/evaluations.h"

#include "core/time_zone.h"
#include "ops/doc_rows.h"

namespace ns {

using nlohmann::json;

StatusOr<json> Evaluations::Draft(const std::string& project, int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(json sc, scenarios_.Get(project, scenario_id));
  json ev;
  ev["scenario_id"] = scenario_id;
  ev["scenario"] = sc["name"];
  ev["period"] = sc["period"];
  ev["owner"] = sc["owner"];
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
  for (auto& a : sc["actions"]) {
    std::string st = a["status"].get<std::string>();
    bool is_late = st == "delayed";
    if (st == "done")
      done++;
    else if (st == "cancelled")
      cancelled++;
    else
      open++;
    if (is_late) {
      late++;
      late_list.push_back(
          {{"id", a["id"]}, {"action", a["action"]}, {"owner", a["owner"]}, {"due_date", a["due_date"]}});
    }
  }
  ev["actions"] = {{"total", sc["actions"].size()}, {"done", done}, {"late", late},
                   {"cancelled", cancelled},        {"open", open}, {"late_actions", late_list}};
  // Biggest movers: the root-cause contributors of the scenario's alerts, strongest first.
  json movers = json::array();
  NS_ASSIGN_OR_RETURN(auto rows, db_.Query("SELECT a.detail, a.message FROM alerts a JOIN kpis k ON k.id = a.kpi_id "
                                           "WHERE k.scenario_id = ? ORDER BY a.id DESC LIMIT 20",
                                           {scenario_id}));
  for (auto& r : rows) {
    json d = json::parse(r.Str(0), nullptr, false);
    if (!d.is_object()) continue;
    const json& rc = d.value("root_cause", json::object());
    for (auto& c : rc.value("top_contributors", json::array()))
      movers.push_back({{"kpi", d.value("kpi_name", "")},
                        {"dimension", c["dimension"]},
                        {"value", c["value"]},
                        {"contribution", c["contribution"]},
                        {"share", c["share"]}});
    if (rc.contains("step") && rc["step"].is_object())
      movers.push_back(
          {{"kpi", d.value("kpi_name", "")},
           {"step", rc["step"]["from"].get<std::string>() + "\u2192" + rc["step"]["to"].get<std::string>()},
           {"relative_change", rc["step"]["relative_change"]}});
    if (movers.size() >= 10) break;
  }
  ev["biggest_movers"] = movers;
  for (const char* f : {"what_worked", "problems", "next_measures"}) ev[f] = "";
  ev["status"] = "draft";
  return ev;
}

StatusOr<json> Evaluations::Get(const std::string& project, int64_t scenario_id) {
  NS_ASSIGN_OR_RETURN(json ev, Draft(project, scenario_id));
  NS_ASSIGN_OR_RETURN(
      auto rows,
      db_.Query("SELECT id, doc, created_at, updated_at FROM evaluations WHERE scenario_id = ?", {scenario_id}));
  if (!rows.empty()) {
    json saved = json::parse(rows[0].Str(1));
    for (const char* f : {"what_worked", "problems", "next_measures", "owner", "status"})
      if (saved.contains(f)) ev[f] = saved[f];
    // A final evaluation keeps the numbers it was finished with.
    if (saved.value("status", "") == "final" && saved.contains("kpis"))
      ev["kpis"] = saved["kpis"], ev["actions"] = saved["actions"];
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
    NS_ASSIGN_OR_RETURN(json ev, Get(who.project, scenario_id));
    json before = ev;
    for (auto it = body.begin(); it != body.end(); ++it) ev[it.key()] = it.value();
    json doc = ev;
    for (const char* k : {"id", "created_at", "updated_at"}) doc.erase(k);
    int64_t now = NowMs();
    NS_RETURN_IF_ERROR(
        db_.Exec("INSERT INTO evaluations(scenario_id, doc, created_at, updated_at) VALUES(?, ?, ?, ?) "
                 "ON CONFLICT(scenario_id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                 {scenario_id, doc.dump(), now, now}));
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
    json d = json::parse(r.Str(1));
    if (!d["period"].is_object()) continue;
    auto to = ParseDate(d["period"]["to"].get<std::string>(), "");
    if (!to.ok() || *to >= today) continue;
    NS_ASSIGN_OR_RETURN(json ev, Draft(project, r.Int(0)));
    int64_t now = NowMs();
    NS_RETURN_IF_ERROR(db_.Exec("INSERT INTO evaluations(scenario_id, doc, created_at, updated_at) VALUES(?, ?, ?, ?)",
                                {r.Int(0), ev.dump(), now, now}));
    n++;
  }
  return n;
}

StatusOr<int64_t> Evaluations::SaveAsSop(const Principal& who, int64_t scenario_id, const json& body) {
  NS_ASSIGN_OR_RETURN(json ev, Get(who.project, scenario_id));
  if (ev["status"] != "final")
    return FailedPrecondition("the evaluation of scenario " + std::to_string(scenario_id) +
                              " is not finished: save it with \"status\":\"final\" first");
  NS_ASSIGN_OR_RETURN(json sc, scenarios_.Get(who.project, scenario_id));
  std::string name = body.is_object() && body.contains("name") && body["name"].is_string()
                         ? body["name"].get<std::string>()
                         : sc["name"].get<std::string>();
  if (name.empty() || name.size() > 200) return InvalidArgument("name: 1 to 200 bytes", "name");
  json tmpl;
  for (const char* f : {"business_module", "goal", "key_user_group", "pain_points", "success_criteria", "funnel"})
    tmpl[f] = sc[f];
  // Actions keep their content and their timing relative to the scenario start.
  int32_t start = sc["period"].is_object() ? ParseDate(sc["period"]["from"].get<std::string>(), "").value() : 0;
  json acts = json::array();
  std::map<int64_t, size_t> index;
  for (auto& a : sc["actions"]) index[a["id"].get<int64_t>()] = index.size();
  for (auto& a : sc["actions"]) {
    json t{{"strategy", a["strategy"]},
           {"action", a["action"]},
           {"resources", a["resources"]},
           {"delivery_standard", a["delivery_standard"]},
           {"owner", a["owner"]}};
    if (start && a["start_date"].is_string())
      t["start_offset_days"] = ParseDate(a["start_date"].get<std::string>(), "").value() - start;
    if (start && a["due_date"].is_string())
      t["due_offset_days"] = ParseDate(a["due_date"].get<std::string>(), "").value() - start;
    json deps = json::array();
    for (auto& d : a["depends_on"])
      if (index.count(d.get<int64_t>())) deps.push_back(index[d.get<int64_t>()]);
    t["depends_on_index"] = deps;
    acts.push_back(t);
  }
  json doc{{"name", name},
           {"scenario", tmpl},
           {"actions", acts},
           {"source_scenario_id", scenario_id},
           {"lessons",
            {{"what_worked", ev["what_worked"]}, {"problems", ev["problems"]}, {"next_measures", ev["next_measures"]}}},
           {"results", ev["kpis"]}};
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(id, db_.Insert("INSERT INTO sops(project, name, doc, created_at) VALUES(?, ?, ?, ?)",
                                       {who.project, name, doc.dump(), NowMs()}));
    return Audit(db_, who, "create", "sop", id, nullptr, doc);
  }));
  return id;
}

StatusOr<json> Evaluations::ListSops(const std::string& project) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT id, doc, created_at FROM sops WHERE project = ? ORDER BY id", {project}));
  return DocList(rows);
}

StatusOr<json> Evaluations::GetSop(const std::string& project, int64_t id) {
  NS_ASSIGN_OR_RETURN(auto rows,
                      db_.Query("SELECT doc, created_at FROM sops WHERE id = ? AND project = ?", {id, project}));
  if (rows.empty()) return NotFound("no SOP " + std::to_string(id));
  json d = json::parse(rows[0].Str(0));
  d["id"] = id;
  d["created_at"] = rows[0].Int(1);
  return d;
}

StatusOr<int64_t> Evaluations::StartFromSop(const Principal& who, int64_t sop_id, const json& body) {
  NS_ASSIGN_OR_RETURN(json sop, GetSop(who.project, sop_id));
  json sc = sop["scenario"];
  sc["name"] = sop["name"];
  for (auto it = body.begin(); it != body.end(); ++it)
    if (it.key() != "from_sop") sc[it.key()] = it.value();
  sc["from_sop"] = sop_id;
  int64_t id = 0;
  NS_RETURN_IF_ERROR(db_.Tx([&]() -> Status {
    NS_ASSIGN_OR_RETURN(id, scenarios_.Create(who, sc));
    int32_t start = 0;
    if (sc.contains("period") && sc["period"].is_object())
      start = ParseDate(sc["period"]["from"].get<std::string>(), "period.from").value();
    std::vector<int64_t> ids;
    for (auto& t : sop["actions"]) {
      json a{{"strategy", t["strategy"]},
             {"action", t["action"]},
             {"resources", t["resources"]},
             {"delivery_standard", t["delivery_standard"]},
             {"owner", t["owner"]}};
      if (start && t.contains("start_offset_days"))
        a["start_date"] = FormatDate(start + t["start_offset_days"].get<int32_t>());
      if (start && t.contains("due_offset_days"))
        a["due_date"] = FormatDate(start + t["due_offset_days"].get<int32_t>());
      NS_ASSIGN_OR_RETURN(int64_t aid, scenarios_.AddAction(who, id, a));
      ids.push_back(aid);
    }
    // Dependencies once every action exists: an action may depend on a later one (added
    // by a PATCH in the source scenario). The source graph is a DAG, so is this one.
    for (size_t i = 0; i < ids.size(); i++) {
      json deps = json::array();
      for (auto& di : sop["actions"][i]["depends_on_index"])
        if (di.get<size_t>() < ids.size()) deps.push_back(ids[di.get<size_t>()]);
      if (!deps.empty()) NS_RETURN_IF_ERROR(scenarios_.PatchAction(who, ids[i], json{{"depends_on", deps}}));
    }
    return Status::OK();
  }));
  return id;
}

}  // namespace ns
