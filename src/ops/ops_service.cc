#include "ops/ops_service.h"

#include <spdlog/spdlog.h>

#include "core/time_zone.h"
#include "ops/schema.h"

namespace ns {

using nlohmann::json;

StatusOr<int> ParseClock(const std::string& s, const std::string& field) {
  int h = -1, m = -1;
  char extra = 0;
  if (s.size() != 5 || std::sscanf(s.c_str(), "%2d:%2d%c", &h, &m, &extra) != 2 || h < 0 || h > 23 || m < 0 || m > 59)
    return InvalidArgument(field + ": expected a local time HH:MM (00:00-23:59), got '" + s + "'", field);
  return h * 60 + m;
}

bool InQuietHours(const std::string& range, int m) {
  if (range.size() != 11 || range[5] != '-') return false;
  auto a = ParseClock(range.substr(0, 5), "quiet_hours"), b = ParseClock(range.substr(6), "quiet_hours");
  if (!a.ok() || !b.ok() || *a == *b) return false;
  return *a < *b ? (m >= *a && m < *b) : (m >= *a || m < *b);
}

OpsService::OpsService(ProjectRegistry& registry, OpsOptions options)
    : accounts(registry.meta_db()),
      scenarios(registry.meta_db(), registry),
      kpis(registry.meta_db(), registry),
      channels(registry.meta_db()),
      alerts(registry.meta_db(), kpis, channels),
      evaluations(registry.meta_db(), scenarios, kpis),
      registry_(registry),
      db_(&registry.meta_db()),
      options_(std::move(options)) {
  // The built-in jobs, after the snapshot time of each project's local day.
  auto after_snapshot_time = [](const ProjectSettings& s, int minute) {
    auto at = ParseClock(s.snapshot_time, "snapshot_time");
    return at.ok() && minute >= *at;
  };
  jobs_ = {
      {"daily", after_snapshot_time,
       [this](const std::string& project) -> Status {
         NS_ASSIGN_OR_RETURN(json r, RunDaily(project));
         spdlog::info("daily job of project {}: {}", project, r.dump());
         return Status::OK();
       }},
      {"reminders",
       [after_snapshot_time](const ProjectSettings& s, int minute) {
         return after_snapshot_time(s, minute) && !InQuietHours(s.quiet_hours, minute);
       },
       [this](const std::string& project) { return SendReminders(project, false).status(); }},
  };
}

OpsService::~OpsService() { StopScheduler(); }

StatusOr<std::unique_ptr<OpsService>> OpsService::Open(ProjectRegistry& registry, OpsOptions options) {
  NS_RETURN_IF_ERROR(ParseClock(options.snapshot_time, "snapshot_time").status());
  NS_RETURN_IF_ERROR(registry.meta_db().Migrate("ops", OpsMigrations()));
  return std::unique_ptr<OpsService>(new OpsService(registry, std::move(options)));
}

StatusOr<std::optional<std::string>> OpsService::EnsureAdmin() {
  if (accounts.UserCount() > 0) return std::optional<std::string>();
  std::string password = RandomToken("", 20);
  auto projects = registry_.List();
  std::string first = projects.empty() ? "default" : projects[0].name;
  NS_ASSIGN_OR_RETURN(int64_t id,
                      accounts.CreateUser("admin@northstar.local", password, "Administrator", first, Role::kAdmin));
  for (const auto& p : projects) NS_RETURN_IF_ERROR(accounts.SetRole(id, p.name, Role::kAdmin));
  Principal sys{"system", 0, first, Role::kAdmin, Credential::kSystem};
  NS_RETURN_IF_ERROR(
      Audit(*db_, sys, "create", "user", id, nullptr, json{{"email", "admin@northstar.local"}, {"role", "admin"}}));
  return std::optional<std::string>(password);
}

Status OpsService::GrantAdminsNewProjects() {
  // The bootstrap admin administers every project, including ones created later.
  auto id = accounts.UserIdByEmail("admin@northstar.local");
  if (!id.ok()) return Status::OK();
  for (const auto& p : registry_.List())
    if (!accounts.RoleOf(*id, p.name).ok()) NS_RETURN_IF_ERROR(accounts.SetRole(*id, p.name, Role::kAdmin));
  return Status::OK();
}

StatusOr<ProjectSettings> OpsService::Settings(const std::string& project) {
  ProjectSettings s{options_.snapshot_time, "", options_.reminder_days};
  NS_ASSIGN_OR_RETURN(auto rows, db_->Query("SELECT key, value FROM project_settings WHERE project = ?", {project}));
  for (auto& r : rows) {
    std::string k = r.Str(0), v = r.Str(1);
    if (k == "snapshot_time")
      s.snapshot_time = v;
    else if (k == "quiet_hours")
      s.quiet_hours = v;
    else if (k == "reminder_days")
      s.reminder_days = std::atoi(v.c_str());
    else if (k == "earliest_event_date")
      s.earliest_event_date = v;
  }
  return s;
}

Status OpsService::SetSettings(const Principal& who, const json& body) {
  if (!body.is_object()) return InvalidArgument("expected {\"snapshot_time\",\"quiet_hours\",\"reminder_days\"}");
  NS_ASSIGN_OR_RETURN(ProjectSettings before, Settings(who.project));
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& k = it.key();
    std::string v;
    if (k == "snapshot_time") {
      if (!it.value().is_string()) return InvalidArgument("snapshot_time: expected HH:MM", k);
      v = it.value().get<std::string>();
      NS_RETURN_IF_ERROR(ParseClock(v, k).status());
    } else if (k == "quiet_hours") {
      if (!it.value().is_string()) return InvalidArgument("quiet_hours: expected \"HH:MM-HH:MM\" or \"\"", k);
      v = it.value().get<std::string>();
      if (!v.empty()) {
        if (v.size() != 11 || v[5] != '-')
          return InvalidArgument("quiet_hours: expected \"HH:MM-HH:MM\" (e.g. 22:00-08:00) or \"\"", k);
        NS_RETURN_IF_ERROR(ParseClock(v.substr(0, 5), k).status());
        NS_RETURN_IF_ERROR(ParseClock(v.substr(6), k).status());
      }
    } else if (k == "reminder_days") {
      if (!it.value().is_number_integer() || it.value().get<int>() < 0 || it.value().get<int>() > 90)
        return InvalidArgument("reminder_days: expected 0 to 90", k);
      v = std::to_string(it.value().get<int>());
    } else if (k == "earliest_event_date") {
      if (!it.value().is_string()) return InvalidArgument("earliest_event_date: expected YYYY-MM-DD", k);
      v = it.value().get<std::string>();
      NS_ASSIGN_OR_RETURN(int32_t day, ParseDate(v, k));
      // From 1970 (timestamps are ms since the epoch) to today.
      if (day < 0 || int64_t{day} * 86'400'000 > NowMs())
        return InvalidArgument("earliest_event_date: expected a date from 1970-01-01 to today, got " + v, k);
    } else {
      return InvalidArgument(
          "unknown setting '" + k + "' (known: snapshot_time, quiet_hours, reminder_days, earliest_event_date)", k);
    }
    NS_RETURN_IF_ERROR(
        db_->Exec("INSERT INTO project_settings(project, key, value) VALUES(?, ?, ?) "
                  "ON CONFLICT(project, key) DO UPDATE SET value = excluded.value",
                  {who.project, k, v}));
  }
  if (body.contains("earliest_event_date")) {
    // The open store's ingest paths read it from the project (no database read per request).
    NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(who.project));
    p->earliest_event_ms = registry_.EarliestEventMs(who.project);
  }
  json b{{"snapshot_time", before.snapshot_time},
         {"quiet_hours", before.quiet_hours},
         {"reminder_days", before.reminder_days},
         {"earliest_event_date", before.earliest_event_date}};
  return Audit(*db_, who, "update", "settings", 0, b, body);
}

StatusOr<json> OpsService::RunDaily(const std::string& project) {
  std::lock_guard lock(daily_mu_);
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  int32_t today = p->tz.LocalDay(NowMs());
  json out;
  NS_ASSIGN_OR_RETURN(int delayed, scenarios.MarkDelayed(project, today));
  out["actions_marked_delayed"] = delayed;
  NS_ASSIGN_OR_RETURN(auto rows, db_->Query("SELECT id FROM kpis WHERE project = ? ORDER BY id", {project}));
  json refreshed = json::array(), errors = json::array(), fired = json::array();
  for (auto& r : rows) {
    int64_t id = r.Int(0);
    // Each KPI on its own: an error (or an exception) is recorded on that KPI and in the
    // job's result, and the others still run.
    StatusOr<json> st = Internal("not run");
    try {
      st = kpis.Refresh(project, id);
    } catch (const std::exception& e) {
      st = Internal(std::string("unexpected error: ") + e.what());
    }
    if (!st.ok()) {
      errors.push_back({{"kpi_id", id}, {"error", st.status().message()}});
      KpiState state;
      state.error = KpiState::Error{std::string(st.status().ErrorName()), st.status().message()};
      state.refreshed_at = NowMs();
      (void)db_->Exec("UPDATE kpis SET state = ? WHERE id = ?", {state.ToJson().dump(), id});
      continue;
    }
    refreshed.push_back(id);
    StatusOr<json> f = Internal("not run");
    try {
      f = alerts.EvaluateKpi(project, id);
    } catch (const std::exception& e) {
      f = Internal(std::string("unexpected error: ") + e.what());
    }
    if (!f.ok())
      errors.push_back({{"kpi_id", id}, {"error", f.status().message()}});
    else
      for (auto& a : *f) fired.push_back(a);
  }
  out["kpis_refreshed"] = refreshed;
  out["alerts_fired"] = fired;
  out["errors"] = errors;
  NS_ASSIGN_OR_RETURN(int drafted, evaluations.DraftEnded(project, today));
  out["evaluations_drafted"] = drafted;
  return out;
}

StatusOr<json> OpsService::Digest(const std::string& project) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(ProjectSettings s, Settings(project));
  int32_t today = p->tz.LocalDay(NowMs());
  std::map<std::string, json> owners;
  auto owner_entry = [&](const std::string& o) -> json& {
    json& e = owners[o.empty() ? "(no owner)" : o];
    if (e.is_null())
      e = {{"owner", o.empty() ? "(no owner)" : o},
           {"overdue", json::array()},
           {"due_soon", json::array()},
           {"kpis", json::array()}};
    return e;
  };
  NS_ASSIGN_OR_RETURN(
      auto acts, db_->Query("SELECT a.id, a.doc, s.id, s.doc FROM actions a JOIN scenarios s ON s.id = a.scenario_id "
                            "WHERE s.project = ? ORDER BY a.id",
                            {project}));
  for (auto& r : acts) {
    NS_ASSIGN_OR_RETURN(ActionDoc a, ParseStored<ActionDoc>(r.Int(0), r.Str(1)));
    const std::string& st = a.status;
    if (st == "done" || st == "cancelled" || !a.due_date) continue;
    NS_ASSIGN_OR_RETURN(ScenarioDoc sc, ParseStored<ScenarioDoc>(r.Int(2), r.Str(3)));
    int32_t due = ParseDate(*a.due_date, "").value();
    json item{{"id", r.Int(0)}, {"action", a.action},  {"due_date", *a.due_date},
              {"status", st},   {"scenario", sc.name}, {"days_left", due - today}};
    if (due < today)
      owner_entry(a.owner)["overdue"].push_back(item);
    else if (due - today <= s.reminder_days)
      owner_entry(a.owner)["due_soon"].push_back(item);
  }
  NS_ASSIGN_OR_RETURN(json ks, kpis.List(project, std::nullopt));
  for (auto& k : ks) {
    // A KPI whose definition cannot be read is listed with its error and no owner.
    const std::string owner = k["owner"].is_string() ? k["owner"].get<std::string>() : "";
    owner_entry(owner)["kpis"].push_back({{"id", k["id"]},
                                          {"name", k["name"]},
                                          {"light", k.value("light", json())},
                                          {"actual", k.value("actual", json())},
                                          {"target", k["target"]}});
  }
  json out = json::array();
  for (auto& [o, e] : owners) out.push_back(e);
  return out;
}

StatusOr<json> OpsService::SendReminders(const std::string& project, bool force) {
  // The scheduled digest is one message per owner and local day: a re-run of the job after
  // a crash finds its key in the outbox and does not send it again. A forced send (the
  // console's "send now") is a new message each time.
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  NS_ASSIGN_OR_RETURN(ProjectSettings s, Settings(project));
  std::string local = p->tz.FormatLocal(NowMs());
  int minute = std::atoi(local.substr(11, 2).c_str()) * 60 + std::atoi(local.substr(14, 2).c_str());
  if (!force && InQuietHours(s.quiet_hours, minute))
    return json{{"sent", false}, {"reason", "quiet hours " + s.quiet_hours}};
  NS_ASSIGN_OR_RETURN(json digest, Digest(project));
  json sent = json::array();
  for (auto& e : digest) {
    if (e["overdue"].empty() && e["due_soon"].empty() && e["kpis"].empty()) continue;
    Notification n;
    n.title = "[Northstar] Daily digest for " + e["owner"].get<std::string>();
    std::string text;
    for (auto& a : e["overdue"])
      text += "OVERDUE: " + a["action"].get<std::string>() + " (due " + a["due_date"].get<std::string>() + ", " +
              a["scenario"].get<std::string>() + ")\n";
    for (auto& a : e["due_soon"])
      text += "Due in " + std::to_string(a["days_left"].get<int>()) + " d: " + a["action"].get<std::string>() + " (" +
              a["due_date"].get<std::string>() + ")\n";
    for (auto& k : e["kpis"])
      text += "KPI " + k["name"].get<std::string>() + ": " +
              (k["light"].is_string() ? k["light"].get<std::string>() : "no target") + "\n";
    n.text = text;
    n.level = e["overdue"].empty() ? "info" : "warning";
    n.data = e;
    if (!force) n.dedup_key = "reminder-" + project + "-" + local.substr(0, 10) + "-" + e["owner"].get<std::string>();
    sent.push_back({{"owner", e["owner"]}, {"deliveries", channels.SendAll(project, {}, n)}});
  }
  return json{{"sent", true}, {"digests", sent}};
}

bool OpsService::ClaimRun(const std::string& project, const std::string& job, const std::string& day) {
  // A 'running' claim left by a process that crashed mid-job is taken over: the job runs
  // again, and what it already did is not repeated (KPI snapshots are measurements, an open
  // alert is not fired twice, messages are de-duplicated by the outbox).
  auto rows =
      db_->Query("SELECT state FROM job_runs WHERE project = ? AND job = ? AND run_key = ?", {project, job, day});
  if (!rows.ok()) return false;
  if (!rows->empty()) {
    if ((*rows)[0].Str(0) == "done") return false;
    spdlog::warn("{} job of project {} for {} was interrupted (a crash or kill); running it again", job, project, day);
    return true;
  }
  return db_
      ->Exec("INSERT INTO job_runs(project, job, run_key, at, state) VALUES(?, ?, ?, ?, 'running')",
             {project, job, day, NowMs()})
      .ok();
}

void OpsService::MarkRan(const std::string& project, const std::string& job, const std::string& day) {
  (void)db_->Exec("UPDATE job_runs SET state = 'done', at = ? WHERE project = ? AND job = ? AND run_key = ?",
                  {NowMs(), project, job, day});
}

Status OpsService::MarkJobDoneToday(const std::string& project, const std::string& job) {
  NS_ASSIGN_OR_RETURN(Project * p, registry_.OpenProject(project));
  const std::string day = p->tz.FormatLocal(NowMs()).substr(0, 10);  // the scheduler's run key
  return db_->Exec(
      "INSERT INTO job_runs(project, job, run_key, at, state) VALUES(?, ?, ?, ?, 'done') "
      "ON CONFLICT(project, job, run_key) DO UPDATE SET state = 'done', at = excluded.at",
      {project, job, day, NowMs()});
}

void OpsService::AddJob(ScheduledJob job) { jobs_.push_back(std::move(job)); }

void OpsService::StartScheduler() {
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

void OpsService::StopScheduler() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
}

void OpsService::SchedulerLoop() {
  pthread_setname_np(pthread_self(), "ns-scheduler");
  // Messages written to the outbox by a process that ended before sending them.
  try {
    json resent = channels.DeliverPending();
    if (!resent.empty()) spdlog::info("outbox: sent {} messages left pending by the previous run", resent.size());
  } catch (const std::exception& e) {
    spdlog::error("outbox: unexpected error: {}", e.what());
  }
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(options_.scheduler_tick_ms), [this] { return stop_; })) return;
    }
    for (const auto& info : registry_.List()) {
      auto p = registry_.OpenProject(info.name);
      auto s = Settings(info.name);
      if (!p.ok() || !s.ok()) continue;
      std::string local = (*p)->tz.FormatLocal(NowMs());
      std::string day = local.substr(0, 10);
      int minute = std::atoi(local.substr(11, 2).c_str()) * 60 + std::atoi(local.substr(14, 2).c_str());
      for (const ScheduledJob& job : jobs_) {
        if (!job.due(*s, minute) || !ClaimRun(info.name, job.name, day)) continue;  // not due, or done today
        // Exception boundary: a failing job is logged and marked run; it never ends the thread
        // (nor, through std::terminate, the server).
        try {
          Status st = job.run(info.name);
          if (!st.ok()) spdlog::warn("{} job of project {} failed: {}", job.name, info.name, st.ToString());
        } catch (const std::exception& e) {
          spdlog::error("{} job of project {} failed: unexpected error: {}", job.name, info.name, e.what());
        }
        MarkRan(info.name, job.name, day);
      }
    }
  }
}

}  // namespace ns
