// CAF registration and project errors.
#include "protocols/interfaces.hpp"

namespace gt {
namespace {
constexpr caf::atom_value kWireCategory = caf::atom("gtwire");

std::string render(uint8_t code, const caf::message& ctx) {
  std::string s = code == static_cast<uint8_t>(wire_errc::rejected) ? "rejected" : "failed";
  if (!ctx.empty() && ctx.match_elements<std::string>()) s += ": " + ctx.get_as<std::string>(0);
  return s;
}
}  // namespace

caf::error make_wire_error(wire_errc code, std::string reason) {
  return caf::error(static_cast<uint8_t>(code), kWireCategory,
                    caf::make_message(std::move(reason)));
}

std::string describe(const caf::error& err) {
  if (err.category() == kWireCategory) return render(err.code(), err.context());
  return caf::to_string(err);
}

bool is_wire_error(const caf::error& err) {
  return err.category() == kWireCategory;
}

std::string reason_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (is_wire_error(err) && ctx.match_elements<std::string>()) return ctx.get_as<std::string>(0);
  return describe(err);
}

std::string describe_exit(const caf::error& reason) {
  if (reason == caf::exit_reason::remote_link_unreachable)
    return "its connection closed: the process died or the network failed";
  if (reason == caf::exit_reason::user_shutdown) return "it was shut down";
  if (reason == caf::exit_reason::kill) return "it was killed";
  return describe(reason);
}

void register_protocol(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::gtune>();
  // Actor handles that cross processes inside messages (a client joining a scheduler node, a
  // scheduler an attacker node should alarm): CAF 0.17 names them on the wire.
  cfg.add_message_type<client_actor>("gt::client_actor");
  cfg.add_message_type<scheduler_actor>("gt::scheduler_actor");
  cfg.add_error_category(kWireCategory, [](uint8_t code, caf::atom_value, const caf::message& ctx) {
    return render(code, ctx);
  });
}

}  // namespace gt
