// libFuzzer target: the Segment HTTP Tracking API (/v1/track, /v1/batch, ...) parser,
// ParseSegmentIo(). Input: a first line "METHOD PATH[?QUERY] [CONTENT-TYPE] [basic=USER] [bearer=TOKEN]",
// then the body (fuzz_common.h); the body's last byte picks the time zone.
#include "fuzz_common.h"
#include "ingest/segmentio_protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nsfuzz::RequestInput in;
  nsfuzz::ParseRequestInput(std::string_view(reinterpret_cast<const char*>(data), size), &in);
  const ns::IngestLimits limits = nsfuzz::Limits();
  auto r = ns::ParseSegmentIo(in.req, nsfuzz::Zone(size ? data[size - 1] : 0), nsfuzz::kNowMs, limits);
  nsfuzz::RequireSameAsDom(
      r, ns::ParseSegmentIoDom(in.req, nsfuzz::Zone(size ? data[size - 1] : 0), nsfuzz::kNowMs, limits));
  nsfuzz::CheckCollect(r, limits);
  return 0;
}
