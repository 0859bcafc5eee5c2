// The channels query kind's knobs for tests (the kind itself registers in query_kinds.cc).
#pragma once

namespace ns {

// Threads of the channels passes: 0 = QueryThreads(); 1 = the serial path. Tests run both
// on the same stores and compare the answers. Process-wide; not for concurrent change.
struct ChannelsTuning {
  int threads = 0;
  // Thread t takes blocks t, t + threads, ... instead of the next free one: on a test's small
  // store the calling thread would otherwise often take every block before the others start.
  bool strided = false;
};
ChannelsTuning& ChannelsScanTuning();

}  // namespace ns
