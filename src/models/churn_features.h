// The churn model's per-person features as of a local day T (docs/models.md "Features"),
// and its label: no activity in (T, T + horizon]. Built from one pass over the snapshot's
// rows in person order (ScanPersonGroups: active days, the last four weeks, coupon uses)
// plus the people layer's cached per-person models as of T (facts, RFM, tiers) and the CLV
// models fitted on the payments up to T.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "query/person_facts.h"
#include "query/query_kind.h"

namespace ns {

// The features, in matrix column order. Names are the API's and the docs'.
enum ChurnFeature : int {
  kRecencyDays = 0,     // days from the last event's local day to T
  kTenureDays,          // days from the first event's local day to T
  kEvents,              // events up to T
  kActiveDays,          // distinct local days with an event, up to T
  kActiveDays28,        // ... among the last 28 days (T - 27 .. T)
  kEventsWeek1,         // events on days T - 6 .. T
  kEventsWeek2,         // T - 13 .. T - 7
  kEventsWeek3,         // T - 20 .. T - 14
  kEventsWeek4,         // T - 27 .. T - 21
  kActivityTrend,       // (week1 + week2 - week3 - week4) / (week1 + .. + week4); 0 if none
  kOrders,              // orders up to T (person facts: one per order id)
  kMonetary,            // their amount
  kDaysSinceLastOrder,  // missing (NaN) if never paid
  kCouponUses,          // coupon_use events (people setting coupon_use_event) up to T
  kRfmR,                // RFM quintile scores of payers as of T; missing otherwise
  kRfmF,
  kRfmM,
  kTierValue,             // value tier as of T: 0 high, 1 medium, 2 potential; missing if none
  kTierActivity,          // activity tier: 0 core, 1 ordinary, 2 silent
  kPAlive,                // BG/NBD P(alive) of a customer (payments up to T); missing otherwise
  kExpectedPurchases30d,  // BG/NBD purchases expected in the next 30 days
  kChurnFeatureCount
};

const std::array<std::string_view, kChurnFeatureCount>& ChurnFeatureNames();

struct ChurnFeatureOptions {
  // Who is scored: persons with an event up to T whose last event is fewer than this many
  // days before T (the people setting churn_days: persons already churned by the lifecycle
  // rule are not predicted, they are known).
  int max_recency_days = 90;
  bool with_clv = true;  // fit BG/NBD for kPAlive / kExpectedPurchases30d (else missing)
};

struct ChurnFeatures {
  int32_t as_of_day = 0;
  std::vector<uint32_t> persons;  // ascending person id
  std::vector<float> values;      // row-major: persons.size() x kChurnFeatureCount, NaN = missing
  const float* Row(size_t i) const { return values.data() + i * kChurnFeatureCount; }
};

// The features of the population as of local day `as_of_day` of ctx's snapshot.
ChurnFeatures BuildChurnFeatures(const QueryContext& ctx, int32_t as_of_day, const ChurnFeatureOptions& options);

// Per person of `persons`: 1 if the person has no event in (T, T + horizon_days] (local
// days of ctx.tz), else 0.
std::vector<uint8_t> ChurnLabels(const QueryContext& ctx, const std::vector<uint32_t>& persons, int32_t as_of_day,
                                 int horizon_days);

}  // namespace ns
