#include "query/scan.h"

#include <roaring/roaring.hh>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace ns {

EventMatcher EventMatcher::Make(std::string_view name, const EventDict& dict) {
  EventMatcher m;
  if (name == kAnyEvent) {
    m.any = true;
    return m;
  }
  auto c = dict.Find(name);
  if (!c)
    m.none = true;
  else
    m.code = *c;
  return m;
}

namespace {

bool AsNumber(const PropValue& v, double* out) {
  if (v.kind == PropValue::kNum) {
    *out = v.num;
    return true;
  }
  if (v.kind != PropValue::kStr) return false;
  return ParseNumericText(v.str, out);
}

bool ValueEquals(const PropValue& a, const PropValue& b) {
  double x, y;
  if (b.kind == PropValue::kNum) return AsNumber(a, &x) && x == b.num;
  if (a.kind == PropValue::kNum && AsNumber(b, &y)) return a.num == y;
  return a.AsString() == b.AsString();
}

}  // namespace

bool FilterMatchesValue(const Filter& f, const PropValue& v) {
  double x;
  switch (f.op) {
    case FilterOp::kEq: return ValueEquals(v, f.values[0]);
    case FilterOp::kNeq: return !ValueEquals(v, f.values[0]);
    case FilterOp::kIn:
      for (const auto& w : f.values)
        if (ValueEquals(v, w)) return true;
      return false;
    case FilterOp::kNotIn:
      for (const auto& w : f.values)
        if (ValueEquals(v, w)) return false;
      return true;
    case FilterOp::kGt: return AsNumber(v, &x) && x > f.values[0].num;
    case FilterOp::kGte: return AsNumber(v, &x) && x >= f.values[0].num;
    case FilterOp::kLt: return AsNumber(v, &x) && x < f.values[0].num;
    case FilterOp::kLte: return AsNumber(v, &x) && x <= f.values[0].num;
    case FilterOp::kContains: return v.AsString().find(f.values[0].AsString()) != std::string::npos;
    case FilterOp::kNotContains: return v.AsString().find(f.values[0].AsString()) == std::string::npos;
    case FilterOp::kIsSet: return true;
    case FilterOp::kIsNotSet: return false;
  }
  return false;
}

// What a filter says about a row that lacks the property.
static bool AbsentMatches(const Filter& f) {
  return f.op == FilterOp::kNeq || f.op == FilterOp::kNotIn || f.op == FilterOp::kNotContains ||
         f.op == FilterOp::kIsNotSet;
}

FilterSet::FilterSet(const std::vector<Filter>& filters, const StoreSnapshot& snap) : filters_(filters), snap_(&snap) {
  const PersonTable& pt = *snap.persons;
  person_ok_.resize(filters_.size());
  for (size_t i = 0; i < filters_.size(); i++) {
    const Filter& f = filters_[i];
    if (!f.person) continue;
    auto& ok = person_ok_[i];
    ok.assign(pt.size(), 0);
    if (f.cohort > 0) {  // members were computed on this snapshot: canonical persons
      const bool in = f.op == FilterOp::kIn;
      if (!in) std::fill(ok.begin(), ok.end(), 1);
      if (f.members)
        for (uint32_t p : *f.members)
          if (p < ok.size()) ok[p] = in;
      continue;
    }
    const PersonColumn* col = pt.Column(f.property);
    const bool absent_ok = AbsentMatches(f);
    for (uint32_t p = 0; p < pt.size(); p++) {
      if (!pt.IsPerson(p)) continue;  // only roots are persons
      const PropValue* v = col ? col->Get(p) : nullptr;
      ok[p] = v ? FilterMatchesValue(f, *v) : absent_ok;
    }
  }
}

std::vector<uint8_t> FilterSet::PersonVerdicts() const {
  const PersonTable& pt = *snap_->persons;
  std::vector<uint8_t> ok(pt.size(), 0);
  for (uint32_t p = 0; p < pt.size(); p++) ok[p] = pt.IsPerson(p);
  for (size_t i = 0; i < filters_.size(); i++) {
    if (!filters_[i].person) continue;
    const auto& v = person_ok_[i];
    for (size_t p = 0; p < ok.size(); p++) ok[p] &= v[p];
  }
  return ok;
}

FilterSet::BlockEval FilterSet::ForBlock(const Block& b) const {
  BlockEval e;
  for (size_t i = 0; i < filters_.size(); i++) {
    const Filter& f = filters_[i];
    BlockEval::Term t;
    t.f = &f;
    if (f.person) {
      t.person_ok = &person_ok_[i];
      e.did = &b.did();
      e.person_of = &snap_->persons->person_of();
      e.always_true = false;
      e.terms.push_back(std::move(t));
      continue;
    }
    t.col = b.prop(f.property);
    t.absent_ok = AbsentMatches(f);
    if (!t.col) {
      if (!t.absent_ok) {
        e.always_false = true;
        e.always_true = false;
      }
      continue;  // every row lacks it and the filter accepts that
    }
    if (!t.col->numeric) {
      t.code_ok.resize(t.col->dict.size());
      t.code_ok[0] = t.absent_ok;
      for (size_t c = 1; c < t.col->dict.size(); c++) {
        PropValue v{t.col->dict_kind[c], 0, t.col->dict[c]};
        if (v.kind == PropValue::kNum) v.num = std::strtod(v.str.c_str(), nullptr);
        t.code_ok[c] = FilterMatchesValue(f, v);
      }
    }
    e.always_true = false;
    e.terms.push_back(std::move(t));
  }
  return e;
}

bool FilterSet::BlockEval::Match(size_t row) const {
  if (always_false) return false;
  for (const auto& t : terms) {
    if (t.person_ok) {
      uint32_t d = (*did)[row];
      uint32_t p = d < person_of->size() ? (*person_of)[d] : d;
      if (p >= t.person_ok->size() || !(*t.person_ok)[p]) return false;
    } else if (!t.col->numeric) {
      if (!t.code_ok[t.col->CodeAt(row)]) return false;
    } else {
      if (!t.col->Present(row)) {
        if (!t.absent_ok) return false;
      } else if (!FilterMatchesValue(*t.f, PropValue::Num(t.col->NumAt(row)))) {
        return false;
      }
    }
  }
  return true;
}

uint32_t BreakdownResolver::Intern(const std::string& key) {
  auto [it, ins] = index_.try_emplace(key, static_cast<uint32_t>(keys_.size()));
  if (ins) {
    keys_.push_back(key);
    // Rebuild the JSON value from the key: parts separated by \x00, "\x01" = null.
    nlohmann::json v;
    std::vector<nlohmann::json> parts;
    size_t s = 0;
    while (true) {
      size_t e = key.find('\0', s);
      std::string part = key.substr(s, e == std::string::npos ? std::string::npos : e - s);
      parts.push_back(part == "\x01" ? nlohmann::json() : nlohmann::json(part));
      if (e == std::string::npos) break;
      s = e + 1;
    }
    values_.push_back(parts.size() == 1 ? parts[0] : nlohmann::json(parts));
  }
  return it->second;
}

uint32_t BreakdownResolver::ResolveRow(const Block& b, size_t row) {
  std::string key;
  bool all_absent = true;
  for (size_t k = 0; k < props_.size(); k++) {
    if (k) key += '\0';
    const PropValue* v = nullptr;
    PropValue tmp;
    if (props_[k].person) {
      uint32_t d = b.did()[row];
      uint32_t p = snap_->persons->PersonOf(d);
      v = snap_->persons->Prop(p, props_[k].name);
    } else if (const PropColumn* c = b.prop(props_[k].name); c && c->Present(row)) {
      tmp = c->Get(row);
      v = &tmp;
    }
    if (v) {
      key += v->AsString();
      all_absent = false;
    } else {
      key += "\x01";
    }
  }
  if (all_absent) return 0;
  return Intern(key);
}

void BreakdownResolver::Resolve(const Block& b, std::vector<uint32_t>* out) {
  out->assign(b.size(), 0);
  if (props_.empty()) return;
  if (props_.size() == 1 && !props_[0].person) {
    // Fast path: one event property, resolved per dictionary code.
    const PropColumn* c = b.prop(props_[0].name);
    if (!c) return;
    if (!c->numeric) {
      std::vector<uint32_t> map(c->dict.size(), 0);
      for (size_t i = 1; i < c->dict.size(); i++) map[i] = Intern(c->dict[i]);
      for (size_t i = 0; i < b.size(); i++) (*out)[i] = map[c->CodeAt(i)];
      return;
    }
  }
  for (size_t i = 0; i < b.size(); i++) (*out)[i] = ResolveRow(b, i);
}

void BreakdownResolver::ResolveBlock(const Block& b, BlockGroups* out) {
  *out = BlockGroups();
  if (props_.empty()) {
    out->table_mode_ = true;  // no column: every row is group 0
    return;
  }
  if (props_.size() == 1 && !props_[0].person) {
    const PropColumn* c = b.prop(props_[0].name);
    if (!c) {
      out->table_mode_ = true;
      return;
    }
    if (!c->numeric) {
      out->table_mode_ = true;
      out->col_ = c;
      out->table_.assign(c->dict.size(), 0);
      for (size_t i = 1; i < c->dict.size(); i++) out->table_[i] = Intern(c->dict[i]);
      return;
    }
  }
  Resolve(b, &out->rows_);
}

nlohmann::json BreakdownResolver::Value(uint32_t group) const {
  if (group == 0) {
    if (props_.size() <= 1) return nlohmann::json();
    return nlohmann::json(std::vector<nlohmann::json>(props_.size()));
  }
  return values_[group];
}

DayIndex::DayIndex(const TimeZone& tz, int32_t first_day, int32_t last_day) : first_(first_day) {
  for (int32_t d = first_day; d <= last_day + 1; d++) starts_.push_back(tz.DayStartMs(d));
}

int32_t DayIndex::Day(int64_t ts) const {
  auto it = std::upper_bound(starts_.begin(), starts_.end(), ts);
  return first_ + static_cast<int32_t>(it - starts_.begin()) - 1;
}

}  // namespace ns
