#include "storage/event.h"

#include <charconv>
#include <cmath>

#include "storage/binary_io.h"

namespace ns {

void EncodeProperties(BinWriter& w, const std::vector<Property>& props) {
  w.U32(static_cast<uint32_t>(props.size()));
  for (const auto& p : props) {
    w.Str(p.key);
    w.U8(p.value.kind);
    if (p.value.kind == PropValue::kNum) w.F64(p.value.num);
    else w.Str(p.value.str);
  }
}

bool DecodeProperties(BinReader& r, std::vector<Property>* props) {
  uint32_t n = r.U32();
  if (!r.ok() || n > r.remaining()) return false;  // every property takes at least one byte
  props->resize(n);
  for (auto& p : *props) {
    p.key = std::string(r.Str());
    p.value.kind = static_cast<PropValue::Kind>(r.U8());
    if (p.value.kind == PropValue::kNum) p.value.num = r.F64();
    else p.value.str = std::string(r.Str());
  }
  return r.ok();
}

std::string PropValue::AsString() const {
  if (kind != kNum) return str;
  if (std::isfinite(num) && num == std::floor(num) && std::fabs(num) < 1e15) {
    return std::to_string(static_cast<int64_t>(num));
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, num);
  return std::string(buf, r.ptr);
}

bool IdentifiesPerson(const Event& e) {
  return !e.merge_with.empty() || e.event == "$identify" || e.event == "$create_alias" ||
         e.event == "$merge_dangerously";
}

}  // namespace ns
