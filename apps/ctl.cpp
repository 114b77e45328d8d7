// gtune ctl: operate a running simulation's scheduler through its control API
// (HTTP + JSON on loopback): status, switch --to NAME, pause, resume.
#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/commands.hpp"
#include "common/error.hpp"
#include "control/address.hpp"
#include "control/http_client.hpp"

namespace gt::cli {
namespace {

struct CtlOptions {
  std::string address = "127.0.0.1:9470";
  int timeout_s = 10;
  std::string to;
};

std::string json_text(const nlohmann::json& j, int indent) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

// The API's own reason for a refusal, or the whole reply when it gave none.
std::string refusal(const HttpAnswer& answer) {
  const auto& body = answer.body;
  if (body.is_object() && body.contains("error") && body["error"].is_string())
    return body["error"].get<std::string>();
  return "HTTP " + std::to_string(answer.status) + ": " + json_text(body, -1);
}

void call(const CtlOptions& opt, const char* method, const char* target, const std::string& body) {
  const auto where = parse_host_port(opt.address, "--address");
  const auto answer =
      http_call(where.host, where.port, method, target, body, std::chrono::seconds(opt.timeout_s));
  if (answer.status < 200 || answer.status > 299) throw Error(refusal(answer));
  std::printf("%s\n", json_text(answer.body, 2).c_str());
}

CLI::App* add_action(CLI::App& ctl, const char* name, const char* help,
                     const std::shared_ptr<CtlOptions>& opt) {
  auto* cmd = ctl.add_subcommand(name, help);
  cmd->add_option("--address", opt->address, "the control API's HOST:PORT")->capture_default_str();
  cmd->add_option("--timeout", opt->timeout_s, "seconds to wait for an answer")
      ->capture_default_str()
      ->check(CLI::Range(1, 3600));
  return cmd;
}

}  // namespace

void add_ctl(CLI::App& app) {
  auto opt = std::make_shared<CtlOptions>();
  auto* ctl = app.add_subcommand(
      "ctl", "Control a running simulation's scheduler: status, switch, pause, resume");
  ctl->require_subcommand(1);
  add_action(*ctl, "status", "print the scheduler's state as JSON", opt)->callback([opt] {
    call(*opt, "GET", "/status", "");
  });
  auto* to = add_action(*ctl, "switch", "switch the run to another strategy", opt);
  to->add_option("--to", opt->to, "the strategy to switch to, e.g. gradfree")->required();
  to->callback([opt] { call(*opt, "POST", "/switch", json_text({{"to", opt->to}}, -1)); });
  add_action(*ctl, "pause", "pause training after the current step", opt)->callback([opt] {
    call(*opt, "POST", "/pause", "");
  });
  add_action(*ctl, "resume", "resume a paused run", opt)->callback([opt] {
    call(*opt, "POST", "/resume", "");
  });
}

}  // namespace gt::cli
