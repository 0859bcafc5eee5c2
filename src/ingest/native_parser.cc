#include "ingest/native_parser.h"

#include <cstdint>

#include <nlohmann/json.hpp>

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

Status CheckJsonDepth(std::string_view text, const std::string& prefix) {
  size_t depth = 0;
  bool in_string = false;
  const char* p = text.data();
  const char* end = p + text.size();
  for (; p < end; p++) {
    const char c = *p;
    if (in_string) {
      if (c == '\\')
        p++;
      else if (c == '"')
        in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return InvalidArgument(prefix + "JSON nested deeper than " + std::to_string(kMaxJsonDepth) +
                               " levels at byte " + std::to_string(p - text.data()));
    } else if ((c == ']' || c == '}') && depth > 0) {
      depth--;
    }
  }
  return Status::OK();
}

StatusOr<ParsedBatch> ParseNativeBatch(std::string_view body, bool ndjson, const TimeZone& tz, int64_t now_ms,
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
      std::string where = "line " + std::to_string(line + 1);
      if (Status deep = CheckJsonDepth(text, where + ": "); !deep.ok()) {
        out.errors.push_back({line, "invalid_json", where, deep.message()});
      } else if (text.find_first_not_of(" \t") != std::string_view::npos) {
        try {
          json j = json::parse(text);
          AddEvent(j, line, where, tz, now_ms, limits, text.size(), &out);
        } catch (const json::parse_error& e) {
          Status st = JsonError(e, text, where + ": ");
          out.errors.push_back({line, "invalid_json", where, st.message()});
        } catch (const json::exception& e) {  // out_of_range: a number beyond a double
          Status st = JsonError(e, text, where + ": ");
          out.errors.push_back({line, "invalid_json", where, st.message()});
        }
      }
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

}  // namespace ns
