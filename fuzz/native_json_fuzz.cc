// libFuzzer target: the native JSON batch parser (POST /api/v1/events, a .json import):
// ParseNativeBatch(ndjson=false), which must agree with ParseNativeBatchDom. Input: the request body; its last byte
// also picks the project time zone. See docs/reliability.md.
#include "fuzz_common.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  const ns::IngestLimits limits = nsfuzz::Limits();
  const auto& tz = nsfuzz::Zone(size ? data[size - 1] : 0);
  auto r = ns::ParseNativeBatch(body, /*ndjson=*/false, tz, nsfuzz::kNowMs, limits);
  nsfuzz::RequireSameAsDom(r, ns::ParseNativeBatchDom(body, /*ndjson=*/false, tz, nsfuzz::kNowMs, limits));
  if (!r.ok()) {
    nsfuzz::CheckStatus(r.status());
    return 0;
  }
  nsfuzz::CheckBatch(*r, limits, static_cast<size_t>(-1));
  for (const auto& e : r->errors)
    nsfuzz::Require(e.code == "invalid_event" || e.code == "invalid_timestamp" || e.code == "event_too_large",
                    "unexpected per-event error code", e.code);
  return 0;
}
