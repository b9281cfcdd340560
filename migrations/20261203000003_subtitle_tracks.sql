-- Every text subtitle track of a source is an HLS subtitle rendition (segmented WebVTT, one
-- group every variant references). A rendition row is now a video rung, an audio track or a
-- subtitle track; subtitle tracks carry what the master playlist's EXT-X-MEDIA says, FORCED and
-- whether they are captions for the deaf and hard of hearing (CHARACTERISTICS) included.
ALTER TYPE rendition_kind ADD VALUE 'subtitles';

ALTER TABLE renditions
    ADD COLUMN forced boolean NOT NULL DEFAULT false,   -- FORCED=YES; subtitles only
    ADD COLUMN captions boolean NOT NULL DEFAULT false; -- SDH captions; subtitles only
