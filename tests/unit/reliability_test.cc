// Regression tests for what fuzzing and fault injection found (docs/reliability.md):
// storage under write failures (a FaultInjectionEnv makes a write stop part-way with
// ENOSPC, like a full disk) and parser inputs that used to escape as exceptions. The walk
// over every write path is tests/unit/fault_injection_test.cc.
#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <vector>

#include "core/time_zone.h"
#include "fault_injection_env.h"
#include "ingest/collect_protocol.h"
#include "ingest/native_parser.h"
#include "server/http_types.h"
#include "storage/block.h"
#include "storage/event_store.h"
#include "storage/wal.h"
#include "test_util.h"

namespace ns {
namespace {

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
  testing::FaultInjectionEnv env;
  auto w = WalWriter::Open(&env, dir.path(), 1);
  ASSERT_TRUE(w.ok()) << w.status().ToString();
  ASSERT_TRUE((*w)->Append("first").ok());
  ASSERT_TRUE((*w)->Sync().ok());
  const uint64_t synced = (*w)->size();
  env.FailNth(1, ENOSPC, testing::kFaultAppend);
  ASSERT_TRUE((*w)->Append(std::string(1000, 'b')).ok());
  Status st = (*w)->Sync();  // writes half of the record, then ENOSPC
  EXPECT_EQ(st.code(), StatusCode::kUnavailable) << st.ToString();
  EXPECT_TRUE(env.fired());
  env.Disarm();
  EXPECT_EQ((*w)->size(), synced);
  ASSERT_TRUE((*w)->Append("third").ok());
  ASSERT_TRUE((*w)->Sync().ok());
  std::vector<std::string> got;
  WalReplayStats stats;
  ASSERT_TRUE(ReplayWal(
                  Env::Default(), dir.path(), 1, false,
                  [&](std::string_view p) {
                    got.emplace_back(p);
                    return Status::OK();
                  },
                  &stats)
                  .ok());
  EXPECT_EQ(got, (std::vector<std::string>{"first", "third"}));
  EXPECT_EQ(stats.truncated_bytes, 0u);
}

// A write that fails part-way is refused with Unavailable (HTTP 503), nothing of it is
// stored or acknowledged, the store keeps working once writes succeed again, and after a
// reopen exactly the acknowledged batches are there.
TEST(StoreFailure, FailedWriteIsUnavailableAndLeavesNothing) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  StoreOptions so;
  so.background = false;
  so.env = &env;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    auto a = (*s)->Append(Batch("a", 50));
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->accepted, 50u);
    {
      // Batch b's first write is its new distinct ids (identity log), the second its WAL
      // record: that one stops half-way, as on a full disk.
      env.FailNth(2, ENOSPC, testing::kFaultAppend);
      auto b = (*s)->Append(Batch("b", 100, 2000));
      ASSERT_FALSE(b.ok());
      EXPECT_EQ(b.status().code(), StatusCode::kUnavailable) << b.status().ToString();
      EXPECT_EQ(HttpStatusFor(b.status()), 503);
      EXPECT_NE(env.fired_what().find("/wal/"), std::string::npos) << env.fired_what();
      env.Disarm();
    }
    EXPECT_EQ(Rows(**s), 50u);  // nothing of b in memory either
    auto c = (*s)->Append(Batch("c", 30));
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_EQ(c->accepted, 30u);
    // b was never stored: a retry is accepted in full, not reported as duplicates.
    auto b2 = (*s)->Append(Batch("b", 100, 2000));
    ASSERT_TRUE(b2.ok());
    EXPECT_EQ(b2->accepted, 100u);
    EXPECT_EQ(b2->duplicates, 0u);
  }
  so.env = nullptr;  // reopened with the real file system
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Rows(**s), 180u);
  EXPECT_EQ((*s)->Stats().wal_truncated_bytes, 0u);
  auto again = (*s)->Append(Batch("a", 50));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->duplicates, 50u);
}

// Found by the fault-injection walk (fault_injection_test.cc, sticky faults): the first
// flush's segment was renamed into place, then nothing more could be written (no
// CHECKPOINT, no cleanup). With no CHECKPOINT at all, the next open refused the directory
// with Corruption ("CHECKPOINT is missing but segments/ holds segments"); a crash between
// the two renames did the same. A new store now commits generation 0 when it is created.
TEST(StoreFailure, FirstFlushThatCannotCommitLeavesAnOpenableStore) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  StoreOptions so;
  so.background = false;
  so.env = &env;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->Append(Batch("a", 20)).ok());
    // The segment's rename succeeds; the CHECKPOINT's rename and every unlink after it fail.
    env.FailNth(2, EIO, testing::kFaultRename | testing::kFaultRemove, /*sticky=*/true);
    EXPECT_EQ((*s)->Flush().code(), StatusCode::kUnavailable);
    EXPECT_NE(env.fired_what().find("CHECKPOINT"), std::string::npos) << env.fired_what();
  }  // the flush at close fails too
  env.Disarm();
  so.env = nullptr;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Rows(**s), 20u);
}

// Found while writing the Env: a CHECKPOINT renamed into place whose directory fsync then
// failed was treated as not written: the flush deleted its segments and kept the rows in
// memory, but the next open read the new CHECKPOINT and deleted the WAL files it covers,
// losing acknowledged events when no later flush succeeded first. A renamed CHECKPOINT now
// counts as committed (its segments stay; the WAL files stay until a later checkpoint is
// durable).
TEST(StoreFailure, CheckpointWhoseDirectorySyncFailsKeepsItsSegments) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env;
  StoreOptions so;
  so.background = false;
  so.env = &env;
  {
    auto s = EventStore::Open(dir.path(), so);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    ASSERT_TRUE((*s)->Append(Batch("a", 20)).ok());
    // Directory syncs of a flush: the new WAL file, the segment, then the CHECKPOINT; that
    // one and everything after it fail (the flush at close cannot rescue the rows).
    env.FailNth(3, EIO, testing::kFaultSyncDir, /*sticky=*/true);
    EXPECT_EQ((*s)->Flush().code(), StatusCode::kUnavailable);
    EXPECT_EQ(env.fired_what(), "fsync dir " + dir.path()) << env.fired_what();
    EXPECT_EQ(Rows(**s), 20u);
  }
  env.Disarm();
  so.env = nullptr;
  auto s = EventStore::Open(dir.path(), so);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Rows(**s), 20u);
  EXPECT_EQ((*s)->Stats().segment_rows, 20u);
}

// Found by fuzz/native_json_fuzz: a number beyond a double makes nlohmann::json throw
// out_of_range (not parse_error); it escaped ParseNativeBatch and became a 500.
TEST(ParserRegression, NumberOverflowIsInvalidArgument) {
  auto tz = TimeZone::Load("UTC");
  ASSERT_TRUE(tz.ok());
  const int64_t now = 1'795'320'000'000;
  auto r = ParseNativeBatch(R"([{"event":"a","distinct_id":"b","properties":{"x":1e999}}])", false, *tz, now, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("number overflow"), std::string::npos) << r.status().message();
  auto nd = ParseNativeBatch(
      "{\"event\":\"a\",\"distinct_id\":\"b\",\"timestamp\":-1e999}\n{\"event\":\"a\",\"distinct_id\":\"b\"}", true,
      *tz, now, {});
  ASSERT_TRUE(nd.ok());
  EXPECT_EQ(nd->events.size(), 1u);
  ASSERT_EQ(nd->errors.size(), 1u);
  EXPECT_EQ(nd->errors[0].code, "invalid_json");
  auto q = ParseJsonBody(R"({"kind":"trends","x":1e400})");
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), StatusCode::kInvalidArgument);
}

// Found by fuzz/native_json_fuzz: the error message quoted the first 64 bytes of a bad
// timestamp and could cut a UTF-8 character in two (invalid UTF-8 in a JSON response).
TEST(ParserRegression, TimestampErrorQuotesWholeCharacters) {
  auto tz = TimeZone::Load("UTC");
  ASSERT_TRUE(tz.ok());
  std::string ts = std::string(63, '2') + "\u00e9\u00e9";  // the 64th byte starts a 2-byte character
  auto t = ParseIsoTimestamp(ts, *tz);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(FindInvalidUtf8(t.status().message()), std::string::npos) << t.status().message();
}

// Found while fuzzing (by hand, past the fuzzers' input sizes): a property nested 100,000
// levels deep (a 200 KB body) overflowed the stack when serialised and killed the server.
TEST(ParserRegression, DeepNestingIsRejectedBeforeParsing) {
  auto tz = TimeZone::Load("UTC");
  ASSERT_TRUE(tz.ok());
  const int64_t now = 1'795'320'000'000;
  auto nested = [](size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  const std::string deep = nested(100000);
  auto r =
      ParseNativeBatch(R"([{"event":"a","distinct_id":"b","properties":{"x":)" + deep + "}}]", false, *tz, now, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("nested deeper than"), std::string::npos) << r.status().message();
  auto nd = ParseNativeBatch("{\"event\":\"a\",\"distinct_id\":\"b\",\"properties\":{\"x\":" + deep +
                                 "}}\n{\"event\":\"a\",\"distinct_id\":\"b\"}",
                             true, *tz, now, {});
  ASSERT_TRUE(nd.ok());
  EXPECT_EQ(nd->events.size(), 1u);
  ASSERT_EQ(nd->errors.size(), 1u);
  EXPECT_EQ(nd->errors[0].code, "invalid_json");
  EXPECT_FALSE(ParseJsonPayload("{\"batch\":" + deep + "}", "body").ok());
  EXPECT_FALSE(ParseJsonBody(deep).ok());
  // Brackets inside strings do not count; the limit itself is accepted.
  const std::string at_limit = nested(kMaxJsonDepth - 3);
  auto ok = ParseNativeBatch(R"([{"event":"a","distinct_id":"[[[[","properties":{"x":)" + at_limit + "}}]", false, *tz,
                             now, {});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->events.size(), 1u);
  EXPECT_TRUE(CheckJsonDepth(R"(["\"[[[[[[", "\\"])", "").ok());
}

}  // namespace
}  // namespace ns
