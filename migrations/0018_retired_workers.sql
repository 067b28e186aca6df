-- A worker can be retired for good (RetireWorker): its machine may then register again. A retired
-- worker's GPUs no longer count as registered, so the new worker holding them is no duplicate.
ALTER TABLE workers DROP CONSTRAINT workers_state_check;
ALTER TABLE workers ADD CONSTRAINT workers_state_check
  CHECK (state IN ('PENDING_VERIFICATION', 'ACTIVE', 'DRAINING', 'OFFLINE', 'QUARANTINED', 'RETIRED'));
ALTER TABLE workers ADD COLUMN retired_at timestamptz;
