#include "core/cpu_class.h"

#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace ns {
namespace {

std::atomic<int> bulk_nice{0};

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
    std::thread probe([&] { ok = SetNice(1) && SetNice(0); });
    probe.join();
    return ok;
  }();
  return available;
}

void SetThreadCpuClass(CpuClass c) {
  if (c == current_class || BulkNice() == 0 || !CpuClassesAvailable()) return;
  if (SetNice(c == CpuClass::kBulk ? BulkNice() : 0)) current_class = c;
}

void MakeThreadBulk() {
  if (current_class != CpuClass::kBulk && BulkNice() > 0 && SetNice(BulkNice())) current_class = CpuClass::kBulk;
}

}  // namespace ns
