// Paths (`"kind":"paths"`, docs/queries.md §Paths): the most common sequences of events after
// a start event, before an end event, or after/before/between the steps of a funnel, as the
// nodes and edges of a Sankey diagram. The request, its parser, the typed answer and the
// operator live here; paths.cc has the semantics in detail and the kind's registration.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "core/deadline.h"
#include "core/status.h"
#include "core/time_zone.h"
#include "query/query_spec.h"
#include "storage/event_store.h"

namespace ns {

// Events whose node is named by their page property (the cleaned URL) instead of their name.
inline constexpr std::string_view kPageViewEvents[] = {"$pageview", "page_view"};

// One cleaning rule: every match of `regex` in a page URL is replaced by `alias`, taken
// literally (no back-references), rules applied in order (PostHog's path cleaning).
struct PathReplacement {
  std::string regex;
  std::string alias;
  std::shared_ptr<const std::regex> compiled;  // ECMAScript syntax
};

enum class FunnelPathMode { kAfter, kBefore, kBetween };

struct PathsQuery {
  // Range of the events that make paths (local days). With a funnel and no dates: from the
  // funnel's date_from to its date_to plus its window.
  int32_t from_day = 0, to_day = 0;
  bool has_dates = false;
  std::string start_event;                  // empty: paths start where sessions start
  std::string end_event;                    // empty: no end event
  int step_limit = 5;                       // 2..10 nodes per path (plus a "..." node with both ends)
  std::vector<std::string> include_events;  // empty: every event
  std::vector<std::string> exclude_events;
  int64_t window_ms = 1'800'000;  // a path ends at a gap longer than this
  size_t edge_limit = 50;         // edges answered, most persons first
  std::string page_property = "$current_url";
  std::vector<PathReplacement> replacements;
  std::vector<Filter> filters;  // every event of a path (event, person and cohort filters)
  std::optional<FunnelQuery> funnel;
  int funnel_step = 0;  // 0-based, as the funnel's "order"
  FunnelPathMode mode = FunnelPathMode::kAfter;
};

struct PathsNode {
  std::string id;  // "<step>_<name>"
  int step = 0;    // 1-based position in the path
  std::string name;
  uint64_t persons = 0;          // distinct persons with a path through the node
  uint64_t paths = 0;            // paths through the node
  uint64_t dropoff_persons = 0;  // distinct persons with a path ending at the node
  uint64_t dropoff_paths = 0;
};

struct PathsEdge {
  std::string source, target;  // node ids; target's step is source's + 1
  uint64_t persons = 0;
  uint64_t paths = 0;
  double average_seconds = 0;  // over the paths through the edge
};

struct PathsResult {
  std::string timezone;
  int32_t date_from = 0, date_to = 0;
  int step_limit = 0;
  int64_t window_seconds = 0;
  size_t edge_limit = 0;
  std::string start_event, end_event;
  std::optional<int> funnel_step;
  FunnelPathMode mode = FunnelPathMode::kAfter;
  uint64_t paths = 0;    // every path counted
  uint64_t persons = 0;  // persons with at least one path
  std::vector<PathsNode> nodes;
  std::vector<PathsEdge> edges;
};

// Validates every field (unknown ones refused; errors name the field, "funnel.steps[1].event"
// inside the funnel) and compiles the cleaning rules.
StatusOr<PathsQuery> ParsePathsQuery(const nlohmann::json& j);
// REQUIRES: q from ParsePathsQuery, its cohort filters bound (QueryContext::BindCohorts).
StatusOr<PathsResult> RunPaths(const PathsQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                               const Deadline* deadline = nullptr);
nlohmann::json ToJson(const PathsResult& r);

}  // namespace ns
