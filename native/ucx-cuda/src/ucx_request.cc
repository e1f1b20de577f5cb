#include "ucx_request.h"

#include "ucx_worker.h"

namespace sidecar {

void UcxOp::Complete(ucs_status_t st) {
  if (done) return;
  done = true;
  status = st;
  if (request != nullptr) {
    ucp_request_free(request);
    request = nullptr;
  }
  worker->OpCompleted(this);
}

void UcxOp::OnSend(void* request, ucs_status_t status, void* user_data) {
  auto* op = static_cast<UcxOp*>(user_data);
  // The callback may run before the nbx call returns (NO_IMM_CMPL), so the
  // request comes from here, not from what the caller stored.
  op->request = request;
  op->Complete(status);
}

void UcxOp::OnRecv(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data) {
  auto* op = static_cast<UcxOp*>(user_data);
  if (info != nullptr && status == UCS_OK) op->info = *info;
  op->request = request;
  op->Complete(status);
}

}  // namespace sidecar
