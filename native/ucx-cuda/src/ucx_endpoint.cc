#include "ucx_endpoint.h"

#include <string>

#include "errors.h"
#include "ucx_request.h"
#include "ucx_status.h"
#include "ucx_worker.h"

namespace sidecar {

namespace {
const napi_type_tag kEndpointTag = {0x5ca1ab1e0000a003ULL, 0x0c0ffee000cc0002ULL};
}

Napi::Function UcxEndpoint::Init(Napi::Env env) {
  return DefineClass(env, "UcxEndpoint",
                     {
                         InstanceMethod("send", &UcxEndpoint::Send),
                         InstanceMethod("close", &UcxEndpoint::Close),
                         InstanceMethod("isClosed", &UcxEndpoint::IsClosed),
                         InstanceMethod("peerErrorHandling", &UcxEndpoint::PeerErrorHandling),
                     });
}

UcxEndpoint::UcxEndpoint(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UcxEndpoint>(info) {
  Napi::Env env = info.Env();
  UcxWorker* worker = info.Length() > 0 ? UcxWorker::Unwrap(info[0]) : nullptr;
  if (worker == nullptr || info.Length() < 2 || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowError(env, "SC_INVALID_ARGUMENT", "UcxEndpoint(worker: UcxWorker, address: Uint8Array, onError?: function)");
  }
  if (!worker->is_open()) ThrowError(env, "SC_UCX", "UcxWorker is closed", "UCS_ERR_CANCELED");
  Napi::Uint8Array address = info[1].As<Napi::Uint8Array>();
  if (address.ByteLength() == 0) ThrowError(env, "SC_INVALID_ARGUMENT", "peer address is empty");

  ucp_ep_params_t p{};
  p.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS | UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE |
                 UCP_EP_PARAM_FIELD_ERR_HANDLER;
  p.address = static_cast<const ucp_address_t*>(static_cast<const void*>(address.Data()));
  p.err_mode = UCP_ERR_HANDLING_MODE_PEER;
  // The worker outlives every UCP endpoint it has, so it is a safe argument;
  // it maps the ucp_ep_h back to this object while we are open.
  p.err_handler.cb = &UcxWorker::OnEndpointError;
  p.err_handler.arg = worker;
  ucp_ep_h ep = nullptr;
  ucs_status_t st = UCS_ERR_UNREACHABLE;
  if (worker->peer_errors_supported()) st = ucp_ep_create(worker->handle(), &p, &ep);
  if (st == UCS_ERR_UNREACHABLE) {
    // No transport to this peer can report peer failures (UCX 1.13's shared
    // memory transports cannot): connect without, and remember that for this
    // worker, whose transports do not change, so UCX logs that once.
    p.err_mode = UCP_ERR_HANDLING_MODE_NONE;
    st = ucp_ep_create(worker->handle(), &p, &ep);
    if (st == UCS_OK) {
      peer_errors_ = false;
      worker->set_peer_errors_supported(false);
    }
  }
  if (st != UCS_OK) ThrowUcxError(env, "ucp_ep_create failed", st);

  if (info.Length() > 2 && info[2].IsFunction()) on_error_ = Napi::Persistent(info[2].As<Napi::Function>());
  worker_ = worker;
  worker_ref_ = Napi::Persistent(info[0].As<Napi::Object>());
  ep_ = ep;
  worker->AddEndpoint(ep_, this);
  info.This().As<Napi::Object>().TypeTag(&kEndpointTag);
  worker->Kick();  // wireup may need progress before any send
}

UcxEndpoint::~UcxEndpoint() {
  // Collected while open: close it, with nobody waiting. (A worker that
  // closes first closes us, leaving ep_ null.)
  if (ep_ != nullptr && worker_ != nullptr && worker_->is_open()) {
    ucp_ep_h ep = ep_;
    ep_ = nullptr;
    worker_->RemoveEndpoint(ep);
    worker_->StartEpClose(ep, true, nullptr, Napi::Value());
  }
}

// send(tag: bigint, data: Uint8Array): Promise<void>
Napi::Value UcxEndpoint::Send(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsBigInt() || !info[1].IsTypedArray() ||
      info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowError(env, "SC_INVALID_ARGUMENT", "send(tag: bigint, data: Uint8Array)");
  }
  bool lossless = false;
  uint64_t tag = info[0].As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowError(env, "SC_INVALID_ARGUMENT", "tag must fit in 64 unsigned bits");

  napi_deferred d;
  napi_value promise;
  napi_create_promise(env, &d, &promise);
  if (ep_ == nullptr || !worker_->is_open()) {
    napi_reject_deferred(env, d, MakeError(env, "SC_UCX", "UcxEndpoint is closed", "UCS_ERR_NOT_CONNECTED").Value());
    return Napi::Value(env, promise);
  }
  if (failed_) {
    napi_reject_deferred(env, d, MakeUcxError(env, "UcxEndpoint failed earlier", fail_status_).Value());
    return Napi::Value(env, promise);
  }
  Napi::Uint8Array view = info[1].As<Napi::Uint8Array>();
  void* data = view.Data();
  size_t len = view.ByteLength();

  UcxOp* op = worker_->NewOp(UcxOp::Kind::kSend);
  op->endpoint = this;
  op->deferred = d;
  op->buffer = Napi::Persistent(info[1]);
  op->owner = Napi::Persistent(Value());
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA;
  p.cb.send = &UcxOp::OnSend;
  p.user_data = op;
  if (ucp_mem_h memh = worker_->FindMemh(data, len)) {
    p.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
    p.memh = memh;
  }
  ucs_status_ptr_t r = ucp_tag_send_nbx(ep_, data, len, tag, &p);
  if (UCS_PTR_IS_PTR(r)) {
    if (!op->done) op->request = r;  // the callback may already have run (and freed it)
    worker_->Kick();
  } else {
    op->done = true;
    op->status = UCS_PTR_STATUS(r);
    worker_->Settle(op);
  }
  return Napi::Value(env, promise);
}

Napi::Value UcxEndpoint::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_deferred d;
  napi_value promise;
  napi_create_promise(env, &d, &promise);
  if (ep_ == nullptr) {
    napi_resolve_deferred(env, d, env.Undefined());
    return Napi::Value(env, promise);
  }
  StartClose(failed_, d);
  return Napi::Value(env, promise);
}

void UcxEndpoint::StartClose(bool force, napi_deferred deferred) {
  ucp_ep_h ep = ep_;
  ep_ = nullptr;
  worker_->RemoveEndpoint(ep);
  // A failed endpoint can only be closed by force; a healthy one flushes.
  worker_->StartEpClose(ep, force, deferred, deferred != nullptr ? Value() : Napi::Value());
}

void UcxEndpoint::CloseForWorker() {
  if (ep_ != nullptr) StartClose(true, nullptr);
}

Napi::Value UcxEndpoint::IsClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), ep_ == nullptr);
}

Napi::Value UcxEndpoint::PeerErrorHandling(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), peer_errors_);
}

void UcxEndpoint::DeliverError(ucs_status_t status) {
  if (failed_) return;
  failed_ = true;
  fail_status_ = status;
  if (on_error_.IsEmpty()) return;
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  try {
    on_error_.Call(Value(), {MakeUcxError(env, "UCX endpoint failed", status).Value()});
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

}  // namespace sidecar
