// The CUDA runtime, loaded at run time with dlopen so the addon builds and
// loads on machines without CUDA. Only the few types and entry points used
// here are declared (matching cuda_runtime_api.h), so the build never needs
// the CUDA headers.
#pragma once
#include <cstddef>
#include <string>

namespace sidecar {
namespace cuda {

using Error = int;  // cudaError_t
struct StreamSt;
using Stream = StreamSt*;  // cudaStream_t
struct IpcMemHandle {      // cudaIpcMemHandle_t
  char reserved[64];
};
static_assert(sizeof(IpcMemHandle) == 64, "cudaIpcMemHandle_t is 64 bytes");

constexpr int kMemcpyHostToDevice = 1;                 // cudaMemcpyHostToDevice
constexpr int kMemcpyDeviceToHost = 2;                 // cudaMemcpyDeviceToHost
constexpr unsigned kIpcMemLazyEnablePeerAccess = 0x01;  // cudaIpcMemLazyEnablePeerAccess
constexpr unsigned kStreamNonBlocking = 0x01;           // cudaStreamNonBlocking

struct Api {
  Error (*GetDeviceCount)(int*);
  const char* (*GetErrorName)(Error);
  const char* (*GetErrorString)(Error);
  Error (*SetDevice)(int);
  Error (*Malloc)(void**, size_t);
  Error (*Free)(void*);
  Error (*IpcGetMemHandle)(IpcMemHandle*, void*);
  Error (*IpcOpenMemHandle)(void**, IpcMemHandle, unsigned);
  Error (*IpcCloseMemHandle)(void*);
  Error (*StreamCreateWithFlags)(Stream*, unsigned);
  Error (*StreamSynchronize)(Stream);
  Error (*StreamDestroy)(Stream);
  Error (*MemcpyAsync)(void*, const void*, size_t, int, Stream);
  Error (*MemsetAsync)(void*, int, size_t, Stream);
};

struct Availability {
  bool available = false;
  std::string reason;   // why not, or what was found
  int device_count = 0;
  std::string library;  // path that loaded; empty when none did
};

// Loads the runtime and counts devices once; thread-safe; never throws.
const Availability& GetAvailability();
// The entry points, or null when CUDA is unavailable.
const Api* GetApi();
// "cudaErrorInvalidValue: invalid argument" style text for an error code.
std::string ErrorText(Error err);

}  // namespace cuda
}  // namespace sidecar
