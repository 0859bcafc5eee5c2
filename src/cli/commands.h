// The northstar sub-commands. main.cc parses flags (CLI11) into these option structs.
#pragma once

#include <limits>
#include <string>
#include <vector>

#include "ingest/native_parser.h"
#include "storage/event_store.h"

namespace ns {

struct GlobalOptions {
  std::string data = "./data";
  StoreOptions store;
  IngestLimits limits;
};

// ServeOptions::bulk_nice when neither the flag nor the config sets it: core/cpu_class.h's
// kDefaultBulkNice where request workers can switch classes, else 0.
constexpr int kBulkNiceAuto = std::numeric_limits<int>::min();  // no config value can mean it

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;
  bool demo = false;  // create and fill project "demo" when the data directory has no project
  int demo_users = 20'000;
  int demo_days = 90;
  int threads = 32;
  int max_connections = 4096;                 // open connections in all
  int max_connections_per_address = 256;      // per client IP address
  int header_timeout_s = 10;                  // a request head must arrive within this
  int body_timeout_s = 60;                    // a request body must arrive within this
  int idle_timeout_s = 30;                    // idle keep-alive connections are closed after this
  double rate_limit = 0;                      // ingest events/s per key (0 = unlimited)
  double rate_limit_burst = 0;                // bucket size in events (0 = 2 s of rate_limit)
  std::vector<std::string> sensors_projects;  // "SA_PROJECT=northstar_project"
  std::string snapshot_time = "06:00";        // daily KPI snapshot, alerts and reminders (project local time)
  bool scheduler = true;
  bool allow_private_webhooks = false;  // notification hooks may reach loopback/private addresses
  std::string console_dir;              // the built web console (web/dist); empty = DefaultConsoleDir()
  bool console = true;                  // false: serve the API only
  double query_timeout_s = 120;         // longest a query may run (0 = no limit)
  int bulk_nice = kBulkNiceAuto;        // nice of ingest and background work (core/cpu_class.h; 0 = off)
};

struct BackupOptions {
  std::string out;  // directory to create
};

struct ImportOptions {
  std::string file;
  std::string project;
  std::string format;             // csv | ndjson; empty = by extension
  std::vector<std::string> maps;  // "col=field"
  bool dry_run = false;
  std::string time_unit = "auto";  // auto | s | ms for numeric timestamps
  size_t batch = 50'000;
  bool progress = true;
  std::string errors_file;  // write every bad line here
  std::string event_name;   // CSV: event name for every row when no column maps to event
  std::string server;       // http://HOST:PORT: send the events to a running server (POST /api/v1/events)
  std::string key;          // with server: the project's secret key
  bool per_event = false;   // hidden --per-event: Events through Append, not the bulk path (tests)
  size_t piece_bytes = 0;   // bulk path's piece size and pending rows before a write (0: defaults; tests)
  size_t spill_rows = 0;
};

struct QueryCmdOptions {
  std::string project;
  std::string json_file;  // "-" = stdin
  std::string format;     // table | json; empty = table on a TTY
  std::string server;     // http://HOST:PORT: POST /api/v1/query there instead of opening the data
  std::string key;        // with server: a secret or role key
};

struct DemoCmdOptions {
  std::string project = "demo";
  std::string timezone = "Asia/Shanghai";
  int users = 20'000;
  int days = 90;
  uint64_t seed = 42;
};

struct AdminOptions {
  std::string action;  // create-project | list-projects | rotate-secret
  std::string name;
  std::string timezone = "Asia/Shanghai";
  std::string format = "text";
};

int RunServe(const GlobalOptions& g, const ServeOptions& o);
int RunImport(const GlobalOptions& g, const ImportOptions& o);
int RunQueryCmd(const GlobalOptions& g, const QueryCmdOptions& o);
int RunDemo(const GlobalOptions& g, const DemoCmdOptions& o);
int RunCheck(const GlobalOptions& g, bool verbose);
// Flushes and compacts the stores of a stopped server (every project, or one).
int RunCompact(const GlobalOptions& g, const std::string& project);
int RunAdmin(const GlobalOptions& g, const AdminOptions& o);
int RunBackup(const GlobalOptions& g, const BackupOptions& o);

}  // namespace ns
