#include "server/rate_limiter.h"

#include <algorithm>
#include <cmath>

namespace ns {

Status RateLimiter::Take(const std::string& key, double n) {
  if (!enabled()) return Status::OK();
  auto now = now_();
  std::lock_guard lock(mu_);
  auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, now});
  Bucket& b = it->second;
  if (!fresh) {
    double dt = std::chrono::duration<double>(now - b.last).count();
    b.tokens = std::min(burst_, b.tokens + dt * rate_);
    b.last = now;
  }
  // A batch larger than the whole bucket can never fit: let it through when the bucket is
  // full (it then runs into debt), so a big batch is slowed down, never refused forever.
  if (b.tokens >= n || (n > burst_ && b.tokens >= burst_)) {
    b.tokens -= n;
    return Status::OK();
  }
  double wait = (std::min(n, burst_) - b.tokens) / rate_;
  // Whole seconds, as Retry-After carries them; never 0, which would invite a tight loop.
  int64_t secs = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(wait)));
  return RateLimited("rate limit of " + std::to_string(static_cast<long long>(rate_)) +
                         " events/s for this key exceeded; retry after " + std::to_string(secs) + " s",
                     secs * 1000);
}

}  // namespace ns
