// What a long-running gtune process (a node, the serve endpoint) does around its work: tell a
// waiting script its port, and run until SIGINT or SIGTERM.
#pragma once

#include <cstdint>
#include <string>

namespace gt::cli {

// Writes `port` to `path` atomically (nothing when path is empty), so a script can wait for it.
void write_port_file(const std::string& path, uint16_t port);

// Blocks until SIGINT or SIGTERM.
void wait_for_signal();

// Once a node's work and outputs are done: if tearing down its actor system takes longer than
// `grace` (CAF 0.17 can wait forever on a detached actor a peer still references), the process
// says so and exits with status 0 then.
void exit_if_shutdown_hangs(const std::string& who, double grace_seconds = 10);

}  // namespace gt::cli
