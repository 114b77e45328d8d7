// Benchmark: whole-model vs. split-learning (three segments) training step on opt-mini,
// interleaved in one run, plus checkpoint load time. Prints medians and ratios.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "bench/bench_util.hpp"
#include "data/default_task.hpp"
#include "data/lm_dataset.hpp"
#include "models/checkpoint.hpp"
#include "models/decoder.hpp"
#include "models/segments.hpp"
#include "models/tokenizer.hpp"

namespace {

using namespace gt::bench;  // Clock, median, now_string, loadavg, seconds_since

struct Options {
  std::string model = GT_DEFAULT_MODEL_DIR;
  std::string wordnet = "/usr/share/wordnet";
  int rounds = 20;  // timed rounds; each runs every batch once per variant
  int warmup = 2;   // untimed rounds first
  int batches = 4;  // distinct batches per round
  int threads = 0;  // 0 = leave torch's default
  int64_t batch = 8;
  int64_t max_len = 64;
  int64_t n_in = 1, n_out = 1;
  int load_runs = 5;
  bool random_ids = false;  // fixed random ids (batch, max_len) instead of WordNet text
};

[[noreturn]] void usage(const char* argv0, const std::string& why) {
  std::cerr
      << argv0 << ": " << why << "\n"
      << "usage: " << argv0
      << " [--model DIR] [--wordnet DIR] [--random-ids] [--rounds N] [--warmup N] [--batches N]\n"
         "       [--threads N] [--batch B] [--max-len T] [--n-in N] [--n-out N] [--load-runs N]\n";
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--random-ids") {
      o.random_ids = true;
      continue;
    }
    if (i + 1 >= argc) usage(argv[0], "missing value after " + a);
    const std::string v = argv[++i];
    try {
      if (a == "--model")
        o.model = v;
      else if (a == "--wordnet")
        o.wordnet = v;
      else if (a == "--rounds")
        o.rounds = std::stoi(v);
      else if (a == "--warmup")
        o.warmup = std::stoi(v);
      else if (a == "--batches")
        o.batches = std::stoi(v);
      else if (a == "--threads")
        o.threads = std::stoi(v);
      else if (a == "--batch")
        o.batch = std::stoll(v);
      else if (a == "--max-len")
        o.max_len = std::stoll(v);
      else if (a == "--n-in")
        o.n_in = std::stoll(v);
      else if (a == "--n-out")
        o.n_out = std::stoll(v);
      else if (a == "--load-runs")
        o.load_runs = std::stoi(v);
      else
        usage(argv[0], "unknown option " + a);
    } catch (const std::logic_error&) {
      usage(argv[0], "bad number for " + a + ": " + v);
    }
  }
  if (o.rounds < 1 || o.warmup < 0 || o.batches < 1 || o.batch < 1 || o.max_len < 2 ||
      o.load_runs < 1)
    usage(argv[0], "counts must be positive (max-len >= 2)");
  return o;
}

std::vector<gt::LmBatch> make_batches(const Options& o) {
  std::vector<gt::LmBatch> out;
  if (o.random_ids) {
    torch::manual_seed(1234);
    const auto vocab = gt::load_decoder(o.model)->cfg.vocab_size;
    for (int i = 0; i < o.batches; ++i) {
      auto ids = torch::randint(3, vocab, {o.batch, o.max_len}, torch::kLong);
      auto mask = torch::ones_like(ids);
      out.push_back({ids, mask, gt::labels_from_mask(ids, mask)});
    }
    return out;
  }
  const size_t n = static_cast<size_t>(o.batch) * o.batches;
  auto texts = gt::wordnet_definitions(o.wordnet, 0.05, n, 0).train;
  if (texts.size() < n) throw std::runtime_error("WordNet gave too few texts; try --random-ids");
  const gt::LmDataset data(texts, gt::Tokenizer::from_dir(o.model), o.max_len);
  for (int i = 0; i < o.batches; ++i) {
    std::vector<size_t> idx;
    for (int64_t b = 0; b < o.batch; ++b) idx.push_back(static_cast<size_t>(i * o.batch + b));
    out.push_back(data.batch(idx));
  }
  return out;
}

// One training step (forward + backward, no optimizer) of the whole model.
torch::Tensor step_whole(gt::DecoderLM& model, const gt::LmBatch& b) {
  auto loss = gt::causal_lm_loss(model->forward(b.input_ids, b.attention_mask), b.labels);
  loss.backward();
  return loss.detach();
}

// The same step as split learning composes it: activations cut at both wires, then
// backward run segment by segment with the gradients that cross the wires.
torch::Tensor step_segments(gt::Segments& seg, torch::ScalarType dtype, const gt::LmBatch& b) {
  auto ctx = gt::make_attention_context(seg.cfg, b.attention_mask, dtype);
  auto a1 = seg.input->forward(b.input_ids, b.attention_mask, ctx);
  auto a1_wire = a1.detach().requires_grad_();
  auto a2 = seg.backbone->forward(a1_wire, ctx);
  auto a2_wire = a2.detach().requires_grad_();
  auto loss = gt::causal_lm_loss(seg.output->forward(a2_wire, ctx), b.labels);
  loss.backward();
  a2.backward(a2_wire.grad());
  a1.backward(a1_wire.grad());
  return loss.detach();
}

std::vector<torch::Tensor> grads(gt::DecoderLM& model) {
  std::vector<torch::Tensor> out;
  for (auto& p : model->parameters())
    out.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const Options o = parse(argc, argv);
  if (o.threads > 0) torch::set_num_threads(o.threads);

  std::string cmd;
  for (int i = 0; i < argc; ++i) cmd += (i ? " " : "") + std::string(argv[i]);
  std::printf("command: %s\n", cmd.c_str());
  std::printf("date: %s\n", now_string().c_str());
  std::printf("hardware_concurrency: %u, torch threads: %d, interop threads: %d\n",
              std::thread::hardware_concurrency(), torch::get_num_threads(),
              torch::get_num_interop_threads());
  std::printf("load average at start: %s\n", loadavg().c_str());
  std::printf("model: %s\n\n", o.model.c_str());

  try {
    // ---- 1. training step: whole model vs. three segments ----
    auto model = gt::load_decoder(o.model);
    model->train();
    for (auto& p : model->parameters()) p.set_requires_grad(true);
    auto seg = gt::split_model(model, {o.n_in, o.n_out});
    int64_t n_params = 0;  // each tensor once: the head's weight is the tied embedding
    for (auto& p : gt::unique_parameters({model.get()}, false)) n_params += p.numel();
    const auto batches = make_batches(o);
    int64_t real_tokens = 0, positions = 0;
    for (auto& b : batches) {
      real_tokens += b.attention_mask.sum().item<int64_t>();
      positions += b.input_ids.numel();
    }
    std::printf(
        "[train step] %lld layers, params %lld (all trainable), split n_in=%lld n_out=%lld\n",
        static_cast<long long>(model->cfg.num_layers), static_cast<long long>(n_params),
        static_cast<long long>(o.n_in), static_cast<long long>(o.n_out));
    std::printf("data: %s, %d batches of %lld x <=%lld; shapes:",
                o.random_ids ? "fixed random ids" : "WordNet definitions", o.batches,
                static_cast<long long>(o.batch), static_cast<long long>(o.max_len));
    for (auto& b : batches)
      std::printf(" %lldx%lld", static_cast<long long>(b.input_ids.size(0)),
                  static_cast<long long>(b.input_ids.size(1)));
    std::printf("\nper round: %lld real tokens, %lld padded positions\n",
                static_cast<long long>(real_tokens), static_cast<long long>(positions));

    // Equivalence check on the first batch: same loss and gradients from both variants.
    model->zero_grad(true);
    const double loss_w = step_whole(model, batches[0]).item<double>();
    const auto g_w = grads(model);
    model->zero_grad(true);
    const double loss_s = step_segments(seg, model->dtype, batches[0]).item<double>();
    const auto g_s = grads(model);
    double max_gdiff = 0.0;
    for (size_t i = 0; i < g_w.size(); ++i)
      if (g_w[i].defined() && g_s[i].defined())
        max_gdiff = std::max(max_gdiff, (g_w[i] - g_s[i]).abs().max().item<double>());
    std::printf("check: loss whole %.6f, segments %.6f, max |grad diff| %.3g\n", loss_w, loss_s,
                max_gdiff);

    auto run_round = [&](bool segments) {
      double total = 0.0;
      for (auto& b : batches) {
        model->zero_grad(true);
        const auto t0 = Clock::now();
        if (segments)
          step_segments(seg, model->dtype, b);
        else
          step_whole(model, b);
        total += seconds_since(t0);
      }
      return total;
    };
    for (int r = 0; r < o.warmup; ++r) run_round(false), run_round(true);
    std::vector<double> t_whole, t_seg, ratio;
    for (int r = 0; r < o.rounds; ++r) {
      // Alternate which variant goes first, so neither always runs on a "warmer" machine.
      double w, s;
      if (r % 2 == 0)
        w = run_round(false), s = run_round(true);
      else
        s = run_round(true), w = run_round(false);
      t_whole.push_back(w);
      t_seg.push_back(s);
      ratio.push_back(s / w);
    }
    const double steps = o.batches;
    const double mw = median(t_whole), ms = median(t_seg);
    std::printf("%d warm-up + %d timed rounds, interleaved (AB, BA, AB, ...)\n", o.warmup,
                o.rounds);
    std::printf("  %-10s %12s %14s %16s\n", "variant", "s/step", "real tok/s", "positions/s");
    std::printf("  %-10s %12.4f %14.0f %16.0f\n", "whole", mw / steps, real_tokens / mw,
                positions / mw);
    std::printf("  %-10s %12.4f %14.0f %16.0f\n", "segments", ms / steps, real_tokens / ms,
                positions / ms);
    std::printf("  ratio segments/whole: median of per-round ratios %.3f (min %.3f, max %.3f)\n\n",
                median(ratio), *std::min_element(ratio.begin(), ratio.end()),
                *std::max_element(ratio.begin(), ratio.end()));

    // ---- 2. checkpoint load ----
    const auto st = std::filesystem::path(o.model) / "model.safetensors";
    const auto bytes = static_cast<double>(std::filesystem::file_size(st));
    std::vector<double> t_read, t_load;
    std::vector<char> buf(static_cast<size_t>(bytes));
    for (int r = 0; r < o.load_runs; ++r) {
      auto t0 = Clock::now();
      std::ifstream in(st, std::ios::binary);
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (!in) throw std::runtime_error("cannot read " + st.string());
      t_read.push_back(seconds_since(t0));
      t0 = Clock::now();
      auto m = gt::load_decoder(o.model);
      t_load.push_back(seconds_since(t0));
    }
    const double mb = bytes / 1e6, mr = median(t_read), ml = median(t_load);
    const gt::CheckpointReader ckpt(o.model);
    const auto stored = gt::to_string(ckpt.dtype(ckpt.names().front()));
    std::printf("[checkpoint load] %s (%.1f MB, %s on disk), median of %d runs, warm page cache\n",
                st.string().c_str(), mb, stored, o.load_runs);
    std::printf("  raw read of the file:   %8.4f s  %8.0f MB/s\n", mr, mb / mr);
    std::printf("  gt::load_decoder (fp32): %8.4f s  %8.0f MB/s of file  (%.1fx raw read)\n", ml,
                mb / ml, ml / mr);
    std::printf("load average at end: %s\n", loadavg().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_segments: %s\n", e.what());
    return 1;
  }
  return 0;
}
