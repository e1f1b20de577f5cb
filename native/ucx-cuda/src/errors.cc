#include "errors.h"

#include <cerrno>
#include <cstring>

namespace sidecar {

Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message,
                      const char* status, double number) {
  Napi::Error err = Napi::Error::New(env, message);
  err.Set("code", Napi::String::New(env, code));
  if (status != nullptr) err.Set("status", Napi::String::New(env, status));
  if (number != 0) err.Set("number", Napi::Number::New(env, number));
  return err;
}

void ThrowError(Napi::Env env, const char* code, const std::string& message,
                const char* status, double number) {
  throw MakeError(env, code, message, status, number);
}

std::string ErrnoMessage(int err) {
  char buf[256];
  // GNU strerror_r returns a pointer that may or may not be buf.
  const char* msg = strerror_r(err, buf, sizeof buf);
  return std::string(msg);
}

}  // namespace sidecar
