#include "cuda_runtime.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

namespace sidecar {
namespace cuda {

namespace {

Api g_api{};
Availability g_availability;
std::once_flag g_once;

template <typename F>
bool Resolve(void* lib, const char* name, F* out, std::string* missing) {
  void* sym = dlsym(lib, name);
  if (sym == nullptr) {
    if (!missing->empty()) *missing += ", ";
    *missing += name;
    return false;
  }
  *out = reinterpret_cast<F>(sym);
  return true;
}

void Load() {
  std::vector<std::string> candidates = {"libcudart.so", "libcudart.so.13", "libcudart.so.12"};
  if (const char* home = std::getenv("CUDA_HOME"); home != nullptr && *home != '\0') {
    candidates.push_back(std::string(home) + "/lib64/libcudart.so");
  }
  candidates.push_back("/usr/local/cuda/lib64/libcudart.so");

  void* lib = nullptr;
  std::string tried;
  for (const std::string& c : candidates) {
    // Never closed: the CUDA runtime does not support being unloaded.
    lib = dlopen(c.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib != nullptr) {
      g_availability.library = c;
      break;
    }
    const char* why = dlerror();
    tried += "\n  " + c + ": " + (why != nullptr ? why : "not found");
  }
  if (lib == nullptr) {
    g_availability.reason = "libcudart not found; tried:" + tried;
    return;
  }

  std::string missing;
  bool ok = true;
  ok &= Resolve(lib, "cudaGetDeviceCount", &g_api.GetDeviceCount, &missing);
  ok &= Resolve(lib, "cudaGetErrorName", &g_api.GetErrorName, &missing);
  ok &= Resolve(lib, "cudaGetErrorString", &g_api.GetErrorString, &missing);
  ok &= Resolve(lib, "cudaSetDevice", &g_api.SetDevice, &missing);
  ok &= Resolve(lib, "cudaMalloc", &g_api.Malloc, &missing);
  ok &= Resolve(lib, "cudaFree", &g_api.Free, &missing);
  ok &= Resolve(lib, "cudaIpcGetMemHandle", &g_api.IpcGetMemHandle, &missing);
  ok &= Resolve(lib, "cudaIpcOpenMemHandle", &g_api.IpcOpenMemHandle, &missing);
  ok &= Resolve(lib, "cudaIpcCloseMemHandle", &g_api.IpcCloseMemHandle, &missing);
  ok &= Resolve(lib, "cudaStreamCreateWithFlags", &g_api.StreamCreateWithFlags, &missing);
  ok &= Resolve(lib, "cudaStreamSynchronize", &g_api.StreamSynchronize, &missing);
  ok &= Resolve(lib, "cudaStreamDestroy", &g_api.StreamDestroy, &missing);
  ok &= Resolve(lib, "cudaMemcpyAsync", &g_api.MemcpyAsync, &missing);
  ok &= Resolve(lib, "cudaMemsetAsync", &g_api.MemsetAsync, &missing);
  if (!ok) {
    g_availability.reason = g_availability.library + " lacks " + missing;
    return;
  }

  int count = 0;  // left untouched on error: check the return code, not this
  Error err = g_api.GetDeviceCount(&count);
  if (err != 0) {
    g_availability.reason = "cudaGetDeviceCount returned " + std::to_string(err) + " (" + ErrorText(err) + ")";
    return;
  }
  if (count <= 0) {
    g_availability.reason = "cudaGetDeviceCount found no CUDA devices";
    return;
  }
  g_availability.device_count = count;
  g_availability.available = true;
  g_availability.reason = std::to_string(count) + " CUDA device(s) through " + g_availability.library;
}

}  // namespace

const Availability& GetAvailability() {
  std::call_once(g_once, Load);
  return g_availability;
}

const Api* GetApi() { return GetAvailability().available ? &g_api : nullptr; }

std::string ErrorText(Error err) {
  const char* name = g_api.GetErrorName != nullptr ? g_api.GetErrorName(err) : nullptr;
  const char* text = g_api.GetErrorString != nullptr ? g_api.GetErrorString(err) : nullptr;
  std::string out = name != nullptr ? name : ("cudaError " + std::to_string(err));
  if (text != nullptr) out += std::string(": ") + text;
  return out;
}

}  // namespace cuda
}  // namespace sidecar
