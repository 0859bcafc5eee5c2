// Answers of saved insights, cached per (query as run, state of the store): the idea of
// SnapshotState/SnapshotCache (query/person_facts.h) for many queries at once. A key is the
// query with its dates resolved plus what else the answer depends on (the local day, the
// project's cohorts and people settings); an answer is served only while the project's store
// is in the state it was computed on, so it is never stale.
//
// A store's state only moves forward: an entry of an older state can never be served again.
// So each project keeps the entries of one state, the newest seen, and drops the others as
// soon as a newer state is stored; at most `capacity` entries per project (the least
// recently used go first). Thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>

#include "core/mutex.h"
#include "query/person_facts.h"

namespace ns {

struct CachedResult {
  nlohmann::json result;    // the query's answer
  int64_t computed_at = 0;  // UTC ms
};

class ResultCache {
 public:
  explicit ResultCache(size_t capacity_per_project = 512) : capacity_(capacity_per_project) {}

  // The answer stored under `key` for `state`, or null.
  std::shared_ptr<const CachedResult> Find(const std::string& project, const std::string& key,
                                           const SnapshotState& state);
  // Stores an answer computed on `state` (the caller has made sure the whole computation saw
  // that state). A newer state than the project's entries replaces them all.
  void Put(const std::string& project, const std::string& key, const SnapshotState& state,
           std::shared_ptr<const CachedResult> value);

  struct Stats {
    uint64_t hits = 0, misses = 0;
    size_t entries = 0;
  };
  Stats stats();

 private:
  struct Slot {
    uint64_t used = 0;  // tick of the last use
    std::shared_ptr<const CachedResult> value;
  };
  struct ProjectEntries {
    SnapshotState state;
    std::unordered_map<std::string, Slot> slots;
  };
  const size_t capacity_;
  Mutex mu_;
  uint64_t tick_ GUARDED_BY(mu_) = 0;
  uint64_t hits_ GUARDED_BY(mu_) = 0, misses_ GUARDED_BY(mu_) = 0;
  std::map<std::string, ProjectEntries> projects_ GUARDED_BY(mu_);
};

}  // namespace ns
