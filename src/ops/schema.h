#pragma once

#include <vector>

#include "meta/meta_db.h"

namespace ns {

// Migrations of the operations layer's tables, in order.
const std::vector<Migration>& OpsMigrations();

}  // namespace ns
