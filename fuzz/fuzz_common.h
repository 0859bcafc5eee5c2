// Shared helpers of the libFuzzer targets (fuzz/*_fuzz.cc): a fixed clock, the time zones,
// small limits (so size checks are reachable with short inputs), and invariant checks on
// what a parser returns. A violated invariant aborts, which libFuzzer records as a crash.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/time_zone.h"
#include "ingest/collect_protocol.h"
#include "ingest/native_parser.h"
#include "storage/binary_io.h"
#include "storage/event.h"

namespace nsfuzz {

// 2026-11-22T04:00:00Z: fixed, so every crash reproduces.
constexpr int64_t kNowMs = 1'795'320'000'000;

inline void Fail(const char* what, std::string_view detail = {}) {
  std::fprintf(stderr, "INVARIANT VIOLATED: %s: %.*s\n", what,
               static_cast<int>(detail.size() > 400 ? 400 : detail.size()), detail.data());
  std::abort();
}
inline void Require(bool cond, const char* what, std::string_view detail = {}) {
  if (!cond) Fail(what, detail);
}

// A zone with DST (New York), one without (Shanghai) and UTC, picked by a byte.
inline const ns::TimeZone& Zone(uint8_t pick) {
  static const ns::TimeZone zones[3] = {*ns::TimeZone::Load("UTC"), *ns::TimeZone::Load("Asia/Shanghai"),
                                        *ns::TimeZone::Load("America/New_York")};
  return zones[pick % 3];
}

// Small limits: the size and length checks are reachable with inputs of a few KB.
inline ns::IngestLimits Limits() {
  ns::IngestLimits l;
  l.max_event_bytes = 2048;
  l.max_body_bytes = 256 << 10;
  return l;
}

inline bool ValidUtf8(std::string_view s) { return ns::FindInvalidUtf8(s) == std::string_view::npos; }

inline void CheckProps(const std::vector<ns::Property>& props, const char* what) {
  for (const auto& p : props) {
    Require(ValidUtf8(p.key), what, p.key);
    if (p.value.kind != ns::PropValue::kNum) Require(ValidUtf8(p.value.str), what, p.value.str);
  }
  // The WAL / identity-log encoding must round-trip whatever a parser produces.
  ns::BinWriter w;
  ns::EncodeProperties(w, props);
  ns::BinReader r(w.str());
  std::vector<ns::Property> back;
  Require(ns::DecodeProperties(r, &back) && r.remaining() == 0 && back.size() == props.size(),
          "property encoding round trip");
  for (size_t i = 0; i < props.size(); i++) {
    Require(back[i].key == props[i].key && back[i].value.kind == props[i].value.kind, "property round trip: key/kind");
    if (props[i].value.kind == ns::PropValue::kNum) {
      Require(back[i].value.num == props[i].value.num || (back[i].value.num != back[i].value.num),
              "property round trip: number");
    } else {
      Require(back[i].value.str == props[i].value.str, "property round trip: string");
    }
  }
}

// What every parser promises about its output (collect_protocol.h, native_parser.h):
// events have a non-empty, valid UTF-8 name and distinct id within the limits and a
// plausible timestamp; every error message is valid UTF-8 (responses are JSON).
inline void CheckBatch(const ns::ParsedBatch& b, const ns::IngestLimits& limits, size_t records) {
  for (const auto& e : b.events) {
    Require(!e.event.empty() && ValidUtf8(e.event), "event name empty or invalid UTF-8", e.event);
    Require(ns::Utf8Length(e.event) <= limits.max_name_chars, "event name over the limit", e.event);
    Require(!e.distinct_id.empty() && ValidUtf8(e.distinct_id), "distinct id empty or invalid UTF-8", e.distinct_id);
    Require(ns::Utf8Length(e.distinct_id) <= limits.max_distinct_id_chars, "distinct id over the limit", e.distinct_id);
    Require(e.ts_ms >= limits.min_ts_ms && e.ts_ms <= kNowMs + limits.max_future_ms, "timestamp out of range",
            std::to_string(e.ts_ms));
    for (const auto& m : e.merge_with) Require(ValidUtf8(m), "merge id invalid UTF-8", m);
    CheckProps(e.props, "event property invalid UTF-8");
    CheckProps(e.person_set, "$set property invalid UTF-8");
    CheckProps(e.person_set_once, "$set_once property invalid UTF-8");
  }
  for (const auto& err : b.errors) {
    Require(ValidUtf8(err.message) && ValidUtf8(err.field) && ValidUtf8(err.code), "error text invalid UTF-8",
            err.message);
    Require(!err.code.empty() && !err.message.empty(), "error without code or message", err.message);
  }
  if (records != static_cast<size_t>(-1))
    Require(b.events.size() + b.errors.size() <= records, "more events + errors than records in the request");
}

inline void CheckStatus(const ns::Status& st) {
  Require(!st.ok(), "error status is OK");
  Require(ValidUtf8(st.message()) && ValidUtf8(st.field()), "status message invalid UTF-8", st.message());
}

// Collection request fuzz input: a first line "METHOD PATH[?QUERY] [CONTENT-TYPE] [basic=USER] [bearer=TOKEN]",
// then the body. Query parameters are split on & and = and percent-decoded, as the HTTP layer does.
struct RequestInput {
  std::string path, method, content_type;
  ns::CollectRequest req;
};

inline std::string PercentDecode(std::string_view s) {
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  for (size_t i = 0; i < s.size(); i++) {
    if (s[i] == '+')
      out += ' ';
    else if (s[i] == '%' && i + 2 < s.size() && hex(s[i + 1]) >= 0 && hex(s[i + 2]) >= 0) {
      out += static_cast<char>(hex(s[i + 1]) * 16 + hex(s[i + 2]));
      i += 2;
    } else
      out += s[i];
  }
  return out;
}

inline void ParseRequestInput(std::string_view data, RequestInput* in) {
  size_t nl = data.find('\n');
  std::string_view head = nl == std::string_view::npos ? data : data.substr(0, nl);
  std::string_view body = nl == std::string_view::npos ? std::string_view() : data.substr(nl + 1);
  std::vector<std::string_view> words;
  size_t p = 0;
  while (p < head.size()) {
    size_t sp = head.find(' ', p);
    if (sp == std::string_view::npos) sp = head.size();
    if (sp > p) words.push_back(head.substr(p, sp - p));
    p = sp + 1;
  }
  in->method = words.size() > 0 ? std::string(words[0]) : "POST";
  std::string_view target = words.size() > 1 ? words[1] : std::string_view("/");
  size_t q = target.find('?');
  in->path = std::string(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view qs = target.substr(q + 1);
    size_t s = 0;
    while (s <= qs.size()) {
      size_t amp = qs.find('&', s);
      if (amp == std::string_view::npos) amp = qs.size();
      std::string_view kv = qs.substr(s, amp - s);
      if (!kv.empty()) {
        size_t eq = kv.find('=');
        in->req.query.emplace_back(PercentDecode(kv.substr(0, eq)),
                                   eq == std::string_view::npos ? std::string() : PercentDecode(kv.substr(eq + 1)));
      }
      s = amp + 1;
    }
  }
  for (size_t i = 2; i < words.size(); i++) {
    if (words[i].rfind("basic=", 0) == 0)
      in->req.basic_user = std::string(words[i].substr(6));
    else if (words[i].rfind("bearer=", 0) == 0)
      in->req.bearer = std::string(words[i].substr(7));
    else
      in->content_type = std::string(words[i]);
  }
  in->req.path = in->path;
  in->req.method = in->method;
  in->req.content_type = in->content_type;
  in->req.body = body;
  in->req.remote_ip = "127.0.0.1";
}

inline void CheckCollect(const ns::StatusOr<ns::CollectResult>& r, const ns::IngestLimits& limits) {
  if (!r.ok()) return CheckStatus(r.status());
  CheckBatch(r->batch, limits, static_cast<size_t>(-1));  // a record may map to several events
}

// The whole of a parse result as text (doubles by their bits), to compare the simdjson fast
// path with the nlohmann DOM path (ingest/ondemand_json.h): they must agree on every input.
inline std::string Describe(const ns::ParsedBatch& b) {
  std::string out;
  auto props = [&](const std::vector<ns::Property>& ps) {
    for (const auto& p : ps) {
      out += p.key + "=" + std::to_string(p.value.kind) + ":";
      if (p.value.kind == ns::PropValue::kNum) {
        uint64_t bits;
        std::memcpy(&bits, &p.value.num, sizeof bits);
        out += std::to_string(bits);
      } else {
        out += p.value.str;
      }
      out += ";";
    }
    out += "|";
  };
  for (const auto& e : b.events) {
    out += e.event + "|" + e.distinct_id + "|" + std::to_string(e.ts_ms) + "|" +
           (e.has_uuid ? e.uuid.ToString() : std::string("-")) + "|";
    props(e.props);
    props(e.person_set);
    props(e.person_set_once);
    for (const auto& m : e.merge_with) out += m + ",";
    out += "\n";
  }
  for (const auto& e : b.errors) out += std::to_string(e.index) + " " + e.code + " " + e.field + " " + e.message + "\n";
  return out;
}
template <typename T>
std::string DescribeResult(const ns::StatusOr<T>& r, const ns::ParsedBatch& (*batch)(const T&)) {
  if (!r.ok()) return "status " + r.status().ToString() + " " + r.status().field();
  return Describe(batch(*r));
}
inline void RequireSameAsDom(const ns::StatusOr<ns::ParsedBatch>& fast, const ns::StatusOr<ns::ParsedBatch>& dom) {
  auto id = +[](const ns::ParsedBatch& b) -> const ns::ParsedBatch& { return b; };
  const std::string a = DescribeResult(fast, id), b = DescribeResult(dom, id);
  Require(a == b, "fast path differs from the DOM path", a + " <> " + b);
}
inline void RequireSameAsDom(const ns::StatusOr<ns::CollectResult>& fast, const ns::StatusOr<ns::CollectResult>& dom) {
  auto batch = +[](const ns::CollectResult& r) -> const ns::ParsedBatch& { return r.batch; };
  std::string a = DescribeResult(fast, batch), b = DescribeResult(dom, batch);
  if (fast.ok()) a += fast->key + std::to_string(static_cast<int>(fast->key_source)) + std::to_string(fast->received);
  if (dom.ok()) b += dom->key + std::to_string(static_cast<int>(dom->key_source)) + std::to_string(dom->received);
  Require(a == b, "fast path differs from the DOM path", a + " <> " + b);
}

}  // namespace nsfuzz
