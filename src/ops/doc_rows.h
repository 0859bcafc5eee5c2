// Entities stored as a JSON document (see ops/schema.cc): rows of (id, doc, created_at)
// back to the JSON the API returns.
#pragma once

#include <nlohmann/json.hpp>

#include <vector>

#include "meta/meta_db.h"

namespace ns {

// [{...doc, "id": id, "created_at": created_at}, ...] from rows (id, doc, created_at).
inline nlohmann::json DocList(const std::vector<SqlRow>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    nlohmann::json d = nlohmann::json::parse(r.Str(1));
    d["id"] = r.Int(0);
    d["created_at"] = r.Int(2);
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace ns
