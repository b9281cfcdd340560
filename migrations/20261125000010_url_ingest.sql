-- URL ingest: a video can exist before its source does. Its job starts in
-- `downloading` (an API instance holds it with the same lease columns a worker
-- uses), and the source columns are filled in when the download has been
-- probed; only then does the job become `queued`.
ALTER TYPE job_state ADD VALUE IF NOT EXISTS 'downloading' BEFORE 'queued';

ALTER TABLE videos
    ALTER COLUMN source_path DROP NOT NULL,
    ALTER COLUMN size_bytes DROP NOT NULL,
    ALTER COLUMN format_name DROP NOT NULL,
    ALTER COLUMN duration_s DROP NOT NULL,
    ADD COLUMN source_url text;

-- A video past `downloading` has its source.
ALTER TABLE videos ADD CONSTRAINT videos_source_known
    CHECK (source_url IS NOT NULL OR (source_path IS NOT NULL AND size_bytes IS NOT NULL
                                      AND format_name IS NOT NULL AND duration_s IS NOT NULL));
