#include "ingest/ondemand_json.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cstring>

#include "ingest/native_parser.h"

namespace ns::ondemand_json {

namespace {

struct ThreadParser {
  od::parser* parser = nullptr;
  char* copy = nullptr;
  size_t capacity = 0;
  bool busy = false;
  ~ThreadParser() {
    delete parser;
    delete[] copy;
  }
};
thread_local ThreadParser tls;
constexpr size_t kKeepBytes = 8u << 20;

}  // namespace

FastPathCounts& ThreadFastPathCounts() {
  thread_local FastPathCounts counts;
  return counts;
}

ParserLease::ParserLease(std::string_view doc) : size_(doc.size()), capacity_(doc.size() + simdjson::SIMDJSON_PADDING) {
  own_ = tls.busy;  // re-entrant use (not expected): private buffers
  release_ = !own_ && doc.size() > kKeepBytes;
  if (own_) {
    parser_ = new od::parser();
    copy_ = new char[capacity_];
  } else {
    tls.busy = true;
    if (tls.parser == nullptr) tls.parser = new od::parser();
    if (tls.capacity < capacity_) {
      delete[] tls.copy;
      tls.copy = new char[capacity_];
      tls.capacity = capacity_;
    }
    parser_ = tls.parser;
    copy_ = tls.copy;
  }
  if (!doc.empty()) std::memcpy(copy_, doc.data(), doc.size());  // an empty view may have no data()
  std::memset(copy_ + doc.size(), 0, simdjson::SIMDJSON_PADDING);
}

ParserLease::~ParserLease() {
  if (own_) {
    delete parser_;
    delete[] copy_;
    return;
  }
  tls.busy = false;
  if (release_) {
    delete tls.parser;
    delete[] tls.copy;
    tls = ThreadParser{};
  }
}

bool Validate(od::value v, size_t levels) {
  od::json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case od::json_type::object: {
      od::object o;
      if (levels == 0 || v.get_object().get(o)) return false;
      for (auto f : o) {
        od::field field;
        std::string_view key;
        if (std::move(f).get(field) || field.unescaped_key().get(key) || !Validate(field.value(), levels - 1))
          return false;
      }
      return true;
    }
    case od::json_type::array: {
      od::array a;
      if (levels == 0 || v.get_array().get(a)) return false;
      for (auto e : a) {
        od::value el;
        if (e.get(el) || !Validate(el, levels - 1)) return false;
      }
      return true;
    }
    case od::json_type::string: {
      std::string_view s;
      return !v.get_string().get(s);
    }
    case od::json_type::number: {
      Number n;
      return ReadNumber(v, &n);
    }
    case od::json_type::boolean: {
      bool b;
      return !v.get_bool().get(b);
    }
    case od::json_type::null: {
      bool is_null = false;
      return !v.is_null().get(is_null) && is_null;
    }
  }
  return false;
}

bool ReadNumber(od::value v, Number* out) {
  const std::string_view token = v.raw_json_token();  // before get_number() consumes the value
  od::number n;
  if (v.get_number().get(n)) return false;
  out->type = n.get_number_type();
  switch (out->type) {
    case od::number_type::signed_integer: out->i = n.get_int64(); return true;
    case od::number_type::unsigned_integer: out->u = n.get_uint64(); return true;
    default: {
      const auto r = std::from_chars(token.data(), token.data() + token.size(), out->d);
      return r.ec == std::errc();
    }
  }
}

bool ToPropValue(od::value v, PropValue* out) {
  od::json_type t;
  if (v.type().get(t)) return false;
  switch (t) {
    case od::json_type::string: {
      std::string_view s;
      if (v.get_string().get(s)) return false;
      *out = PropValue::Str(std::string(s));
      return true;
    }
    case od::json_type::number: {
      // nlohmann keeps integers as int64/uint64 and converts them to double when read; the
      // conversion rounds as simdjson's does. Integers beyond uint64 are an error here (the
      // DOM path reads them as doubles): the caller bails.
      Number n;
      if (!ReadNumber(v, &n)) return false;
      *out = PropValue::Num(n.AsDouble());
      return true;
    }
    case od::json_type::boolean: {
      bool b;
      if (v.get_bool().get(b)) return false;
      *out = PropValue::Json(b ? "true" : "false");
      return true;
    }
    case od::json_type::null: {
      bool is_null = false;
      if (v.is_null().get(is_null) || !is_null) return false;
      *out = PropValue::Json("null");
      return true;
    }
    case od::json_type::object:
    case od::json_type::array: {
      // Nested values keep nlohmann's compact dump (sorted keys, its number format): read the
      // raw text again with nlohmann. Rare on the hot path; exact by construction.
      std::string_view raw;
      if (t == od::json_type::object) {
        od::object o;
        if (v.get_object().get(o) || o.raw_json().get(raw)) return false;
      } else {
        od::array a;
        if (v.get_array().get(a) || a.raw_json().get(raw)) return false;
      }
      if (!JsonNestingAtMost(raw, kMaxValueDepth)) return false;  // dump() recurses per level
      try {
        *out = PropValue::Json(nlohmann::json::parse(raw).dump());
      } catch (const nlohmann::json::exception&) {
        return false;
      }
      return true;
    }
  }
  return false;
}

void SortKeepLast(std::vector<Property>* props) {
  std::vector<Property>& v = *props;
  if (v.size() < 2) return;
  if (v.size() <= 32) {
    // A stable insertion sort (no buffer to allocate, as stable_sort's), moving each
    // out-of-place property once into the hole rather than swapping it down.
    for (size_t i = 1; i < v.size(); i++) {
      if (!(std::string_view(v[i].key) < std::string_view(v[i - 1].key))) continue;
      Property p = std::move(v[i]);
      size_t k = i;
      for (; k > 0 && std::string_view(p.key) < std::string_view(v[k - 1].key); k--) v[k] = std::move(v[k - 1]);
      v[k] = std::move(p);
    }
  } else {
    std::stable_sort(v.begin(), v.end(), [](const Property& a, const Property& b) { return a.key < b.key; });
  }
  // Of each run of equal keys keep the last (nlohmann assigns a repeated key again).
  size_t out = 0;
  for (size_t i = 0; i < v.size(); i++) {
    if (i + 1 < v.size() && v[i + 1].key == v[i].key) continue;
    if (out != i) v[out] = std::move(v[i]);
    out++;
  }
  v.resize(out);
}

bool ReadObjectProps(od::value v, std::vector<Property>* out) {
  od::object o;
  if (v.get_object().get(o)) return false;
  out->clear();
  for (auto f : o) {
    od::field field;
    std::string_view key;
    if (std::move(f).get(field) || field.unescaped_key().get(key)) return false;
    // Growing 1, 2, 4 was ~5 % of the fast paths (more would cost an NDJSON chunk's memory).
    if (out->empty()) out->reserve(4);
    Property& p = out->emplace_back();  // built in place: no temporary to move in
    p.key.assign(key);
    if (!ToPropValue(field.value(), &p.value)) return false;
  }
  SortKeepLast(out);
  return true;
}

bool PlainKeys(const std::vector<Property>& props) {
  for (const Property& p : props)
    if (p.key.empty() || p.key.size() > 1024) return false;
  return true;
}

std::vector<Property>::iterator PropMap::LowerBound(std::string_view key) { return LowerBoundKey(props_, key); }

PropValue* PropMap::Find(std::string_view key) {
  auto it = LowerBound(key);
  return it != props_.end() && it->key == key ? &it->value : nullptr;
}

void PropMap::SetIfAbsent(std::string_view key, PropValue v) {
  auto it = LowerBound(key);
  if (it == props_.end() || it->key != key) props_.insert(it, Property{std::string(key), std::move(v)});
}

void PropMap::Set(std::string_view key, PropValue v) {
  auto it = LowerBound(key);
  if (it != props_.end() && it->key == key)
    it->value = std::move(v);
  else
    props_.insert(it, Property{std::string(key), std::move(v)});
}

}  // namespace ns::ondemand_json
