#include "insights/result_cache.h"

#include <algorithm>

namespace ns {

std::shared_ptr<const CachedResult> ResultCache::Find(const std::string& project, const std::string& key,
                                                      const SnapshotState& state) {
  MutexLock l(&mu_);
  auto p = projects_.find(project);
  if (p != projects_.end() && p->second.state == state) {
    auto it = p->second.slots.find(key);
    if (it != p->second.slots.end()) {
      it->second.used = ++tick_;
      hits_++;
      return it->second.value;
    }
  }
  misses_++;
  return nullptr;
}

void ResultCache::Put(const std::string& project, const std::string& key, const SnapshotState& state,
                      std::shared_ptr<const CachedResult> value) {
  MutexLock l(&mu_);
  ProjectEntries& p = projects_[project];
  if (!(p.state == state)) {  // the store moved on: every older answer is dead (and frees its blocks)
    p.slots.clear();
    p.state = state;
  }
  if (p.slots.size() >= capacity_ && !p.slots.count(key)) {
    auto oldest = std::min_element(p.slots.begin(), p.slots.end(),
                                   [](const auto& a, const auto& b) { return a.second.used < b.second.used; });
    p.slots.erase(oldest);
  }
  p.slots[key] = Slot{++tick_, std::move(value)};
}

ResultCache::Stats ResultCache::stats() {
  MutexLock l(&mu_);
  Stats s{hits_, misses_, 0};
  for (const auto& [name, p] : projects_) s.entries += p.slots.size();
  return s;
}

}  // namespace ns
