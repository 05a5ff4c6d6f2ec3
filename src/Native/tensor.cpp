// Tensor area: lifetime, factories, metadata, views, math, reductions, runtime and autograd.
#include "torch_common.h"
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

using dlt::TensorHandle;
using dlt::deref;
using dlt::wrap;

// ---------------------------------------------------------------- lifetime and metadata
DLT_API void dlt_tensor_free(TensorHandle h) { delete h; }

DLT_API int64_t dlt_tensor_numel(TensorHandle h) { DLT_TRY { return deref(h).numel(); } DLT_CATCH(-1) }
DLT_API int32_t dlt_tensor_dim(TensorHandle h) { DLT_TRY { return static_cast<int32_t>(deref(h).dim()); } DLT_CATCH(-1) }
DLT_API int32_t dlt_tensor_sizes(TensorHandle h, int64_t* out, int32_t capacity) {
  DLT_TRY {
    auto s = deref(h).sizes();
    int32_t n = static_cast<int32_t>(s.size());
    for (int32_t i = 0; i < n && i < capacity; ++i) out[i] = s[i];
    return n;
  } DLT_CATCH(-1)
}
DLT_API int32_t dlt_tensor_strides(TensorHandle h, int64_t* out, int32_t capacity) {
  DLT_TRY {
    auto s = deref(h).strides();
    int32_t n = static_cast<int32_t>(s.size());
    for (int32_t i = 0; i < n && i < capacity; ++i) out[i] = s[i];
    return n;
  } DLT_CATCH(-1)
}
DLT_API int32_t dlt_tensor_dtype(TensorHandle h) { DLT_TRY { return static_cast<int32_t>(deref(h).scalar_type()); } DLT_CATCH(-1) }
DLT_API int32_t dlt_tensor_device_type(TensorHandle h) { DLT_TRY { return static_cast<int32_t>(deref(h).device().type()); } DLT_CATCH(-1) }
DLT_API int32_t dlt_tensor_device_index(TensorHandle h) { DLT_TRY { return deref(h).device().index(); } DLT_CATCH(-1) }
DLT_API int8_t dlt_tensor_requires_grad(TensorHandle h) { DLT_TRY { return deref(h).requires_grad() ? 1 : 0; } DLT_CATCH(-1) }
DLT_API void dlt_tensor_set_requires_grad(TensorHandle h, int8_t on) { DLT_TRY { h->set_requires_grad(on != 0); } DLT_CATCH_VOID }
DLT_API int8_t dlt_tensor_is_leaf(TensorHandle h) { DLT_TRY { return deref(h).is_leaf() ? 1 : 0; } DLT_CATCH(-1) }
DLT_API int8_t dlt_tensor_is_contiguous(TensorHandle h, int32_t memory_format) {
  DLT_TRY {
    auto fmt = memory_format == 1 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    return deref(h).is_contiguous(fmt) ? 1 : 0;
  } DLT_CATCH(-1)
}
DLT_API void* dlt_tensor_data_ptr(TensorHandle h) { DLT_TRY { return deref(h).data_ptr(); } DLT_CATCH(nullptr) }
DLT_API int64_t dlt_tensor_element_size(TensorHandle h) { DLT_TRY { return static_cast<int64_t>(deref(h).element_size()); } DLT_CATCH(-1) }

// ---------------------------------------------------------------- factories
// kind: 0 empty, 1 zeros, 2 ones, 3 full(value), 4 rand, 5 randn
DLT_API TensorHandle dlt_tensor_factory(int32_t kind, const int64_t* shape, int32_t ndim, int32_t dtype,
                                        int32_t dev_type, int32_t dev_index, int8_t requires_grad, double value) {
  DLT_TRY {
    auto o = at::TensorOptions().dtype(dlt::scalar_type(dtype)).device(dlt::device(dev_type, dev_index));
    auto s = dlt::dims(shape, ndim);
    at::Tensor t;
    switch (kind) {
      case 0: t = torch::empty(s, o); break;
      case 1: t = torch::zeros(s, o); break;
      case 2: t = torch::ones(s, o); break;
      case 3: t = torch::full(s, value, o); break;
      case 4: t = torch::rand(s, o); break;
      case 5: t = torch::randn(s, o); break;
      default: throw std::invalid_argument("unknown factory kind " + std::to_string(kind));
    }
    if (requires_grad) t.set_requires_grad(true);
    return wrap(t);
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_tensor_randint(int64_t low, int64_t high, const int64_t* shape, int32_t ndim, int32_t dtype,
                                        int32_t dev_type, int32_t dev_index) {
  DLT_TRY {
    auto o = at::TensorOptions().dtype(dlt::scalar_type(dtype)).device(dlt::device(dev_type, dev_index));
    return wrap(torch::randint(low, high, dlt::dims(shape, ndim), o));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_tensor_arange(double start, double end, double step, int32_t dtype, int32_t dev_type,
                                       int32_t dev_index) {
  DLT_TRY {
    auto o = at::TensorOptions().dtype(dlt::scalar_type(dtype)).device(dlt::device(dev_type, dev_index));
    return wrap(torch::arange(start, end, step, o));
  } DLT_CATCH(nullptr)
}

// A CPU tensor holding a copy of `data` (nbytes must equal numel * element size).
DLT_API TensorHandle dlt_tensor_from_data(const void* data, int64_t nbytes, const int64_t* shape, int32_t ndim,
                                          int32_t dtype) {
  DLT_TRY {
    auto t = torch::empty(dlt::dims(shape, ndim), at::TensorOptions().dtype(dlt::scalar_type(dtype)));
    int64_t need = t.numel() * static_cast<int64_t>(t.element_size());
    if (need != nbytes)
      throw std::invalid_argument("buffer holds " + std::to_string(nbytes) + " bytes, shape needs " + std::to_string(need));
    if (need > 0) std::memcpy(t.data_ptr(), data, static_cast<size_t>(need));
    return wrap(t);
  } DLT_CATCH(nullptr)
}

// A CPU tensor viewing caller memory without a copy; `deleter(ctx)` runs when libtorch frees it.
typedef void (*dlt_deleter)(void* ctx);
DLT_API TensorHandle dlt_tensor_from_blob(void* data, const int64_t* shape, int32_t ndim, int32_t dtype,
                                          dlt_deleter deleter, void* ctx) {
  DLT_TRY {
    auto o = at::TensorOptions().dtype(dlt::scalar_type(dtype));
    auto t = torch::from_blob(data, dlt::dims(shape, ndim), [deleter, ctx](void*) { if (deleter) deleter(ctx); }, o);
    return wrap(t);
  } DLT_CATCH(nullptr)
}

// ---------------------------------------------------------------- conversion and views
// dtype -1 keeps the dtype; dev_type -1 keeps the device.
DLT_API TensorHandle dlt_tensor_to(TensorHandle h, int32_t dev_type, int32_t dev_index, int32_t dtype, int8_t non_blocking,
                                   int8_t copy) {
  DLT_TRY {
    const auto& t = deref(h);
    auto dev = dev_type < 0 ? t.device() : dlt::device(dev_type, dev_index);
    auto st = dtype < 0 ? t.scalar_type() : dlt::scalar_type(dtype);
    return wrap(t.to(dev, st, non_blocking != 0, copy != 0));
  } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_contiguous(TensorHandle h, int32_t memory_format) {
  DLT_TRY {
    auto fmt = memory_format == 1 ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
    return wrap(deref(h).contiguous(fmt));
  } DLT_CATCH(nullptr)
}
// Replaces the data of h in place (keeps identity and autograd leaf status), as Parameter.data = x.
DLT_API void dlt_tensor_set_data(TensorHandle h, TensorHandle src) { DLT_TRY { h->set_data(deref(src)); } DLT_CATCH_VOID }
DLT_API TensorHandle dlt_tensor_clone(TensorHandle h) { DLT_TRY { return wrap(deref(h).clone()); } DLT_CATCH(nullptr) }
DLT_API TensorHandle dlt_tensor_detach(TensorHandle h) { DLT_TRY { return wrap(deref(h).detach()); } DLT_CATCH(nullptr) }
DLT_API TensorHandle dlt_tensor_alias(TensorHandle h) { DLT_TRY { return wrap(deref(h)); } DLT_CATCH(nullptr) }
DLT_API TensorHandle dlt_tensor_view(TensorHandle h, const int64_t* shape, int32_t n) {
  DLT_TRY { return wrap(deref(h).view(dlt::dims(shape, n))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_reshape(TensorHandle h, const int64_t* shape, int32_t n) {
  DLT_TRY { return wrap(deref(h).reshape(dlt::dims(shape, n))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_permute(TensorHandle h, const int64_t* d, int32_t n) {
  DLT_TRY { return wrap(deref(h).permute(dlt::dims(d, n))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_expand(TensorHandle h, const int64_t* shape, int32_t n) {
  DLT_TRY { return wrap(deref(h).expand(dlt::dims(shape, n))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_flip(TensorHandle h, const int64_t* d, int32_t n) {
  DLT_TRY { return wrap(deref(h).flip(dlt::dims(d, n))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_transpose(TensorHandle h, int64_t d0, int64_t d1) {
  DLT_TRY { return wrap(deref(h).transpose(d0, d1)); } DLT_CATCH(nullptr)
}
// dim == INT64_MIN squeezes every size-1 dimension.
DLT_API TensorHandle dlt_tensor_squeeze(TensorHandle h, int64_t dim) {
  DLT_TRY { return wrap(dim == INT64_MIN ? deref(h).squeeze() : deref(h).squeeze(dim)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_unsqueeze(TensorHandle h, int64_t dim) { DLT_TRY { return wrap(deref(h).unsqueeze(dim)); } DLT_CATCH(nullptr) }
DLT_API TensorHandle dlt_tensor_flatten(TensorHandle h, int64_t start, int64_t end) {
  DLT_TRY { return wrap(deref(h).flatten(start, end)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_slice(TensorHandle h, int64_t dim, int64_t start, int64_t end, int64_t step) {
  DLT_TRY { return wrap(deref(h).slice(dim, start, end, step)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_select(TensorHandle h, int64_t dim, int64_t index) {
  DLT_TRY { return wrap(deref(h).select(dim, index)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_narrow(TensorHandle h, int64_t dim, int64_t start, int64_t length) {
  DLT_TRY { return wrap(deref(h).narrow(dim, start, length)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_index_select(TensorHandle h, int64_t dim, TensorHandle index) {
  DLT_TRY { return wrap(deref(h).index_select(dim, deref(index))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_gather(TensorHandle h, int64_t dim, TensorHandle index) {
  DLT_TRY { return wrap(deref(h).gather(dim, deref(index))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_masked_select(TensorHandle h, TensorHandle mask) {
  DLT_TRY { return wrap(deref(h).masked_select(deref(mask))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_masked_fill(TensorHandle h, TensorHandle mask, double value, int8_t inplace) {
  DLT_TRY {
    if (inplace) { h->masked_fill_(deref(mask), value); return wrap(*h); }
    return wrap(deref(h).masked_fill(deref(mask), value));
  } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_cat(const TensorHandle* hs, int32_t n, int64_t dim) {
  DLT_TRY { return wrap(torch::cat(dlt::tensor_list(hs, n), dim)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_stack(const TensorHandle* hs, int32_t n, int64_t dim) {
  DLT_TRY { return wrap(torch::stack(dlt::tensor_list(hs, n), dim)); } DLT_CATCH(nullptr)
}

// ---------------------------------------------------------------- elementwise math
enum UnaryOp { U_NEG, U_ABS, U_EXP, U_LOG, U_SQRT, U_RSQRT, U_SIGMOID, U_TANH, U_RELU, U_FLOOR, U_CEIL, U_ROUND,
               U_SIGN, U_LOGICAL_NOT, U_SQUARE, U_RECIPROCAL, U_ISNAN, U_ISFINITE, U_RELU6, U_ZERO, U_SIN, U_COS };

static at::Tensor unary(int32_t op, const at::Tensor& t) {
  switch (op) {
    case U_NEG: return t.neg();
    case U_ABS: return t.abs();
    case U_EXP: return t.exp();
    case U_LOG: return t.log();
    case U_SQRT: return t.sqrt();
    case U_RSQRT: return t.rsqrt();
    case U_SIGMOID: return t.sigmoid();
    case U_TANH: return t.tanh();
    case U_RELU: return t.relu();
    case U_FLOOR: return t.floor();
    case U_CEIL: return t.ceil();
    case U_ROUND: return t.round();
    case U_SIGN: return t.sign();
    case U_LOGICAL_NOT: return t.logical_not();
    case U_SQUARE: return t.square();
    case U_RECIPROCAL: return t.reciprocal();
    case U_ISNAN: return t.isnan();
    case U_ISFINITE: return t.isfinite();
    case U_RELU6: return at::hardtanh(t, 0.0, 6.0);
    case U_ZERO: return torch::zeros_like(t);
    case U_SIN: return t.sin();
    case U_COS: return t.cos();
    default: throw std::invalid_argument("unknown unary op " + std::to_string(op));
  }
}
static void unary_(int32_t op, at::Tensor& t) {
  switch (op) {
    case U_NEG: t.neg_(); break;
    case U_ABS: t.abs_(); break;
    case U_EXP: t.exp_(); break;
    case U_LOG: t.log_(); break;
    case U_SQRT: t.sqrt_(); break;
    case U_RSQRT: t.rsqrt_(); break;
    case U_SIGMOID: t.sigmoid_(); break;
    case U_TANH: t.tanh_(); break;
    case U_RELU: t.relu_(); break;
    case U_FLOOR: t.floor_(); break;
    case U_CEIL: t.ceil_(); break;
    case U_ROUND: t.round_(); break;
    case U_SIGN: t.sign_(); break;
    case U_SQUARE: t.square_(); break;
    case U_RECIPROCAL: t.reciprocal_(); break;
    case U_RELU6: at::hardtanh_(t, 0.0, 6.0); break;
    case U_ZERO: t.zero_(); break;
    default: throw std::invalid_argument("unary op " + std::to_string(op) + " has no in-place form");
  }
}
DLT_API TensorHandle dlt_tensor_unary(int32_t op, TensorHandle h) { DLT_TRY { return wrap(unary(op, deref(h))); } DLT_CATCH(nullptr) }
DLT_API void dlt_tensor_unary_(int32_t op, TensorHandle h) { DLT_TRY { deref(h); unary_(op, *h); } DLT_CATCH_VOID }

enum BinaryOp { B_ADD, B_SUB, B_MUL, B_DIV, B_POW, B_MAXIMUM, B_MINIMUM, B_EQ, B_NE, B_LT, B_LE, B_GT, B_GE,
                B_LOGICAL_AND, B_LOGICAL_OR, B_REMAINDER, B_FLOOR_DIVIDE, B_MATMUL, B_ATAN2 };

template <typename B>
static at::Tensor binary(int32_t op, const at::Tensor& a, const B& b) {
  switch (op) {
    case B_ADD: return a.add(b);
    case B_SUB: return a.sub(b);
    case B_MUL: return a.mul(b);
    case B_DIV: return a.div(b);
    case B_POW: return a.pow(b);
    case B_EQ: return a.eq(b);
    case B_NE: return a.ne(b);
    case B_LT: return a.lt(b);
    case B_LE: return a.le(b);
    case B_GT: return a.gt(b);
    case B_GE: return a.ge(b);
    case B_REMAINDER: return a.remainder(b);
    case B_FLOOR_DIVIDE: return a.div(b, "floor");
    default: break;
  }
  if constexpr (std::is_same_v<B, at::Tensor>) {
    switch (op) {
      case B_MAXIMUM: return at::maximum(a, b);
      case B_MINIMUM: return at::minimum(a, b);
      case B_LOGICAL_AND: return a.logical_and(b);
      case B_LOGICAL_OR: return a.logical_or(b);
      case B_MATMUL: return a.matmul(b);
      case B_ATAN2: return a.atan2(b);
      default: break;
    }
  }
  throw std::invalid_argument("unsupported binary op " + std::to_string(op));
}
template <typename B>
static void binary_(int32_t op, at::Tensor& a, const B& b) {
  switch (op) {
    case B_ADD: a.add_(b); return;
    case B_SUB: a.sub_(b); return;
    case B_MUL: a.mul_(b); return;
    case B_DIV: a.div_(b); return;
    case B_POW: a.pow_(b); return;
    default: throw std::invalid_argument("binary op " + std::to_string(op) + " has no in-place form");
  }
}
DLT_API TensorHandle dlt_tensor_binary(int32_t op, TensorHandle a, TensorHandle b) {
  DLT_TRY { return wrap(binary(op, deref(a), deref(b))); } DLT_CATCH(nullptr)
}
// An integral value stays an integer scalar, so `long_tensor += 1` keeps its dtype (as Python's int does).
static at::Scalar scalar_for(double v) {
  if (std::nearbyint(v) == v && std::fabs(v) < 9.0e15) return at::Scalar(static_cast<int64_t>(v));
  return at::Scalar(v);
}
DLT_API TensorHandle dlt_tensor_binary_scalar(int32_t op, TensorHandle a, double b) {
  DLT_TRY { return wrap(binary(op, deref(a), scalar_for(b))); } DLT_CATCH(nullptr)
}
// scalar op tensor, for `2 - t` and `1 / t`.
DLT_API TensorHandle dlt_tensor_scalar_binary(int32_t op, double a, TensorHandle b) {
  DLT_TRY {
    const auto& t = deref(b);
    auto s = at::scalar_tensor(a, t.options());
    return wrap(binary(op, s, t));
  } DLT_CATCH(nullptr)
}
DLT_API void dlt_tensor_binary_(int32_t op, TensorHandle a, TensorHandle b) {
  DLT_TRY { deref(a); binary_(op, *a, deref(b)); } DLT_CATCH_VOID
}
DLT_API void dlt_tensor_binary_scalar_(int32_t op, TensorHandle a, double b) {
  DLT_TRY { deref(a); binary_(op, *a, scalar_for(b)); } DLT_CATCH_VOID
}
// a + alpha * b, and its in-place form a += alpha * b.
DLT_API TensorHandle dlt_tensor_add_scaled(TensorHandle a, TensorHandle b, double alpha) {
  DLT_TRY { return wrap(deref(a).add(deref(b), alpha)); } DLT_CATCH(nullptr)
}
DLT_API void dlt_tensor_add_scaled_(TensorHandle a, TensorHandle b, double alpha) {
  DLT_TRY { deref(a); a->add_(deref(b), alpha); } DLT_CATCH_VOID
}
DLT_API void dlt_tensor_addcmul_(TensorHandle t, TensorHandle a, TensorHandle b, double value) {
  DLT_TRY { deref(t); t->addcmul_(deref(a), deref(b), value); } DLT_CATCH_VOID
}
DLT_API void dlt_tensor_addcdiv_(TensorHandle t, TensorHandle a, TensorHandle b, double value) {
  DLT_TRY { deref(t); t->addcdiv_(deref(a), deref(b), value); } DLT_CATCH_VOID
}
DLT_API void dlt_tensor_copy_(TensorHandle dst, TensorHandle src) { DLT_TRY { deref(dst); dst->copy_(deref(src)); } DLT_CATCH_VOID }
DLT_API void dlt_tensor_fill_(TensorHandle h, double value) { DLT_TRY { deref(h); h->fill_(value); } DLT_CATCH_VOID }
// has_min/has_max select which bounds apply.
DLT_API TensorHandle dlt_tensor_clamp(TensorHandle h, double lo, double hi, int8_t has_min, int8_t has_max, int8_t inplace) {
  DLT_TRY {
    c10::optional<at::Scalar> mn = has_min ? c10::optional<at::Scalar>(lo) : c10::nullopt;
    c10::optional<at::Scalar> mx = has_max ? c10::optional<at::Scalar>(hi) : c10::nullopt;
    if (inplace) { h->clamp_(mn, mx); return wrap(*h); }
    return wrap(deref(h).clamp(mn, mx));
  } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_where(TensorHandle cond, TensorHandle a, TensorHandle b) {
  DLT_TRY { return wrap(torch::where(deref(cond), deref(a), deref(b))); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_bincount(TensorHandle h, TensorHandle weights, int64_t minlength) {
  DLT_TRY { return wrap(deref(h).bincount(dlt::opt(weights), minlength)); } DLT_CATCH(nullptr)
}
DLT_API TensorHandle dlt_tensor_cumsum(TensorHandle h, int64_t dim) { DLT_TRY { return wrap(deref(h).cumsum(dim)); } DLT_CATCH(nullptr) }
DLT_API TensorHandle dlt_tensor_one_hot(TensorHandle h, int64_t num_classes) {
  DLT_TRY { return wrap(torch::one_hot(deref(h), num_classes)); } DLT_CATCH(nullptr)
}

// ---------------------------------------------------------------- reductions
enum ReduceOp { R_SUM, R_MEAN, R_AMAX, R_AMIN, R_PROD, R_ALL, R_ANY };
// ndims == 0 reduces everything. out_dtype -1 keeps the default result dtype.
DLT_API TensorHandle dlt_tensor_reduce(int32_t op, TensorHandle h, const int64_t* d, int32_t ndims, int8_t keepdim,
                                       int32_t out_dtype) {
  DLT_TRY {
    const auto& t = deref(h);
    auto ds = dlt::dims(d, ndims);
    c10::optional<c10::ScalarType> st = out_dtype < 0 ? c10::nullopt : c10::optional<c10::ScalarType>(dlt::scalar_type(out_dtype));
    bool k = keepdim != 0;
    switch (op) {
      case R_SUM: return wrap(ndims == 0 && !k ? t.sum(st) : t.sum(ds, k, st));
      case R_MEAN: return wrap(ndims == 0 && !k ? t.mean(st) : t.mean(ds, k, st));
      case R_AMAX: return wrap(t.amax(ds, k));
      case R_AMIN: return wrap(t.amin(ds, k));
      case R_PROD:
        if (ndims == 0) return wrap(t.prod(st));
        if (ndims != 1) throw std::invalid_argument("prod reduces one dimension at a time");
        return wrap(t.prod(d[0], k, st));
      case R_ALL:
        if (ndims == 0) return wrap(t.all());
        if (ndims != 1) throw std::invalid_argument("all reduces one dimension at a time");
        return wrap(t.all(d[0], k));
      case R_ANY:
        if (ndims == 0) return wrap(t.any());
        if (ndims != 1) throw std::invalid_argument("any reduces one dimension at a time");
        return wrap(t.any(d[0], k));
      default: throw std::invalid_argument("unknown reduction " + std::to_string(op));
    }
  } DLT_CATCH(nullptr)
}
// values and indices along dim; is_min selects min instead of max.
DLT_API int32_t dlt_tensor_max_dim(TensorHandle h, int64_t dim, int8_t keepdim, int8_t is_min, TensorHandle* values,
                                   TensorHandle* indices) {
  DLT_TRY {
    auto r = is_min ? deref(h).min(dim, keepdim != 0) : deref(h).max(dim, keepdim != 0);
    *values = wrap(std::get<0>(r));
    *indices = wrap(std::get<1>(r));
    return 0;
  } DLT_CATCH(-1)
}
// has_dim == 0 takes the argmax of the flattened tensor.
DLT_API TensorHandle dlt_tensor_argmax(TensorHandle h, int64_t dim, int8_t has_dim, int8_t keepdim, int8_t is_min) {
  DLT_TRY {
    c10::optional<int64_t> d = has_dim ? c10::optional<int64_t>(dim) : c10::nullopt;
    return wrap(is_min ? deref(h).argmin(d, keepdim != 0) : deref(h).argmax(d, keepdim != 0));
  } DLT_CATCH(nullptr)
}
DLT_API double dlt_tensor_item_double(TensorHandle h) { DLT_TRY { return deref(h).item<double>(); } DLT_CATCH(0.0) }
DLT_API int64_t dlt_tensor_item_long(TensorHandle h) { DLT_TRY { return deref(h).item<int64_t>(); } DLT_CATCH(0) }
DLT_API int8_t dlt_tensor_equal(TensorHandle a, TensorHandle b) { DLT_TRY { return deref(a).equal(deref(b)) ? 1 : 0; } DLT_CATCH(-1) }

// Printable form, two-call pattern: returns the length; fills when buf is non-null.
DLT_API int32_t dlt_tensor_to_string(TensorHandle h, char* buf, int32_t capacity) {
  DLT_TRY {
    std::ostringstream ss;
    ss << deref(h);
    auto s = ss.str();
    if (buf != nullptr && capacity > 0) {
      size_t n = std::min(s.size(), static_cast<size_t>(capacity - 1));
      std::memcpy(buf, s.data(), n);
      buf[n] = '\0';
    }
    return static_cast<int32_t>(s.size());
  } DLT_CATCH(-1)
}

// ---------------------------------------------------------------- autograd
DLT_API void dlt_tensor_backward(TensorHandle h, TensorHandle grad, int8_t retain_graph) {
  DLT_TRY {
    at::Tensor g = grad ? *grad : at::Tensor();
    deref(h).backward(g, retain_graph ? c10::optional<bool>(true) : c10::nullopt, false);
  } DLT_CATCH_VOID
}
// Returns null (and no error) when the gradient is undefined.
DLT_API TensorHandle dlt_tensor_grad(TensorHandle h) {
  DLT_TRY {
    const auto& g = deref(h).grad();
    return g.defined() ? wrap(g) : nullptr;
  } DLT_CATCH(nullptr)
}
// grad == null sets the gradient to None (zero_grad(set_to_none=True)).
DLT_API void dlt_tensor_set_grad(TensorHandle h, TensorHandle grad) {
  DLT_TRY {
    deref(h);
    if (grad == nullptr) h->mutable_grad().reset();
    else h->mutable_grad() = deref(grad);
  } DLT_CATCH_VOID
}
DLT_API void dlt_tensor_retain_grad(TensorHandle h) { DLT_TRY { deref(h).retain_grad(); } DLT_CATCH_VOID }
DLT_API int8_t dlt_grad_enabled() { return at::GradMode::is_enabled() ? 1 : 0; }
DLT_API void dlt_set_grad_enabled(int8_t on) { at::GradMode::set_enabled(on != 0); }
DLT_API void* dlt_inference_mode_enter() { DLT_TRY { return new c10::InferenceMode(true); } DLT_CATCH(nullptr) }
DLT_API void dlt_inference_mode_exit(void* guard) { delete static_cast<c10::InferenceMode*>(guard); }

// ---------------------------------------------------------------- runtime
DLT_API void dlt_manual_seed(uint64_t seed) { DLT_TRY { torch::manual_seed(seed); } DLT_CATCH_VOID }
DLT_API void dlt_set_num_threads(int32_t n) { DLT_TRY { at::set_num_threads(n); } DLT_CATCH_VOID }
DLT_API int32_t dlt_get_num_threads() { return at::get_num_threads(); }
DLT_API void dlt_set_num_interop_threads(int32_t n) { DLT_TRY { at::set_num_interop_threads(n); } DLT_CATCH_VOID }
DLT_API int8_t dlt_cuda_is_available() { DLT_TRY { return torch::cuda::is_available() ? 1 : 0; } DLT_CATCH(0) }
DLT_API int32_t dlt_cuda_device_count() { DLT_TRY { return static_cast<int32_t>(torch::cuda::device_count()); } DLT_CATCH(0) }
DLT_API void dlt_cuda_synchronize(int32_t device) {
  DLT_TRY {
    if (torch::cuda::is_available()) torch::cuda::synchronize(device);
  } DLT_CATCH_VOID
}
DLT_API void dlt_set_cudnn_benchmark(int8_t on) { DLT_TRY { at::globalContext().setBenchmarkCuDNN(on != 0); } DLT_CATCH_VOID }
DLT_API void dlt_set_deterministic(int8_t on) { DLT_TRY { at::globalContext().setDeterministicAlgorithms(on != 0, true); } DLT_CATCH_VOID }

static int32_t copy_out(const std::string& s, char* buf, int32_t capacity) {
  if (buf != nullptr && capacity > 0) {
    size_t n = std::min(s.size(), static_cast<size_t>(capacity - 1));
    std::memcpy(buf, s.data(), n);
    buf[n] = '\0';
  }
  return static_cast<int32_t>(s.size());
}
DLT_API int32_t dlt_version(char* buf, int32_t capacity) {
  return copy_out(std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
                      std::to_string(TORCH_VERSION_PATCH), buf, capacity);
}
DLT_API int32_t dlt_build_info(char* buf, int32_t capacity) { DLT_TRY { return copy_out(at::show_config(), buf, capacity); } DLT_CATCH(-1) }
DLT_API int32_t dlt_parallel_info(char* buf, int32_t capacity) { DLT_TRY { return copy_out(at::get_parallel_info(), buf, capacity); } DLT_CATCH(-1) }

// The default CPU generator's state, as a uint8 tensor, for exact resume.
DLT_API TensorHandle dlt_rng_get_state() {
  DLT_TRY {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    return wrap(gen.get_state());
  } DLT_CATCH(nullptr)
}
DLT_API void dlt_rng_set_state(TensorHandle state) {
  DLT_TRY {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(deref(state));
  } DLT_CATCH_VOID
}
