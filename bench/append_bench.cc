// The event store's write path alone (no HTTP, no parsing): EventStore::Append of 100-event
// batches from --threads callers with group commit and fsync (Durability::kWal), background
// seals and flushes on, as `northstar serve` runs them. Events as bench/ingest_load sends
// them (a unique uuid, a distinct id from a pool of --users, three properties). Reports
// events/s and the process's CPU per event; the batches are built before the clock starts.
// A steadier figure than the HTTP load for a change inside storage/ (docs/benchmarks.md).
//
//   build/bench/append_bench [--events 2000000] [--threads 8] [--users 100000] [--dir /tmp/ns-append]
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "storage/event_store.h"

namespace {

constexpr int64_t kNow = 1'795'320'000'000;  // 2026-11-22T04:00:00Z
const char* kNames[] = {"product_exposure", "product_click", "add_to_cart", "order", "pay", "page_view"};

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_stime.tv_sec + (u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
  long events = 2'000'000, threads = 8, users = 100'000;
  std::string dir = "/tmp/ns-append";
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--events") == 0) events = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--threads") == 0) threads = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--users") == 0) users = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--dir") == 0) dir = argv[i + 1];
  }
  if (events <= 0 || threads <= 0 || users <= 0) {
    std::fprintf(stderr, "append_bench: --events, --threads and --users must be positive\n");
    return 2;
  }
  std::filesystem::remove_all(dir);
  auto store = ns::EventStore::Open(dir);
  if (!store.ok()) {
    std::fprintf(stderr, "append_bench: %s\n", store.status().ToString().c_str());
    return 1;
  }
  std::vector<std::vector<ns::Event>> batches;
  uint64_t rng = 42;
  for (long i = 0; i < events; i += 100) {
    std::vector<ns::Event> b;
    for (long k = i; k < std::min(events, i + 100); k++) {
      rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
      ns::Event e;
      e.uuid = {static_cast<uint64_t>(k) * 0x9e3779b97f4a7c15ULL + 1, rng};
      e.has_uuid = true;
      e.ts_ms = kNow - 100000 + k % 1000;
      e.distinct_id = "u" + std::to_string((rng >> 33) % static_cast<uint64_t>(users));
      e.event = kNames[k % 6];
      e.props = {{"amount", ns::PropValue::Num(static_cast<double>(k % 500 + 1))},
                 {"channel", ns::PropValue::Str("organic")},
                 {"platform", ns::PropValue::Str("web")}};
      b.push_back(std::move(e));
    }
    batches.push_back(std::move(b));
  }
  std::atomic<size_t> next{0}, stored{0};
  const double cpu0 = CpuSeconds();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (long t = 0; t < threads; t++)
    pool.emplace_back([&] {
      for (size_t i; (i = next++) < batches.size();) {
        auto r = (*store)->Append(std::move(batches[i]));
        if (!r.ok()) {
          std::fprintf(stderr, "append_bench: %s\n", r.status().ToString().c_str());
          std::exit(1);
        }
        stored += r->accepted;
      }
    });
  for (auto& t : pool) t.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double cpu = CpuSeconds() - cpu0;
  std::printf(
      "{\"events\":%zu,\"threads\":%ld,\"users\":%ld,\"seconds\":%.3f,\"events_per_s\":%.0f,"
      "\"cpu_us_per_event\":%.3f,\"cpu_cores\":%.2f}\n",
      stored.load(), threads, users, s, stored / s, cpu * 1e6 / stored, cpu / s);
  store->reset();
  std::filesystem::remove_all(dir);
  return 0;
}
