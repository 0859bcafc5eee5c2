// CSV export cells (ops/csv_text.h): OWASP's CSV-injection rule on every export, including
// the cases the probe found (issue 8, finding 8: "-1-1", "\t=1+2", a planted =HYPERLINK).
#include <gtest/gtest.h>

#include "core/log_safe.h"
#include "ops/alerts.h"
#include "ops/csv_text.h"

namespace ns {
namespace {

TEST(CsvCell, NeutralisesFormulaStarts) {
  EXPECT_EQ(CsvCell("=HYPERLINK(\"http://x\")"), "\"'=HYPERLINK(\"\"http://x\"\")\"");
  EXPECT_EQ(CsvCell("+1"), "'+1");
  EXPECT_EQ(CsvCell("-1-1"), "'-1-1");
  EXPECT_EQ(CsvCell("@SUM(A1)"), "'@SUM(A1)");
  EXPECT_EQ(CsvCell("\t=1+2"), "'\t=1+2");
  EXPECT_EQ(CsvCell("\r=1+2"), "\"'\r=1+2\"");
  EXPECT_EQ(CsvCell("-"), "'-");
  EXPECT_EQ(CsvCell("-e5"), "'-e5");
}

TEST(CsvCell, LeavesPlainNumbersAndTextAlone) {
  for (const char* n : {"-12", "-12.5", "-1e5", "-1.5E-3", "0", "42"}) EXPECT_EQ(CsvCell(n), n);
  EXPECT_EQ(CsvCell("user-1"), "user-1");
  EXPECT_EQ(CsvCell("a,b"), "\"a,b\"");
  EXPECT_EQ(CsvCell("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(CsvCell(""), "");
}

// Finding 9: channel URLs carry their token; lists and the audit log show them masked.
TEST(MaskChannelUrl, KeepsHostAndTheLastFourCharacters) {
  EXPECT_EQ(MaskChannelUrl("https://hooks.slack.com/services/T000/B000/abcdefghWXYZ"), "https://hooks.slack.com/\u2026WXYZ");
  EXPECT_EQ(MaskChannelUrl("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=0123-4567-89ab"),
            "https://qyapi.weixin.qq.com/\u202689ab");
  EXPECT_EQ(MaskChannelUrl("http://10.0.0.5:9000/hook"), "http://10.0.0.5:9000/\u2026");
  EXPECT_EQ(MaskChannelUrl("http://example.com"), "http://example.com");
}

// Finding 16: a newline in a logged value cannot start a new log line.
TEST(LogSafe, EscapesControlCharacters) {
  EXPECT_EQ(LogSafe("a@b.c\n2026-12-03 [info] admin logged in"), "a@b.c\\n2026-12-03 [info] admin logged in");
  EXPECT_EQ(LogSafe(std::string("x\0y\x1b", 4)), "x\\x00y\\x1b");
  EXPECT_EQ(LogSafe(std::string(1000, 'a')).size(), 256u);
}

}  // namespace
}  // namespace ns
