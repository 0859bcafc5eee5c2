// Values from clients in log lines: control characters escaped, so a login email holding a
// newline cannot forge a log line (finding 16 of docs/reliability.md).
#pragma once

#include <string>
#include <string_view>

namespace ns {

// "a\nb" -> "a\\nb"; other bytes below 0x20 and 0x7f as \xNN; at most max_bytes of input.
inline std::string LogSafe(std::string_view s, size_t max_bytes = 256) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  if (s.size() > max_bytes) s = s.substr(0, max_bytes);
  for (unsigned char c : s) {
    if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c == '\\')
      out += "\\\\";
    else if (c < 0x20 || c == 0x7f)
      out += std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    else
      out += static_cast<char>(c);
  }
  return out;
}

}  // namespace ns
