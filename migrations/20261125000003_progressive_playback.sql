-- Each attempt writes (and, once playable, serves) its HLS output under
-- videos/{video_id}/{attempt_key}/: a key unique to the attempt, so a retried
-- or canceled attempt never shares a URL with another one's segments.
ALTER TABLE jobs
    ADD COLUMN attempt_key text,
    ADD COLUMN playable_at timestamptz;
