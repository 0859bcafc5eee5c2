// The server's units without a network (until now tested only through the Python
// integration tests): the ingest rate limiter's token buckets (rate_limiter.h, on a fake
// clock), the error answer of a Status (http_types.h: HTTP status, the one JSON error shape,
// Retry-After), request helpers, the console's static routes (static_routes.h, on files in a
// temporary directory), the native events route answering 415 and 429, and LogSafe
// (core/log_safe.h), which every route uses for client values in log lines.
//
// 429 and 415 are asserted as HTTP statuses and JSON `code` strings, not as StatusCode
// values: they are canonical codes with a reason (core/status.h), and what clients rely on
// is the answer.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/log_safe.h"
#include "meta/project_registry.h"
#include "server/collect_routes.h"
#include "server/http_types.h"
#include "server/rate_limiter.h"
#include "server/route_util.h"
#include "server/server_context.h"
#include "server/static_routes.h"
#include "test_util.h"

namespace ns {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;
using testing::IsOk;
using ::testing::StartsWith;
using testing::StatusIs;

// A clock that moves only when told to.
struct FakeClock {
  RateLimiter::Clock::time_point t{std::chrono::hours(1)};
  void Advance(std::chrono::milliseconds d) { t += d; }
  std::function<RateLimiter::Clock::time_point()> Fn() {
    return [this] { return t; };
  }
};

std::string HeaderOf(const HttpResponse& res, const std::string& name) {
  for (const auto& [k, v] : res.headers)
    if (k == name) return v;
  return "";
}
// The wait a refusal asks for, in whole seconds (its retry_after_ms); 0 when there is none.
int RetrySeconds(const Status& st) {
  std::optional<int64_t> ms = st.retry_after_ms();
  return ms ? static_cast<int>(*ms / 1000) : 0;
}

bool HasHeader(const HttpResponse& res, const std::string& name) {
  for (const auto& [k, v] : res.headers)
    if (k == name) return true;
  return false;
}

// ---------------------------------------------------------------- RateLimiter

TEST(RateLimiter, BurstThenRefusedWithTheWaitForTheMissingTokens) {
  FakeClock clock;
  RateLimiter rl(10, 20, clock.Fn());  // 10 events/s, bursts of 20
  ASSERT_TRUE(rl.enabled());
  EXPECT_THAT(rl.Take("k", 15), IsOk());
  EXPECT_THAT(rl.Take("k", 5), IsOk());  // the whole burst
  Status st = rl.Take("k", 10);
  const int retry = RetrySeconds(st);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(retry, 1);  // 10 tokens at 10/s
  EXPECT_THAT(st.message(), HasSubstr("rate limit of 10 events/s"));
  EXPECT_THAT(st.message(), HasSubstr("retry after 1 s"));
  // A refused request takes nothing: still 0 tokens, so a request of 20 is 2 s away.
  EXPECT_EQ(RetrySeconds(rl.Take("k", 20)), 2);
}

TEST(RateLimiter, RefillsAtTheRateUpToTheBurst) {
  FakeClock clock;
  RateLimiter rl(10, 20, clock.Fn());
  ASSERT_THAT(rl.Take("k", 20), IsOk());
  EXPECT_FALSE(rl.Take("k", 1).ok());
  clock.Advance(std::chrono::milliseconds(100));  // one token
  EXPECT_THAT(rl.Take("k", 1), IsOk());
  EXPECT_FALSE(rl.Take("k", 1).ok());
  clock.Advance(std::chrono::milliseconds(500));  // five tokens
  EXPECT_FALSE(rl.Take("k", 6).ok());
  EXPECT_THAT(rl.Take("k", 5), IsOk());
  // An hour idle refills the bucket to the burst, not beyond.
  clock.Advance(std::chrono::hours(1));
  EXPECT_THAT(rl.Take("k", 20), IsOk());
  EXPECT_FALSE(rl.Take("k", 1).ok());
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  FakeClock clock;
  RateLimiter rl(1, 5, clock.Fn());
  ASSERT_THAT(rl.Take("a", 5), IsOk());
  EXPECT_FALSE(rl.Take("a", 1).ok());
  EXPECT_THAT(rl.Take("b", 5), IsOk());
}

// A batch larger than the burst can never fit: it passes when the bucket is full and leaves
// the bucket in debt, so the next request waits for the debt too.
TEST(RateLimiter, ABatchOverTheBurstPassesOnAFullBucketAndLeavesDebt) {
  FakeClock clock;
  RateLimiter rl(10, 20, clock.Fn());
  EXPECT_THAT(rl.Take("k", 50), IsOk());         // tokens: 20 - 50 = -30
  EXPECT_EQ(RetrySeconds(rl.Take("k", 50)), 5);  // refused: (min(50, 20) + 30) / 10 s
  clock.Advance(std::chrono::seconds(2));
  EXPECT_EQ(RetrySeconds(rl.Take("k", 1)), 2);  // -10 tokens
  clock.Advance(std::chrono::seconds(2));
  EXPECT_FALSE(rl.Take("k", 50).ok());  // 10 tokens: the bucket is not full
  clock.Advance(std::chrono::seconds(1));
  EXPECT_THAT(rl.Take("k", 50), IsOk());  // full again
}

TEST(RateLimiter, ZeroRateIsUnlimitedAndTheBurstIsAtLeastOne) {
  RateLimiter off(0, 0);
  EXPECT_FALSE(off.enabled());
  for (int i = 0; i < 100; i++) EXPECT_THAT(off.Take("k", 1e9), IsOk());
  FakeClock clock;
  RateLimiter tiny(1, 0, clock.Fn());  // burst 0 reads as 1
  EXPECT_THAT(tiny.Take("k", 1), IsOk());
  EXPECT_FALSE(tiny.Take("k", 1).ok());
}

// The refusal as the client sees it: 429, code "rate_limited", Retry-After in whole seconds.
TEST(RateLimiter, RefusalAnswers429WithRetryAfter) {
  FakeClock clock;
  RateLimiter rl(2, 4, clock.Fn());
  ASSERT_THAT(rl.Take("k", 4), IsOk());
  Status st = rl.Take("k", 4);
  const int retry = RetrySeconds(st);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(retry, 2);
  HttpResponse res;
  res.Error(st);
  EXPECT_EQ(res.status, 429);
  EXPECT_EQ(HeaderOf(res, "Retry-After"), "2");
  json body = json::parse(res.body);
  EXPECT_EQ(body["error"]["code"], "rate_limited");
  EXPECT_EQ(body["error"]["message"], st.message());
}

// ---------------------------------------------------------------- HttpResponse::Error

TEST(HttpError, StatusCodesMapToHttpStatusesAndOneJsonShape) {
  struct Case {
    Status st;
    int http;
    const char* code;
  } cases[] = {
      {InvalidArgument("funnel step 3: unknown order mode 'strct'", "steps[2].order"), 400, "invalid_argument"},
      {Unauthenticated("missing API key"), 401, "unauthenticated"},
      {PermissionDenied("role viewer cannot do this"), 403, "permission_denied"},
      {NotFound("no scenario 7"), 404, "not_found"},
      {AlreadyExists("user exists"), 409, "already_exists"},
      {FailedPrecondition("alert 3 is already resolved"), 409, "failed_precondition"},
      {ResourceExhausted("body over 10 MiB"), 413, "resource_exhausted"},
      {DeadlineExceeded("query ran past 120 s"), 504, "deadline_exceeded"},
      {Unavailable("disk full"), 503, "unavailable"},
      {Corruption("checksum mismatch"), 500, "corruption"},
      {Internal("bug"), 500, "internal"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.st.ToString());
    EXPECT_EQ(HttpStatusFor(c.st), c.http);
    HttpResponse res;
    res.Error(c.st);
    EXPECT_EQ(res.status, c.http);
    EXPECT_EQ(res.content_type, "application/json; charset=utf-8");
    json body = json::parse(res.body);
    ASSERT_TRUE(body.is_object());
    EXPECT_EQ(body.size(), 1u) << body.dump();
    const json& e = body["error"];
    EXPECT_EQ(e["code"], c.code);
    EXPECT_EQ(e["message"], c.st.message());
    // "field" only when the error names one.
    if (c.st.field().empty())
      EXPECT_FALSE(e.contains("field")) << body.dump();
    else
      EXPECT_EQ(e["field"], c.st.field());
    EXPECT_EQ(e.size(), c.st.field().empty() ? 2u : 3u) << body.dump();
    // Retry-After only on what a client should retry.
    EXPECT_EQ(HasHeader(res, "Retry-After"), c.http == 503) << body.dump();
  }
  HttpResponse res;
  res.Error(Unavailable("shutting down"));
  EXPECT_EQ(HeaderOf(res, "Retry-After"), "5");
  EXPECT_EQ(HttpStatusFor(Status::OK()), 200);
}

TEST(HttpError, InvalidUtf8InAMessageStillMakesValidJson) {
  HttpResponse res;
  res.Error(InvalidArgument(std::string("bad value '\xff\xfe'"), "x"));
  EXPECT_EQ(res.status, 400);
  json body = json::parse(res.body);  // throws on invalid UTF-8
  EXPECT_EQ(body["error"]["field"], "x");
}

// The operations API's body reader refuses a non-JSON Content-Type with 415.
TEST(HttpError, WrongContentTypeIs415) {
  HttpRequest req;
  req.method = "POST";
  req.body = "name=x";
  req.headers = {{"content-type", "application/x-www-form-urlencoded"}};
  auto b = Body(req);
  ASSERT_FALSE(b.ok());
  HttpResponse res;
  res.Error(b.status());
  EXPECT_EQ(res.status, 415);
  EXPECT_EQ(json::parse(res.body)["error"]["code"], "unsupported_media_type");
  EXPECT_THAT(b.status().message(), HasSubstr("application/x-www-form-urlencoded"));
  // `curl -d '{...}'` labels JSON as a form: accepted when the body is JSON.
  req.body = R"({"name":"x"})";
  auto ok = Body(req);
  ASSERT_THAT(ok, IsOk());
  EXPECT_EQ((*ok)["name"], "x");
  // Malformed JSON is the client's 400.
  req.headers = {{"content-type", "application/json; charset=utf-8"}};
  req.body = "{\"name\":";
  auto bad = Body(req);
  EXPECT_THAT(bad, StatusIs(StatusCode::kInvalidArgument, HasSubstr("malformed JSON")));
  HttpResponse r400;
  r400.Error(bad.status());
  EXPECT_EQ(r400.status, 400);
}

// ---------------------------------------------------------------- request helpers

TEST(HttpRequest, HeadersParamsCookiesAndMimeType) {
  HttpRequest req;
  req.headers = {{"content-type", "Application/JSON ; charset=utf-8"}, {"cookie", "a=1;  ns_session=s3cr3t; b="}};
  req.params = ParseUrlEncoded("project=shop&q=a%20b+c&flag&=x&empty=");
  EXPECT_EQ(req.MimeType(), "application/json");
  EXPECT_EQ(req.Cookie("ns_session"), "s3cr3t");
  EXPECT_EQ(req.Cookie("a"), "1");
  EXPECT_EQ(req.Cookie("b"), "");
  EXPECT_EQ(req.Cookie("ns"), "");
  EXPECT_EQ(req.Param("project"), "shop");
  EXPECT_EQ(req.Param("q"), "a b c");
  EXPECT_TRUE(req.HasParam("flag"));
  EXPECT_EQ(req.Param("flag"), "");
  EXPECT_TRUE(req.HasParam("empty"));
  EXPECT_FALSE(req.HasParam("missing"));
  EXPECT_EQ(req.Header("missing"), "");
  EXPECT_EQ(UrlDecode("%41%zz%4", false), "A%zz%4");  // bad escapes stay as sent
  EXPECT_EQ(UrlDecode("a+b", false), "a+b");
  EXPECT_EQ(UrlDecode("a+b", true), "a b");
}

// ---------------------------------------------------------------- static routes

class StaticRoutesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    namespace fs = std::filesystem;
    root_ = dir_.path() + "/dist";
    fs::create_directories(root_ + "/assets");
    Write(root_ + "/index.html", "<!doctype html><title>Northstar</title><div id=app></div>");
    // Large enough (>= 1 KiB) and repetitive: precompressed with gzip.
    std::string js;
    for (int i = 0; i < 200; i++) js += "console.log('northstar " + std::to_string(i % 7) + "');\n";
    js_ = js;
    Write(root_ + "/assets/index-3f9a1b.js", js);
    Write(root_ + "/assets/index-3f9a1b.js.gz", "not served by this name");
    Write(root_ + "/favicon.ico", std::string("\0\0\1\0", 4));
    Write(dir_.path() + "/secret.txt", "outside the console directory");
    fs::create_symlink(dir_.path() + "/secret.txt", root_ + "/linked.txt");
    auto assets = LoadConsoleAssets(root_);
    ASSERT_THAT(assets, IsOk());
    assets_ = *assets;
    auto routes = StaticRoutes(assets_);
    ASSERT_EQ(routes.size(), 1u);
    EXPECT_EQ(routes[0].method, "GET");
    EXPECT_EQ(routes[0].access, Access::kPublic);
    handler_ = routes[0].handler;
  }

  static void Write(const std::string& path, const std::string& body) { std::ofstream(path, std::ios::binary) << body; }

  HttpResponse Get(const std::string& path, std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest req;
    req.method = "GET";
    req.path = path;
    req.headers = std::move(headers);
    HttpResponse res;
    handler_(req, res);
    return res;
  }

  testing::TempDir dir_;
  std::string root_, js_;
  std::shared_ptr<const ConsoleAssets> assets_;
  HttpHandler handler_;
};

TEST_F(StaticRoutesTest, LoadsRegularFilesOnly) {
  // index.html, the script and the icon: not the .gz sibling, not the symbolic link.
  EXPECT_EQ(ConsoleFileCount(*assets_), 3u);
  EXPECT_EQ(Get("/linked.txt").status, 404);
  EXPECT_EQ(Get("/assets/index-3f9a1b.js.gz").status, 404);
}

TEST_F(StaticRoutesTest, ClientRoutesFallBackToIndexRevalidatedEachLoad) {
  for (const char* path : {"/", "/index.html", "/scenarios/3", "/kpis", "/a/b/c"}) {
    SCOPED_TRACE(path);
    HttpResponse res = Get(path);
    EXPECT_EQ(res.status, 200);
    EXPECT_THAT(res.body, HasSubstr("<div id=app>"));
    EXPECT_EQ(res.content_type, "text/html; charset=utf-8");
    EXPECT_EQ(HeaderOf(res, "Cache-Control"), "no-cache");
    EXPECT_THAT(HeaderOf(res, "Content-Security-Policy"), HasSubstr("default-src 'self'"));
    EXPECT_THAT(HeaderOf(res, "Content-Security-Policy"), HasSubstr("frame-ancestors 'none'"));
    EXPECT_EQ(HeaderOf(res, "X-Content-Type-Options"), "nosniff");
    EXPECT_EQ(HeaderOf(res, "X-Frame-Options"), "DENY");
    EXPECT_THAT(HeaderOf(res, "ETag"), StartsWith("\""));
  }
}

TEST_F(StaticRoutesTest, HashedAssetsAreImmutableAndGzippedWhenAccepted) {
  HttpResponse plain = Get("/assets/index-3f9a1b.js");
  EXPECT_EQ(plain.status, 200);
  EXPECT_EQ(plain.body, js_);
  EXPECT_EQ(plain.content_type, "text/javascript; charset=utf-8");
  EXPECT_EQ(HeaderOf(plain, "Cache-Control"), "public, max-age=31536000, immutable");
  EXPECT_EQ(HeaderOf(plain, "Vary"), "Accept-Encoding");
  EXPECT_FALSE(HasHeader(plain, "Content-Encoding"));

  HttpResponse gz = Get("/assets/index-3f9a1b.js", {{"accept-encoding", "gzip, deflate, br, zstd"}});
  EXPECT_EQ(gz.status, 200);
  EXPECT_EQ(HeaderOf(gz, "Content-Encoding"), "gzip");
  ASSERT_GE(gz.body.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(gz.body[0]), 0x1f);
  EXPECT_EQ(static_cast<unsigned char>(gz.body[1]), 0x8b);
  EXPECT_LT(gz.body.size(), js_.size());
  EXPECT_EQ(HeaderOf(gz, "ETag"), HeaderOf(plain, "ETag"));

  HttpResponse refused = Get("/assets/index-3f9a1b.js", {{"accept-encoding", "gzip;q=0, br"}});
  EXPECT_FALSE(HasHeader(refused, "Content-Encoding"));
  EXPECT_EQ(refused.body, js_);
  // q=0 in any spelling refuses gzip (regression: "q=0.0" used to be read as accepting it);
  // any q above 0 accepts it.
  for (const char* ae : {"gzip;q=0.0", "gzip; q=0.000, br", "br, gzip;q=0"}) {
    SCOPED_TRACE(ae);
    HttpResponse r = Get("/assets/index-3f9a1b.js", {{"accept-encoding", ae}});
    EXPECT_FALSE(HasHeader(r, "Content-Encoding"));
    EXPECT_EQ(r.body, js_);
  }
  for (const char* ae : {"gzip;q=0.5", "gzip;q=1", "deflate, gzip;q=0.001"})
    EXPECT_EQ(HeaderOf(Get("/assets/index-3f9a1b.js", {{"accept-encoding", ae}}), "Content-Encoding"), "gzip") << ae;

  // Small and binary files are served as they are.
  HttpResponse ico = Get("/favicon.ico", {{"accept-encoding", "gzip"}});
  EXPECT_EQ(ico.status, 200);
  EXPECT_EQ(ico.content_type, "image/x-icon");
  EXPECT_EQ(ico.body.size(), 4u);
  EXPECT_FALSE(HasHeader(ico, "Content-Encoding"));
  EXPECT_EQ(HeaderOf(ico, "Cache-Control"), "no-cache");  // not under /assets/
}

TEST_F(StaticRoutesTest, EtagAnswers304) {
  HttpResponse first = Get("/assets/index-3f9a1b.js");
  const std::string etag = HeaderOf(first, "ETag");
  ASSERT_FALSE(etag.empty());
  for (const std::string& inm : {etag, "W/" + etag, std::string("*")}) {
    SCOPED_TRACE(inm);
    HttpResponse again = Get("/assets/index-3f9a1b.js", {{"if-none-match", inm}});
    EXPECT_EQ(again.status, 304);
    EXPECT_EQ(again.body, "");
    EXPECT_EQ(HeaderOf(again, "ETag"), etag);
  }
  EXPECT_EQ(Get("/assets/index-3f9a1b.js", {{"if-none-match", "\"0000000000000000\""}}).status, 200);
  // index.html has its own tag: a client route revalidates to 304 too.
  const std::string index_etag = HeaderOf(Get("/"), "ETag");
  EXPECT_NE(index_etag, etag);
  EXPECT_EQ(Get("/scenarios/3", {{"if-none-match", index_etag}}).status, 304);
}

TEST_F(StaticRoutesTest, MissingFilesAre404NeverIndexHtml) {
  for (const char* path : {"/assets/index-0000.js", "/assets/chunk", "/robots.txt", "/../secret.txt",
                           "/assets/../../secret.txt", "/linked.txt"}) {
    SCOPED_TRACE(path);
    HttpResponse res = Get(path);
    EXPECT_EQ(res.status, 404);
    EXPECT_EQ(res.content_type, "text/plain; charset=utf-8");
    EXPECT_THAT(res.body, ::testing::Not(HasSubstr("outside the console")));
  }
  // A traversal without an extension is a client route: index.html, never the file.
  HttpResponse res = Get("/../secret");
  EXPECT_EQ(res.status, 200);
  EXPECT_THAT(res.body, HasSubstr("<div id=app>"));
}

TEST_F(StaticRoutesTest, UnknownApiPathsStayJson404) {
  for (const char* path : {"/api", "/api/", "/api/v1/nope", "/api/v1/scenarios/3/nope.js"}) {
    SCOPED_TRACE(path);
    HttpResponse res = Get(path);
    EXPECT_EQ(res.status, 404);
    EXPECT_EQ(res.content_type, "application/json; charset=utf-8");
    json body = json::parse(res.body);
    EXPECT_EQ(body["error"]["code"], "not_found");
    EXPECT_EQ(body["error"]["message"], std::string("no route GET ") + path);
  }
}

TEST(StaticRoutes, WithoutAConsoleTheRootExplainsAndApiStaysJson) {
  auto routes = StaticRoutes(nullptr);
  ASSERT_EQ(routes.size(), 1u);
  HttpRequest req;
  req.method = "GET";
  req.path = "/";
  HttpResponse res;
  routes[0].handler(req, res);
  EXPECT_EQ(res.status, 404);
  EXPECT_EQ(res.content_type, "text/html; charset=utf-8");
  EXPECT_THAT(res.body, HasSubstr("console is not installed"));
  EXPECT_THAT(HeaderOf(res, "Content-Security-Policy"), HasSubstr("default-src 'self'"));
  req.path = "/api/v1/nope";
  HttpResponse api;
  routes[0].handler(req, api);
  EXPECT_EQ(api.status, 404);
  EXPECT_EQ(json::parse(api.body)["error"]["code"], "not_found");
}

TEST(StaticRoutes, ADirectoryWithoutIndexHtmlIsRefused) {
  testing::TempDir dir;
  EXPECT_THAT(LoadConsoleAssets(dir.path()), StatusIs(StatusCode::kInvalidArgument, HasSubstr("has no index.html")));
  EXPECT_THAT(LoadConsoleAssets(dir.path() + "/missing"), StatusIs(StatusCode::kInvalidArgument));
}

// ---------------------------------------------------------------- the native events route

// POST /api/v1/events called directly (no socket): the handler as the server runs it after
// the auth middleware set the principal (a row of the collection protocols, collect_routes.cc).
class NativeEventsRoute : public ::testing::Test {
 protected:
  void Open(double rate, double burst) {
    StoreOptions so;
    so.background = false;
    auto reg = ProjectRegistry::Open(dir_.path(), so);
    ASSERT_THAT(reg, IsOk());
    registry_ = std::move(*reg);
    auto shop = registry_->Create("shop", "UTC");
    ASSERT_THAT(shop, IsOk());
    shop_ = *shop;
    ServerOptions opt;
    opt.rate_limit_events_per_s = rate;
    opt.rate_limit_burst = burst;
    ctx_ = std::make_unique<ServerContext>(*registry_, opt, nullptr);
    Credentials c;
    c.bearer = shop_.info.write_key;
    auto who = ctx_->auth.Authenticate(c);
    ASSERT_THAT(who, IsOk());
    who_ = *who;
    for (auto& r : CollectRoutes(*ctx_))
      if (r.method == "POST" && r.pattern == "/api/v1/events") {
        EXPECT_EQ(r.access, Access::kIngest);
        events_ = r.handler;
      }
    ASSERT_TRUE(events_);
  }

  HttpResponse Post(const std::string& body, const std::string& ctype = "application/json") {
    HttpRequest req;
    req.method = "POST";
    req.path = "/api/v1/events";
    req.body = body;
    req.headers = {{"content-type", ctype}, {"authorization", "Bearer " + shop_.info.write_key}};
    req.principal = &who_;
    HttpResponse res;
    events_(req, res);
    return res;
  }

  static std::string Events(int n, int from = 0) {
    json batch = json::array();
    for (int i = from; i < from + n; i++)
      batch.push_back(
          {{"event", "view"}, {"distinct_id", "u" + std::to_string(i)}, {"uuid", "e-" + std::to_string(i)}});
    return batch.dump();
  }

  testing::TempDir dir_;
  std::unique_ptr<ProjectRegistry> registry_;
  CreatedProject shop_;
  std::unique_ptr<ServerContext> ctx_;
  Principal who_;
  HttpHandler events_;
};

TEST_F(NativeEventsRoute, OverTheBurstIs429WithRetryAfterAndNothingStored) {
  ASSERT_NO_FATAL_FAILURE(Open(1, 3));  // 1 event/s, bursts of 3
  HttpResponse ok = Post(Events(3));
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(json::parse(ok.body)["accepted"], 3);
  HttpResponse limited = Post(Events(2, 3));
  EXPECT_EQ(limited.status, 429) << limited.body;
  json body = json::parse(limited.body);
  EXPECT_EQ(body["error"]["code"], "rate_limited");
  EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr("retry after"));
  const std::string retry = HeaderOf(limited, "Retry-After");
  ASSERT_FALSE(retry.empty());
  EXPECT_GE(std::stoi(retry), 1);
  EXPECT_LE(std::stoi(retry), 2);
  EXPECT_EQ(
      ctx_->metrics.Get("northstar_requests_rejected_total", {{"protocol", "native"}, {"reason", "rate_limited"}}), 1u);
}

TEST_F(NativeEventsRoute, UnsupportedContentTypeIs415) {
  ASSERT_NO_FATAL_FAILURE(Open(0, 0));
  HttpResponse res = Post(Events(1), "text/csv");
  EXPECT_EQ(res.status, 415) << res.body;
  json body = json::parse(res.body);
  EXPECT_EQ(body["error"]["code"], "unsupported_media_type");
  EXPECT_THAT(body["error"]["message"].get<std::string>(), HasSubstr("'text/csv'"));
  // JSON, NDJSON and an unlabelled body are accepted.
  EXPECT_EQ(Post(Events(1, 10), "application/json").status, 200);
  EXPECT_EQ(Post(R"({"event":"view","distinct_id":"n"})", "application/x-ndjson").status, 200);
  EXPECT_EQ(Post(Events(1, 11), "").status, 200);
}

TEST_F(NativeEventsRoute, AllEventsRejectedIs400WithTheErrorShape) {
  ASSERT_NO_FATAL_FAILURE(Open(0, 0));
  HttpResponse res = Post(R"([{"distinct_id":"u"}])");
  EXPECT_EQ(res.status, 400) << res.body;
  json body = json::parse(res.body);
  EXPECT_EQ(body["error"]["code"], "invalid_argument");
  EXPECT_EQ(body["accepted"], 0);
  ASSERT_EQ(body["errors"].size(), 1u);
  EXPECT_EQ(body["errors"][0]["index"], 0);
}

// ---------------------------------------------------------------- LogSafe

TEST(LogSafe, EveryControlByteIsEscapedAndTextIsKept) {
  EXPECT_EQ(LogSafe("ana@example.com"), "ana@example.com");
  EXPECT_EQ(LogSafe("a\r\nb\tc"), "a\\r\\nb\\tc");
  EXPECT_EQ(LogSafe("C:\\path"), "C:\\\\path");  // a literal backslash cannot fake an escape
  EXPECT_EQ(LogSafe("x\\ny"), "x\\\\ny");
  EXPECT_EQ(LogSafe(std::string("\x01\x1f\x7f", 3)), "\\x01\\x1f\\x7f");
  EXPECT_EQ(LogSafe("支付转化率 \u2192 ok"), "支付转化率 \u2192 ok");  // UTF-8 passes through
  for (int c = 0; c < 256; c++) {
    std::string out = LogSafe(std::string(1, static_cast<char>(c)));
    for (unsigned char o : out) EXPECT_FALSE(o < 0x20 || o == 0x7f) << "byte " << c;
  }
}

TEST(LogSafe, InputIsCutAtMaxBytes) {
  EXPECT_EQ(LogSafe("abcdef", 3), "abc");
  EXPECT_EQ(LogSafe("ab\n", 3), "ab\\n");
  EXPECT_EQ(LogSafe("abc\n", 3), "abc");
  EXPECT_EQ(LogSafe(std::string(300, '\n')).size(), 512u);  // 256 input bytes, each escaped to two
}

}  // namespace
}  // namespace ns
