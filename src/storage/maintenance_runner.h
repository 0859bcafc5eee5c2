// MaintenanceRunner: a few threads that run the background work (memtable flushes,
// compaction) of many event stores. One pair of threads per open project cost 438 threads
// for 200 projects (issue 8, finding 19); the server shares one runner between every
// project, so threads no longer grow with projects.
//
// A task runs on every tick and soon after Wake(id); never twice at once. Remove(id) waits
// for a running pass of that task, so the store that owns it can be destroyed afterwards.
// Threading: every method is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <vector>

#include "core/mutex.h"

namespace ns {

class MaintenanceRunner {
 public:
  using Task = std::function<void()>;
  explicit MaintenanceRunner(int threads = 2, std::chrono::milliseconds tick = std::chrono::milliseconds(500));
  ~MaintenanceRunner();
  MaintenanceRunner(const MaintenanceRunner&) = delete;
  MaintenanceRunner& operator=(const MaintenanceRunner&) = delete;

  uint64_t Add(Task task) EXCLUDES(mu_);
  void Remove(uint64_t id) EXCLUDES(mu_);
  void Wake(uint64_t id) EXCLUDES(mu_);
  int threads() const { return static_cast<int>(threads_.size()); }

 private:
  struct Entry {
    Task task;
    bool due = false;
    bool running = false;
  };
  void Loop();

  const std::chrono::milliseconds tick_;
  Mutex mu_;
  CondVar work_cv_{&mu_};  // a task became due, or stopping
  CondVar done_cv_{&mu_};  // a pass ended (Remove waits for it)
  std::map<uint64_t, Entry> tasks_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(mu_) = 1;
  std::chrono::steady_clock::time_point next_tick_ GUARDED_BY(mu_);
  bool stopping_ GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace ns
