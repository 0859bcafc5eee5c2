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
    if (p.value.kind == PropValue::kNum)
      w.F64(p.value.num);
    else
      w.Str(p.value.str);
  }
}

bool DecodeProperties(BinReader& r, std::vector<Property>* props) {
  uint32_t n = r.U32();
  if (!r.ok() || n > r.remaining()) return false;  // every property takes at least one byte
  props->resize(n);
  for (auto& p : *props) {
    p.key = std::string(r.Str());
    p.value.kind = static_cast<PropValue::Kind>(r.U8());
    if (p.value.kind == PropValue::kNum)
      p.value.num = r.F64();
    else
      p.value.str = std::string(r.Str());
  }
  return r.ok();
}

void EncodeWalEvent(BinWriter& w, const Event& e) {
  w.U8(e.has_uuid ? 1 : 0);
  if (e.has_uuid) {
    w.U64(e.uuid.hi);
    w.U64(e.uuid.lo);
  }
  w.I64(e.ts_ms);
  w.Str(e.distinct_id);
  w.Str(e.event);
  EncodeProperties(w, e.props);
}

bool DecodeWalEvent(BinReader& r, Event* e) {
  e->has_uuid = r.U8() != 0;
  if (e->has_uuid) {
    e->uuid.hi = r.U64();
    e->uuid.lo = r.U64();
  }
  e->ts_ms = r.I64();
  e->distinct_id = std::string(r.Str());
  e->event = std::string(r.Str());
  return DecodeProperties(r, &e->props);
}

void EncodeWalBatch(const std::vector<Event>& events, BinWriter* w) {
  w->U32(static_cast<uint32_t>(events.size()));
  for (const auto& e : events) EncodeWalEvent(*w, e);
}

Status DecodeWalBatch(std::string_view payload, std::vector<Event>* events) {
  BinReader r(payload);
  uint32_t n = r.U32();
  if (!r.ok()) return Corruption("WAL record is malformed (no event count)");
  events->clear();
  for (uint32_t i = 0; i < n; i++) {
    Event e;
    if (!DecodeWalEvent(r, &e)) return Corruption("WAL record is malformed (event " + std::to_string(i) + ")");
    events->push_back(std::move(e));
  }
  return Status::OK();
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
