// Multiple-choice tasks as fine-tuning data: each item's context is the prompt and its right
// choice the response, so a model tuned on a task's train split is scored on its test split.
#pragma once

#include <cstddef>
#include <vector>

#include "data/instructions.hpp"
#include "data/multiple_choice.hpp"

namespace gt {

// Train and valid items of every task, interleaved round-robin (task 1's first item, task 2's
// first, ..., task 1's second, ...) so that any prefix mixes the tasks evenly; at most
// max_train / max_valid examples (0 = all). Test items are never used.
InstructionSplit mc_instructions(const std::vector<McTask>& tasks, size_t max_train,
                                 size_t max_valid);

}  // namespace gt
