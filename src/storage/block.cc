#include "storage/block.h"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <unordered_map>

namespace ns {

PropValue PropColumn::Get(size_t row) const {
  if (numeric) return present[row] ? PropValue::Num(num[row]) : PropValue{};
  uint32_t c = code[row];
  if (c == 0) return PropValue{};
  if (dict_kind[c] == PropValue::kNum) return PropValue::Num(std::strtod(dict[c].c_str(), nullptr));
  return PropValue{dict_kind[c], 0, dict[c]};
}

bool PropColumn::GetNum(size_t row, double* out) const {
  if (numeric) {
    if (!present[row]) return false;
    *out = num[row];
    return true;
  }
  uint32_t c = code[row];
  if (c == 0) return false;
  const std::string& s = dict[c];
  auto r = std::from_chars(s.data(), s.data() + s.size(), *out);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

bool Block::HasEvent(uint32_t code) const {
  for (auto& [c, n] : event_counts_)
    if (c == code) return n > 0;
  return false;
}

void Block::Ensure(int column) const {
  std::call_once(once_[column], [&] {
    if (loader_) loader_(const_cast<Block&>(*this), column);
  });
}

void Block::ReadUuids(std::vector<uint8_t>* has, std::vector<Uuid>* ids) const {
  if (uuid_reader_) {
    uuid_reader_(has, ids);
    return;
  }
  *has = has_uuid();
  *ids = uuid();
}

const PropColumn* Block::prop(std::string_view key) const {
  auto it = props_.find(key);
  if (it == props_.end()) return nullptr;
  LazyProp& lp = *it->second;
  std::call_once(lp.once, [&] {
    if (lp.load) lp.load(lp.col);
  });
  return &lp.col;
}

void Block::RowProps(size_t row, std::vector<Property>* out) const {
  out->clear();
  for (const auto& key : prop_keys_) {
    const PropColumn* c = prop(key);
    if (c && c->Present(row)) out->push_back(Property{key, c->Get(row)});
  }
}

size_t Block::MemoryBytes() const {
  size_t b = did_.capacity() * 4 + ts_.capacity() * 8 + ev_.capacity() * 4 + uuid_.capacity() * 16 +
             has_uuid_.capacity();
  for (const auto& [k, lp] : props_) {
    b += lp->col.num.capacity() * 8 + lp->col.present.capacity() + lp->col.code.capacity() * 4;
    for (const auto& s : lp->col.dict) b += s.size() + 32;
  }
  return b;
}

BlockBuilder::PropBuilder& BlockBuilder::Prop(std::string_view key) {
  auto it = props_.find(key);
  if (it == props_.end()) it = props_.emplace(std::string(key), PropBuilder{}).first;
  return it->second;
}

void BlockBuilder::AddProp(std::string_view key, PropValue::Kind kind, std::string_view text, double num) {
  PropBuilder& p = Prop(key);
  size_t row = did_.size() - 1;
  if (p.code.size() > row) return;  // duplicate key within one event: first wins
  p.code.resize(row, 0);
  p.num.resize(row, 0);
  scratch_.assign(1, static_cast<char>(kind));
  scratch_.append(text);
  auto [it, inserted] = p.index.try_emplace(scratch_, static_cast<uint32_t>(p.dict.size()));
  if (inserted) {
    p.dict.emplace_back(text);
    p.kinds.push_back(kind);
    if (kind != PropValue::kNum) p.all_numbers = false;
  }
  p.code.push_back(it->second);
  p.num.push_back(num);
}

void BlockBuilder::Append(uint32_t did, int64_t ts, uint32_t ev, const Uuid* uuid,
                          const std::vector<Property>& props) {
  did_.push_back(did);
  ts_.push_back(ts);
  ev_.push_back(ev);
  uuid_.push_back(uuid ? *uuid : Uuid{});
  has_uuid_.push_back(uuid ? 1 : 0);
  for (const auto& p : props) {
    if (p.value.kind == PropValue::kNum) {
      std::string text = p.value.AsString();
      AddProp(p.key, PropValue::kNum, text, p.value.num);
    } else {
      AddProp(p.key, p.value.kind, p.value.str, 0);
    }
  }
}

void BlockBuilder::AppendFrom(const Block& src, size_t row) {
  const bool hu = src.has_uuid()[row] != 0;
  did_.push_back(src.did()[row]);
  ts_.push_back(src.ts()[row]);
  ev_.push_back(src.ev()[row]);
  uuid_.push_back(hu ? src.uuid()[row] : Uuid{});
  has_uuid_.push_back(hu ? 1 : 0);
  for (const auto& key : src.prop_keys()) {
    const PropColumn* c = src.prop(key);
    if (!c || !c->Present(row)) continue;
    if (c->numeric) {
      AddProp(key, PropValue::kNum, PropValue::Num(c->num[row]).AsString(), c->num[row]);
    } else {
      uint32_t code = c->code[row];
      double v = 0;
      if (c->dict_kind[code] == PropValue::kNum) v = std::strtod(c->dict[code].c_str(), nullptr);
      AddProp(key, c->dict_kind[code], c->dict[code], v);
    }
  }
}

std::shared_ptr<Block> BlockBuilder::Finish() {
  auto b = std::make_shared<Block>();
  size_t n = did_.size();
  b->size_ = n;
  if (n) {
    auto [mn, mx] = std::minmax_element(ts_.begin(), ts_.end());
    b->min_ts_ = *mn;
    b->max_ts_ = *mx;
  }
  std::unordered_map<uint32_t, uint32_t> counts;
  for (uint32_t e : ev_) counts[e]++;
  b->event_counts_.assign(counts.begin(), counts.end());
  std::sort(b->event_counts_.begin(), b->event_counts_.end());
  b->did_ = std::move(did_);
  b->ts_ = std::move(ts_);
  b->ev_ = std::move(ev_);
  b->uuid_ = std::move(uuid_);
  b->has_uuid_ = std::move(has_uuid_);
  for (auto& [key, p] : props_) {
    p.code.resize(n, 0);
    p.num.resize(n, 0);
    auto lp = std::make_unique<Block::LazyProp>();
    PropColumn& c = lp->col;
    if (p.all_numbers) {
      c.numeric = true;
      c.present.resize(n);
      for (size_t i = 0; i < n; i++) c.present[i] = p.code[i] != 0;
      c.num = std::move(p.num);
    } else {
      c.code = std::move(p.code);
      c.dict = std::move(p.dict);
      c.dict_kind = std::move(p.kinds);
    }
    b->prop_keys_.push_back(key);
    b->props_.emplace(key, std::move(lp));
  }
  props_.clear();
  return b;
}

}  // namespace ns
