// northstar: one binary, sub-commands serve, import, query, demo, check, admin.
// Settings come from (highest first) flags, NORTHSTAR_* environment variables, a TOML
// config file (--config / NORTHSTAR_CONFIG), then defaults. See docs/configuration.md.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <toml++/toml.h>
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <cstring>

#include "cli/commands.h"
#include "storage/column_cache.h"

namespace {

// Finds --config FILE (or NORTHSTAR_CONFIG) before the real parse, so the file can
// provide defaults that flags and environment variables then override.
std::string FindConfig(int argc, char** argv) {
  for (int i = 1; i < argc; i++) {
    if (std::strcmp(argv[i], "--config") == 0 && i + 1 < argc) return argv[i + 1];
    if (std::strncmp(argv[i], "--config=", 9) == 0) return argv[i] + 9;
  }
  const char* env = std::getenv("NORTHSTAR_CONFIG");
  return env ? env : "";
}

template <typename T>
void Set(const toml::table& t, const char* path, T& out) {
  if (auto v = t.at_path(path).value<T>()) out = *v;
}

}  // namespace

int main(int argc, char** argv) {
  // Everything the server writes (events, meta.db with password hashes and channel secrets,
  // key files) is readable by its owner only.
  ::umask(0077);
  auto logger = spdlog::stderr_color_mt("northstar");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%d %H:%M:%S.%e %^%l%$ %v");

  ns::GlobalOptions g;
  ns::ServeOptions serve;
  ns::ImportOptions import;
  ns::QueryCmdOptions query;
  ns::DemoCmdOptions demo;
  ns::AdminOptions admin;
  std::string log_level = "info";
  // Decoded segment columns kept in memory (storage/column_cache.h): a quarter of RAM.
  std::string memory_budget = "25%";
  int64_t flush_rows = static_cast<int64_t>(g.store.flush_rows);
  int64_t max_event = static_cast<int64_t>(g.limits.max_event_bytes),
          max_body = static_cast<int64_t>(g.limits.max_body_bytes);

  std::string config = FindConfig(argc, argv);
  if (!config.empty()) {
    try {
      toml::table t = toml::parse_file(config);
      Set(t, "data", g.data);
      Set(t, "log_level", log_level);
      Set(t, "server.host", serve.host);
      Set(t, "server.port", serve.port);
      Set(t, "server.threads", serve.threads);
      Set(t, "server.max_connections", serve.max_connections);
      Set(t, "server.max_connections_per_address", serve.max_connections_per_address);
      Set(t, "server.header_timeout_s", serve.header_timeout_s);
      Set(t, "server.body_timeout_s", serve.body_timeout_s);
      Set(t, "server.idle_timeout_s", serve.idle_timeout_s);
      Set(t, "ops.allow_private_webhooks", serve.allow_private_webhooks);
      Set(t, "server.console_dir", serve.console_dir);
      Set(t, "server.query_timeout", serve.query_timeout_s);
      Set(t, "server.bulk_nice", serve.bulk_nice);
      Set(t, "ingest.rate_limit", serve.rate_limit);
      Set(t, "ops.snapshot_time", serve.snapshot_time);
      Set(t, "ingest.rate_limit_burst", serve.rate_limit_burst);
      if (auto arr = t.at_path("ingest.sensors_projects").as_array())
        for (const auto& v : *arr)
          if (auto str = v.value<std::string>()) serve.sensors_projects.push_back(*str);
      Set(t, "storage.flush_rows", flush_rows);
      Set(t, "storage.flush_interval_ms", g.store.flush_interval_ms);
      Set(t, "storage.memory_budget", memory_budget);
      if (auto v = t.at_path("storage.memory_budget").value<int64_t>()) memory_budget = std::to_string(*v);
      Set(t, "ingest.max_event_bytes", max_event);
      Set(t, "ingest.max_body_bytes", max_body);
    } catch (const toml::parse_error& e) {
      std::fprintf(stderr, "error: config %s: %s (line %u)\n", config.c_str(), std::string(e.description()).c_str(),
                   e.source().begin.line);
      return 1;
    }
  }

  CLI::App app{"Northstar: self-hosted growth operations (events, funnels, retention, scenarios)", "northstar"};
  app.set_version_flag("--version", "northstar 0.1.0");
  app.require_subcommand(1);
  app.add_option("--config", config, "TOML config file")->envname("NORTHSTAR_CONFIG");
  auto add_common = [&](CLI::App* c) {
    c->add_option("--data", g.data, "data directory")->envname("NORTHSTAR_DATA")->capture_default_str();
    c->add_option("--log-level", log_level, "log level")
        ->envname("NORTHSTAR_LOG_LEVEL")
        ->capture_default_str()
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
    // Accepted after the sub-command too (FindConfig has already read it).
    c->add_option("--config", config, "TOML config file")->envname("NORTHSTAR_CONFIG");
    c->add_option("--memory-budget", memory_budget,
                  "decoded columns kept in memory: 512MiB, 2GiB, 25% of RAM or unlimited (default 25%)")
        ->envname("NORTHSTAR_MEMORY_BUDGET");
  };

  auto* s = app.add_subcommand("serve", "run the HTTP server");
  add_common(s);
  s->add_option("--host", serve.host, "address to listen on")->envname("NORTHSTAR_HOST")->capture_default_str();
  s->add_option("--port", serve.port, "port (0 = any free port)")
      ->envname("NORTHSTAR_PORT")
      ->capture_default_str()
      ->check(CLI::Range(0, 65535));
  s->add_flag("--demo,!--no-demo", serve.demo, "on first start, create project 'demo' with generated data");
  s->add_option("--demo-users", serve.demo_users, "demo dataset users")->check(CLI::Range(1, 10'000'000));
  s->add_option("--demo-days", serve.demo_days, "demo dataset days")->check(CLI::Range(1, 3650));
  s->add_option("--threads", serve.threads, "HTTP worker threads")
      ->envname("NORTHSTAR_THREADS")
      ->check(CLI::Range(1, 1024));
  s->add_option("--max-connections", serve.max_connections, "open connections in all (more are answered 503)")
      ->envname("NORTHSTAR_MAX_CONNECTIONS")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  s->add_option("--max-connections-per-address", serve.max_connections_per_address,
                "open connections per client IP address")
      ->envname("NORTHSTAR_MAX_CONNECTIONS_PER_ADDRESS")
      ->check(CLI::Range(1, 1'000'000))
      ->capture_default_str();
  s->add_option("--header-timeout", serve.header_timeout_s, "seconds for a request's head to arrive (then 408)")
      ->check(CLI::Range(1, 3600))
      ->capture_default_str();
  s->add_option("--body-timeout", serve.body_timeout_s, "seconds for a request's body to arrive")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  s->add_option("--idle-timeout", serve.idle_timeout_s, "seconds before an idle keep-alive connection is closed")
      ->check(CLI::Range(1, 86400))
      ->capture_default_str();
  s->add_option("--flush-rows", flush_rows, "memtable rows that trigger a flush")
      ->envname("NORTHSTAR_FLUSH_ROWS")
      ->check(CLI::Range(int64_t{1}, int64_t{100'000'000}));
  s->add_option("--max-body-bytes", max_body, "largest request body (after decompression)")
      ->envname("NORTHSTAR_MAX_BODY_BYTES")
      ->check(CLI::Range(int64_t{1024}, int64_t{200} << 20));
  s->add_option("--max-event-bytes", max_event, "largest single event")->envname("NORTHSTAR_MAX_EVENT_BYTES");
  s->add_option("--rate-limit", serve.rate_limit, "ingest events per second per key (0 = unlimited)")
      ->envname("NORTHSTAR_RATE_LIMIT")
      ->check(CLI::Range(0.0, 1e9));
  s->add_option("--rate-limit-burst", serve.rate_limit_burst, "rate limit bucket size in events (default 2 s worth)")
      ->check(CLI::Range(0.0, 1e10));
  s->add_option("--snapshot-time", serve.snapshot_time,
                "local time of the daily KPI snapshot, alerts and reminders (HH:MM)")
      ->envname("NORTHSTAR_SNAPSHOT_TIME")
      ->capture_default_str();
  s->add_flag("--allow-private-webhooks", serve.allow_private_webhooks,
              "let notification hooks reach loopback, private and link-local addresses (on-premise receivers)")
      ->envname("NORTHSTAR_ALLOW_PRIVATE_WEBHOOKS");
  s->add_option("--console-dir", serve.console_dir,
                "the built web console to serve at / (default: web/dist beside the binary or here)")
      ->envname("NORTHSTAR_CONSOLE_DIR");
  s->add_option("--query-timeout", serve.query_timeout_s,
                "seconds a query may run before it is stopped with 504 deadline_exceeded (0 = no limit)")
      ->envname("NORTHSTAR_QUERY_TIMEOUT")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  s->add_option("--bulk-nice", serve.bulk_nice,
                "nice value (1-19) of event collection and background flushes, so that queries come first under a "
                "heavy ingest, at the ingest's expense (0 = same priority as queries)")
      ->envname("NORTHSTAR_BULK_NICE")
      ->check(CLI::Range(0, 19))
      ->default_str("3 where request workers may lower their nice value again (root, CAP_SYS_NICE), else 0");
  s->add_flag("--console,!--no-console", serve.console, "serve the web console at / (--no-console: the API only)");
  s->add_flag("--scheduler,!--no-scheduler", serve.scheduler, "run the daily job at --snapshot-time")
      ->capture_default_str();
  s->add_option("--sensors-project", serve.sensors_projects,
                "Sensors Data project name mapped to a Northstar project: SA_NAME=PROJECT (repeatable)");

  auto* im = app.add_subcommand("import", "import events from a CSV or NDJSON file");
  add_common(im);
  im->add_option("file", import.file, "file to import ('-' = stdin)")->required();
  im->add_option("--project,-p", import.project, "project name (with --server: checked against the key's)")
      ->envname("NORTHSTAR_PROJECT");
  im->add_option("--server", import.server,
                 "send the events to a running server instead of opening the data directory (http://HOST:PORT)")
      ->envname("NORTHSTAR_SERVER");
  im->add_option("--key", import.key, "with --server: the project's secret key (nss_...)")->envname("NORTHSTAR_KEY");
  im->add_option("--format", import.format, "csv, ndjson or json (a JSON array); default: by file extension");
  im->add_option("--map", import.maps,
                 "COLUMN=FIELD: field is event, distinct_id, timestamp, uuid, "
                 "properties.NAME, person.NAME or - (skip)");
  im->add_flag("--dry-run", import.dry_run, "validate only, store nothing");
  im->add_option("--time-unit", import.time_unit, "numeric timestamps: auto (seconds if < 1e11), s or ms")
      ->capture_default_str();
  im->add_option("--batch", import.batch, "events per batch")->check(CLI::Range(1, 10'000'000));
  im->add_flag("--progress,!--no-progress", import.progress, "progress bar on a terminal");
  im->add_option("--errors-file", import.errors_file, "write every rejected line's error here");
  im->add_flag("--per-event", import.per_event, "the per-event import path (tests compare it with the bulk path)")
      ->group("");
  im->add_option("--event", import.event_name, "CSV: event name of every row when no column is the event (e.g. pay)");

  auto* q = app.add_subcommand("query", "run a query (JSON as for POST /api/v1/query)");
  add_common(q);
  q->add_option("--project,-p", query.project, "project name (not with --server: the key names it)")
      ->envname("NORTHSTAR_PROJECT");
  q->add_option("--json", query.json_file, "file with the query JSON ('-' = stdin)")->required();
  q->add_option("--server", query.server,
                "ask a running server instead of opening the data directory (http://HOST:PORT)")
      ->envname("NORTHSTAR_SERVER");
  q->add_option("--key", query.key, "with --server: the project's secret key or a role key (nss_...)")
      ->envname("NORTHSTAR_KEY");
  q->add_option("--format", query.format, "table or json (default: table on a terminal)");

  auto* d = app.add_subcommand("demo", "create a project filled with generated demo data");
  add_common(d);
  d->add_option("--project,-p", demo.project, "project name")->capture_default_str();
  d->add_option("--tz", demo.timezone, "time zone of a new project")->capture_default_str();
  d->add_option("--users", demo.users, "users")->check(CLI::Range(1, 10'000'000))->capture_default_str();
  d->add_option("--days", demo.days, "days")->check(CLI::Range(1, 3650))->capture_default_str();
  d->add_option("--seed", demo.seed, "random seed")->capture_default_str();

  bool verbose = false;
  auto* c = app.add_subcommand("check", "verify every checksum and invariant of a data directory");
  add_common(c);
  c->add_flag("--verbose,-v", verbose, "list every file checked");

  std::string compact_project;
  auto* cm = app.add_subcommand(
      "compact", "flush and compact the event stores (server stopped): erased persons' rows leave the files");
  add_common(cm);
  cm->add_option("--project,-p", compact_project, "only this project");

  auto* a = app.add_subcommand("admin", "projects and keys");
  add_common(a);
  a->require_subcommand(1);
  a->fallthrough();  // --data after the action name goes to admin
  auto* cp = a->add_subcommand("create-project", "create a project and print its keys")->fallthrough();
  cp->add_option("name", admin.name, "project name (a-z, 0-9, _ and -)")->required();
  cp->add_option("--tz", admin.timezone, "IANA time zone")->capture_default_str();
  cp->add_option("--format", admin.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  auto* lp = a->add_subcommand("list-projects", "list projects")->fallthrough();
  lp->add_option("--format", admin.format, "text or json")->check(CLI::IsMember({"text", "json"}));
  auto* rs = a->add_subcommand("rotate-secret", "issue a new secret key for a project")->fallthrough();
  rs->add_option("name", admin.name, "project name")->required();
  rs->add_option("--format", admin.format, "text or json")->check(CLI::IsMember({"text", "json"}));

  ns::BackupOptions backup;
  auto* b = app.add_subcommand("backup", "consistent online copy of the metadata and a manifest of the event segments");
  add_common(b);
  b->add_option("--out", backup.out, "directory to create for the backup")->required();

  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));
  if (auto budget = ns::ParseMemoryBudget(memory_budget, "memory_budget"); budget.ok()) {
    ns::ColumnCache::Global().SetBudget(*budget);
  } else {
    std::fprintf(stderr, "error: %s\n", budget.status().message().c_str());
    return 1;
  }
  g.store.flush_rows = static_cast<size_t>(flush_rows);
  g.limits.max_event_bytes = static_cast<size_t>(max_event);
  g.limits.max_body_bytes = static_cast<size_t>(max_body);

  if (s->parsed()) return ns::RunServe(g, serve);
  if (im->parsed()) return ns::RunImport(g, import);
  if (q->parsed()) return ns::RunQueryCmd(g, query);
  if (d->parsed()) return ns::RunDemo(g, demo);
  if (c->parsed()) return ns::RunCheck(g, verbose);
  if (cm->parsed()) return ns::RunCompact(g, compact_project);
  if (b->parsed()) return ns::RunBackup(g, backup);
  if (a->parsed()) {
    admin.action = cp->parsed() ? "create-project" : lp->parsed() ? "list-projects" : "rotate-secret";
    return ns::RunAdmin(g, admin);
  }
  return 0;
}
