// The native ingestion format (POST /api/v1/events, NDJSON import): JSON -> Event with
// validation. Policy (docs/decisions.md): a bad event rejects only itself; whole-body
// problems (malformed JSON, wrong top-level shape, body too large) reject the request.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "storage/event.h"

namespace ns {

struct IngestLimits {
  size_t max_event_bytes = 1u << 20;    // one event's JSON
  size_t max_body_bytes = 20u << 20;    // one request body, after decompression
  int64_t max_future_ms = 86'400'000;   // timestamps later than now + this are rejected
  int64_t min_ts_ms = 946'684'800'000;  // 2000-01-01T00:00:00Z; a project's earliest_event_date moves it
  size_t max_name_chars = 200;
  size_t max_distinct_id_chars = 200;
};

struct EventError {
  size_t index = 0;   // position of the event in the batch (0-based); NDJSON: line - 1
  std::string code;   // invalid_event | event_too_large | invalid_timestamp
  std::string field;  // "events[3].timestamp"
  std::string message;
};

struct ParsedBatch {
  std::vector<Event> events;
  std::vector<EventError> errors;
};

// Parses a body: a JSON array of events, {"events":[...]}, or (ndjson) one event per line.
// Well-formed events are read with simdjson On-Demand straight into Events; a body (or an
// NDJSON line) with anything unusual is read by ParseNativeBatchDom, which gives every error.
StatusOr<ParsedBatch> ParseNativeBatch(std::string_view body, bool ndjson, const TimeZone& tz, int64_t now_ms,
                                       const IngestLimits& limits);
// The same through nlohmann::json: the reference the fast path is tested against, and the
// path of every body the fast path gives up on (ondemand_json.h).
StatusOr<ParsedBatch> ParseNativeBatchDom(std::string_view body, bool ndjson, const TimeZone& tz, int64_t now_ms,
                                          const IngestLimits& limits);

// Converts one JSON event; `where` prefixes field names ("events[3]").
// On failure returns the error (its field() names the offending field).
Status EventFromJson(const nlohmann::json& j, const std::string& where, const TimeZone& tz, int64_t now_ms,
                     const IngestLimits& limits, Event* out);

// Validates and converts one event `j` of a batch (its position `index`, field prefix
// `where`): appends it to out->events, or its error to out->errors (event_too_large when
// approx_bytes > limits.max_event_bytes; invalid_timestamp or invalid_event otherwise).
// True if the event was added. Shared by the native and the collection protocol parsers.
bool AddEvent(const nlohmann::json& j, size_t index, const std::string& where, const TimeZone& tz, int64_t now_ms,
              const IngestLimits& limits, size_t approx_bytes, ParsedBatch* out);

// The InvalidArgument for a JSON parse error in `body`: byte position, line and column,
// prefixed by `prefix` ("line 3: ").
Status JsonError(const nlohmann::json::parse_error& e, std::string_view body, const std::string& prefix);
// The same for the other exceptions json::parse throws (out_of_range: a number beyond a
// double, "1e999"): catch json::parse_error first, then json::exception with this one.
Status JsonError(const nlohmann::json::exception& e, std::string_view body, const std::string& prefix);

// Deepest nesting of arrays and objects accepted in a JSON request (events, collection
// payloads, queries). nlohmann::json parses iteratively, but serialising a value (a nested
// property is stored as its JSON text) recurses once per level: a 200 KB body of 100,000
// '[' overflowed a worker thread's stack and killed the server (found while fuzzing).
constexpr size_t kMaxJsonDepth = 128;
// InvalidArgument (prefixed by `prefix`) if `text` nests arrays/objects deeper than
// kMaxJsonDepth; one pass over the bytes, call it before json::parse.
Status CheckJsonDepth(std::string_view text, const std::string& prefix);
// True if `text` nests arrays/objects at most max_depth levels deep (CheckJsonDepth's pass).
bool JsonNestingAtMost(std::string_view text, size_t max_depth);

// Validates a timestamp against the limits; message says why it was rejected.
Status CheckTimestamp(int64_t ts_ms, int64_t now_ms, const IngestLimits& limits, const std::string& field);

// Converts a JSON value to a property value (objects and arrays keep their JSON text).
PropValue PropValueFromJson(const nlohmann::json& v);
// The inverse: numbers and strings as themselves, kJson text parsed back.
nlohmann::json PropValueToJson(const PropValue& v);

// An event as the fast paths (ondemand_json.h) read it, before EventFromJson's checks.
struct FastEventFields {
  std::string event;
  std::string distinct_id;
  bool has_uuid = false;
  std::string_view uuid;
  int64_t ts_ms = 0;
  std::vector<Property> props;     // sorted by key, keys unique
  std::vector<Property> set;       // the event's top-level $set, sorted, keys unique
  std::vector<Property> set_once;  // the same for $set_once
};
// EventFromJson's checks and identity effects on fields already read: ids, uuid,
// timestamp, property names, $anon_distinct_id, a $create_alias's alias, $set/$set_once
// inside properties, then the top-level ones. False where EventFromJson would return an
// error (the fast path then gives up and the DOM path reports it).
bool FinishFastEvent(FastEventFields&& f, int64_t now_ms, const IngestLimits& limits, Event* out);

// Number of UTF-8 code points in s (s is valid UTF-8).
size_t Utf8Length(std::string_view s);
// Byte offset of the first invalid UTF-8 sequence in s, or npos if s is valid.
size_t FindInvalidUtf8(std::string_view s);
// s with every byte of an invalid UTF-8 sequence written as \xNN (for error messages that
// quote input).
std::string EscapeInvalidUtf8(std::string_view s);

}  // namespace ns
