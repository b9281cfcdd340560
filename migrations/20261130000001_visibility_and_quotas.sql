-- Per-owner quotas. NULL means "the API's default" (QUOTA_MAX_BYTES, QUOTA_UPLOADS_PER_DAY), so an
-- operator changes everyone's limit with one setting and only the exceptions live here.
ALTER TABLE owners
    ADD COLUMN max_bytes bigint CHECK (max_bytes >= 0),
    ADD COLUMN max_uploads_per_day integer CHECK (max_uploads_per_day >= 0);

-- Uploads started per owner and UTC day. A counter rather than a count of videos: deleting a
-- video must not give an upload back, and refused uploads count too (they cost a probe).
CREATE TABLE upload_counts (
    owner_id uuid NOT NULL REFERENCES owners (id) ON DELETE CASCADE,
    day      date NOT NULL,
    count    integer NOT NULL CHECK (count >= 0),
    PRIMARY KEY (owner_id, day)
);

-- The visibility a resumable upload's video gets (NULL: the API's default).
ALTER TABLE uploads
    ADD COLUMN visibility text CHECK (visibility IN ('public', 'private'));

-- What the storage quota sums.
CREATE INDEX uploads_owner_id ON uploads (owner_id) WHERE video_id IS NULL;
