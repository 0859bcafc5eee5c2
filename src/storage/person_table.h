// PersonTable: what a query sees of persons — the person of every distinct id and the
// person properties — as of one snapshot. Built incrementally by IdentityMap:
//
//  - `person_of` is shared between snapshots while no merge happens: a distinct id newer
//    than it is its own person (PersonOf), so new ids cost nothing; after merges the next
//    snapshot copies it once (a memcpy) and patches only the ids whose person changed.
//  - Properties are columns (one per key) of chunks shared between snapshots: a $set writes
//    one value and copies at most one chunk of kChunk values per snapshot (copy-on-write),
//    never a person's whole property map.
//
// Person ids are distinct ids (the smallest of the person's ids), so they are stable: when
// two persons merge, the larger id starts to map to the smaller one and nothing is renamed.
// A stored set of person ids (a cohort's bitmap) stays valid across merges by reading it
// through CanonicalPersons, which is a no-op while merge_version is unchanged.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "storage/event.h"

namespace ns {

// One person property over all persons (indexed by person id).
// Memory: a chunk of kChunk persons keeps each distinct value once (most properties repeat:
// platform, channel, plan) and a one-byte code per person, ~0.3 KB for a chunk of a few
// distinct values instead of 12.5 KB of PropValues (dataset M: 98 MiB -> 6 MiB for its
// two person properties); a chunk of all-different values costs what it did.
class PersonColumn {
 public:
  static constexpr uint32_t kChunk = 256;
  const PropValue* Get(uint32_t person) const {
    uint32_t c = person / kChunk;
    if (c >= chunks_.size() || !chunks_[c]) return nullptr;
    const Chunk& ch = *chunks_[c];
    const uint32_t i = person % kChunk;
    return ch.Present(i) ? &ch.values[ch.code[i]] : nullptr;
  }
  // Calls fn(person, value) for every person with a value, in person order.
  void ForEach(const std::function<void(uint32_t, const PropValue&)>& fn) const;

  // Mutators (IdentityMap, under its lock, on a column no snapshot holds). A chunk that a
  // snapshot's copy of the column still holds is copied first.
  void Set(uint32_t person, const PropValue& v);
  void Erase(uint32_t person);

 private:
  struct Chunk {
    // The chunk's distinct values (at most kChunk; a value no present person uses any more
    // stays until the chunk is full, then Compact drops it).
    std::vector<PropValue> values;
    uint8_t code[kChunk] = {};           // per person: its value's index in `values`
    uint64_t present[kChunk / 64] = {};  // per person: 1 if it has a value
    bool Present(uint32_t i) const { return (present[i / 64] >> (i % 64)) & 1; }
    // Keeps only the values a present person uses, renumbering the codes.
    void Compact();
  };
  Chunk& Writable(uint32_t c);
  std::vector<std::shared_ptr<Chunk>> chunks_;
};

// Property key -> column.
using PersonColumns = std::map<std::string, std::shared_ptr<const PersonColumn>, std::less<>>;

struct PersonTable {
  // did -> person; may be shorter than size(): later dids are their own persons.
  std::shared_ptr<const std::vector<uint32_t>> person_of_ids;
  // Property key -> column.
  PersonColumns columns;
  uint64_t version = 0;
  // Which set of computed columns (EventStore::SetComputedPersonColumns) is laid over
  // `columns`, 0 for none: a cached answer keyed by the version must see this change too.
  uint64_t computed_version = 0;
  // Changes only when persons merge (new distinct ids and properties leave it alone), so
  // per-block facts about person order stay valid while events keep arriving.
  uint64_t merge_version = 1;
  // Distinct ids known to this snapshot (every did of its blocks is below it).
  size_t did_count = 0;
  // Erased persons (DELETE /api/v1/persons/{id}): per did 1 when erased (may be shorter
  // than size(): later dids are not erased), and the erased dids in order of erasure.
  // erase_version is their number, so a per-block answer cached under it stays valid
  // until the next erasure, and the dids erased since are the list's tail.
  std::shared_ptr<const std::vector<uint8_t>> erased_ids;
  std::shared_ptr<const std::vector<uint32_t>> erased_list;
  uint64_t erase_version = 0;

  size_t size() const { return did_count; }
  const std::vector<uint32_t>& person_of() const { return *person_of_ids; }
  // The person of a did. A did newer than the table (it arrived after the snapshot) is its
  // own person until the next snapshot.
  uint32_t PersonOf(uint32_t did) const {
    const auto& po = *person_of_ids;
    return did < po.size() ? po[did] : did;
  }
  bool Erased(uint32_t did) const { return erased_ids && did < erased_ids->size() && (*erased_ids)[did] != 0; }
  // A person is a root that was not erased (an erased person has no events and no
  // properties, and is in no list or cohort).
  bool IsPerson(uint32_t did) const { return PersonOf(did) == did && !Erased(did); }
  const PersonColumn* Column(std::string_view key) const {
    auto it = columns.find(key);
    return it == columns.end() ? nullptr : it->second.get();
  }
  const PropValue* Prop(uint32_t person, std::string_view key) const {
    const PersonColumn* c = Column(key);
    return c ? c->Get(person) : nullptr;
  }
  // Maps stored person ids to the persons they are now (merges since they were stored),
  // sorted and without duplicates.
  void CanonicalPersons(std::vector<uint32_t>* persons) const;
};

}  // namespace ns
