/** Small helpers for the benchmarks: medians and percentiles of samples. */
export function percentile(samples: number[], p: number): number {
  const s = [...samples].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.round((p / 100) * (s.length - 1))))]!;
}

export const median = (samples: number[]) => percentile(samples, 50);


export const ms = (x: number) => `${x.toFixed(3)} ms`;
export const gbps = (bytes: number, msTime: number) => `${(bytes / msTime / 1e6).toFixed(2)} GB/s`;
