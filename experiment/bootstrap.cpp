// See bootstrap.hpp.
#include "experiment/bootstrap.hpp"

#include <algorithm>
#include <random>

namespace gt {
namespace {

// The outcomes both designs have (or one design alone when `reference` is null), as numbers:
// task -> seeds (sorted) -> items.
struct Table {
  std::vector<std::vector<std::vector<uint8_t>>> a, b;  // [task][seed][item]
};

std::vector<uint8_t> bits(const std::string& s) {
  std::vector<uint8_t> out(s.size());
  for (size_t i = 0; i < s.size(); ++i) out[i] = s[i] == '1';
  return out;
}

Table shared(const ItemOutcomes& a, const ItemOutcomes* b) {
  Table t;
  for (const auto& [task, seeds] : a) {
    std::vector<std::vector<uint8_t>> ta, tb;
    size_t items = 0;
    for (const auto& [seed, outcomes] : seeds) {
      if (outcomes.empty()) continue;
      const std::string* other = nullptr;
      if (b) {
        auto it = b->find(task);
        if (it == b->end()) continue;
        auto jt = it->second.find(seed);
        if (jt == it->second.end() || jt->second.size() != outcomes.size()) continue;
        other = &jt->second;
      }
      if (items == 0) items = outcomes.size();
      if (outcomes.size() != items) continue;
      ta.push_back(bits(outcomes));
      if (other) tb.push_back(bits(*other));
    }
    if (ta.empty()) continue;
    t.a.push_back(std::move(ta));
    if (b) t.b.push_back(std::move(tb));
  }
  return t;
}

// Accuracy of one table under one draw: per task, chosen items of chosen seeds.
double accuracy(const std::vector<std::vector<std::vector<uint8_t>>>& table,
                const std::vector<std::vector<size_t>>& items,
                const std::vector<std::vector<size_t>>& seeds) {
  double sum = 0;
  for (size_t t = 0; t < table.size(); ++t) {
    double task = 0;
    for (size_t s : seeds[t]) {
      size_t right = 0;
      for (size_t i : items[t]) right += table[t][s][i];
      task += double(right) / double(items[t].size());
    }
    sum += task / double(seeds[t].size());
  }
  return sum / double(table.size());
}

Interval run(const Table& t, bool paired, int replicates) {
  Interval out;
  if (t.a.empty()) return out;
  std::vector<std::vector<size_t>> all_items(t.a.size()), all_seeds(t.a.size());
  for (size_t k = 0; k < t.a.size(); ++k) {
    for (size_t i = 0; i < t.a[k][0].size(); ++i) all_items[k].push_back(i);
    for (size_t s = 0; s < t.a[k].size(); ++s) all_seeds[k].push_back(s);
  }
  const auto value = [&](const auto& items, const auto& seeds) {
    return accuracy(t.a, items, seeds) - (paired ? accuracy(t.b, items, seeds) : 0.0);
  };
  out.mean = value(all_items, all_seeds);
  std::vector<double> draws;
  std::mt19937_64 rng(0x5eed'b007);  // fixed: the same draws for every design and report
  for (int r = 0; r < replicates; ++r) {
    auto items = all_items, seeds = all_seeds;
    for (size_t k = 0; k < t.a.size(); ++k) {
      for (auto& i : items[k]) i = rng() % all_items[k].size();
      for (auto& s : seeds[k]) s = rng() % all_seeds[k].size();
    }
    draws.push_back(value(items, seeds));
  }
  std::sort(draws.begin(), draws.end());
  const auto at = [&](double q) {
    const double pos = q * double(draws.size() - 1);
    const auto lo = size_t(pos);
    const auto hi = std::min(lo + 1, draws.size() - 1);
    return draws[lo] + (pos - double(lo)) * (draws[hi] - draws[lo]);
  };
  out.lo = at(0.025);
  out.hi = at(0.975);
  out.valid = replicates > 0;
  return out;
}

}  // namespace

Interval accuracy_interval(const ItemOutcomes& design, int replicates) {
  return run(shared(design, nullptr), false, replicates);
}

Interval difference_interval(const ItemOutcomes& design, const ItemOutcomes& reference,
                             int replicates) {
  return run(shared(design, &reference), true, replicates);
}

}  // namespace gt
