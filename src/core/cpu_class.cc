#include "core/cpu_class.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <thread>

namespace ns {
namespace {

std::atomic<int> bulk_nice{0};

// The nice value the process started with (an operator's `nice -n` or systemd `Nice=`):
// interactive threads run at it, bulk ones BulkNice() above it. Read at first use, which
// comes before any thread is reniced: CpuClassesAvailable() (serve's main thread, at start)
// or MakeThreadBulk() on a thread still at the process's value.
int InteractiveNice() {
  static const int base = [] {
    errno = 0;
    const int nice = ::getpriority(PRIO_PROCESS, 0);  // -1 is a valid nice value: errno tells
    return errno == 0 ? nice : 0;
  }();
  return base;
}
int BulkThreadNice() { return std::min(19, InteractiveNice() + BulkNice()); }

bool SetNice(int nice) {
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  return ::setpriority(PRIO_PROCESS, tid, nice) == 0;
}

thread_local CpuClass current_class = CpuClass::kInteractive;

}  // namespace

void SetBulkNice(int nice) { bulk_nice.store(std::clamp(nice, 0, 19)); }
int BulkNice() { return bulk_nice.load(std::memory_order_relaxed); }

bool CpuClassesAvailable() {
  static const bool available = [] {
    bool ok = false;
    const int base = InteractiveNice();
    std::thread probe([&] { ok = SetNice(std::min(19, base + 1)) && SetNice(base); });
    probe.join();
    return ok;
  }();
  return available;
}

void SetThreadCpuClass(CpuClass c) {
  if (c == current_class || BulkNice() == 0 || !CpuClassesAvailable()) return;
  if (SetNice(c == CpuClass::kBulk ? BulkThreadNice() : InteractiveNice())) current_class = c;
}

void MakeThreadBulk() {
  if (current_class != CpuClass::kBulk && BulkNice() > 0 && SetNice(BulkThreadNice())) current_class = CpuClass::kBulk;
}

}  // namespace ns
