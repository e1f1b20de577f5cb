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
  // The request pointer is stored after the nbx call returns; a callback
  // always comes later (from progress), so they agree.
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
