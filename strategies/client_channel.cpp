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
  h.compress = static_cast<uint8_t>(compression_);
  return h;
}

Outgoing ClientChannel::send(ClientAction action) {
  if (auto* a = std::get_if<ActivationsUp>(&action)) {
    const auto chunks = std::min<int64_t>(strategy_->micro_batches(), a->a1.size(0));
    if (a->keep_graph && chunks > 1) return pipeline(*a, chunks);
    ForwardRequest req;
    req.header = header();
    req.activations = to_wire(a->a1, a->scheme, a->attention_mask);
    req.attention_mask = to_wire(a->attention_mask);
    req.keep_graph = a->keep_graph;
    shape_ = a->a1.sizes().vec();
    mask_ = a->attention_mask;
    return req;
  }
  if (auto* g = std::get_if<GradientsUp>(&action)) {
    BackwardRequest req;
    req.header = header();
    req.gradient = to_wire(g->g2, g->scheme, mask_);
    return req;
  }
  in_flight_ = false;
  micro_.clear();
  ++step_;
  return std::get<StepOutcome>(action);
}

ForwardRequests ClientChannel::pipeline(const ActivationsUp& up, int64_t chunks) {
  const auto B = up.a1.size(0);
  shape_ = up.a1.sizes().vec();
  mask_ = up.attention_mask;
  micro_.assign(size_t(chunks), Micro{});
  next_a2_ = g1_received_ = 0;
  ForwardRequests out;
  int64_t row = 0;
  for (int64_t i = 0; i < chunks; ++i) {  // B split as evenly as possible, larger chunks first
    auto& m = micro_[size_t(i)];
    m.first_row = row;
    m.rows = B / chunks + (i < B % chunks ? 1 : 0);
    ForwardRequest req;
    req.header = header();
    req.header.micro = uint32_t(i);
    req.header.micros = uint32_t(chunks);
    const auto mask = up.attention_mask.narrow(0, row, m.rows);
    req.activations = to_wire(up.a1.narrow(0, row, m.rows), up.scheme, mask);
    req.attention_mask = to_wire(mask);
    req.keep_graph = true;
    out.push_back(std::move(req));
    row += m.rows;
  }
  return out;
}

size_t ClientChannel::micro_of(const Header& h, const char* kind) const {
  if (h.step != step_ || h.micros != micro_.size() || h.micro >= h.micros)
    throw ProtocolError(std::string(kind) + ": micro-batch " + std::to_string(h.micro) + " of " +
                        std::to_string(h.micros) + " of step " + std::to_string(h.step) +
                        "; the step in flight is " + std::to_string(step_) + " in " +
                        std::to_string(micro_.size()) + " micro-batches");
  return h.micro;
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
  if (micro_.empty()) return send(strategy_->on_activations(a2_of(std::move(reply))));
  const auto i = micro_of(reply.header, "activations_down");
  if (i != next_a2_)
    throw ProtocolError("activations_down: micro-batch " + std::to_string(i) + " where " +
                        std::to_string(next_a2_) + " was due");
  const auto& m = micro_[i];
  auto a2 = from_wire(std::move(reply.activations), "a2", {m.rows, shape_[1], shape_[2]});
  auto action = strategy_->on_micro_activations(a2, m.first_row);
  auto* g = std::get_if<GradientsUp>(&action);
  if (!g) throw Error(strategy_->name() + ": a micro-batch's a2 must give its g2");
  BackwardRequest req;
  req.header = header();
  req.header.micro = uint32_t(i);
  req.header.micros = uint32_t(micro_.size());
  req.gradient = to_wire(g->g2, g->scheme, mask_.narrow(0, m.first_row, m.rows));
  ++next_a2_;
  return req;
}

Outgoing ClientChannel::on_reply(BackwardReply reply) {
  if (!in_flight_) throw ProtocolError("gradients_down: no step in flight");
  if (micro_.empty())
    return send(strategy_->on_gradients(from_wire(std::move(reply.gradient), "g1", shape_)));
  const auto i = micro_of(reply.header, "gradients_down");
  auto& m = micro_[i];
  if (i >= next_a2_ || m.g1.defined())
    throw ProtocolError("gradients_down: micro-batch " + std::to_string(i) +
                        (m.g1.defined() ? " twice" : " before its g2 was sent"));
  m.g1 = from_wire(std::move(reply.gradient), "g1", {m.rows, shape_[1], shape_[2]});
  if (++g1_received_ < micro_.size()) return AwaitReplies{};
  std::vector<torch::Tensor> parts;
  for (const auto& part : micro_) parts.push_back(part.g1);
  micro_.clear();
  return send(strategy_->on_gradients(torch::cat(parts, 0)));  // (B, T, C)
}

ForwardRequest ClientChannel::eval_request(const LmBatch& batch) {
  if (in_flight_) throw Error("evaluation during a step");
  auto up = strategy_->eval_up(batch);
  eval_batch_ = batch;
  ForwardRequest req;
  req.header = header();
  req.activations = to_wire(up.a1, up.scheme, up.attention_mask);
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
