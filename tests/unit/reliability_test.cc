// Regression tests for what fuzzing and fault injection found (docs/reliability.md):
// storage under write failures (a file that cannot grow: RLIMIT_FSIZE makes write() fail
// part-way with EFBIG, like a full disk) and parser inputs that used to escape as exceptions.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <string>
#include <vector>

#include "core/time_zone.h"
#include "ingest/collect_protocol.h"
#include "ingest/native_parser.h"
#include "server/http_types.h"
#include "storage/block.h"
#include "storage/event_store.h"
#include "storage/wal.h"
#include "test_util.h"

namespace ns {
namespace {

using ::testing::HasSubstr;
using testing::IsOk;
using testing::StatusIs;

// Limits the size of files this process writes (soft RLIMIT_FSIZE) while in scope.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    std::signal(SIGXFSZ, SIG_IGN);  // write() fails with EFBIG instead of killing the process
    getrlimit(RLIMIT_FSIZE, &old_);
    rlimit l = old_;
    l.rlim_cur = bytes;
    EXPECT_EQ(setrlimit(RLIMIT_FSIZE, &l), 0);
  }
  ~FileSizeLimit() { setrlimit(RLIMIT_FSIZE, &old_); }

 private:
  rlimit old_{};
};

std::vector<Event> Batch(const std::string& tag, int n, size_t prop_bytes = 10) {
  std::vector<Event> out;
  for (int i = 0; i < n; i++) {
    Event e;
    e.event = "ev";
    e.distinct_id = tag + "-user-" + std::to_string(i % 7);
    e.ts_ms = 1'790'000'000'000 + i;
    e.uuid = Uuid::FromClientId(tag + "-" + std::to_string(i));
    e.has_uuid = true;
    e.props.push_back({"payload", PropValue::Str(std::string(prop_bytes, 'x'))});
    out.push_back(std::move(e));
  }
  return out;
}

size_t Rows(EventStore& s) {
  size_t n = 0;
  auto snap = s.Snapshot();  // keep it alive through the loop
  for (const auto& b : snap->blocks) n += b->size();
  return n;
}

TEST(WalFailure, PartialWriteIsRolledBackAndLaterRecordsReplay) {
  testing::TempDir dir;
  auto w = WalWriter::Open(dir.path(), 1);
  ASSERT_THAT(w, IsOk());
  ASSERT_THAT((*w)->Append("first"), IsOk());
  ASSERT_THAT((*w)->Sync(), IsOk());
  const uint64_t synced = (*w)->size();
  {
    FileSizeLimit limit(synced + 100);
    ASSERT_THAT((*w)->Append(std::string(1000, 'b')), IsOk());
    Status st = (*w)->Sync();  // writes ~100 bytes, then EFBIG
    EXPECT_FALSE(st.ok());
  }
  EXPECT_EQ((*w)->size(), synced);
  ASSERT_THAT((*w)->Append("third"), IsOk());
  ASSERT_THAT((*w)->Sync(), IsOk());
  std::vector<std::string> got;
  WalReplayStats stats;
  ASSERT_TRUE(ReplayWal(dir.path(), 1, false, [&](std::string_view p) { got.emplace_back(p); return Status::OK(); },
                        &stats).ok());
  EXPECT_EQ(got, (std::vector<std::string>{"first", "third"}));
  EXPECT_EQ(stats.truncated_bytes, 0u);
}

// A write that fails part-way is refused with Unavailable (HTTP 503), nothing of it is
// stored or acknowledged, the store keeps working once writes succeed again, and after a
// reopen exactly the acknowledged batches are there.
TEST(StoreFailure, FailedWriteIsUnavailableAndLeavesNothing) {
  testing::TempDir dir;
  StoreOptions so;
  so.background = false;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_THAT(s, IsOk());
    auto a = (*s)->Append(Batch("a", 50));
    ASSERT_THAT(a, IsOk());
    EXPECT_EQ(a->accepted, 50u);
    {
      FileSizeLimit limit(64 << 10);  // the WAL record of batch b (~200 KB) cannot be written
      auto b = (*s)->Append(Batch("b", 100, 2000));
      ASSERT_THAT(b, StatusIs(StatusCode::kUnavailable));
      EXPECT_EQ(HttpStatusFor(b.status()), 503);
    }
    EXPECT_EQ(Rows(**s), 50u);  // nothing of b in memory either
    auto c = (*s)->Append(Batch("c", 30));
    ASSERT_THAT(c, IsOk());
    EXPECT_EQ(c->accepted, 30u);
    // b was never stored: a retry is accepted in full, not reported as duplicates.
    auto b2 = (*s)->Append(Batch("b", 100, 2000));
    ASSERT_THAT(b2, IsOk());
    EXPECT_EQ(b2->accepted, 100u);
    EXPECT_EQ(b2->duplicates, 0u);
  }
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_THAT(s, IsOk());
  EXPECT_EQ(Rows(**s), 180u);
  EXPECT_EQ((*s)->Stats().wal_truncated_bytes, 0u);
  auto again = (*s)->Append(Batch("a", 50));
  ASSERT_THAT(again, IsOk());
  EXPECT_EQ(again->duplicates, 50u);
}

// Found by fuzz/native_json_fuzz: a number beyond a double makes nlohmann::json throw
// out_of_range (not parse_error); it escaped ParseNativeBatch and became a 500.
TEST(ParserRegression, NumberOverflowIsInvalidArgument) {
  auto tz = TimeZone::Load("UTC");
  ASSERT_THAT(tz, IsOk());
  const int64_t now = 1'795'320'000'000;
  auto r = ParseNativeBatch(R"([{"event":"a","distinct_id":"b","properties":{"x":1e999}}])", false, *tz, now, {});
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument, HasSubstr("number overflow")));
  auto nd = ParseNativeBatch("{\"event\":\"a\",\"distinct_id\":\"b\",\"timestamp\":-1e999}\n{\"event\":\"a\",\"distinct_id\":\"b\"}",
                             true, *tz, now, {});
  ASSERT_THAT(nd, IsOk());
  EXPECT_EQ(nd->events.size(), 1u);
  ASSERT_EQ(nd->errors.size(), 1u);
  EXPECT_EQ(nd->errors[0].code, "invalid_json");
  auto q = ParseJsonBody(R"({"kind":"trends","x":1e400})");
  ASSERT_THAT(q, StatusIs(StatusCode::kInvalidArgument));
}

// Found by fuzz/native_json_fuzz: the error message quoted the first 64 bytes of a bad
// timestamp and could cut a UTF-8 character in two (invalid UTF-8 in a JSON response).
TEST(ParserRegression, TimestampErrorQuotesWholeCharacters) {
  auto tz = TimeZone::Load("UTC");
  ASSERT_THAT(tz, IsOk());
  std::string ts = std::string(63, '2') + "\u00e9\u00e9";  // the 64th byte starts a 2-byte character
  auto t = ParseIsoTimestamp(ts, *tz);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(FindInvalidUtf8(t.status().message()), std::string::npos) << t.status().message();
}

// Found while fuzzing (by hand, past the fuzzers' input sizes): a property nested 100,000
// levels deep (a 200 KB body) overflowed the stack when serialised and killed the server.
TEST(ParserRegression, DeepNestingIsRejectedBeforeParsing) {
  auto tz = TimeZone::Load("UTC");
  ASSERT_THAT(tz, IsOk());
  const int64_t now = 1'795'320'000'000;
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  const std::string deep = nested(100000);
  auto r = ParseNativeBatch(R"([{"event":"a","distinct_id":"b","properties":{"x":)" + deep + "}}]", false, *tz, now, {});
  ASSERT_THAT(r, StatusIs(StatusCode::kInvalidArgument, HasSubstr("nested deeper than")));
  auto nd = ParseNativeBatch("{\"event\":\"a\",\"distinct_id\":\"b\",\"properties\":{\"x\":" + deep +
                                 "}}\n{\"event\":\"a\",\"distinct_id\":\"b\"}",
                             true, *tz, now, {});
  ASSERT_THAT(nd, IsOk());
  EXPECT_EQ(nd->events.size(), 1u);
  ASSERT_EQ(nd->errors.size(), 1u);
  EXPECT_EQ(nd->errors[0].code, "invalid_json");
  EXPECT_FALSE(ParseJsonPayload("{\"batch\":" + deep + "}", "body").ok());
  EXPECT_FALSE(ParseJsonBody(deep).ok());
  // Brackets inside strings do not count; the limit itself is accepted.
  const std::string at_limit = nested(kMaxJsonDepth - 3);
  auto ok = ParseNativeBatch(R"([{"event":"a","distinct_id":"[[[[","properties":{"x":)" + at_limit + "}}]", false, *tz,
                             now, {});
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ(ok->events.size(), 1u);
  EXPECT_THAT(CheckJsonDepth(R"(["\"[[[[[[", "\\"])", ""), IsOk());
}

}  // namespace
}  // namespace ns
