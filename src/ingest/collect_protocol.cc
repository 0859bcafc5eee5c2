#include "ingest/collect_protocol.h"

#include "ingest/gzip.h"

namespace ns {

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
    if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    if (c == '=') {
      padding = true;
      continue;
    }
    const int v = Base64Value(c);
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
  if (digits % 4 == 1) return InvalidArgument("invalid base64: truncated input (" + std::to_string(digits) + " digits)");
  return out;
}

StatusOr<std::string_view> MaybeGunzip(std::string_view body, size_t max_out, std::string* storage) {
  if (!LooksGzipped(body)) return body;
  auto r = Gunzip(body, max_out);
  if (!r.ok()) return r.status();
  *storage = std::move(r).value();
  return std::string_view(*storage);
}

}  // namespace ns
