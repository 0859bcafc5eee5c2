// Hand-written query cases: exact numbers on small timelines (medians, drop-off lists,
// 30-step funnels, DST days) and the exact error texts of invalid queries.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "query/operators.h"
#include "query/properties.h"
#include "storage/event_store.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;

class QueryFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    StoreOptions so;
    so.background = false;
    auto s = EventStore::Open(dir_.path(), so);
    ASSERT_TRUE(s.ok());
    store_ = std::move(s).value();
    tz_ = *TimeZone::Load("Asia/Shanghai");
  }
  void Add(const std::string& did, const std::string& name, const std::string& iso, std::vector<Property> props = {}) {
    Event e;
    e.distinct_id = did;
    e.event = name;
    e.ts_ms = *ParseIsoTimestamp(iso, tz_);
    e.props = std::move(props);
    ASSERT_TRUE(store_->Append({e}).ok());
  }
  json Run(const json& q) {
    auto r = RunQuery(q, *store_, tz_);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : json();
  }
  Status Error(const json& q) {
    auto r = RunQuery(q, *store_, tz_);
    return r.ok() ? Status::OK() : r.status();
  }
  testing::TempDir dir_;
  std::unique_ptr<EventStore> store_;
  TimeZone tz_;
};

TEST_F(QueryFixture, FunnelMediansDropoffsAndConversion) {
  // u1: a -> b after 60 s -> c after 120 s; u2: a -> b after 180 s; u3: a only.
  Add("u1", "a", "2025-03-01T10:00:00+08:00");
  Add("u1", "b", "2025-03-01T10:01:00+08:00");
  Add("u1", "c", "2025-03-01T10:03:00+08:00");
  Add("u2", "a", "2025-03-01T11:00:00+08:00");
  Add("u2", "b", "2025-03-01T11:03:00+08:00");
  Add("u3", "a", "2025-03-01T12:00:00+08:00");
  ASSERT_TRUE(store_->Flush().ok());
  json r = Run({{"kind", "funnel"},
                {"steps", {{{"event", "a"}}, {{"event", "b"}}, {{"event", "c"}}}},
                {"window_seconds", 3600},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-01"}});
  auto& s = r["steps"];
  EXPECT_EQ(s[0]["count"], 3);
  EXPECT_EQ(s[1]["count"], 2);
  EXPECT_EQ(s[2]["count"], 1);
  EXPECT_DOUBLE_EQ(s[1]["conversion_from_previous"].get<double>(), 2.0 / 3);
  EXPECT_DOUBLE_EQ(s[2]["conversion_from_start"].get<double>(), 1.0 / 3);
  EXPECT_TRUE(s[0]["median_seconds_from_previous"].is_null());
  EXPECT_DOUBLE_EQ(s[1]["median_seconds_from_previous"].get<double>(), 120.0);  // median of 60 and 180
  EXPECT_DOUBLE_EQ(s[2]["median_seconds_from_previous"].get<double>(), 120.0);
  EXPECT_EQ(s[1]["dropoff"]["persons"], json({"u3"}));
  EXPECT_EQ(s[2]["dropoff"]["persons"], json({"u2"}));
  // A window of 100 s: u2's b (180 s later) no longer counts.
  json r2 = Run({{"kind", "funnel"},
                 {"steps", {{{"event", "a"}}, {{"event", "b"}}}},
                 {"window_seconds", 100},
                 {"date_from", "2025-03-01"},
                 {"date_to", "2025-03-01"}});
  EXPECT_EQ(r2["steps"][1]["count"], 1);
}

TEST_F(QueryFixture, ThirtyStepFunnel) {
  std::vector<json> steps;
  for (int k = 0; k < 30; k++) steps.push_back({{"event", "s" + std::to_string(k)}});
  for (int k = 0; k < 30; k++) {
    char iso[64];
    std::snprintf(iso, sizeof iso, "2025-03-01T10:%02d:00+08:00", k);
    Add("p", "s" + std::to_string(k), iso);
    if (k < 17) Add("q", "s" + std::to_string(k), iso);
  }
  json r = Run({{"kind", "funnel"},
                {"steps", steps},
                {"window_seconds", 86400},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-01"}});
  EXPECT_EQ(r["steps"][16]["count"], 2);
  EXPECT_EQ(r["steps"][17]["count"], 1);
  EXPECT_EQ(r["steps"][29]["count"], 1);
  steps.push_back({{"event", "s30"}});
  Status st = Error({{"kind", "funnel"}, {"steps", steps}, {"date_from", "2025-03-01"}, {"date_to", "2025-03-01"}});
  EXPECT_EQ(st.message(), "steps: 31 steps; at most 30 are supported");
}

TEST_F(QueryFixture, StrictOrderBreaksOnOtherEvents) {
  Add("u1", "a", "2025-03-01T10:00:00+08:00");
  Add("u1", "noise", "2025-03-01T10:00:30+08:00");
  Add("u1", "b", "2025-03-01T10:01:00+08:00");
  Add("u2", "a", "2025-03-01T10:00:00+08:00");
  Add("u2", "b", "2025-03-01T10:01:00+08:00");
  json q{{"kind", "funnel"},
         {"steps", {{{"event", "a"}}, {{"event", "b"}}}},
         {"window_seconds", 3600},
         {"date_from", "2025-03-01"},
         {"date_to", "2025-03-01"}};
  EXPECT_EQ(Run(q)["steps"][1]["count"], 2);
  q["order"] = "strict";
  EXPECT_EQ(Run(q)["steps"][1]["count"], 1);
}

TEST_F(QueryFixture, LocalDaysAndDst) {
  // 23:30 in Shanghai on the 1st and 00:30 on the 2nd (16:30 UTC the 1st).
  Add("u1", "x", "2025-03-01T23:30:00+08:00");
  Add("u1", "x", "2025-03-01T16:30:00Z");
  json r =
      Run({{"kind", "trends"}, {"series", {{{"event", "x"}}}}, {"date_from", "2025-03-01"}, {"date_to", "2025-03-02"}});
  EXPECT_EQ(r["series"][0]["dates"], json({"2025-03-01", "2025-03-02"}));
  EXPECT_EQ(r["series"][0]["values"], json({1, 1}));
  json h = Run({{"kind", "trends"},
                {"series", {{{"event", "x"}}}},
                {"date_from", "2025-03-02"},
                {"date_to", "2025-03-02"},
                {"interval", "hour"}});
  EXPECT_EQ(h["series"][0]["dates"].size(), 24u);
  EXPECT_EQ(h["series"][0]["values"][0], 1);
}

struct BadQuery {
  const char* json_text;
  const char* message;
};
class QueryErrors : public QueryFixture, public ::testing::WithParamInterface<BadQuery> {};

TEST_P(QueryErrors, ExactMessage) {
  Status st = Error(json::parse(GetParam().json_text));
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(st.message(), GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, QueryErrors,
    ::testing::Values(
        BadQuery{R"({})",
                 "kind: required field is missing (trends, funnel, retention, rfm, lifecycle, paths, commerce, ltv, "
                 "channels, clv, stickiness or referral)"},
        // Issue 8: unknown fields are named, integers are range-checked before conversion.
        BadQuery{
            R"({"kind":"funnel","steps":[{"event":"a"}],"window":3600,"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "window: unknown field (did you mean window_seconds?); known fields: kind, date_from, date_to, steps, "
            "window_seconds, order, filters, breakdown, breakdown_limit, dropoff_limit, converted_limit, exclusions, "
            "viz, from_step, to_step, bins, interval, breakdown_attribution, breakdown_attribution_step, aggregate_by, "
            "correlation_properties, correlation_exclude_events, correlation_limit"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a","evnt":"b"}],"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "series[0].evnt: unknown field; known fields: event, math, property, filters, label"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a"}],"breakdown_limit":18446744073709551615,"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "breakdown_limit: 18446744073709551615 is out of range [1, 1000]"},
        BadQuery{R"({"kind":"journeys"})",
                 "kind: unknown query kind 'journeys' (expected trends, funnel, retention, rfm, lifecycle, paths, "
                 "commerce, ltv, channels, clv, stickiness or referral)"},
        BadQuery{R"({"kind":"trends","series":[{"event":"a"}],"date_from":"2025-13-01","date_to":"2025-03-01"})",
                 "date_from: expected a date YYYY-MM-DD, got '2025-13-01'"},
        BadQuery{R"({"kind":"trends","series":[{"event":"a"}],"date_from":"2025-03-02","date_to":"2025-03-01"})",
                 "date_to (2025-03-01) is before date_from (2025-03-02)"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a","math":"median"}],"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "series[0].math: unknown math 'median' (expected total, dau, sum, avg, min, max, p50, p90, weekly_active, "
            "monthly_active, avg_per_person, median_per_person or p90_per_person)"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a","math":"sum"}],"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "series[0].property: math 'sum' needs a numeric property"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a"}],"interval":"minute","date_from":"2025-03-01","date_to":"2025-03-01"})",
            "unknown interval 'minute' (expected hour, day, week or month)"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a"}],"date_from":"2025-03-01","date_to":"2025-03-01","filters":[{"property":"x","op":"like","value":1}]})",
            "filters[0].op: unknown operator 'like' (expected eq, neq, in, not_in, gt, gte, lt, lte, contains, "
            "not_contains, is_set or is_not_set)"},
        BadQuery{
            R"({"kind":"trends","series":[{"event":"a"}],"date_from":"2025-03-01","date_to":"2025-03-01","filters":[{"property":"x","op":"gt","value":"5"}]})",
            "filters[0].value: operator 'gt' needs a number, got string"},
        BadQuery{
            R"({"kind":"funnel","steps":[{"event":"a"},{"event":"b"}],"order":"strct","date_from":"2025-03-01","date_to":"2025-03-01"})",
            "order: unknown order mode 'strct' (expected ordered, strict or unordered)"},
        BadQuery{
            R"({"kind":"funnel","steps":[{"event":"a","optional":true},{"event":"b"}],"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "steps[0].optional: the first step cannot be optional"},
        BadQuery{
            R"({"kind":"funnel","steps":[{"event":"a"},{"event":"b"}],"exclusions":[{"event":"x","from_step":1,"to_step":1}],"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "exclusions[0].to_step: must be greater than from_step (1)"},
        BadQuery{
            R"({"kind":"funnel","steps":[{"event":"a"}],"breakdown":["a","b","c","d"],"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "breakdown: at most 3 properties"},
        BadQuery{
            R"({"kind":"retention","start_event":"a","period":"hour","date_from":"2025-03-01","date_to":"2025-03-01"})",
            "period: expected day, week or month"},
        BadQuery{
            R"({"kind":"retention","start_event":"a","periods":0,"date_from":"2025-03-01","date_to":"2025-03-01"})",
            "periods: 0 is out of range [1, 400]"},
        BadQuery{
            R"({"kind":"retention","start_event":"a","mode":"later","date_from":"2025-03-01","date_to":"2025-03-01"})",
            "mode: unknown mode 'later' (expected exact or on_or_after)"}));

}  // namespace
}  // namespace ns

namespace ns {
namespace {
TEST_F(QueryFixture, RetentionBeyondSixtyFourPeriods) {
  Add("u1", "register", "2025-01-01T10:00:00+08:00");
  Add("u1", "open", "2025-01-01T11:00:00+08:00");  // day 0, after the start event
  Add("u1", "open", "2025-03-07T10:00:00+08:00");  // day 65
  Add("u2", "open", "2024-12-31T10:00:00+08:00");
  Add("u2", "register", "2025-01-02T10:00:00+08:00");
  json r = Run({{"kind", "retention"},
                {"start_event", "register"},
                {"return_event", "open"},
                {"periods", 70},
                {"date_from", "2025-01-01"},
                {"date_to", "2025-01-02"}});
  ASSERT_EQ(r["cohorts"].size(), 2u);
  auto& c = r["cohorts"][0];
  EXPECT_EQ(c["date"], "2025-01-01");
  EXPECT_EQ(c["size"], 1);
  EXPECT_EQ(c["values"][0], 1);
  EXPECT_EQ(c["values"][65], 1);
  EXPECT_EQ(c["values"][64], 0);
  EXPECT_EQ(r["cohorts"][1]["size"], 1);  // u2: returns before the start do not count
  EXPECT_EQ(r["cohorts"][1]["values"][0], 0);
  json r2 = r;
  json q{{"kind", "retention"},       {"start_event", "register"}, {"return_event", "open"}, {"periods", 70},
         {"date_from", "2025-01-01"}, {"date_to", "2025-01-02"},   {"mode", "on_or_after"}};
  r2 = Run(q);
  EXPECT_EQ(r2["cohorts"][0]["values"][40], 1);
  EXPECT_EQ(r2["cohorts"][0]["values"][66], 0);
}
}  // namespace
}  // namespace ns

namespace ns {
namespace {
TEST_F(QueryFixture, DropoffsShowTheIdentifiedId) {
  Add("device-1", "a", "2025-03-01T10:00:00+08:00");
  Event login;
  login.distinct_id = "user-1";
  login.event = "login";
  login.ts_ms = *ParseIsoTimestamp("2025-03-01T10:05:00+08:00", tz_);
  login.merge_with.push_back("device-1");
  ASSERT_TRUE(store_->Append({login}).ok());
  json r = Run({{"kind", "funnel"},
                {"steps", {{{"event", "a"}}, {{"event", "b"}}}},
                {"date_from", "2025-03-01"},
                {"date_to", "2025-03-01"}});
  EXPECT_EQ(r["steps"][1]["dropoff"]["persons"], json({"user-1"}));
}
}  // namespace
}  // namespace ns

namespace ns {
namespace {

TEST_F(QueryFixture, PropertiesListTypesCountsAndTopValues) {
  Add("u1", "pay", "2025-03-01T10:00:00+08:00", {{"amount", PropValue::Num(10)}, {"channel", PropValue::Str("ads")}});
  Add("u2", "pay", "2025-03-01T11:00:00+08:00", {{"amount", PropValue::Num(10)}, {"channel", PropValue::Str("seo")}});
  ASSERT_TRUE(store_->Flush().ok());
  Add("u3", "pay", "2025-03-02T10:00:00+08:00",
      {{"amount", PropValue::Num(25)}, {"channel", PropValue::Str("ads")}, {"vip", PropValue::Json("true")}});
  Add("u3", "view", "2025-03-02T10:00:00+08:00", {{"page", PropValue::Str("/home")}, {"vip", PropValue::Num(1)}});
  Event e;
  e.distinct_id = "u3";
  e.event = "$identify";
  e.ts_ms = *ParseIsoTimestamp("2025-03-02T10:00:00+08:00", tz_);
  e.person_set.push_back({"city", PropValue::Str("Hangzhou")});
  ASSERT_TRUE(store_->Append({e}).ok());

  PropertyListOptions o;
  o.event = "pay";
  auto r = ListProperties(*store_->Snapshot(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  const json& props = (*r)["properties"];
  ASSERT_EQ(props.size(), 3u);  // amount, channel (3 rows each), vip (1)
  EXPECT_EQ((*r)["scanned_rows"], 3);
  EXPECT_EQ((*r)["complete"], true);
  EXPECT_EQ(props[0]["name"], "amount");
  EXPECT_EQ(props[0]["type"], "number");
  EXPECT_EQ(props[0]["rows"], 3);
  EXPECT_EQ(props[0]["top_values"][0], json({{"value", 10.0}, {"count", 2}}));
  EXPECT_EQ(props[1]["name"], "channel");
  EXPECT_EQ(props[1]["top_values"][0], json({{"value", "ads"}, {"count", 2}}));
  EXPECT_EQ(props[2]["name"], "vip");
  EXPECT_EQ(props[2]["type"], "boolean");
  EXPECT_EQ(props[2]["top_values"][0]["value"], true);
  ASSERT_EQ((*r)["person_properties"].size(), 1u);
  EXPECT_EQ((*r)["person_properties"][0]["name"], "city");
  EXPECT_EQ((*r)["person_properties"][0]["persons"], 1);

  // Every event: vip is a number once and a boolean once.
  auto all = ListProperties(*store_->Snapshot(), PropertyListOptions{});
  ASSERT_TRUE(all.ok());
  bool saw_vip = false;
  for (const auto& p : (*all)["properties"])
    if (p["name"] == "vip") {
      saw_vip = true;
      EXPECT_EQ(p["type"], "mixed");
    }
  EXPECT_TRUE(saw_vip);
  // A row budget makes the answer incomplete.
  PropertyListOptions small;
  small.max_rows = 2;
  auto part = ListProperties(*store_->Snapshot(), small);
  ASSERT_TRUE(part.ok());
  EXPECT_EQ((*part)["scanned_rows"], 2);
  EXPECT_EQ((*part)["complete"], false);
  // An unknown event is named.
  PropertyListOptions bad;
  bad.event = "nope";
  auto nf = ListProperties(*store_->Snapshot(), bad);
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(nf.status().field(), "event");
}

}  // namespace
}  // namespace ns

namespace ns {
namespace {

// The typed results (query/results.h) are what the operations layer reads; the JSON answer
// is ToJson of the same result: counts stay integers, measures reals, empty cells null.
TEST_F(QueryFixture, TypedResultsAndTheirJson) {
  Add("u1", "pay", "2025-03-01T10:00:00+08:00", {{"amount", PropValue::Num(30)}});
  Add("u2", "pay", "2025-03-01T11:00:00+08:00", {{"amount", PropValue::Num(10)}});
  Add("u1", "pay", "2025-03-03T11:00:00+08:00", {{"amount", PropValue::Num(5)}});
  ASSERT_TRUE(store_->Flush().ok());
  json tq = {{"kind", "trends"},
             {"series", {{{"event", "pay"}}, {{"event", "pay"}, {"math", "avg"}, {"property", "amount"}}}},
             {"date_from", "2025-03-01"},
             {"date_to", "2025-03-03"}};
  QueryScope scope(*store_, tz_);
  auto t = RunTrends(*ParseTrendsQuery(tq), scope.ctx().snap, tz_);
  ASSERT_TRUE(t.ok());
  ASSERT_EQ(t->series.size(), 2u);
  EXPECT_EQ(t->dates, (std::vector<std::string>{"2025-03-01", "2025-03-02", "2025-03-03"}));
  EXPECT_EQ(t->series[0].values[0].type, Measure::Type::kCount);
  EXPECT_EQ(t->series[0].values[0].count, 2u);
  EXPECT_FALSE(t->series[1].values[1].has_value());  // no payment on the 2nd: no average
  EXPECT_DOUBLE_EQ(t->series[1].values[0].value(), 20.0);
  json j = ToJson(*t);
  EXPECT_EQ(j["series"][0]["values"].dump(), "[2,0,1]");
  EXPECT_EQ(j["series"][1]["values"].dump(), "[20.0,null,5.0]");
  json via_api = Run(tq);
  via_api.erase("took_ms");
  EXPECT_EQ(via_api.dump(), j.dump());

  json fq = {{"kind", "funnel"},
             {"steps", {{{"event", "pay"}}, {{"event", "pay"}}}},
             {"date_from", "2025-03-01"},
             {"date_to", "2025-03-03"}};
  auto f = RunFunnel(*ParseFunnelQuery(fq), scope.ctx().snap, tz_, scope.ctx().namer);
  ASSERT_TRUE(f.ok());
  ASSERT_EQ(f->steps.size(), 2u);
  EXPECT_EQ(f->steps[0].count, 2u);
  EXPECT_EQ(f->steps[1].count, 1u);
  EXPECT_FALSE(f->steps[0].median_seconds_from_previous.has_value());
  ASSERT_TRUE(f->steps[1].dropoff_persons.has_value());
  EXPECT_EQ(*f->steps[1].dropoff_persons, std::vector<std::string>{"u2"});
  json fj = Run(fq);
  fj.erase("took_ms");
  EXPECT_EQ(fj.dump(), ToJson(*f).dump());

  json rq = {{"kind", "retention"}, {"start_event", "pay"},      {"return_event", "pay"},
             {"periods", 3},        {"date_from", "2025-03-01"}, {"date_to", "2025-03-01"}};
  auto r = RunRetention(*ParseRetentionQuery(rq), scope.ctx().snap, tz_);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->cohorts.size(), 1u);
  EXPECT_EQ(r->cohorts[0].size, 2u);
  EXPECT_EQ(r->cohorts[0].values, (std::vector<uint64_t>{0, 0, 1}));  // the start event is not its own return
  EXPECT_FALSE(r->cohorts[0].breakdown_value.has_value());
  json rj = Run(rq);
  rj.erase("took_ms");
  EXPECT_EQ(rj.dump(), ToJson(*r).dump());
}

}  // namespace
}  // namespace ns

namespace ns {
namespace {

// Queries carry a deadline: an expired one (time up, or the client gone) stops every kind
// between blocks with DeadlineExceeded (HTTP 504 "deadline_exceeded"), never a partial answer.
TEST_F(QueryFixture, DeadlineStopsEveryKind) {
  for (int d = 1; d <= 5; d++)
    for (int u = 0; u < 20; u++)
      Add("u" + std::to_string(u), u % 2 ? "a" : "b", "2025-03-0" + std::to_string(d) + "T10:00:00+08:00");
  ASSERT_TRUE(store_->Flush().ok());
  const std::vector<json> queries = {
      {{"kind", "trends"}, {"series", {{{"event", "a"}}}}, {"date_from", "2025-03-01"}, {"date_to", "2025-03-05"}},
      {{"kind", "funnel"},
       {"steps", {{{"event", "a"}}, {{"event", "b"}}}},
       {"date_from", "2025-03-01"},
       {"date_to", "2025-03-05"}},
      {{"kind", "funnel"},
       {"steps", {{{"event", "a"}}, {{"event", "b"}}}},
       {"order", "unordered"},
       {"date_from", "2025-03-01"},
       {"date_to", "2025-03-05"}},
      {{"kind", "retention"}, {"start_event", "a"}, {"date_from", "2025-03-01"}, {"date_to", "2025-03-05"}},
  };
  for (const json& q : queries) {
    Deadline none;
    EXPECT_TRUE(RunQuery(q, *store_, tz_, &none).ok()) << q.dump();
    Deadline generous = Deadline::After(60'000, [] { return false; });
    EXPECT_TRUE(RunQuery(q, *store_, tz_, &generous).ok()) << q.dump();

    Deadline late = Deadline::After(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(3));
    auto r = RunQuery(q, *store_, tz_, &late);
    ASSERT_FALSE(r.ok()) << q.dump();
    EXPECT_EQ(r.status().code(), StatusCode::kDeadlineExceeded);
    EXPECT_EQ(r.status().CodeName(), "deadline_exceeded");
    EXPECT_NE(r.status().message().find("time limit of 0.001 s"), std::string::npos) << r.status().message();

    Deadline gone = Deadline::After(0, [] { return true; });
    r = RunQuery(q, *store_, tz_, &gone);
    ASSERT_FALSE(r.ok()) << q.dump();
    EXPECT_EQ(r.status().message(), "query cancelled: the client closed the connection");
  }
}

TEST(DeadlineTest, ExpiresOnceAndStays) {
  Deadline never;
  EXPECT_FALSE(never.Expired());
  EXPECT_FALSE(never.fired());
  int probes = 0;
  Deadline d = Deadline::After(0, [&] { return ++probes >= 2; });
  EXPECT_FALSE(d.Expired());  // first probe: still there
  EXPECT_FALSE(d.Expired());  // within 20 ms: not probed again
  EXPECT_EQ(probes, 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(25));
  EXPECT_TRUE(d.Expired());
  EXPECT_TRUE(d.fired());
  EXPECT_TRUE(d.Expired());  // sticky, no more probes
  EXPECT_EQ(probes, 2);
}

}  // namespace
}  // namespace ns
