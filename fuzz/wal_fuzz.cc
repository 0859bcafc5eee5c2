// libFuzzer target: event WAL files (docs/storage-format.md §2, §3) through ReplayWal and
// the event decoder recovery uses (DecodeWalBatch). The input is a whole WAL file; the
// target re-signs the record checksums (storage_fuzz_common.h) so that mutations reach the
// payload decoder. Checks: replay never fails for framing (a torn or corrupt tail is
// reported, and intact records plus the tail make up the file); a payload decodes or is
// Corruption; and what decodes survives encode + decode unchanged.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/env.h"
#include "fuzz_common.h"
#include "storage/binary_io.h"
#include "storage/wal.h"
#include "storage_fuzz_common.h"

using nsfuzz::Require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string file(reinterpret_cast<const char*>(data), size);
  nsfuzz::ResignRecords(file);
  const std::string dir = nsfuzz::ScratchDir();
  nsfuzz::WriteWhole(dir + "/" + ns::WalFileName(1), file);
  uint64_t payload_bytes = 0;
  ns::WalReplayStats stats;
  ns::Status st = ns::ReplayWal(
      ns::Env::Default(), dir, 1, /*truncate=*/false,
      [&](std::string_view payload) {
        payload_bytes += 8 + payload.size();
        std::vector<ns::Event> events;
        ns::Status ds = ns::DecodeWalBatch(payload, &events);
        if (!ds.ok()) {
          nsfuzz::CheckStatus(ds);
          Require(ds.code() == ns::StatusCode::kCorruption, "decode failed with a code other than Corruption");
          return ns::Status::OK();  // recovery stops here; the fuzzer keeps going
        }
        // Decoding is lenient where encoding is canonical (a has-uuid byte of 2 reads as
        // true), so compare what the decoder produces, not bytes: encode, decode, encode again.
        ns::BinWriter w;
        ns::EncodeWalBatch(events, &w);
        std::vector<ns::Event> again;
        ns::Status as = ns::DecodeWalBatch(w.str(), &again);
        Require(as.ok() && again.size() == events.size(), "re-encoded batch does not decode", as.ToString());
        ns::BinWriter w2;
        ns::EncodeWalBatch(again, &w2);
        Require(w.str() == w2.str(), "decode/encode is not a round trip");
        return ns::Status::OK();
      },
      &stats);
  Require(st.ok(), "replay failed on framing", st.ToString());
  Require(payload_bytes + stats.truncated_bytes == file.size(), "records + torn tail != file size");
  return 0;
}
