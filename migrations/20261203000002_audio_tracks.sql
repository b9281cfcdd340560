-- Every audio track of a source is an alternate audio rendition (one HLS group that every video
-- rung references) instead of one track muxed into every rung. A rendition row is now a video
-- rung or an audio track; audio tracks carry what the master playlist's EXT-X-MEDIA says.
CREATE TYPE rendition_kind AS ENUM ('video', 'audio');

ALTER TABLE renditions
    ADD COLUMN kind rendition_kind NOT NULL DEFAULT 'video',
    ADD COLUMN language text,                               -- BCP 47 (en, und); audio only
    ADD COLUMN label text,                                  -- the player menu's NAME
    ADD COLUMN is_default boolean NOT NULL DEFAULT false,   -- DEFAULT=YES
    ADD COLUMN channels integer,
    ADD COLUMN describes_video boolean NOT NULL DEFAULT false;

-- Before this, an audio-only source had one rendition without a picture: its one audio track.
UPDATE renditions
SET kind = 'audio', language = 'und', label = 'Audio', is_default = true, channels = 2
WHERE width IS NULL;

-- What of the source the output does not carry (audio tracks past the cap, bitmap subtitles),
-- written with the renditions when the video becomes ready: [{index, kind, codec, language,
-- reason}].
ALTER TABLE videos ADD COLUMN dropped_streams jsonb NOT NULL DEFAULT '[]';
