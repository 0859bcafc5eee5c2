// core/cpu_class.h: bulk threads run at the bulk nice value, interactive ones at 0, and a
// request worker switches between them per request (where the process may lower a nice
// value again).
#include "core/cpu_class.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <thread>

namespace ns {
namespace {

int ThreadNice() {
  errno = 0;
  return ::getpriority(PRIO_PROCESS, static_cast<id_t>(::syscall(SYS_gettid)));
}

// Runs fn on a fresh thread (nice 0, interactive) so a test's nice values do not leak.
template <typename Fn>
void OnFreshThread(Fn fn) {
  std::thread t(fn);
  t.join();
}

struct BulkNiceGuard {
  ~BulkNiceGuard() { SetBulkNice(0); }
};

TEST(CpuClass, OffByDefaultAndWhenZero) {
  BulkNiceGuard g;
  EXPECT_EQ(BulkNice(), 0);
  OnFreshThread([] {
    SetThreadCpuClass(CpuClass::kBulk);
    MakeThreadBulk();
    EXPECT_EQ(ThreadNice(), 0);
  });
}

TEST(CpuClass, ClampsTheNiceValue) {
  BulkNiceGuard g;
  SetBulkNice(25);
  EXPECT_EQ(BulkNice(), 19);
  SetBulkNice(-3);
  EXPECT_EQ(BulkNice(), 0);
}

TEST(CpuClass, RequestWorkerSwitchesPerRequest) {
  BulkNiceGuard g;
  SetBulkNice(7);
  OnFreshThread([] {
    SetThreadCpuClass(CpuClass::kBulk);
    // Without the permission to lower a nice value again, request workers stay at 0.
    const int bulk = CpuClassesAvailable() ? 7 : 0;
    EXPECT_EQ(ThreadNice(), bulk);
    SetThreadCpuClass(CpuClass::kBulk);  // already there: no change
    EXPECT_EQ(ThreadNice(), bulk);
    SetThreadCpuClass(CpuClass::kInteractive);
    EXPECT_EQ(ThreadNice(), 0);
    SetThreadCpuClass(CpuClass::kBulk);
    EXPECT_EQ(ThreadNice(), bulk);
    SetThreadCpuClass(CpuClass::kInteractive);
    EXPECT_EQ(ThreadNice(), 0);
  });
}

TEST(CpuClass, BackgroundWorkerIsBulkForGood) {
  BulkNiceGuard g;
  SetBulkNice(4);
  OnFreshThread([] {
    MakeThreadBulk();  // raising a nice value needs no permission
    EXPECT_EQ(ThreadNice(), 4);
  });
}

}  // namespace
}  // namespace ns
