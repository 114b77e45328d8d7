// Formatting helpers shared by the experiment's report writers: NaN means "no value".
#pragma once

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "experiment/experiment_report.hpp"

namespace gt::report_format {

inline bool has(double v) {
  return !std::isnan(v);
}

inline std::string fmt(const char* format, double v) {
  if (!has(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

inline std::string dash_or(const std::string& s) {
  return s.empty() ? "–" : s;
}

inline double mean(const std::vector<double>& xs) {
  double sum = 0;
  size_t n = 0;
  for (double x : xs)
    if (has(x)) sum += x, ++n;
  return n ? sum / double(n) : kNoValue;
}

// Sample standard deviation; NaN for fewer than two values.
inline double stddev(const std::vector<double>& xs) {
  const double m = mean(xs);
  double sum = 0;
  size_t n = 0;
  for (double x : xs)
    if (has(x)) sum += (x - m) * (x - m), ++n;
  return n > 1 ? std::sqrt(sum / double(n - 1)) : kNoValue;
}

}  // namespace gt::report_format
