// The journey engine's pure rules, apart from storage and threads so that unit tests check
// them directly (tests/unit/journey_rules_test.cc): the send state machine, quiet hours in
// the project's time zone, the holdout assignment, the retry back-off and the caps.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "core/time_zone.h"

namespace ns {

// A send's life (docs/automation.md, "Exactly once"): created pending; claimed (sending,
// committed before the HTTP call); then sent, or failed (retried after a back-off) until
// max_attempts, then dead (a dead letter). A crash leaves it sending: recovery puts it back
// to pending and the retry carries the same idempotency key, so the receiver drops a copy it
// already has. An operator's retry of a dead letter makes it pending again.
enum class SendState { kPending, kSending, kSent, kFailed, kDead };
enum class SendEvent { kClaim, kDelivered, kAttemptFailed, kRecover, kRetry };

const char* SendStateName(SendState s);
StatusOr<SendState> ParseSendState(const std::string& s);
// The next state, or FailedPrecondition for a transition the machine does not have.
// `attempts` counts the attempts made including the one that just failed.
StatusOr<SendState> NextSendState(SendState from, SendEvent event, int attempts, int max_attempts);

// The wait before attempt `attempts + 1` after `attempts` failed ones: backoff * 2^(attempts-1),
// at most one hour.
int64_t RetryDelayMs(int attempts, int backoff_seconds);

// When a message due at `now_ms` may go out under quiet hours "HH:MM-HH:MM" (local time of
// `tz`; the range may wrap midnight): now_ms itself outside them, else the first instant at
// which they end (local end time on the right local day; across a DST change, the instant
// that local time maps to, or the first valid one after a gap). Empty range: now_ms.
int64_t QuietHoursRelease(int64_t now_ms, const TimeZone& tz, const std::string& range);

// Whether the person is in the journey's holdout: SHA-256 of "<journey id>:<person key>",
// its first 8 bytes as a big-endian number, modulo 10,000, below holdout_percent * 100.
// Deterministic, independent of arrival order, and uncorrelated between journeys.
bool InHoldout(int64_t journey_id, const std::string& person_key, double holdout_percent);

// Frequency cap: a message may go when the person had fewer than `max` in the window (max 0:
// no cap). Rate: how many of the journey's messages may start now given those started in the
// last minute (rate 0: unlimited, returned as `wanted`).
bool FrequencyAllows(int64_t sent_in_window, int max);
int64_t RateBudget(int64_t started_last_minute, int rate_per_minute, int64_t wanted);

// The idempotency key of a journey's step for a person: "nsj-<journey>-<person>-<step>".
std::string IdempotencyKey(int64_t journey_id, uint32_t person, size_t step);

// The end of local day `end_date` (YYYY-MM-DD) in tz, as UTC ms (INT64_MAX when empty).
int64_t EndOfLocalDate(const std::string& end_date, const TimeZone& tz);

}  // namespace ns
