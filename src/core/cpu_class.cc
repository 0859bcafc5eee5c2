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
// interactive threads run at it, bulk ones BulkNice() above it.
std::atomic<int> base_nice{0};

int InteractiveNice() { return base_nice.load(std::memory_order_relaxed); }
int BulkThreadNice() { return std::min(19, InteractiveNice() + BulkNice()); }

bool SetNice(int nice) {
  const auto tid = static_cast<id_t>(::syscall(SYS_gettid));
  return ::setpriority(PRIO_PROCESS, tid, nice) == 0;
}

thread_local CpuClass current_class = CpuClass::kInteractive;

}  // namespace

void SetBulkNice(int nice) {
  errno = 0;
  const int base = ::getpriority(PRIO_PROCESS, 0);  // -1 is a valid nice value: errno tells
  base_nice.store(errno == 0 ? base : 0);
  bulk_nice.store(std::clamp(nice, 0, 19));
}
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
