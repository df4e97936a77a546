// CPU time of other processes (currantd, PostgreSQL's backends, workers)
// for the mirror benchmark's tables, read from /proc.
#pragma once

#include <sys/types.h>
#include <vector>

namespace currant::bench {

// CPU time of a process's live threads in seconds (schedstat, else
// utime + stime of /proc/<pid>/stat); -1 if it is gone.
double process_cpu_seconds(pid_t pid);
// Children of a process (from /proc/*/stat), for the postmaster's processes.
std::vector<pid_t> child_processes(pid_t parent);

} // namespace currant::bench
