// jemalloc's options, read at its first allocation (the `malloc_conf` symbol of the program;
// the MALLOC_CONF environment variable still overrides it). Compiled into the executables that
// link jemalloc (CMakeLists.txt), nowhere else.
//
// oversize_threshold:0 -- by default jemalloc gives allocations of 8 MiB and more an arena of
// their own that returns freed pages to the kernel at once (madvise), so every query that
// allocates a large scratch array (a day's merged row order, a funnel's per-person state)
// faults all of its pages in again: 16 % of a query over today's fresh rows went to page
// faults and madvise. Without the dedicated arena, freed large extents are kept for the usual
// decay time (dirty_decay_ms, 10 s) and the next query reuses them (docs/decisions.md,
// "Collection asks meta.db less; large allocations keep their pages; ...").
extern "C" {
extern const char* malloc_conf;
const char* malloc_conf = "oversize_threshold:0";
}
