// See mc_instructions.hpp.
#include "data/mc_instructions.hpp"

namespace gt {
namespace {

std::vector<InstructionExample> interleave(const std::vector<const std::vector<McItem>*>& lists,
                                           size_t max_examples) {
  std::vector<InstructionExample> out;
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const auto* items : lists) {
      if (i >= items->size()) continue;
      any = true;
      if (max_examples > 0 && out.size() == max_examples) return out;
      const auto& item = (*items)[i];
      out.push_back({item.context, item.choices.at(size_t(item.answer))});
    }
    if (!any) return out;
  }
}

}  // namespace

InstructionSplit mc_instructions(const std::vector<McTask>& tasks, size_t max_train,
                                 size_t max_valid) {
  std::vector<const std::vector<McItem>*> train, valid;
  for (const auto& t : tasks) {
    train.push_back(&t.train);
    valid.push_back(&t.valid);
  }
  return {interleave(train, max_train), interleave(valid, max_valid)};
}

}  // namespace gt
