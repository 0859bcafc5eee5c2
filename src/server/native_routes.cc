// Native API routes (events are a row of the collection protocols, collect_routes.cc): queries, drop-off lists, project
// info, health and metrics.
#include <spdlog/spdlog.h>

#include "core/csv_text.h"
#include "core/time_zone.h"
#include "query/cohort_source.h"
#include "query/operators.h"
#include "query/person_facts.h"
#include "query/properties.h"
#include "server/server_context.h"
#include "storage/column_cache.h"

namespace ns {

using nlohmann::json;

namespace {

void HandleQuery(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  auto project = ctx.ProjectOf(req);
  if (!project.ok()) return res.Error(project.status());
  auto q = ParseJsonBody(req.body);
  if (!q.ok()) return res.Error(q.status());
  ctx.metrics.Add("northstar_queries_total", {});
  Deadline deadline = ctx.QueryDeadline(req);
  QueryOptions options{&deadline};
  std::unique_ptr<CohortSource> cohorts;
  PeopleSettings settings;
  if (ctx.people) {
    cohorts = ctx.people->Source((*project)->info.name);
    auto s = ctx.people->Settings((*project)->info.name);
    if (!s.ok()) return res.Error(s.status());
    settings = *s;
    options.cohorts = cohorts.get();
    options.people = &settings;
  }
  std::unique_ptr<SpendSource> spend;
  if (ctx.spend) {
    spend = ctx.spend->Source((*project)->info.name);
    options.spend = spend.get();
  }
  auto out = RunQuery(*q, *(*project)->store, (*project)->tz, options);
  if (!out.ok()) {
    ctx.metrics.Add("northstar_query_errors_total", {});
    if (out.status().code() == StatusCode::kDeadlineExceeded) ctx.metrics.Add("northstar_queries_stopped_total", {});
    return res.Error(out.status());
  }
  res.Json(200, *out);
}

// Funnel persons of one step as CSV: {"query": {...funnel...}, "step": k, "persons":
// "dropped" (default: reached step k-1, not k) or "converted" (reached step k)}.
void HandleDropoffs(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  auto project = ctx.ProjectOf(req);
  if (!project.ok()) return res.Error(project.status());
  auto parsed = ParseJsonBody(req.body);
  if (!parsed.ok()) return res.Error(parsed.status());
  json& body = *parsed;
  if (!body.is_object() || !body.contains("query") || !body["query"].is_object())
    return res.Error(InvalidArgument("query: required funnel query object is missing", "query"));
  std::string which = "dropped";
  if (body.contains("persons")) {
    if (!body["persons"].is_string() || (body["persons"] != "dropped" && body["persons"] != "converted"))
      return res.Error(InvalidArgument("persons: expected \"dropped\" or \"converted\"", "persons"));
    which = body["persons"].get<std::string>();
  }
  const bool converted = which == "converted";
  json q = body["query"];
  q["kind"] = "funnel";
  q["dropoff_limit"] = 0;
  if (converted) q["converted_limit"] = 0;
  const int first = converted ? 0 : 1;
  if (!body.contains("step") || !body["step"].is_number_integer())
    return res.Error(InvalidArgument(
        std::string("step: expected the index of a funnel step (") + (converted ? "0" : "1") + " or more)", "step"));
  int step = body["step"].get<int>();
  Deadline deadline = ctx.QueryDeadline(req);
  auto out = RunQuery(q, *(*project)->store, (*project)->tz, &deadline);
  if (!out.ok()) return res.Error(out.status());
  auto& steps = (*out)["steps"];
  if (step < first || step >= static_cast<int>(steps.size()))
    return res.Error(InvalidArgument(
        "step: must be between " + std::to_string(first) + " and " + std::to_string(steps.size() - 1), "step"));
  const json& ids = converted ? steps[static_cast<size_t>(step)]["converted_persons"]
                              : steps[static_cast<size_t>(step)]["dropoff"]["persons"];
  std::string csv = "distinct_id\n";
  for (const auto& id : ids) csv += CsvCell(id.get<std::string>()) + "\n";
  res.SetHeader("Content-Disposition", "attachment; filename=\"" + std::string(converted ? "converted" : "dropoffs") +
                                           "-step" + std::to_string(step) + ".csv\"");
  res.Text(200, std::move(csv), "text/csv; charset=utf-8");
}

void HandleProject(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  auto project = ctx.ProjectOf(req);
  if (!project.ok()) return res.Error(project.status());
  Project& p = **project;
  StoreStats s = p.store->Stats();
  json out{{"name", p.info.name},
           {"timezone", p.info.timezone},
           {"write_key", p.info.write_key},
           {"earliest_event_date", FormatDate(static_cast<int32_t>(p.earliest_event_ms.load() / 86'400'000))},
           {"stats",
            {{"segments", s.segments},
             {"segment_rows", s.segment_rows},
             {"segment_bytes", s.segment_bytes},
             {"memtable_rows", s.memtable_rows},
             {"persons", s.persons},
             {"distinct_ids", s.distinct_ids},
             {"events", s.segment_rows + s.memtable_rows}}}};
  json names = json::array();
  for (const auto& n : p.store->EventNames()) names.push_back(n);
  out["event_names"] = names;
  res.Json(200, out);
}

// Property names, types and common values for pickers: ?event=NAME&top=10.
void HandleProperties(ServerContext& ctx, const HttpRequest& req, HttpResponse& res) {
  auto project = ctx.ProjectOf(req);
  if (!project.ok()) return res.Error(project.status());
  PropertyListOptions o;
  if (req.HasParam("event")) {
    o.event = req.Param("event");
    if (o.event->empty()) return res.Error(InvalidArgument("event: expected an event name", "event"));
  }
  if (req.HasParam("top")) {
    const std::string t = req.Param("top");
    char* end = nullptr;
    long v = std::strtol(t.c_str(), &end, 10);
    if (t.empty() || *end != '\0' || v < 0 || v > 50)
      return res.Error(InvalidArgument("top: expected a number of values from 0 to 50, got '" + t + "'", "top"));
    o.top_values = static_cast<size_t>(v);
  }
  auto snap = (*project)->store->Snapshot();
  auto out = ListProperties(*snap, o);
  if (out.ok()) {
    if (Status st = CheckBlocks(*snap); !st.ok()) out = st;
  }
  if (!out.ok()) return res.Error(out.status());
  res.Json(200, *out);
}

// The decoded-column cache of the process (storage/column_cache.h), in Prometheus text.
std::string ColumnCacheMetrics() {
  const ColumnCacheStats s = ColumnCache::Global().Stats();
  std::string out;
  auto add = [&](const char* name, const char* type, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" + name + " " +
           std::to_string(v) + "\n";
  };
  add("northstar_column_cache_budget_bytes", "gauge", "Memory budget of decoded segment columns (0 = unlimited).",
      s.budget_bytes);
  add("northstar_column_cache_bytes", "gauge", "Decoded segment columns held in memory.", s.resident_bytes);
  add("northstar_column_cache_columns", "gauge", "Decoded segment columns held in memory (count).", s.resident_columns);
  add("northstar_column_cache_hits_total", "counter", "A query's first use of a column that was in memory.", s.hits);
  add("northstar_column_cache_misses_total", "counter", "Columns decoded from segment files.", s.misses);
  add("northstar_column_cache_evictions_total", "counter", "Columns freed to stay within the budget.", s.evictions);
  return out;
}

}  // namespace

std::vector<Route> NativeRoutes(ServerContext& ctx) {
  auto& m = ctx.metrics;
  m.Describe("northstar_events_accepted_total", "counter", "Events stored, by protocol.");
  m.Describe("northstar_events_duplicate_total", "counter", "Events that were retries of stored events, by protocol.");
  m.Describe("northstar_events_rejected_total", "counter", "Events rejected, by protocol and reason.");
  m.Describe("northstar_requests_rejected_total", "counter", "Whole requests rejected, by protocol and reason.");
  m.Describe("northstar_http_requests_total", "counter", "Ingest requests received, by protocol.");
  m.Describe("northstar_queries_total", "counter", "Queries run.");
  m.Describe("northstar_query_errors_total", "counter", "Queries that failed.");
  for (const char* name : {"northstar_events_accepted_total", "northstar_events_duplicate_total"})
    m.Add(name, {{"protocol", "native"}}, 0);
  m.Add("northstar_events_rejected_total", {{"protocol", "native"}, {"reason", "invalid_event"}}, 0);
  m.Add("northstar_queries_total", {}, 0);
  m.Add("northstar_query_errors_total", {}, 0);

  ServerContext* c = &ctx;
  auto on = [c](void (*h)(ServerContext&, const HttpRequest&, HttpResponse&)) {
    return [c, h](const HttpRequest& q, HttpResponse& r) { h(*c, q, r); };
  };
  return {
      {"GET", "/healthz",
       [](const HttpRequest&, HttpResponse& res) {
         res.Json(200, json{{"status", "ok"}});
       }},
      {"POST", "/api/v1/query", on(HandleQuery), Access::kViewer},
      {"POST", "/api/v1/query/dropoffs.csv", on(HandleDropoffs), Access::kViewer},
      {"GET", "/api/v1/project", on(HandleProject), Access::kViewer},
      {"GET", "/api/v1/properties", on(HandleProperties), Access::kViewer},
      {"GET", "/metrics",
       [c](const HttpRequest&, HttpResponse& r) {
         r.Text(200, c->metrics.Render() + ColumnCacheMetrics(), "text/plain; version=0.0.4");
       }},
  };
}

}  // namespace ns
