// The churn model (models/, docs/models.md):
//  - RocAuc and PrecisionAtTopFraction against values computed by hand, ties included;
//  - the feature builder and the labels against a deliberately naive per-person reference
//    written here (plain loops over the events, persons by a union-find, local days from the
//    date library) on 240 random stores: identity merges after the fact, equal timestamps,
//    events a millisecond either side of local midnight (Asia/Shanghai; America/New_York
//    across a DST change on some seeds), retries, segments and memtable blocks, payments
//    with repeated order ids;
//  - the trees: deterministic, SHAP contributions summing to the log-odds, and a model on
//    generated data with a known signal ranking far better than chance;
//  - the whole time split (TrainChurnModel) on a store whose churners fade first.
#include <date/date.h>
#include <date/tz.h>
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <set>

#include "models/boosted_trees.h"
#include "models/churn_features.h"
#include "models/churn_model.h"
#include "people/tiers.h"
#include "people_test_util.h"
#include "query/person_models.h"
#include "query/query_kind.h"
#include "stats/classification.h"

namespace ns {
namespace {

// ---- the metrics, by hand ----

TEST(ChurnMetrics, AucByHand) {
  // Positives 0.9, 0.4; negatives 0.8, 0.3, 0.1: pairs won 0.9>all (3), 0.4>0.3,0.1 (2) = 5 of 6.
  EXPECT_DOUBLE_EQ(stats::RocAuc({0.9, 0.8, 0.4, 0.3, 0.1}, {1, 0, 1, 0, 0}), 5.0 / 6.0);
  // Ties: positive 0.5 vs negatives 0.5 (half) and 0.2 (win); positive 0.7 wins both: (1.5 + 2) / 4.
  EXPECT_DOUBLE_EQ(stats::RocAuc({0.5, 0.7, 0.5, 0.2}, {1, 1, 0, 0}), 3.5 / 4.0);
  // All scores equal: one half.
  EXPECT_DOUBLE_EQ(stats::RocAuc({1, 1, 1, 1}, {1, 0, 1, 0}), 0.5);
  // Perfectly wrong, perfectly right.
  EXPECT_DOUBLE_EQ(stats::RocAuc({0.1, 0.2, 0.8, 0.9}, {1, 1, 0, 0}), 0.0);
  EXPECT_DOUBLE_EQ(stats::RocAuc({0.1, 0.2, 0.8, 0.9}, {0, 0, 1, 1}), 1.0);
  // One class only: undefined.
  EXPECT_TRUE(std::isnan(stats::RocAuc({0.1, 0.2}, {1, 1})));
  EXPECT_TRUE(std::isnan(stats::RocAuc({}, {})));
}

TEST(ChurnMetrics, PrecisionAtTopByHand) {
  // 10 persons, top 10% = 1: the highest is a positive.
  std::vector<double> s = {0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1};
  std::vector<uint8_t> y = {1, 0, 1, 0, 0, 1, 0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(stats::PrecisionAtTopFraction(s, y, 0.1), 1.0);
  // Top 30% = 3: 0.95 (1), 0.9 (0), 0.8 (1) = 2/3.
  EXPECT_DOUBLE_EQ(stats::PrecisionAtTopFraction(s, y, 0.3), 2.0 / 3.0);
  // 15 persons, 10% = ceil(1.5) = 2.
  std::vector<double> s15(15);
  std::vector<uint8_t> y15(15, 0);
  for (int i = 0; i < 15; i++) s15[static_cast<size_t>(i)] = 15 - i;
  y15[1] = 1;
  EXPECT_DOUBLE_EQ(stats::PrecisionAtTopFraction(s15, y15, 0.1), 0.5);
  // Ties at the cut: top 2 of {0.9 (pos), 0.5 (pos), 0.5 (neg), 0.5 (neg), 0.1 ...}: 0.9 is
  // in; one place left for three tied persons holding one positive: 1 + 1/3, over 2.
  std::vector<double> st = {0.9, 0.5, 0.5, 0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1,
                            0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1};
  std::vector<uint8_t> yt(20, 0);
  yt[0] = 1;
  yt[1] = 1;
  EXPECT_DOUBLE_EQ(stats::PrecisionAtTopFraction(st, yt, 0.1), (1 + 1.0 / 3.0) / 2.0);
  // The order of tied persons in the input does not matter.
  std::swap(yt[1], yt[3]);
  EXPECT_DOUBLE_EQ(stats::PrecisionAtTopFraction(st, yt, 0.1), (1 + 1.0 / 3.0) / 2.0);
  EXPECT_TRUE(std::isnan(stats::PrecisionAtTopFraction({}, {}, 0.1)));
}

// ---- the feature builder against a naive reference ----

struct CEvent {
  std::string uuid, did, event;
  int64_t ts = 0;
  std::vector<std::string> merge_with;
  std::optional<double> amount;
  std::optional<std::string> order;
};

struct UnionFind {
  std::map<std::string, std::string> parent;
  std::string Root(std::string d) {
    if (!parent.count(d)) parent[d] = d;
    while (parent[d] != d) d = parent[d];
    return d;
  }
  void Join(const std::string& a0, const std::string& b0) {
    std::string a = Root(a0), b = Root(b0);
    if (a != b) parent[std::max(a, b)] = std::min(a, b);
  }
};

// What the features of one person should be, computed the slow way.
struct NaivePerson {
  int first_day = INT32_MAX, last_day = INT32_MIN;
  uint32_t events = 0, coupon = 0;
  std::set<int> days;
  std::array<uint32_t, 4> weeks{};
};

class ChurnFeaturesReference : public ::testing::TestWithParam<int> {};

TEST_P(ChurnFeaturesReference, MatchesNaive) {
  const int seed = GetParam();
  SeedRandom R(static_cast<uint64_t>(seed) * 7919 + 3);
  const std::string zone_name = seed % 4 == 3 ? "America/New_York" : "Asia/Shanghai";
  const date::time_zone* zone = date::locate_zone(zone_name);
  auto tz = TimeZone::Load(zone_name);
  ASSERT_TRUE(tz.ok());
  PeopleSettings ps;
  const int max_recency = seed % 5 == 4 ? 20 : 90;
  const int day0 = static_cast<int>(date::sys_days{date::year{2025} / 1 / 20}.time_since_epoch().count());
  const int span = 120;
  const int persons = R(2, 25);
  const int nevents = R(30, 300);
  std::vector<CEvent> sent;
  for (int i = 0; i < nevents; i++) {
    CEvent e;
    e.uuid = "c" + std::to_string(seed) + "-" + std::to_string(i);
    const int p = R(1, persons);
    e.did = std::string(R(0, 1) ? "u" : "a") + std::to_string(p);
    const int day = day0 + R(0, span - 1);
    const int tr = R(0, 99);
    if (tr < 60 || sent.empty()) {
      e.ts = LocalMidnight(zone, day) + R(0, 86'399'999);
    } else if (tr < 80) {
      static const int64_t kOff[] = {-1, 0, 1, -1000, 999};
      e.ts = LocalMidnight(zone, day) + kOff[R(0, 4)];
    } else {
      e.ts = sent[static_cast<size_t>(R(0, static_cast<int>(sent.size()) - 1))].ts;
    }
    const int roll = R(0, 99);
    if (roll < 8) {
      e.event = "$identify";
      e.did = "u" + std::to_string(p);
      e.merge_with.push_back("a" + std::to_string(p));
    } else if (roll < 10 && p + 1 <= persons) {
      e.event = "$create_alias";
      e.did = "u" + std::to_string(p);
      e.merge_with.push_back("u" + std::to_string(p + 1));
    } else if (roll < 35) {
      e.event = "pay";
      e.amount = R(0, 400) * 0.5;
      if (R(0, 1)) e.order = "o" + std::to_string(R(1, 5));
    } else if (roll < 45) {
      e.event = "coupon_use";
    } else {
      e.event = R(0, 1) ? "page_view" : "add_to_cart";
    }
    sent.push_back(e);
  }
  std::vector<CEvent> deliveries = sent;
  for (int i = 0; i < nevents / 10; i++) deliveries.push_back(sent[R.rng() % sent.size()]);
  std::shuffle(deliveries.begin(), deliveries.end(), R.rng);

  ThrowAwayStore store(static_cast<size_t>(R(3, 60)));
  ASSERT_TRUE(store.ok());
  std::vector<Event> batch;
  for (const CEvent& r : deliveries) {
    Event e = StoredEvent(r.uuid, r.did, r.event, r.ts, r.merge_with);
    if (r.amount) e.props.push_back({"amount", PropValue::Num(*r.amount)});
    if (r.order) e.props.push_back({"order_id", PropValue::Str(*r.order)});
    batch.push_back(std::move(e));
  }
  AppendInBatches(store, std::move(batch), BatchPolicy{}, R);

  // The naive world: stored events (each uuid once), persons by union-find.
  UnionFind uf;
  std::vector<CEvent> events;
  std::set<std::string> seen;
  for (const CEvent& e : deliveries)
    if (seen.insert(e.uuid).second) events.push_back(e);
  for (const CEvent& e : events) {
    uf.Root(e.did);
    for (const auto& m : e.merge_with) uf.Join(e.did, m);
  }
  std::set<std::string> ids;
  for (auto& [id, par] : uf.parent) ids.insert(id);
  auto snap = (*store).Snapshot();
  std::map<std::string, uint32_t> pid =
      NaivePersonIds(*store, *snap, ids, [&](const std::string& id) { return uf.Root(id); });
  ASSERT_FALSE(::testing::Test::HasFailure());

  QueryOptions qo;
  qo.people = &ps;
  QueryScope scope(*store, *tz, qo);
  const QueryContext& ctx = scope.ctx();

  for (int probe = 0; probe < 3; probe++) {
    const int T = day0 + R(-5, span + 5);
    const int horizon = probe == 2 ? 7 : 30;
    std::map<std::string, NaivePerson> want;
    NaiveFactsBuilder<std::string> pays;
    std::map<std::string, bool> active_after;
    for (const CEvent& e : events) {
      const int day = LocalDay(zone, e.ts);
      const std::string root = uf.Root(e.did);
      if (day > T) {
        if (day <= T + horizon) active_after[root] = true;
        continue;
      }
      NaivePerson& n = want[root];
      n.first_day = std::min(n.first_day, day);
      n.last_day = std::max(n.last_day, day);
      n.events++;
      n.days.insert(day);
      if (e.event == "coupon_use") n.coupon++;
      if (T - day < 28) n.weeks[static_cast<size_t>((T - day) / 7)]++;
      pays.Event(root, e.ts);
      if (e.event == "pay") pays.Payment(root, e.ts, *e.amount, e.order.value_or(""));
    }
    const std::map<std::string, NFacts> facts = pays.Finish();
    // RFM of every payer as of T (quintiles, docs/people.md).
    std::vector<std::string> payers;
    std::vector<std::array<double, 3>> values;
    for (auto& [root, f] : facts)
      if (f.orders > 0) {
        payers.push_back(root);
        values.push_back({double(T - LocalDay(zone, f.last_pay)), double(f.orders), f.monetary});
      }
    const NaiveRfmScores rfm = NaiveQuintileRfm(values);
    std::map<std::string, std::array<int, 3>> rfm_of;
    for (size_t i = 0; i < payers.size(); i++) rfm_of[payers[i]] = rfm.scores[i];

    ChurnFeatureOptions fo;
    fo.max_recency_days = max_recency;
    fo.with_clv = probe == 0;
    ChurnFeatures got = BuildChurnFeatures(ctx, T, fo);
    std::vector<uint8_t> labels = ChurnLabels(ctx, got.persons, T, horizon);
    std::map<uint32_t, size_t> row_of;
    for (size_t i = 0; i < got.persons.size(); i++) row_of[got.persons[i]] = i;
    ASSERT_TRUE(std::is_sorted(got.persons.begin(), got.persons.end()));
    auto tiers = GetPersonTiers(*snap, *tz, ps, T, [&](std::string_view id) { return (*store).FindDistinctId(id); });
    const std::string where = "seed " + std::to_string(seed) + " T " + DayString(T);
    size_t expected_rows = 0;
    auto feq = [&](float got_v, double want_v, const char* name, const std::string& who) {
      if (std::isnan(want_v)) {
        EXPECT_TRUE(std::isnan(got_v)) << where << " " << who << " " << name << " = " << got_v;
      } else {
        EXPECT_FLOAT_EQ(got_v, static_cast<float>(want_v)) << where << " " << who << " " << name;
      }
    };
    for (auto& [root, n] : want) {
      if (T - n.last_day >= max_recency) continue;
      expected_rows++;
      const uint32_t p = pid.at(root);
      auto it = row_of.find(p);
      ASSERT_NE(it, row_of.end()) << where << " person " << root << " not in the population";
      const float* row = got.Row(it->second);
      const double nan = std::nan("");
      feq(row[kRecencyDays], T - n.last_day, "recency", root);
      feq(row[kTenureDays], T - n.first_day, "tenure", root);
      feq(row[kEvents], n.events, "events", root);
      feq(row[kActiveDays], static_cast<double>(n.days.size()), "active_days", root);
      uint32_t d28 = 0;
      for (int d : n.days) d28 += T - d < 28;
      feq(row[kActiveDays28], d28, "active_days_28d", root);
      double sum = 0, recent = 0;
      for (size_t w = 0; w < 4; w++) {
        feq(row[kEventsWeek1 + static_cast<int>(w)], n.weeks[w], "week", root);
        sum += n.weeks[w];
        recent += w < 2 ? n.weeks[w] : 0;
      }
      feq(row[kActivityTrend], sum > 0 ? (recent - (sum - recent)) / sum : 0, "trend", root);
      const NFacts& f = facts.at(root);
      feq(row[kOrders], f.orders, "orders", root);
      feq(row[kMonetary], f.monetary, "monetary", root);
      feq(row[kDaysSinceLastOrder], f.orders ? T - LocalDay(zone, f.last_pay) : nan, "days_since_last_order", root);
      feq(row[kCouponUses], n.coupon, "coupon_uses", root);
      auto r = rfm_of.find(root);
      for (int k = 0; k < 3; k++)
        feq(row[kRfmR + k], r == rfm_of.end() ? nan : r->second[static_cast<size_t>(k)], "rfm", root);
      // Tiers: the people layer's (checked against its own reference in tiers_tags_reference_test).
      const int tv = tiers->Level(TierDimension::kValue, p), ta = tiers->Level(TierDimension::kActivity, p);
      feq(row[kTierValue], tv < 0 ? nan : tv, "tier_value", root);
      feq(row[kTierActivity], ta < 0 ? nan : ta, "tier_activity", root);
      if (!fo.with_clv) {
        EXPECT_TRUE(std::isnan(row[kPAlive]) && std::isnan(row[kExpectedPurchases30d])) << where;
      }
      EXPECT_EQ(labels[it->second], active_after.count(root) ? 0 : 1) << where << " label of " << root;
    }
    EXPECT_EQ(got.persons.size(), expected_rows) << where;
    if (fo.with_clv) {  // the CLV columns are the clv kind's (tested in clv tests) for customers
      ClvScores clv = ScoreClv(ctx, T, 30);
      for (size_t i = 0; i < clv.persons.size(); i++) {
        auto it = row_of.find(clv.persons[i]);
        if (it == row_of.end()) continue;
        EXPECT_FLOAT_EQ(got.Row(it->second)[kPAlive], static_cast<float>(clv.p_alive[i])) << where;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Seeds, ChurnFeaturesReference, ::testing::Range(0, 240));

// ---- the trees ----

// Rows with a known signal: y = 1 with probability sigmoid(3 * x0 - 2 * x1), x2 noise,
// some values missing.
void Generated(uint64_t seed, size_t n, std::vector<float>* x, std::vector<float>* y,
               std::vector<double>* truth = nullptr) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> U(0, 1);
  for (size_t i = 0; i < n; i++) {
    const float a = U(rng) * 2 - 1, b = U(rng) * 2 - 1, c = U(rng);
    x->push_back(a);
    x->push_back(U(rng) < 0.1f ? std::nanf("") : b);
    x->push_back(c);
    const float p = 1 / (1 + std::exp(-(3 * a - 2 * b)));
    y->push_back(U(rng) < p ? 1.0f : 0.0f);
    if (truth) truth->push_back(p);
  }
}

TEST(BoostedTrees, LearnsAKnownSignalDeterministically) {
  std::vector<float> x, y, xt, yt;
  std::vector<double> truth;
  Generated(1, 3000, &x, &y);
  Generated(2, 2000, &xt, &yt, &truth);
  BoostedTreesParams params;
  params.rounds = 60;
  auto m1 = BoostedTrees::Train(x, 3000, 3, y, params);
  ASSERT_TRUE(m1.ok()) << m1.status().ToString();
  auto m2 = BoostedTrees::Train(x, 3000, 3, y, params);
  ASSERT_TRUE(m2.ok());
  auto p1 = m1->Predict(xt.data(), 2000, 3);
  auto p2 = m2->Predict(xt.data(), 2000, 3);
  ASSERT_TRUE(p1.ok() && p2.ok());
  EXPECT_EQ(*p1, *p2) << "two trainings on the same data differ";
  std::vector<uint8_t> labels(yt.begin(), yt.end());
  const double auc = stats::RocAuc(std::vector<double>(p1->begin(), p1->end()), labels);
  // Close to the best any score can do here: the true probability's AUC.
  const double best = stats::RocAuc(truth, labels);
  EXPECT_GT(auc, 0.75) << "held-out AUC";
  EXPECT_GT(auc, best - 0.03) << "held-out AUC " << auc << ", the true probability's " << best;
  // SHAP: per row the contributions and the bias sum to the log-odds; the noise column
  // matters least.
  auto c = m1->Contributions(xt.data(), 2000, 3);
  ASSERT_TRUE(c.ok());
  double mean_abs[3] = {0, 0, 0};
  for (size_t i = 0; i < 2000; i++) {
    double sum = 0;
    for (size_t k = 0; k < 4; k++) sum += (*c)[i * 4 + k];
    const double p = (*p1)[i];
    EXPECT_NEAR(sum, std::log(p / (1 - p)), 1e-3);
    for (size_t k = 0; k < 3; k++) mean_abs[k] += std::fabs((*c)[i * 4 + k]);
  }
  EXPECT_GT(mean_abs[0], mean_abs[2]);
  EXPECT_GT(mean_abs[1], mean_abs[2]);
  // A saved model predicts the same.
  auto saved = m1->Save();
  ASSERT_TRUE(saved.ok());
  auto loaded = BoostedTrees::Load(*saved);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto p3 = loaded->Predict(xt.data(), 2000, 3);
  ASSERT_TRUE(p3.ok());
  EXPECT_EQ(*p1, *p3);
}

TEST(BoostedTrees, RefusesOneOutcome) {
  std::vector<float> x = {1, 2, 3}, y = {1, 1, 1};
  auto m = BoostedTrees::Train(x, 3, 1, y, BoostedTreesParams{});
  EXPECT_EQ(m.status().code(), StatusCode::kInvalidArgument);
}

// ---- the time split on a store with a known signal ----

TEST(ChurnModel, LearnsFadingBeforeChurn) {
  // 1500 persons over 150 days from 2025-01-01 (Asia/Shanghai). Each has a last day of use
  // (exponential, mean 60 days after its first); before it, activity fades over 3 weeks.
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_TRUE(tz.ok());
  const int day0 = static_cast<int>(date::sys_days{date::year{2025} / 1 / 1}.time_since_epoch().count());
  const int span = 150;
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> U(0, 1);
  std::vector<Event> events;
  int k = 0;
  for (int u = 0; u < 1500; u++) {
    const int start = day0 + static_cast<int>(U(rng) * 100);
    const int last = start + static_cast<int>(-std::log(1 - U(rng)) * 60);
    const double rate = 0.15 + 0.5 * U(rng);
    for (int d = start; d <= std::min(last, day0 + span - 1); d++) {
      const double fade = std::min(1.0, (last - d) / 21.0);
      if (d != start && U(rng) >= rate * (0.15 + 0.85 * fade)) continue;
      Event e;
      e.uuid = Uuid::FromClientId("m" + std::to_string(k++));
      e.has_uuid = true;
      e.distinct_id = "p" + std::to_string(u);
      e.event = U(rng) < 0.1 ? "pay" : "page_view";
      if (e.event == "pay") e.props.push_back({"amount", PropValue::Num(10 + std::floor(U(rng) * 100))});
      e.ts_ms = tz->DayStartMs(d) + static_cast<int64_t>(U(rng) * 80'000'000);
      events.push_back(std::move(e));
    }
  }
  ThrowAwayStore store(4096);
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store).Append(std::move(events), Durability::kUnlogged).ok());
  ASSERT_TRUE((*store).Flush().ok());
  PeopleSettings ps;
  QueryOptions qo;
  qo.people = &ps;
  QueryScope scope(*store, *tz, qo);
  auto last = LastCompleteDay(scope.ctx().snap, *tz, day0 + 10000);
  ASSERT_TRUE(last.has_value());
  EXPECT_EQ(*last, day0 + span - 1);
  ChurnTrainOptions o;
  o.trees.rounds = 80;
  auto run = TrainChurnModel(scope.ctx(), *last, o);
  ASSERT_TRUE(run.ok()) << run.status().ToString();
  EXPECT_EQ(run->train_as_of, *last - 60);
  EXPECT_EQ(run->eval_as_of, *last - 30);
  EXPECT_GT(run->auc, 0.75) << "evaluation AUC";
  EXPECT_GT(run->precision_at_10, static_cast<double>(run->eval_churned) / static_cast<double>(run->eval_rows))
      << "precision at 10% above the base rate";
  // Recency or the weekly counts carry the signal, not the noise-free tenure alone.
  double top = 0;
  int top_feature = -1;
  for (int f = 0; f < kChurnFeatureCount; f++)
    if (run->importance[static_cast<size_t>(f)] > top) top = run->importance[static_cast<size_t>(f)], top_feature = f;
  EXPECT_TRUE(top_feature == kRecencyDays || top_feature == kActiveDays28 || top_feature == kEventsWeek1 ||
              top_feature == kEventsWeek2 || top_feature == kActivityTrend)
      << ChurnFeatureNames()[static_cast<size_t>(top_feature)];
  // Scores: every scored person has a risk in [0, 1], deciles 1..10, top features by |SHAP|.
  const ChurnScores& s = run->scores;
  EXPECT_EQ(s.as_of_day, *last);
  ASSERT_FALSE(s.persons.empty());
  size_t tenth = 0;
  for (size_t i = 0; i < s.persons.size(); i++) {
    EXPECT_TRUE(s.risk[i] >= 0 && s.risk[i] <= 1);
    EXPECT_TRUE(s.decile[i] >= 1 && s.decile[i] <= 10);
    tenth += s.decile[i] == 10;
    EXPECT_GE(std::fabs(s.top[i][0].contribution), std::fabs(s.top[i][1].contribution));
  }
  EXPECT_NEAR(static_cast<double>(tenth) / static_cast<double>(s.persons.size()), 0.1, 0.03);
  // Too little history: a clear refusal.
  auto early = TrainChurnModel(scope.ctx(), day0 + 40, o);
  EXPECT_EQ(early.status().code(), StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace ns
