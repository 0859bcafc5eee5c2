// When a piece of work (a query) must stop: a point in time, and optionally a probe that
// says the client who asked has gone away. Operators check Expired() between blocks or
// parts (cheap: one clock read; the probe runs at most every 20 ms), stop early, and the
// caller answers ToStatus() — DeadlineExceeded, HTTP 504 "deadline_exceeded".
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "core/status.h"

namespace ns {

class Deadline {
 public:
  using Clock = std::chrono::steady_clock;

  // No time limit (and no probe): Expired() is always false.
  Deadline() = default;
  // `timeout_ms` from now (<= 0: no time limit); `client_gone` (may be empty) is asked
  // whether the client closed its connection.
  static Deadline After(int64_t timeout_ms, std::function<bool()> client_gone = {});
  Deadline(const Deadline& o);
  Deadline& operator=(const Deadline& o);

  // True once the time is up or the client is gone (stays true). Thread-safe.
  bool Expired() const;
  // Why Expired() is true, as the error to answer.
  Status ToStatus() const;
  // True if some Expired() call has returned true: the work was cut short.
  bool fired() const { return state_.load(std::memory_order_relaxed) != 0; }
  int64_t timeout_ms() const { return timeout_ms_; }

 private:
  bool limited_ = false;
  Clock::time_point at_{};
  int64_t timeout_ms_ = 0;
  std::function<bool()> client_gone_;
  mutable std::atomic<int64_t> next_probe_ns_{0};
  mutable std::atomic<int> state_{0};  // 0 running, 1 timed out, 2 client gone
};

}  // namespace ns
