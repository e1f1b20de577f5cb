// UcxWorker: one UCP context and one single-threaded UCP worker, progressed
// from the Node event loop. The worker's event fd is watched with uv_poll; on
// readiness the worker is progressed until idle and re-armed (UCS_ERR_BUSY
// from ucp_worker_arm means "progress again"). A slow uv_timer runs while
// operations are pending, because UCX can miss wakeups; it is stopped when
// idle, and the poll handle is unreferenced, so an idle worker never keeps
// the process alive.
//
// Ownership: the worker owns the context, the worker handle, memory
// registrations and every in-flight operation; endpoints hold a JS reference
// to their worker. close() (or env teardown, or finalization) closes
// endpoints, unmaps memory, destroys the worker and then the context.
#pragma once
#include <napi.h>
#include <ucp/api/ucp.h>
#include <uv.h>

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <unordered_map>
#include <vector>

#include "ucx_request.h"

namespace sidecar {

class UcxEndpoint;
class Slab;

class UcxWorker : public Napi::ObjectWrap<UcxWorker> {
 public:
  static Napi::Function Init(Napi::Env env);
  // new UcxWorker(name?: string)
  explicit UcxWorker(const Napi::CallbackInfo& info);
  ~UcxWorker() override;

  static UcxWorker* Unwrap(Napi::Value v);

  bool is_open() const { return state_ == State::kOpen; }
  ucp_worker_h handle() const { return worker_; }
  bool peer_errors_supported() const { return peer_errors_supported_; }
  void set_peer_errors_supported(bool v) { peer_errors_supported_ = v; }

  // For endpoints and operations.
  UcxOp* NewOp(UcxOp::Kind kind);
  void DropOp(UcxOp* op);           // an op that never reached UCX
  void OpCompleted(UcxOp* op);      // from a UCX callback: queue for settling
  void Kick();                      // progress soon (next loop turn)
  void AddEndpoint(ucp_ep_h ep, UcxEndpoint* owner);
  void RemoveEndpoint(ucp_ep_h ep);
  ucp_mem_h FindMemh(const void* addr, size_t length) const;
  // Closes a UCP endpoint nobody waits for (endpoint object finalized).
  // ucp_ep_close_nbx; the op settles `deferred` (may be null) and pins
  // `owner` (may be empty) until it completes.
  void StartEpClose(ucp_ep_h ep, bool force, napi_deferred deferred, Napi::Value owner);
  void Settle(UcxOp* op);  // resolve/reject on the JS thread, then forget the op
  static void OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status);

 private:
  enum class State { kOpen, kClosing, kClosed };
  struct LoopHandles;
  struct Region {
    uintptr_t base;
    size_t size;
    ucp_mem_h memh;
    Slab* slab;                       // alive: `slab_ref` pins its JS object
    Napi::ObjectReference slab_ref;
  };

  Napi::Value Address(const Napi::CallbackInfo& info);
  Napi::Value RegisterMemory(const Napi::CallbackInfo& info);
  Napi::Value Recv(const Napi::CallbackInfo& info);
  Napi::Value Cancel(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  Napi::Value IsClosed(const Napi::CallbackInfo& info);
  static Napi::Value Version(const Napi::CallbackInfo& info);

  static void OnPoll(uv_poll_t* handle, int status, int events);
  static void OnTimer(uv_timer_t* handle);
  static void OnEnvCleanup(void* arg);

  void ProgressFromLoop();   // uv callbacks: handle + callback scope, then Progress
  void Progress();           // progress until idle, arm, settle, schedule
  void Drain();              // settle completed ops and deliver endpoint errors
  void BeginClose();
  void MaybeFinishClose();
  void Finish();             // unmap, stop the loop handles, destroy worker + context
  void TeardownNow(bool from_cleanup_hook);  // synchronous close (teardown / finalizer)
  void UpdateTimer();
  void ReleaseResources(bool from_cleanup_hook);

  State state_ = State::kOpen;
  ucp_context_h context_ = nullptr;
  ucp_worker_h worker_ = nullptr;
  LoopHandles* loop_ = nullptr;
  std::unique_ptr<Napi::AsyncContext> async_;
  bool progressing_ = false;
  bool hook_added_ = false;
  bool peer_errors_supported_ = true;
  uint64_t close_started_ms_ = 0;
  uint32_t next_id_ = 1;

  std::map<uint32_t, std::unique_ptr<UcxOp>> ops_;
  std::deque<UcxOp*> completed_;
  std::deque<std::pair<ucp_ep_h, ucs_status_t>> ep_errors_;
  std::unordered_map<ucp_ep_h, UcxEndpoint*> endpoints_;
  std::vector<Region> regions_;
  std::vector<napi_deferred> close_waiters_;
};

}  // namespace sidecar
