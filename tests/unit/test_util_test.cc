// The test helpers themselves (test_util.h): StatusIs and IsOk match Status and StatusOr,
// and a failure shows the whole status, not its bytes.
#include <gmock/gmock.h>
#include <gtest/gtest-spi.h>
#include <gtest/gtest.h>

#include <string>

#include "core/status.h"
#include "test_util.h"

namespace ns {
namespace {

using ::testing::_;
using ::testing::DescribeMatcher;
using ::testing::HasSubstr;
using testing::IsOk;
using ::testing::Not;
using testing::StatusIs;

template <typename M, typename T>
std::string Explain(const M& m, const T& value) {
  ::testing::StringMatchResultListener l;
  ::testing::ExplainMatchResult(m, value, &l);
  return l.str();
}

TEST(StatusIs, MatchesCodeMessageAndFieldOfStatusAndStatusOr) {
  const Status st = InvalidArgument("period: 'to' is before 'from'", "period.to");
  EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument));
  EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, "period: 'to' is before 'from'"));
  EXPECT_THAT(st, StatusIs(StatusCode::kInvalidArgument, HasSubstr("before"), "period.to"));
  EXPECT_THAT(st, Not(StatusIs(StatusCode::kNotFound)));
  EXPECT_THAT(st, Not(StatusIs(StatusCode::kInvalidArgument, HasSubstr("after"))));
  EXPECT_THAT(st, Not(StatusIs(StatusCode::kInvalidArgument, _, "period.from")));
  EXPECT_THAT(st, Not(IsOk()));

  const StatusOr<int> bad = NotFound("no scenario 7");
  const StatusOr<int> good = 7;
  EXPECT_THAT(bad, StatusIs(StatusCode::kNotFound, "no scenario 7", ""));
  EXPECT_THAT(good, IsOk());
  EXPECT_THAT(good, StatusIs(StatusCode::kOk));
  EXPECT_THAT(bad, Not(IsOk()));
  EXPECT_THAT(Status::OK(), IsOk());
}

TEST(StatusIs, FailuresDescribeTheStatus) {
  const Status st = InvalidArgument("name: required", "name");
  EXPECT_EQ(Explain(StatusIs(StatusCode::kNotFound), st),
            "whose status is invalid_argument: name: required (field name)");
  EXPECT_THAT(Explain(StatusIs(StatusCode::kInvalidArgument, "name: missing"), st),
              HasSubstr("whose message \"name: required\" does not match"));
  EXPECT_THAT(Explain(StatusIs(StatusCode::kInvalidArgument, _, "owner"), st),
              HasSubstr("whose field \"name\" does not match"));
  EXPECT_EQ(Explain(IsOk(), st), "whose status is invalid_argument: name: required (field name)");
  EXPECT_THAT(DescribeMatcher<Status>(StatusIs(StatusCode::kNotFound, HasSubstr("x"))),
              HasSubstr("has status code not_found, a message that has substring \"x\""));
  EXPECT_EQ(DescribeMatcher<Status>(IsOk()), "is OK");
  EXPECT_EQ(::testing::PrintToString(st), "invalid_argument: name: required (field name)");
  EXPECT_EQ(::testing::PrintToString(StatusOr<int>(7)), "OK (a value)");
  EXPECT_EQ(::testing::PrintToString(StatusCode::kUnavailable), "unavailable");
}

TEST(StatusIs, AFailedExpectationPrintsTheStatus) {
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(Unavailable("disk full"), IsOk()), "unavailable: disk full");
  EXPECT_NONFATAL_FAILURE(EXPECT_THAT(StatusOr<int>(Internal("bug")), StatusIs(StatusCode::kNotFound)),
                          "internal: bug");
}

}  // namespace
}  // namespace ns
