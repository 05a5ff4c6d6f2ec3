// Shared conventions of the flat C API: export macro, error slot, handle types.
#pragma once
#include <cstdint>
#include <string>

#if defined(_WIN32)
#  if defined(DLT_BUILDING_DLL)
#    define DLT_API extern "C" __declspec(dllexport)
#  else
#    define DLT_API extern "C" __declspec(dllimport)
#  endif
#else
#  define DLT_API extern "C" __attribute__((visibility("default")))
#endif

namespace dlt {
// The last error of this thread. Set by DLT_CATCH, read and cleared by dlt_last_error.
void set_error(const std::string& message);
}  // namespace dlt

// Every export body is wrapped in DLT_TRY { ... } DLT_CATCH(fallback): no C++ exception crosses
// extern "C". The message is kept per thread and copied out by the caller (nothing to free).
#define DLT_TRY try
#define DLT_CATCH(fallback)                                      \
  catch (const std::exception& e) {                              \
    dlt::set_error(e.what());                                    \
    return fallback;                                             \
  }                                                              \
  catch (...) {                                                  \
    dlt::set_error("unknown native error");                      \
    return fallback;                                             \
  }
#define DLT_CATCH_VOID                                           \
  catch (const std::exception& e) {                              \
    dlt::set_error(e.what());                                    \
  }                                                              \
  catch (...) {                                                  \
    dlt::set_error("unknown native error");                      \
  }
