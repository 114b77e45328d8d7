// A hostile peer, for tests/integration/node_bad_peer.sh: connects to a server node
// and sends it malformed messages (another protocol version, garbage, truncated,
// oversized, wrong shapes, another party's session, out of order). Each must be
// refused with a reason, and a valid round on its own session must still work.
// Usage: gt_bad_peer HOST PORT MODEL_DIR. Exit 0 when every case went as expected.
#include <caf/all.hpp>
#include <caf/io/all.hpp>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/model_config.hpp"
#include "protocols/interfaces.hpp"

namespace {

constexpr auto kTimeout = std::chrono::seconds(60);

struct Config : caf::actor_system_config {
  Config() {
    gt::register_protocol(*this);
    set("middleman.app-identifiers",
        std::vector<std::string>{"gtune-protocol-" + std::to_string(gt::kProtocolVersion)});
    load<caf::io::middleman>();
  }
};

// The reply's bytes, or the error's description.
struct Outcome {
  std::vector<uint8_t> bytes;
  std::string error;
};

template <class Rep, class Req>
Outcome ask(caf::scoped_actor& self, const gt::server_actor& server, const gt::Encoded<Req>& msg) {
  Outcome out;
  self->request(server, kTimeout, msg)
      .receive([&](gt::Encoded<Rep>& rep) { out.bytes = std::move(rep.bytes); },
               [&](caf::error& err) { out.error = gt::describe(err); });
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s HOST PORT MODEL_DIR\n", argv[0]);
    return 2;
  }
  const auto model = gt::load_model_config(argv[3]);
  Config cfg;
  caf::actor_system sys{cfg};
  auto server =
      sys.middleman().remote_actor<gt::server_actor>(argv[1], uint16_t(std::stoi(argv[2])));
  if (!server) {
    std::fprintf(stderr, "cannot reach %s:%s: %s\n", argv[1], argv[2],
                 caf::to_string(server.error()).c_str());
    return 1;
  }
  caf::scoped_actor self{sys};
  const int64_t C = model.hidden_size;

  gt::SessionHello hello;
  hello.client_name = "mallory";
  hello.strategy = "split";
  hello.model_type = model.model_type;
  hello.num_layers = model.num_layers;
  hello.hidden_size = C;
  hello.n_in = 1, hello.n_out = 1;
  uint64_t mine = 0;
  // A flood of hellos from many actors of this node, and the sessions it got before the server
  // refused it.
  std::vector<std::unique_ptr<caf::scoped_actor>> flooders;
  std::vector<uint64_t> flood;
  auto forward = [&](int64_t rows, int64_t cols, int64_t width, uint64_t session) {
    gt::ForwardRequest m;
    m.header = gt::Header{gt::kProtocolVersion, session, 1};
    m.activations = gt::to_wire(torch::randn({rows, cols, width}));
    m.attention_mask = gt::to_wire(torch::ones({rows, cols}, torch::kLong));
    return m;
  };

  struct Case {
    std::string name, expected;  // expected: part of the refusal ("" = must succeed)
    std::function<Outcome()> send;
  };
  std::vector<Case> cases{
      {"garbage hello", "rejected",
       [&] {
         auto enc = gt::encode(hello);
         for (auto& b : enc.bytes) b = uint8_t(b * 131 + 7);
         return ask<gt::SessionAccept>(self, *server, enc);
       }},
      {"hello of another protocol version", "protocol version 99",
       [&] {
         auto h = hello;
         h.header.protocol_version = 99;
         return ask<gt::SessionAccept>(self, *server, gt::encode(h));
       }},
      {"hello for another model", "is not the server's",
       [&] {
         auto h = hello;
         h.num_layers += 2;
         return ask<gt::SessionAccept>(self, *server, gt::encode(h));
       }},
      {"valid hello", "",
       [&] {
         auto r = ask<gt::SessionAccept>(self, *server, gt::encode(hello));
         if (r.error.empty())
           mine = gt::decode(gt::Encoded<gt::SessionAccept>{r.bytes}).header.session;
         return r;
       }},
      {"a flood of hellos", "(server.max_sessions_per_peer)",
       [&] {
         Outcome last;
         for (int i = 0; i < 64; ++i) {
           flooders.push_back(std::make_unique<caf::scoped_actor>(sys));
           last = ask<gt::SessionAccept>(*flooders.back(), *server, gt::encode(hello));
           if (!last.error.empty()) break;
           flood.push_back(gt::decode(gt::Encoded<gt::SessionAccept>{last.bytes}).header.session);
         }
         return last;
       }},
      {"truncated forward", "exceeds the message",
       [&] {
         auto enc = gt::encode(forward(2, 8, C, mine));
         enc.bytes.resize(enc.bytes.size() / 2);
         return ask<gt::ForwardReply>(self, *server, enc);
       }},
      {"forward of the wrong width", "a1: shape",
       [&] {
         return ask<gt::ForwardReply>(self, *server, gt::encode(forward(2, 8, C + 3, mine)));
       }},
      {"forward over server.max_batch_tokens", "(server.max_batch_tokens)",
       [&] {  // 11 x 400 tokens, int8 to stay under the size limit
         auto m = forward(11, 400, C, mine);
         m.activations = gt::to_wire(torch::randn({11, 400, C}), gt::QuantScheme::int8);
         return ask<gt::ForwardReply>(self, *server, gt::encode(m));
       }},
      {"message over server.max_message_mb", "hung up",
       [&] {
         // The server hangs up on the connection that announces it, before reading it: from
         // an actor system of its own (a connection of its own), so this one's stays.
         Config cfg2;
         caf::actor_system sys2{cfg2};
         auto server2 =
             sys2.middleman().remote_actor<gt::server_actor>(argv[1], uint16_t(std::stoi(argv[2])));
         if (!server2) return Outcome{{}, "cannot reach: " + caf::to_string(server2.error())};
         caf::scoped_actor self2{sys2};
         self2->monitor(*server2);  // CAF fails no request when the connection goes: watch it
         auto enc = gt::encode(forward(2, 8, C, mine));
         enc.bytes.resize(size_t(3) << 20);
         self2->send(*server2, enc);
         Outcome out{{}, "no answer and no hang-up in 30 s"};
         self2->receive(
             [&](caf::down_msg& dm) {
               out.error = "rejected: hung up (" + caf::to_string(dm.reason) + ")";
             },
             [&](gt::Encoded<gt::ForwardReply>&) { out.error = ""; },
             [&](caf::error& err) {
               out.error = "read in full, then refused: " + gt::describe(err);
             },
             caf::after(std::chrono::seconds(30)) >> [] {});
         return out;
       }},
      {"backward without a forward", "without a pending forward",
       [&] {
         gt::BackwardRequest b{gt::Header{gt::kProtocolVersion, mine, 1},
                               gt::to_wire(torch::randn({2, 8, C}))};
         return ask<gt::BackwardReply>(self, *server, gt::encode(b));
       }},
      {"valid forward", "",
       [&] { return ask<gt::ForwardReply>(self, *server, gt::encode(forward(2, 8, C, mine))); }},
  };
  int failures = 0;
  for (auto& c : cases) {
    const auto r = c.send();
    const bool ok = c.expected.empty() ? r.error.empty()
                                       : r.error.rfind("rejected", 0) == 0 &&
                                             r.error.find(c.expected) != std::string::npos;
    std::printf("%s %s: %s\n", ok ? "ok  " : "FAIL", c.name.c_str(),
                r.error.empty() ? "accepted" : r.error.c_str());
    failures += !ok;
  }
  // Into every other session the server may have (ids are small numbers): none is ours.
  for (uint64_t id = 1; id <= 8; ++id) {
    if (id == mine) continue;
    const auto r = ask<gt::ForwardReply>(self, *server, gt::encode(forward(2, 8, C, id)));
    // Another client's session is not ours; an id nobody holds is unknown: refused either way.
    const bool ok = r.error.find("is not yours") != std::string::npos ||
                    r.error.find("unknown session") != std::string::npos;
    std::printf("%s forward into session %llu: %s\n", ok ? "ok  " : "FAIL",
                static_cast<unsigned long long>(id),
                r.error.empty() ? "accepted" : r.error.c_str());
    failures += !ok;
  }
  for (size_t i = 0; i < flood.size(); ++i)
    (*flooders[i])
        ->send(*server, gt::encode(gt::SessionBye{gt::Header{gt::kProtocolVersion, flood[i], 0}}));
  gt::SessionBye bye{gt::Header{gt::kProtocolVersion, mine, 0}};
  self->send(*server, gt::encode(bye));
  return failures == 0 ? 0 : 1;
}
