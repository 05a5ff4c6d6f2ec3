// The thread-local error slot. Kept out of the torch translation units so it compiles fast.
#include "common.h"
#include <cstring>

namespace {
thread_local std::string g_error;
thread_local bool g_has_error = false;
}  // namespace

void dlt::set_error(const std::string& message) {
  g_error = message;
  g_has_error = true;
}

// Returns the length of the pending error message (0 if none). When buffer is non-null, copies
// up to capacity-1 bytes plus a NUL and clears the slot. Two-call pattern: size, then fill.
DLT_API int32_t dlt_last_error(char* buffer, int32_t capacity) {
  if (!g_has_error) return 0;
  int32_t len = static_cast<int32_t>(g_error.size());
  if (buffer != nullptr && capacity > 0) {
    int32_t n = len < capacity - 1 ? len : capacity - 1;
    std::memcpy(buffer, g_error.data(), static_cast<size_t>(n));
    buffer[n] = '\0';
    g_has_error = false;
    g_error.clear();
    g_error.shrink_to_fit();
  }
  return len;
}
