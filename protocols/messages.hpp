// Every message between the parties, declared once. Plain structs; each
// carries the protocol version, its session and its step. Serialized by the
// codec (codec.hpp) with cereal; CAF carries the encoded bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "protocols/wire_tensor.hpp"

namespace gt {

// 2: tensors name the rows they send (padding left out); int2; micro-batches.
inline constexpr uint32_t kProtocolVersion = 2;

struct Header {
  uint32_t protocol_version = kProtocolVersion;
  uint64_t session = 0;
  int64_t step = 0;
  // A pipelined training step (strategy.micro_batches > 1) sends its batch in `micros` row
  // chunks; forward and backward messages name their chunk, from 0. 0 of 1 otherwise.
  uint32_t micro = 0, micros = 1;
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
  uint8_t compress = 0;  // Compression of the server's replies (compression.hpp)
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

// A named tensor, e.g. one adapter parameter under its HuggingFace name.
struct NamedTensor {
  std::string name;
  WireTensor value;
};

// client -> server, when an `offsite`/`offline` phase ends: the adapters tuned
// around the emulator, to plug into the full model. Also what FedAvg averages.
struct AdapterUpload {
  Header header;
  bool delta = false;  // values are (tuned - pretrained) of the server's own adapters
  std::vector<NamedTensor> tensors;
};

// server -> client: the adapters are plugged into the full model.
struct AdapterAck {
  Header header;
  int64_t tensors = 0, parameters = 0;
};

// client -> emulator builder: an emulator of the backbone for this strategy and cut.
struct EmulatorRequest {
  Header header;
  std::string strategy;    // "offsite" | "offline": the builder's settings for each
  std::string model_type;  // must match the builder's model
  int64_t num_layers = 0, hidden_size = 0, n_in = 0, n_out = 0;
};

// builder -> client: a file ready to be fetched in chunks.
struct TransferOffer {
  Header header;
  std::string transfer_id;  // names the file on both sides; the same content has the same id
  int64_t total_bytes = 0, chunk_bytes = 0;
  std::string sha256;       // hex digest of the whole file
  std::string description;  // human-readable: kept layers, weight format
};

// client -> builder: bytes [offset, offset + length) of a transfer.
struct ChunkRequest {
  Header header;
  std::string transfer_id;
  int64_t offset = 0, length = 0;
};

// builder -> client: one chunk and its checksum.
struct ChunkReply {
  Header header;
  std::string transfer_id;
  int64_t offset = 0;
  uint64_t checksum = 0;  // stable_hash of data
  std::vector<uint8_t> data;
};

// client -> server: one step of a generation with the tuned model (issue 18): a1 of the
// positions fed now (the prompt, then one new token a row). The server runs its backbone over
// them with the generation's KV cache and answers a2.
struct GenerateRequest {
  Header header;
  uint64_t generation = 0;    // 0: a new generation, whose prompt this is; else the one to go on
  WireTensor activations;     // a1 (B, T_new, C)
  WireTensor attention_mask;  // (B, T_new) int64
  bool last = false;          // the generation ends with this step: its cache is dropped
};

// server -> client: a2 of the positions fed, and the generation they belong to.
struct GenerateReply {
  Header header;
  uint64_t generation = 0;
  WireTensor activations;  // a2 (B, T_new, C)
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
template <>
constexpr const char* message_kind<AdapterUpload>() {
  return "adapters_up";
}
template <>
constexpr const char* message_kind<AdapterAck>() {
  return "adapters_ack";
}
template <>
constexpr const char* message_kind<EmulatorRequest>() {
  return "emulator_request";
}
template <>
constexpr const char* message_kind<TransferOffer>() {
  return "transfer_offer";
}
template <>
constexpr const char* message_kind<ChunkRequest>() {
  return "chunk_request";
}
template <>
constexpr const char* message_kind<ChunkReply>() {
  return "chunk_down";
}
template <>
constexpr const char* message_kind<GenerateRequest>() {
  return "generate_up";
}
template <>
constexpr const char* message_kind<GenerateReply>() {
  return "generate_down";
}

}  // namespace gt
