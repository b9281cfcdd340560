-- Whether the ready attempt wrote a poster: a video's frame, or the cover of an audio-only file.
-- An audio file without a cover (or with one ffmpeg cannot read) has none.
ALTER TABLE jobs ADD COLUMN has_poster boolean NOT NULL DEFAULT false;

-- Before this column every ready video had a poster, and no audio-only one did.
UPDATE jobs j SET has_poster = true
FROM videos v
WHERE v.id = j.video_id AND j.state = 'ready' AND v.video_codec IS NOT NULL;
