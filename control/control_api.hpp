// The scheduler's control API as HTTP routes over callbacks, so that this
// library knows nothing about actors:
//   GET  /status                      -> actions.status()
//   POST /switch  {"to": "gradfree"}  -> actions.switch_to("gradfree")
//   POST /pause, POST /resume         -> actions.pause(), actions.resume()
// Errors are {"error": "reason"}: 400 bad request, 404 unknown path, 405 wrong
// method, 409 refused by the action, 501 action not provided.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "control/http_server.hpp"

namespace gt {

struct ControlActions {
  std::vector<std::string> strategies;  // names accepted by /switch
  std::function<nlohmann::json()> status;
  // Each returns "" on success or the reason it refuses (-> 409).
  std::function<std::string(const std::string& to)> switch_to;
  std::function<std::string()> pause, resume;
};

Handler control_routes(ControlActions actions);

}  // namespace gt
