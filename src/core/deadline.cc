#include "core/deadline.h"

#include <cstdio>

namespace ns {

namespace {
constexpr int64_t kProbeEveryNs = 20'000'000;  // the client probe is a poll() syscall
int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Deadline::Clock::now().time_since_epoch()).count();
}
}  // namespace

Deadline Deadline::After(int64_t timeout_ms, std::function<bool()> client_gone) {
  Deadline d;
  d.limited_ = timeout_ms > 0;
  d.timeout_ms_ = timeout_ms > 0 ? timeout_ms : 0;
  if (d.limited_) d.at_ = Clock::now() + std::chrono::milliseconds(timeout_ms);
  d.client_gone_ = std::move(client_gone);
  return d;
}

Deadline::Deadline(const Deadline& o)
    : limited_(o.limited_),
      at_(o.at_),
      timeout_ms_(o.timeout_ms_),
      client_gone_(o.client_gone_),
      next_probe_ns_(o.next_probe_ns_.load()),
      state_(o.state_.load()) {}

Deadline& Deadline::operator=(const Deadline& o) {
  limited_ = o.limited_;
  at_ = o.at_;
  timeout_ms_ = o.timeout_ms_;
  client_gone_ = o.client_gone_;
  next_probe_ns_ = o.next_probe_ns_.load();
  state_ = o.state_.load();
  return *this;
}

bool Deadline::Expired() const {
  if (state_.load(std::memory_order_relaxed) != 0) return true;
  if (!limited_ && !client_gone_) return false;
  const int64_t now = NowNs();
  if (limited_ && Clock::time_point(std::chrono::nanoseconds(now)) >= at_) {
    state_.store(1, std::memory_order_relaxed);
    return true;
  }
  if (client_gone_) {
    int64_t next = next_probe_ns_.load(std::memory_order_relaxed);
    if (now >= next && next_probe_ns_.compare_exchange_strong(next, now + kProbeEveryNs) && client_gone_()) {
      state_.store(2, std::memory_order_relaxed);
      return true;
    }
  }
  return false;
}

Status Deadline::ToStatus() const {
  if (state_.load() == 2) return DeadlineExceeded("query cancelled: the client closed the connection");
  char secs[32];
  std::snprintf(secs, sizeof secs, "%g", static_cast<double>(timeout_ms_) / 1000.0);
  return DeadlineExceeded(std::string("query stopped after its time limit of ") + secs +
                          " s (narrow the date range or the breakdown, or raise the server's --query-timeout)");
}

}  // namespace ns
