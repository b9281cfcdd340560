-- What the ready attempt wrote beside the playlists: download.mp4 (the highest rung with the
-- default audio, remuxed), download.m4a (the default audio) and the storyboard (sprite sheets and
-- storyboard.vtt). Written with the renditions when the video becomes ready; the API offers them
-- (playback.downloads, playback.storyboard) only then.
ALTER TABLE videos
    ADD COLUMN download_video boolean NOT NULL DEFAULT false,
    ADD COLUMN download_audio boolean NOT NULL DEFAULT false,
    ADD COLUMN has_storyboard boolean NOT NULL DEFAULT false;
