{
  "targets": [
    {
      "target_name": "sidecar_native",
      "sources": [
        "src/addon.cc",
        "src/errors.cc",
        "src/slab.cc",
        "src/ucx_status.cc",
        "src/ucx_request.cc",
        "src/ucx_worker.cc",
        "src/ucx_endpoint.cc",
        "src/cuda_runtime.cc",
        "src/cuda_binding.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags": ["<!@(node scripts/find-deps.mjs cflags)"],
      "libraries": ["<!@(node scripts/find-deps.mjs libs)"],
      "ldflags": ["<!@(node scripts/find-deps.mjs ldflags)"]
    }
  ]
}
