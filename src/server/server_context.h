// What route handlers share: the project registry, the server options, the metrics and the
// authenticator. One ServerContext per running server.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "auth/authenticator.h"
#include "core/deadline.h"
#include "core/status.h"
#include "ingest/native_parser.h"
#include "meta/project_registry.h"
#include "people/people_service.h"
#include "people/spend_store.h"
#include "server/auth.h"
#include "server/http_types.h"
#include "server/rate_limiter.h"

namespace ns {

class ModelsService;  // models/models_service.h

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;  // 0 = pick a free port
  IngestLimits limits;
  int threads = 32;  // request workers; ingest requests block on group commit
  // Connections. An idle keep-alive connection, or one still sending its request head, holds
  // no worker: it waits in the connection poller (http_server.cc) until its head is complete.
  int max_connections = 4096;             // open connections in all; more are answered 503 and closed
  int max_connections_per_address = 256;  // per client IP address
  int header_timeout_s = 10;              // the whole request head must arrive within this
  int body_timeout_s = 60;                // the whole body must arrive within this
  int idle_timeout_s = 30;                // an idle keep-alive connection is closed after this
  // Per-key ingest rate limit (token bucket): sustained events per second and burst;
  // 0 = unlimited.
  double rate_limit_events_per_s = 0;
  double rate_limit_burst = 0;
  // Sensors Data: its project name (?project=NAME) -> Northstar project, for SDKs that send
  // no token. Empty: the token query parameter (a write key) is required.
  std::map<std::string, std::string> sensors_projects;
  // Longest a query may run (ms; 0 = no limit); it also stops when its client disconnects.
  int64_t query_timeout_ms = 120'000;
};

// Prometheus-style labelled counters ("/metrics"). Thread-safe.
class Metrics {
 public:
  // Adds n to the counter `name` with the labels, e.g.
  // Add("northstar_events_total", {{"protocol","segment"},{"outcome","accepted"}}, 10).
  void Add(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels, uint64_t n = 1);
  // Help text and type for a metric name (shown once in the exposition).
  void Describe(const std::string& name, const std::string& type, const std::string& help);
  // The text exposition format (version 0.0.4).
  std::string Render() const;
  uint64_t Get(const std::string& name, const std::vector<std::pair<std::string, std::string>>& labels) const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> meta_;  // name -> (type, help)
  std::map<std::string, std::map<std::string, uint64_t>> series_;    // name -> label text -> value
};

struct ServerContext {
  ProjectRegistry& registry;
  ServerOptions opt;
  Metrics metrics;
  RateLimiter rate_limiter;
  Authenticator auth;               // used by the middleware (server/auth.h) and the collection routes
  PeopleService* people = nullptr;  // cohorts for queries' cohort filters; null: refused
  SpendStore* spend = nullptr;      // advertising spend for the channels query; null: none
  ModelsService* models = nullptr;  // the person API's "churn" (docs/models.md); null: none

  // `accounts` may be null: project keys only (no users, sessions or role keys).
  ServerContext(ProjectRegistry& r, ServerOptions o, Accounts* accounts)
      : registry(r),
        opt(std::move(o)),
        rate_limiter(opt.rate_limit_events_per_s, opt.rate_limit_burst),
        auth(r, accounts) {}

  // The project of the request's principal (on routes whose access is not kPublic).
  StatusOr<Project*> ProjectOf(const HttpRequest& req);
  // The deadline of a query asked by `req`: the server's query timeout, and the request's
  // connection closing.
  Deadline QueryDeadline(const HttpRequest& req) const;
  // The principal of a key a collection protocol found (in the body, the query, Basic auth):
  // the project's write key or secret key, as Access::kIngest.
  StatusOr<Principal> IngestKey(const std::string& key);
};

// Route lists of the subsystems (each in its own file).
std::vector<Route> NativeRoutes(ServerContext& ctx);  // native_routes.cc

}  // namespace ns
