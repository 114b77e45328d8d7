// See control_api.hpp.
#include "control/control_api.hpp"

#include <algorithm>
#include <memory>

namespace gt {
namespace {

using nlohmann::json;

struct Route {
  const char* method;
  const char* path;
};
constexpr Route kRoutes[] = {
    {"GET", "/status"}, {"POST", "/switch"}, {"POST", "/pause"}, {"POST", "/resume"}};

// Thrown while reading a request that cannot be served; becomes {"error": reason}.
struct Refusal {
  int status;
  std::string reason;
};

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

std::string route_list() {
  std::vector<std::string> routes;
  for (const auto& r : kRoutes) routes.push_back(std::string(r.method) + " " + r.path);
  return join(routes);
}

const Route& find_route(const std::string& method, const std::string& path) {
  const auto* end = std::end(kRoutes);
  const auto* r =
      std::find_if(std::begin(kRoutes), end, [&](const Route& x) { return path == x.path; });
  if (r == end) throw Refusal{404, "no route " + path + "; the routes are " + route_list()};
  if (method != r->method) throw Refusal{405, path + " accepts " + r->method + ", not " + method};
  return *r;
}

// The strategy named by a /switch body {"to": NAME}.
std::string switch_target(const std::string& body, const std::vector<std::string>& strategies) {
  const auto allowed = "; \"to\" is one of: " + join(strategies);
  const auto bad = [&](const std::string& what) {
    return Refusal{400, "/switch: " + what + allowed};
  };
  const auto j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    throw bad("the body must be a JSON object {\"to\": NAME}");
  for (const auto& item : j.items())
    if (item.key() != "to") throw bad("unknown key \"" + item.key() + "\"");
  const auto it = j.find("to");
  if (it == j.end()) throw bad("missing \"to\"");
  if (!it->is_string()) throw bad("\"to\" must be a string");
  const auto to = it->get<std::string>();
  if (std::find(strategies.begin(), strategies.end(), to) == strategies.end())
    throw bad("unknown strategy '" + to + "'");
  return to;
}

template <class F>
const F& provided(const F& action, const std::string& path) {
  if (!action) throw Refusal{501, path + " is not available in this run"};
  return action;
}

// 200 {"ok": true, ...extra} when the action agreed, 409 {"error": why} when it refused.
HttpAnswer outcome(const std::string& refusal, json extra = json::object()) {
  if (!refusal.empty()) throw Refusal{409, refusal};
  extra["ok"] = true;
  return {200, std::move(extra)};
}

HttpAnswer serve(const ControlActions& a, const HttpRequest& req) {
  const auto path = req.target.substr(0, req.target.find('?'));
  find_route(req.method, path);
  if (path == "/status") return {200, provided(a.status, path)()};
  if (path == "/pause") return outcome(provided(a.pause, path)());
  if (path == "/resume") return outcome(provided(a.resume, path)());
  const auto& switch_to = provided(a.switch_to, path);
  const auto to = switch_target(req.body, a.strategies);
  return outcome(switch_to(to), {{"to", to}});
}

}  // namespace

Handler control_routes(ControlActions actions) {
  auto shared = std::make_shared<const ControlActions>(std::move(actions));
  return [shared](const HttpRequest& req) -> HttpAnswer {
    try {
      return serve(*shared, req);
    } catch (const Refusal& r) {
      return {r.status, {{"error", r.reason}}};
    }
  };
}

}  // namespace gt
