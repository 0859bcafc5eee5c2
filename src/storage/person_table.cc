#include "storage/person_table.h"

#include <algorithm>

namespace ns {

void PersonColumn::ForEach(const std::function<void(uint32_t, const PropValue&)>& fn) const {
  for (uint32_t c = 0; c < chunks_.size(); c++) {
    if (!chunks_[c]) continue;
    const Chunk& ch = *chunks_[c];
    for (uint32_t i = 0; i < kChunk; i++)
      if (ch.Present(i)) fn(c * kChunk + i, ch.values[ch.code[i]]);
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

void PersonColumn::Chunk::Compact() {
  std::vector<int> remap(values.size(), -1);
  std::vector<PropValue> kept;
  for (uint32_t i = 0; i < kChunk; i++) {
    if (!Present(i)) continue;
    int& r = remap[code[i]];
    if (r < 0) {
      r = static_cast<int>(kept.size());
      kept.push_back(std::move(values[code[i]]));
    }
    code[i] = static_cast<uint8_t>(r);
  }
  values = std::move(kept);
}

void PersonColumn::Set(uint32_t person, const PropValue& v) {
  Chunk& ch = Writable(person / kChunk);
  const uint32_t i = person % kChunk;
  // The value's index if the chunk holds it already (a short scan: most chunks hold a few).
  size_t k = 0;
  while (k < ch.values.size() && !(ch.values[k] == v)) k++;
  if (k == ch.values.size()) {
    if (ch.values.size() == kChunk) {
      // Full: this person's old value no longer counts, so at most kChunk - 1 stay.
      ch.present[i / 64] &= ~(uint64_t{1} << (i % 64));
      ch.Compact();
    }
    ch.values.push_back(v);
    k = ch.values.size() - 1;
  }
  ch.code[i] = static_cast<uint8_t>(k);
  ch.present[i / 64] |= uint64_t{1} << (i % 64);
}

void PersonColumn::Erase(uint32_t person) {
  uint32_t c = person / kChunk;
  const uint32_t i = person % kChunk;
  if (c >= chunks_.size() || !chunks_[c] || !chunks_[c]->Present(i)) return;
  Chunk& ch = Writable(c);
  ch.present[i / 64] &= ~(uint64_t{1} << (i % 64));
  // An erased person's value leaves memory unless another person of the chunk has it too.
  const uint8_t k = ch.code[i];
  bool shared = false;
  for (uint32_t j = 0; j < kChunk && !shared; j++) shared = ch.Present(j) && ch.code[j] == k;
  if (!shared) ch.values[k] = PropValue{};
  ch.code[i] = 0;
}

void PersonTable::CanonicalPersons(std::vector<uint32_t>* persons) const {
  for (auto& p : *persons) p = PersonOf(p);
  std::sort(persons->begin(), persons->end());
  persons->erase(std::unique(persons->begin(), persons->end()), persons->end());
}

}  // namespace ns
