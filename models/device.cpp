// See device.hpp.
#include "models/device.hpp"

#include <torch/version.h>

#include <algorithm>

#include "common/error.hpp"

namespace gt {
namespace {

// "cuda:N" -> N, or -1 when `name` is not of that form (N decimal, no sign, no leading zero).
int cuda_index(const std::string& name) {
  if (name.rfind("cuda:", 0) != 0) return -1;
  const auto n = name.substr(5);
  if (n.empty() || n.size() > 4 || (n.size() > 1 && n[0] == '0') ||
      !std::all_of(n.begin(), n.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return -1;
  return std::stoi(n);
}

}  // namespace

bool cuda_usable() {
  return torch::cuda::is_available();
}

torch::Device parse_device(const std::string& name, const std::string& key) {
  if (name == "cpu") return torch::Device(torch::kCPU);
  const int index = name == "cuda" ? -1 : cuda_index(name);
  if (name != "cuda" && index < 0)
    throw Error(key + ": \"" + name + "\" is not a device (allowed: cpu, cuda, cuda:N)");
  if (!cuda_usable()) {
    const std::string why =
        at::hasCUDA()
            ? "this LibTorch has CUDA but no GPU is visible (check nvidia-smi, the driver and "
              "CUDA_VISIBLE_DEVICES)"
            : "this LibTorch (" + std::string(TORCH_VERSION) +
                  ") was built without CUDA (or its libtorch_cuda was dropped at link time by "
                  "--as-needed): build against a CUDA LibTorch, e.g. the one in a CUDA PyTorch: "
                  "cmake -DTorch_DIR=\"$(python3 -c 'import torch; "
                  "print(torch.utils.cmake_prefix_path)')/Torch\" ... (docs/performance.md, "
                  "\"CUDA\"; scripts/gpu-bench)";
    throw Error(key + ": \"" + name + "\" requested, but " + why + "; or use " + key + "=cpu");
  }
  const auto count = static_cast<int>(torch::cuda::device_count());
  if (index >= count)
    throw Error(key + ": \"" + name + "\" requested, but only " + std::to_string(count) +
                " GPU(s) are visible (cuda:0" +
                (count > 1 ? " to cuda:" + std::to_string(count - 1) : std::string()) + ")");
  return index < 0 ? torch::Device(torch::kCUDA) : torch::Device(torch::kCUDA, index);
}

std::string describe_device(const torch::Device& device) {
  return device.str();
}

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : -1);
}

}  // namespace gt
