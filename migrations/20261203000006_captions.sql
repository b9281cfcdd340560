-- Captions an owner adds after upload (POST /v1/videos/{id}/captions): each is kept here as one
-- normalised WebVTT file, so it outlives every attempt (a retry's worker writes it again) and
-- counts against the owner's storage quota like an original.
CREATE TYPE caption_kind AS ENUM ('subtitles', 'captions');

CREATE TABLE captions (
    id          uuid PRIMARY KEY,
    video_id    uuid NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
    language    text NOT NULL,
    label       text NOT NULL,
    kind        caption_kind NOT NULL,
    webvtt      text NOT NULL,
    cue_count   integer NOT NULL CHECK (cue_count > 0),
    size_bytes  bigint NOT NULL CHECK (size_bytes > 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- A player's menu tells the tracks apart by label (RFC 8216: NAME is unique in a group).
    UNIQUE (video_id, label)
);

-- The attempt whose master playlist is published and names the captions, and the media time
-- (90 kHz) cue time 0 maps to there: what the API needs to add or remove a caption track in that
-- master itself. Written by the worker with each master it publishes; another attempt's key
-- means the master is not up yet and the worker will name the captions when it is.
ALTER TABLE jobs
    ADD COLUMN master_attempt_key text,
    ADD COLUMN master_mpegts bigint CHECK (master_mpegts >= 0);

-- Endpoints may subscribe to the captions changing.
ALTER TABLE webhooks DROP CONSTRAINT webhooks_events_check;
ALTER TABLE webhooks ADD CONSTRAINT webhooks_events_check CHECK (
    cardinality(events) > 0
    AND events <@ ARRAY['video.ready', 'video.failed', 'video.canceled', 'video.playable',
                        'video.captions_changed']::text[]);
