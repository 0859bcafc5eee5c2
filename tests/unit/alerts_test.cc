// Alert rules and alerts (ops/alerts.h) through their C++ API on a temporary data directory
// (until now tested only through the Python ops tests, apart from the random-data
// reference test of RootCause): rule validation naming the field, the root-cause ranking on
// hand-computed numbers, and an alert's life (fired once, acknowledged, resolved, cannot be
// acknowledged after).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "core/time_zone.h"
#include "core/uuid.h"
#include "ops/alerts.h"
#include "ops/kpis.h"
#include "ops/ops_service.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::_;
using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

TEST(SignedPercent, SignAndRounding) {
  EXPECT_EQ(SignedPercent(-0.18), "\u221218%");
  EXPECT_EQ(SignedPercent(0.25), "+25%");
  EXPECT_EQ(SignedPercent(0), "+0%");
}

// Views per channel on two days (UTC): 50 on d0, 42 on d1. Per channel d0 -> d1:
// a 10 -> 4 (-6), b 10 -> 7 (-3), c 10 -> 12 (+2), d 10 -> 9 (-1), e 10 -> 10 (0).
class AlertsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    auto reg = ProjectRegistry::Open(dir_.path() + "/data", so);
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
    ASSERT_THAT(registry_->Create("p", "UTC"), IsOk());
    auto ops = OpsService::Open(*registry_);
    ASSERT_THAT(ops, IsOk());
    ops_ = std::move(*ops);
    auto proj = registry_->OpenProject("p");
    ASSERT_THAT(proj, IsOk());
    d0_ = ParseDate("2025-06-02", "").value();
    d1_ = d0_ + 1;
    std::vector<Event> batch;
    int n = 0;
    auto add = [&](const std::string& channel, int day, int count) {
      for (int i = 0; i < count; i++, n++) {
        Event e;
        e.uuid = Uuid::FromClientId("e" + std::to_string(n));
        e.has_uuid = true;
        e.distinct_id = "u" + std::to_string(n);
        e.event = "view";
        e.ts_ms = (int64_t{day} * 86400 + 36000 + n) * 1000;
        e.props.push_back({"channel", PropValue::Str(channel)});
        batch.push_back(std::move(e));
      }
    };
    const int before[] = {10, 10, 10, 10, 10}, after[] = {4, 7, 12, 9, 10};
    for (int c = 0; c < 5; c++) {
      add(std::string(1, static_cast<char>('a' + c)), d0_, before[c]);
      add(std::string(1, static_cast<char>('a' + c)), d1_, after[c]);
    }
    ASSERT_THAT((*proj)->store->Append(std::move(batch), Durability::kUnlogged), IsOk());
  }

  json ViewsKpi(double target) {
    return json{{"name", "views"},
                {"query", {{"kind", "trends"}, {"series", json::array({json{{"event", "view"}}})}}},
                {"reduce", {{"series", 0}, {"op", "sum"}}},
                {"target", target},
                {"period", {{"type", "custom"}, {"from", FormatDate(d1_)}, {"to", FormatDate(d1_)}}},
                {"dimensions", json::array({"channel"})}};
  }

  testing::TempDir dir_;
  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<OpsService> ops_;
  Principal who_{"ana@example.com", 1, "p", Role::kOperator, Credential::kSession};
  int32_t d0_ = 0, d1_ = 0;
};

// The change split over the channel's values: the three largest parts in the direction of
// the change, strongest first, with their share of it; a part against the change (c) or
// without one (e) is never a cause.
TEST_F(AlertsTest, RootCauseRanksContributionsInTheDirectionOfTheChange) {
  auto doc = ValidateKpi(ViewsKpi(50), nullptr);
  ASSERT_THAT(doc, IsOk());
  auto rc = ops_->alerts.RootCause("p", *doc, PeriodRange{d1_, d1_}, PeriodRange{d0_, d0_});
  ASSERT_THAT(rc, IsOk());
  EXPECT_EQ((*rc)["previous"], 50);
  EXPECT_EQ((*rc)["current"], 42);
  EXPECT_EQ((*rc)["change"], -8);
  EXPECT_DOUBLE_EQ((*rc)["relative_change"].get<double>(), -0.16);
  const json& top = (*rc)["top_contributors"];
  ASSERT_EQ(top.size(), 3u) << rc->dump();
  const char* want_value[] = {"a", "b", "d"};
  const double want_contribution[] = {-6, -3, -1};
  for (size_t i = 0; i < 3; i++) {
    SCOPED_TRACE(i);
    EXPECT_EQ(top[i]["dimension"], "channel");
    EXPECT_EQ(top[i]["value"], want_value[i]);
    EXPECT_DOUBLE_EQ(top[i]["contribution"].get<double>(), want_contribution[i]);
    EXPECT_DOUBLE_EQ(top[i]["share"].get<double>(), want_contribution[i] / -8);
  }
  EXPECT_EQ(top[0]["previous"], 10);
  EXPECT_EQ(top[0]["current"], 4);
  EXPECT_THAT((*rc)["hint"].get<std::string>(), HasSubstr("75% of the drop from channel=a"));
  EXPECT_TRUE((*rc)["steps"].empty());  // not a funnel

  // The same days the other way round: a rise, led by a.
  auto rise = ops_->alerts.RootCause("p", *doc, PeriodRange{d0_, d0_}, PeriodRange{d1_, d1_});
  ASSERT_THAT(rise, IsOk());
  ASSERT_FALSE((*rise)["top_contributors"].empty());
  EXPECT_EQ((*rise)["top_contributors"][0]["value"], "a");
  EXPECT_THAT((*rise)["hint"].get<std::string>(), HasSubstr("of the rise from channel=a"));
}

TEST_F(AlertsTest, RuleValidationNamesTheField) {
  auto with_target = ops_->kpis.Create(who_, ViewsKpi(50));
  ASSERT_THAT(with_target, IsOk());
  json no_target = ViewsKpi(0);
  no_target.erase("target");
  auto without_target = ops_->kpis.Create(who_, no_target);
  ASSERT_THAT(without_target, IsOk());
  const int64_t k = *with_target;
  struct Case {
    json body;
    StatusCode code;
    const char* field;
    const char* message;
  } cases[] = {
      {json::array(), StatusCode::kInvalidArgument, "", "expected {"},
      {json{{"type", "change"}}, StatusCode::kInvalidArgument, "kpi_id", "kpi_id: required"},
      {json{{"kpi_id", k}, {"severity", "high"}}, StatusCode::kInvalidArgument, "severity", "unknown field 'severity'"},
      {json{{"kpi_id", k + 100}}, StatusCode::kNotFound, "", ""},
      {json{{"kpi_id", k}, {"type", "spike"}}, StatusCode::kInvalidArgument, "type", "below_target, change or anomaly"},
      {json{{"kpi_id", *without_target}}, StatusCode::kInvalidArgument, "type", "needs a KPI with a target"},
      {json{{"kpi_id", k}, {"threshold_pct", 0}}, StatusCode::kInvalidArgument, "threshold_pct", "percentage > 0"},
      {json{{"kpi_id", k}, {"threshold_pct", "10%"}}, StatusCode::kInvalidArgument, "threshold_pct", ""},
      {json{{"kpi_id", k}, {"type", "anomaly"}, {"threshold", -1}}, StatusCode::kInvalidArgument, "threshold",
       "robust z-score"},
      {json{{"kpi_id", k}, {"type", "change"}, {"compare", "mom"}}, StatusCode::kInvalidArgument, "compare",
       "dod or wow"},
      {json{{"kpi_id", k}, {"channels", json::array({"slack"})}}, StatusCode::kInvalidArgument, "channels", ""},
      {json{{"kpi_id", k}, {"channels", json::array({999})}}, StatusCode::kNotFound, "", "999"},
      {json{{"kpi_id", k}, {"cooldown_minutes", -5}}, StatusCode::kInvalidArgument, "cooldown_minutes", ">= 0"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.dump());
    EXPECT_THAT(ops_->alerts.CreateRule(who_, c.body), StatusIs(c.code, HasSubstr(c.message), c.field));
  }
  auto rules = ops_->alerts.ListRules("p");
  ASSERT_THAT(rules, IsOk());
  EXPECT_TRUE(rules->empty());
  // Defaults: below target by 10%, a 6-hour cooldown, named after the KPI.
  auto id = ops_->alerts.CreateRule(who_, {{"kpi_id", k}});
  ASSERT_THAT(id, IsOk());
  rules = ops_->alerts.ListRules("p");
  ASSERT_THAT(rules, IsOk());
  ASSERT_EQ(rules->size(), 1u);
  EXPECT_EQ((*rules)[0]["type"], "below_target");
  EXPECT_EQ((*rules)[0]["threshold_pct"], 10);
  EXPECT_EQ((*rules)[0]["cooldown_minutes"], 360);
  EXPECT_EQ((*rules)[0]["name"], "views below_target");
  EXPECT_THAT(ops_->alerts.List("p", "closed"), StatusIs(StatusCode::kInvalidArgument, _, "state"));
  Principal stranger{"bob", 2, "other", Role::kAdmin, Credential::kSession};
  EXPECT_THAT(ops_->alerts.DeleteRule(stranger, *id), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ops_->alerts.DeleteRule(who_, *id), IsOk());
}

// 42 views against a target of 50 is 16% below: a 10% rule fires once, with the root cause
// in its message; acknowledged, it stays open; once the KPI meets its target it resolves,
// and a resolved alert cannot be acknowledged.
TEST_F(AlertsTest, AnAlertFiresOnceIsAcknowledgedAndResolves) {
  auto k = ops_->kpis.Create(who_, ViewsKpi(50));
  ASSERT_THAT(k, IsOk());
  auto rule = ops_->alerts.CreateRule(who_, {{"kpi_id", *k}, {"type", "below_target"}, {"threshold_pct", 10}});
  ASSERT_THAT(rule, IsOk());
  auto state = ops_->kpis.Refresh("p", *k);
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ((*state)["actual"], 42);
  auto fired = ops_->alerts.EvaluateKpi("p", *k);
  ASSERT_THAT(fired, IsOk());
  ASSERT_EQ(fired->size(), 1u) << fired->dump();
  EXPECT_EQ((*fired)[0]["rule_id"], *rule);
  const std::string message = (*fired)[0]["message"];
  EXPECT_THAT(message, HasSubstr("views 42 vs target 50 (84% achieved)"));
  EXPECT_THAT(message, HasSubstr("75% of the drop from channel=a"));
  auto again = ops_->alerts.EvaluateKpi("p", *k);
  ASSERT_THAT(again, IsOk());
  EXPECT_TRUE(again->empty()) << again->dump();

  auto open = ops_->alerts.List("p", "open");
  ASSERT_THAT(open, IsOk());
  ASSERT_EQ(open->size(), 1u);
  const int64_t alert_id = (*open)[0]["id"];
  EXPECT_EQ((*open)[0]["state"], "firing");
  ASSERT_THAT(ops_->alerts.Ack(who_, alert_id), IsOk());
  ASSERT_THAT(ops_->alerts.Ack(who_, alert_id), IsOk());  // twice is fine
  auto acked = ops_->alerts.Get("p", alert_id);
  ASSERT_THAT(acked, IsOk());
  EXPECT_EQ((*acked)["state"], "acknowledged");
  EXPECT_EQ((*acked)["acked_by"], "ana@example.com");
  EXPECT_THAT(ops_->alerts.Get("other", alert_id), StatusIs(StatusCode::kNotFound));

  ASSERT_THAT(ops_->kpis.Patch(who_, *k, {{"target", 40}}), IsOk());
  ASSERT_THAT(ops_->kpis.Refresh("p", *k), IsOk());
  auto resolved = ops_->alerts.EvaluateKpi("p", *k);
  ASSERT_THAT(resolved, IsOk());
  EXPECT_TRUE(resolved->empty());
  auto after = ops_->alerts.Get("p", alert_id);
  ASSERT_THAT(after, IsOk());
  EXPECT_EQ((*after)["state"], "resolved");
  EXPECT_THAT(ops_->alerts.Ack(who_, alert_id),
              StatusIs(StatusCode::kFailedPrecondition, "alert " + std::to_string(alert_id) + " is already resolved"));
  auto still_open = ops_->alerts.List("p", "open");
  ASSERT_THAT(still_open, IsOk());
  EXPECT_TRUE(still_open->empty());
}

}  // namespace
}  // namespace ns
