// See generation_client.hpp.
#include "strategies/generation_client.hpp"

#include "protocols/codec.hpp"

namespace gt {

SessionHello generation_hello(const Segments& seg, const std::string& client_name,
                              QuantScheme a2_scheme) {
  SessionHello h;
  h.client_name = client_name;
  h.strategy = "generate";
  h.model_type = seg.cfg.model_type;
  h.num_layers = seg.cfg.num_layers;
  h.hidden_size = seg.cfg.hidden_size;
  h.n_in = seg.split.n_in, h.n_out = seg.split.n_out;
  h.backward = false;
  h.quant_a2 = static_cast<uint8_t>(a2_scheme);
  return h;
}

GenerationClient::GenerationClient(uint64_t session, QuantScheme a1_scheme, Send send)
    : session_(session), a1_scheme_(a1_scheme), send_(std::move(send)) {}

Header GenerationClient::header() const {
  return Header{kProtocolVersion, session_, steps_};
}

torch::Tensor GenerationClient::step(const torch::Tensor& a1, const torch::Tensor& new_mask) {
  GenerateRequest req;
  req.header = header();
  req.generation = generation_;
  const auto mask = new_mask.to(torch::kCPU, torch::kLong);
  req.activations = to_wire(a1, a1_scheme_, mask);  // padding rows left out, as in training
  req.attention_mask = to_wire(mask);
  auto reply = send_(std::move(req));
  if (generation_ != 0 && reply.generation != generation_)
    throw ProtocolError("the server answered for generation " + std::to_string(reply.generation) +
                        ", not " + std::to_string(generation_));
  generation_ = reply.generation;
  ++steps_;
  return from_wire(std::move(reply.activations), "a2", {a1.size(0), a1.size(1), a1.size(2)})
      .to(a1.device(), a1.scalar_type());
}

void GenerationClient::end() {
  if (generation_ == 0) return;
  GenerateRequest req;
  req.header = header();
  req.generation = generation_;
  req.attention_mask = to_wire(torch::zeros({0, 0}, torch::kLong));  // no positions: just end
  req.activations = to_wire(torch::zeros({0, 0, 0}));
  req.last = true;
  send_(std::move(req));
  generation_ = 0;
}

}  // namespace gt
