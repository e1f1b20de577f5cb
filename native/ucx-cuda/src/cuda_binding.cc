#include "cuda_binding.h"

#include <cstring>
#include <string>

#include "cuda_runtime.h"
#include "errors.h"

namespace sidecar {

namespace {

const cuda::Api& RequireCuda(Napi::Env env) {
  const cuda::Api* api = cuda::GetApi();
  if (api == nullptr) {
    ThrowError(env, "SC_CUDA_UNAVAILABLE", "CUDA unavailable: " + cuda::GetAvailability().reason);
  }
  return *api;
}

[[noreturn]] void ThrowCuda(Napi::Env env, const std::string& what, cuda::Error err) {
  ThrowError(env, "SC_CUDA", what + " failed: " + cuda::ErrorText(err), nullptr, err);
}

void Check(Napi::Env env, cuda::Error err, const char* what) {
  if (err != 0) ThrowCuda(env, what, err);
}

int DeviceArg(Napi::Env env, const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsNumber()) ThrowError(env, "SC_INVALID_ARGUMENT", "device must be a number");
  double d = info[0].As<Napi::Number>().DoubleValue();
  int count = cuda::GetAvailability().device_count;
  if (!(d >= 0) || d != static_cast<int>(d) || static_cast<int>(d) >= count) {
    ThrowError(env, "SC_INVALID_ARGUMENT",
               "device " + std::to_string(d) + " out of range: " + std::to_string(count) + " CUDA device(s)");
  }
  return static_cast<int>(d);
}

void* PtrArg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsBigInt()) ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " must be a bigint device pointer");
  bool lossless = false;
  uint64_t p = v.As<Napi::BigInt>().Uint64Value(&lossless);
  if (!lossless || p == 0) ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " is not a device pointer");
  return reinterpret_cast<void*>(static_cast<uintptr_t>(p));
}

size_t BytesArg(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsNumber()) ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " must be a number");
  double b = v.As<Napi::Number>().DoubleValue();
  if (!(b >= 0) || b != static_cast<double>(static_cast<uint64_t>(b)) || b > 9007199254740991.0) {
    ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " must be a non-negative integer");
  }
  return static_cast<size_t>(b);
}

Napi::Uint8Array BytesView(Napi::Env env, Napi::Value v, const char* what) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    ThrowError(env, "SC_INVALID_ARGUMENT", std::string(what) + " must be a Uint8Array");
  }
  return v.As<Napi::Uint8Array>();
}

Napi::Value BigPtr(Napi::Env env, void* p) {
  return Napi::BigInt::New(env, static_cast<uint64_t>(reinterpret_cast<uintptr_t>(p)));
}

// One copy or memset, on its own non-blocking stream, waited for on a
// libuv pool thread.
class StreamWork : public Napi::AsyncWorker {
 public:
  enum class Kind { kToHost, kToDevice, kMemset };

  StreamWork(Napi::Env env, Kind kind, int device, void* device_ptr, Napi::Value host, void* host_ptr,
             size_t bytes, int value)
      : Napi::AsyncWorker(env, "sidecar:cuda"),
        deferred_(Napi::Promise::Deferred::New(env)),
        kind_(kind),
        device_(device),
        device_ptr_(device_ptr),
        host_ptr_(host_ptr),
        bytes_(bytes),
        value_(value) {
    if (!host.IsEmpty()) host_ref_ = Napi::Persistent(host);
  }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override {
    const cuda::Api& api = *cuda::GetApi();
    cuda::Stream stream = nullptr;
    if (!Step(api.SetDevice(device_), "cudaSetDevice")) return;
    if (!Step(api.StreamCreateWithFlags(&stream, cuda::kStreamNonBlocking), "cudaStreamCreateWithFlags")) return;
    cuda::Error err = 0;
    const char* what = "";
    switch (kind_) {
      case Kind::kToHost:
        what = "cudaMemcpyAsync (device to host)";
        err = api.MemcpyAsync(host_ptr_, device_ptr_, bytes_, cuda::kMemcpyDeviceToHost, stream);
        break;
      case Kind::kToDevice:
        what = "cudaMemcpyAsync (host to device)";
        err = api.MemcpyAsync(device_ptr_, host_ptr_, bytes_, cuda::kMemcpyHostToDevice, stream);
        break;
      case Kind::kMemset:
        what = "cudaMemsetAsync";
        err = api.MemsetAsync(device_ptr_, value_, bytes_, stream);
        break;
    }
    if (err == 0) {
      err = api.StreamSynchronize(stream);
      what = "cudaStreamSynchronize";
    }
    cuda::Error destroy = api.StreamDestroy(stream);
    if (Step(err, what)) Step(destroy, "cudaStreamDestroy");
  }

  void OnOK() override {
    host_ref_.Reset();
    deferred_.Resolve(Env().Undefined());
  }

  void OnError(const Napi::Error& e) override {
    host_ref_.Reset();
    deferred_.Reject(MakeError(Env(), "SC_CUDA", e.Message(), nullptr, error_).Value());
  }

 private:
  bool Step(cuda::Error err, const char* what) {
    if (err == 0) return true;
    error_ = err;
    SetError(std::string(what) + " failed: " + cuda::ErrorText(err));
    return false;
  }

  Napi::Promise::Deferred deferred_;
  Kind kind_;
  int device_;
  void* device_ptr_;
  void* host_ptr_;
  size_t bytes_;
  int value_;
  Napi::Reference<Napi::Value> host_ref_;
  cuda::Error error_ = 0;
};

Napi::Value Availability(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Availability& a = cuda::GetAvailability();
  Napi::Object o = Napi::Object::New(env);
  o.Set("available", Napi::Boolean::New(env, a.available));
  o.Set("reason", Napi::String::New(env, a.reason));
  o.Set("deviceCount", Napi::Number::New(env, a.device_count));
  o.Set("library", a.library.empty() ? env.Null() : Napi::String::New(env, a.library));
  return o;
}

Napi::Value Malloc(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Api& api = RequireCuda(env);
  int device = DeviceArg(env, info);
  size_t bytes = BytesArg(env, info[1], "bytes");
  if (bytes == 0) ThrowError(env, "SC_INVALID_ARGUMENT", "bytes must be positive");
  Check(env, api.SetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  Check(env, api.Malloc(&p, bytes), "cudaMalloc");
  return BigPtr(env, p);
}

Napi::Value Free(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Api& api = RequireCuda(env);
  int device = DeviceArg(env, info);
  void* p = PtrArg(env, info[1], "ptr");
  Check(env, api.SetDevice(device), "cudaSetDevice");
  Check(env, api.Free(p), "cudaFree");
  return env.Undefined();
}

Napi::Value IpcGetHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Api& api = RequireCuda(env);
  int device = DeviceArg(env, info);
  void* p = PtrArg(env, info[1], "ptr");
  Check(env, api.SetDevice(device), "cudaSetDevice");
  cuda::IpcMemHandle h{};
  Check(env, api.IpcGetMemHandle(&h, p), "cudaIpcGetMemHandle");
  Napi::Uint8Array out = Napi::Uint8Array::New(env, sizeof h);
  memcpy(out.Data(), &h, sizeof h);
  return out;
}

Napi::Value IpcOpenHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Api& api = RequireCuda(env);
  int device = DeviceArg(env, info);
  Napi::Uint8Array bytes = BytesView(env, info[1], "handle");
  if (bytes.ByteLength() != sizeof(cuda::IpcMemHandle)) {
    ThrowError(env, "SC_INVALID_ARGUMENT", "an IPC handle is exactly 64 bytes");
  }
  cuda::IpcMemHandle h;
  memcpy(&h, bytes.Data(), sizeof h);
  Check(env, api.SetDevice(device), "cudaSetDevice");
  void* p = nullptr;
  Check(env, api.IpcOpenMemHandle(&p, h, cuda::kIpcMemLazyEnablePeerAccess), "cudaIpcOpenMemHandle");
  return BigPtr(env, p);
}

Napi::Value IpcCloseHandle(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const cuda::Api& api = RequireCuda(env);
  int device = DeviceArg(env, info);
  void* p = PtrArg(env, info[1], "ptr");
  Check(env, api.SetDevice(device), "cudaSetDevice");
  Check(env, api.IpcCloseMemHandle(p), "cudaIpcCloseMemHandle");
  return env.Undefined();
}

Napi::Value Queue(StreamWork* work) {
  Napi::Promise p = work->Promise();
  work->Queue();
  return p;
}

// copyToHost(device, src: bigint, dst: Uint8Array): Promise<void>
Napi::Value CopyToHost(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireCuda(env);
  int device = DeviceArg(env, info);
  void* src = PtrArg(env, info[1], "src");
  Napi::Uint8Array dst = BytesView(env, info[2], "dst");
  return Queue(new StreamWork(env, StreamWork::Kind::kToHost, device, src, dst, dst.Data(), dst.ByteLength(), 0));
}

// copyToDevice(device, src: Uint8Array, dst: bigint): Promise<void>
Napi::Value CopyToDevice(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireCuda(env);
  int device = DeviceArg(env, info);
  Napi::Uint8Array src = BytesView(env, info[1], "src");
  void* dst = PtrArg(env, info[2], "dst");
  return Queue(new StreamWork(env, StreamWork::Kind::kToDevice, device, dst, src, src.Data(), src.ByteLength(), 0));
}

// memset(device, ptr: bigint, value: number, bytes: number): Promise<void>
Napi::Value Memset(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  RequireCuda(env);
  int device = DeviceArg(env, info);
  void* p = PtrArg(env, info[1], "ptr");
  if (info.Length() < 3 || !info[2].IsNumber()) ThrowError(env, "SC_INVALID_ARGUMENT", "value must be a number");
  int value = info[2].As<Napi::Number>().Int32Value() & 0xff;
  size_t bytes = BytesArg(env, info[3], "bytes");
  return Queue(new StreamWork(env, StreamWork::Kind::kMemset, device, p, Napi::Value(), nullptr, bytes, value));
}

}  // namespace

Napi::Object InitCuda(Napi::Env env) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("availability", Napi::Function::New(env, Availability, "availability"));
  o.Set("malloc", Napi::Function::New(env, Malloc, "malloc"));
  o.Set("free", Napi::Function::New(env, Free, "free"));
  o.Set("ipcGetHandle", Napi::Function::New(env, IpcGetHandle, "ipcGetHandle"));
  o.Set("ipcOpenHandle", Napi::Function::New(env, IpcOpenHandle, "ipcOpenHandle"));
  o.Set("ipcCloseHandle", Napi::Function::New(env, IpcCloseHandle, "ipcCloseHandle"));
  o.Set("copyToHost", Napi::Function::New(env, CopyToHost, "copyToHost"));
  o.Set("copyToDevice", Napi::Function::New(env, CopyToDevice, "copyToDevice"));
  o.Set("memset", Napi::Function::New(env, Memset, "memset"));
  return o;
}

}  // namespace sidecar
