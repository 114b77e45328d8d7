// Pipelined micro-batches (strategy.micro_batches): split and online steps sent in row chunks
// train as the whole batch does; the server keeps one graph per micro-batch and refuses a
// backward that names none; the channel refuses replies out of turn.
#include <deque>

#include "common/error.hpp"
#include "models/lora.hpp"
#include "protocols/codec.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/split_server.hpp"
#include "strategies/strategy_factory.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/test_paths.hpp"

namespace {

using doctest::Contains;

template <class T>
T wire(const T& m) {
  return gt::decode(gt::encode(m));
}

// A client's adapters (trainable, plain SGD: an update is linear in the gradients, so the
// rounding-level differences of a pipelined step stay rounding-level in the weights).
std::shared_ptr<gt::ClientModel> client_model(double lr = 0.05) {
  auto model = gt::load_decoder(gt::test::fixture("hf-reference/opt-tiny-s1"));
  auto m = std::make_shared<gt::ClientModel>();
  m->seg = gt::split_model(model, {1, 1});
  gt::set_trainable(*model, gt::TrainMode::frozen);
  gt::set_trainable(*m->seg.input, gt::TrainMode::full);
  gt::set_trainable(*m->seg.output, gt::TrainMode::full);
  m->optimizer = std::make_shared<torch::optim::SGD>(
      gt::unique_parameters({m->seg.input.get(), m->seg.output.get()}),
      torch::optim::SGDOptions(lr));
  return m;
}

gt::SplitServer make_server() {
  auto model = gt::load_decoder(gt::test::fixture("hf-reference/opt-tiny-s1"));
  gt::set_trainable(*model, gt::TrainMode::frozen);
  return gt::SplitServer(gt::split_model(model, {1, 1}), "server");
}

// Five rows, two of them right-padded (three chunks are then 2, 2, 1 rows).
gt::LmBatch batch_of(int64_t vocab, int64_t step) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(300 + step);
  auto ids = torch::randint(3, vocab, {5, 9}, gen, torch::kLong);
  auto mask = torch::ones({5, 9}, torch::kLong);
  mask.index_put_({1, torch::indexing::Slice(6)}, 0);
  mask.index_put_({4, torch::indexing::Slice(3)}, 0);
  return {ids, mask, ids.masked_fill(mask.eq(0), -100)};
}

struct Messages {
  int64_t forward = 0, backward = 0;
};

// One step of any strategy, every message through the codec, in the order the client actor
// sends them: a pipelined step's forwards all at once, then each g2 as its a2 is handled. With
// `g1_reversed` the g1 chunks come back last to first (any order must do).
gt::StepOutcome run_step(gt::ClientChannel& c, gt::SplitServer& s, const gt::StepInput& in,
                         Messages& n, bool g1_reversed = false) {
  std::deque<gt::Outgoing> todo{c.begin_step(in)};
  std::vector<gt::BackwardReply> held;
  for (;;) {
    if (todo.empty()) {  // only held g1 chunks are left
      REQUIRE(!held.empty());
      todo.push_back(c.on_reply(wire(held.back())));
      held.pop_back();
    }
    auto out = std::move(todo.front());
    todo.pop_front();
    if (auto* fs = std::get_if<gt::ForwardRequests>(&out)) {
      std::vector<gt::ForwardReply> replies;
      for (const auto& f : *fs) replies.push_back(s.forward(wire(f))), ++n.forward;
      for (auto& r : replies) todo.push_back(c.on_reply(wire(r)));
    } else if (auto* f = std::get_if<gt::ForwardRequest>(&out)) {
      ++n.forward;
      todo.push_back(c.on_reply(wire(s.forward(wire(*f)))));
    } else if (auto* b = std::get_if<gt::BackwardRequest>(&out)) {
      ++n.backward;
      auto reply = s.backward(wire(*b));
      if (g1_reversed && b->header.micros > 1)
        held.insert(held.begin(), reply);  // handed back from the last one
      else
        todo.push_back(c.on_reply(wire(reply)));
    } else if (std::holds_alternative<gt::AwaitReplies>(out)) {
      continue;
    } else {
      REQUIRE(todo.empty());
      REQUIRE(held.empty());
      return std::get<gt::StepOutcome>(out);
    }
  }
}

struct Trace {
  std::vector<gt::StepOutcome> steps;
  double eval_loss = 0;
  gt::NamedTensors adapters;
  Messages messages;
};

gt::StrategySettings settings_for(const std::string& strategy, int64_t micro_batches) {
  gt::StrategySettings s;
  if (strategy == "online") {  // every mechanism on the compute path
    s.online = {gt::QuantScheme::int8, gt::QuantScheme::none, gt::QuantScheme::int8,
                gt::QuantScheme::none};
    s.privacy.dcor_weight = 0.1;
    s.noise_std = 0.01;
    s.seed = 5;
  }
  s.micro_batches = micro_batches;
  return s;
}

Trace train(const std::string& strategy, int64_t micro_batches, bool g1_reversed = false,
            int steps = 3) {
  auto model = client_model();
  auto server = make_server();
  gt::ClientChannel c(
      model, gt::make_client_strategy(strategy, model, settings_for(strategy, micro_batches)));
  c.set_session(server.open(wire(c.hello("c"))).header.session);
  Trace t;
  const auto vocab = model->seg.cfg.vocab_size;
  for (int64_t step = 0; step < steps; ++step)
    t.steps.push_back(run_step(c, server, {batch_of(vocab, step), {}}, t.messages, g1_reversed));
  auto [sum, tokens] = c.eval_loss(wire(server.forward(wire(c.eval_request(batch_of(vocab, 9))))));
  t.eval_loss = sum / double(tokens);
  for (const auto& [name, value] : gt::trainable_adapters(model->seg))
    t.adapters[name] = value.detach().clone();
  return t;
}

// Losses to 1e-5 relative; weights to 1e-5 absolute (SGD: lr times rounding-level gradient
// differences; int8 g2 may round a code the other way, still far below 1e-5 here).
void check_close(const Trace& a, const Trace& b) {
  REQUIRE(a.steps.size() == b.steps.size());
  for (size_t i = 0; i < a.steps.size(); ++i) {
    CAPTURE(i);
    CHECK(a.steps[i].loss == doctest::Approx(b.steps[i].loss).epsilon(1e-5));
    CHECK(a.steps[i].dcor == doctest::Approx(b.steps[i].dcor).epsilon(1e-5));
    CHECK(a.steps[i].a1_quant_error == doctest::Approx(b.steps[i].a1_quant_error).epsilon(1e-5));
    CHECK(a.steps[i].tokens == b.steps[i].tokens);
  }
  CHECK(a.eval_loss == doctest::Approx(b.eval_loss).epsilon(1e-5));
  REQUIRE(a.adapters.size() == b.adapters.size());
  double worst = 0;
  for (const auto& [name, t] : a.adapters)
    worst = std::max(worst, (t - b.adapters.at(name)).abs().max().item<double>());
  INFO("max |adapter difference| = " << worst);
  CHECK(worst <= 1e-5);
}

gt::ForwardRequest forward_request(uint64_t session, int64_t step, uint32_t micro, uint32_t micros,
                                   int64_t rows, int64_t C) {
  gt::ForwardRequest f;
  f.header = gt::Header{gt::kProtocolVersion, session, step, micro, micros};
  f.activations = gt::to_wire(torch::randn({rows, 4, C}));
  f.attention_mask = gt::to_wire(torch::ones({rows, 4}, torch::kLong));
  return f;
}

gt::BackwardRequest backward_request(uint64_t session, int64_t step, uint32_t micro,
                                     uint32_t micros, int64_t rows, int64_t C) {
  return {gt::Header{gt::kProtocolVersion, session, step, micro, micros},
          gt::to_wire(torch::randn({rows, 4, C}))};
}

}  // namespace

TEST_CASE("pipelining: split and online in 2, 3 or more micro-batches than rows train as one") {
  for (const std::string strategy : {"split", "online"}) {
    CAPTURE(strategy);
    const auto one = train(strategy, 1);
    CHECK(one.messages.forward == 3);
    CHECK(one.messages.backward == 3);
    for (int64_t k : {2, 3, 7}) {
      CAPTURE(k);
      const auto piped = train(strategy, k);
      const int64_t chunks = std::min<int64_t>(k, 5);  // 7 > 5 rows: one row each
      CHECK(piped.messages.forward == 3 * chunks);
      CHECK(piped.messages.backward == 3 * chunks);
      check_close(piped, one);
      if (strategy == "online") CHECK(piped.steps[0].dcor > 0);
    }
    // The g1 chunks may come back in any order: the same update, bit for bit.
    const auto a = train(strategy, 3), b = train(strategy, 3, true);
    for (size_t i = 0; i < a.steps.size(); ++i) CHECK(a.steps[i].loss == b.steps[i].loss);
    for (const auto& [name, t] : a.adapters) CHECK(torch::equal(t, b.adapters.at(name)));
  }
}

TEST_CASE("pipelining: gradfree ignores micro_batches, only split and online pipeline") {
  auto model = client_model();
  auto s = gt::make_client_strategy("gradfree", model, settings_for("gradfree", 4));
  CHECK(s->micro_batches() == 1);
  CHECK_THROWS_AS(s->on_micro_activations(torch::zeros({1, 4, 8}), 0), gt::Error);
  CHECK(gt::make_client_strategy("online", model, settings_for("online", 4))->micro_batches() == 4);
}

TEST_CASE(
    "pipelining: the server keeps a graph per micro-batch, a backward naming none is refused") {
  auto server = make_server();
  auto model = client_model();
  gt::ClientChannel c(model, gt::make_client_strategy("split", model, {}));
  const auto session = server.open(wire(c.hello("c"))).header.session;
  const auto C = model->seg.cfg.hidden_size;
  // Step 4 in two micro-batches of 2 and 1 rows.
  server.forward(wire(forward_request(session, 4, 0, 2, 2, C)));
  server.forward(wire(forward_request(session, 4, 1, 2, 1, C)));
  auto refused = [&](const gt::BackwardRequest& b, const std::string& why) {
    CHECK_THROWS_WITH_AS(server.backward(b), Contains(why.c_str()), gt::ProtocolError);
  };
  refused(backward_request(session, 3, 1, 2, 1, C), "gradient for step 3 without a pending");
  refused(backward_request(session, 4, 1, 3, 1, C), "micro-batch 1 of 3 of step 4 without");
  // Not encodable through the codec (micro >= micros), but a server must not trust that.
  refused(backward_request(session, 4, 2, 2, 1, C), "micro-batch 2 of 2 of step 4 without");
  refused(backward_request(session, 4, 1, 2, 2, C), "g2");  // micro-batch 1 has one row
  // Nothing changed: both backwards go through, once each, in any order.
  auto g1 = gt::from_wire(server.backward(wire(backward_request(session, 4, 1, 2, 1, C))).gradient,
                          "g1", {1, 4, C});
  CHECK(g1.abs().sum().item<double>() > 0);
  refused(backward_request(session, 4, 1, 2, 1, C), "micro-batch 1 of 2 of step 4 without");
  CHECK(server.backward(wire(backward_request(session, 4, 0, 2, 2, C))).header.micro == 0);
  refused(backward_request(session, 4, 0, 2, 2, C), "gradient for step 4 without a pending");

  // A training forward of another step drops the graphs kept.
  server.forward(wire(forward_request(session, 5, 0, 2, 2, C)));
  server.forward(wire(forward_request(session, 6, 0, 2, 2, C)));
  refused(backward_request(session, 5, 0, 2, 2, C), "gradient for step 5 without a pending");
  CHECK(server.backward(wire(backward_request(session, 6, 0, 2, 2, C))).header.step == 6);
  // Only training forwards are pipelined.
  auto eval = forward_request(session, 7, 1, 2, 2, C);
  eval.keep_graph = false;
  CHECK_THROWS_WITH_AS(server.forward(eval), Contains("only training forwards are pipelined"),
                       gt::ProtocolError);
  // The codec refuses a header whose micro-batch is not one of its count.
  auto bad = forward_request(session, 7, 2, 2, 2, C);
  const auto two_of_two = gt::encode(bad);
  CHECK_THROWS_WITH_AS(gt::decode(two_of_two),
                       Contains("activations_up: header: micro-batch 2 of 2"), gt::ProtocolError);
  bad.header.micro = 0, bad.header.micros = 0;
  const auto none = gt::encode(bad);
  CHECK_THROWS_WITH_AS(gt::decode(none), Contains("header: micro-batch 0 of 0"), gt::ProtocolError);
}

TEST_CASE("pipelining: the channel refuses an a2 out of turn and a g1 twice") {
  auto model = client_model();
  auto server = make_server();
  gt::ClientChannel c(model, gt::make_client_strategy("split", model, settings_for("split", 2)));
  c.set_session(server.open(wire(c.hello("c"))).header.session);
  const auto batch = batch_of(model->seg.cfg.vocab_size, 0);
  auto fs = std::get<gt::ForwardRequests>(c.begin_step({batch, {}}));
  REQUIRE(fs.size() == 2);
  CHECK(fs[0].activations.shape == std::vector<int64_t>{3, 9, model->seg.cfg.hidden_size});
  CHECK(fs[1].activations.shape == std::vector<int64_t>{2, 9, model->seg.cfg.hidden_size});
  auto r0 = server.forward(wire(fs[0])), r1 = server.forward(wire(fs[1]));
  CHECK_THROWS_WITH_AS(c.on_reply(wire(r1)), Contains("micro-batch 1 where 0 was due"),
                       gt::ProtocolError);
  auto b0 = std::get<gt::BackwardRequest>(c.on_reply(wire(r0)));
  CHECK(b0.header.micro == 0);
  CHECK(b0.header.micros == 2);
  auto g0 = server.backward(wire(b0));
  CHECK(std::holds_alternative<gt::AwaitReplies>(c.on_reply(wire(g0))));
  CHECK_THROWS_WITH_AS(c.on_reply(wire(g0)), Contains("micro-batch 0 twice"), gt::ProtocolError);
  auto stale = r1;
  stale.header.step = 8;
  CHECK_THROWS_WITH_AS(c.on_reply(wire(stale)), Contains("the step in flight is 0"),
                       gt::ProtocolError);
  auto b1 = std::get<gt::BackwardRequest>(c.on_reply(wire(r1)));
  auto done = c.on_reply(wire(server.backward(wire(b1))));
  CHECK(std::holds_alternative<gt::StepOutcome>(done));
  CHECK(c.steps_done() == 1);
  CHECK(!c.step_in_flight());
  // An aborted pipelined step begins again from scratch.
  fs = std::get<gt::ForwardRequests>(c.begin_step({batch, {}}));
  c.abort_step();
  CHECK(std::get<gt::ForwardRequests>(c.begin_step({batch, {}})).size() == 2);
}
