// The device a party computes on (run.device): "cpu", "cuda" (the current GPU) or "cuda:N".
// Models and batches live there; the wire always carries CPU bytes (protocols/wire_tensor.*),
// and whoever receives a tensor moves it to its own device.
#pragma once

#include <torch/torch.h>

#include <string>

namespace gt {

// Whether this LibTorch was built with CUDA and sees at least one GPU.
bool cuda_usable();

// "cpu", "cuda", "cuda:N" -> the device, checked against this build and machine. Throws
// gt::Error naming `key` for anything else, for cuda when this LibTorch has no CUDA or no GPU
// is visible (saying how to build against a CUDA LibTorch), and for an index past the GPUs.
torch::Device parse_device(const std::string& name, const std::string& key = "run.device");

// The name as LibTorch spells it: "cpu", "cuda", "cuda:1".
std::string describe_device(const torch::Device& device);

// Waits for the device's queued work (CUDA kernels run asynchronously); nothing on the CPU.
// Timers around GPU work call it before reading the clock.
void synchronize(const torch::Device& device);

}  // namespace gt
