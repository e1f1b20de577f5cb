// Registers the native objects; each lives in its own file.
#include <napi.h>

#include "cuda_binding.h"
#include "slab.h"
#include "ucx_endpoint.h"
#include "ucx_worker.h"

namespace sidecar {

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("Slab", Slab::Init(env));
  exports.Set("UcxWorker", UcxWorker::Init(env));
  exports.Set("UcxEndpoint", UcxEndpoint::Init(env));
  exports.Set("cuda", InitCuda(env));
  return exports;
}

}  // namespace sidecar

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return sidecar::InitAddon(env, exports); }

NODE_API_MODULE(sidecar_native, Init)
