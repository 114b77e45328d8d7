// Every message between the parties, declared once. Plain structs; each
// carries the protocol version, its session and its step. Serialized by the
// codec (codec.hpp) with cereal; CAF carries the encoded bytes.
#pragma once

#include <cstdint>
#include <string>

#include "protocols/wire_tensor.hpp"

namespace gt {

inline constexpr uint32_t kProtocolVersion = 1;

struct Header {
  uint32_t protocol_version = kProtocolVersion;
  uint64_t session = 0;
  int64_t step = 0;
};

// client -> server: open a session for a model cut at (n_in, n_out).
struct SessionHello {
  Header header;
  std::string client_name;
  std::string strategy;    // "split", "online", ...
  std::string model_type;  // must match the server's model
  int64_t num_layers = 0, hidden_size = 0, n_in = 0, n_out = 0;
  bool backward = true;  // whether the client will send gradients
  uint8_t quant_a2 = 0;  // QuantScheme the server uses for a2 ...
  uint8_t quant_g1 = 0;  // ... and for g1
};

// server -> client: the session id to put in every later header.
struct SessionAccept {
  Header header;
  std::string server_name;
};

// client -> server: a1, the input adapter's output, and the attention mask.
struct ForwardRequest {
  Header header;
  WireTensor activations;     // a1 (B, T, C)
  WireTensor attention_mask;  // (B, T) int64
  bool keep_graph = true;     // a backward request will follow
};

// server -> client: a2, the backbone's output.
struct ForwardReply {
  Header header;
  WireTensor activations;  // a2 (B, T, C)
};

// client -> server: g2 = dLoss/da2.
struct BackwardRequest {
  Header header;
  WireTensor gradient;  // (B, T, C)
};

// server -> client: g1 = dLoss/da1.
struct BackwardReply {
  Header header;
  WireTensor gradient;  // (B, T, C)
};

// client -> server: the session is over; the server frees its state.
struct SessionBye {
  Header header;
};

// client -> server, `centralized` baseline only: the raw training batch itself
// (what a client gives up when the whole model runs on the server).
struct DataUpload {
  Header header;
  WireTensor input_ids, attention_mask, labels;  // (B, T) int64 each
};

// Names used in byte accounting ("kind" label) and in errors.
template <class T>
constexpr const char* message_kind();
template <>
constexpr const char* message_kind<SessionHello>() {
  return "session_hello";
}
template <>
constexpr const char* message_kind<SessionAccept>() {
  return "session_accept";
}
template <>
constexpr const char* message_kind<ForwardRequest>() {
  return "activations_up";
}
template <>
constexpr const char* message_kind<ForwardReply>() {
  return "activations_down";
}
template <>
constexpr const char* message_kind<BackwardRequest>() {
  return "gradients_up";
}
template <>
constexpr const char* message_kind<BackwardReply>() {
  return "gradients_down";
}
template <>
constexpr const char* message_kind<SessionBye>() {
  return "session_bye";
}
template <>
constexpr const char* message_kind<DataUpload>() {
  return "raw_data_up";
}

}  // namespace gt
