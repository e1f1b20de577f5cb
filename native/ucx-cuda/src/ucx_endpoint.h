// UcxEndpoint: one UCP endpoint to a peer worker's address, created with
// peer error handling. A transport failure marks the endpoint failed (later
// sends reject at once), UCX fails its outstanding sends, and the optional
// JS error callback is called (from the worker's settle step, never from
// inside UCX progress). Where no transport to the peer can report peer
// failures (UCX 1.13 shared memory), the endpoint is created without error
// handling instead; peerErrorHandling() says which.
#pragma once
#include <napi.h>
#include <ucp/api/ucp.h>

namespace sidecar {

class UcxWorker;

class UcxEndpoint : public Napi::ObjectWrap<UcxEndpoint> {
 public:
  static Napi::Function Init(Napi::Env env);
  // new UcxEndpoint(worker: UcxWorker, address: Uint8Array, onError?: (err) => void)
  explicit UcxEndpoint(const Napi::CallbackInfo& info);
  ~UcxEndpoint() override;

  // Called by the worker.
  void DeliverError(ucs_status_t status);  // settle step, JS thread
  void CloseForWorker();                   // worker closing: forced close

 private:
  Napi::Value Send(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value IsClosed(const Napi::CallbackInfo& info);
  Napi::Value PeerErrorHandling(const Napi::CallbackInfo& info);
  // Starts ucp_ep_close_nbx; the op settles `deferred` (may be null).
  void StartClose(bool force, napi_deferred deferred);

  UcxWorker* worker_ = nullptr;
  Napi::ObjectReference worker_ref_;  // keeps the worker alive while we exist
  ucp_ep_h ep_ = nullptr;
  bool peer_errors_ = true;  // created with UCP_ERR_HANDLING_MODE_PEER
  bool failed_ = false;
  ucs_status_t fail_status_ = UCS_OK;
  Napi::FunctionReference on_error_;
};

}  // namespace sidecar
