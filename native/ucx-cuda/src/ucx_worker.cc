#include "ucx_worker.h"

#include <time.h>

#include <string>

#include "errors.h"
#include "slab.h"
#include "ucx_endpoint.h"
#include "ucx_status.h"

namespace sidecar {

namespace {

const napi_type_tag kWorkerTag = {0x5ca1ab1e0000a002ULL, 0x0c0ffee000cc0001ULL};

// Safety tick while operations are pending (UCX can miss a wakeup).
constexpr uint64_t kTickMs = 5;
// A closing worker waits this long for its operations, then destroys anyway.
constexpr uint64_t kCloseDeadlineMs = 10000;

uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

uint64_t TagArg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsBigInt()) ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " must be a bigint");
  bool lossless = false;
  uint64_t out = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless) ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " must fit in 64 unsigned bits");
  return out;
}

}  // namespace

// The libuv handles live apart from the worker: uv_close finishes on a later
// loop turn, possibly after the worker object is gone.
struct UcxWorker::LoopHandles {
  uv_poll_t poll;
  uv_timer_t timer;
  UcxWorker* owner = nullptr;
  int open = 0;

  static void OnClosed(uv_handle_t* h) {
    auto* self = static_cast<LoopHandles*>(h->data);
    if (--self->open == 0) delete self;
  }
  void Close() {
    owner = nullptr;
    int n = open;  // OnClosed may run synchronously on no platform, but be safe
    if (n == 0) {
      delete this;
      return;
    }
    if (uv_is_active(reinterpret_cast<uv_handle_t*>(&timer))) uv_timer_stop(&timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll), OnClosed);
    if (n == 2) uv_close(reinterpret_cast<uv_handle_t*>(&timer), OnClosed);
  }
};

Napi::Function UcxWorker::Init(Napi::Env env) {
  return DefineClass(env, "UcxWorker",
                     {
                         InstanceMethod("address", &UcxWorker::Address),
                         InstanceMethod("registerMemory", &UcxWorker::RegisterMemory),
                         InstanceMethod("recv", &UcxWorker::Recv),
                         InstanceMethod("cancel", &UcxWorker::Cancel),
                         InstanceMethod("close", &UcxWorker::Close),
                         InstanceMethod("isClosed", &UcxWorker::IsClosed),
                         StaticMethod("version", &UcxWorker::Version),
                     });
}

UcxWorker::UcxWorker(const Napi::CallbackInfo& info) : Napi::ObjectWrap<UcxWorker>(info) {
  Napi::Env env = info.Env();
  std::string name = "sidecar";
  if (info.Length() > 0 && !info[0].IsUndefined()) {
    if (!info[0].IsString()) ThrowError(env, "SC_INVALID_ARGUMENT", "UcxWorker(name?: string)");
    name = info[0].As<Napi::String>().Utf8Value();
  }
  // On failure part way, release what exists: no destructor runs for a
  // constructor that throws.
  auto fail = [&](const std::string& what, ucs_status_t st) {
    ReleaseResources(false);
    state_ = State::kClosed;
    ThrowUcxError(env, what, st);
  };

  ucp_config_t* config = nullptr;
  ucs_status_t st = ucp_config_read(nullptr, nullptr, &config);
  if (st != UCS_OK) fail("ucp_config_read failed", st);
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_NAME;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.name = name.c_str();
  st = ucp_init(&params, config, &context_);
  ucp_config_release(config);
  if (st != UCS_OK) {
    context_ = nullptr;
    fail("ucp_init failed", st);
  }

  ucp_worker_params_t wp{};
  wp.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE | UCP_WORKER_PARAM_FIELD_NAME;
  wp.thread_mode = UCS_THREAD_MODE_SINGLE;
  wp.name = name.c_str();
  st = ucp_worker_create(context_, &wp, &worker_);
  if (st != UCS_OK) {
    worker_ = nullptr;
    fail("ucp_worker_create failed", st);
  }

  int fd = -1;
  st = ucp_worker_get_efd(worker_, &fd);
  if (st != UCS_OK) fail("ucp_worker_get_efd failed", st);

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || loop == nullptr) fail("no libuv loop", UCS_ERR_NO_RESOURCE);
  loop_ = new LoopHandles();
  loop_->owner = this;
  if (uv_poll_init(loop, &loop_->poll, fd) != 0) fail("uv_poll_init on the UCX event fd failed", UCS_ERR_IO_ERROR);
  loop_->poll.data = loop_;
  loop_->open = 1;
  uv_timer_init(loop, &loop_->timer);
  loop_->timer.data = loop_;
  loop_->open = 2;
  // Neither handle keeps the process alive by itself: the timer is only
  // started while operations are pending (and then it does).
  uv_unref(reinterpret_cast<uv_handle_t*>(&loop_->poll));
  if (uv_poll_start(&loop_->poll, UV_READABLE, &UcxWorker::OnPoll) != 0) {
    fail("uv_poll_start on the UCX event fd failed", UCS_ERR_IO_ERROR);
  }

  async_ = std::make_unique<Napi::AsyncContext>(env, "UcxWorker");
  if (napi_add_env_cleanup_hook(env, &UcxWorker::OnEnvCleanup, this) == napi_ok) hook_added_ = true;
  info.This().As<Napi::Object>().TypeTag(&kWorkerTag);

  // Nothing is pending yet, but this arms the worker (progressing first).
  Progress();
}

UcxWorker::~UcxWorker() { TeardownNow(false); }

UcxWorker* UcxWorker::Unwrap(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kWorkerTag)) return nullptr;
  return Napi::ObjectWrap<UcxWorker>::Unwrap(v.As<Napi::Object>());
}

// ---- operations -----------------------------------------------------------

UcxOp* UcxWorker::NewOp(UcxOp::Kind kind) {
  auto op = std::make_unique<UcxOp>();
  op->kind = kind;
  if (next_id_ == 0) next_id_ = 1;
  op->id = next_id_++;
  op->worker = this;
  UcxOp* raw = op.get();
  ops_[raw->id] = std::move(op);
  return raw;
}

void UcxWorker::DropOp(UcxOp* op) { ops_.erase(op->id); }

void UcxWorker::OpCompleted(UcxOp* op) { completed_.push_back(op); }

void UcxWorker::Settle(UcxOp* op) {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  if (op->deferred != nullptr) {
    napi_deferred d = op->deferred;
    op->deferred = nullptr;
    if (op->status == UCS_OK || op->kind == UcxOp::Kind::kEpClose) {
      // An endpoint close resolves whatever the flush status: the endpoint
      // is released either way.
      Napi::Value result = env.Undefined();
      if (op->kind == UcxOp::Kind::kRecv) {
        Napi::Object o = Napi::Object::New(env);
        o.Set("length", Napi::Number::New(env, static_cast<double>(op->info.length)));
        o.Set("senderTag", Napi::BigInt::New(env, static_cast<uint64_t>(op->info.sender_tag)));
        result = o;
      }
      napi_resolve_deferred(env, d, result);
    } else {
      std::string what;
      if (op->kind == UcxOp::Kind::kSend) {
        what = "UCX tag send failed";
      } else if (op->canceled_by_close) {
        what = "UCX tag recv canceled because the UcxWorker was closed";
      } else {
        what = "UCX tag recv failed";
      }
      napi_reject_deferred(env, d, MakeUcxError(env, what, op->status).Value());
    }
  }
  ops_.erase(op->id);  // releases the buffer and owner references
}

void UcxWorker::StartEpClose(ucp_ep_h ep, bool force, napi_deferred deferred, Napi::Value owner) {
  UcxOp* op = NewOp(UcxOp::Kind::kEpClose);
  op->deferred = deferred;
  if (!owner.IsEmpty() && owner.IsObject()) op->owner = Napi::Persistent(owner.As<Napi::Object>());
  ucp_request_param_t p{};
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FIELD_FLAGS;
  p.cb.send = &UcxOp::OnSend;
  p.user_data = op;
  p.flags = force ? UCP_EP_CLOSE_FLAG_FORCE : 0;
  ucs_status_ptr_t r = ucp_ep_close_nbx(ep, &p);
  if (UCS_PTR_IS_PTR(r)) {
    if (!op->done) op->request = r;  // the callback may already have run (and freed it)
    Kick();
    return;
  }
  op->done = true;
  op->status = UCS_PTR_STATUS(r);
  if (deferred != nullptr) {
    Settle(op);
  } else {
    DropOp(op);
  }
}

void UcxWorker::AddEndpoint(ucp_ep_h ep, UcxEndpoint* owner) { endpoints_[ep] = owner; }

void UcxWorker::RemoveEndpoint(ucp_ep_h ep) { endpoints_.erase(ep); }

void UcxWorker::OnEndpointError(void* arg, ucp_ep_h ep, ucs_status_t status) {
  // Inside progress: only record; the settle step tells the endpoint.
  auto* self = static_cast<UcxWorker*>(arg);
  self->ep_errors_.emplace_back(ep, status);
}

ucp_mem_h UcxWorker::FindMemh(const void* addr, size_t length) const {
  auto p = reinterpret_cast<uintptr_t>(addr);
  for (const Region& r : regions_) {
    if (r.slab->addr() == nullptr || reinterpret_cast<uintptr_t>(r.slab->addr()) != r.base) continue;
    if (p >= r.base && length <= r.size && p - r.base <= r.size - length) return r.memh;
  }
  return nullptr;
}

// ---- progress -------------------------------------------------------------

void UcxWorker::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* lh = static_cast<LoopHandles*>(handle->data);
  if (lh->owner != nullptr) lh->owner->ProgressFromLoop();
}

void UcxWorker::OnTimer(uv_timer_t* handle) {
  auto* lh = static_cast<LoopHandles*>(handle->data);
  if (lh->owner != nullptr) lh->owner->ProgressFromLoop();
}

void UcxWorker::ProgressFromLoop() {
  Napi::Env env = Env();
  Napi::HandleScope scope(env);
  // A callback scope, so Promise reactions run when we return to the loop.
  Napi::CallbackScope cb_scope(env, async_->operator napi_async_context());
  try {
    Progress();
  } catch (const Napi::Error& e) {
    napi_fatal_exception(env, e.Value());
  }
}

void UcxWorker::Kick() {
  if (loop_ == nullptr) return;
  uv_timer_start(&loop_->timer, &UcxWorker::OnTimer, 0, kTickMs);
}

void UcxWorker::UpdateTimer() {
  if (loop_ == nullptr) return;
  bool need = !ops_.empty() || state_ == State::kClosing;
  bool active = uv_is_active(reinterpret_cast<uv_handle_t*>(&loop_->timer)) != 0;
  if (need && !active) {
    uv_timer_start(&loop_->timer, &UcxWorker::OnTimer, kTickMs, kTickMs);
  } else if (!need && active) {
    uv_timer_stop(&loop_->timer);
  }
}

void UcxWorker::Progress() {
  if (worker_ == nullptr || progressing_) return;
  progressing_ = true;
  for (;;) {
    while (ucp_worker_progress(worker_) != 0) {
    }
    ucs_status_t st = ucp_worker_arm(worker_);
    if (st == UCS_ERR_BUSY) continue;  // events arrived meanwhile: progress again
    if (st != UCS_OK && loop_ != nullptr) {
      // Cannot arm: stop watching a fd that would stay readable (a busy
      // loop); the timer still drives pending operations.
      uv_poll_stop(&loop_->poll);
    }
    break;
  }
  progressing_ = false;
  Drain();
  if (state_ != State::kClosed) UpdateTimer();
}

void UcxWorker::Drain() {
  while (!completed_.empty() || !ep_errors_.empty()) {
    if (!completed_.empty()) {
      UcxOp* op = completed_.front();
      completed_.pop_front();
      Settle(op);
      continue;
    }
    auto [ep, status] = ep_errors_.front();
    ep_errors_.pop_front();
    auto it = endpoints_.find(ep);
    if (it != endpoints_.end()) it->second->DeliverError(status);
  }
  MaybeFinishClose();
}

// ---- JS methods -----------------------------------------------------------

Napi::Value UcxWorker::Address(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_open()) ThrowError(env, "SC_UCX", "UcxWorker is closed", "UCS_ERR_CANCELED");
  ucp_address_t* addr = nullptr;
  size_t len = 0;
  ucs_status_t st = ucp_worker_get_address(worker_, &addr, &len);
  if (st != UCS_OK) ThrowUcxError(env, "ucp_worker_get_address failed", st);
  Napi::Uint8Array out = Napi::Uint8Array::New(env, len);
  memcpy(out.Data(), addr, len);
  ucp_worker_release_address(worker_, addr);
  return out;
}

Napi::Value UcxWorker::RegisterMemory(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_open()) ThrowError(env, "SC_UCX", "UcxWorker is closed", "UCS_ERR_CANCELED");
  Slab* slab = info.Length() > 0 ? Slab::Unwrap(info[0]) : nullptr;
  if (slab == nullptr) ThrowError(env, "SC_INVALID_ARGUMENT", "registerMemory(slab: Slab)");
  if (slab->addr() == nullptr) ThrowError(env, "SC_INVALID_ARGUMENT", "registerMemory: the slab is closed");
  auto base = reinterpret_cast<uintptr_t>(slab->addr());
  for (const Region& r : regions_) {
    if (r.slab == slab && r.base == base) return env.Undefined();
  }
  ucp_mem_map_params_t mp{};
  mp.field_mask = UCP_MEM_MAP_PARAM_FIELD_ADDRESS | UCP_MEM_MAP_PARAM_FIELD_LENGTH;
  mp.address = slab->addr();
  mp.length = slab->size();
  ucp_mem_h memh = nullptr;
  ucs_status_t st = ucp_mem_map(context_, &mp, &memh);
  if (st != UCS_OK) ThrowUcxError(env, "ucp_mem_map of the slab failed", st);
  regions_.push_back(Region{base, slab->size(), memh, slab, Napi::Persistent(info[0].As<Napi::Object>())});
  return env.Undefined();
}

// recv(tag: bigint, mask: bigint, into: Uint8Array): [Promise, id]
Napi::Value UcxWorker::Recv(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!is_open()) ThrowError(env, "SC_UCX", "UcxWorker is closed", "UCS_ERR_CANCELED");
  if (info.Length() < 3 || !info[2].IsTypedArray() ||
      info[2].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowError(env, "SC_INVALID_ARGUMENT", "recv(tag: bigint, mask: bigint, into: Uint8Array)");
  }
  uint64_t tag = TagArg(env, info[0], "tag");
  uint64_t mask = TagArg(env, info[1], "tagMask");
  Napi::Uint8Array view = info[2].As<Napi::Uint8Array>();
  void* data = view.Data();
  size_t len = view.ByteLength();

  UcxOp* op = NewOp(UcxOp::Kind::kRecv);
  op->buffer = Napi::Persistent(info[2]);
  op->owner = Napi::Persistent(Value());
  napi_value promise;
  napi_create_promise(env, &op->deferred, &promise);

  ucp_request_param_t p{};
  // UCX 1.13 leaves recv_info zeroed when a recv completes at once from an
  // unexpected eager message, so ask for the callback every time instead.
  p.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA | UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
  p.cb.recv = &UcxOp::OnRecv;
  p.user_data = op;
  if (ucp_mem_h memh = FindMemh(data, len)) {
    p.op_attr_mask |= UCP_OP_ATTR_FIELD_MEMH;
    p.memh = memh;
  }
  ucs_status_ptr_t r = ucp_tag_recv_nbx(worker_, data, len, tag, mask, &p);
  uint32_t id = op->id;
  if (UCS_PTR_IS_PTR(r)) {
    if (!op->done) op->request = r;  // the callback may already have run (and freed it)
    Kick();
  } else {
    // Failed at once: no callback will come.
    op->done = true;
    op->status = UCS_PTR_STATUS(r);
    id = 0;
    Settle(op);
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Value(env, promise));
  out.Set(1u, Napi::Number::New(env, id));
  return out;
}

// cancel(id): cancels a pending recv; it then rejects with UCS_ERR_CANCELED.
Napi::Value UcxWorker::Cancel(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowError(env, "SC_INVALID_ARGUMENT", "cancel(id: number)");
  auto it = ops_.find(info[0].As<Napi::Number>().Uint32Value());
  if (it != ops_.end() && worker_ != nullptr) {
    UcxOp* op = it->second.get();
    if (op->kind == UcxOp::Kind::kRecv && op->request != nullptr && !op->done) {
      ucp_request_cancel(worker_, op->request);
      Kick();
    }
  }
  return env.Undefined();
}

Napi::Value UcxWorker::Close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  napi_deferred d;
  napi_value promise;
  napi_create_promise(env, &d, &promise);
  if (state_ == State::kClosed) {
    napi_resolve_deferred(env, d, env.Undefined());
    return Napi::Value(env, promise);
  }
  close_waiters_.push_back(d);
  if (state_ == State::kOpen) BeginClose();
  return Napi::Value(env, promise);
}

Napi::Value UcxWorker::IsClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), state_ != State::kOpen);
}

Napi::Value UcxWorker::Version(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ucp_get_version_string());
}

// ---- closing --------------------------------------------------------------

void UcxWorker::BeginClose() {
  state_ = State::kClosing;
  close_started_ms_ = NowMs();
  for (auto& [id, op] : ops_) {
    if (op->kind == UcxOp::Kind::kRecv && op->request != nullptr && !op->done) {
      op->canceled_by_close = true;
      ucp_request_cancel(worker_, op->request);
    }
  }
  std::vector<UcxEndpoint*> eps;
  for (auto& [ep, owner] : endpoints_) eps.push_back(owner);
  for (UcxEndpoint* e : eps) e->CloseForWorker();
  // Finishing happens in the settle step, never inside this JS call.
  Kick();
}

void UcxWorker::MaybeFinishClose() {
  if (state_ != State::kClosing) return;
  if (!ops_.empty() && NowMs() - close_started_ms_ < kCloseDeadlineMs) return;
  Finish();
}

void UcxWorker::Finish() {
  // Operations still here outlived the close deadline; their UCX requests go
  // with the worker, so forget them before destroying it.
  std::vector<UcxOp*> left;
  for (auto& [id, op] : ops_) {
    op->request = nullptr;
    if (!op->done) left.push_back(op.get());
  }
  completed_.clear();
  ep_errors_.clear();
  ReleaseResources(false);
  state_ = State::kClosed;
  Napi::Env env = Env();
  for (UcxOp* op : left) {
    op->done = true;
    op->status = UCS_ERR_CANCELED;
    op->canceled_by_close = true;
    Settle(op);
  }
  ops_.clear();
  std::vector<napi_deferred> waiters;
  waiters.swap(close_waiters_);
  for (napi_deferred d : waiters) napi_resolve_deferred(env, d, env.Undefined());
}

void UcxWorker::OnEnvCleanup(void* arg) {
  auto* self = static_cast<UcxWorker*>(arg);
  self->hook_added_ = false;
  self->TeardownNow(true);
}

void UcxWorker::TeardownNow(bool from_cleanup_hook) {
  if (state_ == State::kClosed) return;
  state_ = State::kClosing;
  if (worker_ != nullptr) {
    for (auto& [id, op] : ops_) {
      if (op->kind == UcxOp::Kind::kRecv && op->request != nullptr && !op->done) ucp_request_cancel(worker_, op->request);
    }
    std::vector<UcxEndpoint*> eps;
    for (auto& [ep, owner] : endpoints_) eps.push_back(owner);
    for (UcxEndpoint* e : eps) e->CloseForWorker();
    // Cancellations and forced closes complete within a few progress calls;
    // bounded, since this runs at teardown and may not wait for the loop.
    auto busy = [this] {
      for (auto& [id, op] : ops_) {
        if (op->request != nullptr) return true;
      }
      return false;
    };
    for (int i = 0; i < 10000 && busy(); ++i) ucp_worker_progress(worker_);
    for (auto& [id, op] : ops_) op->request = nullptr;
  }
  completed_.clear();
  ep_errors_.clear();
  ops_.clear();  // deferreds stay unsettled: the environment is going away
  ReleaseResources(from_cleanup_hook);
  close_waiters_.clear();
  state_ = State::kClosed;
}

void UcxWorker::ReleaseResources(bool from_cleanup_hook) {
  if (loop_ != nullptr) {
    loop_->Close();  // stops watching the fd before the worker closes it
    loop_ = nullptr;
  }
  for (Region& r : regions_) {
    if (context_ != nullptr) ucp_mem_unmap(context_, r.memh);
  }
  regions_.clear();
  if (worker_ != nullptr) {
    ucp_worker_destroy(worker_);
    worker_ = nullptr;
  }
  if (context_ != nullptr) {
    ucp_cleanup(context_);
    context_ = nullptr;
  }
  if (hook_added_ && !from_cleanup_hook) {
    napi_remove_env_cleanup_hook(Env(), &UcxWorker::OnEnvCleanup, this);
  }
  hook_added_ = false;
}

}  // namespace sidecar
