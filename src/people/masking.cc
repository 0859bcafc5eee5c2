#include "people/masking.h"

#include <algorithm>
#include <cctype>

namespace ns {

std::string MaskValue(std::string_view v) {
  if (v.empty()) return "";
  if (auto at = v.find('@'); at != std::string_view::npos && at > 0)  // email: first letter and the domain
    return std::string(v.substr(0, 1)) + "***" + std::string(v.substr(at));
  size_t digits = 0, dots = 0;
  for (char c : v) {
    digits += std::isdigit(static_cast<unsigned char>(c)) != 0;
    dots += c == '.';
  }
  if (dots == 3 && digits + dots == v.size()) {  // IPv4: the network part
    size_t second = v.find('.', v.find('.') + 1);
    return std::string(v.substr(0, second)) + ".*.*";
  }
  if (v.size() >= 7 && digits * 2 >= v.size())  // phone, id card: first 3 and last 4
    return std::string(v.substr(0, 3)) + "****" + std::string(v.substr(v.size() - 4));
  if (v.size() <= 2) return "**";
  return std::string(v.substr(0, 1)) + "***";
}

bool IsMaskedProperty(std::string_view key, const std::vector<std::string>& masked) {
  for (const auto& m : masked)
    if (m.size() == key.size() && std::equal(m.begin(), m.end(), key.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
        }))
      return true;
  return false;
}

void MaskProperties(nlohmann::json& props, const std::vector<std::string>& masked) {
  if (!props.is_object()) return;
  for (auto it = props.begin(); it != props.end(); ++it) {
    if (it->is_object() && !IsMaskedProperty(it.key(), masked)) {  // "$set": {"phone": ...}
      MaskProperties(*it, masked);
      continue;
    }
    if (!IsMaskedProperty(it.key(), masked) || it->is_null()) continue;
    *it = MaskValue(it->is_string() ? it->get<std::string>() : it->dump());
  }
}

}  // namespace ns
