// gzip/zlib decompression of request bodies, bounded so a small "zip bomb" cannot
// allocate more than max_out bytes.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace ns {

bool LooksGzipped(std::string_view data);
// Decompresses gzip (or zlib) data; ResourceExhausted if the result exceeds max_out,
// InvalidArgument if the data is not valid gzip.
StatusOr<std::string> Gunzip(std::string_view data, size_t max_out);

}  // namespace ns
