// See node_parts.hpp.
#include "apps/node_parts.hpp"

#include <functional>

#include "actors/attacker_relay.hpp"
#include "apps/reconnector.hpp"
#include "apps/run_plan.hpp"
#include "common/error.hpp"

namespace gt::cli {

std::pair<std::string, uint16_t> host_port(const std::string& s, const char* option) {
  const auto colon = s.rfind(':');
  if (colon == std::string::npos)
    throw Error(std::string(option) + ": expected HOST:PORT, got '" + s + "'");
  const auto digits = s.substr(colon + 1);
  const auto bad = [&] {
    return Error(std::string(option) + ": '" + digits + "' is not a port number");
  };
  // All digits: stoul alone would take "80x" as 80, " 80" as 80 and "-1" as ULONG_MAX.
  if (digits.empty() || digits.size() > 5 ||
      digits.find_first_not_of("0123456789") != std::string::npos)
    throw bad();
  const auto port = std::stoul(digits);
  if (port > 65535) throw bad();
  return {s.substr(0, colon), static_cast<uint16_t>(port)};
}

bool uses_emulators(const RunConfig& cfg) {
  return plan_uses(cfg, StrategyKind::offsite) || plan_uses(cfg, StrategyKind::offline) ||
         plan_uses(cfg, StrategyKind::privatize) ||
         (cfg.scheduler.budget_bytes > 0 && needs_emulator(to_string(cfg.scheduler.fallback)));
}

AttackerLink::AttackerLink(caf::actor_system& sys, const NodeOptions& opt, const RunConfig& cfg) {
  if (opt.attacker.empty()) return;
  auto [host, port] = host_port(opt.attacker, "--attacker");
  opt.network.check(host, "--attacker");
  std::function<caf::expected<attacker_actor>()> connect = [&sys, &opt, host = host, port = port] {
    return connect_party<attacker_actor>(sys, "attacker", opt.network, host, port);
  };
  const auto where = "the attacker at " + opt.attacker;
  const auto a = connect_at_start<attacker_actor>(opt, where, connect);
  caf::actor reconnector;
  if (cfg.network.reconnect_seconds > 0)
    reconnector = spawn_reconnector(sys, where, any_party(connect),
                                    std::chrono::seconds(cfg.network.reconnect_seconds));
  relay_ = sys.spawn(attacker_relay, a, reconnector, where);
}

AttackerLink::~AttackerLink() {
  if (relay_) caf::anon_send_exit(relay_, caf::exit_reason::user_shutdown);
}

}  // namespace gt::cli
