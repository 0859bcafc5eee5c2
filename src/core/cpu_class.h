// CPU classes of threads: bulk work (parsing and storing ingested events, background flushes
// and compactions) yields the CPU to interactive work (queries, the console) when both want
// it, so a query under a saturating ingest stays near its idle time (issue 15: "queries' p99
// within 2x of idle"). A class is the calling thread's nice value: interactive threads run at
// the nice value the process started with, bulk ones BulkNice() above it (at most 19).
// Request workers switch class per request, which needs permission to lower a nice value
// again (root with CAP_SYS_NICE, or RLIMIT_NICE, e.g. systemd's LimitNICE=+0); without it
// request workers stay interactive (background workers, which never switch back, are still
// made bulk).
#pragma once

namespace ns {

enum class CpuClass { kInteractive, kBulk };

// How far above the process's nice value bulk threads run, 0-19 (clamped); 0 turns classes
// off. Set before the threads that use it start (`northstar serve --bulk-nice`, first thing).
// Until set: 0.
// CFS weights: nice 0 = 1024, nice 3 = 526, nice 5 = 335, nice 10 = 110; so at nice 5 a bulk
// thread sharing a core with one interactive thread gets about a quarter of it, not half.
// `serve` defaults to kDefaultBulkNice where request workers can switch classes, else 0
// (docs/decisions.md "CPU classes"; it was 3 while an event cost more CPU).
constexpr int kDefaultBulkNice = 5;
void SetBulkNice(int nice);
int BulkNice();

// Whether request workers can switch classes here (probed once: raise a scratch thread's
// nice, then lower it back).
bool CpuClassesAvailable();

// Puts the calling thread in class c; a no-op when it is there already, when BulkNice() is 0
// or when classes are not available.
void SetThreadCpuClass(CpuClass c);

// Bulk for the lifetime of the calling thread (background workers that never serve queries):
// needs no permission, since raising a nice value needs none.
void MakeThreadBulk();

}  // namespace ns
