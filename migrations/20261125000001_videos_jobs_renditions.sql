-- One video per upload, one transcode job per video, one row per published rung.
-- The job's state is the video's status as the API reports it.

CREATE TYPE job_state AS ENUM ('queued', 'processing', 'ready', 'failed', 'canceled');
CREATE TYPE job_stage AS ENUM ('probing', 'transcoding', 'publishing');

CREATE TABLE videos (
    id                uuid PRIMARY KEY,            -- UUIDv7: time-ordered, so it doubles as the list cursor
    title             text NOT NULL CHECK (char_length(title) BETWEEN 1 AND 200),
    source_path       text NOT NULL,               -- relative to MEDIA_ROOT
    size_bytes        bigint NOT NULL CHECK (size_bytes > 0),
    format_name       text NOT NULL,
    duration_s        double precision NOT NULL CHECK (duration_s > 0),
    width             integer,
    height            integer,
    frame_rate        double precision,
    video_codec       text,
    audio_codec       text,
    created_at        timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE jobs (
    id                uuid PRIMARY KEY,
    video_id          uuid NOT NULL UNIQUE REFERENCES videos (id) ON DELETE CASCADE,
    state             job_state NOT NULL DEFAULT 'queued',
    stage             job_stage,
    progress          real NOT NULL DEFAULT 0 CHECK (progress BETWEEN 0 AND 100),
    attempts          integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts      integer NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    worker_id         text,
    lease_expires_at  timestamptz,
    error_code        text,
    error_message     text,
    queued_at         timestamptz NOT NULL DEFAULT now(),
    started_at        timestamptz,
    finished_at       timestamptz
);

CREATE INDEX jobs_state_queued_at ON jobs (state, queued_at);

CREATE TABLE renditions (
    video_id          uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    name              text NOT NULL,               -- e.g. 720p, or audio
    playlist          text NOT NULL,               -- file name under videos/{id}/
    width             integer,
    height            integer,
    bandwidth         bigint NOT NULL,             -- peak segment bitrate, bits/s
    average_bandwidth bigint NOT NULL,
    codecs            text NOT NULL,
    frame_rate        double precision,
    PRIMARY KEY (video_id, name)
);
