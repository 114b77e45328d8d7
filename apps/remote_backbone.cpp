// See remote_backbone.hpp.
#include "apps/remote_backbone.hpp"

#include <chrono>

#include "common/error.hpp"
#include "control/address.hpp"
#include "protocols/codec.hpp"

namespace gt::cli {
namespace {

ActorConfig configured(const NetworkOptions& net) {
  ActorConfig c;
  net.configure(c);
  return c;
}

}  // namespace

RemoteBackbone::RemoteBackbone(const std::string& host_port, const NetworkOptions& network,
                               const RunConfig& cfg, const Segments& seg,
                               std::shared_ptr<Metrics> metrics)
    : acfg_(configured(network)), sys_(acfg_), self_(sys_), metrics_(std::move(metrics)) {
  const auto where = parse_host_port(host_port, "--connect");
  network.check(where.host, "--connect");
  auto found = connect_server(sys_, network, where.host, where.port);
  if (!found)
    throw Error("cannot reach the server at " + host_port + ": " +
                connect_error_text(found.error()));
  server_ = *found;
  const auto h = generation_hello(seg, cfg.run.name, parse_quant_scheme(cfg.strategy.quantize_a2));
  session_ = decode(ask<SessionAccept>(encode(h))).header.session;
  a1_scheme_ = parse_quant_scheme(cfg.strategy.quantize_a1);
}

RemoteBackbone::~RemoteBackbone() {
  SessionBye bye;
  bye.header = Header{kProtocolVersion, session_, 0};
  self_->send(server_, encode(bye));
}

GenerationClient RemoteBackbone::generation() {
  return GenerationClient(session_, a1_scheme_, [this](GenerateRequest r) {
    const auto up = encode(r);
    const auto down = ask<GenerateReply>(up);
    *wire_bytes_ += int64_t(up.bytes.size() + down.bytes.size());
    if (metrics_) {
      metrics_->add_wire("server", "up", "generate_up", "generate", int64_t(up.bytes.size()));
      metrics_->add_wire("server", "down", "generate_down", "generate", int64_t(down.bytes.size()));
    }
    return decode(down);
  });
}

template <class Rep, class Req>
Encoded<Rep> RemoteBackbone::ask(const Encoded<Req>& msg) {
  Encoded<Rep> out;
  self_->request(server_, std::chrono::minutes(10), msg)
      .receive([&](Encoded<Rep>& rep) { out = std::move(rep); },
               [&](caf::error& e) { throw Error("the server refused: " + describe(e)); });
  return out;
}

}  // namespace gt::cli
