// Slab: one shared-memory file mapped into this process. The mapping is
// shared between the Slab object and the external ArrayBuffer that exposes
// it to JS, so it is unmapped only when close() is called (which detaches the
// buffer first, turning every view into a zero-length one) or when both are
// gone; JS views never point at unmapped memory.
#pragma once
#include <napi.h>

#include <memory>
#include <string>

namespace sidecar {

struct Mapping {
  void* addr = nullptr;
  size_t size = 0;
  ~Mapping();
  void Unmap();
};

class Slab : public Napi::ObjectWrap<Slab> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit Slab(const Napi::CallbackInfo& info);

  // Address and size for other native objects (UCX memory registration).
  void* addr() const { return mapping_ ? mapping_->addr : nullptr; }
  size_t size() const { return mapping_ ? mapping_->size : 0; }
  static Slab* Unwrap(Napi::Value v);

 private:
  Napi::Value Buffer(const Napi::CallbackInfo& info);
  Napi::Value Size(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  static Napi::Value UnlinkFile(const Napi::CallbackInfo& info);

  std::shared_ptr<Mapping> mapping_;
  Napi::Reference<Napi::ArrayBuffer> buffer_;
  bool closed_ = false;
};

}  // namespace sidecar
