// libFuzzer target: the NDJSON parser (POST /api/v1/events as application/x-ndjson, .ndjson
// imports): ParseNativeBatch(ndjson=true). Input: the body; its last byte picks the zone.
#include <algorithm>

#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  const ns::IngestLimits limits = nsfuzz::Limits();
  const auto& tz = nsfuzz::Zone(size ? data[size - 1] : 0);
  auto r = ns::ParseNativeBatch(body, /*ndjson=*/true, tz, nsfuzz::kNowMs, limits);
  nsfuzz::RequireSameAsDom(r, ns::ParseNativeBatchDom(body, /*ndjson=*/true, tz, nsfuzz::kNowMs, limits));
  if (!r.ok()) {
    nsfuzz::CheckStatus(r.status());
    return 0;
  }
  // One line, at most one event or one error; error indexes are line numbers - 1, ascending.
  const size_t lines = static_cast<size_t>(std::count(body.begin(), body.end(), '\n')) + 1;
  nsfuzz::CheckBatch(*r, limits, lines);
  for (size_t i = 0; i < r->errors.size(); i++) {
    nsfuzz::Require(r->errors[i].index < lines, "error index past the last line");
    if (i > 0) nsfuzz::Require(r->errors[i].index > r->errors[i - 1].index, "error indexes not ascending");
  }
  return 0;
}
