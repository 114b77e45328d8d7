// The client's side of a split generation (issue 18): a1 of the positions fed goes up in a
// GenerateRequest (quantized as in training), a2 comes back from the server's backbone and its
// KV cache for this generation. A plain class: whoever holds the connection moves the messages.
#pragma once

#include <functional>

#include "models/segments.hpp"
#include "privacy/quantization.hpp"
#include "protocols/messages.hpp"

namespace gt {

// The hello of a session for generations: the client's model and cut, no gradients, a2 coming
// back as `a2_scheme`.
SessionHello generation_hello(const Segments& seg, const std::string& client_name,
                              QuantScheme a2_scheme = QuantScheme::none);

class GenerationClient {
 public:
  using Send = std::function<GenerateReply(GenerateRequest)>;
  GenerationClient(uint64_t session, QuantScheme a1_scheme, Send send);
  // models/generation.hpp's backbone step: every call goes on with the same generation.
  torch::Tensor step(const torch::Tensor& a1, const torch::Tensor& new_mask);
  // Ends the generation: the server drops its cache. Nothing to do when none was opened.
  void end();
  uint64_t generation() const { return generation_; }

 private:
  Header header() const;

  uint64_t session_;
  QuantScheme a1_scheme_;
  Send send_;
  uint64_t generation_ = 0;
  int64_t steps_ = 0;
};

}  // namespace gt
