// Helpers of the flat open-addressing tables of 64-bit slots with linear probing (0 = an
// empty slot) that storage keeps: the dedup set (fingerprint_set.h) and the distinct id
// index (distinct_id_index.h). Each table says where a slot's entry hashes to (its home).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ns {

// Empties slot `hole` by backward shift, so that lookups need no tombstones: each later
// entry of the probe run moves into the hole when that keeps it reachable from its home
// (the hole lies cyclically in [home, j)), and its old slot becomes the hole. REQUIRES:
// slots.size() a power of two with at least one empty slot. home_of(slot) -> size_t.
template <class HomeOf>
void BackwardShiftErase(std::vector<uint64_t>& slots, size_t hole, HomeOf home_of) {
  const size_t mask = slots.size() - 1;
  for (size_t j = (hole + 1) & mask; slots[j]; j = (j + 1) & mask) {
    const size_t home = home_of(slots[j]) & mask;
    if (((j - home) & mask) >= ((j - hole) & mask)) {
      slots[hole] = slots[j];
      hole = j;
    }
  }
  slots[hole] = 0;
}

}  // namespace ns
