// Saved insights' building blocks: relative dates (every form, month ends, leap days, quarter
// and year edges, errors naming the field), the validation of insights and dashboards (grid,
// overlaps, automatic rows, date overrides) and the answer cache (per store state, least
// recently used out).
#include <gtest/gtest.h>

#include "insights/insight_docs.h"
#include "insights/result_cache.h"
#include "query/relative_dates.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::_;
using ::testing::HasSubstr;
using testing::StatusIs;

int32_t D(const char* s) { return ParseDate(s, "d").value(); }

TEST(RelativeDates, EveryForm) {
  struct Case {
    const char* today;
    const char* expr;
    const char* from;
    const char* to;
  };
  const Case cases[] = {
      {"2024-03-31", "today", "2024-03-31", "2024-03-31"},
      {"2024-03-31", "yesterday", "2024-03-30", "2024-03-30"},
      {"2024-03-31", "-0d", "2024-03-31", "2024-03-31"},
      {"2024-03-31", "-30d", "2024-03-01", "2024-03-01"},
      {"2024-03-31", "-2w", "2024-03-17", "2024-03-17"},
      {"2024-03-31", "-1m", "2024-02-29", "2024-02-29"},  // clamped to the leap February's end
      {"2024-03-31", "-13m", "2023-02-28", "2023-02-28"},
      {"2024-02-29", "-1y", "2023-02-28", "2023-02-28"},
      {"2024-03-31", "last_7_days", "2024-03-25", "2024-03-31"},
      {"2024-03-31", "last_1_days", "2024-03-31", "2024-03-31"},
      {"2024-03-31", "this_week", "2024-03-25", "2024-03-31"},  // a Sunday: the week began Monday
      {"2024-03-25", "this_week", "2024-03-25", "2024-03-25"},  // a Monday
      {"2024-03-31", "last_week", "2024-03-18", "2024-03-24"},
      {"2024-03-31", "this_month", "2024-03-01", "2024-03-31"},
      {"2024-03-31", "last_month", "2024-02-01", "2024-02-29"},
      {"2024-01-15", "last_month", "2023-12-01", "2023-12-31"},
      {"2024-03-31", "this_quarter", "2024-01-01", "2024-03-31"},
      {"2024-03-31", "last_quarter", "2023-10-01", "2023-12-31"},
      {"2024-11-22", "this_quarter", "2024-10-01", "2024-11-22"},
      {"2024-11-22", "last_quarter", "2024-07-01", "2024-09-30"},
      {"2024-03-31", "this_year", "2024-01-01", "2024-03-31"},
      {"2024-03-31", "last_year", "2023-01-01", "2023-12-31"},
  };
  for (const Case& c : cases) {
    auto r = ResolveRelativeDate(c.expr, D(c.today), "date_from");
    ASSERT_TRUE(r.ok()) << c.expr << ": " << r.status().ToString();
    EXPECT_EQ(FormatDate(r->from), c.from) << c.expr << " on " << c.today;
    EXPECT_EQ(FormatDate(r->to), c.to) << c.expr << " on " << c.today;
  }
}

TEST(RelativeDates, ErrorsNameTheField) {
  for (const char* bad : {"", "Today", "tomorrow", "-3x", "-d", "-99999d", "-3661d", "-11y", "last_0_days",
                          "last_3661_days", "last_x_days", "this_decade", "+3d"}) {
    EXPECT_THAT(ResolveRelativeDate(bad, D("2024-03-31"), "date_to"),
                StatusIs(StatusCode::kInvalidArgument, HasSubstr("got '" + std::string(bad) + "'"), "date_to"))
        << bad;
  }
  EXPECT_TRUE(IsRelativeDate("-3d"));
  EXPECT_TRUE(IsRelativeDate("last_month"));
  EXPECT_FALSE(IsRelativeDate("2024-03-01"));
  EXPECT_FALSE(IsRelativeDate("2024-3-1"));  // a date, for ParseDate to refuse
}

TEST(RelativeDates, RequestEndsTakeFirstAndLastDay) {
  json q{{"kind", "trends"}, {"date_from", "last_month"}, {"date_to", "last_month"}, {"other", "-3d"}};
  ASSERT_TRUE(ResolveRelativeDates(q, D("2024-03-31")).ok());
  EXPECT_EQ(q["date_from"], "2024-02-01");
  EXPECT_EQ(q["date_to"], "2024-02-29");
  EXPECT_EQ(q["other"], "-3d");  // only the two ends
  json abs{{"date_from", "2024-01-01"}, {"date_to", 5}};
  ASSERT_TRUE(ResolveRelativeDates(abs, D("2024-03-31")).ok());
  EXPECT_EQ(abs, (json{{"date_from", "2024-01-01"}, {"date_to", 5}}));  // left to the kind's parser
  json bad{{"date_to", "soon"}};
  EXPECT_THAT(ResolveRelativeDates(bad, D("2024-03-31")),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("soon"), "date_to"));
}

json Trends() {
  return json{{"kind", "trends"}, {"series", {{{"event", "pay"}}}}, {"date_from", "-6d"}, {"date_to", "today"}};
}

TEST(InsightDocs, Validation) {
  const int32_t today = D("2024-03-31");
  auto d = ValidateInsight(json{{"name", "a"}, {"query", Trends()}, {"tags", {"x", "y", "x"}}}, nullptr, today);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(d->kind, "trends");
  EXPECT_EQ(d->tags, (std::vector<std::string>{"x", "y"}));
  json breakdown = Trends();
  breakdown["breakdown"] = "cohort";
  breakdown["breakdown_cohorts"] = {3, 4};
  EXPECT_TRUE(ValidateInsight(json{{"name", "a"}, {"query", breakdown}}, nullptr, today).ok());
  breakdown["breakdown_cohorts"] = json::array();
  EXPECT_THAT(ValidateInsight(json{{"name", "a"}, {"query", breakdown}}, nullptr, today),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("breakdown_cohorts"), "query.breakdown_cohorts"));
  json q = Trends();
  q["interval"] = "fortnight";
  EXPECT_THAT(
      ValidateInsight(json{{"name", "a"}, {"query", q}}, nullptr, today),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("query: unknown interval 'fortnight'"), "query.interval"));
  EXPECT_THAT(ValidateInsight(json{{"name", std::string(201, 'n')}, {"query", Trends()}}, nullptr, today),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("1 to 200 bytes"), "name"));
  EXPECT_THAT(ValidateInsight(json::array(), nullptr, today), StatusIs(StatusCode::kInvalidArgument, _, "body"));
  // A PATCH keeps what it does not name.
  auto p = ValidateInsight(json{{"description", "d"}}, &*d, today);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->name, "a");
  EXPECT_EQ(p->query, Trends());
  EXPECT_EQ(p->description, "d");
}

TEST(InsightDocs, DashboardGrid) {
  const int32_t today = D("2024-03-31");
  auto d = ValidateDashboard(json::parse(R"({"name": "g", "tiles": [
      {"insight_id": 1, "w": 12, "h": 2}, {"insight_id": 2, "x": 0, "w": 6}, {"insight_id": 3, "x": 6, "y": 2, "w": 6},
      {"insight_id": 4}]})"),
                             nullptr, today);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ASSERT_EQ(d->tiles.size(), 4u);
  EXPECT_EQ(d->tiles[1].y, 2);  // below the first
  EXPECT_EQ(d->tiles[3].y, 6);  // below everything before it
  EXPECT_THAT(
      ValidateDashboard(json::parse(R"({"name": "g", "tiles": [{"insight_id": 1, "x": 0, "y": 0, "w": 4},
      {"insight_id": 2, "x": 3, "y": 3, "w": 4, "h": 1}]})"),
                        nullptr, today),
      StatusIs(StatusCode::kInvalidArgument, "tiles[1]: overlaps tiles[0] (columns 0-3, rows 0-3)", "tiles[1]"));
  // Touching edges do not overlap.
  EXPECT_TRUE(ValidateDashboard(json::parse(R"({"name": "g", "tiles": [{"insight_id": 1, "x": 0, "y": 0, "w": 4},
      {"insight_id": 2, "x": 4, "y": 0, "w": 8}, {"insight_id": 3, "x": 0, "y": 4, "w": 12}]})"),
                                nullptr, today)
                  .ok());
  EXPECT_THAT(
      ValidateDashboard(json::parse(R"({"name": "g", "tiles": [{"insight_id": 1, "x": 11, "w": 2}]})"), nullptr, today),
      StatusIs(StatusCode::kInvalidArgument, HasSubstr("x + w is 13"), "tiles[0].w"));
  EXPECT_THAT(ValidateDashboard(json::parse(R"({"name": "g", "tiles": [{"insight_id": 0}]})"), nullptr, today),
              StatusIs(StatusCode::kInvalidArgument, _, "tiles[0].insight_id"));
  EXPECT_THAT(ValidateDashboard(json::parse(R"({"name": "g", "date_to": "-2q"})"), nullptr, today),
              StatusIs(StatusCode::kInvalidArgument, _, "date_to"));
  auto with_dates = ValidateDashboard(json::parse(R"({"name": "g", "date_from": "-7d"})"), nullptr, today);
  ASSERT_TRUE(with_dates.ok());
  auto cleared = ValidateDashboard(json::parse(R"({"date_from": null})"), &*with_dates, today);
  ASSERT_TRUE(cleared.ok());
  EXPECT_FALSE(cleared->date_from.has_value());
}

TEST(InsightDocs, DateOverride) {
  const int32_t today = D("2024-03-31");
  auto o = ParseDateOverride(json{{"date_range", "last_month"}}, today);
  ASSERT_TRUE(o.ok());
  EXPECT_EQ(ApplyDateOverride(Trends(), *o)["date_from"], "last_month");
  EXPECT_EQ(ApplyDateOverride(Trends(), *o)["date_to"], "last_month");
  json rfm{{"kind", "rfm"}};
  EXPECT_EQ(ApplyDateOverride(rfm, *o), rfm);  // only the ends a query has
  EXPECT_THAT(ParseDateOverride(json{{"date_range", "today"}, {"date_to", "today"}}, today),
              StatusIs(StatusCode::kInvalidArgument, HasSubstr("not both"), "date_range"));
  EXPECT_THAT(ParseDateOverride(json{{"date_from", "2024-02-30"}}, today),
              StatusIs(StatusCode::kInvalidArgument, _, "date_from"));
  auto one = ParseDateOverride(json{{"date_to", "2024-01-31"}}, today);
  ASSERT_TRUE(one.ok());
  EXPECT_FALSE(one->from.has_value());
  EXPECT_EQ(ApplyDateOverride(Trends(), *one)["date_from"], "-6d");
}

SnapshotState State(uint64_t version) { return SnapshotState{{}, version, 10}; }

TEST(ResultCache, PerStateAndLeastRecentlyUsed) {
  ResultCache cache(2);
  auto answer = [](int v) { return std::make_shared<const CachedResult>(CachedResult{json(v), v}); };
  EXPECT_EQ(cache.Find("p", "a", State(1)), nullptr);
  cache.Put("p", "a", State(1), answer(1));
  cache.Put("p", "b", State(1), answer(2));
  ASSERT_NE(cache.Find("p", "a", State(1)), nullptr);  // a is now the most recent
  EXPECT_EQ(cache.Find("p", "a", State(1))->result, 1);
  EXPECT_EQ(cache.Find("p", "a", State(2)), nullptr);  // another state: never served
  EXPECT_EQ(cache.Find("q", "a", State(1)), nullptr);  // another project
  cache.Put("p", "c", State(1), answer(3));            // evicts b, the least recently used
  EXPECT_EQ(cache.Find("p", "b", State(1)), nullptr);
  EXPECT_NE(cache.Find("p", "a", State(1)), nullptr);
  EXPECT_NE(cache.Find("p", "c", State(1)), nullptr);
  cache.Put("p", "d", State(2), answer(4));  // a newer state: the older answers go at once
  EXPECT_EQ(cache.stats().entries, 1u);
  EXPECT_EQ(cache.Find("p", "a", State(2)), nullptr);
  EXPECT_EQ(cache.Find("p", "d", State(2))->result, 4);
  cache.Put("q", "a", State(7), answer(5));  // projects are apart
  EXPECT_EQ(cache.stats().entries, 2u);
  EXPECT_GT(cache.stats().hits, 0u);
}

}  // namespace
}  // namespace ns
