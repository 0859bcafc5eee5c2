#include "storage/block.h"

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <unordered_map>

namespace ns {

void PropColumn::MakeSparseIfFew() {
  if (!numeric || sparse) return;
  const size_t n = present.size();
  size_t absent = 0, zero = 0;
  for (size_t i = 0; i < n; i++) {
    if (!present[i])
      absent++;
    else if (num[i] != num[i])
      return;  // a NaN value would read as absent (none comes from the parsers; still)
    else if (std::bit_cast<uint64_t>(num[i]) == 0)  // +0 only: -0 prints differently
      zero++;
  }
  const bool fill_absent = absent >= zero;
  if (std::max(absent, zero) * 2 < n) return;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  auto usual = [&](size_t i) { return fill_absent ? !present[i] : present[i] && std::bit_cast<uint64_t>(num[i]) == 0; };
  fill = fill_absent ? nan : 0.0;
  bits.assign((n + 63) / 64, 0);
  rank.assign(bits.size(), 0);
  vals.clear();
  vals.reserve(n - std::max(absent, zero));
  for (size_t i = 0; i < n; i++) {
    if (i % 64 == 0) rank[i / 64] = static_cast<uint32_t>(vals.size());
    if (usual(i)) continue;
    bits[i / 64] |= uint64_t{1} << (i % 64);
    vals.push_back(present[i] ? num[i] : nan);
  }
  sparse = true;
  std::vector<double>().swap(num);
  std::vector<uint8_t>().swap(present);
}

void PropColumn::NarrowCodes() {
  if (numeric || code_width != 4) return;
  if (dict.size() <= 256) {
    code8.assign(code.begin(), code.end());
    code_width = 1;
  } else if (dict.size() <= 65536) {
    code16.assign(code.begin(), code.end());
    code_width = 2;
  } else {
    return;
  }
  std::vector<uint32_t>().swap(code);
}

PropValue PropColumn::Get(size_t row) const {
  if (numeric) return Present(row) ? PropValue::Num(NumAt(row)) : PropValue{};
  uint32_t c = CodeAt(row);
  if (c == 0) return PropValue{};
  if (dict_kind[c] == PropValue::kNum) return PropValue::Num(std::strtod(dict[c].c_str(), nullptr));
  return PropValue{dict_kind[c], 0, dict[c]};
}

bool PropColumn::GetNum(size_t row, double* out) const {
  if (numeric) {
    if (!Present(row)) return false;
    *out = NumAt(row);
    return true;
  }
  uint32_t c = CodeAt(row);
  if (c == 0) return false;
  return ParseNumericText(dict[c], out);
}

bool ParseNumericText(std::string_view s, double* out) {
  double v = 0;
  auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  // from_chars also reads "nan", "inf" and "infinity" (any case): text, not numbers here.
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size() || !std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool Block::HasEvent(uint32_t code) const {
  for (auto& [c, n] : event_counts_)
    if (c == code) return n > 0;
  return false;
}

void Block::SetError(const Status& st) const {
  std::lock_guard lk(error_mu_);
  if (error_.ok()) error_ = st;
  failed_.store(true, std::memory_order_release);
}

Status Block::status() const {
  if (!failed_.load(std::memory_order_acquire)) return Status::OK();
  std::lock_guard lk(error_mu_);
  return error_;
}

std::unique_ptr<CachedData> Block::LoadFixed(int column) const {
  std::unique_ptr<CachedData> out;
  if (column == kTs)
    out = std::make_unique<VecData<int64_t>>();
  else if (column == kUuid)
    out = std::make_unique<UuidData>();
  else
    out = std::make_unique<VecData<uint32_t>>();
  if (!loader_) return out;  // an in-memory block sets every column at Finish
  Status st = loader_(column, *out);
  if (st.ok()) return out;
  SetError(st);
  // Whatever the loader left half-filled becomes an empty column of the right length,
  // so that a reader indexing rows stays in bounds until it checks status().
  if (column == kTs) {
    static_cast<VecData<int64_t>&>(*out).v.assign(size_, 0);
  } else if (column == kUuid) {
    auto& u = static_cast<UuidData&>(*out);
    u.ids.assign(size_, Uuid{});
    u.has.assign(size_, 0);
  } else {
    static_cast<VecData<uint32_t>&>(*out).v.assign(size_, 0);
  }
  return out;
}

Status Block::LoadAll() const {
  for (int c = 0; c < kNumFixedColumns; c++) {
    if (c == kTs)
      (void)Fixed<VecData<int64_t>>(c);
    else if (c == kUuid)
      (void)Fixed<UuidData>(c);
    else
      (void)Fixed<VecData<uint32_t>>(c);
  }
  for (const auto& key : prop_keys_) (void)prop(key);
  return status();
}

std::pair<const uint32_t*, const uint32_t*> Block::EventRows(uint32_t code) const {
  if (!HasEvent(code)) return {nullptr, nullptr};
  CachedSlot* slot;
  {
    std::lock_guard lk(index_mu_);
    auto& p = rows_by_code_[code];
    if (!p) p = std::make_unique<CachedSlot>();
    slot = p.get();  // lives as long as the block
  }
  const auto& rows = slot->Get<VecData<uint32_t>>([&] {
    auto out = std::make_unique<VecData<uint32_t>>();
    for (auto& [c, n] : event_counts_)
      if (c == code) out->v.reserve(n);
    // The index is what queries keep; ev is decoded for it but kept only if something
    // already holds it resident (a query that reads ev itself), so an index-only query's
    // working set is its indexes, not 4 B per row of every block it touches.
    std::unique_ptr<CachedData> transient;
    const std::vector<uint32_t>* e;
    if (fixed_[kEv].resident()) {
      e = &ev();
    } else {
      transient = LoadFixed(kEv);
      e = &static_cast<const VecData<uint32_t>&>(*transient).v;
    }
    for (uint32_t r = 0; r < size_; r++)
      if ((*e)[r] == code) out->v.push_back(r);
    return out;
  });
  return {rows.v.data(), rows.v.data() + rows.v.size()};
}

Status Block::ReadUuids(std::vector<uint8_t>* has, std::vector<Uuid>* ids) const {
  if (uuid_reader_) {
    Status st = uuid_reader_(has, ids);
    if (!st.ok()) {
      has->assign(size_, 0);
      ids->assign(size_, Uuid{});
    }
    return st;
  }
  *has = has_uuid();
  *ids = uuid();
  return status();
}

std::unique_ptr<CachedData> Block::LoadProp(const LazyProp& lp) const {
  auto out = std::make_unique<PropData>();
  if (!lp.load) return out;
  Status st = lp.load(out->col);
  if (st.ok()) return out;
  SetError(st);
  out->col = PropColumn{};  // the key reads as absent from every row
  out->col.code.assign(size_, 0);
  out->col.dict.assign(1, std::string());
  out->col.dict_kind.assign(1, PropValue::kStr);
  return out;
}

const PropColumn* Block::prop(std::string_view key) const {
  auto it = props_.find(key);
  if (it == props_.end()) return nullptr;
  const LazyProp& lp = *it->second;
  return &lp.slot.Get<PropData>([&] { return LoadProp(lp); }).col;
}

void Block::RowProps(size_t row, std::vector<Property>* out) const {
  out->clear();
  for (const auto& key : prop_keys_) {
    const PropColumn* c = prop(key);
    if (c && c->Present(row)) out->push_back(Property{key, c->Get(row)});
  }
}

size_t Block::MemoryBytes() const {
  size_t b = 0;
  for (const auto& s : fixed_)
    if (s.resident()) b += s.bytes();
  for (const auto& [k, lp] : props_)
    if (lp->slot.resident()) b += lp->slot.bytes();
  std::lock_guard lk(index_mu_);
  for (const auto& [c, s] : rows_by_code_)
    if (s->resident()) b += s->bytes();
  return b;
}

void Block::Retire(uint64_t reader_epoch) const {
  if (reader_epoch == 0 || !loader_) return;        // no ticket, or an in-memory block (permanent columns)
  if (!ColumnCache::Global().OverBudget()) return;  // the common case: nothing to gather
  std::vector<const CachedSlot*> slots;
  for (const auto& s : fixed_) slots.push_back(&s);
  for (const auto& [k, lp] : props_) slots.push_back(&lp->slot);
  {
    std::lock_guard lk(index_mu_);
    for (const auto& [c, s] : rows_by_code_) slots.push_back(s.get());
  }
  ColumnCache::Global().Retire(slots, reader_epoch);
}

size_t PropColumn::Bytes() const {
  size_t b = num.capacity() * 8 + present.capacity() + bits.capacity() * 8 + rank.capacity() * 4 + vals.capacity() * 8 +
             code.capacity() * 4 + code8.capacity() + code16.capacity() * 2 + dict_kind.capacity();
  for (const auto& s : dict) b += s.capacity() + sizeof(std::string);
  return b;
}

BlockBuilder::PropBuilder& BlockBuilder::Prop(std::string_view key) {
  auto it = props_.find(key);
  if (it == props_.end()) it = props_.emplace(std::string(key), PropBuilder{}).first;
  return it->second;
}

bool BlockBuilder::Pad(PropBuilder& p) {
  const size_t row = did_.size() - 1;
  if (p.code.size() > row) return false;  // duplicate key within one event: first wins
  p.code.resize(row, 0);
  p.num.resize(row, 0);
  return true;
}

void BlockBuilder::AddNum(PropBuilder& p, double v) {
  if (!Pad(p)) return;
  p.code.push_back(kNumCode);
  p.num.push_back(v);
}

void BlockBuilder::AddText(PropBuilder& p, PropValue::Kind kind, std::string_view text) {
  if (!Pad(p)) return;
  const size_t h =
      text.size() * 7 + kind +
      (text.empty() ? 0
                    : static_cast<unsigned char>(text[0]) * 3 + static_cast<unsigned char>(text[text.size() / 2]) * 5 +
                          static_cast<unsigned char>(text.back()));
  PropBuilder::RecentText& recent = p.recent[h % p.recent.size()];
  if (recent.code != 0 && recent.kind == kind && recent.text == text) {
    p.code.push_back(recent.code);
    p.num.push_back(0);
    return;
  }
  scratch_.assign(1, static_cast<char>(kind));
  scratch_.append(text);
  auto [it, inserted] = p.index.try_emplace(scratch_, static_cast<uint32_t>(p.dict.size()));
  if (inserted) {
    p.dict.emplace_back(text);
    p.kinds.push_back(kind);
  }
  p.any_text = true;
  p.code.push_back(it->second);
  p.num.push_back(0);
  recent.text.assign(text);
  recent.kind = kind;
  recent.code = it->second;
}

void BlockBuilder::Append(uint32_t did, int64_t ts, uint32_t ev, const Uuid* uuid, const std::vector<Property>& props) {
  did_.push_back(did);
  ts_.push_back(ts);
  ev_.push_back(ev);
  uuid_.push_back(uuid ? *uuid : Uuid{});
  has_uuid_.push_back(uuid ? 1 : 0);
  for (size_t k = 0; k < props.size(); k++) {
    const Property& p = props[k];
    PropBuilder* b;
    if (k < last_keys_.size() && last_keys_[k].first == p.key) {
      b = last_keys_[k].second;
    } else {
      b = &Prop(p.key);
      if (k < last_keys_.size())
        last_keys_[k] = {p.key, b};
      else
        last_keys_.emplace_back(p.key, b);
    }
    if (p.value.kind == PropValue::kNum)
      AddNum(*b, p.value.num);
    else
      AddText(*b, p.value.kind, p.value.str);
  }
}

void BlockBuilder::AppendFrom(const Block& src, size_t row) {
  if (&src != src_) {
    src_ = &src;
    auto [it, inserted] = src_cache_.try_emplace(&src);
    src_entry_ = &it->second;
    if (inserted) {
      SrcCache& e = *src_entry_;
      e.did = src.did().data();
      e.ts = src.ts().data();
      e.ev = src.ev().data();
      e.uuid = src.uuid().data();
      e.has_uuid = src.has_uuid().data();
      for (const auto& key : src.prop_keys()) {
        e.builders.push_back(&Prop(key));
        const PropColumn* c = src.prop(key);
        e.cols.push_back(c);
        e.codes.emplace_back(c && !c->numeric ? c->dict.size() : 0, UINT32_MAX);
      }
    }
  }
  const SrcCache& e = *src_entry_;
  const bool hu = e.has_uuid[row] != 0;
  did_.push_back(e.did[row]);
  ts_.push_back(e.ts[row]);
  ev_.push_back(e.ev[row]);
  uuid_.push_back(hu ? e.uuid[row] : Uuid{});
  has_uuid_.push_back(hu ? 1 : 0);
  for (size_t k = 0; k < e.cols.size(); k++) {
    const PropColumn* c = e.cols[k];
    if (!c || !c->Present(row)) continue;
    PropBuilder& b = *src_entry_->builders[k];
    if (c->numeric) {
      AddNum(b, c->NumAt(row));
      continue;
    }
    const uint32_t sc = c->CodeAt(row);
    if (c->dict_kind[sc] == PropValue::kNum) {
      AddNum(b, std::strtod(c->dict[sc].c_str(), nullptr));
      continue;
    }
    uint32_t& mapped = src_entry_->codes[k][sc];
    if (mapped != UINT32_MAX) {
      if (!Pad(b)) continue;
      b.code.push_back(mapped);
      b.num.push_back(0);
      b.any_text = true;
    } else {
      AddText(b, c->dict_kind[sc], c->dict[sc]);
      mapped = b.code.back();
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
  {
    auto did = std::make_unique<Block::VecData<uint32_t>>();
    did->v = std::move(did_);
    b->fixed_[Block::kDid].SetPermanent(std::move(did));
    auto ts = std::make_unique<Block::VecData<int64_t>>();
    ts->v = std::move(ts_);
    b->fixed_[Block::kTs].SetPermanent(std::move(ts));
    auto ev = std::make_unique<Block::VecData<uint32_t>>();
    ev->v = std::move(ev_);
    b->fixed_[Block::kEv].SetPermanent(std::move(ev));
    auto uuid = std::make_unique<Block::UuidData>();
    uuid->ids = std::move(uuid_);
    uuid->has = std::move(has_uuid_);
    b->fixed_[Block::kUuid].SetPermanent(std::move(uuid));
  }
  for (auto& [key, p] : props_) {
    p.code.resize(n, 0);
    p.num.resize(n, 0);
    auto lp = std::make_unique<Block::LazyProp>();
    auto data = std::make_unique<Block::PropData>();
    PropColumn& c = data->col;
    if (!p.any_text) {
      c.numeric = true;
      c.present.resize(n);
      for (size_t i = 0; i < n; i++) c.present[i] = p.code[i] != 0;
      c.num = std::move(p.num);
    } else {
      // Mixed column: numbers become dictionary entries of kind kNum.
      for (size_t i = 0; i < n; i++) {
        if (p.code[i] != kNumCode) continue;
        std::string text = PropValue::Num(p.num[i]).AsString();
        scratch_.assign(1, static_cast<char>(PropValue::kNum));
        scratch_.append(text);
        auto [it, inserted] = p.index.try_emplace(scratch_, static_cast<uint32_t>(p.dict.size()));
        if (inserted) {
          p.dict.push_back(text);
          p.kinds.push_back(PropValue::kNum);
        }
        p.code[i] = it->second;
      }
      c.code = std::move(p.code);
      c.dict = std::move(p.dict);
      c.dict_kind = std::move(p.kinds);
    }
    lp->slot.SetPermanent(std::move(data));
    b->prop_keys_.push_back(key);
    b->props_.emplace(key, std::move(lp));
  }
  props_.clear();
  src_ = nullptr;
  src_entry_ = nullptr;
  src_cache_.clear();
  last_keys_.clear();
  return b;
}

}  // namespace ns
