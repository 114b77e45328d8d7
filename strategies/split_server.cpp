// See split_server.hpp. Every check that protects the server from a bad
// client raises ProtocolError before any state changes.
#include "strategies/split_server.hpp"

#include "protocols/codec.hpp"

namespace gt {
namespace {
QuantScheme scheme_from_wire(uint8_t code, const char* field) {
  if (code > static_cast<uint8_t>(QuantScheme::int4))
    throw ProtocolError(std::string(field) + ": unknown quantization scheme " +
                        std::to_string(code));
  return static_cast<QuantScheme>(code);
}
}  // namespace

SplitServer::SplitServer(Segments seg, std::string name)
    : seg_(std::move(seg)), name_(std::move(name)) {}

SessionAccept SplitServer::open(const SessionHello& hello) {
  const auto& c = seg_.cfg;
  if (hello.model_type != c.model_type || hello.num_layers != c.num_layers ||
      hello.hidden_size != c.hidden_size)
    throw ProtocolError("client model (" + hello.model_type + ", " +
                        std::to_string(hello.num_layers) + " layers, hidden " +
                        std::to_string(hello.hidden_size) + ") is not the server's (" +
                        c.model_type + ", " + std::to_string(c.num_layers) + " layers, hidden " +
                        std::to_string(c.hidden_size) + ")");
  if (hello.n_in != seg_.split.n_in || hello.n_out != seg_.split.n_out)
    throw ProtocolError("client cuts the model at n_in=" + std::to_string(hello.n_in) +
                        ", n_out=" + std::to_string(hello.n_out) +
                        "; this server serves n_in=" + std::to_string(seg_.split.n_in) +
                        ", n_out=" + std::to_string(seg_.split.n_out));
  // Validate everything before creating the session.
  scheme_from_wire(hello.quant_a2, "quant_a2");
  scheme_from_wire(hello.quant_g1, "quant_g1");
  const auto id = next_session_++;
  auto& s = sessions_[id];
  s.client_name = hello.client_name;
  s.strategy = hello.strategy;
  s.a2_scheme = scheme_from_wire(hello.quant_a2, "quant_a2");
  s.g1_scheme = scheme_from_wire(hello.quant_g1, "quant_g1");
  SessionAccept accept;
  accept.header = Header{kProtocolVersion, id, 0};
  accept.server_name = name_;
  return accept;
}

ServerSession& SplitServer::session(const Header& h) {
  auto it = sessions_.find(h.session);
  if (it == sessions_.end()) throw ProtocolError("unknown session " + std::to_string(h.session));
  return it->second;
}

ForwardReply SplitServer::forward(const ForwardRequest& req) {
  auto& s = session(req.header);
  const auto C = seg_.cfg.hidden_size;
  auto mask = from_wire(req.attention_mask, "attention_mask", {-1, -1});
  if (mask.scalar_type() != torch::kLong) throw ProtocolError("attention_mask: must be int64");
  const auto B = mask.size(0), T = mask.size(1);
  if (B == 0 || T == 0) throw ProtocolError("attention_mask: empty batch");
  if (mask.lt(0).logical_or(mask.gt(1)).any().item<bool>())
    throw ProtocolError("attention_mask: values must be 0 or 1");
  if (T > seg_.cfg.max_positions && seg_.cfg.family == Family::opt)
    throw ProtocolError("sequence of " + std::to_string(T) + " tokens exceeds the model's " +
                        std::to_string(seg_.cfg.max_positions) + " positions");
  auto a1 = from_wire(req.activations, "a1", {B, T, C}).to(seg_.dtype);
  if (!torch::isfinite(a1).all().item<bool>()) throw ProtocolError("a1: contains NaN or infinity");
  auto ctx = make_attention_context(seg_.cfg, mask, seg_.dtype);
  ForwardReply reply;
  reply.header = req.header;
  if (req.keep_graph) {
    a1.requires_grad_(true);
    s.a1 = a1;
    s.a2 = seg_.backbone->forward(a1, ctx);
    s.pending_step = req.header.step;
    reply.activations = to_wire(s.a2, s.a2_scheme);
  } else {
    torch::NoGradGuard no_grad;
    reply.activations = to_wire(seg_.backbone->forward(a1, ctx), s.a2_scheme);
  }
  s.last_step = req.header.step;
  return reply;
}

BackwardReply SplitServer::backward(const BackwardRequest& req) {
  auto& s = session(req.header);
  if (s.pending_step != req.header.step || !s.a2.defined())
    throw ProtocolError("gradient for step " + std::to_string(req.header.step) +
                        " without a pending forward of that step");
  auto g2 = from_wire(req.gradient, "g2", s.a2.sizes().vec()).to(s.a2.scalar_type());
  if (!torch::isfinite(g2).all().item<bool>()) throw ProtocolError("g2: contains NaN or infinity");
  s.a2.backward(g2);  // through the frozen backbone to the received a1
  BackwardReply reply;
  reply.header = req.header;
  reply.gradient = to_wire(s.a1.grad(), s.g1_scheme);
  s.a1 = s.a2 = torch::Tensor();
  s.pending_step = -1;
  return reply;
}

void SplitServer::close(uint64_t session) {
  sessions_.erase(session);
}

}  // namespace gt
