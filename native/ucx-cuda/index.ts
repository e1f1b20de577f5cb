/**
 * The native data plane's typed surface. The rest of the runtime imports
 * only from here, never the raw binding.
 */
export { SlabMapping } from "./slab.js";
export { UcxWorker, UcxEndpoint, ucxVersion } from "./ucx.js";
export { cuda, type CudaAvailability } from "./cuda.js";
export { loadBinding, packageRoot } from "./loader.js";
