// Per-key token buckets for ingest: each key may send `rate` events per second on average,
// with bursts up to `burst` events. A request that does not fit is refused whole with 429
// and Retry-After (retryable: SDKs back off and resend, nothing is dropped).
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/status.h"

namespace ns {

class RateLimiter {
 public:
  RateLimiter(double rate_per_s, double burst) : rate_(rate_per_s), burst_(burst < 1 ? 1 : burst) {}
  bool enabled() const { return rate_ > 0; }
  // Takes n tokens from the key's bucket. OK, or RateLimited (ResourceExhausted with that
  // reason) whose retry_after_ms is the wait until the batch fits, in whole seconds (>= 1 s).
  Status Take(const std::string& key, double n);

 private:
  struct Bucket {
    double tokens;
    std::chrono::steady_clock::time_point last;
  };
  double rate_, burst_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace ns
