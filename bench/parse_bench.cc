// Parse-only throughput of the ingest parsers (no HTTP, no storage): events/s of
// ParseNativeBatch on an NDJSON chunk and on a JSON array, and of ParseSegmentIo on
// 100-event /v1/batch bodies, each through the simdjson fast path and the nlohmann DOM path
// (ParseNativeBatchDom, ParseSegmentIoDom). One thread. docs/benchmarks.md "Ingest with
// simdjson (issue 15)".
//
//   build/bench/parse_bench [--events 200000] [--rounds 5] [--fast-only]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>

#include "core/time_zone.h"
#include "ingest/native_parser.h"
#include "ingest/segmentio_protocol.h"

namespace {

constexpr int64_t kNow = 1'795'320'000'000;  // 2026-11-22T04:00:00Z
const char* kNames[] = {"product_exposure", "product_click", "add_to_cart", "order", "pay", "page_view"};

// An event as bench/ingest_load sends it (three properties, a uuid, epoch ms).
std::string NativeEvent(int i) {
  return "{\"event\":\"" + std::string(kNames[i % 6]) + "\",\"distinct_id\":\"u" + std::to_string(i * 7919 % 100000) +
         "\",\"uuid\":\"bench-" + std::to_string(i) + "\",\"timestamp\":" + std::to_string(kNow - 100000 + i % 1000) +
         ",\"properties\":{\"channel\":\"organic\",\"platform\":\"web\",\"amount\":" + std::to_string(i % 500 + 1) +
         "}}";
}

// A track message as @segment/analytics-node sends it.
std::string SegmentMessage(int i) {
  return "{\"type\":\"track\",\"event\":\"" + std::string(kNames[i % 6]) + "\",\"userId\":\"u" +
         std::to_string(i * 7919 % 100000) + "\",\"messageId\":\"bench-" + std::to_string(i) +
         "\",\"timestamp\":\"2026-11-22T03:58:20.000Z\",\"properties\":{\"channel\":\"organic\",\"platform\":\"web\","
         "\"amount\":" +
         std::to_string(i % 500 + 1) +
         "},\"context\":{\"library\":{\"name\":\"@segment/analytics-node\",\"version\":\"2.1.0\"}}}";
}

// Best events/s of `rounds` runs of `parse` (which returns the number of events it read).
double Best(int rounds, const std::function<size_t()>& parse) {
  double best = 0;
  for (int r = 0; r < rounds; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    const size_t n = parse();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (n / s > best) best = n / s;
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int events = 200000, rounds = 5;
  bool fast_only = false;  // --fast-only: skip the DOM path (for a profile of the fast one)
  for (int i = 1; i < argc; i++)
    if (std::strcmp(argv[i], "--fast-only") == 0) fast_only = true;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--events") == 0) events = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
  }
  const ns::TimeZone utc = *ns::TimeZone::Load("UTC");
  const ns::IngestLimits limits;
  // NDJSON in chunks of 10,000 lines (~2 MB, as an import reads them); JSON arrays and
  // Segment batches of 100 events (as bench/ingest_load posts them).
  std::vector<std::string> ndjson, arrays, segment;
  for (int i = 0; i < events; i += 10000) {
    std::string chunk;
    for (int k = i; k < std::min(events, i + 10000); k++) chunk += NativeEvent(k) + "\n";
    ndjson.push_back(std::move(chunk));
  }
  for (int i = 0; i < events; i += 100) {
    std::string a = "[", s = "{\"batch\":[";
    for (int k = i; k < std::min(events, i + 100); k++) {
      a += (k > i ? "," : "") + NativeEvent(k);
      s += (k > i ? "," : "") + SegmentMessage(k);
    }
    arrays.push_back(a + "]");
    segment.push_back(s + "],\"sentAt\":\"2026-11-22T03:58:21.000Z\"}");
  }
  auto native = [&](const std::vector<std::string>& bodies, bool nd, bool dom) {
    return [&, nd, dom] {
      size_t n = 0;
      for (const std::string& b : bodies) {
        auto r =
            dom ? ns::ParseNativeBatchDom(b, nd, utc, kNow, limits) : ns::ParseNativeBatch(b, nd, utc, kNow, limits);
        if (!r.ok() || !r->errors.empty()) std::abort();
        n += r->events.size();
      }
      return n;
    };
  };
  auto seg = [&](bool dom) {
    return [&, dom] {
      size_t n = 0;
      for (const std::string& b : segment) {
        ns::CollectRequest req;
        req.path = "/v1/batch";
        req.body = b;
        req.basic_user = "wk";
        auto r = dom ? ns::ParseSegmentIoDom(req, utc, kNow, limits) : ns::ParseSegmentIo(req, utc, kNow, limits);
        if (!r.ok() || !r->batch.errors.empty()) std::abort();
        n += r->batch.events.size();
      }
      return n;
    };
  };
  std::printf("parser events/s, %d events, best of %d rounds, one thread\n", events, rounds);
  std::printf("| input | nlohmann DOM | simdjson On-Demand | ratio |\n|---|---:|---:|---:|\n");
  struct Row {
    const char* name;
    std::function<size_t()> dom, fast;
  } rows[] = {{"NDJSON chunk (ParseNativeBatch)", native(ndjson, true, true), native(ndjson, true, false)},
              {"JSON array of 100 (ParseNativeBatch)", native(arrays, false, true), native(arrays, false, false)},
              {"Segment /v1/batch of 100 (ParseSegmentIo)", seg(true), seg(false)}};
  for (const Row& r : rows) {
    const double d = fast_only ? 0 : Best(rounds, r.dom), f = Best(rounds, r.fast);
    std::printf("| %s | %.0f | %.0f | %.2fx |\n", r.name, d, f, f / d);
  }
  return 0;
}
