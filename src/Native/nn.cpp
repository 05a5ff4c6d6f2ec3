// nn.functional area: the layers and losses DeepLabV3+ training needs.
#include "torch_common.h"

using dlt::TensorHandle;
using dlt::deref;
using dlt::wrap;

static at::IntArrayRef pair(const int64_t* p) { return at::IntArrayRef(p, 2); }

DLT_API TensorHandle dlt_nn_conv2d(TensorHandle input, TensorHandle weight, TensorHandle bias, const int64_t* stride,
                                   const int64_t* padding, const int64_t* dilation, int64_t groups) {
  DLT_TRY {
    return wrap(at::conv2d(deref(input), deref(weight), dlt::opt(bias), pair(stride), pair(padding), pair(dilation), groups));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_batch_norm(TensorHandle input, TensorHandle weight, TensorHandle bias, TensorHandle running_mean,
                                       TensorHandle running_var, int8_t training, double momentum, double eps) {
  DLT_TRY {
    return wrap(at::batch_norm(deref(input), dlt::opt(weight), dlt::opt(bias), dlt::opt(running_mean), dlt::opt(running_var),
                               training != 0, momentum, eps, at::globalContext().userEnabledCuDNN()));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_dropout(TensorHandle input, double p, int8_t training, int8_t channelwise) {
  DLT_TRY {
    if (channelwise) return wrap(at::feature_dropout(deref(input), p, training != 0));
    return wrap(at::dropout(deref(input), p, training != 0));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_leaky_relu(TensorHandle input, double slope, int8_t inplace) {
  DLT_TRY {
    if (inplace) { at::leaky_relu_(*input, slope); return wrap(*input); }
    return wrap(at::leaky_relu(deref(input), slope));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_hardtanh(TensorHandle input, double lo, double hi, int8_t inplace) {
  DLT_TRY {
    if (inplace) { at::hardtanh_(*input, lo, hi); return wrap(*input); }
    return wrap(at::hardtanh(deref(input), lo, hi));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_relu(TensorHandle input, int8_t inplace) {
  DLT_TRY {
    if (inplace) { deref(input); input->relu_(); return wrap(*input); }
    return wrap(deref(input).relu());
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_max_pool2d(TensorHandle input, const int64_t* kernel, const int64_t* stride,
                                       const int64_t* padding, const int64_t* dilation, int8_t ceil_mode) {
  DLT_TRY {
    return wrap(at::max_pool2d(deref(input), pair(kernel), pair(stride), pair(padding), pair(dilation), ceil_mode != 0));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_avg_pool2d(TensorHandle input, const int64_t* kernel, const int64_t* stride,
                                       const int64_t* padding, int8_t ceil_mode, int8_t count_include_pad) {
  DLT_TRY {
    return wrap(at::avg_pool2d(deref(input), pair(kernel), pair(stride), pair(padding), ceil_mode != 0, count_include_pad != 0));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_adaptive_avg_pool2d(TensorHandle input, const int64_t* output_size) {
  DLT_TRY { return wrap(at::adaptive_avg_pool2d(deref(input), pair(output_size))); } DLT_CATCH(nullptr)
}

// mode: 0 nearest, 1 bilinear. align_corners: 0 false, 1 true (ignored for nearest).
DLT_API TensorHandle dlt_nn_interpolate(TensorHandle input, const int64_t* size, int32_t mode, int8_t align_corners) {
  DLT_TRY {
    const auto& x = deref(input);
    if (x.dim() != 4) throw std::invalid_argument("interpolate expects a 4-D NCHW tensor, got " + std::to_string(x.dim()) + "-D");
    if (mode == 0) return wrap(at::upsample_nearest2d(x, pair(size)));
    if (mode == 1) return wrap(at::upsample_bilinear2d(x, pair(size), align_corners != 0));
    throw std::invalid_argument("unknown interpolation mode " + std::to_string(mode));
  } DLT_CATCH(nullptr)
}

// mode: 0 constant, 1 reflect, 2 replicate. pads as torch.nn.functional.pad: (left, right, top, bottom, ...).
DLT_API TensorHandle dlt_nn_pad(TensorHandle input, const int64_t* pads, int32_t n, int32_t mode, double value) {
  DLT_TRY {
    namespace F = torch::nn::functional;
    auto opts = F::PadFuncOptions(std::vector<int64_t>(pads, pads + n));
    switch (mode) {
      case 0: opts.mode(torch::kConstant).value(value); break;
      case 1: opts.mode(torch::kReflect); break;
      case 2: opts.mode(torch::kReplicate); break;
      default: throw std::invalid_argument("unknown pad mode " + std::to_string(mode));
    }
    return wrap(F::pad(deref(input), opts));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_softmax(TensorHandle input, int64_t dim, int8_t log) {
  DLT_TRY { return wrap(log ? deref(input).log_softmax(dim) : deref(input).softmax(dim)); } DLT_CATCH(nullptr)
}

// reduction: 0 none, 1 mean, 2 sum (at::Reduction's numbering).
DLT_API TensorHandle dlt_nn_cross_entropy(TensorHandle input, TensorHandle target, TensorHandle weight, int32_t reduction,
                                         int64_t ignore_index, double label_smoothing) {
  DLT_TRY {
    return wrap(at::cross_entropy_loss(deref(input), deref(target), dlt::opt(weight), reduction, ignore_index, label_smoothing));
  } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_nll_loss(TensorHandle input, TensorHandle target, TensorHandle weight, int32_t reduction,
                                     int64_t ignore_index) {
  DLT_TRY { return wrap(at::nll_loss_nd(deref(input), deref(target), dlt::opt(weight), reduction, ignore_index)); } DLT_CATCH(nullptr)
}

DLT_API TensorHandle dlt_nn_bce_with_logits(TensorHandle input, TensorHandle target, TensorHandle weight, int32_t reduction) {
  DLT_TRY {
    return wrap(at::binary_cross_entropy_with_logits(deref(input), deref(target), dlt::opt(weight), c10::nullopt, reduction));
  } DLT_CATCH(nullptr)
}
