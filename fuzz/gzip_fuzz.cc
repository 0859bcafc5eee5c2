// libFuzzer target: gzip request bodies. Gunzip with a size cap (the zip-bomb bound), then
// the native parser on what it inflated (JSON or NDJSON by the input's last byte).
#include "fuzz_common.h"
#include "ingest/gzip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);
  const ns::IngestLimits limits = nsfuzz::Limits();
  (void)ns::LooksGzipped(body);
  auto out = ns::Gunzip(body, limits.max_body_bytes);
  if (!out.ok()) {
    nsfuzz::CheckStatus(out.status());
    nsfuzz::Require(out.status().code() == ns::StatusCode::kInvalidArgument ||
                        out.status().code() == ns::StatusCode::kResourceExhausted,
                    "Gunzip: unexpected status code", out.status().message());
    return 0;
  }
  nsfuzz::Require(out->size() <= limits.max_body_bytes, "Gunzip returned more than max_out");
  const bool ndjson = size && (data[size - 1] & 1);
  auto r = ns::ParseNativeBatch(*out, ndjson, nsfuzz::Zone(size ? data[size - 1] >> 1 : 0), nsfuzz::kNowMs, limits);
  if (!r.ok()) nsfuzz::CheckStatus(r.status());
  else nsfuzz::CheckBatch(*r, limits, static_cast<size_t>(-1));
  return 0;
}
