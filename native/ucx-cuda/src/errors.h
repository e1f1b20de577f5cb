// Errors thrown from native code carry a stable `code` (the project's error
// codes, e.g. "SC_SLAB_MAP") and, where one exists, the foreign status
// (`errno` name, UCX status name, CUDA error number). The TypeScript wrapper
// turns them into the project's error classes at the JS call site.
#pragma once
#include <napi.h>
#include <string>

namespace sidecar {

Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message,
                      const char* status = nullptr, double number = 0);

// Throws as a JS exception (node-addon-api is built with C++ exceptions).
[[noreturn]] void ThrowError(Napi::Env env, const char* code, const std::string& message,
                             const char* status = nullptr, double number = 0);

std::string ErrnoMessage(int err);

}  // namespace sidecar
