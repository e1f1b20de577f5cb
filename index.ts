/**
 * Sidecar: moves tensors and small objects between GPU task executors.
 *
 * @example
 * import { Sidecar, Tensor } from "sidecar";
 * const sc = await Sidecar.connect({ rank: 0, group: [0], sendTensor: { dtype: "bfloat16", shape: [-1, 4096] } });
 */
export { Sidecar } from "./client/sidecar.js";
export { MockSidecar } from "./client/mock.js";
export type {
  SidecarClient, SidecarOptions, SendOptions, RecvOptions, SendData, RecvValue, SmallObject, TensorHint, DeviceTensor,
} from "./client/api.js";
export { Tensor, type TensorSpec } from "./core/tensor.js";
export { DTYPES, type Dtype } from "./core/dtype.js";
export * from "./core/errors.js";
export { SidecarServer } from "./server/server.js";
export { loadServerConfig, type ServerConfig } from "./server/config.js";
export { copyToDevice, type DeviceCopy } from "./client/device.js";
export { cuda, type CudaAvailability } from "./native/ucx-cuda/index.js";
