#include "server/http_types.h"

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <optional>
#include <string>

#include "ingest/native_parser.h"

namespace ns {

using nlohmann::json;

std::string HttpRequest::Header(std::string_view lower_name) const {
  for (const auto& [k, v] : headers)
    if (k == lower_name) return v;
  return {};
}

bool HttpRequest::HasParam(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return true;
  return false;
}

std::string HttpRequest::Param(std::string_view name) const {
  for (const auto& [k, v] : params)
    if (k == name) return v;
  return {};
}

std::string HttpRequest::MimeType() const {
  std::string ct = Header("content-type");
  auto semi = ct.find(';');
  if (semi != std::string::npos) ct.resize(semi);
  while (!ct.empty() && ct.back() == ' ') ct.pop_back();
  std::transform(ct.begin(), ct.end(), ct.begin(), [](unsigned char c) { return std::tolower(c); });
  return ct;
}

std::string HttpRequest::Cookie(std::string_view name) const {
  std::string all = Header("cookie");
  std::string_view s = all;
  while (!s.empty()) {
    size_t end = s.find(';');
    std::string_view part = s.substr(0, end);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    size_t eq = part.find('=');
    if (eq != std::string_view::npos && part.substr(0, eq) == name) return std::string(part.substr(eq + 1));
    if (end == std::string_view::npos) break;
    s.remove_prefix(end + 1);
  }
  return {};
}

void HttpResponse::Json(int code, const json& j) {
  status = code;
  body = j.dump(-1, ' ', false, json::error_handler_t::replace);
  content_type = "application/json; charset=utf-8";
}

void HttpResponse::Error(const Status& st) {
  Json(HttpStatusFor(st), ErrorJson(st));
  if (std::optional<int64_t> ms = st.retry_after_ms()) {
    // Whole seconds, rounded up and at least 1: an earlier retry would be refused again.
    SetHeader("Retry-After", std::to_string(std::max<int64_t>(1, (*ms + 999) / 1000)));
  } else if (st.code() == StatusCode::kUnavailable) {
    SetHeader("Retry-After", "5");
  } else if (st.reason() == ErrorReason::kRateLimited) {
    SetHeader("Retry-After", "1");
  }
}

void HttpResponse::Text(int code, std::string text, std::string ctype) {
  status = code;
  body = std::move(text);
  content_type = std::move(ctype);
}

void HttpResponse::Stream(int code, std::string ctype, BodyProducer body_producer) {
  status = code;
  body.clear();
  content_type = std::move(ctype);
  producer = std::move(body_producer);
}

int HttpStatusFor(const Status& st) {
  switch (st.reason()) {
    case ErrorReason::kNone: break;
    case ErrorReason::kUnsupportedMediaType: return 415;
    case ErrorReason::kRateLimited: return 429;
  }
  switch (st.code()) {
    case StatusCode::kOk: return 200;
    case StatusCode::kInvalidArgument: return 400;
    case StatusCode::kUnauthenticated: return 401;
    case StatusCode::kPermissionDenied: return 403;
    case StatusCode::kNotFound: return 404;
    case StatusCode::kAlreadyExists:
    case StatusCode::kFailedPrecondition: return 409;
    case StatusCode::kResourceExhausted: return 413;  // every other limit: body, query result
    case StatusCode::kDeadlineExceeded: return 504;
    case StatusCode::kUnavailable: return 503;
    default: return 500;
  }
}

json ErrorJson(const Status& st) {
  json e;
  e["code"] = std::string(st.ErrorName());
  e["message"] = st.message();
  if (!st.field().empty()) e["field"] = st.field();
  return json{{"error", e}};
}

static int HexVal(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string UrlDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%' && i + 2 < s.size()) {
      int h = HexVal(s[i + 1]), l = HexVal(s[i + 2]);
      if (h >= 0 && l >= 0) {
        out.push_back(static_cast<char>(h * 16 + l));
        i += 2;
        continue;
      }
    }
    out.push_back(plus_is_space && c == '+' ? ' ' : c);
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> ParseUrlEncoded(std::string_view s) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!s.empty()) {
    size_t amp = s.find('&');
    std::string_view part = s.substr(0, amp);
    if (!part.empty()) {
      size_t eq = part.find('=');
      if (eq == std::string_view::npos)
        out.emplace_back(UrlDecode(part, true), std::string());
      else
        out.emplace_back(UrlDecode(part.substr(0, eq), true), UrlDecode(part.substr(eq + 1), true));
    }
    if (amp == std::string_view::npos) break;
    s.remove_prefix(amp + 1);
  }
  return out;
}

StatusOr<json> ParseJsonBody(std::string_view body) {
  NS_RETURN_IF_ERROR(CheckJsonDepth(body, ""));
  try {
    return json::parse(body);
  } catch (const json::exception& e) {  // parse_error, or out_of_range for a number beyond a double ("1e999")
    return InvalidArgument("malformed JSON: " + EscapeInvalidUtf8(e.what()));
  }
}

}  // namespace ns
