#include "storage/distinct_id_index.h"

#include <cstring>
#include <functional>

#include "storage/probe_table.h"

namespace ns {

uint32_t DistinctIdIndex::Tag(std::string_view id) {
  const uint64_t h = std::hash<std::string_view>{}(id);
  return static_cast<uint32_t>(h ^ (h >> 32));
}

void DistinctIdIndex::Reserve(size_t ids) {
  end_.reserve(ids);
  size_t want = 1024;
  while (want * 3 < 4 * ids) want *= 2;
  if (want <= slots_.size()) return;
  std::vector<uint64_t> old(want, 0);
  old.swap(slots_);
  for (uint64_t s : old)
    if (s) InsertSlot(s);
}

void DistinctIdIndex::Grow() {
  // Positions come from the tags, so regrowing moves 8-byte slots and never reads a string.
  std::vector<uint64_t> old(slots_.empty() ? 1024 : slots_.size() * 2, 0);
  old.swap(slots_);
  for (uint64_t s : old)
    if (s) InsertSlot(s);
}

void DistinctIdIndex::InsertSlot(uint64_t slot) {
  const size_t mask = slots_.size() - 1;
  for (size_t i = (slot >> 32) & mask;; i = (i + 1) & mask)
    if (!slots_[i]) {
      slots_[i] = slot;
      return;
    }
}

int64_t DistinctIdIndex::Find(std::string_view id) const {
  if (slots_.empty()) return -1;
  const uint32_t tag = Tag(id);
  const size_t mask = slots_.size() - 1;
  for (size_t i = tag & mask;; i = (i + 1) & mask) {
    const uint64_t s = slots_[i];
    if (!s) return -1;
    if (static_cast<uint32_t>(s >> 32) == tag) {
      const uint32_t did = static_cast<uint32_t>(s) - 1;
      if (Id(did) == id) return did;
    }
  }
}

void DistinctIdIndex::Prefetch(std::span<const std::string_view> ids) const {
  if (slots_.empty() || ids.empty()) return;
  const size_t mask = slots_.size() - 1;
  std::vector<uint32_t> at(ids.size());
  for (size_t i = 0; i < ids.size(); i++) {
    at[i] = Tag(ids[i]);
    __builtin_prefetch(&slots_[at[i] & mask]);
  }
  // The first slot with the id's tag (usually its did; a miss or a collision only costs a
  // useless prefetch), then its offsets, then its string.
  for (size_t i = 0; i < ids.size(); i++) {
    const uint32_t tag = at[i];
    at[i] = 0;
    for (size_t j = tag & mask; slots_[j]; j = (j + 1) & mask)
      if (static_cast<uint32_t>(slots_[j] >> 32) == tag) {
        at[i] = static_cast<uint32_t>(slots_[j]);  // did + 1
        __builtin_prefetch(&end_[at[i] - 1]);
        if (at[i] > 1) __builtin_prefetch(&end_[at[i] - 2]);
        break;
      }
  }
  for (uint32_t d1 : at)
    if (d1) __builtin_prefetch(Id(d1 - 1).data());  // a cleared id's is null: a no-op
}

void DistinctIdIndex::Add(std::string_view id) {
  const uint32_t did = size();
  const bool indexed = Find(id) >= 0;  // then the index keeps the older did
  arena_.insert(arena_.end(), id.begin(), id.end());
  end_.push_back(arena_.size());
  if (indexed) return;
  if ((indexed_ + 1) * 4 > slots_.size() * 3) Grow();  // load <= 3/4
  InsertSlot((uint64_t{Tag(id)} << 32) | (uint64_t{did} + 1));
  indexed_++;
}

void DistinctIdIndex::Clear(uint32_t did) {
  if (did >= size() || (end_[did] & kCleared)) return;
  const std::string_view id = Id(did);
  if (!slots_.empty()) {
    const size_t mask = slots_.size() - 1;
    const uint32_t tag = Tag(id);
    size_t i = tag & mask;
    for (; slots_[i]; i = (i + 1) & mask)
      if (static_cast<uint32_t>(slots_[i]) == did + 1) break;
    if (slots_[i]) {
      BackwardShiftErase(slots_, i, [](uint64_t slot) { return slot >> 32; });  // home: the tag
      indexed_--;
    }
  }
  const uint64_t b = did ? end_[did - 1] & ~kCleared : 0;
  std::memset(arena_.data() + b, 0, (end_[did] & ~kCleared) - b);  // the id leaves memory
  end_[did] |= kCleared;
}

void DistinctIdIndex::Reset() {
  // Swapped out, not cleared: a reset (a compacted log's replay) should not keep the old size.
  std::vector<char>().swap(arena_);
  std::vector<uint64_t>().swap(end_);
  std::vector<uint64_t>().swap(slots_);
  indexed_ = 0;
}

bool DistinctIdIndex::operator==(const DistinctIdIndex& o) const {
  if (size() != o.size()) return false;
  for (uint32_t d = 0; d < size(); d++)
    if (Id(d) != o.Id(d)) return false;
  return true;
}

size_t DistinctIdIndex::MemoryBytes() const {
  return arena_.capacity() + end_.capacity() * sizeof(uint64_t) + slots_.capacity() * sizeof(uint64_t);
}

}  // namespace ns
