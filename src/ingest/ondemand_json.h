// Helpers of the ingest fast paths: simdjson On-Demand reading straight into native events
// (native_parser.cc, segmentio_protocol.cc). docs/decisions.md "simdjson On-Demand for ingest".
//
// The contract of every fast path: it either produces exactly what the nlohmann DOM path
// (the reference, which stays the only producer of error messages) would produce for the
// same input, or it gives up ("bails") and the caller runs the DOM path. It gives up on
// anything unusual: a JSON or simdjson error, a field of an unexpected type, any value the
// DOM path would reject. Well-formed traffic never reaches nlohmann; errors always do.
// Every value of the document is either read or checked by Validate(), so a document the
// fast path accepts is one nlohmann accepts too (tests/unit/ingest_fast_path_test.cc).
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <cstdint>
#include <string_view>
#include <vector>

#include "storage/event.h"

namespace ns::ondemand_json {

namespace od = simdjson::ondemand;

// How often this thread's fast paths produced a result or gave up (tests check that valid
// input takes the fast path; not a metric).
struct FastPathCounts {
  uint64_t taken = 0;
  uint64_t gave_up = 0;
};
FastPathCounts& ThreadFastPathCounts();

// A thread's reusable On-Demand parser and padded copy of the input (simdjson reads up to
// SIMDJSON_PADDING bytes past the end). Both grow to the largest document seen; a lease of
// a document over 8 MiB frees them when it ends, so one huge body does not keep memory on
// every worker thread. Reusing the copy matters for NDJSON chunks of megabytes: a fresh
// allocation of that size is fresh pages, and zeroing them cost ~9 % of the parse.
class ParserLease {
 public:
  explicit ParserLease(std::string_view doc);
  ~ParserLease();
  ParserLease(const ParserLease&) = delete;
  ParserLease& operator=(const ParserLease&) = delete;
  od::parser& parser() { return *parser_; }
  // The document's copy; the view of [offset, offset + len) of it, padded.
  simdjson::padded_string_view Padded(size_t offset, size_t len) const {
    return simdjson::padded_string_view(copy_ + offset, len, capacity_ - offset);
  }
  simdjson::padded_string_view Padded() const { return Padded(0, size_); }

 private:
  od::parser* parser_;
  char* copy_;
  size_t size_, capacity_;
  bool own_;      // a private parser and copy (re-entrant use)
  bool release_;  // free the thread's parser and copy at the end
};

// The deepest nesting of a value the fast paths read or validate, counting the value itself.
// They give up on deeper ones, so that they need no pass of their own over the whole body
// to bound the nesting (CheckJsonDepth was ~12 % of the Segment fast path): the DOM path then
// refuses the body with its message. Every value they read sits at most a few levels below
// the top, so what they accept nests no deeper than kMaxJsonDepth (static_assert in
// native_parser.cc). On-Demand itself never recurses (skipping a value counts brackets).
constexpr size_t kMaxValueDepth = 112;

// Reads every value below `v` (scalars parsed, strings unescaped), so that syntax errors in
// parts the mapping ignores are found as they would be by a full parse. False on any error
// and if `v` nests deeper than `levels` (kMaxValueDepth).
bool Validate(od::value v, size_t levels = kMaxValueDepth);

// A JSON number as nlohmann reads it: an int64, a uint64 (beyond int64 only), or a double.
struct Number {
  od::number_type type = od::number_type::signed_integer;
  int64_t i = 0;
  uint64_t u = 0;
  double d = 0;
  double AsDouble() const {
    return type == od::number_type::signed_integer     ? static_cast<double>(i)
           : type == od::number_type::unsigned_integer ? static_cast<double>(u)
                                                       : d;
  }
};
// Reads number `v`. Doubles come from std::from_chars on the token (correctly rounded, as
// nlohmann's strtod): simdjson 3.0.1 gets mantissas of more than 19 digits wrong
// ("0.1234567890123456789012" read as 0.0017...; found by tests/unit/ingest_fast_path_test).
// False on any error and for a double from_chars calls out of range (the DOM path decides).
bool ReadNumber(od::value v, Number* out);

// The property value of `v` as PropValueFromJson gives it for the same JSON: numbers as
// doubles (integers converted as nlohmann converts them), strings raw, true/false/null and
// nested objects/arrays as nlohmann's compact dump (nested values are re-read by nlohmann,
// so their text is byte-identical). False on any error and for a value nested deeper than
// kMaxValueDepth.
bool ToPropValue(od::value v, PropValue* out);

// The members of object `v` as properties, in nlohmann::json's order: sorted by key
// (std::map), a repeated key keeping its last value. False if `v` is not an object.
bool ReadObjectProps(od::value v, std::vector<Property>* out);

// Sorts by key and keeps the last of equal keys (stable), as a std::map filled in order does.
void SortKeepLast(std::vector<Property>* props);

// True if no key is empty or over 1024 bytes (the DOM path rejects those).
bool PlainKeys(const std::vector<Property>& props);

// The first property of `props` (sorted by key) whose key is not below `key`; a mutable
// vector gives a mutable iterator (PropMap inserts there). `compare`, not `<`: clang 14 cannot
// instantiate the rewritten `<=>` of a string and a string_view inside a template.
template <typename Props>
auto LowerBoundKey(Props& props, std::string_view key) {
  return std::lower_bound(props.begin(), props.end(), key,
                          [](const Property& p, std::string_view k) { return p.key.compare(k) < 0; });
}

// A property list being built with nlohmann::json object semantics (contains / insert if
// absent / overwrite) on top of a sorted base, kept sorted: a key is inserted where the
// binary search that looked for it stopped (a few moves), where appending and sorting at the
// end cost ~10 % of the Segment fast path. Finish() returns it sorted by key.
class PropMap {
 public:
  explicit PropMap(std::vector<Property> sorted_base) : props_(std::move(sorted_base)) {}
  PropValue* Find(std::string_view key);
  bool Contains(std::string_view key) { return Find(key) != nullptr; }
  void SetIfAbsent(std::string_view key, PropValue v);
  void Set(std::string_view key, PropValue v);
  std::vector<Property> Finish() && { return std::move(props_); }

 private:
  std::vector<Property>::iterator LowerBound(std::string_view key);
  std::vector<Property> props_;  // sorted by key, keys unique
};

}  // namespace ns::ondemand_json
