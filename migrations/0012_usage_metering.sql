-- What the worker's GPU sampler (NVML) measured with each usage report: mean utilization (ppm),
-- peak memory (MiB) and energy (mJ). Informational for customers and the network's view of a
-- worker; billing stays by gpu_ms, and the Merkle leaf encoding does not include them.
ALTER TABLE usage_reports
  ADD COLUMN avg_gpu_utilization_ppm int NOT NULL DEFAULT 0 CHECK (avg_gpu_utilization_ppm BETWEEN 0 AND 1000000),
  ADD COLUMN peak_gpu_memory_mib bigint NOT NULL DEFAULT 0 CHECK (peak_gpu_memory_mib >= 0),
  ADD COLUMN energy_mj bigint NOT NULL DEFAULT 0 CHECK (energy_mj >= 0);
