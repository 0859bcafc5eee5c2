// DistinctIdIndex: the distinct id strings of an identity map, by did, and the index from
// string to did (issue 15: store open on dataset M spent 42 % of its time in a node-based
// std::unordered_map<std::string, uint32_t> and 10 % tearing it down at exit).
//
// Layout: every string is appended to one arena (a did's string is the bytes between its
// end offset and the previous did's); the index is a flat open-addressing table of 8-byte
// slots (32-bit hash tag, did + 1; 0 = empty) with linear probing at a load of at most 3/4
// (a miss probes ~8 slots on average: two cache lines, tags compared before any string),
// which grows by doubling without touching the strings (a slot's position comes from its
// tag; so at most 2^32 slots). About 8 B of offset + the string's bytes + 11-21 B of slots
// per did, in three allocations, instead of a heap node, a std::string and a bucket per did
// (~100 B): freeing it is three frees. Complexity: Find/Add O(1) expected.
//
// Clear (an erasure) zeroes the string's bytes in the arena (the distinct id leaves memory)
// and drops its index entry by backward shifting (no tombstones); the zeroed bytes stay in
// the arena (erasures are rare).
// Threading: none (IdentityMap holds its lock around every call).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace ns {

class DistinctIdIndex {
 public:
  // Number of dids (the next Add's did).
  uint32_t size() const { return static_cast<uint32_t>(end_.size()); }
  // Room for `ids` dids without regrowing (a hint).
  void Reserve(size_t ids);
  // The did of `id`, or -1.
  int64_t Find(std::string_view id) const;
  // Brings what Find reads for each of `ids` into the cache, soon to be looked up: on a
  // large index a lookup is three dependent misses (the slot, the did's offsets, the
  // string), ~4 % of the write path's CPU (issue 15). One pass per level, so that the
  // misses of a pass overlap instead of following each other.
  void Prefetch(std::span<const std::string_view> ids) const;
  // Appends did size() with string `id` and indexes it, unless `id` is indexed already (then
  // the index keeps the older did, as std::unordered_map::emplace did). REQUIRES: `id` does
  // not point into this index (the arena may move).
  void Add(std::string_view id);
  // The string of `did` ("" once cleared). REQUIRES: did < size(). Valid until the next Add.
  std::string_view Id(uint32_t did) const {
    const uint64_t e = end_[did];
    if (e & kCleared) return {};
    const uint64_t b = did ? end_[did - 1] & ~kCleared : 0;
    return std::string_view(arena_.data() + b, e - b);
  }
  // Forgets the string of `did`: zeroed in the arena, out of the index if the index maps it
  // to `did` (a cleared string may have been added again as a newer did: that one stays).
  void Clear(uint32_t did);
  void Reset();
  // Same strings for the same dids.
  bool operator==(const DistinctIdIndex& o) const;
  // Bytes held (arena, offsets, slots).
  size_t MemoryBytes() const;

 private:
  static constexpr uint64_t kCleared = uint64_t{1} << 63;
  static uint32_t Tag(std::string_view id);
  void Grow();
  void InsertSlot(uint64_t slot);

  std::vector<char> arena_;
  std::vector<uint64_t> end_;    // per did: end offset in arena_, kCleared once cleared
  std::vector<uint64_t> slots_;  // (tag << 32) | (did + 1); 0 = empty; size a power of two
  size_t indexed_ = 0;           // non-empty slots
};

}  // namespace ns
