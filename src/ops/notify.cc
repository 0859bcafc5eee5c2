// Message formats and signatures: docs/notifications.md. Each Build*Request below follows the
// service's documented custom-bot / webhook format; change both together.
#include "ops/notify.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

#include <strings.h>

#include "ops/http_client.h"

namespace ns {
namespace {

constexpr size_t kMaxUrlBytes = 2048;
constexpr size_t kMaxSecretBytes = 512;
constexpr size_t kMaxResponseBody = 4096;
constexpr int64_t kMaxBackoffMs = 60'000;
constexpr int64_t kMaxRetryAfterMs = 10'000;
const char kJsonContentType[] = "application/json; charset=utf-8";
const char kUserAgent[] = "Northstar-Notify/1";
const char kOpenLinkLabel[] = "Open in Northstar";

// ---- primitives --------------------------------------------------------------------------

std::string HmacSha256(const std::string& key, const std::string& message) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(message.data()),
       message.size(), out, &len);
  return std::string(reinterpret_cast<const char*>(out), len);
}

std::string Base64(const std::string& bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

// Percent-encodes everything but RFC 3986 unreserved characters ('+', '/', '=' included).
std::string UrlEncode(const std::string& s) {
  static const char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kDigits[c >> 4]);
      out.push_back(kDigits[c & 15]);
    }
  }
  return out;
}

// Same, counting Unicode code points (Slack's limits are in characters).
std::string TruncateChars(const std::string& s, size_t max_chars) {
  size_t chars = 0;
  size_t cut = std::string::npos;  // byte offset where character max_chars-1 starts
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) continue;
    if (chars == max_chars - 1) cut = i;
    ++chars;
  }
  if (chars <= max_chars) return s;
  return s.substr(0, cut) + "\xE2\x80\xA6";
}

std::string Iso8601Utc(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

// nlohmann::json throws on invalid UTF-8 when dumping; replace bad bytes instead, so one
// bad byte in a KPI name never loses an alert.
std::string Dump(const nlohmann::json& j) { return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace); }

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool HasControlChars(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    unsigned char u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7F;
  });
}

// Lines of `text` joined for markdown flavours where a single "\n" is not a line break.
std::string JoinLines(const std::string& text, const std::string& sep) {
  std::string out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t nl = text.find('\n', start);
    std::string line = text.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!out.empty() || start > 0) out += sep;
    out += line;
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

std::string LevelLabel(const std::string& level) {
  if (level == "critical") return "CRITICAL";
  if (level == "warning") return "WARNING";
  return "INFO";
}

// ---- formats -----------------------------------------------------------------------------

OutgoingRequest JsonRequest(std::string url, const nlohmann::json& body) {
  OutgoingRequest r;
  r.url = std::move(url);
  r.headers = {{"Content-Type", kJsonContentType}, {"User-Agent", kUserAgent}};
  r.body = Dump(body);
  return r;
}

// Generic webhook: our own JSON; signature = hex HMAC-SHA256(secret, raw body).
OutgoingRequest BuildWebhook(const NotificationChannel& ch, const Notification& n, int64_t now_ms) {
  nlohmann::json body = {
      {"title", n.title},
      {"text", n.text},
      {"level", n.level},
      {"link", n.link},
      {"data", n.data},
      {"dedup_key", n.dedup_key},
      {"sent_at", Iso8601Utc(now_ms)},
  };
  OutgoingRequest r = JsonRequest(ch.url, body);
  r.headers.emplace_back("X-Northstar-Timestamp", std::to_string(now_ms));
  // The receiver drops a message whose key it has seen (a retry after a crash, a journey's
  // re-sent step): the key is in the body (dedup_key) and in this header.
  if (!n.dedup_key.empty()) r.headers.emplace_back("Idempotency-Key", n.dedup_key);
  if (!ch.secret.empty()) {
    r.headers.emplace_back("X-Northstar-Signature", "sha256=" + Hex(HmacSha256(ch.secret, r.body)));
  }
  return r;
}

// Feishu/Lark custom bot: an interactive card; when the bot has signature verification on,
// "timestamp" (seconds, as a string) and "sign" = base64(HMAC-SHA256(key = timestamp + "\n" +
// secret, message = "")) go into the body.
OutgoingRequest BuildFeishu(const NotificationChannel& ch, const Notification& n, int64_t now_ms) {
  const char* color = n.level == "critical" ? "red" : n.level == "warning" ? "orange" : "blue";
  nlohmann::json elements = nlohmann::json::array();
  elements.push_back({{"tag", "div"}, {"text", {{"tag", "lark_md"}, {"content", TruncateUtf8Bytes(n.text, 20000)}}}});
  if (!n.link.empty()) {
    elements.push_back(
        {{"tag", "action"},
         {"actions", nlohmann::json::array({{{"tag", "button"},
                                             {"text", {{"tag", "plain_text"}, {"content", kOpenLinkLabel}}},
                                             {"type", "primary"},
                                             {"url", n.link}}})}});
  }
  nlohmann::json body = {
      {"msg_type", "interactive"},
      {"card",
       {{"config", {{"wide_screen_mode", true}}},
        {"header", {{"title", {{"tag", "plain_text"}, {"content", n.title}}}, {"template", color}}},
        {"elements", elements}}},
  };
  if (!ch.secret.empty()) {
    std::string ts = std::to_string(now_ms / 1000);
    body["timestamp"] = ts;
    body["sign"] = Base64(HmacSha256(ts + "\n" + ch.secret, ""));
  }
  return JsonRequest(ch.url, body);
}

// DingTalk custom bot: msgtype markdown; with a secret, "&timestamp=<ms>&sign=<urlencoded
// base64(HMAC-SHA256(key = secret, message = timestamp + "\n" + secret))>" on the URL.
OutgoingRequest BuildDingTalk(const NotificationChannel& ch, const Notification& n, int64_t now_ms) {
  std::string md = "#### " + n.title + "\n\n";
  if (n.level != "info") md += "**" + LevelLabel(n.level) + "**\n\n";
  md += JoinLines(n.text, "\n\n");
  if (!n.link.empty()) md += "\n\n[" + std::string(kOpenLinkLabel) + "](" + n.link + ")";
  nlohmann::json body = {
      {"msgtype", "markdown"},
      {"markdown", {{"title", n.title}, {"text", TruncateUtf8Bytes(md, 18000)}}},
  };
  std::string url = ch.url;
  if (!ch.secret.empty()) {
    size_t hash = url.find('#');
    if (hash != std::string::npos) url.resize(hash);
    std::string ts = std::to_string(now_ms);
    std::string sign = Base64(HmacSha256(ch.secret, ts + "\n" + ch.secret));
    url += (url.find('?') == std::string::npos ? '?' : '&');
    url += "timestamp=" + ts + "&sign=" + UrlEncode(sign);
  }
  return JsonRequest(url, body);
}

// WeCom group bot: msgtype markdown, content at most 4096 bytes (UTF-8).
OutgoingRequest BuildWeCom(const NotificationChannel& ch, const Notification& n, int64_t) {
  std::string md = "## " + n.title + "\n";
  if (n.level != "info") {
    md += std::string("<font color=\"") + (n.level == "critical" ? "warning" : "comment") + "\">" +
          LevelLabel(n.level) + "</font>\n";
  }
  std::string tail = n.link.empty() ? "" : "\n[" + std::string(kOpenLinkLabel) + "](" + n.link + ")";
  md = TruncateUtf8Bytes(md + n.text, 4096 - tail.size()) + tail;
  nlohmann::json body = {{"msgtype", "markdown"}, {"markdown", {{"content", md}}}};
  return JsonRequest(ch.url, body);
}

std::string SlackEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '&')
      out += "&amp;";
    else if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else
      out.push_back(c);
  }
  return out;
}

// Slack incoming webhook: Block Kit (header <= 150 chars, section mrkdwn <= 3000 chars,
// context with level and link) and "text" as the notification fallback.
OutgoingRequest BuildSlack(const NotificationChannel& ch, const Notification& n, int64_t) {
  nlohmann::json blocks = nlohmann::json::array();
  blocks.push_back(
      {{"type", "header"}, {"text", {{"type", "plain_text"}, {"text", TruncateChars(n.title, 150)}, {"emoji", true}}}});
  if (!n.text.empty()) {
    blocks.push_back(
        {{"type", "section"}, {"text", {{"type", "mrkdwn"}, {"text", TruncateChars(SlackEscape(n.text), 3000)}}}});
  }
  std::string context = "Level: *" + n.level + "*";
  if (!n.link.empty()) context += "  |  <" + n.link + "|" + kOpenLinkLabel + ">";
  blocks.push_back(
      {{"type", "context"}, {"elements", nlohmann::json::array({{{"type", "mrkdwn"}, {"text", context}}})}});
  nlohmann::json body = {{"text", TruncateChars(n.title, 3000)}, {"blocks", blocks}};
  return JsonRequest(ch.url, body);
}

Status ValidateNotification(const Notification& n) {
  if (n.title.empty()) return InvalidArgument("notification title is empty", "title");
  if (n.level != "info" && n.level != "warning" && n.level != "critical") {
    return InvalidArgument("notification level '" + n.level + "' is not one of info, warning, critical", "level");
  }
  if (!n.link.empty() && n.link.rfind("http://", 0) != 0 && n.link.rfind("https://", 0) != 0) {
    return InvalidArgument("notification link '" + n.link + "' is not an http(s) URL", "link");
  }
  return Status::OK();
}

// ---- delivery ----------------------------------------------------------------------------

// Service-level rate-limit codes in a 200 body: worth a retry after backoff.
bool IsServiceRateLimit(const std::string& kind, int64_t code) {
  return (kind == "feishu" && code == 11232) || (kind == "dingtalk" && code == 130101) ||
         (kind == "wecom" && code == 45009);
}

struct Verdict {
  bool ok = false;
  bool retry = false;
  std::string error;
  int64_t retry_after_ms = 0;
};

Verdict Judge(const std::string& kind, const HttpClientResponse& resp) {
  Verdict v;
  std::string snippet = TruncateUtf8Bytes(resp.body, 300);
  if (resp.status >= 200 && resp.status < 300) {
    const char* field = kind == "feishu" ? "code" : (kind == "dingtalk" || kind == "wecom") ? "errcode" : nullptr;
    if (field == nullptr) {
      v.ok = true;
      return v;
    }
    nlohmann::json j = nlohmann::json::parse(resp.body, nullptr, /*allow_exceptions=*/false);
    if (j.is_object() && j.contains(field) && j[field].is_number_integer() && j[field].get<int64_t>() != 0) {
      int64_t code = j[field].get<int64_t>();
      std::string msg;
      for (const char* m : {"msg", "errmsg"}) {
        if (j.contains(m) && j[m].is_string()) msg = j[m].get<std::string>();
      }
      v.error = kind + " error " + std::to_string(code) + (msg.empty() ? "" : ": " + msg);
      v.retry = IsServiceRateLimit(kind, code);
      return v;
    }
    // Feishu's older hook answers {"StatusCode":0,...}; a nonzero one is an error too.
    if (kind == "feishu" && j.is_object() && j.contains("StatusCode") && j["StatusCode"].is_number_integer() &&
        j["StatusCode"].get<int64_t>() != 0) {
      v.error = "feishu error " + std::to_string(j["StatusCode"].get<int64_t>());
      return v;
    }
    v.ok = true;
    return v;
  }
  v.error = "HTTP " + std::to_string(resp.status) + (snippet.empty() ? "" : ": " + snippet);
  v.retry = resp.status == 429 || resp.status >= 500;
  if (resp.status == 429 || resp.status == 503) {
    for (const auto& [k, val] : resp.headers) {
      if (k.size() == 11 && strncasecmp(k.c_str(), "Retry-After", 11) == 0) {
        char* end = nullptr;
        long secs = std::strtol(val.c_str(), &end, 10);
        if (end != val.c_str() && secs > 0) v.retry_after_ms = std::min<int64_t>(secs * 1000, kMaxRetryAfterMs);
      }
    }
  }
  return v;
}

}  // namespace

// Cuts `s` to at most `max_bytes` bytes without splitting a UTF-8 sequence; appends "…"
// (counted in the limit) when it cut.
std::string TruncateUtf8Bytes(const std::string& s, size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  static const std::string kEllipsis = "\xE2\x80\xA6";
  size_t end = max_bytes >= kEllipsis.size() ? max_bytes - kEllipsis.size() : 0;
  while (end > 0 && (static_cast<unsigned char>(s[end]) & 0xC0) == 0x80) --end;
  return s.substr(0, end) + kEllipsis;
}

Status ValidateChannel(const NotificationChannel& ch) {
  static const char* kKinds[] = {"webhook", "feishu", "dingtalk", "wecom", "slack"};
  if (std::find_if(std::begin(kKinds), std::end(kKinds), [&](const char* k) { return ch.kind == k; }) ==
      std::end(kKinds)) {
    return InvalidArgument(
        "unknown channel kind '" + ch.kind + "' (expected webhook, feishu, dingtalk, wecom or slack)", "kind");
  }
  if (ch.url.empty()) return InvalidArgument("channel url is empty", "url");
  if (ch.url.size() > kMaxUrlBytes) {
    return InvalidArgument(
        "channel url is " + std::to_string(ch.url.size()) + " bytes (at most " + std::to_string(kMaxUrlBytes) + ")",
        "url");
  }
  size_t host_start;
  if (ch.url.rfind("https://", 0) == 0) {
    host_start = 8;
  } else if (ch.url.rfind("http://", 0) == 0) {
    host_start = 7;
  } else {
    return InvalidArgument("channel url '" + ch.url + "' must start with https:// or http://", "url");
  }
  if (std::any_of(ch.url.begin(), ch.url.end(), [](char c) {
        unsigned char u = static_cast<unsigned char>(c);
        return u <= 0x20 || u >= 0x7F;
      })) {
    return InvalidArgument("channel url '" + ch.url + "' contains spaces, control or non-ASCII characters", "url");
  }
  size_t host_end = ch.url.find_first_of("/?#", host_start);
  std::string authority =
      ch.url.substr(host_start, host_end == std::string::npos ? std::string::npos : host_end - host_start);
  if (authority.empty() || authority[0] == ':') {
    return InvalidArgument("channel url '" + ch.url + "' has no host", "url");
  }
  if (authority.find('@') != std::string::npos) {
    return InvalidArgument("channel url '" + ch.url + "' must not contain user info (user@)", "url");
  }
  size_t colon = authority.rfind(':');
  if (colon != std::string::npos && authority.find(']', colon) == std::string::npos) {
    std::string port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) || std::stoi(port) == 0 ||
        std::stoi(port) > 65535) {
      return InvalidArgument("channel url '" + ch.url + "' has an invalid port '" + port + "'", "url");
    }
  }
  if (Status st = CheckWebhookHostLiteral(authority); !st.ok()) return InvalidArgument(st.message(), "url");

  if (ch.secret.size() > kMaxSecretBytes) {
    return InvalidArgument("channel secret is " + std::to_string(ch.secret.size()) + " bytes (at most " +
                               std::to_string(kMaxSecretBytes) + ")",
                           "secret");
  }
  if (HasControlChars(ch.secret) || (!ch.secret.empty() && (ch.secret.front() == ' ' || ch.secret.back() == ' '))) {
    return InvalidArgument("channel secret has leading/trailing spaces or control characters (copy-paste error?)",
                           "secret");
  }
  if ((ch.kind == "wecom" || ch.kind == "slack") && !ch.secret.empty()) {
    return InvalidArgument(std::string(ch.kind == "wecom" ? "WeCom group bots" : "Slack incoming webhooks") +
                               " have no signing secret (the URL itself is the credential); leave secret empty",
                           "secret");
  }
  if (ch.kind == "dingtalk" && !ch.secret.empty() && ch.secret.rfind("SEC", 0) != 0) {
    return InvalidArgument(
        "DingTalk signing secrets start with 'SEC' (copy it from the bot's security settings, "
        "'加签')",
        "secret");
  }
  return Status::OK();
}

StatusOr<OutgoingRequest> BuildChannelRequest(const NotificationChannel& ch, const Notification& n, int64_t now_ms) {
  NS_RETURN_IF_ERROR(ValidateChannel(ch));
  NS_RETURN_IF_ERROR(ValidateNotification(n));
  if (ch.kind == "webhook") return BuildWebhook(ch, n, now_ms);
  if (ch.kind == "feishu") return BuildFeishu(ch, n, now_ms);
  if (ch.kind == "dingtalk") return BuildDingTalk(ch, n, now_ms);
  if (ch.kind == "wecom") return BuildWeCom(ch, n, now_ms);
  return BuildSlack(ch, n, now_ms);
}

DeliveryResult Deliver(const NotificationChannel& ch, const Notification& n, const RetryPolicy& policy) {
  DeliveryResult result;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed_ms = [&] {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  };
  const int max_attempts = std::max(1, policy.max_attempts);
  double backoff_ms = static_cast<double>(std::max<int64_t>(0, policy.initial_backoff_ms));
  for (int attempt = 1; attempt <= max_attempts; ++attempt) {
    // Rebuilt every attempt: Feishu and DingTalk signatures expire (1 hour).
    StatusOr<OutgoingRequest> req = BuildChannelRequest(ch, n, NowMs());
    if (!req.ok()) {
      result.error = req.status().message();
      break;
    }
    result.attempts = attempt;
    StatusOr<HttpClientResponse> resp = HttpPost(req->url, req->headers, req->body, policy.timeout_ms);
    Verdict v;
    if (!resp.ok()) {
      v.error = resp.status().message();
      v.retry = resp.status().code() == StatusCode::kUnavailable;
      result.http_status = 0;
      result.response_body.clear();
    } else {
      result.http_status = resp->status;
      result.response_body = TruncateUtf8Bytes(resp->body, kMaxResponseBody);
      v = Judge(ch.kind, *resp);
    }
    if (v.ok) {
      result.ok = true;
      result.error.clear();
      break;
    }
    result.error = v.error;
    if (!v.retry || attempt == max_attempts) break;
    int64_t wait =
        std::max<int64_t>(static_cast<int64_t>(std::min<double>(backoff_ms, kMaxBackoffMs)), v.retry_after_ms);
    std::this_thread::sleep_for(std::chrono::milliseconds(wait));
    backoff_ms *= policy.multiplier;
  }
  if (!result.ok && result.attempts > 1) {
    result.error = "after " + std::to_string(result.attempts) + " attempts: " + result.error;
  }
  result.duration_ms = elapsed_ms();
  return result;
}

}  // namespace ns
