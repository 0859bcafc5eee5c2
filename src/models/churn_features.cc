#include "models/churn_features.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "people/tiers.h"
#include "query/person_models.h"
#include "query/person_scan.h"
#include "query/scan.h"

namespace ns {

const std::array<std::string_view, kChurnFeatureCount>& ChurnFeatureNames() {
  static const std::array<std::string_view, kChurnFeatureCount> kNames = {"recency_days",
                                                                          "tenure_days",
                                                                          "events",
                                                                          "active_days",
                                                                          "active_days_28d",
                                                                          "events_week_1",
                                                                          "events_week_2",
                                                                          "events_week_3",
                                                                          "events_week_4",
                                                                          "activity_trend",
                                                                          "orders",
                                                                          "monetary",
                                                                          "days_since_last_order",
                                                                          "coupon_uses",
                                                                          "rfm_r",
                                                                          "rfm_f",
                                                                          "rfm_m",
                                                                          "tier_value",
                                                                          "tier_activity",
                                                                          "p_alive",
                                                                          "expected_purchases_30d"};
  return kNames;
}

namespace {

// What the person-ordered pass keeps per person.
struct ScanState {
  int32_t last_day = std::numeric_limits<int32_t>::min();
  uint32_t active_days = 0, active_days_28 = 0, coupon_uses = 0;
  std::array<uint32_t, 4> weeks{};
};

}  // namespace

ChurnFeatures BuildChurnFeatures(const QueryContext& ctx, int32_t as_of_day, const ChurnFeatureOptions& options) {
  const StoreSnapshot& snap = ctx.snap;
  const TimeZone& tz = ctx.tz;
  const PeopleSettings& settings = ctx.people_settings();
  const PersonTable& pt = *snap.persons;
  const size_t n = pt.size();
  const int32_t T = as_of_day;
  const int64_t end_ms = AsOfEndMs(tz, T);
  ChurnFeatures out;
  out.as_of_day = T;

  auto facts = GetPersonFacts(snap, tz, settings, T);
  // The population: seen by T, not yet churned by the lifecycle rule.
  for (uint32_t p = 0; p < n && p < facts->size(); p++) {
    if (!facts->Has(p) || !pt.IsPerson(p)) continue;
    if (T - tz.LocalDay(facts->last_ts[p]) >= options.max_recency_days) continue;
    out.persons.push_back(p);
  }
  out.values.assign(out.persons.size() * kChurnFeatureCount, std::nanf(""));
  if (out.persons.empty()) return out;

  // One pass in person order: active days, the last four weeks, coupon uses.
  std::vector<ScanState> st(n);
  const EventMatcher coupon = EventMatcher::Make(settings.coupon_use_event, *snap.events);
  PersonOrderScan scan(snap, std::numeric_limits<int64_t>::min(), end_ms);
  const auto& blocks = scan.blocks();
  ScanPersonGroups<uint8_t>(
      scan, pt, QueryThreads(), nullptr,
      [&](uint32_t b, uint32_t i, uint32_t* person, int64_t* ts, uint8_t* is_coupon) {
        const Block& blk = *blocks[b];
        const int64_t t = blk.ts()[i];
        if (t >= end_ms) return false;
        const uint32_t p = pt.PersonOf(blk.did()[i]);
        if (p >= n) return false;  // newer than the snapshot's person table
        *person = p;
        *ts = t;
        *is_coupon = !coupon.none && !coupon.any && blk.ev()[i] == coupon.code;
        return true;
      },
      [&](int, uint32_t p, int64_t ts, std::vector<uint8_t>& ties) {
        ScanState& s = st[p];
        const int32_t day = tz.LocalDay(ts);
        for (uint8_t c : ties) s.coupon_uses += c;
        if (day != s.last_day) {
          s.active_days++;
          if (T - day < 28) s.active_days_28++;
          s.last_day = day;
        }
        if (T - day >= 0 && T - day < 28)
          s.weeks[static_cast<size_t>((T - day) / 7)] += static_cast<uint32_t>(ties.size());
      },
      ctx.deadline);

  const RfmModel rfm = RfmModel::Build(*facts, tz, RfmScoring{});
  DistinctIdFinder find = ctx.find_distinct_id ? DistinctIdFinder(ctx.find_distinct_id)
                                               : DistinctIdFinder([](std::string_view) -> int64_t { return -1; });
  auto tiers = GetPersonTiers(snap, tz, settings, T, find);
  ClvScores clv;
  if (options.with_clv) clv = ScoreClv(ctx, T, 30);

  size_t ci = 0;  // walks clv.persons (ascending) beside out.persons (ascending)
  for (size_t i = 0; i < out.persons.size(); i++) {
    const uint32_t p = out.persons[i];
    float* row = out.values.data() + i * kChurnFeatureCount;
    const ScanState& s = st[p];
    row[kRecencyDays] = static_cast<float>(T - tz.LocalDay(facts->last_ts[p]));
    row[kTenureDays] = static_cast<float>(T - tz.LocalDay(facts->first_ts[p]));
    row[kEvents] = static_cast<float>(facts->events[p]);
    row[kActiveDays] = static_cast<float>(s.active_days);
    row[kActiveDays28] = static_cast<float>(s.active_days_28);
    double recent = 0, sum = 0;
    for (size_t w = 0; w < 4; w++) {
      row[kEventsWeek1 + static_cast<int>(w)] = static_cast<float>(s.weeks[w]);
      sum += s.weeks[w];
      if (w < 2) recent += s.weeks[w];
    }
    row[kActivityTrend] = sum > 0 ? static_cast<float>((2 * recent - sum) / sum) : 0.0f;
    row[kOrders] = static_cast<float>(facts->orders[p]);
    row[kMonetary] = static_cast<float>(facts->monetary[p]);
    if (facts->Paid(p)) row[kDaysSinceLastOrder] = static_cast<float>(T - tz.LocalDay(facts->last_pay_ts[p]));
    row[kCouponUses] = static_cast<float>(s.coupon_uses);
    if (const RfmPerson* r = rfm.Find(p)) {
      row[kRfmR] = static_cast<float>(r->r);
      row[kRfmF] = static_cast<float>(r->f);
      row[kRfmM] = static_cast<float>(r->m);
    }
    if (int l = tiers->Level(TierDimension::kValue, p); l >= 0) row[kTierValue] = static_cast<float>(l);
    if (int l = tiers->Level(TierDimension::kActivity, p); l >= 0) row[kTierActivity] = static_cast<float>(l);
    while (ci < clv.persons.size() && clv.persons[ci] < p) ci++;
    if (ci < clv.persons.size() && clv.persons[ci] == p) {
      row[kPAlive] = static_cast<float>(clv.p_alive[ci]);
      row[kExpectedPurchases30d] = static_cast<float>(clv.expected_purchases[ci]);
    }
  }
  return out;
}

std::vector<uint8_t> ChurnLabels(const QueryContext& ctx, const std::vector<uint32_t>& persons, int32_t as_of_day,
                                 int horizon_days) {
  // The facts at T + horizon: a last event at or after the end of T lies in the window.
  auto later = GetPersonFacts(ctx.snap, ctx.tz, ctx.people_settings(), as_of_day + horizon_days);
  const int64_t end_ms = AsOfEndMs(ctx.tz, as_of_day);
  std::vector<uint8_t> labels(persons.size(), 1);
  for (size_t i = 0; i < persons.size(); i++) {
    const uint32_t p = persons[i];
    if (later->Has(p) && later->last_ts[p] >= end_ms) labels[i] = 0;
  }
  return labels;
}

}  // namespace ns
