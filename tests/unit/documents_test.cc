// The stored documents of the operations layer (ops/documents.h): what the validators write
// reads back unchanged (answers stay byte-for-byte), and a malformed document written behind
// the server's back is Corruption naming the table, the column and the row (a 500
// "corruption", never a JSON exception).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>

#include "ops/documents.h"
#include "ops/ops_service.h"
#include "server/http_types.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

// T::Parse(d).ToJson() is d, to the byte.
template <typename T>
void ExpectReadsBack(const StatusOr<json>& validated) {
  ASSERT_THAT(validated, IsOk());
  SCOPED_TRACE(validated->dump());
  auto doc = T::Parse(*validated);
  ASSERT_THAT(doc, IsOk());
  EXPECT_EQ(doc->ToJson().dump(), validated->dump());
}

TEST(OpsDocuments, ValidatedDocumentsReadBackUnchanged) {
  ExpectReadsBack<ScenarioDoc>(ValidateScenario(json{{"name", "n"}}, nullptr));
  ExpectReadsBack<ScenarioDoc>(
      ValidateScenario(json{{"name", "n"},
                            {"goal", "a description"},
                            {"key_user_group", {{"cohort_id", 3}}},
                            {"pain_points", json::array({"slow", "pricey"})},
                            {"success_criteria", json::array({"a", {{"metric", "m"}, {"target", 2}}})},
                            {"period", {{"from", "2026-01-01"}, {"to", "2026-01-31"}, {"label", "kept as sent"}}},
                            {"funnel", {{"steps", json::array({{{"event", "visit"}}, {{"event", "pay"}}})}}},
                            {"from_sop", nullptr}},
                       nullptr));
  ExpectReadsBack<ActionDoc>(ValidateAction(json{{"action", "a"}}, nullptr, 20000));
  ExpectReadsBack<ActionDoc>(
      ValidateAction(json{{"action", "a"},
                          {"start_date", "2026-01-02"},
                          {"due_date", "2026-01-09"},
                          {"depends_on", json::array({4, 2})},
                          {"resources", {{"budget", 100}, {"engineer_days", 2.5}, {"channels", json::array({"feed"})}}},
                          {"progress", json::array({{{"note", "x"}, {"by", "extra"}}})},
                          {"progress_note", "dated today"}},
                     nullptr, 20000));
  const json trends = {{"kind", "trends"}, {"series", json::array({{{"event", "pay"}, {"math", "total"}}})}};
  ExpectReadsBack<KpiDoc>(ValidateKpi(json{{"name", "k"}, {"query", trends}, {"reduce", {{"series", 0}}}}, nullptr));
  ExpectReadsBack<KpiDoc>(ValidateKpi(json{{"name", "k"},
                                           {"query", trends},
                                           {"reduce", {{"series", 0}, {"op", "avg"}}},
                                           {"target", 100},
                                           {"thresholds", {{"green", 1}, {"yellow", 0.8}}},
                                           {"direction", "lower"},
                                           {"period", {{"from", "2026-01-01"}, {"to", "2026-01-31"}}},
                                           {"scenario_id", 7}},
                                      nullptr));
  ExpectReadsBack<KpiDoc>(
      ValidateKpi(json{{"name", "f"}, {"reduce", {{"formula", "k1 / k2"}}}, {"target", 0.15}}, nullptr));
}

TEST(OpsDocuments, ParseNamesTheField) {
  auto kpi = ValidateKpi(json{{"name", "f"}, {"reduce", {{"formula", "k1"}}}}, nullptr);
  ASSERT_THAT(kpi, IsOk());
  json bad = *kpi;
  bad["reduce"] = 5;
  EXPECT_THAT(KpiDoc::Parse(bad), StatusIs(StatusCode::kCorruption, HasSubstr("reduce: expected an object")));
  bad = *kpi;
  bad.erase("name");
  EXPECT_THAT(KpiDoc::Parse(bad), StatusIs(StatusCode::kCorruption, HasSubstr("name: missing")));
  auto action = ValidateAction(json{{"action", "a"}, {"progress_note", "n"}}, nullptr, 20000);
  ASSERT_THAT(action, IsOk());
  bad = *action;
  bad["progress"].push_back(json{{"date", "2026-02-30"}, {"note", "x"}});
  EXPECT_THAT(ActionDoc::Parse(bad), StatusIs(StatusCode::kCorruption, HasSubstr("progress[1].date: expected a date")));
  bad = *action;
  bad["status"] = "finished";
  EXPECT_THAT(ActionDoc::Parse(bad), StatusIs(StatusCode::kCorruption, HasSubstr("status: unknown value 'finished'")));
  EXPECT_THAT(ParseStored<KpiDoc>(7, "{\"name\":"),
              StatusIs(StatusCode::kCorruption, "kpis.doc of row 7 is malformed: not JSON"));
  EXPECT_THAT(ParseStored<KpiState>(7, "{\"error\":{\"code\":1}}"),
              StatusIs(StatusCode::kCorruption, "kpis.state of row 7 is malformed: error.code: expected a string"));
}

// A malformed document written straight into meta.db.
class OpsDocumentsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    auto reg = ProjectRegistry::Open(dir_.path() + "/data", so);
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
    ASSERT_THAT(registry_->Create("p", "Asia/Shanghai"), IsOk());
    auto ops = OpsService::Open(*registry_);
    ASSERT_THAT(ops, IsOk());
    ops_ = std::move(*ops);
  }
  // Overwrites a stored document.
  void Corrupt(const std::string& table, const std::string& column, int64_t id, const std::string& text) {
    ASSERT_THAT(ops_->db().Exec("UPDATE " + table + " SET " + column + " = ? WHERE id = ?", {text, id}), IsOk());
  }
  int64_t NewKpi() {
    auto id = ops_->kpis.Create(
        who_, json{{"name", "k"},
                   {"query", {{"kind", "trends"}, {"series", json::array({{{"event", "pay"}, {"math", "total"}}})}}},
                   {"reduce", {{"series", 0}}},
                   {"target", 10}});
    EXPECT_THAT(id, IsOk());
    return id.ok() ? *id : 0;
  }
  // The error names the table, the column and the row, and answers 500 "corruption".
  static void ExpectCorruption(const Status& st, const std::string& where, const std::string& what = "") {
    EXPECT_THAT(st, StatusIs(StatusCode::kCorruption, HasSubstr(where + " is malformed: " + what)));
    EXPECT_EQ(HttpStatusFor(st), 500);
    EXPECT_EQ(ErrorJson(st)["error"]["code"], "corruption");
  }

  testing::TempDir dir_;
  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<OpsService> ops_;
  Principal who_{"ana@example.com", 1, "p", Role::kAdmin, Credential::kSession};
};

TEST_F(OpsDocumentsTest, AMalformedScenarioOrActionNamesItsRow) {
  auto sid = ops_->scenarios.Create(who_, json{{"name", "s"}});
  ASSERT_THAT(sid, IsOk());
  auto aid = ops_->scenarios.AddAction(who_, *sid, json{{"action", "a"}});
  ASSERT_THAT(aid, IsOk());
  const std::string scenario_row = "scenarios.doc of row " + std::to_string(*sid);
  const std::string action_row = "actions.doc of row " + std::to_string(*aid);

  Corrupt("actions", "doc", *aid, json{{"action", 5}}.dump());
  ExpectCorruption(ops_->scenarios.GetAction("p", *aid).status(), action_row, "action: expected a string");
  ExpectCorruption(ops_->scenarios.Get("p", *sid).status(), action_row);
  ExpectCorruption(ops_->scenarios.Gantt("p", *sid).status(), action_row);
  ExpectCorruption(ops_->scenarios.MarkDelayed("p", 30000).status(), action_row);
  ExpectCorruption(ops_->Digest("p").status(), action_row);

  Corrupt("scenarios", "doc", *sid, "{\"name\": \"s\"");  // cut short
  ExpectCorruption(ops_->scenarios.Get("p", *sid).status(), scenario_row, "not JSON");
  ExpectCorruption(ops_->scenarios.List("p").status(), scenario_row);
  ExpectCorruption(ops_->evaluations.Get("p", *sid).status(), scenario_row);
  ExpectCorruption(ops_->scenarios.Patch(who_, *sid, json{{"owner", "bo"}}), scenario_row);
}

TEST_F(OpsDocumentsTest, AMalformedKpiIsListedWithItsErrorAndTheDailyJobRecordsIt) {
  const int64_t k = NewKpi();
  ASSERT_THAT(ops_->kpis.Refresh("p", k), IsOk());
  const std::string state_row = "kpis.state of row " + std::to_string(k);
  Corrupt("kpis", "state", k, json{{"period", "this month"}}.dump());
  ExpectCorruption(ops_->kpis.Get("p", k).status(), state_row, "period: expected an object");
  ExpectCorruption(ops_->alerts.EvaluateKpi("p", k).status(), state_row);
  // The daily job records the error on the KPI (replacing the bad state), so the next refresh works.
  auto daily = ops_->RunDaily("p");
  ASSERT_THAT(daily, IsOk());
  ASSERT_EQ((*daily)["errors"].size(), 1u) << daily->dump();
  EXPECT_THAT((*daily)["errors"][0]["error"].get<std::string>(), HasSubstr(state_row));
  EXPECT_THAT(ops_->kpis.Refresh("p", k), IsOk());

  const std::string doc_row = "kpis.doc of row " + std::to_string(k);
  Corrupt("kpis", "doc", k, json{{"name", "k"}}.dump());
  ExpectCorruption(ops_->kpis.Get("p", k).status(), doc_row, "owner: missing");
  auto list = ops_->kpis.List("p", std::nullopt);  // one broken KPI does not break the list
  ASSERT_THAT(list, IsOk());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0]["error"]["code"], "corruption");
  EXPECT_THAT((*list)[0]["error"]["message"].get<std::string>(), HasSubstr(doc_row));
}

TEST_F(OpsDocumentsTest, MalformedRulesSopsAndOutboxMessagesNameTheirRows) {
  const int64_t k = NewKpi();
  auto rule = ops_->alerts.CreateRule(who_, json{{"kpi_id", k}, {"type", "change"}});
  ASSERT_THAT(rule, IsOk());
  Corrupt("alert_rules", "doc", *rule, json{{"kpi_id", k}, {"type", "sometimes"}}.dump());
  const std::string rule_row = "alert_rules.doc of row " + std::to_string(*rule);
  ExpectCorruption(ops_->alerts.ListRules("p").status(), rule_row, "type: unknown value 'sometimes'");
  ExpectCorruption(ops_->alerts.EvaluateKpi("p", k).status(), rule_row);

  ASSERT_THAT(ops_->db().Exec("INSERT INTO sops(id, project, name, doc, created_at) VALUES(9, 'p', 'x', '[]', 0)"),
              IsOk());
  ExpectCorruption(ops_->evaluations.GetSop("p", 9).status(), "sops.doc of row 9", "expected an object");
  ExpectCorruption(ops_->evaluations.ListSops("p").status(), "sops.doc of row 9");

  // A message that cannot be read is never sent: failed, with its row named.
  auto ch = ops_->channels.Create(who_, json{{"kind", "webhook"}, {"url", "https://hooks.example.com/x"}});
  ASSERT_THAT(ch, IsOk());
  ASSERT_THAT(ops_->db().Exec("INSERT INTO outbox(id, project, channel_id, dedup_key, message, state, created_at) "
                              "VALUES(5, 'p', ?, 'k', '{\"title\": 1}', 'pending', 0)",
                              {*ch}),
              IsOk());
  json sent = ops_->channels.DeliverPending("k");
  ASSERT_EQ(sent.size(), 1u) << sent.dump();
  EXPECT_FALSE(sent[0]["ok"].get<bool>());
  EXPECT_EQ(sent[0]["error"], "outbox.message of row 5 is malformed: title: expected a string");
  auto state = ops_->db().Query("SELECT state FROM outbox WHERE id = 5");
  ASSERT_THAT(state, IsOk());
  EXPECT_EQ((*state)[0].Str(0), "failed");
}

}  // namespace
}  // namespace ns
