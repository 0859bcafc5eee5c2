// The first-start demo: a deterministic e-commerce dataset (GenerateDemo) and the operations
// layer of a team that already works with it (SeedDemoOperations).
//
// GenerateDemo: an e-commerce app's users over the last N days, with the event names of
// DESIGN §3, channels, platforms, cities, anonymous -> registered identity merges and person
// properties, so every query has something to show. It also tells the story the seeded
// scenarios are about: some users never buy; kDemoFeedAudienceDays before the last day a new
// feed-ads audience brings more feed_ads sign-ups, fewer of whom buy (the new-user
// first-order conversion falls below its 20% target, with channel=feed_ads as the root
// cause); kDemoRecallDays before the last day a win-back campaign starts touching customers
// silent for kDemoSilentDays days (`recall_touch`, by SMS, push or WeCom), and about one in
// six of them comes back and pays within a week. Users' activity fades over the three weeks
// before their last day of use, so the churn model has a signal to learn (docs/models.md).
// Referred users' accepts name their inviter and users send invitations (the referral
// kind's graph); the paid channels have daily spend, feed_ads past its stop-loss line once
// the new audience comes (the channels kind).
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/time_zone.h"
#include "query/spend_source.h"
#include "storage/event.h"

namespace ns {

class OpsService;
class PeopleService;

struct DemoOptions {
  int users = 20'000;
  int days = 90;
  uint64_t seed = 42;
  int32_t last_day = 0;  // local civil day of the last day (usually today)
  // Now (Unix ms): events after it are generated but not kept by the caller, and today's
  // advertising spend is the part of the day gone by.
  int64_t now_ms = INT64_MAX;
};

// The story's dates, in days before the last day.
inline constexpr int kDemoFeedAudienceDays = 27;  // the new feed-ads audience starts
inline constexpr int kDemoRecallDays = 23;        // the win-back campaign starts
inline constexpr int kDemoSilentDays = 30;        // a customer this long without activity is lapsed
// Days of KPI history SeedDemoOperations backfills before today.
inline constexpr int kDemoHistoryDays = 28;

// Calls sink with batches of events (in user order) until all are generated.
// Returns the number of events generated. With `spend`, also the paid channels' daily
// advertising spend (for the spend store; the channels kind reads it).
StatusOr<uint64_t> GenerateDemo(const DemoOptions& opt, const TimeZone& tz,
                                const std::function<Status(std::vector<Event>&)>& sink,
                                std::vector<SpendRow>* spend = nullptr);

// The demo accounts besides the first admin (documented in the README; change them).
inline constexpr const char* kDemoOperatorEmail = "operator@northstar.local";
inline constexpr const char* kDemoOperatorPassword = "northstar-operator";
inline constexpr const char* kDemoViewerEmail = "viewer@northstar.local";
inline constexpr const char* kDemoViewerPassword = "northstar-viewer";

// Seeds the operations layer of `project` (just filled by GenerateDemo, last day = today) as
// a team that already uses Northstar: an operator and a viewer account, the two seed
// scenarios (new-user first-order conversion, churned-user recall) with their cohorts,
// actions, KPIs and 4 weeks of daily KPI history, alert rules, and today's daily job, which
// fires the first-order conversion alert with its root cause. Everything goes through the
// service calls of the HTTP routes (validated as user input is), as one metadata
// transaction: on any error nothing is kept. Call it once, on the first start only.
// Returns a summary for the log (ids and counts).
StatusOr<nlohmann::json> SeedDemoOperations(OpsService& ops, PeopleService& people, const std::string& project);

}  // namespace ns
