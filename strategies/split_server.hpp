// The server's half of split learning: it owns the frozen backbone and, per
// client session, the graph from a received a1 to the a2 it sent back, until
// the client's g2 arrives. Plain class: the server actor only moves messages.
#pragma once

#include <list>
#include <map>
#include <string>

#include "data/batch_source.hpp"
#include "models/kv_cache.hpp"
#include "models/segments.hpp"
#include "privacy/quantization.hpp"
#include "protocols/compression.hpp"
#include "protocols/messages.hpp"
#include "strategies/adapter_upload.hpp"

namespace gt {

struct ServerSession {
  std::string client_name, strategy;
  QuantScheme a2_scheme = QuantScheme::none, g1_scheme = QuantScheme::none;  // what it sends back
  Compression compression = Compression::none;                               // of its replies
  bool backward = true;  // false (gradfree, offline): no graph is kept, no gradient accepted
  int64_t last_step = -1;
  // Between a training forward and its backward, one graph per micro-batch of the pending
  // step (one for an unpipelined step): a1 is a leaf requiring grad; a2 its image through the
  // backbone.
  struct Graph {
    torch::Tensor a1, a2;
    torch::Tensor mask;  // (B, T) as received: g1 leaves out the padded positions, as a2 did
  };
  std::map<uint32_t, Graph> graphs;
  int64_t pending_step = -1;  // -1: no graph kept
  uint32_t pending_micros = 1;
  // Generations with the tuned model: the backbone's KV cache of each, by id.
  std::map<uint64_t, KvCache> generations;
  uint64_t next_generation = 1;
};

class SplitServer {
 public:
  // `seg`: the full model; its adapters have the clients' structure (LoRA or
  // not) and trainable flags, and hold the pretrained values deltas refer to.
  SplitServer(Segments seg, std::string name);

  // Checks the client's model matches ours; returns the new session, or, when
  // the hello names an open session of the same client, updates its terms
  // (a strategy switch). Throws ProtocolError.
  SessionAccept open(const SessionHello& hello);
  // Requests are taken over: received tensors are used in place, not copied. A training
  // forward keeps its graph until the backward naming the same step and micro-batch; a
  // training forward of another step (or another micro-batch count) drops the graphs kept.
  ForwardReply forward(ForwardRequest request);
  BackwardReply backward(BackwardRequest request);
  // One step of a generation: the backbone over the positions fed, with the generation's KV
  // cache (a new one when the request names none). Refused when the caches of every session
  // would pass the cache limit.
  GenerateReply generate(GenerateRequest request);
  void set_cache_limit(int64_t bytes) { cache_limit_ = bytes; }
  int64_t cache_bytes() const;
  int64_t num_generations() const;
  // Plugs a client's tuned adapters into the full model (kept per client, and written to
  // <plugged dir>/plugged-<client>.safetensors when there is one).
  AdapterAck plug(const AdapterUpload& upload);
  // At most `bytes` of plugged adapters in memory (issue 19). Beyond it the least recently
  // plugged leave memory and are read back from their file when asked for; with no `dir`, an
  // upload that would pass it is refused.
  void set_plugged_limit(int64_t bytes, std::string dir);
  int64_t plugged_bytes() const { return plugged_bytes_; }  // in memory
  int64_t plugged_evictions() const { return plugged_evictions_; }
  void close(uint64_t session);

  size_t num_sessions() const { return sessions_.size(); }
  bool has_session(uint64_t session) const { return sessions_.count(session) != 0; }
  // How replies in a session are encoded (none for an unknown session).
  Compression compression(uint64_t session) const;
  // The adapters last plugged for a client (empty when none).
  NamedTensors plugged(const std::string& client_name) const;
  // The client name a session's hello gave; throws ProtocolError for an unknown session.
  const std::string& client_of(uint64_t session) const;
  // Summed loss and counted tokens of the full model with a client's plugged adapters.
  std::pair<double, int64_t> evaluate_plugged(const std::string& client_name, const LmBatch& batch);

 private:
  ServerSession& session(const Header& h);
  std::pair<torch::Tensor, torch::Tensor> received_a1(WireTensor activations,
                                                      WireTensor attention_mask,
                                                      int64_t seen) const;

  Segments seg_;
  NamedTensors pretrained_;  // the adapters as loaded: what deltas are relative to
  std::string plugged_path(const std::string& client_name) const;
  void evict_plugged(const std::string& keep);

  std::map<std::string, NamedTensors> plugged_;  // client name -> its plugged adapters (memory)
  std::list<std::string> plugged_order_;         // clients in memory, least recently plugged first
  int64_t plugged_bytes_ = 0, plugged_limit_ = int64_t(1) << 30, plugged_evictions_ = 0;
  std::string plugged_dir_;
  std::string name_;
  uint64_t next_session_ = 1;
  std::map<uint64_t, ServerSession> sessions_;
  int64_t cache_limit_ = int64_t(1) << 30;
};

}  // namespace gt
