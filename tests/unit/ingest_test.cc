// Native ingestion: accepted shapes and the exact error texts for bad input.
#include <gtest/gtest.h>

#include "ingest/csv_reader.h"
#include "ingest/gzip.h"
#include "ingest/native_parser.h"

namespace ns {
namespace {

constexpr int64_t kNow = 1'763'769'600'000;  // 2025-11-22T00:00:00Z

const TimeZone& Shanghai() {
  static TimeZone tz = *TimeZone::Load("Asia/Shanghai");
  return tz;
}

ParsedBatch Parse(const std::string& body, bool ndjson = false) {
  auto r = ParseNativeBatch(body, ndjson, Shanghai(), kNow, IngestLimits{});
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ParsedBatch{};
}

TEST(NativeParser, AcceptsArrayObjectAndNdjson) {
  auto a = Parse(
      R"([{"event":"pay","distinct_id":"u1","timestamp":"2025-11-21T10:00:00+08:00","properties":{"amount":9.5}}])");
  ASSERT_EQ(a.events.size(), 1u);
  EXPECT_EQ(a.events[0].ts_ms, 1'763'690'400'000);
  EXPECT_EQ(a.events[0].Find("amount")->num, 9.5);
  auto o = Parse(R"({"events":[{"event":"a","distinct_id":42,"timestamp":1763690400000}]})");
  ASSERT_EQ(o.events.size(), 1u);
  EXPECT_EQ(o.events[0].distinct_id, "42");
  EXPECT_EQ(o.events[0].ts_ms, 1'763'690'400'000);
  auto n = Parse("{\"event\":\"a\",\"distinct_id\":\"x\"}\n\n{\"event\":\"b\",\"distinct_id\":\"y\"}\n", true);
  EXPECT_EQ(n.events.size(), 2u);
  EXPECT_EQ(n.events[0].ts_ms, kNow);  // no timestamp: server time
}

TEST(NativeParser, MalformedJsonNamesThePosition) {
  auto r = ParseNativeBatch(R"([{"event":"a",]])", false, Shanghai(), kNow, IngestLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("malformed JSON at byte 14 (line 1, column 15)"), std::string::npos)
      << r.status().message();
}

struct BadCase {
  const char* body;
  const char* code;
  const char* field;
  const char* message;
};

class NativeParserErrors : public ::testing::TestWithParam<BadCase> {};

TEST_P(NativeParserErrors, RejectsOnlyTheBadEventWithAPreciseMessage) {
  const BadCase& c = GetParam();
  std::string body = std::string("[{\"event\":\"ok\",\"distinct_id\":\"u\"},") + c.body + "]";
  auto b = Parse(body);
  ASSERT_EQ(b.events.size(), 1u) << "the good event is kept";
  ASSERT_EQ(b.errors.size(), 1u);
  EXPECT_EQ(b.errors[0].index, 1u);
  EXPECT_EQ(b.errors[0].code, c.code);
  EXPECT_EQ(b.errors[0].field, c.field);
  EXPECT_EQ(b.errors[0].message, c.message);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, NativeParserErrors,
    ::testing::Values(
        BadCase{R"({"distinct_id":"u"})", "invalid_event", "events[1].event",
                "events[1].event: required field is missing"},
        BadCase{R"({"event":"","distinct_id":"u"})", "invalid_event", "events[1].event",
                "events[1].event: must be 1 to 200 characters, got 0"},
        BadCase{R"({"event":7,"distinct_id":"u"})", "invalid_event", "events[1].event",
                "events[1].event: expected a string, got number"},
        BadCase{R"({"event":"a"})", "invalid_event", "events[1].distinct_id",
                "events[1].distinct_id: required field is missing"},
        BadCase{R"({"event":"a","distinct_id":{"x":1}})", "invalid_event", "events[1].distinct_id",
                "events[1].distinct_id: expected a string, got object"},
        BadCase{R"({"event":"a","distinct_id":"u","properties":[1]})", "invalid_event", "events[1].properties",
                "events[1].properties: expected an object, got array"},
        BadCase{
            R"({"event":"a","distinct_id":"u","timestamp":"1999-12-31T23:59:59Z"})", "invalid_timestamp",
            "events[1].timestamp",
            "events[1].timestamp: timestamp 1999-12-31T23:59:59.000Z is before 2000-01-01 (rejected as implausible)"},
        BadCase{R"({"event":"a","distinct_id":"u","timestamp":"2025-11-24T00:00:00Z"})", "invalid_timestamp",
                "events[1].timestamp",
                "events[1].timestamp: timestamp 2025-11-24T00:00:00.000Z is more than 1 day in the future (server time "
                "2025-11-22T00:00:00.000Z)"},
        BadCase{R"({"event":"a","distinct_id":"u","timestamp":"yesterday"})", "invalid_timestamp",
                "events[1].timestamp",
                "events[1].timestamp: invalid ISO-8601 timestamp 'yesterday': expected YYYY-MM-DD at the start"},
        BadCase{R"({"event":"a","distinct_id":"u","timestamp":true})", "invalid_timestamp", "events[1].timestamp",
                "events[1].timestamp: expected an ISO-8601 string or epoch milliseconds, got boolean"},
        BadCase{R"(5)", "invalid_event", "events[1]", "events[1]: expected an event object, got number"},
        // Issue 8, finding 12: ids through merges get the same limits; NUL; 2^64-1 as a timestamp.
        BadCase{
            R"({"event":"a","distinct_id":"u","properties":{"$anon_distinct_id":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}})",
            "invalid_event", "events[1].properties.$anon_distinct_id",
            "events[1].properties.$anon_distinct_id: must be 1 to 200 characters, got 209"},
        BadCase{R"({"event":"$create_alias","distinct_id":"u","properties":{"alias":"a\u0000b"}})", "invalid_event",
                "events[1].properties.alias",
                "events[1].properties.alias: must not contain control characters (found byte 0)"},
        BadCase{R"({"event":"a\u0000","distinct_id":"u"})", "invalid_event", "events[1].event",
                "events[1].event: must not contain control characters (found byte 0)"},
        BadCase{R"({"event":"a","distinct_id":"u","timestamp":18446744073709551615})", "invalid_timestamp",
                "events[1].timestamp",
                "events[1].timestamp: epoch milliseconds 18446744073709551615 are out of range"}));

TEST(NativeParser, InvalidUtf8IsRejected) {
  auto r = ParseNativeBatch("[{\"event\":\"a\xff\",\"distinct_id\":\"u\"}]", false, Shanghai(), kNow, IngestLimits{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("malformed JSON at byte"), std::string::npos);
  EXPECT_NE(r.status().message().find("UTF-8"), std::string::npos) << r.status().message();
}

TEST(NativeParser, LimitsAreEnforced) {
  IngestLimits small;
  small.max_body_bytes = 10;
  auto r = ParseNativeBatch("[{\"event\":\"a\",\"distinct_id\":\"u\"}]", false, Shanghai(), kNow, small);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kResourceExhausted);
  IngestLimits ev;
  ev.max_event_bytes = 60;
  std::string big = "[{\"event\":\"a\",\"distinct_id\":\"u\",\"properties\":{\"x\":\"" + std::string(100, 'y') +
                    "\"}},{\"event\":\"b\",\"distinct_id\":\"u\"}]";
  auto b = ParseNativeBatch(big, false, Shanghai(), kNow, ev);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->events.size(), 1u);
  ASSERT_EQ(b->errors.size(), 1u);
  EXPECT_EQ(b->errors[0].code, "event_too_large");
}

TEST(NativeParser, IdentityAndPersonProperties) {
  auto b = Parse(R"([{"event":"$identify","distinct_id":"user","properties":{"$anon_distinct_id":"anon",
      "$set":{"city":"Beijing"},"$set_once":{"first":"x"}}},
      {"event":"$create_alias","distinct_id":"user","properties":{"alias":"other"}}])");
  ASSERT_EQ(b.events.size(), 2u);
  EXPECT_EQ(b.events[0].merge_with, std::vector<std::string>{"anon"});
  ASSERT_EQ(b.events[0].person_set.size(), 1u);
  EXPECT_EQ(b.events[0].person_set[0].value.str, "Beijing");
  EXPECT_EQ(b.events[0].person_set_once[0].key, "first");
  EXPECT_EQ(b.events[1].merge_with, std::vector<std::string>{"other"});
}

TEST(Gzip, RoundTripAndBomb) {
  auto bad = Gunzip("not gzip at all", 1000);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
}

TEST(CsvReader, QuotesAndLines) {
  const char* text = "a,b,c\n1,\"x,y\",\"he said \"\"hi\"\"\"\r\n2,\"multi\nline\",z\n";
  FILE* f = fmemopen(const_cast<char*>(text), strlen(text), "r");
  CsvReader r(f);
  std::vector<std::string> row;
  ASSERT_TRUE(*r.Next(&row));
  ASSERT_TRUE(*r.Next(&row));
  EXPECT_EQ(row, (std::vector<std::string>{"1", "x,y", "he said \"hi\""}));
  ASSERT_TRUE(*r.Next(&row));
  EXPECT_EQ(r.line(), 3u);
  EXPECT_EQ(row[1], "multi\nline");
  EXPECT_FALSE(*r.Next(&row));
  fclose(f);
}

TEST(TimeZone, DayBoundariesAndDst) {
  auto ny = *TimeZone::Load("America/New_York");
  auto d = *ParseDate("2025-03-09", "d");  // DST starts at 02:00 local
  EXPECT_EQ(ny.DayStartMs(d + 1) - ny.DayStartMs(d), 23 * 3'600'000LL);
  auto buckets = ny.MakeBuckets(d, d, Interval::kHour);
  EXPECT_EQ(buckets.size(), 23u);
  const TimeZone& sh = Shanghai();
  // 2025-03-01T16:30Z is 2025-03-02 00:30 in Shanghai.
  EXPECT_EQ(FormatDate(sh.LocalDay(*ParseIsoTimestamp("2025-03-01T16:30:00Z", sh))), "2025-03-02");
  EXPECT_EQ(FormatDate(sh.LocalDay(*ParseIsoTimestamp("2025-03-01T23:30:00+08:00", sh))), "2025-03-01");
  auto bad = TimeZone::Load("Mars/Olympus");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "unknown time zone 'Mars/Olympus' (expected an IANA name such as Asia/Shanghai or UTC)");
  auto weeks = sh.MakeBuckets(*ParseDate("2025-03-05", "d"), *ParseDate("2025-03-20", "d"), Interval::kWeek);
  ASSERT_EQ(weeks.size(), 3u);
  EXPECT_EQ(weeks[0].label, "2025-03-03");  // Monday of the first week
}

}  // namespace
}  // namespace ns

namespace ns {
namespace {
TEST(Utf8, FindsInvalidSequences) {
  EXPECT_EQ(FindInvalidUtf8("plain"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("上海 ok"), std::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("\xc0\xaf"), 0u);       // overlong '/'
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);  // surrogate
  EXPECT_EQ(FindInvalidUtf8("\xe4\xb8"), 0u);       // truncated
}
}  // namespace
}  // namespace ns
