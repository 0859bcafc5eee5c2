// The four report tables (ops/report_tables.h) and CSV text (core/csv_text.h), until now
// tested only through the Python exports: headings in both languages, the rows taken from a
// scenario, its KPIs and its evaluation, the CSV form (BOM, CRLF, every cell neutralised
// against formula injection) and the XLSX container; parsing an uploaded CSV.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>
#include <vector>

#include "core/csv_text.h"
#include "core/time_zone.h"
#include "ops/report_tables.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::IsOk;
using ::testing::StartsWith;
using testing::StatusIs;

using Rows = std::vector<std::vector<std::string>>;

// ---------------------------------------------------------------- ParseCsvText

TEST(ParseCsvText, QuotesNewlinesAndLineEnds) {
  auto t = ParseCsvText("a,b,c\r\n\"x, y\",\"say \"\"hi\"\"\",\"two\nlines\"\n,,\nlast");
  ASSERT_THAT(t, IsOk());
  EXPECT_EQ(*t, (Rows{{"a", "b", "c"}, {"x, y", "say \"hi\"", "two\nlines"}, {"", "", ""}, {"last"}}));
  auto trailing = ParseCsvText("a\n");
  ASSERT_THAT(trailing, IsOk());
  EXPECT_EQ(*trailing, (Rows{{"a"}}));
  auto empty = ParseCsvText("");
  ASSERT_THAT(empty, IsOk());
  EXPECT_TRUE(empty->empty());
}

TEST(ParseCsvText, AnUnclosedQuoteNamesTheLineItOpenedOn) {
  EXPECT_THAT(ParseCsvText("a,b\n1,2\n3,\"four\nfive\n"),
              StatusIs(StatusCode::kInvalidArgument, "CSV: the quoted field opened on line 3 is never closed"));
}

// Round trip: what CsvCell writes, ParseCsvText reads back (apart from the apostrophe that
// neutralises a formula).
TEST(CsvCell, RoundTripsThroughTheParser) {
  const std::vector<std::string> cells = {"plain", "a,b", "say \"hi\"", "two\nlines", "", "-12.5", "user-1"};
  std::string line;
  for (size_t i = 0; i < cells.size(); i++) line += (i ? "," : "") + CsvCell(cells[i]);
  auto t = ParseCsvText(line);
  ASSERT_THAT(t, IsOk());
  ASSERT_EQ(t->size(), 1u);
  EXPECT_EQ((*t)[0], cells);
  auto f = ParseCsvText(CsvCell("=1+2") + "," + CsvCell("@cmd"));
  ASSERT_THAT(f, IsOk());
  EXPECT_THAT((*f)[0], ElementsAre("'=1+2", "'@cmd"));
}

// ---------------------------------------------------------------- ScenarioTables

class ReportTablesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tz = TimeZone::Load("Asia/Shanghai");
    ASSERT_THAT(tz, IsOk());
    tz_ = std::make_unique<TimeZone>(*tz);
    scenario_ = {
        {"id", 3},
        {"name", "=HYPERLINK(\"http://evil\",\"click\")"},
        {"business_module", "checkout"},
        {"goal", {{"metric", "pay conversion"}, {"target", 0.2}}},
        {"key_user_group", {{"cohort_id", 7}}},
        {"pain_points", json::array({"slow page", "coupon, unclear"})},
        {"success_criteria", json::array({"conversion >= 20%"})},
        {"owner", "ana"},
        {"period", {{"from", "2026-03-01"}, {"to", "2026-03-31"}}},
        {"status", "active"},
        {"actions",
         json::array({json{{"id", 11},
                           {"strategy", "recall"},
                           {"action", "+1 push"},
                           {"owner", "bo"},
                           {"start_date", "2026-03-02"},
                           {"due_date", "2026-03-05"},
                           {"resources", {{"budget", 1200}, {"currency", "CNY"}, {"channels", json::array({"sms"})}}},
                           {"delivery_standard", ""},
                           {"status", "delayed"},
                           {"depends_on", json::array({10})},
                           {"progress", json::array({json{{"date", "2026-03-03"}, {"note", "drafted"}}})}}})}};
    kpis_ = json::array({json{{"name", "pay conversion"},
                              {"target", 0.2},
                              {"actual", 0.18},
                              {"achievement_rate", 0.9},
                              {"light", "yellow"},
                              {"reason", "-3 pts: feed ads"},
                              {"auto_reason", "feed ads 100% of the drop"},
                              {"owner", "ana"},
                              {"refreshed_at", int64_t{1772409600000}}}});  // 2026-03-02 08:00 +08:00
    evaluation_ = {
        {"period", {{"from", "2026-03-01"}, {"to", "2026-03-31"}}},
        {"kpis",
         json::array({json{{"name", "pay conversion"}, {"target", 0.2}, {"actual", 0.18}, {"achievement_rate", 0.9}}})},
        {"what_worked", "segmenting"},
        {"problems", "@late copy"},
        {"next_measures", ""},
        {"owner", "ana"}};
  }

  std::unique_ptr<TimeZone> tz_;
  json scenario_, kpis_, evaluation_;
};

TEST_F(ReportTablesTest, FourTablesWithTheTemplateHeadingsInBothLanguages) {
  auto en = ScenarioTables(scenario_, kpis_, evaluation_, "en", *tz_);
  auto zh = ScenarioTables(scenario_, kpis_, evaluation_, "zh", *tz_);
  ASSERT_EQ(en.size(), 4u);
  ASSERT_EQ(zh.size(), 4u);
  const char* keys[] = {"requirements", "process", "monitoring", "evaluation"};
  for (size_t i = 0; i < 4; i++) {
    EXPECT_EQ(en[i].key, keys[i]);
    EXPECT_EQ(zh[i].key, keys[i]);
    EXPECT_EQ(en[i].headers.size(), zh[i].headers.size());
    for (const auto& row : en[i].rows) EXPECT_EQ(row.size(), en[i].headers.size()) << keys[i];
  }
  EXPECT_EQ(en[1].title, "Process design");
  EXPECT_EQ(zh[1].title, "流程设计表");
  EXPECT_EQ(zh[0].headers[0], "场景名称");
  EXPECT_EQ(en[2].percent_columns, std::vector<std::string>{"Achievement rate"});
  EXPECT_EQ(zh[2].percent_columns, std::vector<std::string>{"达成率"});

  // Requirements: nested documents as readable text.
  const auto& req = en[0].rows.at(0);
  EXPECT_EQ(std::get<std::string>(req[2]), "pay conversion \u2265 0.2");
  EXPECT_EQ(std::get<std::string>(req[3]), "cohort 7");
  EXPECT_EQ(std::get<std::string>(req[4]), "slow page; coupon, unclear");
  EXPECT_EQ(std::get<std::string>(req[7]), "2026-03-01 ~ 2026-03-31");
  EXPECT_EQ(std::get<std::string>(req[8]), "Active");
  EXPECT_EQ(std::get<std::string>(zh[0].rows.at(0)[8]), "进行中");

  // Process: the id as a number, resources in words, status labels, dated progress.
  const auto& act = en[1].rows.at(0);
  EXPECT_EQ(std::get<double>(act[0]), 11);
  EXPECT_EQ(std::get<std::string>(act[6]), "budget 1200 CNY; channels sms");
  EXPECT_EQ(std::get<std::string>(act[8]), "Delayed");
  EXPECT_EQ(std::get<std::string>(act[9]), "10");
  EXPECT_EQ(std::get<std::string>(act[10]), "2026-03-03 drafted");
  EXPECT_EQ(std::get<std::string>(zh[1].rows.at(0)[8]), "延期");
  EXPECT_EQ(std::get<std::string>(zh[1].rows.at(0)[6]), "预算 1200 CNY; 渠道 sms");

  // Monitoring: numbers stay numbers, the time in the project's zone.
  const auto& mon = en[2].rows.at(0);
  EXPECT_EQ(std::get<double>(mon[2]), 0.2);
  EXPECT_EQ(std::get<double>(mon[4]), 0.9);
  EXPECT_EQ(std::get<std::string>(mon[5]), "Yellow");
  EXPECT_EQ(std::get<std::string>(mon[6]), "-3 pts: feed ads\n[auto] feed ads 100% of the drop");
  EXPECT_EQ(std::get<std::string>(mon[8]), "2026-03-02 08:00");

  // Evaluation: one row per KPI; one empty row when there is none.
  EXPECT_EQ(std::get<std::string>(en[3].rows.at(0)[6]), "@late copy");
  json no_kpis = evaluation_;
  no_kpis.erase("kpis");
  auto empty = ScenarioTables(scenario_, json::array(), no_kpis, "en", *tz_);
  ASSERT_EQ(empty[3].rows.size(), 1u);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(empty[3].rows[0][2]));
  EXPECT_TRUE(empty[2].rows.empty());
}

// Every text cell of an export goes through CsvCell: a scenario named like a formula, an
// action starting with +, a reason starting with -, a note starting with @.
TEST_F(ReportTablesTest, CsvHasABomCrlfAndNoLiveFormulas) {
  auto tables = ScenarioTables(scenario_, kpis_, evaluation_, "en", *tz_);
  const std::string req = TableToCsv(tables[0]);
  EXPECT_THAT(req, StartsWith("\xEF\xBB\xBF"
                              "Scenario,Business module,Core goal,"));
  EXPECT_THAT(req, HasSubstr("\r\n\"'=HYPERLINK(\"\"http://evil\"\",\"\"click\"\")\",checkout,"));
  EXPECT_EQ(req.substr(req.size() - 2), "\r\n");
  EXPECT_THAT(TableToCsv(tables[1]), HasSubstr("\r\n11,recall,'+1 push,bo,2026-03-02,2026-03-05,"));
  const std::string mon = TableToCsv(tables[2]);
  EXPECT_THAT(mon,
              HasSubstr(",pay conversion,0.2,0.18,0.9,Yellow,\"'-3 pts: feed ads\n[auto] feed ads 100% of the drop\","
                        "ana,2026-03-02 08:00\r\n"));
  EXPECT_THAT(TableToCsv(tables[3]), HasSubstr(",segmenting,'@late copy,,ana\r\n"));
  // Read back, the cells are the table's (neutralised) text.
  auto parsed = ParseCsvText(std::string_view(req).substr(3));
  ASSERT_THAT(parsed, IsOk());
  ASSERT_EQ(parsed->size(), 2u);
  EXPECT_EQ((*parsed)[0], tables[0].headers);
  EXPECT_EQ((*parsed)[1][0], "'=HYPERLINK(\"http://evil\",\"click\")");
}

TEST_F(ReportTablesTest, XlsxIsAZipWorkbook) {
  auto tables = ScenarioTables(scenario_, kpis_, evaluation_, "zh", *tz_);
  auto xlsx = TablesToXlsx(tables);
  ASSERT_THAT(xlsx, IsOk());
  ASSERT_GT(xlsx->size(), 1000u);
  EXPECT_THAT(*xlsx, StartsWith("PK\x03\x04"));
  EXPECT_THAT(*xlsx, HasSubstr("xl/workbook.xml"));
}

}  // namespace
}  // namespace ns
