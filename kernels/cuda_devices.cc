#include "kernels/cuda_devices.h"

namespace tessera::kernels {

std::string_view CudaRuntimeStateName(CudaRuntimeState state) {
  switch (state) {
    case CudaRuntimeState::kNotBuilt:
      return "a build without CUDA";
    case CudaRuntimeState::kNoDevice:
      return "no CUDA device";
    case CudaRuntimeState::kStartFailed:
      return "the CUDA runtime could not start";
    case CudaRuntimeState::kReady:
      return "ready";
  }
  return "unknown";
}

std::string MarketModelName(std::string_view name) {
  for (std::string_view prefix : {"NVIDIA ", "GeForce ", "Tesla "}) {
    if (name.starts_with(prefix)) name.remove_prefix(prefix.size());
  }
  // The first word, up to a space or dash; a consumer "RTX"/"GTX" keeps its number.
  const size_t end = name.find_first_of(" -");
  std::string_view word = name.substr(0, end);
  if ((word == "RTX" || word == "GTX") && end != std::string_view::npos) {
    std::string_view rest = name.substr(end + 1);
    return std::string(word) + " " + std::string(rest.substr(0, rest.find_first_of(" -")));
  }
  return std::string(word.empty() ? name : word);
}

}  // namespace tessera::kernels
