#include "slab.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"

namespace sidecar {

static const napi_type_tag kSlabTag = {0x5ca1ab1e0000a001ULL, 0x51dec4a55ab00001ULL};

Mapping::~Mapping() { Unmap(); }

void Mapping::Unmap() {
  if (addr != nullptr) {
    munmap(addr, size);
    addr = nullptr;
  }
}

Napi::Function Slab::Init(Napi::Env env) {
  return DefineClass(env, "Slab",
                     {
                         InstanceMethod("buffer", &Slab::Buffer),
                         InstanceMethod("size", &Slab::Size),
                         InstanceMethod("close", &Slab::Close),
                         StaticMethod("unlink", &Slab::UnlinkFile),
                     });
}

// new Slab(path, size, populate): opens or creates the file, grows it to at
// least `size` bytes (reserving the memory, so a full /dev/shm fails here and
// not later with SIGBUS) and maps the first `size` bytes shared.
Slab::Slab(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Slab>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsBoolean()) {
    ThrowError(env, "SC_INVALID_ARGUMENT", "Slab(path: string, size: number, populate: boolean)");
  }
  std::string path = info[0].As<Napi::String>().Utf8Value();
  double want = info[1].As<Napi::Number>().DoubleValue();
  bool populate = info[2].As<Napi::Boolean>().Value();
  if (!(want > 0) || want > 1e15) ThrowError(env, "SC_INVALID_ARGUMENT", "slab size must be a positive byte count");
  size_t size = static_cast<size_t>(want);

  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    int e = errno;
    ThrowError(env, "SC_SLAB_MAP", "cannot open slab file " + path + ": " + ErrnoMessage(e), strerrorname_np(e));
  }
  struct stat st;
  if (fstat(fd, &st) != 0) {
    int e = errno;
    close(fd);
    ThrowError(env, "SC_SLAB_MAP", "cannot stat slab file " + path + ": " + ErrnoMessage(e), strerrorname_np(e));
  }
  if (static_cast<size_t>(st.st_size) < size) {
    int rc = posix_fallocate(fd, 0, static_cast<off_t>(size));
    if (rc != 0) {
      close(fd);
      ThrowError(env, "SC_SLAB_MAP",
                 "cannot reserve " + std::to_string(size) + " bytes for slab file " + path + ": " + ErrnoMessage(rc) +
                     " (is /dev/shm large enough? lower SIDECAR_SHM_SIZE)",
                 strerrorname_np(rc));
    }
  }
  int flags = MAP_SHARED | (populate ? MAP_POPULATE : 0);
  void* addr = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, fd, 0);
  int e = errno;
  close(fd);
  if (addr == MAP_FAILED) {
    ThrowError(env, "SC_SLAB_MAP", "cannot map slab file " + path + ": " + ErrnoMessage(e), strerrorname_np(e));
  }
  mapping_ = std::make_shared<Mapping>();
  mapping_->addr = addr;
  mapping_->size = size;

  // The buffer's finalizer keeps its own share of the mapping.
  auto* share = new std::shared_ptr<Mapping>(mapping_);
  Napi::ArrayBuffer ab = Napi::ArrayBuffer::New(
      env, addr, size, [](Napi::Env, void*, std::shared_ptr<Mapping>* s) { delete s; }, share);
  buffer_ = Napi::Persistent(ab);
  info.This().As<Napi::Object>().TypeTag(&kSlabTag);
}

Slab* Slab::Unwrap(Napi::Value v) {
  if (!v.IsObject() || !v.As<Napi::Object>().CheckTypeTag(&kSlabTag)) return nullptr;
  return Napi::ObjectWrap<Slab>::Unwrap(v.As<Napi::Object>());
}

Napi::Value Slab::Buffer(const Napi::CallbackInfo& info) {
  if (closed_) ThrowError(info.Env(), "SC_SLAB_MAP", "slab is closed");
  return buffer_.Value();
}

Napi::Value Slab::Size(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(size()));
}

Napi::Value Slab::Close(const Napi::CallbackInfo& info) {
  if (!closed_) {
    closed_ = true;
    Napi::ArrayBuffer ab = buffer_.Value();
    if (!ab.IsDetached()) ab.Detach();
    buffer_.Reset();
    mapping_->Unmap();
  }
  return info.Env().Undefined();
}

// Slab.unlink(path): true when removed, false when it did not exist.
Napi::Value Slab::UnlinkFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsString()) ThrowError(env, "SC_INVALID_ARGUMENT", "Slab.unlink(path: string)");
  std::string path = info[0].As<Napi::String>().Utf8Value();
  if (unlink(path.c_str()) == 0) return Napi::Boolean::New(env, true);
  int e = errno;
  if (e == ENOENT) return Napi::Boolean::New(env, false);
  ThrowError(env, "SC_SLAB_MAP", "cannot remove slab file " + path + ": " + ErrnoMessage(e), strerrorname_np(e));
}

}  // namespace sidecar
