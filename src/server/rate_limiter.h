// Per-key token buckets for ingest: each key may send `rate` events per second on average,
// with bursts up to `burst` events. A request that does not fit is refused whole with 429
// and Retry-After (retryable: SDKs back off and resend, nothing is dropped).
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/status.h"

namespace ns {

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  // `now` reads the clock the buckets refill by: steady_clock by default; a test seam, so
  // unit tests can move time without sleeping (tests/unit/server_test.cc).
  RateLimiter(double rate_per_s, double burst, std::function<Clock::time_point()> now = Clock::now)
      : rate_(rate_per_s), burst_(burst < 1 ? 1 : burst), now_(std::move(now)) {}
  bool enabled() const { return rate_ > 0; }
  // Takes n tokens from the key's bucket. OK, or RateLimited (ResourceExhausted with that
  // reason) whose retry_after_ms is the wait until the batch fits, in whole seconds (>= 1 s).
  Status Take(const std::string& key, double n);

 private:
  struct Bucket {
    double tokens;
    Clock::time_point last;
  };
  double rate_, burst_;
  std::function<Clock::time_point()> now_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace ns
