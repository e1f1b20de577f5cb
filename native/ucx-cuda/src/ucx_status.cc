#include "ucx_status.h"

#include "errors.h"

namespace sidecar {

const char* UcsStatusName(ucs_status_t status) {
  switch (status) {
#define SIDECAR_UCS(name) \
  case name:              \
    return #name;
    SIDECAR_UCS(UCS_OK)
    SIDECAR_UCS(UCS_INPROGRESS)
    SIDECAR_UCS(UCS_ERR_NO_MESSAGE)
    SIDECAR_UCS(UCS_ERR_NO_RESOURCE)
    SIDECAR_UCS(UCS_ERR_IO_ERROR)
    SIDECAR_UCS(UCS_ERR_NO_MEMORY)
    SIDECAR_UCS(UCS_ERR_INVALID_PARAM)
    SIDECAR_UCS(UCS_ERR_UNREACHABLE)
    SIDECAR_UCS(UCS_ERR_INVALID_ADDR)
    SIDECAR_UCS(UCS_ERR_NOT_IMPLEMENTED)
    SIDECAR_UCS(UCS_ERR_MESSAGE_TRUNCATED)
    SIDECAR_UCS(UCS_ERR_NO_PROGRESS)
    SIDECAR_UCS(UCS_ERR_BUFFER_TOO_SMALL)
    SIDECAR_UCS(UCS_ERR_NO_ELEM)
    SIDECAR_UCS(UCS_ERR_SOME_CONNECTS_FAILED)
    SIDECAR_UCS(UCS_ERR_NO_DEVICE)
    SIDECAR_UCS(UCS_ERR_BUSY)
    SIDECAR_UCS(UCS_ERR_CANCELED)
    SIDECAR_UCS(UCS_ERR_SHMEM_SEGMENT)
    SIDECAR_UCS(UCS_ERR_ALREADY_EXISTS)
    SIDECAR_UCS(UCS_ERR_OUT_OF_RANGE)
    SIDECAR_UCS(UCS_ERR_TIMED_OUT)
    SIDECAR_UCS(UCS_ERR_EXCEEDS_LIMIT)
    SIDECAR_UCS(UCS_ERR_UNSUPPORTED)
    SIDECAR_UCS(UCS_ERR_REJECTED)
    SIDECAR_UCS(UCS_ERR_NOT_CONNECTED)
    SIDECAR_UCS(UCS_ERR_CONNECTION_RESET)
    SIDECAR_UCS(UCS_ERR_ENDPOINT_TIMEOUT)
#undef SIDECAR_UCS
    default:
      break;
  }
  if (UCS_IS_LINK_ERROR(status)) return "UCS_ERR_LINK_FAILURE";
  if (UCS_IS_ENDPOINT_ERROR(status)) return "UCS_ERR_ENDPOINT_FAILURE";
  return "UCS_ERR_UNKNOWN";
}

Napi::Error MakeUcxError(Napi::Env env, const std::string& what, ucs_status_t status) {
  return MakeError(env, "SC_UCX", what + ": " + ucs_status_string(status) + " (" + UcsStatusName(status) + ")",
                   UcsStatusName(status), static_cast<double>(status));
}

void ThrowUcxError(Napi::Env env, const std::string& what, ucs_status_t status) {
  throw MakeUcxError(env, what, status);
}

}  // namespace sidecar
