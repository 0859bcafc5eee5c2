// Shared types of the wire-compatible collection protocols (Segment, PostHog, Sensors
// Data): the parts of an HTTP request a protocol parser needs, and what it returns. The
// parsers (segmentio_protocol.h, posthog_protocol.h, sensors_protocol.h) turn a request into
// native events (storage/event.h) with the same per-event error policy as the native API
// (a bad event rejects only itself); the HTTP layer (server/collect_routes.cc) resolves the
// key, stores the events and answers in the protocol's own response format.
// docs/collection.md has the field-by-field mapping of every protocol.
//
// Contract for every parser: any byte string in any field is a valid input; the parser
// returns a Status (never throws, never crashes, allocates at most a bounded multiple of
// limits.max_body_bytes).
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "core/time_zone.h"
#include "ingest/native_parser.h"

namespace ns {

// One collection request as the HTTP layer received it. Views point into memory owned by
// the caller for the duration of the parse call.
struct CollectRequest {
  std::string_view path;          // URL path without the query string: "/v1/track", "/batch/", "/sa"
  std::string_view method;        // "GET" or "POST"
  std::string_view body;          // raw body: JSON, form-urlencoded, gzip, base64, ...
  std::string_view content_type;  // MIME type, lower case, without parameters ("" if none)
  std::string content_encoding;   // Content-Encoding header as sent ("" if none)
  std::vector<std::pair<std::string, std::string>> query;  // URL-decoded query parameters
  std::string basic_user;                                  // user name of "Authorization: Basic ..." ("" if none)
  std::string bearer;                                      // token of "Authorization: Bearer ..." ("" if none)
  std::string remote_ip;                                   // peer address, used where a protocol records the client IP

  // First query parameter named `name` ("" if absent).
  std::string Query(std::string_view name) const;
};

// Where a request's API key was found (for error messages).
enum class KeySource { kNone, kBasicAuth, kBearer, kBody, kQuery };

// The result of parsing a collection request.
struct CollectResult {
  std::string key;  // the API key found in the request ("" if none)
  KeySource key_source = KeySource::kNone;
  std::string project_name;  // Sensors Data: ?project=NAME ("" if absent)
  ParsedBatch batch;         // events and per-event errors (index = position in the batch)
  size_t received = 0;       // number of event records in the request
};

// Called by a parser once it has found the request's key (and, for Sensors Data, the
// project name), before any event is converted: returns the time zone of the key's project
// (used for timestamps without an offset; nullptr keeps the parser's default), or an error
// (Unauthenticated, ...) that the parser returns unchanged. Lets the HTTP layer authenticate
// keys that are inside the body without parsing the body twice.
using KeyResolver = std::function<StatusOr<const TimeZone*>(const CollectResult& found)>;

// --- Helpers shared by the protocol parsers ---

// Parses a JSON payload; InvalidArgument naming `what` ("body", "data_list") and the byte
// position, line and column of malformed input.
StatusOr<nlohmann::json> ParseJsonPayload(std::string_view text, const std::string& what);

// A time value: an ISO-8601 string (without an offset: local time in tz) or epoch
// milliseconds. InvalidArgument naming `field` otherwise.
StatusOr<int64_t> TimestampFromJson(const nlohmann::json& v, const std::string& field, const TimeZone& tz);

// event_ts + (received_at - sent_at): a client time corrected by the client's clock skew
// (Segment: receivedAt - (sentAt - originalTimestamp); PostHog: now + (timestamp - sent_at)).
// InvalidArgument naming `field` if the result overflows.
StatusOr<int64_t> CorrectClockSkew(int64_t event_ts, int64_t sent_at, int64_t received_at, const std::string& field);

// An identifier: a string, or an integer (its decimal text). Absent (nullptr), null and ""
// give "". InvalidArgument naming `field` for any other type.
StatusOr<std::string> IdFromJson(const nlohmann::json* v, const std::string& field);

// The member `key` of object `obj`, or nullptr (also when obj is not an object).
const nlohmann::json* FindMember(const nlohmann::json& obj, std::string_view key);

// UnsupportedMediaType (InvalidArgument with that reason) unless the content type may carry
// JSON: application/json, text/plain, none, or application/x-www-form-urlencoded whose body
// starts with '{' or '[' (curl -d).
Status CheckJsonContentType(std::string_view content_type, std::string_view body);

// Decodes standard or URL-safe base64 (RFC 4648); padding optional, CR, LF and tab
// skipped; a space is read as '+' (form decoding turns an unescaped '+' into a space).
// InvalidArgument on any other character or a truncated final quantum.
StatusOr<std::string> Base64Decode(std::string_view in);

// Standard base64 with padding (what the SDKs send; for tests and load generators).
std::string Base64Encode(std::string_view in);

// ResourceExhausted "<what> is N bytes, over the limit of M" when size > limits.max_body_bytes.
Status CheckBodySize(size_t size, const IngestLimits& limits, std::string_view what = "request body");

// Records a per-event error (code invalid_timestamp or invalid_event) for event `index`.
void RejectEvent(ParsedBatch* out, size_t index, const Status& st, bool timestamp);

// Calls `resolve` (if set) with what the parser found; the zone to convert events with.
StatusOr<const TimeZone*> ResolveZone(const KeyResolver& resolve, const CollectResult& found, const TimeZone& fallback);

// The size of event `j` for the per-event limit, measured (by serialising it) only when
// `measure` is true (the body is larger than the limit); 0 otherwise.
size_t EventBytes(const nlohmann::json& j, bool measure);

// If `body` starts with the gzip magic bytes, inflates it (bounded by max_out); otherwise
// returns it unchanged. `storage` keeps the inflated bytes alive.
StatusOr<std::string_view> MaybeGunzip(std::string_view body, size_t max_out, std::string* storage);

}  // namespace ns
