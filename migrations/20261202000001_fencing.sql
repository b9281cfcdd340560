-- Fencing by identity. Every claim of a job (a transcode attempt) and every take of a download
-- draws a fresh number from one sequence into `jobs.fence`; every write made on behalf of that
-- attempt or take is fenced by it. `attempts` counts the attempt budget and is reset by a retry,
-- so it can repeat and must not fence anything: after cancel → retry → claim the new attempt had
-- the old one's number, and the old one's writes landed on it. A sequence never repeats.
CREATE SEQUENCE job_fence AS bigint;

ALTER TABLE jobs ADD COLUMN fence bigint;
