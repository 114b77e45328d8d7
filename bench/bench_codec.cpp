// The codec's cost on the tensor path, against the floor: one memcpy of the
// payload. A sender turns an activation tensor into bytes (to_wire + encode), a
// receiver turns the bytes back into a tensor (decode + from_wire); each is
// timed next to a plain copy of the same bytes, round by round, so the ratios
// hold on a noisy machine. A ratio of 1 would mean the codec costs one copy.
//   bench_codec [--rounds N] [--scheme none|int8|int4]
#include <cstring>
#include <iostream>
#include <string>

#include "bench/bench_util.hpp"
#include "protocols/codec.hpp"
#include "protocols/messages.hpp"
#include "protocols/wire_tensor.hpp"

namespace {

using gt::bench::Clock;
using gt::bench::median;
using gt::bench::seconds_since;

struct Shape {
  const char* name;
  int64_t batch, tokens, hidden;
};

volatile uint8_t g_sink;  // keeps the copies from being optimised away

void run(const Shape& s, gt::QuantScheme scheme, int rounds) {
  const auto x = torch::randn({s.batch, s.tokens, s.hidden});
  const auto bytes = static_cast<size_t>(x.numel()) * sizeof(float);
  std::vector<uint8_t> copy(bytes);
  std::vector<double> memcpy_s, send_s, receive_s, decode_s, send_ratio, receive_ratio;
  size_t wire = 0;
  for (int r = 0; r < rounds + 1; ++r) {
    auto t0 = Clock::now();
    std::memcpy(copy.data(), x.data_ptr(), bytes);
    g_sink = copy[bytes / 2];
    const double floor = seconds_since(t0);

    t0 = Clock::now();
    gt::ForwardReply reply;
    reply.activations = gt::to_wire(x, scheme);
    auto encoded = gt::encode(reply);
    const double send = seconds_since(t0);

    t0 = Clock::now();
    auto decoded = gt::decode(encoded);
    const double decode = seconds_since(t0);
    auto y = gt::from_wire(std::move(decoded.activations), "a2", {s.batch, s.tokens, s.hidden});
    const double receive = seconds_since(t0);
    decode_s.push_back(decode);

    if (r == 0) {  // warm-up; check the round trip once
      wire = encoded.bytes.size();
      if (scheme == gt::QuantScheme::none && !torch::equal(x, y))
        throw std::runtime_error("fp32 round trip differs");
      continue;
    }
    memcpy_s.push_back(floor);
    send_s.push_back(send);
    receive_s.push_back(receive);
    send_ratio.push_back(send / floor);
    receive_ratio.push_back(receive / floor);
  }
  std::cout << "| " << s.name << " (" << s.batch << "x" << s.tokens << "x" << s.hidden << ") | "
            << bytes << " | " << wire << " | " << median(memcpy_s) * 1e3 << " | "
            << median(send_s) * 1e3 << " | " << median(receive_s) * 1e3 << " ("
            << median(decode_s) * 1e3 << ") | " << median(send_ratio) << " | "
            << median(receive_ratio) << " |\n";
}

}  // namespace

int main(int argc, char** argv) {
  int rounds = 30;
  std::string scheme_name = "none";
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string arg = argv[i];
    if (arg == "--rounds") {
      rounds = std::stoi(argv[i + 1]);
    } else if (arg == "--scheme") {
      scheme_name = argv[i + 1];
    } else {
      std::cerr << "usage: bench_codec [--rounds N] [--scheme none|int8|int4]\n";
      return 2;
    }
  }
  const auto scheme = scheme_name == "int8"   ? gt::QuantScheme::int8
                      : scheme_name == "int4" ? gt::QuantScheme::int4
                                              : gt::QuantScheme::none;
  torch::manual_seed(0);
  std::cout << "bench_codec: " << gt::bench::now_string() << ", load " << gt::bench::loadavg()
            << ", scheme " << scheme_name << ", " << rounds << " rounds (medians)\n\n"
            << "| activation | payload bytes (fp32) | wire bytes | memcpy ms | to_wire+encode ms "
               "| decode+from_wire ms (decode) | send / memcpy | receive / memcpy |\n"
            << "|---|---|---|---|---|---|---|---|\n";
  for (const Shape& s :
       {Shape{"opt-mini batch", 8, 64, 256}, Shape{"OPT-1.3B batch", 8, 512, 2048}})
    run(s, scheme, rounds);
  std::cout << "\nload at the end " << gt::bench::loadavg() << "\n";
}
