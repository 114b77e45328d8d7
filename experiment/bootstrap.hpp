// Confidence intervals for task accuracy: a two-level bootstrap over test items (per task)
// and seeds, with the draws shared between designs so that a difference of two designs is a
// paired comparison (same items, same seeds in every replicate).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace gt {

// One design's outcomes: task -> seed -> per-item '1' (right) / '0' (wrong), as
// McScore::correct. Every seed of a task must have the same number of items.
using ItemOutcomes = std::map<std::string, std::map<uint64_t, std::string>>;

struct Interval {
  double mean = 0, lo = 0, hi = 0;  // point estimate and the 2.5% / 97.5% percentiles
  bool valid = false;               // false when there was nothing to resample
};

// Accuracy = mean over tasks of the mean over seeds of the item accuracy. Each of `replicates`
// resamples every task's items and the seeds with replacement (fixed draws: reports repeat).
Interval accuracy_interval(const ItemOutcomes& design, int replicates = 2000);

// design - reference, in accuracy units, over the tasks and seeds both have with the same item
// counts; invalid when they share none.
Interval difference_interval(const ItemOutcomes& design, const ItemOutcomes& reference,
                             int replicates = 2000);

}  // namespace gt
