// UCX status codes as the names the TypeScript side carries on UcxError
// (`status`), plus the one helper that builds such an error.
#pragma once
#include <napi.h>
#include <ucs/type/status.h>

#include <string>

namespace sidecar {

// "UCS_ERR_UNREACHABLE" for UCS_ERR_UNREACHABLE; ranges (link/endpoint
// failures) get their range name.
const char* UcsStatusName(ucs_status_t status);

// An Error with code SC_UCX, `status` = the name, message = what + UCX's text.
Napi::Error MakeUcxError(Napi::Env env, const std::string& what, ucs_status_t status);
[[noreturn]] void ThrowUcxError(Napi::Env env, const std::string& what, ucs_status_t status);

}  // namespace sidecar
