// FingerprintSet: the event store's dedup set of 64-bit uuid fingerprints (storage/
// event_store.cc).
// Threading: none (the store's write lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "storage/probe_table.h"

namespace ns {

// Open-addressing set of 64-bit uuid fingerprints (0 = empty slot). 8 bytes per slot,
// load factor <= 1/2. A false duplicate needs a 64-bit fingerprint collision between two
// different uuids: probability ~ n^2 / 2^65 (3e-6 at 10M stored events).
class FingerprintSet {
 public:
  FingerprintSet() : slots_(1024, 0) {}
  bool Contains(uint64_t f) const {
    size_t mask = slots_.size() - 1;
    for (size_t i = f & mask;; i = (i + 1) & mask) {
      if (slots_[i] == f) return true;
      if (slots_[i] == 0) return false;
    }
  }
  // Brings f's home slot into the cache ahead of a Contains / Insert (a large set misses on
  // every lookup: issue 15, EventStoreImpl::WriteRound).
  void Prefetch(uint64_t f) const { __builtin_prefetch(&slots_[f & (slots_.size() - 1)]); }
  void Insert(uint64_t f) {
    if ((count_ + 1) * 2 > slots_.size()) Grow();
    size_t mask = slots_.size() - 1;
    for (size_t i = f & mask;; i = (i + 1) & mask) {
      if (slots_[i] == f) return;
      if (slots_[i] == 0) {
        slots_[i] = f;
        count_++;
        return;
      }
    }
  }
  void Erase(uint64_t f) {
    size_t mask = slots_.size() - 1;
    size_t i = f & mask;
    for (;; i = (i + 1) & mask) {
      if (slots_[i] == 0) return;
      if (slots_[i] == f) break;
    }
    BackwardShiftErase(slots_, i, [](uint64_t slot) { return slot; });  // a fingerprint's home is its low bits
    count_--;
  }
  size_t size() const { return count_; }

 private:
  void Grow() {
    std::vector<uint64_t> old(slots_.size() * 2, 0);
    old.swap(slots_);
    count_ = 0;
    for (uint64_t f : old)
      if (f) Insert(f);
  }
  std::vector<uint64_t> slots_;
  size_t count_ = 0;
};

}  // namespace ns
