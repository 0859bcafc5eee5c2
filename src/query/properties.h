// Property names for pickers (GET /api/v1/properties): which event and person properties
// exist, their type and their most common values, read from the newest rows.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "core/status.h"
#include "storage/block.h"
#include "storage/event_dict.h"
#include "storage/event_store.h"
#include "storage/person_table.h"

namespace ns {

struct PropertyListOptions {
  std::optional<std::string> event;  // only rows of this event; nullopt: every event
  size_t top_values = 10;            // most common values per property (0-50)
  size_t max_rows = 1'000'000;       // rows read at most, newest blocks first
};

// {"event":…|null,"scanned_rows":N,"complete":bool,
//  "properties":[{"name","type":"number"|"string"|"boolean"|"json"|"mixed","rows":N,
//                 "top_values":[{"value","count"}]}],   most rows first, then by name
//  "person_properties":[{"name","type","persons":N,"top_values":[…]}]}
// An unknown event is NotFound naming it.
StatusOr<nlohmann::json> ListProperties(const StoreSnapshot& snap, const PropertyListOptions& options);

}  // namespace ns
