// The compact forms of a decoded property column (issue 15, query memory): a numeric column
// whose rows are mostly absent or 0 kept sparse, and dictionary codes narrowed to 1 or 2
// bytes. Every accessor must answer exactly what the plain form answers, row by row, on
// random columns (many seeds), through a segment round trip, and when a decoded block is
// copied into a new one (compaction: BlockBuilder::AppendFrom) and written again.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/env.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/segment.h"
#include "test_util.h"

namespace ns {
namespace {

// Expects `got` to answer every accessor as `want` (the plain form) does, on every row.
void ExpectSameColumn(const PropColumn& want, const PropColumn& got, size_t rows, const std::string& what) {
  ASSERT_EQ(want.numeric, got.numeric) << what;
  for (size_t i = 0; i < rows; i++) {
    ASSERT_EQ(want.Present(i), got.Present(i)) << what << " row " << i;
    const PropValue a = want.Get(i), b = got.Get(i);
    ASSERT_EQ(a.kind, b.kind) << what << " row " << i;
    ASSERT_EQ(a.str, b.str) << what << " row " << i;
    // Bit for bit: -0 must stay -0 (it prints differently from 0).
    ASSERT_EQ(std::bit_cast<uint64_t>(a.num), std::bit_cast<uint64_t>(b.num)) << what << " row " << i;
    double x = 1, y = 2;
    ASSERT_EQ(want.GetNum(i, &x), got.GetNum(i, &y)) << what << " row " << i;
    if (want.GetNum(i, &x)) {
      got.GetNum(i, &y);
      ASSERT_EQ(std::bit_cast<uint64_t>(x), std::bit_cast<uint64_t>(y)) << what << " row " << i;
    }
    if (want.numeric && want.Present(i)) {
      ASSERT_EQ(std::bit_cast<uint64_t>(want.NumAt(i)), std::bit_cast<uint64_t>(got.NumAt(i))) << what;
    }
    if (!want.numeric) {
      ASSERT_EQ(want.CodeAt(i), got.CodeAt(i)) << what << " row " << i;
    }
    if (got.numeric) got.PrefetchNum(i);  // must not fault on either form
  }
}

// A random dense numeric column: mostly absent, mostly 0, or spread, with -0 and repeats.
PropColumn RandomNumeric(std::mt19937_64& rng, size_t n) {
  PropColumn c;
  c.numeric = true;
  const int shape = static_cast<int>(rng() % 4);  // 0 mostly absent, 1 mostly 0, 2 spread, 3 all absent or 0
  for (size_t i = 0; i < n; i++) {
    const uint64_t r = rng() % 100;
    bool present = true;
    double v = static_cast<double>(rng() % 1000) / 8;
    if (shape == 0) present = r < 20;
    if (shape == 1) v = r < 85 ? 0.0 : v;
    if (shape == 2) present = r < 60;
    if (shape == 3) present = r < 50, v = 0.0;
    if (r == 7) v = -0.0;
    c.present.push_back(present ? 1 : 0);
    c.num.push_back(present ? v : 0);
  }
  return c;
}

TEST(PropColumnForms, SparseNumericAnswersAsDense) {
  for (uint64_t seed = 1; seed <= 240; seed++) {
    std::mt19937_64 rng(seed);
    const size_t n = static_cast<size_t>(rng() % 700);  // word edges: 0, 63, 64, 65, ...
    PropColumn dense = RandomNumeric(rng, n);
    PropColumn compact = dense;
    compact.MakeSparseIfFew();
    ExpectSameColumn(dense, compact, n, "seed " + std::to_string(seed));
    // Sparse exactly when at least half the rows are absent or +0.
    size_t absent = 0, zero = 0;
    for (size_t i = 0; i < n; i++) {
      absent += !dense.present[i];
      zero += dense.present[i] && std::bit_cast<uint64_t>(dense.num[i]) == 0;
    }
    EXPECT_EQ(compact.sparse, std::max(absent, zero) * 2 >= n) << "seed " << seed;
    if (compact.sparse && n >= 64) {
      EXPECT_LT(compact.Bytes(), dense.Bytes()) << "seed " << seed;
    }
  }
}

TEST(PropColumnForms, NaNValueStaysDense) {
  PropColumn c;
  c.numeric = true;
  c.present = {1, 0, 0, 0};
  c.num = {std::nan(""), 0, 0, 0};
  c.MakeSparseIfFew();
  EXPECT_FALSE(c.sparse);
  EXPECT_TRUE(c.Present(0));
}

TEST(PropColumnForms, NarrowCodesAnswerAsWide) {
  for (uint64_t seed = 1; seed <= 200; seed++) {
    std::mt19937_64 rng(seed);
    const size_t n = 1 + static_cast<size_t>(rng() % 500);
    const size_t entries = seed % 3 == 0 ? 256 + rng() % 70000 : seed % 3 == 1 ? 1 + rng() % 256 : 257 + rng() % 600;
    PropColumn wide;
    wide.dict.assign(entries, "");
    wide.dict_kind.assign(entries, PropValue::kStr);
    for (size_t e = 1; e < entries; e++) {
      wide.dict[e] = e % 5 == 0 ? std::to_string(e) : "v" + std::to_string(e);
      if (e % 5 == 0) wide.dict_kind[e] = PropValue::kNum;
    }
    for (size_t i = 0; i < n; i++) wide.code.push_back(static_cast<uint32_t>(rng() % entries));
    if (n > 1) wide.code[n - 1] = static_cast<uint32_t>(entries - 1);  // the largest code
    PropColumn narrow = wide;
    narrow.NarrowCodes();
    EXPECT_EQ(narrow.code_width, entries <= 256 ? 1 : entries <= 65536 ? 2 : 4) << "seed " << seed;
    ExpectSameColumn(wide, narrow, n, "seed " + std::to_string(seed));
  }
}

// A block through a segment (compact forms when decoded), then copied row by row into a new
// block (compaction) and written and read again: every row as in the original block.
TEST(PropColumnForms, SegmentRoundTripAndRewrite) {
  testing::TempDir dir;
  for (uint64_t seed = 1; seed <= 40; seed++) {
    std::mt19937_64 rng(seed);
    EventDict dict;
    const uint32_t ev = dict.Intern("pay");
    BlockBuilder b;
    const size_t n = 1 + static_cast<size_t>(rng() % 3000);
    for (size_t i = 0; i < n; i++) {
      std::vector<Property> props;
      const uint64_t r = rng() % 100;
      if (r < 90) props.push_back({"amount", PropValue::Num(r < 80 ? 0.0 : static_cast<double>(rng() % 5000) / 100)});
      if (r % 3) props.push_back({"channel", PropValue::Str("ch" + std::to_string(rng() % (seed % 2 ? 7 : 400)))});
      if (r < 15) props.push_back({"rare", PropValue::Num(static_cast<double>(r))});
      b.Append(static_cast<uint32_t>(i % 37), 1'700'000'000'000 + static_cast<int64_t>(i), ev, nullptr, props);
    }
    auto block = b.Finish();
    const std::string path = dir.path() + "/" + SegmentFileName(19000, seed);
    ASSERT_THAT(WriteSegment(Env::Default(), path, *block, SegmentMeta{19000, seed, {}}, dict), testing::IsOk());
    EventDict dict2;
    auto info = OpenSegment(Env::Default(), path, dict2);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    auto ticket = ColumnCache::NewTicket();
    const Block& read = *info->block;
    for (const std::string key : {"amount", "channel", "rare"}) {
      const PropColumn* want = block->prop(key);
      const PropColumn* got = read.prop(key);
      ASSERT_EQ(want == nullptr, got == nullptr) << key;
      if (want) ExpectSameColumn(*want, *got, n, "seed " + std::to_string(seed) + " " + key);
    }
    if (seed % 2) {
      EXPECT_EQ(read.prop("channel")->code_width, 1);
    }
    if (n >= 200) {  // mostly 0, and mostly absent: both decoded sparse
      EXPECT_TRUE(read.prop("amount")->sparse);
      EXPECT_TRUE(read.prop("rare")->sparse);
    }
    // Compaction's copy of a decoded block, written and read once more.
    BlockBuilder copy;
    for (size_t i = 0; i < n; i++) copy.AppendFrom(read, i);
    auto copied = copy.Finish();
    const std::string path2 = dir.path() + "/" + SegmentFileName(19000, 1000 + seed);
    ASSERT_THAT(WriteSegment(Env::Default(), path2, *copied, SegmentMeta{19000, 1000 + seed, {}}, dict2),
                testing::IsOk());
    // And the decoded block itself written as it is (the compact forms through the writer).
    const std::string path3 = dir.path() + "/" + SegmentFileName(19000, 2000 + seed);
    ASSERT_THAT(WriteSegment(Env::Default(), path3, read, SegmentMeta{19000, 2000 + seed, {}}, dict2), testing::IsOk());
    for (const std::string& p : {path2, path3}) {
      EventDict dict3;
      auto again = OpenSegment(Env::Default(), p, dict3);
      ASSERT_TRUE(again.ok()) << again.status().ToString();
      for (const std::string key : {"amount", "channel", "rare"}) {
        const PropColumn* want = block->prop(key);
        const PropColumn* got = again->block->prop(key);
        ASSERT_EQ(want == nullptr, got == nullptr) << key;
        if (want) ExpectSameColumn(*want, *got, n, p + " " + key);
      }
    }
  }
}

}  // namespace
}  // namespace ns
