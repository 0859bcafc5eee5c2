#include "automation/journey_rules.h"

#include <openssl/sha.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "ops/ops_service.h"

namespace ns {

const char* SendStateName(SendState s) {
  switch (s) {
    case SendState::kPending: return "pending";
    case SendState::kSending: return "sending";
    case SendState::kSent: return "sent";
    case SendState::kFailed: return "failed";
    case SendState::kDead: return "dead";
  }
  return "pending";
}

StatusOr<SendState> ParseSendState(const std::string& s) {
  for (SendState st :
       {SendState::kPending, SendState::kSending, SendState::kSent, SendState::kFailed, SendState::kDead})
    if (s == SendStateName(st)) return st;
  return Corruption("unknown send state '" + s + "'");
}

StatusOr<SendState> NextSendState(SendState from, SendEvent event, int attempts, int max_attempts) {
  switch (event) {
    case SendEvent::kClaim:
      if (from == SendState::kPending || from == SendState::kFailed) return SendState::kSending;
      break;
    case SendEvent::kDelivered:
      if (from == SendState::kSending) return SendState::kSent;
      break;
    case SendEvent::kAttemptFailed:
      if (from == SendState::kSending) return attempts >= max_attempts ? SendState::kDead : SendState::kFailed;
      break;
    case SendEvent::kRecover:
      if (from == SendState::kSending) return SendState::kPending;
      break;
    case SendEvent::kRetry:
      if (from == SendState::kDead) return SendState::kPending;
      break;
  }
  return FailedPrecondition(std::string("a send cannot go from ") + SendStateName(from) + " on this event");
}

int64_t RetryDelayMs(int attempts, int backoff_seconds) {
  const int64_t cap = 3'600'000;
  int64_t d = int64_t{backoff_seconds} * 1000;
  for (int i = 1; i < attempts && d < cap; i++) d *= 2;
  return std::min(d, cap);
}

int64_t QuietHoursRelease(int64_t now_ms, const TimeZone& tz, const std::string& range) {
  if (range.empty()) return now_ms;
  std::string local = tz.FormatLocal(now_ms);
  int minute = std::atoi(local.substr(11, 2).c_str()) * 60 + std::atoi(local.substr(14, 2).c_str());
  if (!InQuietHours(range, minute)) return now_ms;
  auto end = ParseClock(range.substr(6), "quiet_hours");
  if (!end.ok()) return now_ms;
  int32_t day = tz.LocalDay(now_ms);
  // Inside a window that wraps midnight before midnight: it ends tomorrow.
  if (minute >= *end) day += 1;
  int64_t at = tz.LocalToUtcMs(day, int64_t{*end} * 60'000);
  return std::max(at, now_ms);
}

bool InHoldout(int64_t journey_id, const std::string& person_key, double holdout_percent) {
  if (holdout_percent <= 0) return false;
  std::string msg = std::to_string(journey_id) + ":" + person_key;
  unsigned char h[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), h);
  uint64_t x = 0;
  for (int i = 0; i < 8; i++) x = (x << 8) | h[i];
  return static_cast<double>(x % 10'000) < std::llround(holdout_percent * 100);
}

bool FrequencyAllows(int64_t sent_in_window, int max) { return max <= 0 || sent_in_window < max; }

int64_t RateBudget(int64_t started_last_minute, int rate_per_minute, int64_t wanted) {
  if (rate_per_minute <= 0) return wanted;
  return std::clamp<int64_t>(rate_per_minute - started_last_minute, 0, wanted);
}

std::string IdempotencyKey(int64_t journey_id, uint32_t person, size_t step) {
  return "nsj-" + std::to_string(journey_id) + "-" + std::to_string(person) + "-" + std::to_string(step);
}

int64_t EndOfLocalDate(const std::string& end_date, const TimeZone& tz) {
  if (end_date.empty()) return INT64_MAX;
  auto d = ParseDate(end_date, "end_date");
  if (!d.ok()) return INT64_MAX;
  return tz.DayStartMs(*d + 1);
}

}  // namespace ns
