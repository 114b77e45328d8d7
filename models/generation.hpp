// Text generation through the three segments with KV caches (issue 18): the prompt goes through
// once, then each new token is one position through the input adapter, the backbone and the
// output adapter. The backbone step is a function, so that a split run can put it on the server.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/segments.hpp"

namespace gt {

struct SamplingOptions {
  int64_t max_tokens = 32;
  double temperature = 0;  // 0: greedy (argmax)
  int64_t top_k = 0;       // 0: every token
  double top_p = 1;        // nucleus: the fewest tokens whose probability reaches top_p
  uint64_t seed = 0;
  std::vector<int64_t> stop_tokens;  // e.g. the EOS token; not part of the output
};

// Each row's new tokens and why it ended: "stop" (a stop token) or "length" (max_tokens).
struct Generation {
  std::vector<std::vector<int64_t>> tokens;
  std::vector<std::string> finish;
};

// One backbone step: a1 (B, T_new, C) of the positions fed now with their mask (B, T_new) -> a2.
// Whoever runs it keeps the backbone's KV cache.
using BackboneStep =
    std::function<torch::Tensor(const torch::Tensor& a1, const torch::Tensor& new_mask)>;

// The next token of each row from its (B, V) logits, as `o` samples.
torch::Tensor next_tokens(const torch::Tensor& logits, const SamplingOptions& o,
                          at::Generator& generator);

// Called with (row, token) as each token is generated (stop tokens excluded), to show progress;
// false ends that row there with finish "stop" (e.g. a stop string, models/text_stream.hpp).
using TokenCallback = std::function<bool(int64_t row, int64_t token)>;

// Generates after `prompt_ids` (B, T) with their 0/1 mask (left or right padding): the new
// tokens go after the last column. The client's adapters run here, the backbone through
// `backbone`.
Generation generate(Segments& seg, const BackboneStep& backbone, const torch::Tensor& prompt_ids,
                    const torch::Tensor& prompt_mask, const SamplingOptions& o,
                    const TokenCallback& on_token = {});
// The same with the segments' own backbone (one process, its cache kept here).
Generation generate(Segments& seg, const torch::Tensor& prompt_ids,
                    const torch::Tensor& prompt_mask, const SamplingOptions& o,
                    const TokenCallback& on_token = {});

}  // namespace gt
