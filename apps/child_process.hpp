// Running this same gtune binary as a child process (simulate --processes, experiment cells).
#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <string>
#include <vector>

namespace gt::cli {

// fork + exec of /proc/self/exe with `args`; stdout and stderr go to `log_file` when it is not
// empty (created or truncated). Returns the child's pid; throws gt::Error when it cannot start.
pid_t spawn_self(const std::vector<std::string>& args, const std::string& log_file = "");

struct ChildExit {
  int status = 0;        // exit code, or 128 + signal
  long peak_rss_kb = 0;  // the child's peak resident set size
};
ChildExit wait_child(pid_t pid);

}  // namespace gt::cli
