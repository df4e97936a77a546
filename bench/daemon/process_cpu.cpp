#include "process_cpu.hpp"

#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <unistd.h>

namespace currant::bench {

namespace {

// Fields after the command name of /proc/<pid>/stat (field 3 is index 0).
std::vector<std::string> stat_fields(pid_t pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return {};
    const auto close = line.rfind(')');
    if (close == std::string::npos) return {};
    std::istringstream rest(line.substr(close + 2));
    std::vector<std::string> fields;
    for (std::string field; rest >> field;) fields.push_back(field);
    return fields;
}

} // namespace

double process_cpu_seconds(pid_t pid) {
    // Nanoseconds on CPU of every live thread (/proc/<pid>/task/*/schedstat);
    // the clock-tick counts of /proc/<pid>/stat are only 10 ms precise.
    const std::string tasks = "/proc/" + std::to_string(pid) + "/task";
    if (DIR* dir = opendir(tasks.c_str())) {
        double ns = 0;
        bool any = false;
        while (const dirent* entry = readdir(dir)) {
            if (entry->d_name[0] == '.') continue;
            std::ifstream in(tasks + "/" + entry->d_name + "/schedstat");
            double on_cpu = 0;
            if (in >> on_cpu) {
                ns += on_cpu;
                any = true;
            }
        }
        closedir(dir);
        if (any) return ns / 1e9;
    }
    const std::vector<std::string> fields = stat_fields(pid);
    if (fields.size() < 13) return -1;
    // utime and stime are fields 14 and 15 of the whole line.
    const double ticks = std::stod(fields[11]) + std::stod(fields[12]);
    return ticks / double(sysconf(_SC_CLK_TCK));
}

std::vector<pid_t> child_processes(pid_t parent) {
    std::vector<pid_t> children;
    DIR* proc = opendir("/proc");
    if (!proc) return children;
    while (const dirent* entry = readdir(proc)) {
        char* end = nullptr;
        const long pid = std::strtol(entry->d_name, &end, 10);
        if (*end != '\0' || pid <= 0) continue;
        const std::vector<std::string> fields = stat_fields(pid_t(pid));
        if (fields.size() > 1 && std::stol(fields[1]) == parent) children.push_back(pid_t(pid));
    }
    closedir(proc);
    return children;
}

} // namespace currant::bench
