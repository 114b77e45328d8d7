// See split_server.hpp. Every check that protects the server from a bad
// client raises ProtocolError before any state changes.
#include "strategies/split_server.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "common/error.hpp"
#include "models/safetensors.hpp"
#include "protocols/codec.hpp"
#include "strategies/client_strategy.hpp"

namespace gt {
namespace {
QuantScheme scheme_from_wire(uint8_t code, const char* field) {
  if (!is_quant_scheme(code))
    throw ProtocolError(std::string(field) + ": unknown quantization scheme " +
                        std::to_string(code));
  return static_cast<QuantScheme>(code);
}
}  // namespace

SplitServer::SplitServer(Segments seg, std::string name)
    : seg_(std::move(seg)), pretrained_(snapshot_adapters(seg_)), name_(std::move(name)) {}

SessionAccept SplitServer::open(const SessionHello& hello) {
  const auto& c = seg_.cfg;
  if (hello.model_type != c.model_type || hello.num_layers != c.num_layers ||
      hello.hidden_size != c.hidden_size)
    throw ProtocolError("client model (" + hello.model_type + ", " +
                        std::to_string(hello.num_layers) + " layers, hidden " +
                        std::to_string(hello.hidden_size) + ") is not the server's (" +
                        c.model_type + ", " + std::to_string(c.num_layers) + " layers, hidden " +
                        std::to_string(c.hidden_size) + ")");
  if (hello.n_in != seg_.split.n_in || hello.n_out != seg_.split.n_out)
    throw ProtocolError("client cuts the model at n_in=" + std::to_string(hello.n_in) +
                        ", n_out=" + std::to_string(hello.n_out) +
                        "; this server serves n_in=" + std::to_string(seg_.split.n_in) +
                        ", n_out=" + std::to_string(seg_.split.n_out));
  // Validate everything before creating the session.
  scheme_from_wire(hello.quant_a2, "quant_a2");
  scheme_from_wire(hello.quant_g1, "quant_g1");
  if (hello.compress > static_cast<uint8_t>(Compression::zstd))
    throw ProtocolError("compress: unknown compression " + std::to_string(hello.compress));
  uint64_t id = hello.header.session;
  if (id != 0) {
    auto it = sessions_.find(id);
    if (it == sessions_.end() || it->second.client_name != hello.client_name)
      throw ProtocolError("session " + std::to_string(id) + " is not an open session of client '" +
                          hello.client_name + "'");
    if (it->second.pending_step >= 0)
      throw ProtocolError("session " + std::to_string(id) + " has a step in flight");
  } else {
    id = next_session_++;
  }
  auto& s = sessions_[id];
  s.client_name = hello.client_name;
  s.strategy = hello.strategy;
  s.backward = hello.backward;
  s.a2_scheme = scheme_from_wire(hello.quant_a2, "quant_a2");
  s.g1_scheme = scheme_from_wire(hello.quant_g1, "quant_g1");
  s.compression = static_cast<Compression>(hello.compress);
  SessionAccept accept;
  accept.header = Header{kProtocolVersion, id, 0};
  accept.server_name = name_;
  return accept;
}

ServerSession& SplitServer::session(const Header& h) {
  auto it = sessions_.find(h.session);
  if (it == sessions_.end()) throw ProtocolError("unknown session " + std::to_string(h.session));
  return it->second;
}

// a1 and its mask as received, checked in host memory (a (B, T) mask of 0/1, a finite
// (B, T, C) a1, `seen + T` within OPT's positions), then moved to the backbone's device.
std::pair<torch::Tensor, torch::Tensor> SplitServer::received_a1(WireTensor activations,
                                                                 WireTensor attention_mask,
                                                                 int64_t seen) const {
  const auto C = seg_.cfg.hidden_size;
  auto mask = from_wire(std::move(attention_mask), "attention_mask", {-1, -1});
  if (mask.scalar_type() != torch::kLong) throw ProtocolError("attention_mask: must be int64");
  const auto B = mask.size(0), T = mask.size(1);
  if (B == 0 || T == 0) throw ProtocolError("attention_mask: empty batch");
  if (mask.lt(0).logical_or(mask.gt(1)).any().item<bool>())
    throw ProtocolError("attention_mask: values must be 0 or 1");
  if (seen + T > seg_.cfg.max_positions && seg_.cfg.family == Family::opt)
    throw ProtocolError("sequence of " + std::to_string(seen + T) + " tokens exceeds the model's " +
                        std::to_string(seg_.cfg.max_positions) + " positions");
  auto a1 = from_wire(std::move(activations), "a1", {B, T, C}).to(seg_.dtype);
  if (!torch::isfinite(a1).all().item<bool>()) throw ProtocolError("a1: contains NaN or infinity");
  const auto device = seg_.device();
  return {a1.to(device), mask.to(device)};
}

ForwardReply SplitServer::forward(ForwardRequest req) {
  auto& s = session(req.header);
  auto [a1, device_mask] =
      received_a1(std::move(req.activations), std::move(req.attention_mask), 0);
  const auto mask = device_mask.cpu();
  auto ctx = make_attention_context(seg_.cfg, device_mask, seg_.dtype);
  if (req.keep_graph && !s.backward)
    throw ProtocolError("session " + std::to_string(req.header.session) + " (" + s.strategy +
                        ") sends no gradients; a forward cannot keep a graph");
  const auto& h = req.header;
  if (h.micros > 1 && !req.keep_graph)
    throw ProtocolError("micro-batch " + std::to_string(h.micro) + " of " +
                        std::to_string(h.micros) + ": only training forwards are pipelined");
  ForwardReply reply;
  reply.header = h;
  if (req.keep_graph) {
    a1.requires_grad_(true);
    auto a2 = seg_.backbone->forward(a1, ctx);
    reply.activations = to_wire(a2, s.a2_scheme, mask);
    if (s.pending_step != h.step || s.pending_micros != h.micros) s.graphs.clear();
    s.graphs[h.micro] = ServerSession::Graph{a1, a2, mask};
    s.pending_step = h.step;
    s.pending_micros = h.micros;
  } else {
    torch::NoGradGuard no_grad;
    reply.activations = to_wire(seg_.backbone->forward(a1, ctx), s.a2_scheme, mask);
  }
  s.last_step = req.header.step;
  return reply;
}

int64_t SplitServer::cache_bytes() const {
  int64_t n = 0;
  for (const auto& [id, s] : sessions_)
    for (const auto& [g, cache] : s.generations) n += cache.bytes();
  return n;
}

int64_t SplitServer::num_generations() const {
  int64_t n = 0;
  for (const auto& [id, s] : sessions_) n += int64_t(s.generations.size());
  return n;
}

GenerateReply SplitServer::generate(GenerateRequest req) {
  auto& s = session(req.header);
  const auto found = s.generations.find(req.generation);
  if (req.generation != 0 && found == s.generations.end())
    throw ProtocolError("generation " + std::to_string(req.generation) + " of session " +
                        std::to_string(req.header.session) + " is unknown (ended or dropped)");
  const auto& shape = req.attention_mask.shape;
  if (req.last && req.generation != 0 && shape.size() == 2 && shape[0] * shape[1] == 0) {
    s.generations.erase(found);  // the end of a generation, with no positions to run
    GenerateReply reply;
    reply.header = req.header;
    reply.generation = req.generation;
    reply.activations = to_wire(torch::zeros({0, 0, 0}));
    return reply;
  }
  const int64_t seen = found != s.generations.end() ? found->second.seen() : 0;
  auto [a1, mask] = received_a1(std::move(req.activations), std::move(req.attention_mask), seen);
  const auto B = mask.size(0), T = mask.size(1);
  if (seen > 0 && found->second.attention_mask.size(0) != B)
    throw ProtocolError("generation " + std::to_string(req.generation) + " has " +
                        std::to_string(found->second.attention_mask.size(0)) +
                        " rows; this step sends " + std::to_string(B));
  // What this step adds to the caches, checked before anything is kept: keys and values of
  // every backbone block.
  const auto& c = seg_.cfg;
  const int64_t added = B * T * 2 * c.num_kv_heads * c.head_dim *
                        int64_t(seg_.backbone->blocks.size()) * int64_t(a1.element_size());
  if (cache_bytes() + added > cache_limit_)
    throw ProtocolError("generation caches would hold " +
                        std::to_string((cache_bytes() + added) >> 20) + " MB, over the limit of " +
                        std::to_string(cache_limit_ >> 20) + " MB (server.max_cache_mb)");
  const auto id = req.generation != 0 ? req.generation : s.next_generation++;
  auto& cache = s.generations[id];
  GenerateReply reply;
  reply.header = req.header;
  reply.generation = id;
  {
    torch::NoGradGuard no_grad;
    auto ctx = step_context(c, cache, mask, seg_.dtype);
    reply.activations = to_wire(seg_.backbone->forward(a1, ctx), s.a2_scheme, mask.cpu());
  }
  if (req.last) s.generations.erase(id);
  return reply;
}

BackwardReply SplitServer::backward(BackwardRequest req) {
  auto& s = session(req.header);
  if (!s.backward)
    throw ProtocolError("session " + std::to_string(req.header.session) + " (" + s.strategy +
                        ") agreed to send no gradients");
  const auto& h = req.header;
  if (s.pending_step != h.step || s.graphs.empty())
    throw ProtocolError("gradient for step " + std::to_string(h.step) +
                        " without a pending forward of that step");
  const auto it = s.graphs.find(h.micro);
  if (h.micros != s.pending_micros || it == s.graphs.end())
    throw ProtocolError(
        "gradient for micro-batch " + std::to_string(h.micro) + " of " + std::to_string(h.micros) +
        " of step " + std::to_string(h.step) + " without a pending forward of that micro-batch (" +
        std::to_string(s.graphs.size()) + " of " + std::to_string(s.pending_micros) + " pending)");
  auto& g = it->second;
  auto g2 = from_wire(std::move(req.gradient), "g2", g.a2.sizes().vec()).to(g.a2.scalar_type());
  if (!torch::isfinite(g2).all().item<bool>()) throw ProtocolError("g2: contains NaN or infinity");
  g.a2.backward(g2.to(g.a2.device()));  // through the frozen backbone to the received a1
  BackwardReply reply;
  reply.header = h;
  reply.gradient = to_wire(g.a1.grad(), s.g1_scheme, g.mask);
  s.graphs.erase(it);
  if (s.graphs.empty()) s.pending_step = -1;
  return reply;
}

namespace {

int64_t bytes_of(const NamedTensors& tensors) {
  int64_t n = 0;
  for (const auto& [name, t] : tensors) n += int64_t(t.numel() * t.element_size());
  return n;
}

}  // namespace

std::string SplitServer::plugged_path(const std::string& client_name) const {
  std::string file = client_name;
  for (auto& c : file)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') c = '_';
  return (std::filesystem::path(plugged_dir_) / ("plugged-" + file + ".safetensors")).string();
}

void SplitServer::set_plugged_limit(int64_t bytes, std::string dir) {
  plugged_limit_ = bytes;
  plugged_dir_ = std::move(dir);
}

AdapterAck SplitServer::plug(const AdapterUpload& upload) {
  auto& s = session(upload.header);
  auto values = reconstruct_upload(upload, pretrained_, trainable_adapters(seg_));
  const auto bytes = bytes_of(values);
  const auto old = plugged_.find(s.client_name);
  const auto others = plugged_bytes_ - (old == plugged_.end() ? 0 : bytes_of(old->second));
  if (plugged_dir_.empty() && others + bytes > plugged_limit_)
    throw ProtocolError("the server keeps at most " + std::to_string(plugged_limit_ >> 20) +
                        " MB of plugged adapters (server.max_plugged_mb) and holds " +
                        std::to_string(others >> 20) +
                        " MB: refused (a server node given --out "
                        "keeps them on disk instead)");
  if (!plugged_dir_.empty()) {
    std::vector<std::pair<std::string, torch::Tensor>> tensors;
    for (const auto& [name, t] : values) tensors.emplace_back(name, t.to(torch::kCPU));
    try {
      std::filesystem::create_directories(plugged_dir_);
      save_safetensors(plugged_path(s.client_name), tensors, {{"format", "pt"}});
    } catch (const std::exception& e) {
      throw ProtocolError(std::string("the server cannot keep the plugged adapters: ") + e.what());
    }
  }
  AdapterAck ack;
  ack.header = upload.header;
  ack.tensors = static_cast<int64_t>(values.size());
  for (auto& [name, v] : values) ack.parameters += v.numel();
  plugged_bytes_ = others + bytes;
  plugged_[s.client_name] = std::move(values);
  plugged_order_.remove(s.client_name);
  plugged_order_.push_back(s.client_name);
  evict_plugged(s.client_name);
  return ack;
}

// The least recently plugged leave memory (their file stays) until the rest fits the limit.
void SplitServer::evict_plugged(const std::string& keep) {
  if (plugged_dir_.empty()) return;
  while (plugged_bytes_ > plugged_limit_ && plugged_order_.front() != keep) {
    const auto name = plugged_order_.front();
    plugged_order_.pop_front();
    plugged_bytes_ -= bytes_of(plugged_.at(name));
    plugged_.erase(name);
    ++plugged_evictions_;
  }
}

const std::string& SplitServer::client_of(uint64_t session) const {
  auto it = sessions_.find(session);
  if (it == sessions_.end()) throw ProtocolError("unknown session " + std::to_string(session));
  return it->second.client_name;
}

NamedTensors SplitServer::plugged(const std::string& client_name) const {
  auto it = plugged_.find(client_name);
  if (it != plugged_.end()) return it->second;
  if (plugged_dir_.empty() || !std::filesystem::exists(plugged_path(client_name))) return {};
  SafetensorsFile file(plugged_path(client_name));  // evicted: read back
  NamedTensors out;
  for (const auto& name : file.names()) out[name] = file.tensor(name).to(seg_.device());
  return out;
}

std::pair<double, int64_t> SplitServer::evaluate_plugged(const std::string& client_name,
                                                         const LmBatch& cpu_batch) {
  const auto values = plugged(client_name);
  if (values.empty()) throw Error("no adapters plugged for client '" + client_name + "'");
  assign_adapters(trainable_adapters(seg_), values);
  torch::NoGradGuard no_grad;
  const auto batch = to_device(cpu_batch, seg_.device());
  auto ctx = make_attention_context(seg_.cfg, batch.attention_mask, seg_.dtype);
  auto a1 = seg_.input->forward(batch.input_ids, batch.attention_mask, ctx);
  return summed_lm_loss(seg_.output->lm_loss(seg_.backbone->forward(a1, ctx), ctx, batch.labels));
}

Compression SplitServer::compression(uint64_t session) const {
  const auto it = sessions_.find(session);
  return it == sessions_.end() ? Compression::none : it->second.compression;
}

void SplitServer::close(uint64_t session) {
  sessions_.erase(session);
}

}  // namespace gt
