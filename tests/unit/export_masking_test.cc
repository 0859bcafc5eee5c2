// CSV export cells (core/csv_text.h): OWASP's CSV-injection rule on every export, including
// the cases the probe found (issue 8, finding 8: "-1-1", "\t=1+2", a planted =HYPERLINK).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/csv_text.h"
#include "core/log_safe.h"
#include "ops/alerts.h"
#include "ops/http_client.h"
#include "ops/notify.h"
#include "test_util.h"

namespace ns {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

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
  EXPECT_EQ(MaskChannelUrl("https://hooks.slack.com/services/T000/B000/abcdefghWXYZ"),
            "https://hooks.slack.com/\u2026WXYZ");
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

// Finding 10: hooks cannot reach the server's own network unless allowed.
TEST(WebhookAddresses, LoopbackPrivateAndLinkLocalAreRefused) {
  SetAllowPrivateAddresses(false);
  for (const char* h :
       {"127.0.0.1", "0x7f000001", "2130706433", "127.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
        "100.64.0.1", "0.0.0.0", "localhost", "[::1]", "[fe80::1]", "[fd00::1]", "[::ffff:127.0.0.1]"})
    EXPECT_THAT(CheckWebhookHostLiteral(h), StatusIs(StatusCode::kPermissionDenied)) << h;
  for (const char* h : {"8.8.8.8", "hooks.slack.com", "[2001:db8::1]", "172.32.0.1"})
    EXPECT_THAT(CheckWebhookHostLiteral(h), IsOk()) << h;
  NotificationChannel ch{1, "", "webhook", "http://0x7f000001:8080/hook", ""};
  EXPECT_THAT(ValidateChannel(ch), StatusIs(StatusCode::kInvalidArgument, HasSubstr("--allow-private-webhooks")));
  auto r = HttpPost("http://127.0.0.1:9/x", {{"Content-Type", "text/plain"}}, "x", 500);
  EXPECT_THAT(r, StatusIs(StatusCode::kPermissionDenied));
  SetAllowPrivateAddresses(true);
  EXPECT_THAT(CheckWebhookHostLiteral("127.0.0.1"), IsOk());
  SetAllowPrivateAddresses(false);
}

}  // namespace
}  // namespace ns
