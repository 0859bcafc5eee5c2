// Back-off for failed logins, per account and per client address (finding 15 of
// docs/reliability.md: 40 wrong passwords took 2.1 s). The first kFreeAccount failures of an
// account (kFreeAddress of an address, higher: an office shares one address) within the
// window cost nothing; each later one doubles the wait (1 s, 2 s, 4 s, … at most 15 min)
// before the next attempt is even checked. A success clears the account's count. In memory
// only: a restart forgets, which costs an attacker a restart of the server.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ns {

class LoginThrottle {
 public:
  static constexpr int kFreeAccount = 5;
  static constexpr int kFreeAddress = 20;
  static constexpr int64_t kMaxWaitS = 15 * 60;
  static constexpr int64_t kWindowS = 15 * 60;

  using Clock = std::chrono::steady_clock;
  // `now` reads the clock: steady_clock by default; a test seam, so unit tests can move
  // time without sleeping (tests/unit/auth_test.cc).
  explicit LoginThrottle(std::function<Clock::time_point()> now = Clock::now) : now_(std::move(now)) {}

  // Seconds the caller must still wait before an attempt for (account, address); 0 = go.
  int64_t WaitSeconds(const std::string& account, const std::string& address) {
    std::lock_guard lock(mu_);
    const auto now = now_();
    return std::max(Wait(by_account_, account, now, kFreeAccount), Wait(by_address_, address, now, kFreeAddress));
  }
  void Failed(const std::string& account, const std::string& address) {
    std::lock_guard lock(mu_);
    const auto now = now_();
    Bump(by_account_, account, now);
    Bump(by_address_, address, now);
    if (by_account_.size() + by_address_.size() > 100000) Sweep(now);
  }
  void Succeeded(const std::string& account) {
    std::lock_guard lock(mu_);
    by_account_.erase(account);
  }

 private:
  struct Entry {
    int failures = 0;
    Clock::time_point last;
  };
  using Map = std::unordered_map<std::string, Entry>;

  static int64_t Wait(Map& m, const std::string& k, Clock::time_point now, int free) {
    auto it = m.find(k);
    if (it == m.end()) return 0;
    if (now - it->second.last > std::chrono::seconds(kWindowS)) {
      m.erase(it);
      return 0;
    }
    if (it->second.failures < free) return 0;
    const int64_t wait = std::min<int64_t>(kMaxWaitS, int64_t{1} << std::min(it->second.failures - free, 20));
    const int64_t elapsed = std::chrono::duration_cast<std::chrono::seconds>(now - it->second.last).count();
    return std::max<int64_t>(0, wait - elapsed);
  }
  static void Bump(Map& m, const std::string& k, Clock::time_point now) {
    Entry& e = m[k];
    if (now - e.last > std::chrono::seconds(kWindowS)) e.failures = 0;
    e.failures++;
    e.last = now;
  }
  void Sweep(Clock::time_point now) {
    for (Map* m : {&by_account_, &by_address_})
      for (auto it = m->begin(); it != m->end();)
        it = now - it->second.last > std::chrono::seconds(kWindowS) ? m->erase(it) : std::next(it);
  }

  std::function<Clock::time_point()> now_;
  std::mutex mu_;
  Map by_account_, by_address_;
};

}  // namespace ns
