// The operations layer as one object: the metadata store and every ops module over it,
// the daily job (delayed actions, KPI snapshots, alerts, evaluation drafts, reminders) and
// the scheduler thread that runs it at the configured local time of each project.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "auth/accounts.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "ops/alerts.h"
#include "ops/evaluations.h"
#include "ops/kpis.h"
#include "ops/scenarios.h"

namespace ns {

struct OpsOptions {
  std::string snapshot_time = "06:00";  // local time of the daily job (project time zone)
  int reminder_days = 3;                // digest: actions due within this many days
  int64_t scheduler_tick_ms = 30'000;
};

// Per-project settings (project_settings table), with defaults from OpsOptions.
struct ProjectSettings {
  std::string snapshot_time;
  std::string quiet_hours;  // "22:00-08:00" or "" (none): no reminders sent inside
  int reminder_days = 3;
  std::string earliest_event_date = "2000-01-01";  // ingest refuses older events (UTC)
};

// A job the scheduler runs once per project and local day (job_runs records it): the daily
// job and the reminders today; later subsystems add theirs with OpsService::AddJob.
struct ScheduledJob {
  std::string name;  // the job_runs key, e.g. "daily"
  // Whether the job is due at this local minute of the day under the project's settings.
  std::function<bool(const ProjectSettings& settings, int minute)> due;
  // Runs the job for one project; an error is logged and the day counts as run.
  std::function<Status(const std::string& project)> run;
};

class OpsService {
 public:
  ~OpsService();
  // Uses the registry's metadata database (one for the server) and applies the
  // operations layer's migrations to it.
  static StatusOr<std::unique_ptr<OpsService>> Open(ProjectRegistry& registry, OpsOptions options = {});

  MetaDb& db() { return *db_; }
  ProjectRegistry& registry() { return registry_; }
  Accounts accounts;
  Scenarios scenarios;
  Kpis kpis;
  Channels channels;
  Alerts alerts;
  Evaluations evaluations;

  // Creates the first admin (admin@northstar.local, random password, admin of every
  // project) when there is no user; returns the password then, nullopt otherwise.
  StatusOr<std::optional<std::string>> EnsureAdmin();
  // Gives every admin user the admin role on projects created after them.
  Status GrantAdminsNewProjects();

  StatusOr<ProjectSettings> Settings(const std::string& project);
  Status SetSettings(const Principal& who, const nlohmann::json& body);

  // The daily job of a project, now: marks overdue actions delayed, snapshots every KPI,
  // evaluates alert rules, drafts evaluations of ended scenarios. Returns a summary.
  StatusOr<nlohmann::json> RunDaily(const std::string& project);
  // The reminder digest per owner: actions due within N days or overdue, their KPIs' lights.
  StatusOr<nlohmann::json> Digest(const std::string& project);
  // Sends the digest to the project's channels unless inside quiet hours (force: anyway).
  StatusOr<nlohmann::json> SendReminders(const std::string& project, bool force);

  // Records `job` as done for the project's current local day without running it, so the
  // scheduler skips it today: for a caller that has just run it itself (the first-start demo
  // runs the daily job while it seeds the project).
  Status MarkJobDoneToday(const std::string& project, const std::string& job);

  // Registers a job before StartScheduler (jobs run in registration order).
  void AddJob(ScheduledJob job);
  void StartScheduler();
  void StopScheduler();

 private:
  OpsService(ProjectRegistry& registry, OpsOptions options);
  void SchedulerLoop();
  // Records the run as started before the job runs (exactly once across crashes); false
  // when the day's run is done.
  bool ClaimRun(const std::string& project, const std::string& job, const std::string& day);
  void MarkRan(const std::string& project, const std::string& job, const std::string& day);

  ProjectRegistry& registry_;
  MetaDb* db_;  // the registry's
  OpsOptions options_;
  std::vector<ScheduledJob> jobs_;
  std::thread scheduler_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::mutex daily_mu_;  // one daily job at a time
};

// "HH:MM" -> minutes since midnight; InvalidArgument otherwise.
StatusOr<int> ParseClock(const std::string& s, const std::string& field);
// Whether minute-of-day m is inside "HH:MM-HH:MM" (which may wrap midnight).
bool InQuietHours(const std::string& range, int m);

}  // namespace ns
