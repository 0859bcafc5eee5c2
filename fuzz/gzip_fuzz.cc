// libFuzzer target: gzip request bodies. Gunzip with a size cap (the zip-bomb bound), then
// the native parser on what it inflated (JSON or NDJSON by the input's last byte).
// Input: first byte 'R' (raw): the rest is fed to Gunzip as is (corrupt and hostile streams).
// Otherwise the rest is compressed here (zlib, level by the first byte), optionally cut short
// (a truncated upload) or followed by trailing bytes, and then inflated: random bytes rarely
// pass gzip's CRC, so this mode is what reaches the parser through the inflate path.
#include <zlib.h>

#include "fuzz_common.h"
#include "ingest/gzip.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const ns::IngestLimits limits = nsfuzz::Limits();
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string stream;
  if (data[0] == 'R') {
    stream.assign(rest);
  } else {
    uLongf n = compressBound(static_cast<uLong>(rest.size()));
    stream.resize(n);
    if (compress2(reinterpret_cast<Bytef*>(stream.data()), &n, reinterpret_cast<const Bytef*>(rest.data()),
                  static_cast<uLong>(rest.size()), data[0] % 10) != Z_OK)
      return 0;
    stream.resize(n);
    if ((data[0] & 0xC0) == 0x40 && !stream.empty()) stream.resize(stream.size() * (data[0] & 0x0F) / 16);  // cut short
    if ((data[0] & 0xC0) == 0x80) stream += "trailing";
  }
  (void)ns::LooksGzipped(stream);
  auto out = ns::Gunzip(stream, limits.max_body_bytes);
  if (!out.ok()) {
    nsfuzz::CheckStatus(out.status());
    nsfuzz::Require(out.status().code() == ns::StatusCode::kInvalidArgument ||
                        out.status().code() == ns::StatusCode::kResourceExhausted,
                    "Gunzip: unexpected status code", out.status().message());
    return 0;
  }
  nsfuzz::Require(out->size() <= limits.max_body_bytes, "Gunzip returned more than max_out");
  if (data[0] != 'R' && (data[0] & 0xC0) == 0)  // an intact stream must give back exactly its input
    nsfuzz::Require(*out == rest, "Gunzip changed the data");
  const bool ndjson = data[size - 1] & 1;
  auto r = ns::ParseNativeBatch(*out, ndjson, nsfuzz::Zone(data[size - 1] >> 1), nsfuzz::kNowMs, limits);
  if (!r.ok())
    nsfuzz::CheckStatus(r.status());
  else
    nsfuzz::CheckBatch(*r, limits, static_cast<size_t>(-1));
  return 0;
}
