// One blocking HTTP request to a JSON API (the control API, for `gtune ctl`) or a text page.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "control/http_server.hpp"

namespace gt {

// Sends `method target` with `body` (JSON, may be empty) to host:port and
// returns the status and the parsed JSON reply, whatever the status (a text/plain
// reply, e.g. metrics, comes back as content_type and text). Throws gt::Error naming
// host:port when nothing answers there within `timeout`, or when the reply is neither.
HttpAnswer http_call(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& target, const std::string& body,
                     std::chrono::seconds timeout);

}  // namespace gt
