// The registry of query kinds. A kind is one operator file that defines a QueryKind and one
// line in query_kinds.cc that lists it (as DuckDB's function list and ClickHouse's
// registerAggregateFunctions do); RunQuery, the HTTP route, the CLI and the KPI layer find
// kinds here, so no caller keeps its own chain of kind names.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/deadline.h"
#include "core/status.h"
#include "core/time_zone.h"
#include "query/query_spec.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

// Resolves a person id to a distinct id to show users (drop-off lists).
using PersonNamer = std::function<std::string(uint32_t person)>;

class CohortSource;     // query/cohort_source.h
struct PeopleSettings;  // query/person_facts.h
class SpendSource;      // query/spend_source.h

// What an operator runs against: one consistent snapshot of the store.
struct QueryContext {
  const StoreSnapshot& snap;
  const TimeZone& tz;
  PersonNamer namer;
  const Deadline* deadline = nullptr;      // null: no limit
  const CohortSource* cohorts = nullptr;   // null: cohort filters are refused
  const PeopleSettings* people = nullptr;  // the project's person-model settings; null: defaults
  const SpendSource* spend = nullptr;      // advertising spend (channels); null: no spend
  std::function<int64_t(std::string_view distinct_id)> find_distinct_id =
      nullptr;  // its did, or -1 (clv's distinct_ids)

  // Binds the cohort filters among `filters` to their members under snap.
  Status BindCohorts(std::vector<Filter>& filters) const;
  const PeopleSettings& people_settings() const;
};

// What a caller may give a query besides the request.
struct QueryOptions {
  const Deadline* deadline = nullptr;
  const CohortSource* cohorts = nullptr;
  const PeopleSettings* people = nullptr;
  const SpendSource* spend = nullptr;
};

// An answer as a table: the first row is the header. Cells are JSON values (numbers stay
// numbers) for the CLI's text table and for exports.
using ResultTable = std::vector<std::vector<nlohmann::json>>;

struct QueryKind {
  std::string_view name;                  // the request's "kind"
  std::vector<std::string_view> aliases;  // other accepted spellings ("funnels")
  // Parses and validates the request (its "kind" already matched), runs it and answers the
  // response JSON of docs/queries.md. Errors name the offending field.
  std::function<StatusOr<nlohmann::json>(const nlohmann::json& request, const QueryContext& ctx)> run;
  // Parses and validates the request without running it (saved queries, KPI definitions).
  std::function<Status(const nlohmann::json& request)> check;
  // The response as a table (the CLI's `northstar query`).
  std::function<ResultTable(const nlohmann::json& response)> table;
};

// The registered kinds, in registration order.
const std::vector<const QueryKind*>& QueryKinds();
// The kind named `name` (or one of its aliases), nullptr if none.
const QueryKind* FindQueryKind(std::string_view name);
// The kind of a request: InvalidArgument naming the field "kind" if it is missing, not a
// string or unknown (the message lists the registered kinds).
StatusOr<const QueryKind*> QueryKindOf(const nlohmann::json& request);
// "trends, funnel or retention"
std::string QueryKindList();

// A fresh snapshot of a store and the context over it, for callers that run the typed
// operators (query/operators.h) themselves, such as the KPI layer.
class QueryScope {
 public:
  QueryScope(EventStore& store, const TimeZone& tz, const Deadline* deadline = nullptr);
  QueryScope(EventStore& store, const TimeZone& tz, const QueryOptions& options);
  const QueryContext& ctx() const { return ctx_; }
  // Check once after running operators: a segment column that failed to decode meanwhile
  // (Corruption naming the file and column) voids whatever they computed.
  Status status() const { return CheckBlocks(*snap_); }

 private:
  std::shared_ptr<const StoreSnapshot> snap_;
  QueryContext ctx_;
};

// Parses and runs any query on a fresh snapshot of `store`; adds "took_ms". With a
// deadline, a query cut short answers its DeadlineExceeded, never a partial answer.
StatusOr<nlohmann::json> RunQuery(const nlohmann::json& request, EventStore& store, const TimeZone& tz,
                                  const Deadline* deadline = nullptr);
StatusOr<nlohmann::json> RunQuery(const nlohmann::json& request, EventStore& store, const TimeZone& tz,
                                  const QueryOptions& options);

}  // namespace ns
