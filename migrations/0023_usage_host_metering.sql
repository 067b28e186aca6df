-- The host's share of a container job's usage (issue 18): CPU time and peak memory from its cgroup,
-- reported with each signed usage report and shown per attempt on the invoice. Informational, like
-- the GPU figures of 0012: billing stays by GPU-ms.
ALTER TABLE usage_reports
  ADD COLUMN cpu_ms bigint NOT NULL DEFAULT 0 CHECK (cpu_ms >= 0),
  ADD COLUMN peak_memory_mib bigint NOT NULL DEFAULT 0 CHECK (peak_memory_mib >= 0);
