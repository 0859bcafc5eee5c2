// Notification channels (ops/notify.h) against a real HTTP receiver on loopback.
//
// Every signature is re-computed here with OpenSSL directly from the documented scheme
// (docs/notifications.md), never with the module's own helpers, so a symmetric bug in
// signing and verifying cannot pass.
#include "ops/notify.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <functional>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

#include "core/httplib_checked.h"
#include "ops/http_client.h"

namespace ns {
namespace {

// These tests post to receivers on 127.0.0.1: allow private addresses for them (the refusal
// itself is tested in export_masking_test.cc).
const bool kAllowLoopback = (SetAllowPrivateAddresses(true), true);

using nlohmann::json;

// ---- independent crypto ------------------------------------------------------------------

std::string TestHmac(const std::string& key, const std::string& msg) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(msg.data()),
       msg.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string TestBase64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string TestHex(const std::string& bytes) {
  std::string out;
  char buf[3];
  for (unsigned char c : bytes) {
    std::snprintf(buf, sizeof buf, "%02x", c);
    out += buf;
  }
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---- loopback receiver -------------------------------------------------------------------

struct Captured {
  std::string method;
  std::string path;
  std::string target;  // raw request target, query included
  std::multimap<std::string, std::string> params;
  httplib::Headers headers;
  std::string body;
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

struct Reply {
  Reply(int status = 200, std::string body = "", std::string content_type = "application/json", int delay_ms = 0,
        std::string retry_after = "")
      : status(status),
        body(std::move(body)),
        content_type(std::move(content_type)),
        delay_ms(delay_ms),
        retry_after(std::move(retry_after)) {}
  int status;
  std::string body;
  std::string content_type;
  int delay_ms;             // sleep before answering
  std::string retry_after;  // Retry-After header value, if any
};

// An httplib::Server on 127.0.0.1 and a free port, in its own thread. Replies come from a
// script (one per request, in order), then `fallback`.
class Receiver {
 public:
  explicit Receiver(Reply fallback = {}) : fallback_(std::move(fallback)) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      Reply r;
      {
        std::lock_guard<std::mutex> lock(mu_);
        Captured c{req.method, req.path, req.target, {}, req.headers, req.body};
        for (const auto& [k, v] : req.params) c.params.emplace(k, v);
        requests_.push_back(std::move(c));
        if (!script_.empty()) {
          r = script_.front();
          script_.pop_front();
        } else {
          r = fallback_;
        }
      }
      if (r.delay_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(r.delay_ms));
      res.status = r.status;
      if (!r.retry_after.empty()) res.set_header("Retry-After", r.retry_after);
      res.set_content(r.body, r.content_type.c_str());
    };
    server_.Post(".*", handler);
    server_.Get(".*", handler);
    server_.Put(".*", handler);
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    for (int i = 0; i < 500 && !server_.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ~Receiver() {
    server_.stop();
    thread_.join();
  }
  std::string url(const std::string& path_and_query) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path_and_query;
  }
  void Script(std::vector<Reply> replies) {
    std::lock_guard<std::mutex> lock(mu_);
    script_.assign(replies.begin(), replies.end());
  }
  std::vector<Captured> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  Reply fallback_;
  std::mutex mu_;
  std::deque<Reply> script_;
  std::vector<Captured> requests_;
};

// A port nobody listens on: bound, then closed (connection refused on loopback).
int FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

Notification SampleAlert() {
  Notification n;
  n.title = "KPI red: 支付转化率 12% (target 15%)";
  n.text = "pay conversion −18% d/d\n71% of the drop from channel=feed_ads, step order→pay\n负责人: 王芳";
  n.level = "critical";
  n.link = "http://127.0.0.1:8080/kpis/12";
  n.data = {{"kpi_id", 12}, {"actual", 0.12}, {"target", 0.15}, {"name", "支付转化率"}};
  n.dedup_key = "kpi:12:red:2026-11-22";
  return n;
}

RetryPolicy FastPolicy(int attempts = 4) {
  RetryPolicy p;
  p.max_attempts = attempts;
  p.initial_backoff_ms = 10;
  p.multiplier = 2.0;
  p.timeout_ms = 2000;
  return p;
}

bool IsJsonContentType(const std::string& ct) { return ct.rfind("application/json", 0) == 0; }

// ---- formats and signatures, per kind ----------------------------------------------------

// One row per channel kind: the receiver's answer to a delivered message, the channel's
// URL and secret, where the request must arrive, and the kind's payload and signature
// checks (`check`, given the captured request, the notification sent, the secret and the
// time just before sending).
struct KindCase {
  std::string kind;
  Reply success;               // what the service answers when it takes the message
  std::string path_and_query;  // of the channel URL on the receiver
  std::string secret;
  std::string want_path;
  std::vector<std::pair<std::string, std::string>> want_params;  // query parameters of the request
  std::function<void(Notification&)> customise;                  // changes to SampleAlert(), if any
  std::function<void(const Captured&, const Notification&, const std::string& secret, int64_t before_ms)> check;
};

std::string KindName(const ::testing::TestParamInfo<KindCase>& info) { return info.param.kind; }

const KindCase kKindCases[] = {
    {"webhook",
     Reply{200, "ok", "text/plain"},
     "/hooks/northstar?team=growth",
     "whsec_9f8e7d",
     "/hooks/northstar",
     {{"team", "growth"}},
     nullptr,
     [](const Captured& c, const Notification& n, const std::string& secret, int64_t before) {
       // Signature: hex HMAC-SHA256(secret, raw body bytes).
       EXPECT_EQ(c.header("X-Northstar-Signature"), "sha256=" + TestHex(TestHmac(secret, c.body)));
       int64_t ts = std::stoll(c.header("X-Northstar-Timestamp"));
       EXPECT_GE(ts, before);
       EXPECT_LE(ts, NowMs());

       json j = json::parse(c.body);  // throws on invalid UTF-8
       EXPECT_EQ(j["title"], n.title);
       EXPECT_EQ(j["text"], n.text);
       EXPECT_EQ(j["level"], "critical");
       EXPECT_EQ(j["link"], n.link);
       EXPECT_EQ(j["data"], n.data);
       EXPECT_EQ(j["data"]["name"], "支付转化率");
       EXPECT_EQ(j["dedup_key"], n.dedup_key);
       ASSERT_TRUE(j["sent_at"].is_string());
       EXPECT_EQ(j["sent_at"].get<std::string>().size(), std::string("2026-11-22T08:00:00.000Z").size());
       EXPECT_EQ(j["sent_at"].get<std::string>().back(), 'Z');
       // The raw body carries UTF-8, not \u escapes.
       EXPECT_NE(c.body.find("支付转化率"), std::string::npos);
     }},
    {"feishu",
     Reply{200, R"({"code":0,"msg":"success","data":{}})"},
     "/open-apis/bot/v2/hook/3f1c-uuid",
     "fs_sign_secret_42",
     "/open-apis/bot/v2/hook/3f1c-uuid",
     {},
     nullptr,
     [](const Captured& c, const Notification& n, const std::string& secret, int64_t before) {
       json j = json::parse(c.body);
       // timestamp: seconds, as a string; sign = base64(HMAC-SHA256(key = ts + "\n" + secret, "")).
       ASSERT_TRUE(j["timestamp"].is_string());
       int64_t ts = std::stoll(j["timestamp"].get<std::string>());
       EXPECT_GE(ts, before / 1000);
       EXPECT_LE(ts, NowMs() / 1000);
       EXPECT_EQ(j["sign"], TestBase64(TestHmac(j["timestamp"].get<std::string>() + "\n" + secret, "")));

       EXPECT_EQ(j["msg_type"], "interactive");
       const json& card = j["card"];
       EXPECT_EQ(card["header"]["title"]["tag"], "plain_text");
       EXPECT_EQ(card["header"]["title"]["content"], n.title);
       EXPECT_EQ(card["header"]["template"], "red");
       ASSERT_GE(card["elements"].size(), 2u);
       EXPECT_EQ(card["elements"][0]["tag"], "div");
       EXPECT_EQ(card["elements"][0]["text"]["tag"], "lark_md");
       EXPECT_EQ(card["elements"][0]["text"]["content"], n.text);
       EXPECT_EQ(card["elements"][1]["tag"], "action");
       EXPECT_EQ(card["elements"][1]["actions"][0]["tag"], "button");
       EXPECT_EQ(card["elements"][1]["actions"][0]["url"], n.link);
     }},
    {"dingtalk",
     Reply{200, R"({"errcode":0,"errmsg":"ok"})"},
     "/robot/send?access_token=tok123",
     "SECb7c1e0f2a9d84c3e5f60718293a4b5c6d7e8f9012345678",
     "/robot/send",
     {{"access_token", "tok123"}},
     nullptr,
     [](const Captured& c, const Notification& n, const std::string& secret, int64_t before) {
       ASSERT_EQ(c.params.count("access_token"), 1u);
       ASSERT_EQ(c.params.count("timestamp"), 1u);
       ASSERT_EQ(c.params.count("sign"), 1u);
       // timestamp in milliseconds; sign = urlencode(base64(HMAC-SHA256(secret, ts + "\n" + secret))).
       const std::string ts = c.params.find("timestamp")->second;
       EXPECT_GE(std::stoll(ts), before);
       EXPECT_LE(std::stoll(ts), NowMs());
       EXPECT_EQ(c.params.find("sign")->second, TestBase64(TestHmac(secret, ts + "\n" + secret)));
       // On the wire the base64 is percent-encoded: no raw '+', '/' or '=' after "sign=".
       size_t at = c.target.find("sign=");
       ASSERT_NE(at, std::string::npos) << c.target;
       std::string raw = c.target.substr(at + 5);
       raw = raw.substr(0, raw.find('&'));
       EXPECT_EQ(raw.find_first_of("+/="), std::string::npos) << raw;

       json j = json::parse(c.body);
       EXPECT_EQ(j["msgtype"], "markdown");
       EXPECT_EQ(j["markdown"]["title"], n.title);
       std::string text = j["markdown"]["text"];
       EXPECT_NE(text.find(n.title), std::string::npos);
       EXPECT_NE(text.find("71% of the drop from channel=feed_ads"), std::string::npos);
       EXPECT_NE(text.find("负责人: 王芳"), std::string::npos);
       EXPECT_NE(text.find("](" + n.link + ")"), std::string::npos);
     }},
    {"wecom",
     Reply{200, R"({"errcode":0,"errmsg":"ok"})"},
     "/cgi-bin/webhook/send?key=693a91f6-7xxx",
     "",
     "/cgi-bin/webhook/send",
     {{"key", "693a91f6-7xxx"}},
     nullptr,
     [](const Captured& c, const Notification& n, const std::string&, int64_t) {
       json j = json::parse(c.body);
       EXPECT_EQ(j["msgtype"], "markdown");
       std::string content = j["markdown"]["content"];
       EXPECT_NE(content.find(n.title), std::string::npos);
       EXPECT_NE(content.find(n.text), std::string::npos);
       EXPECT_NE(content.find("<font color=\"warning\">"), std::string::npos);
       EXPECT_NE(content.find("](" + n.link + ")"), std::string::npos);
     }},
    {"slack",
     Reply{200, "ok", "text/plain"},
     "/services/T000/B000/XXXX",
     "",
     "/services/T000/B000/XXXX",
     {},
     [](Notification& n) { n.text = "drop <50% & rising > 3 days\n第二行"; },
     [](const Captured& c, const Notification& n, const std::string&, int64_t) {
       json j = json::parse(c.body);
       EXPECT_EQ(j["text"], n.title);
       ASSERT_TRUE(j["blocks"].is_array());
       ASSERT_EQ(j["blocks"].size(), 3u);
       EXPECT_EQ(j["blocks"][0]["type"], "header");
       EXPECT_EQ(j["blocks"][0]["text"]["type"], "plain_text");
       EXPECT_EQ(j["blocks"][0]["text"]["text"], n.title);
       EXPECT_EQ(j["blocks"][1]["type"], "section");
       EXPECT_EQ(j["blocks"][1]["text"]["type"], "mrkdwn");
       EXPECT_EQ(j["blocks"][1]["text"]["text"], "drop &lt;50% &amp; rising &gt; 3 days\n第二行");
       EXPECT_EQ(j["blocks"][2]["type"], "context");
       std::string ctx = j["blocks"][2]["elements"][0]["text"];
       EXPECT_NE(ctx.find("<" + n.link + "|"), std::string::npos) << ctx;
       EXPECT_NE(ctx.find("critical"), std::string::npos) << ctx;
     }},
};

class NotifyKind : public ::testing::TestWithParam<KindCase> {};

// Every kind: one POST of JSON to the channel's path (its query kept), the kind's payload
// and signature, and the service's success answer read as success at the first attempt.
TEST_P(NotifyKind, PayloadSignatureAndSuccessCheck) {
  const KindCase& k = GetParam();
  Receiver rx(k.success);
  NotificationChannel ch{1, "channel " + k.kind, k.kind, rx.url(k.path_and_query), k.secret};
  Notification n = SampleAlert();
  if (k.customise) k.customise(n);
  const int64_t before = NowMs();
  DeliveryResult r = Deliver(ch, n, FastPolicy());
  ASSERT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.http_status, 200);

  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  const Captured& c = reqs[0];
  EXPECT_EQ(c.method, "POST");
  EXPECT_EQ(c.path, k.want_path);
  for (const auto& [name, value] : k.want_params) {
    auto it = c.params.find(name);
    ASSERT_NE(it, c.params.end()) << name;
    EXPECT_EQ(it->second, value) << name;
  }
  EXPECT_TRUE(IsJsonContentType(c.header("Content-Type"))) << c.header("Content-Type");
  k.check(c, n, k.secret, before);
}

INSTANTIATE_TEST_SUITE_P(Kinds, NotifyKind, ::testing::ValuesIn(kKindCases), KindName);

// The chat services answer 200 with an error code in the body for a refused message (a bad
// signature, a wrong URL): a failure, reported with the service's code and message, and not
// retried (sending again cannot fix it).
struct ServiceErrorCase {
  std::string kind;
  std::string path_and_query;
  std::string secret;
  std::string answer;                  // the 200 body
  std::vector<std::string> error_has;  // in DeliveryResult::error
};

std::string ServiceErrorName(const ::testing::TestParamInfo<ServiceErrorCase>& info) { return info.param.kind; }

const ServiceErrorCase kServiceErrorCases[] = {
    {"feishu",
     "/open-apis/bot/v2/hook/x",
     "wrong",
     R"({"code":19021,"data":{},"msg":"sign match fail or timestamp is not within one hour from current time"})",
     {"19021", "sign match fail"}},
    {"dingtalk",
     "/robot/send?access_token=t",
     "SECx",
     R"({"errcode":310000,"errmsg":"sign not match"})",
     {"310000", "sign not match"}},
    {"wecom",
     "/cgi-bin/webhook/send?key=k",
     "",
     R"({"errcode":93000,"errmsg":"invalid webhook url"})",
     {"93000", "invalid webhook url"}},
};

class NotifyServiceError : public ::testing::TestWithParam<ServiceErrorCase> {};

TEST_P(NotifyServiceError, ErrorCodeInA200IsAFailureAndNotRetried) {
  const ServiceErrorCase& k = GetParam();
  Receiver rx({200, k.answer});
  NotificationChannel ch{2, "", k.kind, rx.url(k.path_and_query), k.secret};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.http_status, 200);
  for (const std::string& want : k.error_has) EXPECT_NE(r.error.find(want), std::string::npos) << r.error;
  EXPECT_NE(r.response_body.find(k.error_has[0]), std::string::npos) << r.response_body;
  EXPECT_EQ(rx.requests().size(), 1u);
}

INSTANTIATE_TEST_SUITE_P(Kinds, NotifyServiceError, ::testing::ValuesIn(kServiceErrorCases), ServiceErrorName);

// ---- per kind: the rest of each format ---------------------------------------------------

// Debian's compiled cpp-httplib has members (OpenSSL support) that httplib.h shows only with
// the library's pkg-config Cflags; a file compiled without them reserves a smaller
// httplib::Client than the library's constructor fills, and the neighbour is overwritten
// (docs/decisions.md, "cpp-httplib's compile flags"). Every target that includes httplib.h
// gets those flags from CMakeLists.txt; this checks it does here.
TEST(HttplibLayout, ClientConstructorStaysInsideTheObject) {
  alignas(httplib::Client) unsigned char buf[sizeof(httplib::Client) + 64];
  std::memset(buf, 0xA5, sizeof buf);
  auto* client = new (buf) httplib::Client("127.0.0.1", 1);
  size_t changed = sizeof buf;  // the first byte past the object that is no longer 0xA5
  for (size_t i = sizeof(httplib::Client); i < sizeof buf && changed == sizeof buf; i++)
    if (buf[i] != 0xA5) changed = i;
  client->~Client();
  EXPECT_EQ(changed, sizeof buf) << "the library wrote byte " << changed << " of a " << sizeof(httplib::Client)
                                 << "-byte httplib::Client";
}

TEST(NotifyWebhook, NoSecretMeansNoSignatureHeader) {
  Receiver rx({204, "", "text/plain"});
  NotificationChannel ch{1, "", "webhook", rx.url("/h"), ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  ASSERT_TRUE(r.ok) << r.error;
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_EQ(reqs[0].header("X-Northstar-Signature"), "");
  EXPECT_NE(reqs[0].header("X-Northstar-Timestamp"), "");
}

TEST(NotifyWebhook, SignatureIsDeterministicForAFixedTime) {
  NotificationChannel ch{1, "", "webhook", "https://example.com/h", "k"};
  auto a = BuildChannelRequest(ch, SampleAlert(), 1764000000123);
  auto b = BuildChannelRequest(ch, SampleAlert(), 1764000000123);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->body, b->body);
  EXPECT_EQ(json::parse(a->body)["sent_at"], "2025-11-24T16:00:00.123Z");
  bool found = false;
  for (const auto& [k, v] : a->headers) {
    if (k == "X-Northstar-Signature") {
      found = true;
      EXPECT_EQ(v, "sha256=" + TestHex(TestHmac("k", a->body)));
    }
    if (k == "X-Northstar-Timestamp") {
      EXPECT_EQ(v, "1764000000123");
    }
  }
  EXPECT_TRUE(found);
}

TEST(NotifyFeishu, NoSecretNoSignAndLevelColours) {
  NotificationChannel ch{2, "", "feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/x", ""};
  Notification n = SampleAlert();
  for (auto [level, colour] : {std::pair{"info", "blue"}, {"warning", "orange"}, {"critical", "red"}}) {
    n.level = level;
    n.link.clear();
    auto req = BuildChannelRequest(ch, n, 1764000000000);
    ASSERT_TRUE(req.ok()) << req.status().ToString();
    json j = json::parse(req->body);
    EXPECT_FALSE(j.contains("sign"));
    EXPECT_FALSE(j.contains("timestamp"));
    EXPECT_EQ(j["card"]["header"]["template"], colour);
    EXPECT_EQ(j["card"]["elements"].size(), 1u);  // no link, no button
  }
}

TEST(NotifyFeishu, RateLimitCodeIsRetried) {
  Receiver rx({200, R"({"code":0,"msg":"success"})"});
  rx.Script({{200, R"({"code":11232,"msg":"frequency limited"})"}});
  NotificationChannel ch{2, "", "feishu", rx.url("/open-apis/bot/v2/hook/x"), ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 2);
}

TEST(NotifyDingTalk, UrlWithoutQueryGetsQuestionMark) {
  NotificationChannel ch{3, "", "dingtalk", "https://oapi.dingtalk.com/robot/send", "SECabc"};
  auto req = BuildChannelRequest(ch, SampleAlert(), 1764000000000);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->url.rfind("https://oapi.dingtalk.com/robot/send?timestamp=1764000000000&sign=", 0), 0u) << req->url;
  NotificationChannel unsigned_ch{3, "", "dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=a", ""};
  req = BuildChannelRequest(unsigned_ch, SampleAlert(), 1764000000000);
  ASSERT_TRUE(req.ok());
  EXPECT_EQ(req->url, "https://oapi.dingtalk.com/robot/send?access_token=a");
}

TEST(NotifyWeCom, LongChineseTextIsCutTo4096BytesOnACharacterBoundary) {
  Receiver rx({200, R"({"errcode":0,"errmsg":"ok"})"});
  NotificationChannel ch{4, "", "wecom", rx.url("/cgi-bin/webhook/send?key=k"), ""};
  Notification n = SampleAlert();
  n.text.clear();
  for (int i = 0; i < 3000; ++i) n.text += "转";  // 9000 bytes
  DeliveryResult r = Deliver(ch, n, FastPolicy());
  ASSERT_TRUE(r.ok) << r.error;
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 1u);
  json j = json::parse(reqs[0].body);  // would throw on a split UTF-8 sequence
  std::string content = j["markdown"]["content"];
  EXPECT_LE(content.size(), 4096u);
  EXPECT_GT(content.size(), 3900u);
  EXPECT_NE(content.find("](" + n.link + ")"), std::string::npos);  // the link survives the cut
}

TEST(NotifySlack, HeaderIsCutTo150Characters) {
  NotificationChannel ch{5, "", "slack", "https://hooks.slack.com/services/T/B/X", ""};
  Notification n = SampleAlert();
  n.title.clear();
  for (int i = 0; i < 200; ++i) n.title += "指";
  auto req = BuildChannelRequest(ch, n, 0);
  ASSERT_TRUE(req.ok());
  std::string header = json::parse(req->body)["blocks"][0]["text"]["text"];
  size_t chars = 0;
  for (unsigned char ch8 : header) chars += (ch8 & 0xC0) != 0x80;
  EXPECT_EQ(chars, 150u);
  EXPECT_EQ(header.substr(header.size() - 3), "\xE2\x80\xA6");  // "…"
}

// ---- retries -----------------------------------------------------------------------------

TEST(NotifyRetry, TwoServerErrorsThenSuccess) {
  Receiver rx({200, "ok", "text/plain"});
  rx.Script({{500, "boom", "text/plain"}, {502, "bad gateway", "text/plain"}});
  NotificationChannel ch{1, "", "webhook", rx.url("/h"), "k"};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(r.http_status, 200);
  EXPECT_TRUE(r.error.empty());
  EXPECT_GE(r.duration_ms, 10 + 20);  // two backoff waits
  auto reqs = rx.requests();
  ASSERT_EQ(reqs.size(), 3u);
  for (const auto& c : reqs) {  // every attempt is signed over its own body
    EXPECT_EQ(c.header("X-Northstar-Signature"), "sha256=" + TestHex(TestHmac("k", c.body)));
  }
}

TEST(NotifyRetry, ClientErrorIsNotRetried) {
  Receiver rx({400, "invalid_payload", "text/plain"});
  NotificationChannel ch{5, "", "slack", rx.url("/services/T/B/X"), ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(r.error, "HTTP 400: invalid_payload");
  EXPECT_EQ(r.response_body, "invalid_payload");
  EXPECT_EQ(rx.requests().size(), 1u);
}

TEST(NotifyRetry, TooManyRequestsIsRetried) {
  Receiver rx({200, "ok", "text/plain"});
  rx.Script({{429, "rate_limited", "text/plain"}});
  NotificationChannel ch{5, "", "slack", rx.url("/services/T/B/X"), ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 2);
}

TEST(NotifyRetry, RetryAfterIsHonouredWhenLongerThanTheBackoff) {
  Receiver rx({200, "ok", "text/plain"});
  rx.Script({{429, "slow down", "text/plain", 0, "1"}});
  NotificationChannel ch{1, "", "webhook", rx.url("/h"), ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GE(r.duration_ms, 1000);  // not the 10 ms backoff
}

TEST(NotifyRetry, PersistentServerErrorGivesUpAfterMaxAttempts) {
  Receiver rx({503, "unavailable", "text/plain"});
  NotificationChannel ch{1, "", "webhook", rx.url("/h"), ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy(3));
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 3);
  EXPECT_EQ(r.http_status, 503);
  EXPECT_EQ(r.error, "after 3 attempts: HTTP 503: unavailable");
  EXPECT_EQ(rx.requests().size(), 3u);
}

TEST(NotifyRetry, ConnectionRefusedBacksOffExponentially) {
  NotificationChannel ch{1, "", "webhook", "http://127.0.0.1:" + std::to_string(FreePort()) + "/h", "k"};
  RetryPolicy p = FastPolicy(4);
  p.initial_backoff_ms = 40;  // waits 40 + 80 + 160 = 280 ms
  DeliveryResult r = Deliver(ch, SampleAlert(), p);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 4);
  EXPECT_EQ(r.http_status, 0);
  EXPECT_GE(r.duration_ms, 280);
  EXPECT_LT(r.duration_ms, 5000);
  EXPECT_EQ(r.error.rfind("after 4 attempts: ", 0), 0u) << r.error;
}

TEST(NotifyRetry, SlowReceiverTimesOutAndIsRetried) {
  Receiver rx({200, "ok", "text/plain"});
  rx.Script({{200, "too late", "text/plain", /*delay_ms=*/600}});
  NotificationChannel ch{1, "", "webhook", rx.url("/h"), ""};
  RetryPolicy p = FastPolicy(2);
  p.timeout_ms = 200;
  DeliveryResult r = Deliver(ch, SampleAlert(), p);
  EXPECT_TRUE(r.ok) << r.error;
  EXPECT_EQ(r.attempts, 2);
}

TEST(NotifyRetry, InvalidChannelMakesNoAttempt) {
  NotificationChannel ch{1, "", "pager", "http://127.0.0.1:1/h", ""};
  DeliveryResult r = Deliver(ch, SampleAlert(), FastPolicy());
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.attempts, 0);
  EXPECT_NE(r.error.find("unknown channel kind 'pager'"), std::string::npos) << r.error;
}

// ---- validation --------------------------------------------------------------------------

struct BadChannel {
  NotificationChannel ch;
  std::string field;
  std::string message_part;
};

TEST(NotifyValidate, RejectsBadChannelsWithFieldAndMessage) {
  const std::vector<BadChannel> cases = {
      {{0, "", "", "https://x.example/h", ""}, "kind", "unknown channel kind ''"},
      {{0, "", "email", "https://x.example/h", ""}, "kind", "unknown channel kind 'email' (expected webhook, feishu"},
      {{0, "", "Slack", "https://x.example/h", ""}, "kind", "unknown channel kind 'Slack'"},
      {{0, "", "webhook", "", ""}, "url", "channel url is empty"},
      {{0, "", "webhook", "ftp://x.example/h", ""}, "url", "must start with https:// or http://"},
      {{0, "", "webhook", "x.example/h", ""}, "url", "must start with https:// or http://"},
      {{0, "", "webhook", "https:///h", ""}, "url", "has no host"},
      {{0, "", "webhook", "https://:80/h", ""}, "url", "has no host"},
      {{0, "", "webhook", "https://x.example/a b", ""}, "url", "contains spaces"},
      {{0, "", "webhook", "https://x.example/h\n", ""}, "url", "control"},
      {{0, "", "webhook", "https://x.example:99999/h", ""}, "url", "invalid port '99999'"},
      {{0, "", "webhook", "https://x.example:/h", ""}, "url", "invalid port ''"},
      {{0, "", "webhook", "https://x.example:8a/h", ""}, "url", "invalid port '8a'"},
      {{0, "", "webhook", "https://user:pw@x.example/h", ""}, "url", "user info"},
      {{0, "", "webhook", "https://x.example/" + std::string(3000, 'a'), ""}, "url", "at most 2048"},
      {{0, "", "wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "s"},
       "secret",
       "WeCom group bots have no signing secret"},
      {{0, "", "slack", "https://hooks.slack.com/services/T/B/X", "s"},
       "secret",
       "Slack incoming webhooks have no signing secret"},
      {{0, "", "dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=t", "abc"}, "secret", "start with 'SEC'"},
      {{0, "", "feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/x", "abc\n"}, "secret", "control characters"},
      {{0, "", "webhook", "https://x.example/h", " abc"}, "secret", "leading/trailing spaces"},
      {{0, "", "webhook", "https://x.example/h", std::string(600, 'k')}, "secret", "at most 512"},
  };
  for (const auto& c : cases) {
    Status s = ValidateChannel(c.ch);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.ch.kind << " " << c.ch.url;
    EXPECT_EQ(s.field(), c.field) << s.message();
    EXPECT_NE(s.message().find(c.message_part), std::string::npos)
        << "message: " << s.message() << "\nexpected part: " << c.message_part;
    // BuildChannelRequest refuses the same channel with the same error.
    auto req = BuildChannelRequest(c.ch, SampleAlert(), 0);
    EXPECT_FALSE(req.ok());
    EXPECT_EQ(req.status().field(), c.field);
  }
}

TEST(NotifyValidate, AcceptsTheServicesRealUrls) {
  const std::vector<NotificationChannel> ok = {
      {0, "", "webhook", "https://hooks.example.com/northstar", ""},
      {0, "", "webhook", "http://10.0.0.5:8080/hook?x=1", "any secret"},
      {0, "", "feishu", "https://open.feishu.cn/open-apis/bot/v2/hook/0f1e2d3c", "fsSecret"},
      {0, "", "feishu", "https://open.larksuite.com/open-apis/bot/v2/hook/0f1e2d3c", ""},
      {0, "", "dingtalk", "https://oapi.dingtalk.com/robot/send?access_token=abc", "SEC0123abc"},
      {0, "", "wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6", ""},
      {0, "", "slack", "https://hooks.slack.com/services/T000/B000/XXXX", ""},
      {0, "", "webhook", "http://[::1]:9000/h", ""},
  };
  for (const auto& ch : ok) {
    Status s = ValidateChannel(ch);
    EXPECT_TRUE(s.ok()) << ch.kind << " " << ch.url << ": " << s.ToString();
  }
}

TEST(NotifyValidate, RejectsBadNotifications) {
  NotificationChannel ch{0, "", "webhook", "https://x.example/h", ""};
  Notification n = SampleAlert();
  n.level = "error";
  auto req = BuildChannelRequest(ch, n, 0);
  ASSERT_FALSE(req.ok());
  EXPECT_EQ(req.status().field(), "level");
  EXPECT_EQ(req.status().message(), "notification level 'error' is not one of info, warning, critical");
  n = SampleAlert();
  n.title.clear();
  req = BuildChannelRequest(ch, n, 0);
  ASSERT_FALSE(req.ok());
  EXPECT_EQ(req.status().field(), "title");
  n = SampleAlert();
  n.link = "javascript:alert(1)";
  req = BuildChannelRequest(ch, n, 0);
  ASSERT_FALSE(req.ok());
  EXPECT_EQ(req.status().field(), "link");
}

TEST(NotifyHttpClient, MalformedUrlIsInvalidArgumentRefusedIsUnavailable) {
  auto r = HttpPost("gopher://x/", {{"Content-Type", "text/plain"}}, "x", 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  r = HttpPost("http://127.0.0.1:" + std::to_string(FreePort()) + "/", {{"Content-Type", "text/plain"}}, "x", 1000);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
}

// A TLS receiver with a freshly generated self-signed certificate: the handshake happens
// (https is compiled in) and the client refuses the certificate (verification is on).
TEST(NotifyHttpClient, HttpsVerifiesTheServerCertificate) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  ASSERT_NE(key, nullptr);
  X509* cert = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert), -60);
  X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
  X509_set_issuer_name(cert, name);
  ASSERT_GT(X509_sign(cert, key, EVP_sha256()), 0);

  std::atomic<int> hits{0};
  {
    httplib::SSLServer server(cert, key);
    ASSERT_TRUE(server.is_valid());
    server.Post(".*", [&](const httplib::Request&, httplib::Response& res) {
      ++hits;
      res.set_content("ok", "text/plain");
    });
    int port = server.bind_to_any_port("127.0.0.1");
    std::thread t([&] { server.listen_after_bind(); });
    for (int i = 0; i < 500 && !server.is_running(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto r = HttpPost("https://127.0.0.1:" + std::to_string(port) + "/h", {{"Content-Type", "application/json"}}, "{}",
                      2000);
    server.stop();
    t.join();
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kUnavailable);
    EXPECT_NE(r.status().message().find("SSL"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(hits.load(), 0);
  X509_free(cert);
  EVP_PKEY_free(key);
}

}  // namespace
}  // namespace ns
