// FingerprintSet: the event store's dedup set of 64-bit uuid fingerprints (storage/
// event_store.cc).
// Threading: none (the store's write lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

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
  // Backward-shift deletion (linear probing keeps no tombstones): the entries after the
  // hole that can move into it do, until an empty slot.
  void Erase(uint64_t f) {
    size_t mask = slots_.size() - 1;
    size_t hole = f & mask;
    for (;; hole = (hole + 1) & mask) {
      if (slots_[hole] == 0) return;
      if (slots_[hole] == f) break;
    }
    for (size_t j = (hole + 1) & mask; slots_[j] != 0; j = (j + 1) & mask) {
      const size_t home = slots_[j] & mask;
      // slots_[j] stays if its home is cyclically in (hole, j]: the probe from home reaches j
      // without passing the hole.
      const bool stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (stays) continue;
      slots_[hole] = slots_[j];
      hole = j;
    }
    slots_[hole] = 0;
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
