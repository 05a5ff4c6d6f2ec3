// Helpers shared by the translation units that include libtorch.
#pragma once
#include <torch/torch.h>
#include "common.h"

namespace dlt {
using TensorHandle = at::Tensor*;

inline TensorHandle wrap(at::Tensor t) { return new at::Tensor(std::move(t)); }

inline const at::Tensor& deref(TensorHandle h) {
  if (h == nullptr) throw std::invalid_argument("null tensor handle");
  return *h;
}

// A nullable handle becomes an undefined optional (for bias, weight, running stats).
inline c10::optional<at::Tensor> opt(TensorHandle h) {
  if (h == nullptr) return c10::nullopt;
  return *h;
}

inline c10::ScalarType scalar_type(int32_t code) {
  if (code < 0 || code >= static_cast<int32_t>(c10::ScalarType::NumOptions))
    throw std::invalid_argument("unknown dtype code " + std::to_string(code));
  return static_cast<c10::ScalarType>(code);
}

inline c10::Device device(int32_t type, int32_t index) {
  if (type != 0 && type != 1) throw std::invalid_argument("unsupported device type " + std::to_string(type));
  return c10::Device(static_cast<c10::DeviceType>(type), static_cast<c10::DeviceIndex>(index));
}

inline at::IntArrayRef dims(const int64_t* p, int32_t n) {
  if (n < 0 || (n > 0 && p == nullptr)) throw std::invalid_argument("bad shape array");
  return at::IntArrayRef(p, static_cast<size_t>(n));
}

inline std::vector<at::Tensor> tensor_list(const TensorHandle* hs, int32_t n) {
  std::vector<at::Tensor> v;
  v.reserve(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) v.push_back(deref(hs[i]));
  return v;
}
}  // namespace dlt
