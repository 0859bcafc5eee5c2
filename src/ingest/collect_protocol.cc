#include "ingest/collect_protocol.h"

#include "ingest/gzip.h"

#include <algorithm>

namespace ns {

using nlohmann::json;

std::string CollectRequest::Query(std::string_view name) const {
  for (const auto& [k, v] : query)
    if (k == name) return v;
  return {};
}

namespace {

int Base64Value(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

}  // namespace

StatusOr<std::string> Base64Decode(std::string_view in) {
  std::string out;
  out.reserve(in.size() / 4 * 3 + 3);
  uint32_t acc = 0;
  int bits = 0;
  size_t digits = 0;
  bool padding = false;
  for (size_t i = 0; i < in.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(in[i]);
    if (c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int v = c == ' ' ? 62 : Base64Value(c);
    if (v < 0 || padding) {
      std::string shown = v < 0 ? (c >= 0x20 && c < 0x7f ? "'" + std::string(1, static_cast<char>(c)) + "'"
                                                         : "byte " + std::to_string(c))
                                : "'" + std::string(1, static_cast<char>(c)) + "' after '=' padding";
      return InvalidArgument("invalid base64 at byte " + std::to_string(i) + ": " + shown);
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    digits++;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  if (digits % 4 == 1)
    return InvalidArgument("invalid base64: truncated input (" + std::to_string(digits) + " digits)");
  return out;
}

std::string Base64Encode(std::string_view in) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  for (size_t i = 0; i < in.size(); i += 3) {
    const size_t n = std::min<size_t>(3, in.size() - i);
    uint32_t v = 0;
    for (size_t k = 0; k < 3; k++) v = (v << 8) | (k < n ? static_cast<uint8_t>(in[i + k]) : 0u);
    for (size_t k = 0; k < 4; k++) out += k <= n ? kAlphabet[(v >> (18 - 6 * k)) & 63] : '=';
  }
  return out;
}

Status CheckBodySize(size_t size, const IngestLimits& limits, std::string_view what) {
  if (size <= limits.max_body_bytes) return Status::OK();
  return ResourceExhausted(std::string(what) + " is " + std::to_string(size) + " bytes, over the limit of " +
                           std::to_string(limits.max_body_bytes));
}

void RejectEvent(ParsedBatch* out, size_t index, const Status& st, bool timestamp) {
  out->errors.push_back({index, timestamp ? "invalid_timestamp" : "invalid_event", st.field(), st.message()});
}

StatusOr<const TimeZone*> ResolveZone(const KeyResolver& resolve, const CollectResult& found,
                                      const TimeZone& fallback) {
  if (!resolve) return &fallback;
  NS_ASSIGN_OR_RETURN(const TimeZone* z, resolve(found));
  return z != nullptr ? z : &fallback;
}

size_t EventBytes(const json& j, bool measure) {
  return measure ? j.dump(-1, ' ', false, json::error_handler_t::replace).size() : 0;
}

StatusOr<json> ParseJsonPayload(std::string_view text, const std::string& what) {
  NS_RETURN_IF_ERROR(CheckJsonDepth(text, what + ": "));
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    return JsonError(e, text, what + ": ");
  } catch (const json::exception& e) {  // out_of_range: a number beyond a double ("1e999")
    return JsonError(e, text, what + ": ");
  }
}

StatusOr<int64_t> TimestampFromJson(const json& v, const std::string& field, const TimeZone& tz) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!(d > -9.2e18 && d < 9.2e18))
      return InvalidArgument(field + ": epoch milliseconds " + v.dump() + " are out of range", field);
    return static_cast<int64_t>(d);
  }
  if (v.is_string()) {
    auto t = ParseIsoTimestamp(v.get_ref<const std::string&>(), tz);
    if (!t.ok()) return InvalidArgument(field + ": " + t.status().message(), field);
    return *t;
  }
  return InvalidArgument(field + ": expected an ISO-8601 string or epoch milliseconds, got " + v.type_name(), field);
}

StatusOr<int64_t> CorrectClockSkew(int64_t event_ts, int64_t sent_at, int64_t received_at, const std::string& field) {
  int64_t skew, out;
  if (__builtin_sub_overflow(received_at, sent_at, &skew) || __builtin_add_overflow(event_ts, skew, &out))
    return InvalidArgument(field + ": timestamp is out of range after clock-skew correction", field);
  return out;
}

StatusOr<std::string> IdFromJson(const json* v, const std::string& field) {
  if (v == nullptr || v->is_null()) return std::string();
  if (v->is_string()) return v->get<std::string>();
  if (v->is_number_integer()) return v->dump();
  return InvalidArgument(field + ": expected a string, got " + v->type_name(), field);
}

const json* FindMember(const json& obj, std::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

Status CheckJsonContentType(std::string_view content_type, std::string_view body) {
  if (content_type.empty() || content_type == "application/json" || content_type == "text/plain") return Status::OK();
  if (content_type == "application/x-www-form-urlencoded" && !body.empty() && (body[0] == '{' || body[0] == '['))
    return Status::OK();
  return UnsupportedMediaType("unsupported Content-Type '" + EscapeInvalidUtf8(content_type) +
                              "' (expected application/json)");
}

StatusOr<std::string_view> MaybeGunzip(std::string_view body, size_t max_out, std::string* storage) {
  if (!LooksGzipped(body)) return body;
  auto r = Gunzip(body, max_out);
  if (!r.ok()) return r.status();
  *storage = std::move(r).value();
  return std::string_view(*storage);
}

}  // namespace ns
