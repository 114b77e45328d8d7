// See client_channel.hpp.
#include "strategies/client_channel.hpp"

#include "common/error.hpp"
#include "protocols/codec.hpp"
#include "protocols/wire_tensor.hpp"

namespace gt {

ClientChannel::ClientChannel(std::shared_ptr<ClientModel> model,
                             std::unique_ptr<ClientStrategy> strategy)
    : model_(std::move(model)), strategy_(std::move(strategy)) {}

SessionHello ClientChannel::hello(const std::string& client_name) const {
  const auto& seg = model_->seg;
  const auto terms = strategy_->terms();
  SessionHello h;
  h.header = header();
  h.client_name = client_name;
  h.strategy = strategy_->name();
  h.model_type = seg.cfg.model_type;
  h.num_layers = seg.cfg.num_layers;
  h.hidden_size = seg.cfg.hidden_size;
  h.n_in = seg.split.n_in;
  h.n_out = seg.split.n_out;
  h.backward = terms.backward;
  h.quant_a2 = static_cast<uint8_t>(terms.a2);
  h.quant_g1 = static_cast<uint8_t>(terms.g1);
  return h;
}

Outgoing ClientChannel::send(ClientAction action) {
  if (auto* a = std::get_if<ActivationsUp>(&action)) {
    ForwardRequest req;
    req.header = header();
    req.activations = to_wire(a->a1, a->scheme);
    req.attention_mask = to_wire(a->attention_mask);
    req.keep_graph = a->keep_graph;
    shape_ = a->a1.sizes().vec();
    return req;
  }
  if (auto* g = std::get_if<GradientsUp>(&action)) {
    BackwardRequest req;
    req.header = header();
    req.gradient = to_wire(g->g2, g->scheme);
    return req;
  }
  in_flight_ = false;
  ++step_;
  return std::get<StepOutcome>(action);
}

Outgoing ClientChannel::begin_step(const StepInput& in) {
  if (in_flight_) throw Error("a step is already in flight");
  in_flight_ = true;
  return send(strategy_->begin_step(in));
}

torch::Tensor ClientChannel::a2_of(ForwardReply&& reply) const {
  return from_wire(std::move(reply.activations), "a2", shape_);
}

Outgoing ClientChannel::on_reply(ForwardReply reply) {
  if (!in_flight_) throw ProtocolError("activations_down: no step in flight");
  return send(strategy_->on_activations(a2_of(std::move(reply))));
}

Outgoing ClientChannel::on_reply(BackwardReply reply) {
  if (!in_flight_) throw ProtocolError("gradients_down: no step in flight");
  return send(strategy_->on_gradients(from_wire(std::move(reply.gradient), "g1", shape_)));
}

ForwardRequest ClientChannel::eval_request(const LmBatch& batch) {
  if (in_flight_) throw Error("evaluation during a step");
  auto up = strategy_->eval_up(batch);
  eval_batch_ = batch;
  ForwardRequest req;
  req.header = header();
  req.activations = to_wire(up.a1, up.scheme);
  req.attention_mask = to_wire(up.attention_mask);
  req.keep_graph = false;
  shape_ = up.a1.sizes().vec();
  return req;
}

std::pair<double, int64_t> ClientChannel::eval_loss(ForwardReply reply) {
  return strategy_->eval_loss(eval_batch_, a2_of(std::move(reply)));
}

void ClientChannel::set_strategy(std::unique_ptr<ClientStrategy> strategy) {
  if (in_flight_) throw Error("cannot change strategy during a step");
  strategy_ = std::move(strategy);
}

}  // namespace gt
