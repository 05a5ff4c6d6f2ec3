// Inference-side engine switches (issue 7). Kept out of tensor.cpp so the area owns its exports.
#include "torch_common.h"

// Flush denormal floats to zero on the CPU (x86 FTZ/DAZ). Returns 1 when the CPU supports it,
// 0 when not, -1 on error. Random-weight networks in eval mode easily produce denormals, which
// are orders of magnitude slower; benchmarks switch this on for both C# and PyTorch.
DLT_API int32_t dlt_infer_set_flush_denormal(int8_t on) {
  DLT_TRY { return at::globalContext().setFlushDenormal(on != 0) ? 1 : 0; }
  DLT_CATCH(-1)
}
