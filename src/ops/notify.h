// Notification channels: deliver one message to a generic webhook, a Feishu/Lark custom bot,
// a DingTalk custom bot, a WeCom group bot or a Slack incoming webhook, each in that
// service's documented message format and signature scheme (docs/notifications.md).
//
// This module only formats, signs and delivers; what to send and when (alerts, reminder
// digests, quiet hours, the delivery log) belongs to the callers. All functions are
// thread-safe: they keep no state between calls.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace ns {

// A configured destination. `kind` selects the format and signature.
struct NotificationChannel {
  int64_t id = 0;
  std::string name;
  std::string kind;    // "webhook" | "feishu" | "dingtalk" | "wecom" | "slack"
  std::string url;     // http(s) URL of the hook
  std::string secret;  // signing secret (webhook HMAC key, Feishu sign secret, DingTalk SEC... secret); may be empty
};

// One message, independent of the channel it goes to.
struct Notification {
  std::string title;           // "KPI red: pay conversion 12% (target 15%)"
  std::string text;            // plain text / light markdown body, several lines
  std::string level = "info";  // info | warning | critical
  std::string link;            // optional URL to the console
  nlohmann::json data;         // structured payload (generic webhook sends it as "data")
  std::string dedup_key;       // optional
};

// A fully built HTTP POST: what goes on the wire, before any retry.
struct OutgoingRequest {
  std::string url;  // may differ from the channel's (DingTalk appends timestamp and sign)
  std::vector<std::pair<std::string, std::string>> headers;  // includes Content-Type
  std::string body;
};

// Validates kind/url/secret; errors are InvalidArgument with field "kind", "url" or "secret"
// and a message naming the bad value.
Status ValidateChannel(const NotificationChannel& ch);

// The exact HTTP request that channel's service expects (documented message format,
// cards/markdown where it has them), signed as the service documents at time `now_ms`
// (Unix epoch milliseconds). Returns ValidateChannel's error for a bad channel.
StatusOr<OutgoingRequest> BuildChannelRequest(const NotificationChannel& ch, const Notification& n, int64_t now_ms);

// How Deliver retries. Attempt k (k >= 2) waits initial_backoff_ms * multiplier^(k-2).
struct RetryPolicy {
  int max_attempts = 4;              // total attempts including the first; >= 1
  int64_t initial_backoff_ms = 500;  // wait before the second attempt
  double multiplier = 2.0;           // backoff growth per attempt
  int64_t timeout_ms = 5000;         // per attempt: connect + read + write
};

// Outcome of Deliver, suitable for a delivery log.
struct DeliveryResult {
  bool ok = false;
  int attempts = 0;           // HTTP attempts made (0 if the channel was invalid)
  int http_status = 0;        // status of the last response, 0 if none was received
  std::string error;          // empty when ok; otherwise why the last attempt failed
  std::string response_body;  // body of the last response (truncated to 4 KiB)
  int64_t duration_ms = 0;    // wall time including backoff waits
};

// POSTs with retries and exponential backoff on network errors, 5xx and 429 (not on other
// 4xx); also treats the service-level error codes in a 200 body as failures where the
// service reports errors that way (Feishu "code"!=0, DingTalk "errcode"!=0, WeCom
// "errcode"!=0). Such service-level failures are not retried except for the services'
// rate-limit codes. The signature is recomputed on every attempt. Blocks the caller.
DeliveryResult Deliver(const NotificationChannel& ch, const Notification& n, const RetryPolicy& policy = {});

// Cuts `s` to at most `max_bytes` bytes without splitting a UTF-8 sequence ("…" when cut).
std::string TruncateUtf8Bytes(const std::string& s, size_t max_bytes);

}  // namespace ns
