#include "cli/commands.h"

#include "core/httplib_checked.h"
#include "ops/http_client.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/demo_data.h"
#include "cli/import_bulk.h"
#include "core/cpu_class.h"
#include "core/file_util.h"
#include "ingest/csv_reader.h"
#include "meta/meta_db.h"
#include "meta/project_registry.h"
#include "ops/ops_service.h"
#include "ops/schema.h"
#include "people/people_service.h"
#include "query/operators.h"
#include "query/query_kind.h"
#include "server/collect_routes.h"
#include "server/experiment_analyze_routes.h"
#include "server/experiment_routes.h"
#include "server/flag_routes.h"
#include "server/http_server.h"
#include "server/insight_routes.h"
#include "server/journey_routes.h"
#include "server/model_routes.h"
#include "server/ops_routes.h"
#include "server/people_routes.h"
#include "server/spend_routes.h"
#include "server/static_routes.h"

namespace ns {

using nlohmann::json;

namespace {

int Fail(const Status& st) {
  std::fprintf(stderr, "error: %s\n", st.message().c_str());
  return 1;
}

std::string Thousands(uint64_t v) {
  std::string s = std::to_string(v), out;
  int n = 0;
  for (auto it = s.rbegin(); it != s.rend(); ++it) {
    if (n && n % 3 == 0) out.insert(out.begin(), ',');
    out.insert(out.begin(), *it);
    n++;
  }
  return out;
}

StatusOr<std::unique_ptr<ProjectRegistry>> OpenRegistry(const GlobalOptions& g, bool background) {
  StoreOptions so = g.store;
  so.background = background;
  return ProjectRegistry::Open(g.data, so);
}

// Fills project `name` with demo data through the store's bulk path.
Status FillDemo(Project& p, const DemoOptions& d, std::vector<SpendRow>* spend) {
  const int64_t now = NowMs();
  uint64_t stored = 0;
  auto t0 = std::chrono::steady_clock::now();
  auto sink = [&](std::vector<Event>& batch) -> Status {
    std::vector<Event> keep;
    keep.reserve(batch.size());
    for (auto& e : batch)
      if (e.ts_ms <= now) keep.push_back(std::move(e));
    NS_ASSIGN_OR_RETURN(AppendResult r, p.store->Append(std::move(keep), Durability::kUnlogged));
    stored += r.accepted;
    if (p.store->memtable_rows() >= 1'000'000) NS_RETURN_IF_ERROR(p.store->Flush());
    return Status::OK();
  };
  auto n = GenerateDemo(d, p.tz, sink, spend);
  if (!n.ok()) return n.status();
  NS_RETURN_IF_ERROR(p.store->Flush());
  NS_RETURN_IF_ERROR(p.store->CompactAll());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  spdlog::info("demo data: {} events for {} users over {} days in {:.1f} s", Thousands(stored), d.users, d.days, secs);
  return Status::OK();
}

}  // namespace

// ---------------------------------------------------------------- serve

int RunServe(const GlobalOptions& g, const ServeOptions& o) {
  // SIGINT and SIGTERM are blocked in every thread from the start (threads inherit the mask)
  // and taken by one thread with sigwait once the server is about to listen. A handler that
  // called Stop() lost a signal that came before the accept loop had begun: the server then
  // listened forever (cli_test under load, a SIGTERM right after the listening line). Now a
  // signal that comes during startup waits, and the stopping thread stops the server once
  // its accept loop runs.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  // The flag is range-checked by its parser; a config file's server.bulk_nice is not.
  if (o.bulk_nice != kBulkNiceAuto && (o.bulk_nice < 0 || o.bulk_nice > 19))
    return Fail(InvalidArgument("bulk_nice (--bulk-nice, server.bulk_nice): expected 0-19, got " +
                                std::to_string(o.bulk_nice)));
  // Before any thread starts: the background workers take their class when they start. The
  // default puts queries first only where request workers can switch classes: niced flushes
  // under full-priority collection would only let the memtable grow (docs/decisions.md).
  const int bulk_nice = o.bulk_nice != kBulkNiceAuto ? o.bulk_nice : (CpuClassesAvailable() ? kDefaultBulkNice : 0);
  SetBulkNice(bulk_nice);
  if (o.bulk_nice == kBulkNiceAuto && bulk_nice > 0)
    spdlog::info(
        "event collection and flushes run {} nice levels below queries so that queries come first (--bulk-nice)",
        bulk_nice);
  else if (o.bulk_nice == kBulkNiceAuto)
    spdlog::info(
        "event collection runs at the queries' priority: request workers cannot switch their nice value back "
        "here (needs CAP_SYS_NICE or RLIMIT_NICE, systemd: LimitNICE=+0; --bulk-nice)");
  else if (bulk_nice > 0 && !CpuClassesAvailable())
    spdlog::info(
        "ingest requests run at the queries' priority: switching a request worker's nice value back needs "
        "CAP_SYS_NICE or RLIMIT_NICE (systemd: LimitNICE=+0); background flushes still run {} nice levels below",
        bulk_nice);
  auto reg = OpenRegistry(g, true);
  if (!reg.ok()) return Fail(reg.status());
  ProjectRegistry& registry = **reg;
  const bool fresh_demo = o.demo && registry.List().empty();  // a new data directory: the demo is made
  std::vector<SpendRow> demo_spend;                           // imported once the spend store is open
  if (fresh_demo) {
    spdlog::info("first start: creating project 'demo' with a generated dataset ({} users, {} days)", o.demo_users,
                 o.demo_days);
    auto created = registry.Create("demo", "Asia/Shanghai");
    if (!created.ok()) return Fail(created.status());
    json keys{{"project", "demo"}, {"write_key", created->info.write_key}, {"secret_key", created->secret_key}};
    std::string key_file = g.data + "/demo-keys.json";
    if (Status st = WriteFileAtomic(key_file, keys.dump(2) + "\n"); !st.ok()) return Fail(st);
    ::chmod(key_file.c_str(), 0600);
    auto p = registry.OpenProject("demo");
    if (!p.ok()) return Fail(p.status());
    DemoOptions d;
    d.users = o.demo_users;
    d.days = o.demo_days;
    d.last_day = (*p)->tz.LocalDay(NowMs());
    d.now_ms = NowMs();
    if (Status st = FillDemo(**p, d, &demo_spend); !st.ok()) return Fail(st);
  }
  // Open every project now: WAL replay happens before the server reports ready.
  for (const auto& info : registry.List()) {
    auto p = registry.OpenProject(info.name);
    if (!p.ok()) return Fail(p.status());
    StoreStats s = (*p)->store->Stats();
    spdlog::info("project {}: {} events in {} segments + {} in memory, {} persons", info.name,
                 Thousands(s.segment_rows), s.segments, Thousands(s.memtable_rows), Thousands(s.persons));
  }
  ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.limits = g.limits;
  so.threads = o.threads;
  so.max_connections = o.max_connections;
  so.max_connections_per_address = o.max_connections_per_address;
  so.header_timeout_s = o.header_timeout_s;
  so.body_timeout_s = o.body_timeout_s;
  so.idle_timeout_s = o.idle_timeout_s;
  so.rate_limit_events_per_s = o.rate_limit;
  so.query_timeout_ms = static_cast<int64_t>(o.query_timeout_s * 1000.0 + 0.5);
  if (o.query_timeout_s > 0 && so.query_timeout_ms == 0) so.query_timeout_ms = 1;
  so.rate_limit_burst = o.rate_limit_burst > 0 ? o.rate_limit_burst : 2 * o.rate_limit;
  for (const auto& m : o.sensors_projects) {
    auto eq = m.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == m.size())
      return Fail(InvalidArgument("--sensors-project: expected SA_PROJECT=PROJECT, got '" + m + "'"));
    so.sensors_projects[m.substr(0, eq)] = m.substr(eq + 1);
  }
  // The operations layer: metadata migrations, the first admin account, the scheduler.
  OpsOptions oo;
  oo.snapshot_time = o.snapshot_time;
  auto ops = OpsService::Open(registry, oo);
  if (!ops.ok()) return Fail(ops.status());
  auto admin_password = (*ops)->EnsureAdmin();
  if (!admin_password.ok()) return Fail(admin_password.status());
  if (Status st = (*ops)->GrantAdminsNewProjects(); !st.ok()) return Fail(st);
  // The people layer: cohorts, persons, people settings (docs/people.md).
  auto people = PeopleService::Open(registry);
  if (!people.ok()) return Fail(people.status());
  // Scenarios name cohorts as their key user groups (the demo's do): wired before anything
  // creates one.
  auto scenario_cohorts = ConnectCohortsToScenarios(**people, **ops);
  // Saved insights and dashboards (docs/api.md): KPIs from insights go through the ops layer.
  // Advertising spend for the channels query (docs/api.md "Spend").
  auto spend = SpendStore::Open(registry.meta_db());
  if (!spend.ok()) return Fail(spend.status());
  if (fresh_demo && !demo_spend.empty()) {
    auto imported = (*spend)->Import("demo", demo_spend);
    if (!imported.ok()) return Fail(imported.status());
  }
  // KPIs read the project's cohorts, people settings and spend as the query API does.
  (*ops)->kpis.SetQueryInputs(
      [pe = people->get(), sp = spend->get()](const std::string& project) -> StatusOr<KpiQueryInputs> {
        KpiQueryInputs in;
        NS_ASSIGN_OR_RETURN(PeopleSettings settings, pe->Settings(project));
        in.settings = std::move(settings);
        in.cohorts = pe->Source(project);
        in.spend = sp->Source(project);
        return in;
      });
  auto insights = InsightsService::Open(registry, (*ops)->kpis, people->get());
  if (!insights.ok()) return Fail(insights.status());
  (*insights)->set_spend(spend->get());
  // Experiments (docs/experiments.md): after the operations layer, whose scenarios they link to.
  auto experiments = ExperimentsService::Open(registry);
  if (!experiments.ok()) return Fail(experiments.status());
  // Journeys (docs/automation.md): triggered touches with a holdout.
  auto journeys = JourneyService::Open(registry, **ops, **people);
  if (!journeys.ok()) return Fail(journeys.status());
  // Feature flags (docs/flags.md): cohorts of the people layer as release conditions.
  auto flags = FlagsService::Open(registry, people->get());
  if (!flags.ok()) return Fail(flags.status());
  // An experiment reads a flag's exposures: the flag cannot be deleted under it (409).
  (*flags)->AddReferrers([e = experiments->get()](const std::string& project,
                                                  const std::string& key) -> StatusOr<std::vector<std::string>> {
    NS_ASSIGN_OR_RETURN(nlohmann::json list, e->List(project, std::nullopt));
    std::vector<std::string> names;
    for (const auto& x : list.is_array() ? list : list.value("experiments", nlohmann::json::array()))
      if (x.value("flag_key", "") == key) names.push_back("experiment '" + x.value("name", "") + "'");
    return names;
  });
  // The models layer (docs/models.md): the churn model and the person properties the models
  // compute ($churn_risk, $clv, $p_alive), retrained and rescored by a daily job that runs
  // after the project's snapshot time, like the KPI snapshots.
  auto models = ModelsService::Open(registry, **people);
  if (!models.ok()) return Fail(models.status());
  (*ops)->AddJob(ScheduledJob{"models",
                              [](const ProjectSettings& s, int minute) {
                                auto at = ParseClock(s.snapshot_time, "snapshot_time");
                                return at.ok() && minute >= *at;
                              },
                              [m = models->get()](const std::string& project) { return m->RefreshChurn(project); }});
  bool demo_seeded = false;
  if (fresh_demo) {
    // The team around the demo data: accounts, scenarios, KPIs with history, a fired alert.
    // All or nothing; a failure leaves the events without them and the server still starts.
    auto t0 = std::chrono::steady_clock::now();
    auto seeded = SeedDemoOperations(**ops, **people, "demo");
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (seeded.ok()) {
      demo_seeded = true;
      const json& s = *seeded;
      spdlog::info(
          "demo operations: {} scenarios with {} actions, {} KPIs with {} days of history, {} alert rules, "
          "{} alerts fired, in {:.1f} s",
          s["scenarios"].size(), s["actions"].get<int>(), s["kpis"].size(), s["history_days"].get<int>(),
          s["alert_rules"].size(), s["daily_job"]["alerts_fired"].size(), secs);
    } else {
      spdlog::error("demo operations not created (the events are there): {}", seeded.status().ToString());
    }
  }
  HttpServer server(registry, so, &(*ops)->accounts);
  server.context().people = people->get();
  server.context().spend = spend->get();
  server.context().models = models->get();
  server.AddRoutes(CollectRoutes(server.context()));
  server.AddRoutes(OpsRoutes(server.context(), **ops));
  server.AddRoutes(PeopleRoutes(server.context(), **people));
  server.AddRoutes(SpendRoutes(server.context(), **spend));
  server.AddRoutes(InsightRoutes(server.context(), **insights));
  server.AddRoutes(ExperimentRoutes(server.context(), **experiments));
  server.AddRoutes(ExperimentAnalyzeRoutes(server.context()));
  server.AddRoutes(JourneyRoutes(server.context(), **journeys));
  server.AddRoutes(FlagRoutes(server.context(), **flags));
  server.AddRoutes(ModelRoutes(server.context(), **models));
  // The console last: its GET catch-all answers only what no API route matched.
  std::shared_ptr<const ConsoleAssets> console;
  std::string console_dir = !o.console ? "" : o.console_dir.empty() ? DefaultConsoleDir() : o.console_dir;
  if (!console_dir.empty()) {
    auto loaded = LoadConsoleAssets(console_dir);
    if (!loaded.ok()) return Fail(loaded.status());
    console = std::move(loaded).value();
    spdlog::info("web console: {} files from {}", ConsoleFileCount(*console), console_dir);
  } else if (o.console) {
    spdlog::warn("web console not installed (build it with `make console`, or pass --console-dir DIR)");
  }
  server.AddRoutes(StaticRoutes(console));
  auto port = server.Bind();
  if (!port.ok()) return Fail(port.status());
  std::printf("listening on http://%s:%d\n", o.host.c_str(), *port);
  std::string key_file = g.data + "/demo-keys.json";
  if (o.demo && FileExists(key_file)) {
    auto txt = ReadFile(key_file);
    if (txt.ok()) {
      try {
        json k = json::parse(*txt);
        std::printf("demo project: write key %s\n", k.value("write_key", "").c_str());
        std::printf("              secret key %s   (also in %s)\n", k.value("secret_key", "").c_str(),
                    key_file.c_str());
        std::printf(
            "try: curl -s -H 'Authorization: Bearer %s' -d "
            "'{\"kind\":\"trends\",\"series\":[{\"event\":\"$any\",\"math\":\"dau\"}],"
            "\"date_from\":\"%s\",\"date_to\":\"%s\"}' http://%s:%d/api/v1/query\n",
            k.value("secret_key", "").c_str(),
            FormatDate(TimeZone::Load("Asia/Shanghai")->LocalDay(NowMs()) - 6).c_str(),
            FormatDate(TimeZone::Load("Asia/Shanghai")->LocalDay(NowMs())).c_str(), o.host.c_str(), *port);
      } catch (...) {}
    }
  }
  if (admin_password->has_value()) {
    std::string cred = "email: admin@northstar.local\npassword: " + **admin_password + "\n";
    std::string cred_file = g.data + "/admin-credentials.txt";
    if (WriteFileAtomic(cred_file, cred).ok()) ::chmod(cred_file.c_str(), 0600);
    std::printf("first start: admin account admin@northstar.local, password %s   (also in %s; change it)\n",
                admin_password->value().c_str(), cred_file.c_str());
  }
  if (demo_seeded) {
    std::printf("demo accounts: %s password %s (operator), %s password %s (viewer)   (change them)\n",
                kDemoOperatorEmail, kDemoOperatorPassword, kDemoViewerEmail, kDemoViewerPassword);
    if (o.host != "127.0.0.1" && o.host != "localhost" && o.host != "::1")
      spdlog::warn("the demo accounts have published passwords and the server listens on {}: change them now", o.host);
  }
  // Last, so that it ends what `make run` prints: where to open the console and how to log in.
  if (console) {
    std::string cred_file = g.data + "/admin-credentials.txt";
    std::printf("web console: http://%s:%d/   log in as admin@northstar.local%s\n", o.host.c_str(), *port,
                FileExists(cred_file) ? (" (first password in " + cred_file + ")").c_str() : "");
  }
  SetAllowPrivateAddresses(o.allow_private_webhooks);
  if (o.scheduler) (*ops)->StartScheduler();
  // Not tied to --no-scheduler: it acts only on active journeys, and tests that turn the daily
  // job off still run journeys.
  (*journeys)->Start();
  std::fflush(stdout);
  // SIGINT/SIGTERM stop the server; stores flush on close.
  std::atomic<bool> served{false};
  std::thread stopper([&] {
    int sig = 0;
    sigwait(&stop_signals, &sig);
    // Stop() before the accept loop has started does nothing: wait for it, then stop once
    // (a second stop() while the first one's shutdown runs trips cpp-httplib's assert).
    while (!served.load() && !server.Listening()) std::this_thread::sleep_for(std::chrono::milliseconds(5));
    if (!served.load()) server.Stop();
  });
  server.Serve();
  served = true;
  pthread_kill(stopper.native_handle(), SIGTERM);  // wakes its sigwait if no signal came
  stopper.join();
  (*journeys)->Stop();
  (*ops)->StopScheduler();
  models->reset();  // waits for a training in progress, which reads a store
  spdlog::info("shutting down: flushing event stores");
  registry.CloseAll();
  return 0;
}

// ---------------------------------------------------------------- import

namespace {

class Progress {
 public:
  Progress(uint64_t total_bytes, bool enabled) : total_(total_bytes), on_(enabled && isatty(2)), t0_(Clock::now()) {}
  void Update(uint64_t bytes, uint64_t events, bool final = false) {
    if (!on_) return;
    auto now = Clock::now();
    if (!final && now - last_ < std::chrono::milliseconds(250)) return;
    last_ = now;
    double secs = std::chrono::duration<double>(now - t0_).count();
    double rate = secs > 0 ? static_cast<double>(events) / secs : 0;
    double frac = total_ ? static_cast<double>(bytes) / static_cast<double>(total_) : 0;
    double eta = frac > 0 ? secs / frac - secs : 0;
    int width = 30, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(std::min(filled, width)), '#');
    bar.resize(static_cast<size_t>(width), '.');
    std::fprintf(stderr, "\r[%s] %5.1f%%  %s events  %s ev/s  ETA %d:%02d   ", bar.c_str(), frac * 100,
                 Thousands(events).c_str(), Thousands(static_cast<uint64_t>(rate)).c_str(), static_cast<int>(eta) / 60,
                 static_cast<int>(eta) % 60);
    if (final) std::fprintf(stderr, "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  uint64_t total_;
  bool on_;
  Clock::time_point t0_, last_{};
};

}  // namespace

// A running server that `import` and `query` talk to instead of the data directory.
class ServerClient {
 public:
  static StatusOr<std::unique_ptr<ServerClient>> Connect(const std::string& server, const std::string& key) {
    if (key.empty()) return InvalidArgument("--key: required with --server (the project's secret key)");
    if (server.rfind("http://", 0) != 0 && server.rfind("https://", 0) != 0)
      return InvalidArgument("--server: expected http://HOST:PORT or https://HOST:PORT, got '" + server + "'");
    auto c = std::unique_ptr<ServerClient>(new ServerClient(server, key));
    if (!c->client_.is_valid()) return InvalidArgument("--server: cannot use '" + server + "'");
    c->client_.set_connection_timeout(10, 0);
    c->client_.set_read_timeout(600, 0);
    c->client_.set_write_timeout(600, 0);
    return c;
  }
  StatusOr<json> Call(const std::string& method, const std::string& path, const std::string& body = "") {
    httplib::Headers h{{"Authorization", "Bearer " + key_}};
    auto r = method == "GET" ? client_.Get(path, h) : client_.Post(path, h, body, "application/json");
    if (!r) return Unavailable("--server " + server_ + ": " + httplib::to_string(r.error()));
    json answer = json::parse(r->body, nullptr, false);
    if (r->status == 200 && answer.is_object()) return answer;
    std::string msg = answer.is_object() && answer.contains("error") && answer["error"].is_object()
                          ? answer["error"].value("message", std::string())
                          : r->body.substr(0, 300);
    const std::string what = "the server answered HTTP " + std::to_string(r->status) + ": " + msg;
    switch (r->status) {
      case 400: return InvalidArgument(what);
      case 401: return Unauthenticated(what);
      case 403: return PermissionDenied(what);
      case 404: return NotFound(what);
      default: return Unavailable(what);
    }
  }

 private:
  ServerClient(std::string server, std::string key) : server_(server), key_(std::move(key)), client_(server) {}
  std::string server_, key_;
  httplib::Client client_;
};

// Events as the native JSON of POST /api/v1/events (what the parsers read them from:
// $anon_distinct_id and aliases stay in the properties, so merges are sent along).
json NativeJson(const Event& e) {
  json j{{"event", e.event}, {"distinct_id", e.distinct_id}, {"timestamp", e.ts_ms}};
  if (e.has_uuid) j["uuid"] = e.uuid.ToString();
  json props = json::object();
  for (const auto& p : e.props) props[p.key] = PropValueToJson(p.value);
  for (const auto& m : e.merge_with)  // merges that came from elsewhere than the properties
    if (!props.contains("$anon_distinct_id") && !props.contains("alias")) props["$anon_distinct_id"] = m;
  if (!props.empty()) j["properties"] = std::move(props);
  for (const auto& [field, list] : {std::pair{"$set", &e.person_set}, std::pair{"$set_once", &e.person_set_once}}) {
    if (list->empty()) continue;
    json o = json::object();
    for (const auto& p : *list) o[p.key] = PropValueToJson(p.value);
    j[field] = std::move(o);
  }
  return j;
}

int RunImport(const GlobalOptions& g, const ImportOptions& o) {
  FILE* f = o.file == "-" ? stdin : std::fopen(o.file.c_str(), "rb");
  if (!f) return Fail(ErrnoStatus("open", o.file, errno));
  struct stat st {};
  uint64_t total_bytes = (o.file != "-" && ::stat(o.file.c_str(), &st) == 0) ? static_cast<uint64_t>(st.st_size) : 0;
  std::string format = o.format;
  if (format.empty()) {
    auto ends = [&](const char* suf) {
      std::string s(suf);
      return o.file.size() >= s.size() && o.file.compare(o.file.size() - s.size(), s.size(), s) == 0;
    };
    format = (ends(".ndjson") || ends(".jsonl")) ? "ndjson" : ends(".json") ? "auto-json" : "csv";
  }
  if (format == "auto-json") {
    // .json: a JSON array if the file starts with '[' (or an object with "events"), else NDJSON.
    int c;
    while ((c = std::fgetc(f)) != EOF && std::isspace(c)) {}
    format = c == '[' ? "json" : "ndjson";
    if (c != EOF) std::ungetc(c, f);
    if (format == "json" && f != stdin) std::rewind(f);
  }
  if (format != "csv" && format != "ndjson" && format != "json")
    return Fail(InvalidArgument("--format: expected csv, ndjson or json, got '" + format + "'"));
  if (o.time_unit != "auto" && o.time_unit != "s" && o.time_unit != "ms")
    return Fail(InvalidArgument("--time-unit: expected auto, s or ms, got '" + o.time_unit + "'"));

  // Either the data directory (background flushes: the store writes segments while the next
  // batches are parsed) or a running server that holds it.
  std::unique_ptr<ProjectRegistry> registry;
  std::unique_ptr<ServerClient> server;
  std::string project_name = o.project;
  StatusOr<TimeZone> tz = Status::OK();
  Project* project = nullptr;
  if (!o.server.empty()) {
    auto c = ServerClient::Connect(o.server, o.key);
    if (!c.ok()) return Fail(c.status());
    server = std::move(c).value();
    auto info = server->Call("GET", "/api/v1/project");
    if (!info.ok()) return Fail(info.status());
    const std::string name = info->value("name", "");
    if (!project_name.empty() && project_name != name)
      return Fail(InvalidArgument("--project: the key belongs to project '" + name + "', not '" + project_name + "'"));
    project_name = name;
    tz = TimeZone::Load(info->value("timezone", "UTC"));
  } else {
    if (project_name.empty())
      return Fail(InvalidArgument("--project: required (or send to a running server with --server and --key)"));
    auto reg = OpenRegistry(g, true);
    if (!reg.ok()) return Fail(reg.status());
    registry = std::move(reg).value();
    auto info = registry->Get(project_name);
    if (!info.ok()) return Fail(info.status());
    tz = TimeZone::Load(info->timezone);
    if (!o.dry_run) {
      auto p = registry->OpenProject(project_name);
      if (!p.ok()) {
        if (p.status().code() != StatusCode::kFailedPrecondition) return Fail(p.status());
        return Fail(Status(p.status().code(), p.status().message() +
                                                  "; to import while it runs: northstar import FILE --server "
                                                  "http://127.0.0.1:8080 --key <secret key>"));
      }
      project = *p;
    }
  }
  // The project's earliest_event_date (PATCH /api/v1/settings) replaces the default 2000-01-01.
  IngestLimits limits = g.limits;
  if (registry) {
    limits.min_ts_ms = registry->EarliestEventMs(project_name);
  } else if (server) {
    auto info = server->Call("GET", "/api/v1/project");  // its earliest_event_date
    if (!info.ok()) return Fail(info.status());
    auto day = ParseDate(info->value("earliest_event_date", "2000-01-01"), "earliest_event_date");
    if (!day.ok()) return Fail(day.status());
    limits.min_ts_ms = int64_t{*day} * 86'400'000;
  }
  if (!tz.ok()) return Fail(tz.status());
  const int64_t now = NowMs();
  std::vector<EventError> errors;
  uint64_t error_count = 0, lines = 0;
  std::atomic<uint64_t> accepted{0}, duplicates{0};  // updated by the storing thread
  std::unique_ptr<std::ofstream> errors_out;
  if (!o.errors_file.empty()) errors_out = std::make_unique<std::ofstream>(o.errors_file);
  auto report = [&](size_t line, const std::string& msg) {
    error_count++;
    if (errors.size() < 20) errors.push_back({line, "invalid_event", "", msg});
    if (errors_out) *errors_out << msg << "\n";
  };
  std::vector<Event> batch;
  Status fatal;
  // Batches are stored on a second thread while the next one is parsed (one in flight).
  std::future<Status> in_flight;
  auto wait_in_flight = [&]() -> Status {
    if (!in_flight.valid()) return Status::OK();
    return in_flight.get();
  };
  auto flush_batch = [&]() -> Status {
    if (batch.empty() || o.dry_run) {
      accepted += o.dry_run ? batch.size() : 0;
      batch.clear();
      return Status::OK();
    }
    NS_RETURN_IF_ERROR(wait_in_flight());
    in_flight = std::async(std::launch::async, [&, events = std::move(batch)]() mutable -> Status {
      if (server) {
        // POSTs of at most 2,000 events (well under the server's body limit); each answer
        // means durable. A batch the server refuses whole stops the import.
        for (size_t first = 0; first < events.size(); first += 2000) {
          json arr = json::array();
          for (size_t i = first; i < std::min(events.size(), first + 2000); i++) arr.push_back(NativeJson(events[i]));
          NS_ASSIGN_OR_RETURN(
              json r, server->Call("POST", "/api/v1/events", arr.dump(-1, ' ', false, json::error_handler_t::replace)));
          accepted += r.value("accepted", 0ULL);
          duplicates += r.value("duplicates", 0ULL);
          if (r.contains("errors") && !r["errors"].empty())
            return Internal("the server rejected " + std::to_string(r["errors"].size()) +
                            " events that passed the local checks: " + r["errors"][0].value("message", ""));
        }
        return Status::OK();
      }
      NS_ASSIGN_OR_RETURN(AppendResult r, project->store->Append(std::move(events), Durability::kUnlogged));
      accepted += r.accepted;
      duplicates += r.duplicates;
      // Back-pressure: if background flushes fall behind, flush here rather than grow memory.
      if (project->store->memtable_rows() >= 3 * g.store.flush_rows) NS_RETURN_IF_ERROR(project->store->Flush());
      return Status::OK();
    });
    batch = std::vector<Event>();
    return Status::OK();
  };
  Progress progress(total_bytes, o.progress);
  struct stat file_st {};
  const bool bulk =
      !o.per_event && !server && f != stdin && ::fstat(fileno(f), &file_st) == 0 && S_ISREG(file_st.st_mode);
  auto bulk_request = [&] {
    BulkImportRequest req;
    req.path = o.file;
    req.event_name = o.event_name;
    req.time_unit = o.time_unit;
    req.tz = &*tz;
    req.now_ms = now;
    req.limits = limits;
    req.store = o.dry_run ? nullptr : project->store.get();
    req.report = report;
    if (o.piece_bytes) req.piece_bytes = o.piece_bytes;
    if (o.spill_rows) req.spill_rows = o.spill_rows;
    req.progress = [&](uint64_t bytes, uint64_t events) { progress.Update(bytes, events); };
    return req;
  };
  if (format == "csv") {
    CsvReader csv(f);
    std::vector<std::string> header, row;
    auto h = csv.Next(&header);
    if (!h.ok()) return Fail(h.status());
    if (!*h) return Fail(InvalidArgument(o.file + ": empty file (expected a header row)"));
    std::vector<ColumnMap> cols(header.size());
    std::map<std::string, std::string> explicit_map;
    for (const auto& m : o.maps) {
      auto eq = m.find('=');
      if (eq == std::string::npos || eq == 0) return Fail(InvalidArgument("--map '" + m + "': expected COLUMN=FIELD"));
      explicit_map[m.substr(0, eq)] = m.substr(eq + 1);
    }
    for (const auto& [col, field] : explicit_map)
      if (std::find(header.begin(), header.end(), col) == header.end())
        return Fail(InvalidArgument("--map '" + col + "=" + field + "': the header has no column '" + col + "'"));
    bool has[4] = {false, false, false, false};
    for (size_t i = 0; i < header.size(); i++) {
      auto it = explicit_map.find(header[i]);
      auto t = ParseTarget(it != explicit_map.end() ? it->second : header[i]);
      if (!t.ok()) return Fail(t.status());
      cols[i] = *t;
      if (cols[i].kind >= ColumnMap::kEvent && cols[i].kind <= ColumnMap::kUuid) has[cols[i].kind - 1] = true;
    }
    // Common column names, when nothing is mapped to the field.
    auto alias = [&](ColumnMap::Kind k, std::initializer_list<const char*> names) {
      if (has[k - 1]) return;
      for (const char* n : names)
        for (size_t i = 0; i < header.size(); i++)
          if (header[i] == n && !explicit_map.count(header[i]) && cols[i].kind == ColumnMap::kProperty) {
            cols[i] = ColumnMap{k, ""};
            has[k - 1] = true;
            return;
          }
    };
    alias(ColumnMap::kDistinctId, {"user_id", "userId", "uid", "customer_id", "CustomerID"});
    alias(ColumnMap::kTimestamp, {"ts", "time", "event_time", "created_at"});
    alias(ColumnMap::kEvent, {"event_name", "action"});
    if (!has[0] && o.event_name.empty())
      return Fail(
          InvalidArgument("no column maps to 'event' (name one 'event', use --map COLUMN=event, or give every "
                          "row one name with --event NAME)"));
    if (!has[1])
      return Fail(
          InvalidArgument("no column maps to 'distinct_id' (name one 'distinct_id' or use --map COLUMN=distinct_id)"));
    if (!has[2])
      return Fail(
          InvalidArgument("no column maps to 'timestamp' (name one 'timestamp' or use --map COLUMN=timestamp)"));
    // A file goes through the bulk path (parallel pieces, columns, each day written once);
    // standard input, --server and the hidden --per-event go row by row as Events.
    if (bulk) {
      BulkImportRequest req = bulk_request();
      req.data_offset = csv.bytes();
      req.lines_before = csv.lines_done();
      req.header = header;
      req.cols = cols;
      req.has_event_column = has[0];
      auto r = BulkImportCsv(req);
      if (!r.ok()) return Fail(r.status());
      lines = r->lines;
      accepted = r->accepted;
      duplicates = r->duplicates;
      progress.Update(r->bytes, accepted, true);
    }
    for (; !bulk;) {
      auto more = csv.Next(&row);
      if (!more.ok()) {
        report(csv.line(), more.status().message());
        break;  // an unterminated quote swallows the rest: stop here
      }
      if (!*more) break;
      lines++;
      size_t line = csv.line();
      if (row.size() == 1 && row[0].empty()) continue;  // blank line
      if (row.size() != header.size()) {
        report(line, "line " + std::to_string(line) + ": " + std::to_string(row.size()) + " fields, the header has " +
                         std::to_string(header.size()));
        continue;
      }
      Event e;
      std::string err;
      for (size_t i = 0; i < row.size() && err.empty(); i++) {
        const std::string& v = row[i];
        if (size_t bad = FindInvalidUtf8(v); bad != std::string::npos) {
          err = "column '" + header[i] + "': invalid UTF-8 at byte " + std::to_string(bad) + " of the value";
          break;
        }
        switch (cols[i].kind) {
          case ColumnMap::kSkip: break;
          case ColumnMap::kEvent: e.event = v; break;
          case ColumnMap::kDistinctId: e.distinct_id = v; break;
          case ColumnMap::kUuid:
            if (!v.empty()) {
              e.uuid = Uuid::FromClientId(v);
              e.has_uuid = true;
            }
            break;
          case ColumnMap::kTimestamp: {
            int64_t n;
            auto r = std::from_chars(v.data(), v.data() + v.size(), n);
            if (v.empty())
              err = "column '" + header[i] + "' (timestamp) is empty";
            else if (r.ec == std::errc() && r.ptr == v.data() + v.size()) {
              bool secs = o.time_unit == "s" || (o.time_unit != "ms" && n < 100'000'000'000LL);
              // Seconds beyond ±9.2e15 would overflow when scaled to ms (found by reading the
              // fuzzed CSV path): such values are far outside the accepted range anyway.
              if (secs && (n > 9'000'000'000'000'000LL / 1000 || n < -9'000'000'000'000'000LL / 1000))
                err = "column '" + header[i] + "': timestamp " + v + " is out of range";
              else
                e.ts_ms = secs ? n * 1000 : n;
            } else {
              auto t = ParseIsoTimestamp(v, *tz);
              if (!t.ok())
                err = "column '" + header[i] + "': " + t.status().message();
              else
                e.ts_ms = *t;
            }
            break;
          }
          case ColumnMap::kProperty:
            if (!v.empty()) e.props.push_back({cols[i].name, CsvValue(v)});
            break;
          case ColumnMap::kPersonProperty:
            if (!v.empty()) e.person_set.push_back({cols[i].name, CsvValue(v)});
            break;
        }
      }
      if (e.event.empty() && !has[0]) e.event = o.event_name;
      if (err.empty() && e.event.empty()) err = "the event name is empty";
      if (err.empty() && e.distinct_id.empty()) err = "the distinct id is empty";
      if (err.empty() && Utf8Length(e.event) > limits.max_name_chars)
        err = "the event name is longer than 200 characters";
      if (err.empty()) {
        Status ts_ok = CheckTimestamp(e.ts_ms, now, limits, "timestamp");
        if (!ts_ok.ok()) err = ts_ok.message();
      }
      if (!err.empty()) {
        report(line, "line " + std::to_string(line) + ": " + err);
        continue;
      }
      batch.push_back(std::move(e));
      if (batch.size() >= o.batch) {
        if (fatal = flush_batch(); !fatal.ok()) break;
        progress.Update(csv.bytes(), accepted);
      }
    }
    if (!bulk) {
      if (fatal.ok()) fatal = flush_batch();
      progress.Update(csv.bytes(), accepted, true);
    }
  } else if (format == "json") {
    // A JSON array of events (or {"events": [...]}), read whole: use NDJSON for large files.
    std::string text;
    char chunk[1 << 16];
    size_t got;
    while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) text.append(chunk, got);
    IngestLimits file_limits = limits;
    file_limits.max_body_bytes = std::max<size_t>(text.size(), file_limits.max_body_bytes);
    auto parsed = ParseNativeBatch(text, false, *tz, now, file_limits);
    if (!parsed.ok()) return Fail(Status(parsed.status().code(), o.file + ": " + parsed.status().message()));
    lines = parsed->events.size() + parsed->errors.size();
    for (const auto& e : parsed->errors) report(e.index, e.message);
    for (auto& e : parsed->events) {
      batch.push_back(std::move(e));
      if (batch.size() >= o.batch)
        if (fatal = flush_batch(); !fatal.ok()) break;
    }
    if (fatal.ok()) fatal = flush_batch();
    progress.Update(text.size(), accepted, true);
  } else if (bulk) {
    auto r = BulkImportNdjson(bulk_request());
    if (!r.ok()) return Fail(r.status());
    lines = r->lines;
    accepted = r->accepted;
    duplicates = r->duplicates;
    progress.Update(r->bytes, accepted, true);
  } else {
    std::string text;
    char* buf = nullptr;
    size_t cap = 0;
    ssize_t len;
    uint64_t bytes = 0;
    while ((len = ::getline(&buf, &cap, f)) > 0) {
      lines++;
      bytes += static_cast<uint64_t>(len);
      std::string_view s(buf, static_cast<size_t>(len));
      while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.remove_suffix(1);
      if (s.find_first_not_of(" \t") == std::string_view::npos) continue;
      std::string where = "line " + std::to_string(lines);
      try {
        json j = json::parse(s);
        Event e;
        Status est = EventFromJson(j, where, *tz, now, limits, &e);
        if (!est.ok()) {
          report(lines, est.message());
          continue;
        }
        batch.push_back(std::move(e));
      } catch (const json::parse_error& ex) {
        report(lines, where + ": malformed JSON: " + EscapeInvalidUtf8(ex.what()));
        continue;
      }
      if (batch.size() >= o.batch) {
        if (fatal = flush_batch(); !fatal.ok()) break;
        progress.Update(bytes, accepted);
      }
    }
    std::free(buf);
    if (fatal.ok()) fatal = flush_batch();
    progress.Update(bytes, accepted, true);
  }
  if (f != stdin) std::fclose(f);
  if (Status st = wait_in_flight(); fatal.ok()) fatal = st;
  if (fatal.ok() && project) {
    fatal = project->store->Flush();
    if (fatal.ok()) fatal = project->store->CompactAll();
  }
  if (!fatal.ok()) return Fail(fatal);
  for (const auto& e : errors) std::fprintf(stderr, "  %s\n", e.message.c_str());
  if (error_count > errors.size())
    std::fprintf(stderr, "  ... and %s more errors%s\n", Thousands(error_count - errors.size()).c_str(),
                 o.errors_file.empty() ? " (use --errors-file FILE to keep them all)" : "");
  const char* unit = format == "csv" ? "rows" : format == "json" ? "events" : "lines";
  std::printf("%s %s events from %s %s into project %s (%s duplicates skipped, %s %s rejected)\n",
              o.dry_run ? "would import" : "imported", Thousands(accepted).c_str(), Thousands(lines).c_str(), unit,
              project_name.c_str(), Thousands(duplicates).c_str(), Thousands(error_count).c_str(), unit);
  return error_count ? 2 : 0;
}

// ---------------------------------------------------------------- query

namespace {

std::string Cell(const json& v) {
  if (v.is_null()) return "-";
  if (v.is_number_float()) {
    char buf[64];
    double d = v.get<double>();
    if (std::fabs(d) < 1 && d != 0)
      std::snprintf(buf, sizeof buf, "%.4f", d);  // rates
    else
      std::snprintf(buf, sizeof buf, "%.2f", d);
    std::string t = buf;
    while (t.find('.') != std::string::npos && (t.back() == '0' || t.back() == '.')) {
      bool dot = t.back() == '.';
      t.pop_back();
      if (dot) break;
    }
    return t;
  }
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}

void PrintTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> w;
  for (const auto& r : rows)
    for (size_t i = 0; i < r.size(); i++) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], Utf8Length(r[i]));
    }
  for (size_t ri = 0; ri < rows.size(); ri++) {
    std::string line;
    for (size_t i = 0; i < rows[ri].size(); i++) {
      line += rows[ri][i];
      if (i + 1 < rows[ri].size()) line += std::string(w[i] - Utf8Length(rows[ri][i]) + 2, ' ');
    }
    std::printf("%s\n", line.c_str());
    if (ri == 0) {
      size_t total = 0;
      for (size_t x : w) total += x + 2;
      std::printf("%s\n", std::string(total, '-').c_str());
    }
  }
}

void PrintResult(const json& r) {
  std::vector<std::vector<std::string>> rows;
  if (const QueryKind* kind = FindQueryKind(r.value("kind", "")); kind != nullptr && kind->table)
    for (const auto& row : kind->table(r)) {
      rows.emplace_back();
      for (const json& cell : row) rows.back().push_back(Cell(cell));
    }
  PrintTable(rows);
  if (r.contains("took_ms")) std::printf("(%.1f ms)\n", r["took_ms"].get<double>());
}

}  // namespace

int RunQueryCmd(const GlobalOptions& g, const QueryCmdOptions& o) {
  std::string text;
  if (o.json_file == "-") {
    std::stringstream ss;
    ss << std::cin.rdbuf();
    text = ss.str();
  } else {
    auto t = ReadFile(o.json_file);
    if (!t.ok()) return Fail(t.status());
    text = *t;
  }
  json q;
  try {
    q = json::parse(text);
  } catch (const json::parse_error& e) {
    return Fail(InvalidArgument(o.json_file + ": malformed JSON: " + e.what()));
  }
  std::string format = o.format.empty() ? (isatty(1) ? "table" : "json") : o.format;
  if (format != "table" && format != "json") return Fail(InvalidArgument("--format: expected table or json"));
  StatusOr<json> out = Status::OK();
  if (!o.server.empty()) {
    auto c = ServerClient::Connect(o.server, o.key);
    if (!c.ok()) return Fail(c.status());
    out = (*c)->Call("POST", "/api/v1/query", q.dump());
  } else {
    if (o.project.empty())
      return Fail(InvalidArgument("--project: required (or ask a running server with --server and --key)"));
    // A running server holds the data directory: say how to ask it instead.
    auto with_hint = [](const Status& st) {
      if (st.code() != StatusCode::kFailedPrecondition) return st;
      return Status(st.code(), st.message() +
                                   "; to query it while it runs: northstar query --server "
                                   "http://127.0.0.1:8080 --key <secret key> --json ...");
    };
    auto reg = OpenRegistry(g, false);
    if (!reg.ok()) return Fail(with_hint(reg.status()));
    auto p = (*reg)->OpenProject(o.project);
    if (!p.ok()) return Fail(with_hint(p.status()));
    out = RunQuery(q, *(*p)->store, (*p)->tz);
  }
  if (!out.ok()) return Fail(out.status());
  if (format == "json")
    std::printf("%s\n", out->dump().c_str());
  else
    PrintResult(*out);
  return 0;
}

// ---------------------------------------------------------------- demo

int RunDemo(const GlobalOptions& g, const DemoCmdOptions& o) {
  auto reg = OpenRegistry(g, false);
  if (!reg.ok()) return Fail(reg.status());
  if (!(*reg)->Get(o.project).ok()) {
    auto c = (*reg)->Create(o.project, o.timezone);
    if (!c.ok()) return Fail(c.status());
    std::printf("created project %s\nwrite key  %s\nsecret key %s\n", o.project.c_str(), c->info.write_key.c_str(),
                c->secret_key.c_str());
  }
  auto p = (*reg)->OpenProject(o.project);
  if (!p.ok()) return Fail(p.status());
  if (StoreStats st = (*p)->store->Stats(); st.segment_rows + st.memtable_rows > 0)
    return Fail(FailedPrecondition("project " + o.project + " already holds " +
                                   Thousands(st.segment_rows + st.memtable_rows) +
                                   " events; demo data goes into a new or empty project (use --project NAME)"));
  DemoOptions d;
  d.users = o.users;
  d.days = o.days;
  d.seed = o.seed;
  d.last_day = (*p)->tz.LocalDay(NowMs());
  d.now_ms = NowMs();
  std::vector<SpendRow> spend;
  if (Status st = FillDemo(**p, d, &spend); !st.ok()) return Fail(st);
  auto spend_store = SpendStore::Open((*reg)->meta_db());
  if (!spend_store.ok()) return Fail(spend_store.status());
  if (auto imported = (*spend_store)->Import(o.project, spend); !imported.ok()) return Fail(imported.status());
  StoreStats s = (*p)->store->Stats();
  std::printf("project %s: %s events, %s persons, %s bytes on disk\n", o.project.c_str(),
              Thousands(s.segment_rows).c_str(), Thousands(s.persons).c_str(), Thousands(s.segment_bytes).c_str());
  return 0;
}

// ---------------------------------------------------------------- check

int RunCheck(const GlobalOptions& g, bool verbose) {
  int problems = 0, warnings = 0;
  auto problem = [&](const std::string& m) {
    problems++;
    std::printf("PROBLEM  %s\n", m.c_str());
  };
  auto warn = [&](const std::string& m) {
    warnings++;
    std::printf("warning  %s\n", m.c_str());
  };
  if (!FileExists(g.data)) {
    std::printf("PROBLEM  data directory %s does not exist\n", g.data.c_str());
    return 1;
  }
  auto projects = ListDir(g.data + "/projects");
  if (!projects.ok()) {
    problem(projects.status().message());
    return 1;
  }
  uint64_t total_rows = 0, total_segments = 0;
  for (const auto& name : *projects) {
    std::string dir = g.data + "/projects/" + name;
    StoreCheckReport r = CheckStoreDirectory(dir);  // the store's own parsers
    for (const auto& p : r.problems) problem(p);
    for (const auto& w : r.warnings) warn(w);
    if (verbose)
      for (const auto& o : r.ok) std::printf("ok       %s\n", o.c_str());
    total_rows += r.rows;
    total_segments += r.segments;
  }
  std::printf("checked %llu segments, %llu events: %d problems, %d warnings\n",
              static_cast<unsigned long long>(total_segments), static_cast<unsigned long long>(total_rows), problems,
              warnings);
  return problems ? 1 : 0;
}

// ---------------------------------------------------------------- compact

int RunCompact(const GlobalOptions& g, const std::string& project) {
  auto reg = OpenRegistry(g, false);
  if (!reg.ok()) return Fail(reg.status());
  std::vector<std::string> names;
  if (!project.empty())
    names.push_back(project);
  else
    for (const auto& info : (*reg)->List()) names.push_back(info.name);
  for (const auto& name : names) {
    auto p = (*reg)->OpenProject(name);
    if (!p.ok()) return Fail(p.status());
    // Flush (memtable and WAL), compaction, then the identity log without erased persons'
    // ids and properties: what erasure needs to be physical.
    Status st = (*p)->store->Flush();
    if (st.ok()) st = (*p)->store->CompactAll();
    if (st.ok()) st = (*p)->store->CompactIdentityLog();
    if (!st.ok()) return Fail(st);
    StoreStats s = (*p)->store->Stats();
    std::printf("project %s: %s segments, %s events\n", name.c_str(), Thousands(s.segments).c_str(),
                Thousands(s.segment_rows).c_str());
  }
  return 0;
}

// ---------------------------------------------------------------- admin

int RunAdmin(const GlobalOptions& g, const AdminOptions& o) {
  auto reg = ProjectRegistry::Open(g.data);
  if (!reg.ok()) return Fail(reg.status());
  if (o.action == "create-project") {
    auto c = (*reg)->Create(o.name, o.timezone);
    if (!c.ok()) return Fail(c.status());
    if (o.format == "json") {
      nlohmann::ordered_json j{
          {"project", c->info.name}, {"write_key", c->info.write_key}, {"secret_key", c->secret_key}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf(
          "created project %s (time zone %s)\nwrite key  %s   (ingest only; safe to ship in apps)\n"
          "secret key %s   (read and admin; shown once, keep it safe)\n",
          c->info.name.c_str(), c->info.timezone.c_str(), c->info.write_key.c_str(), c->secret_key.c_str());
    }
    return 0;
  }
  if (o.action == "list-projects") {
    auto list = (*reg)->List();
    if (o.format == "json") {
      json arr = json::array();
      for (const auto& p : list)
        arr.push_back({{"project", p.name}, {"timezone", p.timezone}, {"write_key", p.write_key}});
      std::printf("%s\n", arr.dump().c_str());
    } else {
      for (const auto& p : list)
        std::printf("%-24s %-20s %s\n", p.name.c_str(), p.timezone.c_str(), p.write_key.c_str());
    }
    return 0;
  }
  if (o.action == "rotate-secret") {
    auto k = (*reg)->RotateSecretKey(o.name);
    if (!k.ok()) return Fail(k.status());
    if (o.format == "json")
      std::printf("%s\n", json{{"project", o.name}, {"secret_key", *k}}.dump().c_str());
    else
      std::printf("new secret key for %s: %s (the old one no longer works)\n", o.name.c_str(), k->c_str());
    return 0;
  }
  return Fail(InvalidArgument("unknown admin action '" + o.action + "'"));
}

}  // namespace ns

namespace ns {

// ---------------------------------------------------------------- backup

// Safe while a server runs: SQLite's backup API copies a consistent snapshot of meta.db
// (WAL mode readers do not block the writer), and segments are immutable files whose
// manifest (name, size, CHECKPOINT generation) says what the event data was.
int RunBackup(const GlobalOptions& g, const BackupOptions& o) {
  if (!FileExists(g.data + "/meta.db"))
    return Fail(NotFound("no metadata database in " + g.data + " (is --data right?)"));
  if (FileExists(o.out)) return Fail(AlreadyExists(o.out + " already exists: choose a new directory for the backup"));
  if (Status st = MakeDirs(o.out); !st.ok()) return Fail(st);
  auto db = MetaDb::Open(g.data + "/meta.db");
  if (!db.ok()) return Fail(db.status());
  const std::map<std::string, int> schema = (*db)->SchemaVersions();
  std::string schema_text;
  for (auto& [subsystem, version] : schema)
    schema_text += (schema_text.empty() ? "" : ", ") + subsystem + " " + std::to_string(version);
  if (Status st = (*db)->Backup(o.out + "/meta.db"); !st.ok()) return Fail(st);
  json manifest{{"format", "northstar-backup 1"},
                {"created_at", FormatIsoUtc(NowMs())},
                {"data_dir", g.data},
                {"schema_versions", schema},
                {"projects", json::array()}};
  uint64_t files = 0, bytes = 0;
  auto names = ListDir(g.data + "/projects");
  if (names.ok()) {
    for (const auto& name : *names) {
      std::string dir = g.data + "/projects/" + name;
      json pj{{"name", name}, {"segments", json::array()}};
      if (auto cp = ReadFile(dir + "/CHECKPOINT"); cp.ok()) pj["checkpoint"] = *cp;
      auto segs = ListDir(dir + "/segments");
      if (segs.ok())
        for (const auto& s : *segs) {
          struct stat st {};
          if (::stat((dir + "/segments/" + s).c_str(), &st) != 0) continue;
          pj["segments"].push_back(
              {{"file", "projects/" + name + "/segments/" + s}, {"bytes", static_cast<uint64_t>(st.st_size)}});
          files++;
          bytes += static_cast<uint64_t>(st.st_size);
        }
      manifest["projects"].push_back(pj);
    }
  }
  if (Status st = WriteFileAtomic(o.out + "/manifest.json", manifest.dump(2) + "\n"); !st.ok()) return Fail(st);
  std::printf("backup written to %s: meta.db (schema %s) and a manifest of %llu segment files (%s bytes)\n",
              o.out.c_str(), schema_text.c_str(), static_cast<unsigned long long>(files), Thousands(bytes).c_str());
  return 0;
}

}  // namespace ns
