// The native event: what every collection protocol is mapped to before storage.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/uuid.h"

namespace ns {

// A property value. Numbers are kept as doubles; strings raw; booleans, null, arrays and
// objects as their compact JSON text (kJson), compared as text by filters.
struct PropValue {
  enum Kind : uint8_t { kNum = 0, kStr = 1, kJson = 2 };
  Kind kind = kStr;
  double num = 0;
  std::string str;

  static PropValue Num(double v) { return PropValue{kNum, v, {}}; }
  static PropValue Str(std::string s) { return PropValue{kStr, 0, std::move(s)}; }
  static PropValue Json(std::string s) { return PropValue{kJson, 0, std::move(s)}; }
  // The value as a string (numbers formatted shortest round-trip).
  std::string AsString() const;
  bool operator==(const PropValue&) const = default;
};

struct Property {
  std::string key;
  PropValue value;
};

struct Event {
  Uuid uuid;              // client-supplied id (hashed if not a UUID); nil if none
  bool has_uuid = false;  // only client-supplied ids are deduplicated
  int64_t ts_ms = 0;
  std::string distinct_id;
  std::string event;
  std::vector<Property> props;
  // Identity and person-property effects, extracted by the ingest layer from the protocol
  // ($anon_distinct_id, $create_alias alias, Segment identify/alias, $set, $set_once, traits).
  std::vector<std::string> merge_with;  // distinct ids that are the same person
  std::vector<Property> person_set;
  std::vector<Property> person_set_once;

  const PropValue* Find(std::string_view key) const {
    for (const auto& p : props)
      if (p.key == key) return &p.value;
    return nullptr;
  }
};

class BinWriter;
class BinReader;
// The binary form of a property list shared by the WAL and the identity log
// (docs/storage-format.md): u32 count, then per property key str, kind u8, f64 or str.
void EncodeProperties(BinWriter& w, const std::vector<Property>& props);
// False if the input is short or malformed (the reader's ok() is false too).
bool DecodeProperties(BinReader& r, std::vector<Property>* props);
// One event of an event WAL record (docs/storage-format.md §3): has-uuid u8 [uuid], ts,
// distinct id, name, properties.
void EncodeWalEvent(BinWriter& w, const Event& e);
bool DecodeWalEvent(BinReader& r, Event* e);
// A whole event WAL record payload: u32 count, then the events. Decode: Corruption if it
// is short or malformed (bytes after the last event are ignored, as recovery always did).
void EncodeWalBatch(const std::vector<Event>& events, BinWriter* w);
Status DecodeWalBatch(std::string_view payload, std::vector<Event>* events);

// Result of appending a batch: how many were stored and how many were retries of
// events already stored (same uuid).
struct AppendResult {
  size_t accepted = 0;
  size_t duplicates = 0;
  // Merges not applied because both persons were already identified and the batch came
  // with a write key (the events themselves are stored).
  size_t merges_refused = 0;
};

// Who sent a batch, for the identity rules: a write key is public (it ships in apps and web
// pages), so it cannot join two identified persons; the secret key and local imports can.
enum class IdentityTrust { kWriteKey, kSecretKey };

// True if the event identifies its distinct id ($identify, an alias, a merge).
bool IdentifiesPerson(const Event& e);

}  // namespace ns
