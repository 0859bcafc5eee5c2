#include "storage/person_table.h"

#include <algorithm>

namespace ns {

void PersonColumn::ForEach(const std::function<void(uint32_t, const PropValue&)>& fn) const {
  for (uint32_t c = 0; c < chunks_.size(); c++) {
    if (!chunks_[c]) continue;
    const Chunk& ch = *chunks_[c];
    for (uint32_t i = 0; i < kChunk; i++)
      if (ch.present[i]) fn(c * kChunk + i, ch.values[i]);
  }
}

PersonColumn::Chunk& PersonColumn::Writable(uint32_t c) {
  if (c >= chunks_.size()) chunks_.resize(c + 1);
  auto& p = chunks_[c];
  if (!p)
    p = std::make_shared<Chunk>();
  else if (p.use_count() > 1)
    p = std::make_shared<Chunk>(*p);  // a snapshot reads the old one
  return *p;
}

void PersonColumn::Set(uint32_t person, const PropValue& v) {
  Chunk& ch = Writable(person / kChunk);
  ch.values[person % kChunk] = v;
  ch.present[person % kChunk] = true;
}

void PersonColumn::Erase(uint32_t person) {
  uint32_t c = person / kChunk;
  if (c >= chunks_.size() || !chunks_[c] || !chunks_[c]->present[person % kChunk]) return;
  Chunk& ch = Writable(c);
  ch.values[person % kChunk] = PropValue{};
  ch.present[person % kChunk] = false;
}

void PersonTable::CanonicalPersons(std::vector<uint32_t>* persons) const {
  for (auto& p : *persons) p = PersonOf(p);
  std::sort(persons->begin(), persons->end());
  persons->erase(std::unique(persons->begin(), persons->end()), persons->end());
}

}  // namespace ns
