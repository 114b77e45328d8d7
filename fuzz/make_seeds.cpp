// Writes the fuzzers' generated seeds: one or more valid encoded messages of
// every type (corpus/codec/<kind>[-n].bin) and small valid safetensors files
// (corpus/safetensors/). `fuzz_make_seeds --check DIR` instead checks that DIR's
// codec seeds cover every message type and still decode, so that a protocol
// change cannot leave the fuzzer starting from seeds it rejects at once.
//
//   build/fuzz/fuzz/fuzz_make_seeds fuzz/corpus            # regenerate
//   build/fuzz/fuzz/fuzz_make_seeds --check fuzz/corpus    # a ctest
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "fuzz/messages.hpp"
#include "models/safetensors.hpp"
#include "protocols/codec.hpp"
#include "protocols/wire_tensor.hpp"

namespace fs = std::filesystem;

namespace {

gt::Header header(int64_t step) {
  return gt::Header{gt::kProtocolVersion, 7, step};
}

// Deterministic values (no RNG): seeds must not change from one generation to the next.
torch::Tensor values(std::vector<int64_t> shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return (torch::arange(n, torch::kFloat) * 0.37 - 1.5).reshape(shape);
}

// A few instances of each message type: defaults, and realistic contents.
template <class T>
std::vector<T> examples() {
  std::vector<T> out{T{}};
  T m;
  m.header = header(3);
  if constexpr (std::is_same_v<T, gt::SessionHello>) {
    m.client_name = "client-0";
    m.strategy = "online";
    m.model_type = "opt";
    m.num_layers = 6, m.hidden_size = 64, m.n_in = 1, m.n_out = 1;
    m.quant_a2 = 1, m.quant_g1 = 2;
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::SessionAccept>) {
    m.server_name = "server";
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::ForwardRequest>) {
    m.activations = gt::to_wire(values({2, 3, 4}), gt::QuantScheme::int8);
    m.attention_mask = gt::to_wire(torch::ones({2, 3}, torch::kLong));
    out.push_back(m);
    m.activations = gt::to_wire(values({1, 2, 4}).to(torch::kBFloat16));
    m.attention_mask = gt::to_wire(torch::ones({1, 2}, torch::kLong));
    m.keep_graph = false;
    out.push_back(m);
    // Padded positions left out of an int2 a1.
    const auto mask = torch::tensor({{1, 1, 0}, {1, 0, 0}}, torch::kLong);
    m.activations = gt::to_wire(values({2, 3, 4}), gt::QuantScheme::int2, mask);
    m.attention_mask = gt::to_wire(mask);
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::ForwardReply>) {
    m.activations = gt::to_wire(values({2, 3, 4}));
    out.push_back(m);
    m.activations = gt::to_wire(values({2, 3, 4}), gt::QuantScheme::none,
                                torch::tensor({{1, 1, 1}, {1, 0, 0}}));
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::BackwardRequest>) {
    m.gradient = gt::to_wire(values({2, 3, 4}), gt::QuantScheme::int4);
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::BackwardReply>) {
    m.gradient = gt::to_wire(values({1, 3, 4}).to(torch::kHalf));
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::SessionBye>) {
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::DataUpload>) {
    m.input_ids = gt::to_wire(torch::arange(6, torch::kLong).reshape({2, 3}));
    m.attention_mask = gt::to_wire(torch::ones({2, 3}, torch::kLong));
    m.labels = gt::to_wire(torch::full({2, 3}, -100, torch::kLong));
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::AdapterUpload>) {
    m.delta = true;
    m.tensors.push_back({"model.decoder.layers.0.fc1.weight", gt::to_wire(values({4, 2}))});
    m.tensors.push_back({"lm_head.bias", gt::to_wire(values({3, 4}), gt::QuantScheme::int8)});
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::AdapterAck>) {
    m.tensors = 2, m.parameters = 20;
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::EmulatorRequest>) {
    m.strategy = "offline";
    m.model_type = "opt";
    m.num_layers = 6, m.hidden_size = 64, m.n_in = 1, m.n_out = 1;
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::TransferOffer>) {
    m.transfer_id = "emulator-3f2a";
    m.total_bytes = 100, m.chunk_bytes = 32;
    m.sha256 = std::string(64, 'a');
    m.description = "blocks 0, 2, 4; int8";
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::ChunkRequest>) {
    m.transfer_id = "emulator-3f2a";
    m.offset = 32, m.length = 32;
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::GenerateRequest>) {
    const auto mask = torch::tensor({{1, 1, 0}, {0, 1, 1}}, torch::kLong);  // a prompt step
    m.activations = gt::to_wire(values({2, 3, 4}), gt::QuantScheme::int8, mask);
    m.attention_mask = gt::to_wire(mask);
    out.push_back(m);
    m.generation = 7;  // a new token of generation 7, then its end
    m.activations = gt::to_wire(values({2, 1, 4}));
    m.attention_mask = gt::to_wire(torch::ones({2, 1}, torch::kLong));
    out.push_back(m);
    m.last = true;
    m.activations = gt::to_wire(torch::zeros({0, 0, 0}));
    m.attention_mask = gt::to_wire(torch::zeros({0, 0}, torch::kLong));
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::GenerateReply>) {
    m.generation = 7;
    m.activations = gt::to_wire(values({2, 1, 4}));
    out.push_back(m);
  } else if constexpr (std::is_same_v<T, gt::ChunkReply>) {
    m.transfer_id = "emulator-3f2a";
    m.offset = 32;
    m.checksum = 0x0123456789abcdefull;
    m.data.assign(16, 0x5a);
    out.push_back(m);
  }
  return out;
}

std::string seed_name(const char* kind, size_t i) {
  return std::string(kind) + (i ? "-" + std::to_string(i) : "") + ".bin";
}

std::vector<uint8_t> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

int write_seeds(const fs::path& root) {
  fs::create_directories(root / "codec");
  fs::create_directories(root / "safetensors");
  gt::fuzz::for_each_message([&](auto proto) {
    using T = decltype(proto);
    const auto list = examples<T>();
    auto write = [&](const std::string& name, const std::vector<uint8_t>& bytes) {
      std::ofstream(root / "codec" / name, std::ios::binary)
          .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    };
    for (size_t i = 0; i < list.size(); ++i)
      write(seed_name(gt::message_kind<T>(), i), gt::encode(list[i]).bytes);
    // A zstd-compressed one too, where compression pays (strategy.compress).
    const auto packed = gt::encode(list.back(), gt::Compression::zstd).bytes;
    if (gt::is_zstd_frame(packed)) write(std::string(gt::message_kind<T>()) + "-zstd.bin", packed);
  });
  gt::save_safetensors((root / "safetensors" / "tiny.safetensors").string(),
                       {{"weight", values({2, 3})},
                        {"ids", torch::arange(3, torch::kLong)},
                        {"mask", torch::tensor({true, false})},
                        {"half", values({2}).to(torch::kBFloat16)},
                        {"empty", torch::empty({0, 4})}},
                       {{"format", "pt"}});
  gt::save_safetensors((root / "safetensors" / "empty.safetensors").string(), {});
  std::printf("seeds written under %s\n", root.string().c_str());
  return 0;
}

int check_seeds(const fs::path& root) {
  int bad = 0;
  gt::fuzz::for_each_message([&](auto proto) {
    using T = decltype(proto);
    const std::string kind = gt::message_kind<T>();
    int found = 0;
    for (const auto& entry : fs::directory_iterator(root / "codec")) {
      const std::string name = entry.path().filename().string();
      if (name != kind + ".bin" && name.rfind(kind + "-", 0) != 0) continue;
      ++found;
      try {
        (void)gt::decode(gt::Encoded<T>{read_file(entry.path())});
      } catch (const gt::ProtocolError& e) {
        std::fprintf(stderr, "%s: %s\n", entry.path().string().c_str(), e.what());
        ++bad;
      }
    }
    if (!found) {
      std::fprintf(stderr, "%s: no seed for message type %s\n", (root / "codec").string().c_str(),
                   kind.c_str());
      ++bad;
    }
  });
  if (bad)
    std::fprintf(stderr,
                 "the codec seeds are stale; regenerate them with fuzz_make_seeds %s "
                 "(build/fuzz/fuzz/fuzz_make_seeds fuzz/corpus) and commit the result\n",
                 root.string().c_str());
  return bad ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  if (args.size() == 1 && args[0] != "--check") return write_seeds(args[0]);
  if (args.size() == 2 && args[0] == "--check") return check_seeds(args[1]);
  std::fprintf(stderr, "usage: fuzz_make_seeds [--check] CORPUS_DIR\n");
  return 2;
}
