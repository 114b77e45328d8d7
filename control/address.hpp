// "HOST:PORT" as given on the command line, for the control API.
#pragma once

#include <cstdint>
#include <string>

namespace gt {

struct HostPort {
  std::string host;  // a dotted IPv4 address or "localhost"
  uint16_t port = 0;
};

// Parses "HOST:PORT" (IPv4 or "localhost", port 0-65535); throws gt::Error
// prefixed with `what` (e.g. "--address") on bad input.
HostPort parse_host_port(const std::string& text, const std::string& what = "address");

// True for "localhost", 127.0.0.0/8 and "::1".
bool is_loopback(const std::string& host);

}  // namespace gt
