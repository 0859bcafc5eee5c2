#include "storage/event.h"

#include <charconv>
#include <cmath>

namespace ns {

std::string PropValue::AsString() const {
  if (kind != kNum) return str;
  if (std::isfinite(num) && num == std::floor(num) && std::fabs(num) < 1e15) {
    return std::to_string(static_cast<int64_t>(num));
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, num);
  return std::string(buf, r.ptr);
}

}  // namespace ns
