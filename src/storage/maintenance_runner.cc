#include "storage/maintenance_runner.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

#include "core/cpu_class.h"

namespace ns {

MaintenanceRunner::MaintenanceRunner(int threads, std::chrono::milliseconds tick) : tick_(tick) {
  {
    MutexLock l(&mu_);
    next_tick_ = std::chrono::steady_clock::now() + tick_;
  }
  // Flushes and compactions are bulk work: with --bulk-nice they yield the CPU to queries
  // (core/cpu_class.h).
  for (int i = 0; i < std::max(1, threads); i++)
    threads_.emplace_back([this] {
      MakeThreadBulk();
      Loop();
    });
}

MaintenanceRunner::~MaintenanceRunner() {
  {
    MutexLock l(&mu_);
    stopping_ = true;
  }
  work_cv_.SignalAll();
  for (auto& t : threads_) t.join();
}

uint64_t MaintenanceRunner::Add(Task task) {
  MutexLock l(&mu_);
  uint64_t id = next_id_++;
  tasks_[id] = Entry{std::move(task)};
  return id;
}

void MaintenanceRunner::Remove(uint64_t id) {
  MutexLock l(&mu_);
  for (;;) {
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    if (!it->second.running) {
      tasks_.erase(it);
      return;
    }
    done_cv_.Wait();
  }
}

void MaintenanceRunner::Wake(uint64_t id) {
  {
    MutexLock l(&mu_);
    auto it = tasks_.find(id);
    if (it == tasks_.end()) return;
    it->second.due = true;
  }
  work_cv_.Signal();
}

void MaintenanceRunner::Loop() {
  pthread_setname_np(pthread_self(), "ns-maintenance");
  MutexLock l(&mu_);
  while (!stopping_) {
    auto now = std::chrono::steady_clock::now();
    if (now >= next_tick_) {  // every task is due once per tick
      for (auto& [id, e] : tasks_) e.due = true;
      next_tick_ = now + tick_;
      work_cv_.SignalAll();
    }
    Entry* pick = nullptr;
    for (auto& [id, e] : tasks_)
      if (e.due && !e.running) {
        pick = &e;
        break;
      }
    if (!pick) {
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_tick_ - now);
      work_cv_.WaitFor(std::max(wait, std::chrono::milliseconds(1)));
      continue;
    }
    pick->due = false;
    pick->running = true;
    Task task = pick->task;  // a copy: Remove may erase the entry only after running ends
    mu_.Unlock();
    try {
      task();
    } catch (const std::exception& e) {  // a background failure must never take the server down
      spdlog::error("background maintenance task failed: {}", e.what());
    } catch (...) {
      spdlog::error("background maintenance task failed with an unknown exception");
    }
    mu_.Lock();
    pick->running = false;  // the entry exists: Remove waits while running is set
    done_cv_.SignalAll();
  }
}

}  // namespace ns
