// The operations layer's tables (metadata store migrations). Add a migration at the end;
// never edit one that has shipped. Entities keep their user-facing fields as a JSON
// document (`doc`), validated in C++, with the columns the store filters or joins on
// alongside; the four team templates map onto scenarios, actions, kpis(+snapshots) and
// evaluations.
#include "ops/schema.h"

namespace ns {

const std::vector<Migration>& OpsMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "accounts, scenarios, actions, KPIs, alerts, notifications, evaluations, SOPs, audit log", R"SQL(
CREATE TABLE users(
  id INTEGER PRIMARY KEY, email TEXT NOT NULL UNIQUE, name TEXT NOT NULL DEFAULT '',
  password_hash TEXT NOT NULL, created_at INTEGER NOT NULL, disabled INTEGER NOT NULL DEFAULT 0);
CREATE TABLE memberships(
  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE, project TEXT NOT NULL,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')), PRIMARY KEY(user_id, project));
CREATE TABLE sessions(
  token_hash TEXT PRIMARY KEY, user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
  csrf_token TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL);
CREATE TABLE api_keys(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, key_hash TEXT NOT NULL UNIQUE,
  role TEXT NOT NULL CHECK (role IN ('admin','operator','viewer')), created_at INTEGER NOT NULL,
  revoked INTEGER NOT NULL DEFAULT 0);
CREATE TABLE audit_log(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, at INTEGER NOT NULL, actor TEXT NOT NULL,
  action TEXT NOT NULL, entity TEXT NOT NULL, entity_id INTEGER, before_json TEXT, after_json TEXT);
CREATE INDEX audit_log_project ON audit_log(project, at);
CREATE TABLE scenarios(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, doc TEXT NOT NULL,
  created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX scenarios_project ON scenarios(project);
CREATE TABLE actions(
  id INTEGER PRIMARY KEY, scenario_id INTEGER NOT NULL REFERENCES scenarios(id) ON DELETE CASCADE,
  doc TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX actions_scenario ON actions(scenario_id);
CREATE TABLE kpis(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, scenario_id INTEGER REFERENCES scenarios(id) ON DELETE SET NULL,
  doc TEXT NOT NULL, state TEXT, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE INDEX kpis_project ON kpis(project);
CREATE TABLE kpi_snapshots(
  id INTEGER PRIMARY KEY, kpi_id INTEGER NOT NULL REFERENCES kpis(id) ON DELETE CASCADE,
  taken_at INTEGER NOT NULL, as_of TEXT NOT NULL, period_from TEXT NOT NULL, period_to TEXT NOT NULL,
  actual REAL, target REAL, achievement_rate REAL, light TEXT, detail TEXT NOT NULL);
CREATE INDEX kpi_snapshots_kpi ON kpi_snapshots(kpi_id, taken_at);
CREATE TABLE alert_rules(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, kpi_id INTEGER NOT NULL REFERENCES kpis(id) ON DELETE CASCADE,
  doc TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE alerts(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, rule_id INTEGER NOT NULL REFERENCES alert_rules(id) ON DELETE CASCADE,
  kpi_id INTEGER NOT NULL, state TEXT NOT NULL CHECK (state IN ('firing','acknowledged','resolved')),
  fired_at INTEGER NOT NULL, last_seen_at INTEGER NOT NULL, acked_at INTEGER, acked_by TEXT, resolved_at INTEGER,
  message TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX alerts_rule ON alerts(rule_id, state);
CREATE TABLE notification_channels(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL, url TEXT NOT NULL,
  secret TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL);
CREATE TABLE deliveries(
  id INTEGER PRIMARY KEY, channel_id INTEGER NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
  at INTEGER NOT NULL, subject TEXT NOT NULL, ok INTEGER NOT NULL, attempts INTEGER NOT NULL,
  http_status INTEGER NOT NULL, error TEXT NOT NULL DEFAULT '');
CREATE TABLE evaluations(
  id INTEGER PRIMARY KEY, scenario_id INTEGER NOT NULL UNIQUE REFERENCES scenarios(id) ON DELETE CASCADE,
  doc TEXT NOT NULL, created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL);
CREATE TABLE sops(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE project_settings(
  project TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, PRIMARY KEY(project, key));
CREATE TABLE job_runs(
  project TEXT NOT NULL, job TEXT NOT NULL, run_key TEXT NOT NULL, at INTEGER NOT NULL,
  PRIMARY KEY(project, job, run_key));
)SQL"},
      // Exactly-once sends and jobs across crashes (docs/notifications.md, "Delivery
      // guarantees"): a message is written to the outbox (in the transaction of the change
      // that causes it) before it is sent; a job claims its run before it starts.
      {2, "notification outbox; job runs claimed before they start", R"SQL(
CREATE TABLE outbox(
  id INTEGER PRIMARY KEY, project TEXT NOT NULL,
  channel_id INTEGER NOT NULL REFERENCES notification_channels(id) ON DELETE CASCADE,
  dedup_key TEXT NOT NULL, message TEXT NOT NULL, state TEXT NOT NULL, created_at INTEGER NOT NULL,
  done_at INTEGER, UNIQUE(channel_id, dedup_key));
CREATE INDEX outbox_pending ON outbox(state) WHERE state = 'pending';
ALTER TABLE job_runs ADD COLUMN state TEXT NOT NULL DEFAULT 'done';
)SQL"},
  };
  return kMigrations;
}

}  // namespace ns
