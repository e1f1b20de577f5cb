// One in-flight UCX operation (tag send, tag recv, endpoint close) and the
// JS state it pins: the deferred its Promise settles, the buffer UCX reads or
// writes, and the JS object that owns the operation (so neither the buffer
// nor the worker/endpoint can be collected while UCX still uses them).
//
// UCX completion callbacks only record the outcome and queue the operation
// on its worker; the worker settles Promises after ucp_worker_progress has
// returned, so no JS runs inside UCX and progress is never re-entered.
#pragma once
#include <napi.h>
#include <ucp/api/ucp.h>

#include <cstdint>

namespace sidecar {

class UcxWorker;
class UcxEndpoint;

struct UcxOp {
  enum class Kind { kSend, kRecv, kEpClose };

  Kind kind;
  uint32_t id = 0;
  UcxWorker* worker = nullptr;
  UcxEndpoint* endpoint = nullptr;  // sends and closes; null for recvs
  void* request = nullptr;          // UCX request while UCX owns it
  bool done = false;
  bool canceled_by_close = false;   // recv cancelled because the worker is closing
  ucs_status_t status = UCS_INPROGRESS;
  ucp_tag_recv_info_t info{};       // recvs: length and sender tag

  napi_deferred deferred = nullptr;  // null for closes nobody waits for
  Napi::Reference<Napi::Value> buffer;
  Napi::ObjectReference owner;

  // Completion callbacks handed to UCX (user_data = the UcxOp).
  static void OnSend(void* request, ucs_status_t status, void* user_data);
  static void OnRecv(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info, void* user_data);

  // Records an outcome, releases the UCX request and queues this op.
  void Complete(ucs_status_t st);
};

}  // namespace sidecar
