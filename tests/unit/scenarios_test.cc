// Scenarios and actions (ops/scenarios.h) and evaluations with SOPs (ops/evaluations.h)
// through their C++ API on a temporary data directory (until now tested only through the
// Python ops_api test): validation errors naming the field, overdue actions reading
// `delayed` at once and stored so by the daily job, the dependency DAG, the Gantt critical
// path, CSV import (all rows or none), evaluation -> SOP -> new scenario, and a cohort as
// the key user group (checked, shown with its name and size, "deleted" when gone).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "core/time_zone.h"
#include "ops/ops_service.h"
#include "ops/report_tables.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::_;
using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

// ---------------------------------------------------------------- validation (no database)

TEST(ValidateScenario, ErrorsNameTheField) {
  struct Case {
    json body;
    const char* field;
    const char* message;  // a substring of the message
  } cases[] = {
      {json::array(), "", "expected a JSON object"},
      {json{{"goal", "x"}}, "name", "name: required"},
      {json{{"name", ""}}, "name", "must not be empty"},
      {json{{"name", std::string(201, 'n')}}, "name", "at most 200 bytes"},
      {json{{"name", "n"}, {"colour", "red"}}, "colour", "unknown field 'colour'"},
      {json{{"name", "n"}, {"owner", 5}}, "owner", "owner: expected a string"},
      {json{{"name", "n"}, {"goal", {{"target", "high"}}}}, "goal.target", "expected a number"},
      {json{{"name", "n"}, {"goal", {{"kpi_id", 1.5}}}}, "goal.kpi_id", "expected a KPI id"},
      {json{{"name", "n"}, {"goal", 3}}, "goal", "goal: expected"},
      {json{{"name", "n"}, {"success_criteria", json::array({"a", "b", "c", "d"})}}, "success_criteria",
       "at most 3 criteria (got 4)"},
      {json{{"name", "n"}, {"success_criteria", "x"}}, "success_criteria", "expected a list"},
      {json{{"name", "n"}, {"period", {{"from", "2026-01-01"}}}}, "period", "period: expected"},
      {json{{"name", "n"}, {"period", {{"from", "2026-13-01"}, {"to", "2026-12-31"}}}}, "period.from", ""},
      {json{{"name", "n"}, {"period", {{"from", "2026-02-01"}, {"to", "2026-01-31"}}}}, "period.to",
       "'to' is before 'from'"},
      {json{{"name", "n"}, {"status", "finished"}}, "status", "draft, active, paused, done, cancelled"},
      {json{{"name", "n"}, {"key_user_group", {{"cohort", 1}}}}, "key_user_group", "cohort_id"},
      {json{{"name", "n"}, {"key_user_group", {{"cohort_id", "3"}}}}, "key_user_group.cohort_id",
       "expected a cohort id"},
      {json{{"name", "n"}, {"key_user_group", {{"cohort_id", 0}}}}, "key_user_group.cohort_id", "got 0"},
      {json{{"name", "n"}, {"key_user_group", {{"description", 7}}}}, "key_user_group.description",
       "expected a string"},
      {json{{"name", "n"}, {"funnel", {{"steps", json::array()}}}}, "funnel", "funnel: "},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.dump());
    EXPECT_THAT(ValidateScenario(c.body, nullptr),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr(c.message), c.field));
  }
}

TEST(ValidateScenario, FillsDefaultsAndPatchesOverABase) {
  auto d = ValidateScenario(json{{"name", "Raise pay conversion"}}, nullptr);
  ASSERT_THAT(d, IsOk());
  EXPECT_EQ((*d)["status"], "active");
  EXPECT_EQ((*d)["owner"], "");
  EXPECT_EQ((*d)["success_criteria"], json::array());
  EXPECT_TRUE((*d)["period"].is_null());
  EXPECT_TRUE((*d)["funnel"].is_null());
  // A PATCH validates the merged document: the base's name stays, a bad new field fails.
  auto patched = ValidateScenario(json{{"status", "paused"}}, &*d);
  ASSERT_THAT(patched, IsOk());
  EXPECT_EQ((*patched)["name"], "Raise pay conversion");
  EXPECT_EQ((*patched)["status"], "paused");
  EXPECT_THAT(ValidateScenario(json{{"name", ""}}, &*d), StatusIs(StatusCode::kInvalidArgument, _, "name"));
}

TEST(ValidateAction, ErrorsNameTheField) {
  const int32_t today = ParseDate("2026-03-10", "").value();
  struct Case {
    json body;
    const char* field;
    const char* message;
  } cases[] = {
      {json{{"owner", "ana"}}, "action", "action: required"},
      {json{{"action", ""}}, "action", "must not be empty"},
      {json{{"action", "a"}, {"due", "2026-01-01"}}, "due", "unknown field 'due'"},
      {json{{"action", "a"}, {"due_date", "2026-02-30"}}, "due_date", ""},
      {json{{"action", "a"}, {"start_date", "2026-03-05"}, {"due_date", "2026-03-01"}}, "due_date",
       "is before start_date"},
      {json{{"action", "a"}, {"resources", {{"budget", -1}}}}, "resources.budget", "expected a number >= 0"},
      {json{{"action", "a"}, {"resources", {{"people", 2}}}}, "resources.people", "unknown field 'people'"},
      {json{{"action", "a"}, {"resources", {{"channels", "push"}}}}, "resources.channels", "expected a list"},
      {json{{"action", "a"}, {"status", "late"}}, "status", "not_started, in_progress, done, delayed, cancelled"},
      {json{{"action", "a"}, {"depends_on", json::array({1, 1})}}, "depends_on", "action 1 listed twice"},
      {json{{"action", "a"}, {"depends_on", json::array({0})}}, "depends_on", "expected a list of action ids"},
      {json{{"action", "a"}, {"progress", json::array({{{"date", "2026-03-01"}}})}}, "progress", "progress[]"},
      {json{{"action", "a"}, {"progress_note", 7}}, "progress_note", "expected a text"},
      {json{{"action", "a"}, {"progress_note", {{"note", "x"}, {"date", "03/01"}}}}, "progress_note.date", ""},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body.dump());
    EXPECT_THAT(ValidateAction(c.body, nullptr, today),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr(c.message), c.field));
  }
  // A progress note without a date is dated today (the project's local day).
  auto a = ValidateAction(json{{"action", "a"}, {"progress_note", "kick-off done"}}, nullptr, today);
  ASSERT_THAT(a, IsOk());
  EXPECT_EQ((*a)["status"], "not_started");
  ASSERT_EQ((*a)["progress"].size(), 1u);
  EXPECT_EQ((*a)["progress"][0], (json{{"note", "kick-off done"}, {"date", "2026-03-10"}}));
  EXPECT_FALSE(a->contains("progress_note"));
}

// ---------------------------------------------------------------- with a metadata store

class ScenariosTest : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    auto reg = ProjectRegistry::Open(dir_.path() + "/data", so);
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
    ASSERT_THAT(registry_->Create("p", "Asia/Shanghai"), IsOk());
    ASSERT_THAT(registry_->Create("other", "UTC"), IsOk());
    auto ops = OpsService::Open(*registry_);
    ASSERT_THAT(ops, IsOk());
    ops_ = std::move(*ops);
    auto tz = TimeZone::Load("Asia/Shanghai");
    ASSERT_THAT(tz, IsOk());
    today_ = tz->LocalDay(NowMs());
  }

  int64_t NewScenario(json body = json{{"name", "Raise pay conversion"}}) {
    auto id = ops_->scenarios.Create(who_, body);
    EXPECT_THAT(id, IsOk());
    return id.ok() ? *id : 0;
  }
  int64_t NewAction(int64_t sid, json body) {
    auto id = ops_->scenarios.AddAction(who_, sid, body);
    EXPECT_THAT(id, IsOk()) << body.dump();
    return id.ok() ? *id : 0;
  }
  std::string Day(int offset) const { return FormatDate(today_ + offset); }
  json Action(int64_t id) {
    auto a = ops_->scenarios.GetAction("p", id);
    EXPECT_THAT(a, IsOk());
    return a.ok() ? *a : json();
  }

  testing::TempDir dir_;
  std::unique_ptr<ProjectRegistry> registry_;
  std::unique_ptr<OpsService> ops_;
  Principal who_{"ana@example.com", 1, "p", Role::kOperator, Credential::kSession};
  int32_t today_ = 0;
};

// An action whose due date has passed and that is neither done nor cancelled reads
// `delayed` at once; the daily job stores it, audits it as the scheduler, and only once.
TEST_F(ScenariosTest, AnOverdueActionReadsDelayed) {
  const int64_t sid = NewScenario();
  const int64_t overdue = NewAction(sid, {{"action", "push campaign"}, {"due_date", Day(-1)}});
  const int64_t started = NewAction(sid, {{"action", "new banner"}, {"due_date", Day(-3)}, {"status", "in_progress"}});
  const int64_t due_today = NewAction(sid, {{"action", "A/B test"}, {"due_date", Day(0)}});
  const int64_t done = NewAction(sid, {{"action", "copy"}, {"due_date", Day(-5)}, {"status", "done"}});
  const int64_t cancelled = NewAction(sid, {{"action", "coupon"}, {"due_date", Day(-5)}, {"status", "cancelled"}});
  const int64_t undated = NewAction(sid, {{"action", "research"}});

  EXPECT_EQ(Action(overdue)["status"], "delayed");
  EXPECT_EQ(Action(started)["status"], "delayed");
  EXPECT_EQ(Action(due_today)["status"], "not_started");
  EXPECT_EQ(Action(done)["status"], "done");
  EXPECT_EQ(Action(cancelled)["status"], "cancelled");
  EXPECT_EQ(Action(undated)["status"], "not_started");
  auto sc = ops_->scenarios.Get("p", sid);
  ASSERT_THAT(sc, IsOk());
  ASSERT_EQ((*sc)["actions"].size(), 6u);
  EXPECT_EQ((*sc)["actions"][0]["status"], "delayed");
  auto list = ops_->scenarios.List("p");
  ASSERT_THAT(list, IsOk());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0]["action_counts"],
            (json{{"not_started", 2}, {"in_progress", 0}, {"done", 1}, {"delayed", 2}, {"cancelled", 1}}));

  auto changed = ops_->scenarios.MarkDelayed("p", today_);
  ASSERT_THAT(changed, IsOk());
  EXPECT_EQ(*changed, 2);
  auto again = ops_->scenarios.MarkDelayed("p", today_);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, 0);
  auto audit = ops_->accounts.AuditLog("p", 100);
  ASSERT_THAT(audit, IsOk());
  int auto_delayed = 0;
  for (const auto& e : *audit) {
    if (e["action"] != "auto_delayed") continue;
    auto_delayed++;
    EXPECT_EQ(e["actor"], "scheduler");
    EXPECT_EQ(e["after"]["status"], "delayed");
  }
  EXPECT_EQ(auto_delayed, 2);
  // Tomorrow the action due today is late too.
  auto tomorrow = ops_->scenarios.MarkDelayed("p", today_ + 1);
  ASSERT_THAT(tomorrow, IsOk());
  EXPECT_EQ(*tomorrow, 1);
  // Marked in progress with a future due date, a delayed action is open again.
  ASSERT_THAT(ops_->scenarios.PatchAction(who_, overdue, {{"status", "in_progress"}, {"due_date", Day(7)}}), IsOk());
  EXPECT_EQ(Action(overdue)["status"], "in_progress");
  // A PATCH that leaves an overdue action open stores it delayed.
  ASSERT_THAT(ops_->scenarios.PatchAction(who_, overdue, {{"due_date", Day(-2)}}), IsOk());
  EXPECT_EQ(Action(overdue)["status"], "delayed");
}

TEST_F(ScenariosTest, ProjectsDoNotSeeEachOthersScenarios) {
  const int64_t sid = NewScenario();
  EXPECT_THAT(ops_->scenarios.Get("other", sid), StatusIs(StatusCode::kNotFound, "no scenario " + std::to_string(sid)));
  Principal stranger{"bob", 2, "other", Role::kAdmin, Credential::kSession};
  EXPECT_THAT(ops_->scenarios.AddAction(stranger, sid, {{"action", "x"}}), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ops_->scenarios.Delete(stranger, sid), StatusIs(StatusCode::kNotFound));
  EXPECT_THAT(ops_->scenarios.Get("p", sid), IsOk());
  EXPECT_EQ(ops_->scenarios.ProjectOf(sid), "p");
  EXPECT_EQ(ops_->scenarios.ProjectOf(sid + 100), "");
}

TEST_F(ScenariosTest, DependenciesMustFormADag) {
  const int64_t sid = NewScenario();
  const int64_t other_sid = NewScenario({{"name", "other"}});
  const int64_t a = NewAction(sid, {{"action", "a"}});
  const int64_t b = NewAction(sid, {{"action", "b"}, {"depends_on", json::array({a})}});
  const int64_t c = NewAction(sid, {{"action", "c"}, {"depends_on", json::array({b})}});
  const int64_t elsewhere = NewAction(other_sid, {{"action", "x"}});

  EXPECT_THAT(ops_->scenarios.PatchAction(who_, a, {{"depends_on", json::array({c})}}),
              StatusIs(StatusCode::kInvalidArgument,
                       HasSubstr("would create a cycle (" + std::to_string(a) + " -> " + std::to_string(c) + " -> " +
                                 std::to_string(b) + " -> " + std::to_string(a) + ")"),
                       "depends_on"));
  EXPECT_THAT(ops_->scenarios.PatchAction(who_, a, {{"depends_on", json::array({a})}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("cannot depend on itself"), "depends_on"));
  EXPECT_THAT(ops_->scenarios.PatchAction(who_, a, {{"depends_on", json::array({elsewhere})}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("is not an action of scenario"), "depends_on"));
  EXPECT_THAT(ops_->scenarios.AddAction(who_, sid, {{"action", "d"}, {"depends_on", json::array({elsewhere})}}),
              StatusIs(StatusCode::kInvalidArgument, _, "depends_on"));
  // The refused changes left nothing behind.
  auto sc = ops_->scenarios.Get("p", sid);
  ASSERT_THAT(sc, IsOk());
  EXPECT_EQ((*sc)["actions"].size(), 3u);
  EXPECT_EQ(Action(a)["depends_on"], json::array());
  // Deleting an action drops it from the others' dependencies.
  ASSERT_THAT(ops_->scenarios.DeleteAction(who_, b), IsOk());
  EXPECT_EQ(Action(c)["depends_on"], json::array());
  EXPECT_THAT(ops_->scenarios.GetAction("p", b), StatusIs(StatusCode::kNotFound));
}

// Critical path method: a (3 days) -> c (2 days) is the long chain; b (1 day) in parallel
// has slack.
TEST_F(ScenariosTest, GanttFindsTheCriticalPath) {
  const int64_t sid = NewScenario({{"name", "launch"}, {"period", {{"from", "2026-04-01"}, {"to", "2026-04-30"}}}});
  const int64_t a = NewAction(sid, {{"action", "a"}, {"start_date", "2026-04-01"}, {"due_date", "2026-04-03"}});
  const int64_t b = NewAction(sid, {{"action", "b"}, {"start_date", "2026-04-01"}, {"due_date", "2026-04-01"}});
  const int64_t c = NewAction(
      sid,
      {{"action", "c"}, {"start_date", "2026-04-02"}, {"due_date", "2026-04-03"}, {"depends_on", json::array({a, b})}});
  auto g = ops_->scenarios.Gantt("p", sid);
  ASSERT_THAT(g, IsOk());
  EXPECT_EQ((*g)["name"], "launch");
  EXPECT_EQ((*g)["finish"], "2026-04-05");
  EXPECT_EQ((*g)["critical_path"], json::array({a, c}));
  ASSERT_EQ((*g)["tasks"].size(), 3u);
  const json& ta = (*g)["tasks"][0];
  const json& tb = (*g)["tasks"][1];
  const json& tc = (*g)["tasks"][2];
  EXPECT_EQ(ta["critical"], true);
  EXPECT_EQ(ta["slack_days"], 0);
  EXPECT_EQ(tb["critical"], false);
  EXPECT_EQ(tb["slack_days"], 2);
  EXPECT_EQ(tb["latest_finish"], "2026-04-03");
  // c cannot start before a ends: it starts on the 4th, two days after its planned start.
  EXPECT_EQ(tc["earliest_start"], "2026-04-04");
  EXPECT_EQ(tc["earliest_finish"], "2026-04-05");
  EXPECT_EQ(tc["schedule_slip_days"], 2);
  EXPECT_EQ(tc["critical"], true);
}

// CSV import: English or Chinese headings, all rows or none, errors naming the line.
TEST_F(ScenariosTest, ImportActionsCsvIsAllOrNothing) {
  const int64_t sid = NewScenario();
  const std::string good =
      "\xEF\xBB\xBF"
      "策略方向,具体动作,负责人,截止日期,预算,渠道,状态\r\n"
      "召回,短信召回,王五,2099-05-01,1200,短信、推送,进行中\r\n"
      "拉新,\"投放, 信息流\",赵六,,,feed|search,未开始\r\n";
  auto ids = ops_->scenarios.ImportActionsCsv(who_, sid, good);
  ASSERT_THAT(ids, IsOk());
  ASSERT_EQ(ids->size(), 2u);
  json first = Action((*ids)[0]);
  EXPECT_EQ(first["strategy"], "召回");
  EXPECT_EQ(first["owner"], "王五");
  EXPECT_EQ(first["status"], "in_progress");
  EXPECT_EQ(first["resources"]["budget"], 1200);
  EXPECT_EQ(first["resources"]["channels"], json::array({"短信", "推送"}));
  json second = Action((*ids)[1]);
  EXPECT_EQ(second["action"], "投放, 信息流");
  EXPECT_EQ(second["resources"]["channels"], json::array({"feed", "search"}));

  const std::string bad =
      "action,due_date,budget\n"
      "first,2099-01-01,10\n"
      "second,2099-01-01,ten\n";
  EXPECT_THAT(ops_->scenarios.ImportActionsCsv(who_, sid, bad),
              StatusIs(StatusCode::kInvalidArgument, "CSV line 3: budget 'ten' is not a number"));
  const std::string bad_date = "action,due_date\nfirst,2099-01-01\nsecond,2099-02-30\n";
  EXPECT_THAT(ops_->scenarios.ImportActionsCsv(who_, sid, bad_date),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("CSV line 3: "), "due_date"));
  EXPECT_THAT(ops_->scenarios.ImportActionsCsv(who_, sid, "action,colour\nx,red\n"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown column 'colour'")));
  EXPECT_THAT(ops_->scenarios.ImportActionsCsv(who_, sid, ""),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("empty")));
  EXPECT_THAT(ops_->scenarios.ImportActionsCsv(who_, sid, "action\n\"open\n"),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("line 2 is never closed")));
  // None of the refused files added an action.
  auto sc = ops_->scenarios.Get("p", sid);
  ASSERT_THAT(sc, IsOk());
  EXPECT_EQ((*sc)["actions"].size(), 2u);
}

// An evaluation drafts its numbers from the scenario; a final one becomes an SOP; a new
// scenario from the SOP gets the actions at the same offsets and the same dependencies.
TEST_F(ScenariosTest, EvaluationToSopToNewScenario) {
  const int64_t sid =
      NewScenario({{"name", "spring push"}, {"owner", "ana"}, {"period", {{"from", Day(-40)}, {"to", Day(-10)}}}});
  const int64_t a = NewAction(
      sid, {{"action", "segment users"}, {"start_date", Day(-40)}, {"due_date", Day(-39)}, {"status", "done"}});
  NewAction(
      sid,
      {{"action", "send push"}, {"start_date", Day(-38)}, {"due_date", Day(-36)}, {"depends_on", json::array({a})}});

  auto draft = ops_->evaluations.Get("p", sid);
  ASSERT_THAT(draft, IsOk());
  EXPECT_EQ((*draft)["status"], "draft");
  EXPECT_EQ((*draft)["scenario"], "spring push");
  // The open action is past its due date: it counts as late.
  EXPECT_EQ((*draft)["actions"]["total"], 2);
  EXPECT_EQ((*draft)["actions"]["done"], 1);
  EXPECT_EQ((*draft)["actions"]["late"], 1);
  EXPECT_EQ((*draft)["actions"]["late_actions"][0]["action"], "send push");

  EXPECT_THAT(ops_->evaluations.SaveAsSop(who_, sid, json::object()),
              StatusIs(StatusCode::kFailedPrecondition, HasSubstr("not finished")));
  EXPECT_THAT(ops_->evaluations.Save(who_, sid, {{"lessons", "x"}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("unknown field 'lessons'"), "lessons"));
  EXPECT_THAT(ops_->evaluations.Save(who_, sid, {{"status", "done"}}),
              StatusIs(StatusCode::kInvalidArgument, _, "status"));
  EXPECT_THAT(ops_->evaluations.Save(who_, sid, {{"problems", 3}}),
              StatusIs(StatusCode::kInvalidArgument, _, "problems"));
  ASSERT_THAT(ops_->evaluations.Save(who_, sid, {{"what_worked", "segmenting first"}, {"status", "final"}}), IsOk());
  auto final_ev = ops_->evaluations.Get("p", sid);
  ASSERT_THAT(final_ev, IsOk());
  EXPECT_EQ((*final_ev)["status"], "final");
  EXPECT_EQ((*final_ev)["what_worked"], "segmenting first");

  auto sop = ops_->evaluations.SaveAsSop(who_, sid, {{"name", "push playbook"}});
  ASSERT_THAT(sop, IsOk());
  EXPECT_THAT(ops_->evaluations.SaveAsSop(who_, sid, {{"name", ""}}),
              StatusIs(StatusCode::kInvalidArgument, _, "name"));
  auto sops = ops_->evaluations.ListSops("p");
  ASSERT_THAT(sops, IsOk());
  EXPECT_EQ(sops->size(), 1u);
  EXPECT_THAT(ops_->evaluations.GetSop("other", *sop), StatusIs(StatusCode::kNotFound));

  auto started =
      ops_->evaluations.StartFromSop(who_, *sop, {{"period", {{"from", "2099-06-01"}, {"to", "2099-06-30"}}}});
  ASSERT_THAT(started, IsOk());
  auto sc = ops_->scenarios.Get("p", *started);
  ASSERT_THAT(sc, IsOk());
  EXPECT_EQ((*sc)["name"], "push playbook");
  EXPECT_EQ((*sc)["from_sop"], *sop);
  ASSERT_EQ((*sc)["actions"].size(), 2u);
  const json& s0 = (*sc)["actions"][0];
  const json& s1 = (*sc)["actions"][1];
  EXPECT_EQ(s0["start_date"], "2099-06-01");
  EXPECT_EQ(s0["due_date"], "2099-06-02");
  EXPECT_EQ(s0["status"], "not_started");  // a new run starts over
  EXPECT_EQ(s1["start_date"], "2099-06-03");
  EXPECT_EQ(s1["due_date"], "2099-06-05");
  EXPECT_EQ(s1["depends_on"], json::array({s0["id"]}));
}

TEST_F(ScenariosTest, DraftEndedDraftsOnlyEndedScenariosOnce) {
  NewScenario({{"name", "ended"}, {"period", {{"from", Day(-30)}, {"to", Day(-1)}}}});
  NewScenario({{"name", "running"}, {"period", {{"from", Day(-30)}, {"to", Day(0)}}}});
  NewScenario({{"name", "open-ended"}});
  auto n = ops_->evaluations.DraftEnded("p", today_);
  ASSERT_THAT(n, IsOk());
  EXPECT_EQ(*n, 1);
  auto again = ops_->evaluations.DraftEnded("p", today_);
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(*again, 0);
}

// The people layer as the operations layer sees it (the server wires the real one).
class FakeCohorts : public CohortDirectory {
 public:
  std::map<std::pair<std::string, int64_t>, std::pair<std::string, int64_t>> cohorts;  // -> name, size
  int sized = 0;                                                                       // calls that asked for a size
  StatusOr<CohortSummary> Find(const std::string& project, int64_t id, bool with_size) override {
    auto it = cohorts.find({project, id});
    if (it == cohorts.end()) return NotFound("no cohort " + std::to_string(id));
    if (!with_size) return CohortSummary{id, it->second.first, std::nullopt, 0};
    sized++;
    return CohortSummary{id, it->second.first, it->second.second, 1'780'000'000'000};
  }
};

TEST_F(ScenariosTest, KeyUserGroupCohortIsCheckedAndShown) {
  const json group = {{"key_user_group", {{"cohort_id", 5}, {"description", "new users"}}}};
  json body = group;
  body["name"] = "first order";
  // Without a people layer a cohort cannot be checked: refused, naming the field.
  EXPECT_THAT(
      ops_->scenarios.Create(who_, body),
      StatusIs(StatusCode::kFailedPrecondition, HasSubstr("key_user_group.cohort_id: cohorts are not available")));
  FakeCohorts cohorts;
  ops_->scenarios.SetCohorts(&cohorts);
  EXPECT_THAT(ops_->scenarios.Create(who_, body),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("has no cohort 5"), "key_user_group.cohort_id"));
  cohorts.cohorts[{"other", 5}] = {"elsewhere", 1};  // another project's cohort 5 does not count
  EXPECT_THAT(ops_->scenarios.Create(who_, body),
              StatusIs(StatusCode::kInvalidArgument, _, "key_user_group.cohort_id"));
  cohorts.cohorts[{"p", 5}] = {"new in 7 days", 1234};
  const int64_t sid = NewScenario(body);
  ASSERT_GT(sid, 0);
  EXPECT_EQ(cohorts.sized, 0) << "validation does not evaluate the cohort";

  const json shown = {{"id", 5}, {"name", "new in 7 days"}, {"size", 1234}, {"as_of", FormatIsoUtc(1'780'000'000'000)}};
  auto sc = ops_->scenarios.Get("p", sid);
  ASSERT_THAT(sc, IsOk());
  EXPECT_EQ((*sc)["key_user_group"], group["key_user_group"]) << "the stored group is unchanged";
  EXPECT_EQ((*sc)["key_user_group_cohort"], shown);
  auto list = ops_->scenarios.List("p");
  ASSERT_THAT(list, IsOk());
  EXPECT_EQ((*list)[0]["key_user_group_cohort"], shown);
  auto ev = ops_->evaluations.Get("p", sid);
  ASSERT_THAT(ev, IsOk());
  EXPECT_EQ((*ev)["key_user_group_cohort"], shown);
  // Saving the evaluation does not store the live size.
  ASSERT_THAT(ops_->evaluations.Save(who_, sid, {{"problems", "few"}}), IsOk());
  auto rows = ops_->db().Query("SELECT doc FROM evaluations WHERE scenario_id = ?", {sid});
  ASSERT_THAT(rows, IsOk());
  EXPECT_EQ((*rows)[0].Str(0).find("1234"), std::string::npos) << (*rows)[0].Str(0);

  // The export's requirements table names the cohort, its size and when, in local time.
  auto tz = TimeZone::Load("Asia/Shanghai");
  ASSERT_THAT(tz, IsOk());
  auto tables = ScenarioTables(*sc, json::array(), *ev, "en", *tz);
  EXPECT_EQ(std::get<std::string>(tables[0].rows[0][3]), "new users; new in 7 days (cohort #5, 1234 persons as of " +
                                                             tz->FormatLocal(1'780'000'000'000).substr(0, 16) + ")");
  auto zh = ScenarioTables(*sc, json::array(), *ev, "zh", *tz);
  EXPECT_THAT(std::get<std::string>(zh[0].rows[0][3]), HasSubstr("new in 7 days（人群 #5，1234 人，截至 "));

  // The people layer asks before deleting a cohort: the scenarios that name it.
  NewScenario({{"name", "described only"}, {"key_user_group", "everyone"}});
  auto users = ops_->scenarios.UsingCohort("p", 5);
  ASSERT_THAT(users, IsOk());
  EXPECT_EQ(*users, std::vector<std::string>{"scenario " + std::to_string(sid) + " 'first order'"});
  EXPECT_THAT(*ops_->scenarios.UsingCohort("other", 5), ::testing::IsEmpty());

  // A PATCH that leaves the group alone is not re-checked; one that changes it is.
  cohorts.cohorts.erase({"p", 5});
  EXPECT_THAT(ops_->scenarios.Patch(who_, sid, {{"owner", "bo"}}), IsOk());
  EXPECT_THAT(ops_->scenarios.Patch(who_, sid, {{"key_user_group", {{"cohort_id", 6}}}}),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("has no cohort 6"), "key_user_group.cohort_id"));
  // A cohort gone anyway (a row from before the check) shows as deleted.
  sc = ops_->scenarios.Get("p", sid);
  ASSERT_THAT(sc, IsOk());
  EXPECT_EQ((*sc)["key_user_group_cohort"], (json{{"id", 5}, {"name", nullptr}, {"deleted", true}}));
  tables = ScenarioTables(*sc, json::array(), *ev, "en", *tz);
  EXPECT_EQ(std::get<std::string>(tables[0].rows[0][3]), "new users; cohort #5 (deleted)");
}

// A goal naming a KPI names one of the project's: checked on create and on a PATCH of the
// goal, refused naming goal.kpi_id; another project's KPI does not count.
TEST_F(ScenariosTest, GoalKpiIsChecked) {
  const json kpi{{"name", "views"},
                 {"query", {{"kind", "trends"}, {"series", json::array({json{{"event", "view"}}})}}},
                 {"reduce", {{"series", 0}, {"op", "sum"}}},
                 {"target", 10},
                 {"period", {{"type", "custom"}, {"from", Day(-7)}, {"to", Day(0)}}}};
  auto k = ops_->kpis.Create(who_, kpi);
  ASSERT_THAT(k, IsOk());
  Principal stranger{"bob", 2, "other", Role::kAdmin, Credential::kSession};
  auto elsewhere = ops_->kpis.Create(stranger, kpi);
  ASSERT_THAT(elsewhere, IsOk());
  const json unknown{{"name", "n"}, {"goal", {{"metric", "views"}, {"kpi_id", *k + 100}}}};
  EXPECT_THAT(
      ops_->scenarios.Create(who_, unknown),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("has no KPI " + std::to_string(*k + 100)), "goal.kpi_id"));
  EXPECT_THAT(ops_->scenarios.Create(who_, {{"name", "n"}, {"goal", {{"kpi_id", *elsewhere}}}}),
              StatusIs(StatusCode::kInvalidArgument, _, "goal.kpi_id"));
  const int64_t sid = NewScenario({{"name", "n"}, {"goal", {{"metric", "views"}, {"target", 10}, {"kpi_id", *k}}}});
  ASSERT_GT(sid, 0);
  EXPECT_THAT(ops_->scenarios.Patch(who_, sid, {{"goal", {{"metric", "views"}, {"kpi_id", *elsewhere}}}}),
              StatusIs(StatusCode::kInvalidArgument, _, "goal.kpi_id"));
  ASSERT_THAT(ops_->scenarios.Patch(who_, sid, {{"goal", {{"metric", "views"}, {"target", 12}}}}), IsOk());
  auto sc = ops_->scenarios.Get("p", sid);
  ASSERT_THAT(sc, IsOk());
  EXPECT_FALSE((*sc)["goal"].contains("kpi_id")) << (*sc)["goal"].dump();
}

}  // namespace
}  // namespace ns
