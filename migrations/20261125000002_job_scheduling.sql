-- When a queued job may run (retry backoff) and when it was last pushed to Redis
-- (the reconciler re-pushes queued jobs nobody has claimed for a while).
ALTER TABLE jobs
    ADD COLUMN run_after timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN pushed_at timestamptz;

UPDATE jobs SET pushed_at = queued_at WHERE state = 'queued';

CREATE INDEX jobs_processing_lease ON jobs (lease_expires_at) WHERE state = 'processing';
CREATE INDEX jobs_queued_run_after ON jobs (run_after) WHERE state = 'queued';
