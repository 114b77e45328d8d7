// run.device: the key's syntax, the clear error when CUDA is asked of a build or machine
// without it, and every party computing on its device: the tensors the decoders make
// (positions, masks, RoPE tables) follow their input, strategies and the server move what
// they receive to their model's device, and checkpoints cross devices. The CUDA checks run
// where torch::cuda::is_available() (a CUDA LibTorch and a visible GPU; scripts/gpu-bench)
// and are skipped with a MESSAGE elsewhere; on the CPU, run.device=cpu must change nothing.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "common/error.hpp"
#include "config/run_config.hpp"
#include "models/decoder.hpp"
#include "models/device.hpp"
#include "models/emulator.hpp"
#include "models/lora.hpp"
#include "models/segments.hpp"
#include "protocols/codec.hpp"
#include "strategies/adapter_upload.hpp"
#include "strategies/centralized.hpp"
#include "strategies/client_channel.hpp"
#include "strategies/client_checkpoint.hpp"
#include "strategies/split_server.hpp"
#include "strategies/strategy_factory.hpp"
#include "tests/doctest_torch.hpp"
#include "tests/temp_dir.hpp"
#include "tests/test_paths.hpp"

namespace {

using doctest::Contains;
using gt::test::TempDir;

// The GPU the CUDA checks use; nullopt, with a MESSAGE, where there is none.
std::optional<torch::Device> cuda_or_skip(const char* what) {
  if (!gt::cuda_usable()) {
    MESSAGE("skipped (this LibTorch has no CUDA or no GPU is visible): " << std::string(what));
    return std::nullopt;
  }
  return gt::parse_device("cuda");
}

gt::RunConfig parse(const std::string& text) {
  return gt::parse_run_config(text, "test.toml", "");
}

// A client's or server's copy of a checkpoint, adapters trainable, moved to `device` before
// the optimizer is made (as apps/parties.cpp does).
struct Party {
  gt::DecoderLM model{nullptr};
  std::shared_ptr<gt::ClientModel> trainer;
  const gt::Segments& seg() const { return trainer->seg; }
};

Party make_party(const std::string& dir, const torch::Device& device, double lr = 1e-3) {
  Party p;
  p.model = gt::load_decoder(dir);
  auto seg = gt::split_model(p.model, {1, 1});
  gt::set_trainable(*p.model, gt::TrainMode::frozen);
  gt::set_trainable(*seg.input, gt::TrainMode::full);
  gt::set_trainable(*seg.output, gt::TrainMode::full);
  gt::to_device(seg, device);
  p.trainer = std::make_shared<gt::ClientModel>();
  p.trainer->seg = seg;
  p.trainer->optimizer = std::make_shared<torch::optim::AdamW>(
      gt::unique_parameters({seg.input.get(), seg.output.get()}),
      torch::optim::AdamWOptions(lr).weight_decay(0.01));
  return p;
}

std::shared_ptr<gt::SplitServer> make_server(const std::string& dir, const torch::Device& device) {
  auto model = gt::load_decoder(dir);
  auto seg = gt::split_model(model, {1, 1});
  gt::set_trainable(*model, gt::TrainMode::frozen);
  gt::set_trainable(*seg.input, gt::TrainMode::full);
  gt::set_trainable(*seg.output, gt::TrainMode::full);
  gt::to_device(seg, device);
  return std::make_shared<gt::SplitServer>(seg, "server");
}

template <class T>
T wire(const T& m) {
  return gt::decode(gt::encode(m));
}

// One step of any strategy: whatever it sends goes through the codec to the server.
gt::StepOutcome run_step(gt::ClientChannel& c, gt::SplitServer& s, const gt::StepInput& in) {
  auto out = c.begin_step(in);
  for (;;) {
    if (auto* f = std::get_if<gt::ForwardRequest>(&out))
      out = c.on_reply(wire(s.forward(wire(*f))));
    else if (auto* b = std::get_if<gt::BackwardRequest>(&out))
      out = c.on_reply(wire(s.backward(wire(*b))));
    else
      return std::get<gt::StepOutcome>(out);
  }
}

// Held-out loss through the wire, as the client measures it.
double eval_through_wire(gt::ClientChannel& c, gt::SplitServer& s, const gt::LmBatch& batch) {
  auto [sum, tokens] = c.eval_loss(wire(s.forward(wire(c.eval_request(batch)))));
  return sum / double(tokens);
}

// Fixed host-memory batches, one right-padded row each (as the data sources make them).
gt::LmBatch batch_of(int64_t vocab, int64_t step) {
  auto gen = torch::make_generator<torch::CPUGeneratorImpl>(700 + step);
  auto ids = torch::randint(3, vocab, {3, 7}, gen, torch::kLong);
  auto mask = torch::ones({3, 7}, torch::kLong);
  mask.index_put_({2, torch::indexing::Slice(5)}, 0);
  return {ids, mask, ids.masked_fill(mask.eq(0), -100)};
}

struct Trace {
  std::vector<double> losses;  // each step's, then the held-out loss
  gt::NamedTensors adapters;   // in host memory
};

// `steps` steps of `strategy` with the client on `client_device` and the server on
// `server_device`; online with int8 activations, dCor and noise on a1, so that every
// mechanism on the compute path runs.
Trace train(const std::string& strategy, const torch::Device& client_device,
            const torch::Device& server_device, int steps = 3) {
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  auto client = make_party(dir, client_device);
  auto server = make_server(dir, server_device);
  gt::StrategySettings settings;
  settings.online = {gt::QuantScheme::int8, gt::QuantScheme::none, gt::QuantScheme::int8,
                     gt::QuantScheme::none};
  settings.privacy.dcor_weight = strategy == "online" ? 0.1 : 0;
  settings.noise_std = strategy == "online" || strategy == "gradfree" ? 0.01 : 0;
  settings.seed = 3;
  gt::Backbone emulator{nullptr};
  if (gt::needs_emulator(strategy)) {  // built by the model owner, shipped through a file
    TempDir tmp;
    const auto full = make_party(dir, server_device);
    gt::EmulatorOptions eo;
    eo.keep_every = 2;
    const auto path = tmp.file("emulator.safetensors");
    gt::save_emulator(path, gt::build_emulator(full.seg(), eo), full.seg(),
                      gt::emulator_layers(int64_t(full.seg().backbone->blocks.size()), eo), false);
    emulator = gt::load_emulator(path, full.seg().cfg).backbone;  // in host memory
  }
  gt::ClientChannel channel(client.trainer,
                            gt::make_client_strategy(strategy, client.trainer, settings, emulator));
  channel.set_session(server->open(wire(channel.hello("c"))).header.session);
  Trace t;
  for (int64_t step = 0; step < steps; ++step) {
    const auto batch = batch_of(client.seg().cfg.vocab_size, step);
    t.losses.push_back(run_step(channel, *server, {batch, {0, 1, 2}}).loss);
  }
  t.losses.push_back(
      eval_through_wire(channel, *server, batch_of(client.seg().cfg.vocab_size, 99)));
  for (const auto& [name, value] : gt::trainable_adapters(client.seg())) {
    CHECK(value.device() == client_device);
    t.adapters[name] = value.detach().to(torch::kCPU).clone();
  }
  // The optimizer's state is where its parameters are.
  int64_t states = 0;
  for (const auto& entry : client.trainer->optimizer->state()) {
    const auto& adam = static_cast<const torch::optim::AdamWParamState&>(*entry.second);
    CHECK(adam.exp_avg().device() == client_device);
    ++states;
  }
  CHECK(states > 0);
  return t;
}

// Losses within a relative `tol`; adapters within an absolute `weight_tol` (Adam turns a
// rounding-level gradient into a step of up to lr whichever its sign, so weights of a few
// steps may differ by a few lr where the gradient is nearly 0).
void check_close(const Trace& a, const Trace& b, double tol, double weight_tol) {
  REQUIRE(a.losses.size() == b.losses.size());
  for (size_t i = 0; i < a.losses.size(); ++i)
    CHECK(a.losses[i] == doctest::Approx(b.losses[i]).epsilon(tol));
  REQUIRE(a.adapters.size() == b.adapters.size());
  double worst = 0;
  for (const auto& [name, t] : a.adapters)
    worst = std::max(worst, (t - b.adapters.at(name)).abs().max().item<double>());
  INFO("max |adapter difference| = " << worst);
  CHECK(worst <= weight_tol);
}

void check_equal(const Trace& a, const Trace& b) {
  CHECK(a.losses == b.losses);
  REQUIRE(a.adapters.size() == b.adapters.size());
  for (const auto& [name, t] : a.adapters) {
    const auto& tensor_name = name;  // clang 14 cannot capture a structured binding
    CAPTURE(tensor_name);
    CHECK(torch::equal(t, b.adapters.at(name)));
  }
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// `gtune simulate` with a few online steps (int8 a1, dCor, noise) into `out`; extra arguments
// appended. Returns the exit status; the log is out.log (shown on an unexpected failure).
int simulate(const std::string& out, const std::string& extra, bool may_fail = false) {
  const std::string cmd = "'" + gt::test::gtune_bin() +
                          "' simulate --quiet --metrics 0 --set scheduler.control= "
                          "--set training.steps=3 --set strategy.noise_std=0.01 "
                          "--set data.train_examples=200 --set data.valid_examples=16 --out '" +
                          out + "' " + extra + " > '" + out + ".log' 2>&1";
  const int status = std::system(cmd.c_str());
  if (status != 0 && !may_fail) MESSAGE("gtune simulate failed: " << read_file(out + ".log"));
  return status;
}

double final_loss(const std::string& out) {
  return nlohmann::json::parse(read_file(out + "/results.json"))["totals"]["eval_loss_after"]
      .get<double>();
}

}  // namespace

TEST_CASE("device: run.device is cpu, cuda or cuda:N, named in errors") {
  CHECK(gt::default_run_config().run.device == "cpu");
  for (const auto* name : {"cpu", "cuda", "cuda:0", "cuda:1", "cuda:15"}) {
    CAPTURE(name);
    CHECK(parse(std::string("[run]\ndevice = \"") + name + "\"\n").run.device == name);
    auto c = gt::default_run_config();
    gt::apply_override(c, std::string("run.device=") + name);
    CHECK(c.run.device == name);
  }
  for (const auto* junk : {"gpu", "CUDA", "cuda:", "cuda:-1", "cuda:01", "cuda:x", "cpu:0", ""}) {
    CAPTURE(junk);
    CHECK_THROWS_WITH_AS(parse(std::string("[run]\ndevice = \"") + junk + "\"\n"),
                         Contains("test.toml:2: run.device: "), gt::Error);
    auto c = gt::default_run_config();
    CHECK_THROWS_WITH_AS(gt::apply_override(c, std::string("run.device=") + junk),
                         Contains("allowed: cpu, cuda, cuda:N"), gt::Error);
  }
  CHECK_THROWS_WITH_AS(parse("[run]\ndevice = 0\n"),
                       Contains("run.device: expected a string, got an integer"), gt::Error);
  // The effective configuration keeps it.
  const auto c = parse("[run]\ndevice = \"cuda:1\"\n");
  CHECK(gt::parse_run_config(gt::to_toml(c), "again", "").run.device == "cuda:1");
}

TEST_CASE("device: parse_device checks the device exists, with a clear error") {
  CHECK(gt::parse_device("cpu") == torch::Device(torch::kCPU));
  CHECK_THROWS_WITH_AS(gt::parse_device("gpu"), Contains("run.device: \"gpu\" is not a device"),
                       gt::Error);
  CHECK_THROWS_WITH_AS(gt::parse_device("cuda:01", "--device"),
                       Contains("--device: \"cuda:01\" is not a device"), gt::Error);
  if (gt::cuda_usable()) {
    MESSAGE("CUDA is usable here: the error for a build without CUDA is not checked");
    CHECK(gt::parse_device("cuda").is_cuda());
    CHECK(gt::parse_device("cuda:0") == torch::Device(torch::kCUDA, 0));
    const auto past = "cuda:" + std::to_string(torch::cuda::device_count());
    CHECK_THROWS_WITH_AS(gt::parse_device(past), Contains("GPU(s) are visible"), gt::Error);
    return;
  }
  for (const auto* name : {"cuda", "cuda:1"}) {
    CAPTURE(name);
    try {
      gt::parse_device(name);
      FAIL("no error for " << name);
    } catch (const gt::Error& e) {
      const std::string what = e.what();
      CHECK(what.find(std::string("run.device: \"") + name + "\" requested, but this LibTorch") !=
            std::string::npos);
      // Either reason, each with what to do about it.
      const bool no_cuda = what.find("was built without CUDA") != std::string::npos &&
                           what.find("build against a CUDA LibTorch") != std::string::npos;
      const bool no_gpu = what.find("no GPU is visible") != std::string::npos;
      CHECK((no_cuda || no_gpu));
      CHECK(what.find("run.device=cpu") != std::string::npos);
    }
  }
}

TEST_CASE("device: tensors made inside the decoders follow the input's device") {
  for (const auto* name : {"opt-tiny-s1", "llama-tiny-s1"}) {
    CAPTURE(name);
    auto model = gt::load_decoder(gt::test::fixture(std::string("hf-reference/") + name));
    auto seg = gt::split_model(model, {1, 1});
    gt::set_compute_options(seg, /*packed_batches=*/false, true);  // as model->forward computes
    const auto batch = batch_of(model->cfg.vocab_size, 0);
    torch::NoGradGuard no_grad;
    const auto reference = model->forward(batch.input_ids, batch.attention_mask);
    // On the CPU, explicitly: moving there is a no-op and changes no bit.
    CHECK(seg.device() == torch::Device(torch::kCPU));
    gt::to_device(seg, gt::parse_device("cpu"));
    const auto cpu = gt::to_device(batch, gt::parse_device("cpu"));
    CHECK(cpu.input_ids.data_ptr() == batch.input_ids.data_ptr());  // no copy
    auto ctx = gt::make_attention_context(seg.cfg, cpu.attention_mask, seg.dtype);
    CHECK(ctx.mask_bias.device() == torch::Device(torch::kCPU));
    auto logits = seg.output->forward(
        seg.backbone->forward(seg.input->forward(cpu.input_ids, cpu.attention_mask, ctx), ctx),
        ctx);
    CHECK(torch::equal(logits, reference));

    const auto cuda = cuda_or_skip("the decoders on CUDA");
    if (!cuda) continue;
    gt::to_device(seg, *cuda);
    CHECK(seg.device().is_cuda());
    CHECK(model->embed->token_embedding().device().is_cuda());  // the model it was cut from
    const auto on_gpu = gt::to_device(batch, *cuda);
    ctx = gt::make_attention_context(seg.cfg, on_gpu.attention_mask, seg.dtype);
    CHECK(ctx.mask_bias.device().is_cuda());
    if (seg.cfg.family == gt::Family::llama) {
      CHECK(ctx.rope_cos.device().is_cuda());
      CHECK(ctx.rope_sin.device().is_cuda());
    }
    // OPT's positions come from the mask: a mask left in host memory follows the ids.
    auto a1 = seg.input->forward(on_gpu.input_ids, batch.attention_mask, ctx);
    CHECK(a1.device().is_cuda());
    logits = seg.output->forward(seg.backbone->forward(a1, ctx), ctx);
    CHECK(logits.device().is_cuda());
    const double diff = (logits.to(torch::kCPU) - reference).abs().max().item<double>();
    INFO("max |logit difference| cuda vs cpu = " << diff);
    CHECK(diff < 1e-3);
    CHECK(model->forward(on_gpu.input_ids, on_gpu.attention_mask).device().is_cuda());
  }
}

TEST_CASE("device: a tied LM head stays tied when the segments move") {
  auto model = gt::load_decoder(gt::test::model_dir());  // opt-mini ties its head
  auto seg = gt::split_model(model, {1, 1});
  auto tied = [&] {
    for (const auto& p : seg.output->head->named_parameters())
      if (p.key() == "lm_head")
        return p.value().data_ptr() == seg.input->embed->token_embedding().data_ptr();
    return false;
  };
  CHECK(tied());
  gt::to_device(seg, torch::Device(torch::kCPU));
  CHECK(tied());
  const auto cuda = cuda_or_skip("the tied head on CUDA");
  if (!cuda) return;
  gt::to_device(seg, *cuda);
  CHECK(tied());
  CHECK(seg.output->head->parameters().front().device().is_cuda());
}

TEST_CASE("device: every strategy on run.device=cpu trains exactly as before") {
  // The default (nothing moved) against an explicit move to the CPU: bit for bit.
  for (const auto* strategy : {"split", "online", "gradfree", "offline"}) {
    CAPTURE(strategy);
    const auto cpu = gt::parse_device("cpu");
    check_equal(train(strategy, torch::Device(torch::kCPU), torch::Device(torch::kCPU)),
                train(strategy, cpu, cpu));
  }
}

TEST_CASE("device: every strategy trains on CUDA as on the CPU, whatever device the peer uses") {
  const auto cuda = cuda_or_skip("strategies on CUDA");
  if (!cuda) return;
  const torch::Device cpu(torch::kCPU);
  for (const auto* strategy : {"split", "online", "gradfree", "offline"}) {
    CAPTURE(strategy);
    const auto reference = train(strategy, cpu, cpu);
    // fp32 on both; the GPU's kernels round differently (TF32 is off by default in LibTorch).
    // lr 1e-3, 3 steps: weights within 1e-2.
    check_close(train(strategy, *cuda, *cuda), reference, 2e-3, 1e-2);
    check_close(train(strategy, *cuda, cpu), reference, 2e-3, 1e-2);  // the wire is neutral
    check_close(train(strategy, cpu, *cuda), reference, 2e-3, 1e-2);
  }
}

TEST_CASE("device: the centralized baseline computes on the model's device") {
  const auto cuda = cuda_or_skip("centralized on CUDA");
  if (!cuda) return;
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  std::vector<double> losses[2];
  for (int i = 0; i < 2; ++i) {
    auto p = make_party(dir, i == 0 ? torch::Device(torch::kCPU) : *cuda);
    gt::CentralizedTrainer trainer(p.seg(), p.trainer->optimizer);
    gt::WireStats stats;
    for (int64_t step = 0; step < 3; ++step)
      losses[i].push_back(trainer.step(batch_of(p.seg().cfg.vocab_size, step), stats, "l").loss);
    losses[i].push_back(trainer.eval_loss(batch_of(p.seg().cfg.vocab_size, 9)).first);
  }
  for (size_t k = 0; k < losses[0].size(); ++k)
    CHECK(losses[1][k] == doctest::Approx(losses[0][k]).epsilon(2e-3));
}

TEST_CASE("device: a checkpoint written on one device resumes on the other") {
  const auto cuda = cuda_or_skip("checkpoints across devices");
  if (!cuda) return;
  const auto dir = gt::test::fixture("hf-reference/opt-tiny-s1");
  const torch::Device cpu(torch::kCPU);
  for (const auto& devices : {std::pair{*cuda, cpu}, std::pair{cpu, *cuda}}) {
    const auto from = devices.first, to = devices.second;
    const auto direction = from.str() + " -> " + to.str();
    CAPTURE(direction);
    TempDir tmp;
    const gt::ClientCheckpoint ckpt(tmp.str(), "c", "x = 1\n");
    auto writer = make_party(dir, from);
    auto server = make_server(dir, from);
    gt::ClientChannel channel(writer.trainer,
                              gt::make_client_strategy("split", writer.trainer, {}));
    channel.set_session(server->open(wire(channel.hello("c"))).header.session);
    run_step(channel, *server, {batch_of(writer.seg().cfg.vocab_size, 0), {}});
    ckpt.save(gt::ClientProgress{}, *writer.trainer, {});
    auto reader = make_party(dir, to);
    REQUIRE(ckpt.load(*reader.trainer).has_value());
    for (const auto& [name, value] : gt::trainable_adapters(reader.seg())) {
      CHECK(value.device() == to);
      CHECK(torch::equal(value.to(torch::kCPU),
                         gt::trainable_adapters(writer.seg()).at(name).to(torch::kCPU)));
    }
    // The restored optimizer state sits with the parameters: a step runs.
    auto server2 = make_server(dir, to);
    gt::ClientChannel again(reader.trainer, gt::make_client_strategy("split", reader.trainer, {}));
    again.set_session(server2->open(wire(again.hello("c"))).header.session);
    CHECK(std::isfinite(
        run_step(again, *server2, {batch_of(reader.seg().cfg.vocab_size, 1), {}}).loss));
  }
}

// Skipped where gtune is not built (the asan preset builds the libraries and unit tests alone).
TEST_CASE("device: gtune simulate with run.device=cpu equals the default run" *
          doctest::skip(gt::test::gtune_bin().empty())) {
  TempDir tmp;
  const auto a = tmp.file("default"), b = tmp.file("cpu");
  REQUIRE(simulate(a, "") == 0);
  REQUIRE(simulate(b, "--device cpu") == 0);
  CHECK(read_file(a + "/adapters.safetensors") == read_file(b + "/adapters.safetensors"));
  CHECK(final_loss(a) == final_loss(b));

  const auto cuda = cuda_or_skip("gtune simulate --device cuda");
  if (!cuda) {
    // Asking for CUDA stops before any work, with the reason.
    CHECK(simulate(tmp.file("cuda"), "--device cuda", true) != 0);
    CHECK(read_file(tmp.file("cuda") + ".log").find("run.device: \"cuda\" requested") !=
          std::string::npos);
    return;
  }
  const auto c = tmp.file("cuda"), d = tmp.file("cuda-processes");
  REQUIRE(simulate(c, "--device cuda") == 0);
  CHECK(final_loss(c) == doctest::Approx(final_loss(a)).epsilon(5e-3));
  REQUIRE(simulate(d, "--device cuda --processes") == 0);  // client and server processes
  CHECK(final_loss(d) == doctest::Approx(final_loss(a)).epsilon(5e-3));
}
