#include "ingest/native_parser.h"

#include <algorithm>
#include <cstdint>
#include <optional>

#include <nlohmann/json.hpp>

#include "ingest/ondemand_json.h"

namespace ns {

using nlohmann::json;

size_t Utf8Length(std::string_view s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

size_t FindInvalidUtf8(std::string_view s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else
      return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; k++) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string EscapeInvalidUtf8(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    size_t bad = FindInvalidUtf8(s);
    if (bad == std::string_view::npos) {
      out.append(s);
      break;
    }
    out.append(s.substr(0, bad));
    char buf[8];
    std::snprintf(buf, sizeof buf, "\\x%02X", static_cast<unsigned char>(s[bad]));
    out += buf;
    s.remove_prefix(bad + 1);
  }
  return out;
}

PropValue PropValueFromJson(const json& v) {
  if (v.is_number()) return PropValue::Num(v.get<double>());
  if (v.is_string()) return PropValue::Str(v.get<std::string>());
  return PropValue::Json(v.dump());
}

json PropValueToJson(const PropValue& v) {
  if (v.kind == PropValue::kNum) return v.num;
  if (v.kind == PropValue::kJson) return json::parse(v.str, nullptr, false);  // written by dump(): valid
  return v.str;
}

namespace {

// The earliest accepted day, YYYY-MM-DD (UTC): 2000-01-01 unless the project moved it.
std::string EarliestDate(const IngestLimits& limits) {
  const int64_t ms = limits.min_ts_ms, day_ms = 86'400'000;
  return FormatDate(static_cast<int32_t>(ms >= 0 ? ms / day_ms : -((-ms + day_ms - 1) / day_ms)));
}

}  // namespace

Status CheckTimestamp(int64_t ts_ms, int64_t now_ms, const IngestLimits& limits, const std::string& field) {
  if (ts_ms < limits.min_ts_ms)
    return InvalidArgument(field + ": timestamp " + FormatIsoUtc(ts_ms) + " is before " + EarliestDate(limits) +
                               " (rejected as implausible)",
                           field);
  if (ts_ms > now_ms + limits.max_future_ms)
    return InvalidArgument(field + ": timestamp " + FormatIsoUtc(ts_ms) +
                               " is more than 1 day in the future (server time " + FormatIsoUtc(now_ms) + ")",
                           field);
  return Status::OK();
}

namespace {

std::string TypeName(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::boolean: return "boolean";
    case json::value_t::string: return "string";
    case json::value_t::object: return "object";
    case json::value_t::array: return "array";
    default: return "number";
  }
}

Status PropsFromObject(const json& obj, const std::string& field, std::vector<Property>* out) {
  if (!obj.is_object()) return InvalidArgument(field + ": expected an object, got " + TypeName(obj), field);
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (it.key().empty()) return InvalidArgument(field + ": property names must not be empty", field);
    if (it.key().size() > 1024) return InvalidArgument(field + ": property name longer than 1024 bytes", field);
    out->push_back(Property{it.key(), PropValueFromJson(it.value())});
  }
  return Status::OK();
}

// Every id, wherever it comes from (distinct_id, $anon_distinct_id, alias): 1 to the limit of
// characters and no control characters (NUL included). Finding 12 of docs/reliability.md:
// ids arriving through merges skipped the limit.
Status CheckId(const std::string& id, const std::string& field, size_t max_chars) {
  size_t len = Utf8Length(id);
  if (len == 0 || len > max_chars)
    return InvalidArgument(
        field + ": must be 1 to " + std::to_string(max_chars) + " characters, got " + std::to_string(len), field);
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7f)
      return InvalidArgument(field + ": must not contain control characters (found byte " + std::to_string(c) + ")",
                             field);
  return Status::OK();
}

}  // namespace

Status EventFromJson(const json& j, const std::string& where, const TimeZone& tz, int64_t now_ms,
                     const IngestLimits& limits, Event* out) {
  if (!j.is_object()) return InvalidArgument(where + ": expected an event object, got " + TypeName(j), where);
  // event
  auto ev = j.find("event");
  if (ev == j.end()) return InvalidArgument(where + ".event: required field is missing", where + ".event");
  if (!ev->is_string())
    return InvalidArgument(where + ".event: expected a string, got " + TypeName(*ev), where + ".event");
  out->event = ev->get<std::string>();
  NS_RETURN_IF_ERROR(CheckId(out->event, where + ".event", limits.max_name_chars));
  // distinct_id
  auto did = j.find("distinct_id");
  if (did == j.end()) return InvalidArgument(where + ".distinct_id: required field is missing", where + ".distinct_id");
  if (did->is_string())
    out->distinct_id = did->get<std::string>();
  else if (did->is_number_integer())
    out->distinct_id = did->dump();
  else
    return InvalidArgument(where + ".distinct_id: expected a string, got " + TypeName(*did), where + ".distinct_id");
  NS_RETURN_IF_ERROR(CheckId(out->distinct_id, where + ".distinct_id", limits.max_distinct_id_chars));
  // uuid
  auto uid = j.find("uuid");
  if (uid != j.end() && !uid->is_null()) {
    if (!uid->is_string() || uid->get_ref<const std::string&>().empty() ||
        uid->get_ref<const std::string&>().size() > 200)
      return InvalidArgument(where + ".uuid: expected a non-empty string of at most 200 bytes", where + ".uuid");
    out->uuid = Uuid::FromClientId(uid->get_ref<const std::string&>());
    out->has_uuid = true;
  }
  // timestamp
  auto ts = j.find("timestamp");
  const std::string ts_field = where + ".timestamp";
  if (ts == j.end() || ts->is_null()) {
    out->ts_ms = now_ms;
  } else if (ts->is_number_unsigned() && ts->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return InvalidArgument(ts_field + ": epoch milliseconds " + ts->dump() + " are out of range", ts_field);
  } else if (ts->is_number_integer() || ts->is_number_unsigned()) {
    out->ts_ms = ts->get<int64_t>();
  } else if (ts->is_number_float()) {
    const double v = ts->get<double>();
    if (!(v > -9.2e18 && v < 9.2e18))
      return InvalidArgument(ts_field + ": epoch milliseconds " + ts->dump() + " are out of range", ts_field);
    out->ts_ms = static_cast<int64_t>(v);
  } else if (ts->is_string()) {
    auto t = ParseIsoTimestamp(ts->get_ref<const std::string&>(), tz);
    if (!t.ok()) return InvalidArgument(ts_field + ": " + t.status().message(), ts_field);
    out->ts_ms = *t;
  } else {
    return InvalidArgument(ts_field + ": expected an ISO-8601 string or epoch milliseconds, got " + TypeName(*ts),
                           ts_field);
  }
  NS_RETURN_IF_ERROR(CheckTimestamp(out->ts_ms, now_ms, limits, ts_field));
  // properties
  auto props = j.find("properties");
  if (props != j.end() && !props->is_null()) {
    NS_RETURN_IF_ERROR(PropsFromObject(*props, where + ".properties", &out->props));
    auto anon = props->find("$anon_distinct_id");
    if (anon != props->end() && anon->is_string() && !anon->get_ref<const std::string&>().empty()) {
      NS_RETURN_IF_ERROR(
          CheckId(anon->get<std::string>(), where + ".properties.$anon_distinct_id", limits.max_distinct_id_chars));
      out->merge_with.push_back(anon->get<std::string>());
    }
    if (out->event == "$create_alias") {
      auto alias = props->find("alias");
      if (alias != props->end() && alias->is_string()) {
        NS_RETURN_IF_ERROR(
            CheckId(alias->get<std::string>(), where + ".properties.alias", limits.max_distinct_id_chars));
        out->merge_with.push_back(alias->get<std::string>());
      }
    }
    for (const char* key : {"$set", "$set_once"}) {
      auto s = props->find(key);
      if (s != props->end() && s->is_object()) {
        NS_RETURN_IF_ERROR(PropsFromObject(*s, where + ".properties." + key,
                                           key[4] == '\0' ? &out->person_set : &out->person_set_once));
      }
    }
  }
  for (const char* key : {"$set", "$set_once"}) {
    auto s = j.find(key);
    if (s != j.end() && s->is_object())
      NS_RETURN_IF_ERROR(
          PropsFromObject(*s, where + "." + key, key[4] == '\0' ? &out->person_set : &out->person_set_once));
  }
  return Status::OK();
}

bool AddEvent(const json& j, size_t index, const std::string& where, const TimeZone& tz, int64_t now_ms,
              const IngestLimits& limits, size_t approx_bytes, ParsedBatch* out) {
  if (approx_bytes > limits.max_event_bytes) {
    out->errors.push_back({index, "event_too_large", where,
                           where + ": event is " + std::to_string(approx_bytes) + " bytes, over the limit of " +
                               std::to_string(limits.max_event_bytes)});
    return false;
  }
  Event e;
  Status st = EventFromJson(j, where, tz, now_ms, limits, &e);
  if (!st.ok()) {
    bool ts_error = st.field().size() >= 9 && st.field().compare(st.field().size() - 9, 9, "timestamp") == 0;
    out->errors.push_back({index, ts_error ? "invalid_timestamp" : "invalid_event", st.field(), st.message()});
    return false;
  }
  out->events.push_back(std::move(e));
  return true;
}

Status JsonError(const json::parse_error& e, std::string_view body, const std::string& prefix) {
  // nlohmann's message contains the byte position; add line/column for humans.
  size_t pos = e.byte > 0 ? e.byte - 1 : 0;
  size_t line = 1, col = 1;
  for (size_t i = 0; i < pos && i < body.size(); i++) {
    if (body[i] == '\n') {
      line++;
      col = 1;
    } else
      col++;
  }
  std::string what = EscapeInvalidUtf8(e.what());
  auto p = what.find("parse error");
  if (p != std::string::npos) what = what.substr(p);
  return InvalidArgument(prefix + "malformed JSON at byte " + std::to_string(pos) + " (line " + std::to_string(line) +
                         ", column " + std::to_string(col) + "): " + what);
}

Status JsonError(const json::exception& e, std::string_view body, const std::string& prefix) {
  // Not a syntax error: json::parse throws out_of_range (406) for a number that overflows a
  // double ("1e999"). Found by fuzz/native_json_fuzz; it used to escape as an exception (500).
  std::string what = EscapeInvalidUtf8(e.what());
  auto p = what.find("] ");
  if (p != std::string::npos) what = what.substr(p + 2);
  return InvalidArgument(prefix + "malformed JSON: " + what);
}

namespace {

// Bytes that matter to CheckJsonDepth outside a string and inside one.
struct DepthTables {
  bool outside[256] = {};
  bool inside[256] = {};
  constexpr DepthTables() {
    for (unsigned char c : {'"', '[', ']', '{', '}'}) outside[c] = true;
    inside[static_cast<unsigned char>('"')] = inside[static_cast<unsigned char>('\\')] = true;
  }
};
constexpr DepthTables kDepthTables;

}  // namespace

namespace {

// The offset of the bracket that opens level max_depth + 1, or npos if `text` nests no deeper
// than max_depth. Two tight loops that skip the bytes that do not matter (one branch per
// byte): it was ~11 % of the simdjson fast path's time as one loop with the string state in it.
size_t FirstTooDeep(std::string_view text, size_t max_depth) {
  size_t depth = 0;
  const auto* const begin = reinterpret_cast<const unsigned char*>(text.data());
  const auto* const end = begin + text.size();
  const auto* p = begin;
  while (true) {
    while (p < end && !kDepthTables.outside[*p]) p++;
    if (p >= end) break;
    const unsigned char c = *p++;
    if (c == '"') {  // skip the string; an unterminated one ends the text
      while (true) {
        while (p < end && !kDepthTables.inside[*p]) p++;
        if (p >= end) return std::string_view::npos;
        if (*p++ == '"') break;
        if (p < end) p++;  // the escaped byte
      }
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return static_cast<size_t>(p - 1 - begin);
    } else if (depth > 0) {
      depth--;
    }
  }
  return std::string_view::npos;
}

}  // namespace

Status CheckJsonDepth(std::string_view text, const std::string& prefix) {
  const size_t at = FirstTooDeep(text, kMaxJsonDepth);
  if (at == std::string_view::npos) return Status::OK();
  return InvalidArgument(prefix + "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels at byte " +
                         std::to_string(at));
}

bool JsonNestingAtMost(std::string_view text, size_t max_depth) {
  return FirstTooDeep(text, max_depth) == std::string_view::npos;
}

// The fast paths' own bound (ondemand_json.h) leaves room for the levels above the values
// they bound: a document they accept never nests deeper than the DOM path accepts.
static_assert(ondemand_json::kMaxValueDepth + 16 <= kMaxJsonDepth);

namespace {

// One NDJSON line (0-based `line`) through nlohmann: its event, or its error with the line's
// number; a blank line is neither. The reference path, and the fast path's fallback.
void ParseNdjsonLineDom(std::string_view text, size_t line, const TimeZone& tz, int64_t now_ms,
                        const IngestLimits& limits, ParsedBatch* out) {
  std::string where = "line " + std::to_string(line + 1);
  if (Status deep = CheckJsonDepth(text, where + ": "); !deep.ok()) {
    out->errors.push_back({line, "invalid_json", where, deep.message()});
  } else if (text.find_first_not_of(" \t") != std::string_view::npos) {
    try {
      json j = json::parse(text);
      AddEvent(j, line, where, tz, now_ms, limits, text.size(), out);
    } catch (const json::parse_error& e) {
      Status st = JsonError(e, text, where + ": ");
      out->errors.push_back({line, "invalid_json", where, st.message()});
    } catch (const json::exception& e) {  // out_of_range: a number beyond a double
      Status st = JsonError(e, text, where + ": ");
      out->errors.push_back({line, "invalid_json", where, st.message()});
    }
  }
}

}  // namespace

StatusOr<ParsedBatch> ParseNativeBatchDom(std::string_view body, bool ndjson, const TimeZone& tz, int64_t now_ms,
                                          const IngestLimits& limits) {
  if (body.size() > limits.max_body_bytes)
    return ResourceExhausted("request body is " + std::to_string(body.size()) + " bytes, over the limit of " +
                             std::to_string(limits.max_body_bytes));
  ParsedBatch out;
  if (ndjson) {
    size_t start = 0, line = 0;
    while (start < body.size()) {
      size_t end = body.find('\n', start);
      if (end == std::string_view::npos) end = body.size();
      std::string_view text = body.substr(start, end - start);
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      ParseNdjsonLineDom(text, line, tz, now_ms, limits, &out);
      start = end + 1;
      line++;
    }
    return out;
  }
  NS_RETURN_IF_ERROR(CheckJsonDepth(body, ""));
  json doc;
  try {
    doc = json::parse(body);
  } catch (const json::parse_error& e) {
    return JsonError(e, body, "");
  } catch (const json::exception& e) {  // out_of_range: a number beyond a double ("1e999")
    return JsonError(e, body, "");
  }
  const json* arr = &doc;
  std::string prefix = "events";
  if (doc.is_object()) {
    auto it = doc.find("events");
    if (it == doc.end()) {
      if (doc.contains("event")) {  // a single event object
        AddEvent(doc, 0, "event", tz, now_ms, limits, body.size(), &out);
        return out;
      }
      return InvalidArgument("body: expected a JSON array of events, {\"events\":[...]} or one event object", "events");
    }
    arr = &*it;
  }
  if (!arr->is_array()) return InvalidArgument("events: expected an array", "events");
  for (size_t i = 0; i < arr->size(); i++) {
    const json& j = (*arr)[i];
    size_t approx = limits.max_event_bytes < body.size() ? j.dump().size() : 0;
    AddEvent(j, i, prefix + "[" + std::to_string(i) + "]", tz, now_ms, limits, approx, &out);
  }
  return out;
}

// --- The fast path: simdjson On-Demand straight into Events (ondemand_json.h) ---

namespace {

namespace od = ondemand_json::od;

// CheckId without the message: true where CheckId returns OK.
bool IdOk(std::string_view id, size_t max_chars) {
  const size_t len = Utf8Length(id);
  if (len == 0 || len > max_chars) return false;
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

const PropValue* FindSorted(const std::vector<Property>& props, std::string_view key) {
  auto it = ondemand_json::LowerBoundKey(props, key);
  return it != props.end() && it->key == key ? &it->value : nullptr;
}

// Epoch milliseconds as EventFromJson reads a number: int64 as is, doubles truncated within
// +-9.2e18; false for what it rejects (uint64 beyond int64, out-of-range doubles).
bool ReadEpochMs(od::value v, int64_t* ms) {
  ondemand_json::Number n;
  if (!ondemand_json::ReadNumber(v, &n)) return false;
  switch (n.type) {
    case od::number_type::signed_integer: *ms = n.i; return true;
    case od::number_type::unsigned_integer: return false;  // only used beyond INT64_MAX
    default: {
      const double d = n.d;
      if (!(d > -9.2e18 && d < 9.2e18)) return false;
      *ms = static_cast<int64_t>(d);
      return true;
    }
  }
}

// One native event object, as EventFromJson maps it; false to give up (any error).
bool FastNativeEvent(od::value v, const TimeZone& tz, int64_t now_ms, const IngestLimits& limits, Event* out) {
  od::object obj;
  if (v.get_object().get(obj)) return false;
  FastEventFields f;
  bool has_event = false, has_did = false;
  enum { kNow, kValue, kText } ts_kind = kNow;
  std::string_view ts_text;
  for (auto member : obj) {
    od::field field;
    std::string_view key;
    if (std::move(member).get(field) || field.unescaped_key().get(key)) return false;
    od::value val = field.value();
    if (key == "event" || key == "distinct_id") {  // distinct_id as a number: the DOM path
      std::string_view s;
      if (val.get_string().get(s)) return false;
      (key[0] == 'e' ? f.event : f.distinct_id).assign(s);
      (key[0] == 'e' ? has_event : has_did) = true;
      continue;
    }
    od::json_type t;
    if (val.type().get(t)) return false;
    if (key == "uuid") {
      f.has_uuid = t != od::json_type::null;
      if (t == od::json_type::null) {
        bool is_null = false;
        if (val.is_null().get(is_null) || !is_null) return false;
      } else if (val.get_string().get(f.uuid)) {
        return false;
      }
    } else if (key == "timestamp") {
      if (t == od::json_type::null) {
        bool is_null = false;
        if (val.is_null().get(is_null) || !is_null) return false;
        ts_kind = kNow;
      } else if (t == od::json_type::number) {
        if (!ReadEpochMs(val, &f.ts_ms)) return false;
        ts_kind = kValue;
      } else {
        if (val.get_string().get(ts_text)) return false;
        ts_kind = kText;
      }
    } else if (key == "properties") {
      if (t == od::json_type::null) {
        if (!ondemand_json::Validate(val)) return false;
        f.props.clear();
      } else if (!ondemand_json::ReadObjectProps(val, &f.props)) {
        return false;
      }
    } else if (key == "$set" || key == "$set_once") {
      std::vector<Property>& dst = key.size() == 4 ? f.set : f.set_once;
      dst.clear();  // a repeated key: the last one counts; a non-object is ignored
      if (t == od::json_type::object ? !ondemand_json::ReadObjectProps(val, &dst) : !ondemand_json::Validate(val))
        return false;
    } else if (!ondemand_json::Validate(val)) {
      return false;
    }
  }
  if (!has_event || !has_did) return false;
  if (ts_kind == kNow) {
    f.ts_ms = now_ms;
  } else if (ts_kind == kText) {
    auto t = ParseIsoTimestamp(ts_text, tz);
    if (!t.ok()) return false;
    f.ts_ms = *t;
  }
  return FinishFastEvent(std::move(f), now_ms, limits, out);
}

// True if the whole document was read (nothing after the value).
bool AtEnd(od::document& doc) { return doc.current_location().error() == simdjson::OUT_OF_BOUNDS; }

// A JSON body (array, {"events":[...]} or one event): the batch, or nullopt to use the DOM path.
std::optional<ParsedBatch> FastNativeBody(std::string_view body, const TimeZone& tz, int64_t now_ms,
                                          const IngestLimits& limits) {
  // Over one event's limit the DOM path measures each event's serialisation.
  if (body.size() > limits.max_event_bytes) return std::nullopt;
  ondemand_json::ParserLease lease(body);
  od::document doc;
  od::json_type t;
  if (lease.parser().iterate(lease.Padded()).get(doc) || doc.type().get(t)) return std::nullopt;
  ParsedBatch out;
  auto read_events = [&](od::array arr) {
    // Room up front and each event read in place (as the Segment path): growing by
    // doubling moved each Event about once more. An event is rarely under 96 bytes.
    out.events.reserve(std::min<size_t>(body.size() / 96 + 1, 4096));
    for (auto element : arr) {
      od::value v;
      Event& e = out.events.emplace_back();  // a failure drops `out`
      if (element.get(v) || !FastNativeEvent(v, tz, now_ms, limits, &e)) return false;
    }
    return true;
  };
  if (t == od::json_type::array) {
    od::array arr;
    if (doc.get_array().get(arr) || !read_events(arr)) return std::nullopt;
  } else if (t == od::json_type::object) {
    od::object obj;
    if (doc.get_object().get(obj)) return std::nullopt;
    int arrays = 0;
    for (auto member : obj) {
      od::field field;
      std::string_view key;
      if (std::move(member).get(field) || field.unescaped_key().get(key)) return std::nullopt;
      if (key != "events") {
        if (!ondemand_json::Validate(field.value())) return std::nullopt;
        continue;
      }
      od::array arr;
      if (++arrays > 1 || field.value().get_array().get(arr) || !read_events(arr)) return std::nullopt;
    }
    if (arrays == 0) {  // one event object
      if (!AtEnd(doc)) return std::nullopt;
      doc.rewind();
      od::value v;
      Event e;
      if (doc.get_value().get(v) || !FastNativeEvent(v, tz, now_ms, limits, &e)) return std::nullopt;
      out.events.push_back(std::move(e));
    }
  } else {
    return std::nullopt;
  }
  if (!AtEnd(doc)) return std::nullopt;
  return out;
}

// One NDJSON line (bytes [offset, offset + len) of the lease's copy): the event, or false to use the DOM path.
bool FastNdjsonLine(ondemand_json::ParserLease& lease, size_t offset, size_t len, const TimeZone& tz, int64_t now_ms,
                    const IngestLimits& limits, Event* out) {
  od::document doc;
  od::value v;
  if (lease.parser().iterate(lease.Padded(offset, len)).get(doc) || doc.get_value().get(v)) return false;
  return FastNativeEvent(v, tz, now_ms, limits, out) && AtEnd(doc);
}

}  // namespace

bool FinishFastEvent(FastEventFields&& f, int64_t now_ms, const IngestLimits& limits, Event* out) {
  if (!IdOk(f.event, limits.max_name_chars) || !IdOk(f.distinct_id, limits.max_distinct_id_chars)) return false;
  if (f.has_uuid) {
    if (f.uuid.empty() || f.uuid.size() > 200) return false;
    out->uuid = Uuid::FromClientId(f.uuid);
    out->has_uuid = true;
  }
  if (f.ts_ms < limits.min_ts_ms || f.ts_ms > now_ms + limits.max_future_ms) return false;
  out->ts_ms = f.ts_ms;
  if (!ondemand_json::PlainKeys(f.props) || !ondemand_json::PlainKeys(f.set) || !ondemand_json::PlainKeys(f.set_once))
    return false;
  // The keys this reads all start with '$': one walk over that run of the sorted keys
  // instead of a binary search per key (most events have only the SDK's $lib keys).
  const PropValue *anon = nullptr, *set = nullptr, *set_once = nullptr;
  for (auto it = ondemand_json::LowerBoundKey(f.props, "$"); it != f.props.end() && it->key[0] == '$'; ++it) {
    const std::string_view k = it->key;
    if (k == "$anon_distinct_id")
      anon = &it->value;
    else if (k == "$set")
      set = &it->value;
    else if (k == "$set_once")
      set_once = &it->value;
  }
  if (anon != nullptr && anon->kind == PropValue::kStr && !anon->str.empty()) {
    if (!IdOk(anon->str, limits.max_distinct_id_chars)) return false;
    out->merge_with.push_back(anon->str);
  }
  if (f.event == "$create_alias") {
    if (const PropValue* alias = FindSorted(f.props, "alias"); alias != nullptr && alias->kind == PropValue::kStr) {
      if (!IdOk(alias->str, limits.max_distinct_id_chars)) return false;
      out->merge_with.push_back(alias->str);
    }
  }
  // $set / $set_once inside properties (objects, kept as their JSON text): read them back.
  for (const PropValue* s : {set, set_once}) {
    if (s == nullptr || s->kind != PropValue::kJson || s->str.empty() || s->str[0] != '{') continue;
    std::vector<Property>& dst = s == set ? out->person_set : out->person_set_once;
    if (!PropsFromObject(json::parse(s->str), "", &dst).ok()) return false;
  }
  for (Property& p : f.set) out->person_set.push_back(std::move(p));
  for (Property& p : f.set_once) out->person_set_once.push_back(std::move(p));
  out->event = std::move(f.event);
  out->distinct_id = std::move(f.distinct_id);
  out->props = std::move(f.props);
  return true;
}

StatusOr<ParsedBatch> ParseNativeBatch(std::string_view body, bool ndjson, const TimeZone& tz, int64_t now_ms,
                                       const IngestLimits& limits) {
  if (!ndjson) {
    if (body.size() <= limits.max_body_bytes)
      if (auto fast = FastNativeBody(body, tz, now_ms, limits)) {
        ondemand_json::ThreadFastPathCounts().taken++;
        return std::move(*fast);
      }
    ondemand_json::ThreadFastPathCounts().gave_up++;
    return ParseNativeBatchDom(body, false, tz, now_ms, limits);
  }
  if (body.size() > limits.max_body_bytes) return ParseNativeBatchDom(body, true, tz, now_ms, limits);
  // The lines of ParseNativeBatchDom; each one tried on the fast path first.
  ondemand_json::ParserLease lease(body);
  ParsedBatch out;
  out.events.reserve(std::min<size_t>(body.size() / 96 + 1, size_t{1} << 16));
  size_t start = 0, line = 0;
  while (start < body.size()) {
    size_t end = body.find('\n', start);
    if (end == std::string_view::npos) end = body.size();
    std::string_view text = body.substr(start, end - start);
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    const bool blank = text.find_first_not_of(" \t") == std::string_view::npos;
    if (!blank) {
      Event& e = out.events.emplace_back();  // read in place; dropped if the fast path gives up
      if (text.size() <= limits.max_event_bytes && FastNdjsonLine(lease, start, text.size(), tz, now_ms, limits, &e)) {
        ondemand_json::ThreadFastPathCounts().taken++;
      } else {
        out.events.pop_back();
        ondemand_json::ThreadFastPathCounts().gave_up++;
        ParseNdjsonLineDom(text, line, tz, now_ms, limits, &out);
      }
    }
    start = end + 1;
    line++;
  }
  return out;
}

}  // namespace ns
