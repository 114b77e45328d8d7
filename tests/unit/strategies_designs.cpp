// The gradfree and offline designs against a real SplitServer, every message
// through the codec: what crosses the wire, what trains, and plugging.
#include "data/instructions.hpp"
#include "models/emulator.hpp"
#include "models/lora.hpp"
#include "models/tokenizer.hpp"
#include "protocols/codec.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/split_server.hpp"
#include "strategies/strategy_factory.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace {

template <class T>
T wire(const T& m, int64_t* bytes = nullptr) {
  auto enc = gt::encode(m);
  if (bytes) *bytes += static_cast<int64_t>(enc.bytes.size());
  return gt::decode(enc);
}

std::shared_ptr<gt::ClientModel> client_model(double lr = 1e-3) {
  auto model = gt::load_decoder(gt::test::model_dir());
  auto m = std::make_shared<gt::ClientModel>();
  m->seg = gt::split_model(model, {1, 1});
  gt::set_trainable(*model, gt::TrainMode::frozen);
  gt::set_trainable(*m->seg.input, gt::TrainMode::full);
  gt::set_trainable(*m->seg.output, gt::TrainMode::full);
  m->optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({m->seg.input.get(), m->seg.output.get()}),
      torch::optim::AdamWOptions(lr));
  return m;
}

gt::SplitServer server() {
  auto model = gt::load_decoder(gt::test::model_dir());
  auto seg = gt::split_model(model, {1, 1});
  gt::set_trainable(*model, gt::TrainMode::frozen);
  gt::set_trainable(*seg.input, gt::TrainMode::full);  // the clients' structure, for plugging
  gt::set_trainable(*seg.output, gt::TrainMode::full);
  return gt::SplitServer(seg, "server");
}

const gt::InstructionDataset& data() {
  static const gt::InstructionDataset d(
      gt::wordnet_instructions("/usr/share/wordnet", 0.05, 24, 1).train,
      gt::Tokenizer::from_dir(gt::test::model_dir()), 32);
  return d;
}

// Messages and bytes of each kind a run of steps sent.
struct Traffic {
  int64_t forward = 0, backward = 0, bytes = 0;
};

// One step through `server`; counts what crossed.
gt::StepOutcome step(gt::ClientChannel& c, gt::SplitServer& s, const gt::StepInput& in,
                     Traffic& t) {
  auto out = c.begin_step(in);
  for (;;) {
    if (auto* f = std::get_if<gt::ForwardRequest>(&out)) {
      ++t.forward;
      out = c.on_reply(wire(s.forward(wire(*f, &t.bytes)), &t.bytes));
    } else if (auto* b = std::get_if<gt::BackwardRequest>(&out)) {
      ++t.backward;
      out = c.on_reply(wire(s.backward(wire(*b, &t.bytes)), &t.bytes));
    } else {
      return std::get<gt::StepOutcome>(out);
    }
  }
}

// An epoch in batches of 8, in dataset order.
std::vector<gt::StepInput> epoch() {
  std::vector<gt::StepInput> out;
  for (size_t start = 0; start + 8 <= data().size(); start += 8) {
    gt::StepInput in;
    for (size_t i = start; i < start + 8; ++i) in.samples.push_back(i);
    in.batch = data().batch(in.samples);
    out.push_back(in);
  }
  return out;
}

bool same(const torch::Tensor& a, const torch::Tensor& b) {
  return a.sizes() == b.sizes() && a.equal(b);
}

}  // namespace

TEST_CASE(
    "gradfree: no gradient crosses, the input adapter stays frozen, the a2 cache empties the "
    "wire") {
  for (bool cache : {true, false}) {
    CAPTURE(cache);
    auto model = client_model();
    auto s = server();
    gt::StrategySettings settings;
    settings.gradfree_cache = cache;
    gt::ClientChannel c(model, gt::make_client_strategy("gradfree", model, settings));
    c.set_session(s.open(wire(c.hello("c"))).header.session);
    std::vector<torch::Tensor> input_before, output_before;
    for (const auto& p : model->seg.input->parameters()) input_before.push_back(p.clone());
    for (const auto& p : model->seg.output->parameters()) output_before.push_back(p.clone());
    std::vector<Traffic> per_epoch(2);
    for (auto& t : per_epoch)
      for (auto& in : epoch()) CHECK(std::isfinite(step(c, s, in, t).loss));
    for (auto& t : per_epoch) CHECK(t.backward == 0);  // never a gradient message
    CHECK(per_epoch[0].forward == int64_t(epoch().size()));
    CHECK(per_epoch[0].bytes > 0);
    if (cache) {
      CHECK(per_epoch[1].forward == 0);  // the second epoch sends nothing
      CHECK(per_epoch[1].bytes == 0);
    } else {
      CHECK(per_epoch[1].bytes == per_epoch[0].bytes);
    }
    // The input adapter is bit-for-bit unchanged; the output adapter's own
    // blocks trained (the head is tied to the frozen embedding here).
    const auto input_after = model->seg.input->parameters();
    for (size_t i = 0; i < input_after.size(); ++i) CHECK(same(input_after[i], input_before[i]));
    const auto output_after = model->seg.output->parameters();
    int64_t moved = 0;
    for (size_t i = 0; i < output_after.size(); ++i)
      moved += !same(output_after[i], output_before[i]);
    CHECK(moved > 0);
  }
}

TEST_CASE("gradfree: the server refuses gradients and kept graphs in a gradfree session") {
  auto model = client_model();
  auto s = server();
  gt::ClientChannel c(model, gt::make_client_strategy("gradfree", model, {}));
  const auto session = s.open(wire(c.hello("c"))).header.session;
  auto in = epoch().front();
  gt::ForwardRequest f;
  f.header.session = session;
  f.activations =
      gt::to_wire(torch::zeros({8, in.batch.input_ids.size(1), model->seg.cfg.hidden_size}));
  f.attention_mask = gt::to_wire(in.batch.attention_mask);
  f.keep_graph = true;
  CHECK_THROWS_WITH_AS(s.forward(wire(f)), doctest::Contains("sends no gradients"),
                       gt::ProtocolError);
  gt::BackwardRequest b;
  b.header.session = session;
  b.gradient = f.activations;
  CHECK_THROWS_WITH_AS(s.backward(wire(b)), doctest::Contains("agreed to send no gradients"),
                       gt::ProtocolError);
}

TEST_CASE("gradfree: the cached a2 equals what the server sends") {
  auto model = client_model(0.0);  // lr 0: the output adapter does not move either
  auto s = server();
  gt::ClientChannel cached(model, gt::make_client_strategy("gradfree", model, {}));
  gt::StrategySettings off;
  off.gradfree_cache = false;
  gt::ClientChannel uncached(model, gt::make_client_strategy("gradfree", model, off));
  cached.set_session(s.open(wire(cached.hello("a"))).header.session);
  uncached.set_session(s.open(wire(uncached.hello("b"))).header.session);
  Traffic t;
  for (auto& in : epoch()) step(cached, s, in, t);
  auto batches = epoch();
  std::reverse(batches.begin(), batches.end());  // other batch order: other padding
  for (auto& in : batches) {
    Traffic none;
    const auto a = step(cached, s, in, none).loss, b = step(uncached, s, in, t).loss;
    CHECK(none.bytes == 0);
    CHECK(a == doctest::Approx(b).epsilon(1e-5));
  }
}

TEST_CASE("offline: steps send nothing, plugged adapters equal the client's adopted ones exactly") {
  for (const auto& [name, delta, scheme] :
       {std::tuple{std::string("offsite"), false, gt::QuantScheme::none},
        std::tuple{std::string("offline"), true, gt::QuantScheme::int8},
        std::tuple{std::string("offline"), true, gt::QuantScheme::int4}}) {
    const auto& design = name;  // clang 14 cannot capture a structured binding
    CAPTURE(design);
    const std::string scheme_name = gt::to_string(scheme);
    CAPTURE(scheme_name);
    auto model = client_model();
    const auto pretrained = gt::snapshot_adapters(model->seg);
    auto s = server();
    gt::EmulatorOptions eo;
    eo.keep_every = 2;
    gt::ClientChannel c(
        model, gt::make_client_strategy(name, model, {}, gt::build_emulator(model->seg, eo)));
    c.set_session(s.open(wire(c.hello("c"))).header.session);
    Traffic t;
    for (auto& in : epoch()) CHECK(std::isfinite(step(c, s, in, t).loss));
    CHECK(t.forward + t.backward + t.bytes == 0);  // offline: nothing per step
    CHECK(c.strategy().uploads_adapters());

    auto up = gt::make_adapter_upload(model->seg, pretrained, delta, scheme);
    up.header.session = c.session();
    int64_t bytes = 0;
    auto ack = s.plug(wire(up, &bytes));
    CHECK(ack.tensors == int64_t(pretrained.size()));
    // The client adopts what the server reconstructs; both sides then agree bit for bit.
    auto params = gt::trainable_adapters(model->seg);
    gt::assign_adapters(params, gt::reconstruct_upload(up, pretrained, params));
    const auto plugged = s.plugged("c");
    REQUIRE(plugged.size() == params.size());
    for (const auto& [n, v] : params) CHECK(same(plugged.at(n), v));
    // Full-model evaluation with the plugged adapters works and is finite.
    auto [sum, tokens] = s.evaluate_plugged("c", epoch().front().batch);
    CHECK(tokens > 0);
    CHECK(std::isfinite(sum));
    MESSAGE(name << " upload (" << scheme_name << std::string(delta ? " delta" : "")
                 << "): " << bytes << " bytes");
  }
}

TEST_CASE("offline: plugged adapters past the memory limit go to disk, or are refused without") {
  auto model = client_model();
  const auto pretrained = gt::snapshot_adapters(model->seg);
  int64_t one = 0;  // the bytes of one client's plugged adapters
  for (const auto& [n, t] : pretrained) one += int64_t(t.numel() * t.element_size());
  const auto upload_for = [&](gt::SplitServer& s, const std::string& name) {
    gt::ClientChannel c(model, gt::make_client_strategy("split", model, {}));
    c.set_session(s.open(wire(c.hello(name))).header.session);
    auto up = gt::make_adapter_upload(model->seg, pretrained, false, gt::QuantScheme::none);
    up.header.session = c.session();
    return up;
  };
  gt::test::TempDir dir;
  auto s = server();
  s.set_plugged_limit(one + one / 2, dir.str());
  s.plug(upload_for(s, "c1"));
  s.plug(upload_for(s, "c2"));
  CHECK(s.plugged_evictions() == 1);
  CHECK(s.plugged_bytes() == one);
  // c1 left memory, not the server: read back from its file, the same values.
  CHECK(std::filesystem::exists(dir.file("plugged-c1.safetensors")));
  CHECK(std::filesystem::exists(dir.file("plugged-c2.safetensors")));
  const auto back = s.plugged("c1");
  REQUIRE(back.size() == pretrained.size());
  for (const auto& [n, v] : pretrained) CHECK(same(back.at(n), v));
  auto [sum, tokens] = s.evaluate_plugged("c1", epoch().front().batch);
  CHECK(tokens > 0);
  CHECK(std::isfinite(sum));

  // Without a directory, an upload that would pass the limit is refused and keeps nothing;
  // a client plugging again replaces its own adapters (not counted twice).
  auto m = server();
  m.set_plugged_limit(one + one / 2, "");
  m.plug(upload_for(m, "c1"));
  CHECK_THROWS_WITH_AS(m.plug(upload_for(m, "c2")), doctest::Contains("server.max_plugged_mb"),
                       gt::ProtocolError);
  CHECK(m.plugged("c2").empty());
  CHECK(m.plugged("c1").size() == pretrained.size());
  CHECK_NOTHROW(m.plug(upload_for(m, "c1")));
  CHECK(m.plugged_bytes() == one);
}

TEST_CASE("offline: a bad adapter upload is refused and changes nothing") {
  auto model = client_model();
  auto s = server();
  gt::ClientChannel c(model, gt::make_client_strategy("split", model, {}));
  c.set_session(s.open(wire(c.hello("c"))).header.session);
  const auto pretrained = gt::snapshot_adapters(model->seg);
  auto good = gt::make_adapter_upload(model->seg, pretrained, false, gt::QuantScheme::none);
  good.header.session = c.session();
  auto renamed = good;
  renamed.tensors[0].name = "model.decoder.layers.3.fc1.weight";  // a backbone weight
  CHECK_THROWS_WITH_AS(s.plug(renamed), doctest::Contains("not a trainable adapter"),
                       gt::ProtocolError);
  auto missing = good;
  missing.tensors.pop_back();
  CHECK_THROWS_AS(s.plug(missing), gt::ProtocolError);
  auto reshaped = good;
  reshaped.tensors[0].value = gt::to_wire(torch::zeros({3, 3}));
  CHECK_THROWS_AS(s.plug(reshaped), gt::ProtocolError);
  auto nan = good;
  nan.tensors[0].value = gt::to_wire(torch::full(gt::from_wire(good.tensors[0].value, "x").sizes(),
                                                 std::numeric_limits<float>::quiet_NaN()));
  CHECK_THROWS_AS(s.plug(nan), gt::ProtocolError);
  CHECK(s.plugged("c").empty());
  auto stranger = good;
  stranger.header.session = 999;
  CHECK_THROWS_AS(s.plug(stranger), gt::ProtocolError);
  CHECK_NOTHROW(s.plug(good));
}

TEST_CASE("fedavg: the weighted mean of the clients' adapters") {
  auto a = client_model(), b = client_model();
  {
    torch::NoGradGuard no_grad;
    for (auto& [n, p] : gt::trainable_adapters(b->seg)) p.add_(1.0);
  }
  auto ua = gt::make_adapter_upload(a->seg, {}, false, gt::QuantScheme::none);
  auto ub = gt::make_adapter_upload(b->seg, {}, false, gt::QuantScheme::none);
  auto avg = gt::average_uploads({ua, ub}, {3, 1});
  auto pa = gt::trainable_adapters(a->seg);
  for (const auto& t : avg.tensors) {
    auto expected = pa.at(t.name) + 0.25;
    CHECK(torch::allclose(gt::from_wire(t.value, "avg"), expected, 1e-6, 1e-6));
  }
  ub.tensors.pop_back();
  CHECK_THROWS(gt::average_uploads({ua, ub}, {1, 1}));
}
