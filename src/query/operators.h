// The query operators. Each takes a parsed query and a store snapshot and returns its typed
// result (query/results.h; ToJson makes the response of docs/queries.md). Semantics are documented next to each
// implementation and in docs/queries.md; tests compare every operator with a naive
// reference implementation (tests/unit/query_reference_test.cc). Each operator file also
// defines its QueryKind, listed in query_kinds.cc.
#pragma once

#include <nlohmann/json.hpp>

#include "core/time_zone.h"
#include "query/query_kind.h"
#include "query/query_spec.h"
#include "query/results.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

// With a deadline, an operator stops between blocks once it has expired and answers its
// DeadlineExceeded.
StatusOr<TrendsResult> RunTrends(const TrendsQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                 const Deadline* deadline = nullptr);
// The moment a person first reached a funnel step: ts of the event that completed it on the
// person's earliest attempt to get there (step 0: the first entry in the range). Funnel paths
// (paths.cc) start and end their paths at these moments.
struct FunnelReach {
  uint32_t person;
  uint32_t step;
  int64_t ts;
};
// With `reaches`, also appends every person's first reach of every step, in no particular
// order (with "aggregate_by":"session", every session's). REQUIRES: reaches == nullptr or
// q.order is ordered or strict (unordered funnels have no step times).
StatusOr<FunnelResult> RunFunnel(const FunnelQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                 const PersonNamer& namer, const Deadline* deadline = nullptr,
                                 std::vector<FunnelReach>* reaches = nullptr);
StatusOr<RetentionResult> RunRetention(const RetentionQuery& q, const StoreSnapshot& snap, const TimeZone& tz,
                                       const Deadline* deadline = nullptr);

// Every query kind, one per operator file, registered in query_kinds.cc. (The kinds'
// request and result types live beside their operators: person_models.h, commerce.h, …)
extern const QueryKind kTrendsKind;      // trends.cc
extern const QueryKind kFunnelKind;      // funnel.cc
extern const QueryKind kRetentionKind;   // retention.cc
extern const QueryKind kPathsKind;       // paths.cc
extern const QueryKind kChannelsKind;    // channels.cc
extern const QueryKind kStickinessKind;  // stickiness.cc
extern const QueryKind kRfmKind;         // rfm.cc
extern const QueryKind kLifecycleKind;   // lifecycle.cc
extern const QueryKind kClvKind;         // clv.cc
extern const QueryKind kCommerceKind;    // commerce.cc
extern const QueryKind kLtvKind;         // ltv.cc
extern const QueryKind kReferralKind;    // referral.cc (the graph: query/referral.h)

}  // namespace ns
