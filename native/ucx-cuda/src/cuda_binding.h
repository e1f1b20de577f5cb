// The CUDA functions JS sees (binding.cuda.*). Each checks availability
// first and throws SC_CUDA_UNAVAILABLE with the reason; CUDA failures throw
// SC_CUDA with the error number. Copies and memset run on a stream in an
// AsyncWorker (no N-API calls in Execute), the host buffer referenced until
// the work completes.
#pragma once
#include <napi.h>

namespace sidecar {

Napi::Object InitCuda(Napi::Env env);

}  // namespace sidecar
