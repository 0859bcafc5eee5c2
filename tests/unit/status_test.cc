// Tests of the error model: Status and its typed detail (core/status.h), and the one place
// that turns a Status into HTTP (server/http_types.cc): status, Retry-After and the JSON
// error code clients and SDKs read. The code strings and statuses are a contract
// (docs/api.md, docs/collection.md); the producers are checked to set the detail.
#include <gtest/gtest.h>

#include <optional>
#include <string>
#include <type_traits>

#include "core/status.h"
#include "ingest/collect_protocol.h"
#include "server/http_types.h"
#include "server/rate_limiter.h"
#include "server/route_util.h"

namespace ns {
namespace {

std::optional<std::string> HeaderOf(const HttpResponse& res, const std::string& name) {
  for (const auto& [k, v] : res.headers)
    if (k == name) return v;
  return std::nullopt;
}

TEST(StatusTest, OkIsCheap) {
  static_assert(std::is_nothrow_default_constructible_v<Status>);
  Status ok = Status::OK();
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.reason(), ErrorReason::kNone);
  EXPECT_FALSE(ok.retry_after_ms().has_value());
  EXPECT_EQ(ok.ErrorName(), "ok");
  EXPECT_EQ(ok.ToString(), "OK");
}

TEST(StatusTest, DetailIsTypedAndSurvivesPropagation) {
  Status rl = RateLimited("slow down; retry after 3 s", 3000);
  EXPECT_EQ(rl.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(rl.CodeName(), "resource_exhausted");
  EXPECT_EQ(rl.reason(), ErrorReason::kRateLimited);
  EXPECT_EQ(rl.ErrorName(), "rate_limited");
  EXPECT_EQ(rl.retry_after_ms(), 3000);
  EXPECT_EQ(rl.ToString(), "rate_limited: slow down; retry after 3 s");

  Status mt = UnsupportedMediaType("unsupported Content-Type 'text/csv'");
  EXPECT_EQ(mt.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(mt.reason(), ErrorReason::kUnsupportedMediaType);
  EXPECT_EQ(mt.ErrorName(), "unsupported_media_type");
  EXPECT_FALSE(mt.retry_after_ms().has_value());

  // Through StatusOr and NS_RETURN_IF_ERROR the detail is kept.
  auto produce = []() -> StatusOr<int> { return RateLimited("m", 1000); };
  auto forward = [&]() -> Status {
    NS_ASSIGN_OR_RETURN(int v, produce());
    (void)v;
    return Status::OK();
  };
  Status fwd = forward();
  EXPECT_EQ(fwd.reason(), ErrorReason::kRateLimited);
  EXPECT_EQ(fwd.retry_after_ms(), 1000);
}

struct HttpCase {
  Status status;
  int http;
  std::string code;                        // error.code in the JSON body
  std::optional<std::string> retry_after;  // Retry-After header
};

TEST(StatusTest, HttpMapping) {
  const HttpCase kCases[] = {
      {InvalidArgument("bad", "events[0].event"), 400, "invalid_argument", std::nullopt},
      {Unauthenticated("who"), 401, "unauthenticated", std::nullopt},
      {PermissionDenied("no"), 403, "permission_denied", std::nullopt},
      {NotFound("gone"), 404, "not_found", std::nullopt},
      {AlreadyExists("twice"), 409, "already_exists", std::nullopt},
      {FailedPrecondition("not now"), 409, "failed_precondition", std::nullopt},
      {ResourceExhausted("body too large"), 413, "resource_exhausted", std::nullopt},
      {UnsupportedMediaType("text/csv"), 415, "unsupported_media_type", std::nullopt},
      {RateLimited("retry after 2 s", 2000), 429, "rate_limited", "2"},
      {RateLimited("retry after 1.5 s", 1500), 429, "rate_limited", "2"},  // rounded up
      {RateLimited("now", 0), 429, "rate_limited", "1"},                   // never 0
      {ResourceExhausted("no wait known").WithReason(ErrorReason::kRateLimited), 429, "rate_limited", "1"},
      {Internal("bug"), 500, "internal", std::nullopt},
      {Corruption("crc"), 500, "corruption", std::nullopt},
      {Unavailable("disk full"), 503, "unavailable", "5"},
      {DeadlineExceeded("too slow"), 504, "deadline_exceeded", std::nullopt},
  };
  for (const HttpCase& c : kCases) {
    SCOPED_TRACE(c.status.ToString());
    EXPECT_EQ(HttpStatusFor(c.status), c.http);
    HttpResponse res;
    res.Error(c.status);
    EXPECT_EQ(res.status, c.http);
    auto body = nlohmann::json::parse(res.body);
    EXPECT_EQ(body["error"]["code"], c.code);
    EXPECT_EQ(body["error"]["message"], c.status.message());
    EXPECT_EQ(body["error"].contains("field"), !c.status.field().empty());
    EXPECT_EQ(HeaderOf(res, "Retry-After"), c.retry_after);
  }
}

TEST(StatusTest, RateLimiterSetsTheRetryDelay) {
  RateLimiter limiter(10, 10);  // 10 events/s, bursts of 10
  ASSERT_TRUE(limiter.Take("k", 10).ok());
  Status st = limiter.Take("k", 5);
  EXPECT_EQ(st.code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(st.reason(), ErrorReason::kRateLimited);
  EXPECT_EQ(st.retry_after_ms(), 1000);  // 0.5 s of refill, in whole seconds
  EXPECT_EQ(st.message(), "rate limit of 10 events/s for this key exceeded; retry after 1 s");
  HttpResponse res;
  res.Error(st);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(HeaderOf(res, "Retry-After"), "1");
  EXPECT_TRUE(limiter.Take("other", 10).ok());  // per key

  RateLimiter slow(0.25, 1);  // one event per 4 s: the next one waits just under 4 s
  ASSERT_TRUE(slow.Take("k", 1).ok());
  st = slow.Take("k", 1);
  EXPECT_EQ(st.retry_after_ms(), 4000);
  EXPECT_EQ(st.message(), "rate limit of 0 events/s for this key exceeded; retry after 4 s");
}

TEST(StatusTest, ContentTypeChecksSetTheReason) {
  Status st = CheckJsonContentType("text/csv", "a,b");
  EXPECT_EQ(st.reason(), ErrorReason::kUnsupportedMediaType);
  EXPECT_EQ(HttpStatusFor(st), 415);
  EXPECT_TRUE(CheckJsonContentType("application/json", "{}").ok());

  HttpRequest req;
  req.body = "<xml/>";
  req.headers = {{"content-type", "application/xml"}};
  auto body = Body(req);  // the operations API's body reader
  ASSERT_FALSE(body.ok());
  EXPECT_EQ(body.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(body.status().ErrorName(), "unsupported_media_type");
  EXPECT_EQ(HttpStatusFor(body.status()), 415);
  req.headers = {{"content-type", "application/json"}};
  req.body = "{\"a\":1}";
  EXPECT_TRUE(Body(req).ok());
}

}  // namespace
}  // namespace ns
