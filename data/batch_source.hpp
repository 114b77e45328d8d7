// Anything that yields training batches by sample index (LM texts, instructions).
#pragma once

#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

namespace gt {

struct LmBatch {
  torch::Tensor input_ids;       // (B, T) int64
  torch::Tensor attention_mask;  // (B, T) int64, 1 = real token
  torch::Tensor labels;          // (B, T) int64, -100 where no loss is taken
};

// The batch on `device` (a no-op, no copy, when it is there already): the party that computes
// on a batch moves it to its model's device when a step starts.
inline LmBatch to_device(const LmBatch& b, const torch::Device& device) {
  auto move = [&](const torch::Tensor& t) { return t.defined() ? t.to(device) : t; };
  return {move(b.input_ids), move(b.attention_mask), move(b.labels)};
}

struct BatchSource {
  virtual ~BatchSource() = default;
  virtual size_t size() const = 0;
  virtual LmBatch batch(const std::vector<size_t>& indices) const = 0;
};

// Some samples of another source, renumbered 0..n-1 (e.g. the examples a client trained on).
class SubsetSource : public BatchSource {
 public:
  SubsetSource(std::shared_ptr<const BatchSource> source, std::vector<size_t> indices)
      : source_(std::move(source)), indices_(std::move(indices)) {}
  size_t size() const override { return indices_.size(); }
  LmBatch batch(const std::vector<size_t>& indices) const override {
    std::vector<size_t> mapped;
    for (auto i : indices) mapped.push_back(indices_.at(i));
    return source_->batch(mapped);
  }

 private:
  std::shared_ptr<const BatchSource> source_;
  std::vector<size_t> indices_;
};

}  // namespace gt
