-- Resumable uploads (tus 1.0): one row per upload, its bytes in MEDIA_ROOT/uploads/.tus/{id}.
-- `upload_offset` only moves forward after the bytes up to it are fsynced, so after a crash the file
-- may be longer than the offset (the excess is cut off at the next PATCH) but never shorter.
CREATE TABLE uploads (
    id                uuid PRIMARY KEY,
    upload_length     bigint NOT NULL CHECK (upload_length > 0),
    upload_offset     bigint NOT NULL DEFAULT 0 CHECK (upload_offset BETWEEN 0 AND upload_length),
    metadata          text,                       -- the Upload-Metadata header as the client sent it
    filename          text,
    title             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    -- Incomplete: when it is abandoned. Recorded: how long the row stays as a receipt (HEAD names the video).
    expires_at        timestamptz NOT NULL,
    -- Chosen when the last byte arrives, before the file moves to uploads/{reserved_video_id}; a
    -- completion interrupted by a crash finds the file at one of the two places and carries on.
    reserved_video_id uuid,
    -- Set in the transaction that inserts the video and its job.
    video_id          uuid UNIQUE REFERENCES videos (id) ON DELETE CASCADE,
    -- The lease of the request writing to (or completing, or deleting) the upload, across API replicas.
    lock_token        uuid,
    locked_until      timestamptz
);

CREATE INDEX uploads_expires_at ON uploads (expires_at);
