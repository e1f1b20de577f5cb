// Registers the native objects; each lives in its own file.
#include <napi.h>

#include "slab.h"

namespace sidecar {

Napi::Object InitAddon(Napi::Env env, Napi::Object exports) {
  exports.Set("Slab", Slab::Init(env));
  return exports;
}

}  // namespace sidecar

static Napi::Object Init(Napi::Env env, Napi::Object exports) { return sidecar::InitAddon(env, exports); }

NODE_API_MODULE(sidecar_native, Init)
