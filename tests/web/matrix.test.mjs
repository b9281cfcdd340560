// The media matrix in a real browser: what the worker makes of a rotated phone clip, an HDR (PQ)
// clip, a 120 fps clip, an MP3 with a cover and a clip with three audio languages and two subtitle
// languages plays in headless Chromium through hls.js (the page's own copy), with the picture the
// right way up and tone mapped, and the subtitles' cues at their times. Shaka Player and video.js
// (npm devDependencies here, put into the page by Playwright) list, switch and show the same
// audio and subtitle tracks, read the storyboard (Shaka as thumbnails, video.js as a metadata
// track), and list and show a caption added through the API. The ffprobe-level checks of
// every case are in worker/tests/it/media_matrix.rs; this proves a browser agrees. Run by
// scripts/web-test.sh, which starts the stack and sets PROSTREAM_URL and MATRIX_DIR.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const { PROSTREAM_URL, PROSTREAM_API_KEY, MATRIX_DIR } = process.env;
const AUTH = { authorization: `Bearer ${PROSTREAM_API_KEY}` };
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let browser;
const videos = {};

async function upload(name) {
  const body = await readFile(`${MATRIX_DIR}/${name}`);
  const res = await fetch(`${PROSTREAM_URL}/v1/videos?title=${name}`, {
    method: "POST", headers: { "content-type": "application/octet-stream", ...AUTH }, body,
  });
  const text = await res.text();
  assert.equal(res.status, 202, `${name}: ${text}`);
  return JSON.parse(text).id;
}

async function ready(id) {
  const deadline = Date.now() + 180_000;
  for (;;) {
    const video = await (await fetch(`${PROSTREAM_URL}/v1/videos/${id}`, { headers: AUTH })).json();
    if (video.status === "ready") return video;
    assert.notEqual(video.status, "failed", JSON.stringify(video.error));
    assert.ok(Date.now() < deadline, `${id} still ${video.status}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run",
           "--autoplay-policy=no-user-gesture-required"],
  });
  const names = ["portrait.mp4", "pq.mp4", "fast.mp4", "song.mp3", "languages.mkv"];
  const ids = await Promise.all(names.map(upload));
  for (const [i, name] of names.entries()) videos[name] = await ready(ids[i]);
});

after(async () => browser && browser.close());

// Plays the master through hls.js for a second and a half; reports what the element saw, and the
// mean RGB of each quadrant of the picture then.
async function play(video) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(PROSTREAM_URL); // for the page's hls.js
  const seen = await page.evaluate(async (src) => {
    const el = document.createElement("video");
    el.muted = true;
    document.body.append(el);
    const hls = new Hls();
    const fatal = [];
    hls.on(Hls.Events.ERROR, (_, d) => d.fatal && fatal.push(d.details));
    hls.loadSource(src);
    hls.attachMedia(el);
    await new Promise((r) => hls.on(Hls.Events.MANIFEST_PARSED, r));
    await el.play();
    const deadline = Date.now() + 30_000;
    while (el.currentTime < 1.5 && !el.error && !fatal.length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    el.pause();
    const [w, h] = [el.videoWidth, el.videoHeight];
    const quadrants = [];
    if (w && h) {
      const canvas = document.createElement("canvas");
      [canvas.width, canvas.height] = [w, h];
      const ctx = canvas.getContext("2d");
      ctx.drawImage(el, 0, 0);
      for (const [x, y] of [[0, 0], [w / 2, 0], [0, h / 2], [w / 2, h / 2]]) {
        const px = ctx.getImageData(x, y, w / 2, h / 2).data;
        const sum = [0, 0, 0];
        for (let i = 0; i < px.length; i += 4) for (let c = 0; c < 3; c++) sum[c] += px[i + c];
        quadrants.push(sum.map((s) => Math.round(s / (px.length / 4))));
      }
    }
    return { time: el.currentTime, error: el.error && el.error.message, fatal, w, h, quadrants };
  }, PROSTREAM_URL + video.playback.hls);
  await page.close();
  assert.deepEqual(errors, []);
  assert.deepEqual(seen.fatal, [], JSON.stringify(seen));
  assert.equal(seen.error, null);
  assert.ok(seen.time >= 1.5, `stalled at ${seen.time}`);
  return seen;
}

const red = ([r, g, b]) => r > 180 && g < 80 && b < 80;

test("a phone clip stored landscape with a 90° flag plays portrait, the right way round",
  { timeout: 60_000 }, async () => {
    const seen = await play(videos["portrait.mp4"]);
    assert.ok(seen.h > seen.w, `${seen.w}x${seen.h}`);
    // The stored top-left corner is red; turned 90° clockwise it is the top-right quadrant.
    assert.deepEqual(seen.quadrants.map(red), [false, true, false, false],
      JSON.stringify(seen.quadrants));
  });

test("an HDR (PQ) clip plays tone mapped, not washed out", { timeout: 60_000 }, async () => {
  const seen = await play(videos["pq.mp4"]);
  // A 90-nit PQ grey: reinterpreted as SDR it would show as RGB 128; tone mapped it is near white.
  for (const q of seen.quadrants) for (const c of q) assert.ok(c > 190, JSON.stringify(seen.quadrants));
});

test("a 120 fps clip plays at 60", { timeout: 60_000 }, async () => {
  const seen = await play(videos["fast.mp4"]);
  assert.ok(seen.w > 0);
  const master = await (await fetch(PROSTREAM_URL + videos["fast.mp4"].playback.hls)).text();
  assert.match(master, /FRAME-RATE=60(\.0+)?\n/);
});

test("an MP3 with a cover plays as audio, with the cover as poster", { timeout: 60_000 }, async () => {
  const video = videos["song.mp3"];
  const seen = await play(video);
  assert.equal(seen.w, 0, "no picture in an audio rendition");
  const poster = await fetch(PROSTREAM_URL + video.playback.poster);
  assert.equal(poster.headers.get("content-type"), "image/jpeg");
});

test("every audio language is an audio track hls.js lists and switches to", { timeout: 60_000 },
  async () => {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(PROSTREAM_URL); // for the page's hls.js
    const seen = await page.evaluate(async (src) => {
      const el = document.createElement("video");
      el.muted = true;
      document.body.append(el);
      const hls = new Hls();
      const fatal = [];
      hls.on(Hls.Events.ERROR, (_, d) => d.fatal && fatal.push(d.details));
      hls.loadSource(src);
      hls.attachMedia(el);
      await new Promise((r) => hls.on(Hls.Events.MANIFEST_PARSED, r));
      await el.play();
      const waitFor = async (done) => {
        const deadline = Date.now() + 20_000;
        while (!done() && !el.error && !fatal.length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 100));
        }
      };
      // hls.js lists the tracks of the playing level's audio group once a level is loading.
      await waitFor(() => el.currentTime >= 0.5);
      const tracks = hls.audioTracks.map((t) => ({ lang: t.lang, name: t.name, default: t.default,
        characteristics: t.attrs.CHARACTERISTICS || null }));
      const startedWith = hls.audioTrack;
      const switched = new Promise((r) => hls.on(Hls.Events.AUDIO_TRACK_SWITCHED, (_, d) => r(d.id)));
      hls.audioTrack = 0;
      const switchedTo = await Promise.race([switched, new Promise((r) => setTimeout(() => r(null), 10_000))]);
      const at = el.currentTime;
      await waitFor(() => el.currentTime >= at + 1);
      return { tracks, startedWith, switchedTo, time: el.currentTime, at,
        error: el.error && el.error.message, fatal };
    }, PROSTREAM_URL + videos["languages.mkv"].playback.hls);
    await page.close();
    assert.deepEqual(errors, []);
    assert.deepEqual(seen.fatal, [], JSON.stringify(seen));
    assert.deepEqual(seen.tracks, [
      { lang: "en", name: "English", default: false, characteristics: null },
      { lang: "fr", name: "Français", default: true, characteristics: null },
      { lang: "en", name: "English (audio description)", default: false,
        characteristics: "public.accessibility.describes-video" },
    ]);
    assert.equal(seen.startedWith, 1, "the source's default track (French) plays first");
    assert.equal(seen.switchedTo, 0, JSON.stringify(seen));
    assert.ok(seen.time >= seen.at + 1, `stalled after switching: ${JSON.stringify(seen)}`);
  });

test("every subtitle language is a text track hls.js lists, and its cue shows at its time",
  { timeout: 60_000 }, async () => {
    const page = await browser.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(PROSTREAM_URL); // for the page's hls.js
    const seen = await page.evaluate(async (src) => {
      const el = document.createElement("video");
      el.muted = true;
      document.body.append(el);
      const hls = new Hls();
      const fatal = [];
      hls.on(Hls.Events.ERROR, (_, d) => d.fatal && fatal.push(d.details));
      hls.loadSource(src);
      hls.attachMedia(el);
      await new Promise((r) => hls.on(Hls.Events.MANIFEST_PARSED, r));
      const tracks = hls.subtitleTracks.map((t) => ({ lang: t.lang, name: t.name,
        default: t.default, forced: t.forced }));
      hls.subtitleDisplay = true;
      hls.subtitleTrack = 1; // French
      await el.play();
      const waitFor = async (done) => {
        const deadline = Date.now() + 20_000;
        while (!done() && !el.error && !fatal.length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const showing = () => [...el.textTracks].find((t) => t.mode === "showing");
      await waitFor(() => el.currentTime >= 1.2 && showing() && showing().activeCues.length > 0);
      const track = showing();
      const cue = track && track.activeCues[0];
      const firstFrame = el.buffered.length ? el.buffered.start(0) : null;
      const at = el.currentTime;
      el.pause();
      return { tracks, at, firstFrame, label: track && track.label,
        language: track && track.language, text: cue && cue.text,
        start: cue && cue.startTime, end: cue && cue.endTime,
        error: el.error && el.error.message, fatal };
    }, PROSTREAM_URL + videos["languages.mkv"].playback.hls);
    // The picture with the cue on it, not the page above.
    await page.locator("video").last().screenshot({ path: `${process.env.ARTIFACTS}/matrix-subtitles-hlsjs.png` });
    await page.close();
    console.log("hls.js subtitles:", JSON.stringify(seen));
    assert.deepEqual(errors, []);
    assert.deepEqual(seen.fatal, [], JSON.stringify(seen));
    assert.deepEqual(seen.tracks, [
      { lang: "en", name: "English", default: false, forced: false },
      { lang: "fr", name: "Français", default: false, forced: false },
    ]);
    assert.equal(seen.language, "fr", JSON.stringify(seen));
    assert.equal(seen.text, "Bonjour des sous-titres", JSON.stringify(seen));
    // The cue spans 0.5–2.5 s of the source: where the picture's first frame is, plus that.
    assert.ok(Math.abs(seen.start - (seen.firstFrame + 0.5)) < 0.05, JSON.stringify(seen));
    assert.ok(Math.abs(seen.end - (seen.firstFrame + 2.5)) < 0.05, JSON.stringify(seen));
  });

// Another player in the page: its script from tests/web/node_modules, served by Playwright
// (none: the page's own hls.js).
async function pageWith(script) {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(PROSTREAM_URL);
  if (script) await page.addScriptTag({ path: fileURLToPath(new URL(`node_modules/${script}`, import.meta.url)) });
  return { page, errors };
}

// What both other players must show of languages.mkv: its three audio tracks, a switch from the
// one playing to another (English or French) with playback going on, its two subtitle tracks, and
// the French cue (0.5–2.5 s of the source, so from the first frame plus that) on screen at 1.2 s.
function assertTracksAndCue(player, seen) {
  assert.deepEqual(seen.fatal, [], JSON.stringify(seen));
  assert.deepEqual(seen.audio.map((t) => [t.language, t.label]).sort(), [
    ["en", "English"], ["en", "English (audio description)"], ["fr", "Français"],
  ].sort(), `${player}: ${JSON.stringify(seen)}`);
  assert.notEqual(seen.target, seen.startedWith, JSON.stringify(seen));
  assert.equal(seen.switchedTo, seen.target, `${player}: ${JSON.stringify(seen)}`);
  assert.ok(seen.afterSwitch >= seen.switchedAt + 0.5, `${player} stalled after switching: ${JSON.stringify(seen)}`);
  assert.deepEqual(seen.text.map((t) => [t.language, t.label]), [["en", "English"], ["fr", "Français"]],
    `${player}: ${JSON.stringify(seen)}`);
  assert.equal(seen.cue, "Bonjour des sous-titres", `${player}: ${JSON.stringify(seen)}`);
  assert.ok(Math.abs(seen.start - (seen.firstFrame + 0.5)) < 0.1, `${player}: ${JSON.stringify(seen)}`);
}

test("Shaka Player lists and switches the audio tracks, lists the subtitles and shows a cue",
  { timeout: 60_000 }, async () => {
    const { page, errors } = await pageWith("shaka-player/dist/shaka-player.compiled.js");
    const seen = await page.evaluate(async (src) => {
      const el = document.createElement("video");
      el.muted = true;
      document.body.append(el);
      shaka.polyfill.installAll();
      const player = new shaka.Player();
      const fatal = [];
      player.addEventListener("error", (e) => fatal.push(e.detail && e.detail.code));
      await player.attach(el);
      await player.load(src);
      const audio = player.getAudioTracks().map((t) => ({ language: t.language, label: t.label }));
      // Shaka starts with the browser's language (preferredAudio), not DEFAULT=YES, which it
      // reads as "primary".
      const primary = player.getAudioTracks().filter((t) => t.primary).map((t) => t.label);
      const activeAudio = () => (player.getAudioTracks().find((t) => t.active) || {}).label;
      const startedWith = activeAudio();
      const text = player.getTextTracks().map((t) => ({ language: t.language, label: t.label }));
      player.selectTextTrack(player.getTextTracks().find((t) => t.language === "fr"));
      await el.play();
      const waitFor = async (done) => {
        const deadline = Date.now() + 20_000;
        while (!done() && !el.error && !fatal.length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const showing = () => [...el.textTracks].find((t) => t.mode === "showing" && t.activeCues
        && t.activeCues.length);
      await waitFor(() => el.currentTime >= 1.2 && showing());
      const cue = showing() && showing().activeCues[0];
      const firstFrame = el.buffered.length ? el.buffered.start(0) : null;
      const target = startedWith === "English" ? "Français" : "English";
      player.selectAudioTrack(player.getAudioTracks().find((t) => t.label === target));
      await waitFor(() => activeAudio() === target);
      const switchedAt = el.currentTime;
      await waitFor(() => el.currentTime >= switchedAt + 0.5 || el.ended);
      return { audio, primary, startedWith, target, text, cue: cue && cue.text,
        start: cue && cue.startTime, firstFrame, switchedTo: activeAudio(), switchedAt,
        afterSwitch: el.currentTime, error: el.error && el.error.message, fatal };
    }, PROSTREAM_URL + videos["languages.mkv"].playback.hls);
    // The picture with the cue on it, not the page above.
    await page.locator("video").last().screenshot({ path: `${process.env.ARTIFACTS}/matrix-tracks-shaka.png` });
    await page.close();
    console.log("Shaka Player:", JSON.stringify(seen));
    assert.deepEqual(errors, []);
    assert.deepEqual(seen.primary, ["Français"], "the source's default track is Shaka's primary");
    assertTracksAndCue("Shaka Player", seen);
  });

test("video.js lists and switches the audio tracks, lists the subtitles and shows a cue",
  { timeout: 60_000 }, async () => {
    const { page, errors } = await pageWith("video.js/dist/video.min.js");
    const seen = await page.evaluate(async (src) => {
      const el = document.createElement("video");
      el.muted = true;
      document.body.append(el);
      // VHS (video.js's HLS engine) on MSE, not Chromium's own HLS: the same path in every browser.
      const player = videojs(el, { muted: true, html5: { vhs: { overrideNative: true },
        nativeAudioTracks: false, nativeVideoTracks: false } });
      const fatal = [];
      player.on("error", () => fatal.push(player.error() && player.error().message));
      player.src({ src, type: "application/x-mpegURL" });
      const waitFor = async (done) => {
        const deadline = Date.now() + 20_000;
        while (!done() && !fatal.length && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const list = (l) => Array.from({ length: l.length }, (_, i) => l[i]);
      const subtitles = () => list(player.textTracks()).filter((t) => t.kind === "subtitles");
      await waitFor(() => player.audioTracks().length === 3 && subtitles().length === 2);
      const audio = list(player.audioTracks()).map((t) => ({ language: t.language, label: t.label }));
      const activeAudio = () => (list(player.audioTracks()).find((t) => t.enabled) || {}).label;
      const startedWith = activeAudio();
      const text = subtitles().map((t) => ({ language: t.language, label: t.label }));
      subtitles().find((t) => t.language === "fr").mode = "showing";
      await player.play();
      const video = player.tech(true).el();
      const showing = () => subtitles().find((t) => t.mode === "showing" && t.activeCues
        && t.activeCues.length);
      await waitFor(() => player.currentTime() >= 1.2 && showing());
      const cue = showing() && showing().activeCues[0];
      const firstFrame = video.buffered.length ? video.buffered.start(0) : null;
      const target = startedWith === "English" ? "Français" : "English";
      list(player.audioTracks()).find((t) => t.label === target).enabled = true;
      const switchedAt = player.currentTime();
      await waitFor(() => player.currentTime() >= switchedAt + 0.5 || player.ended());
      return { audio, startedWith, target, text, cue: cue && cue.text,
        start: cue && cue.startTime, firstFrame, switchedTo: activeAudio(), switchedAt,
        afterSwitch: player.currentTime(), fatal };
    }, PROSTREAM_URL + videos["languages.mkv"].playback.hls);
    // The picture with the cue on it, not the page above.
    await page.locator("video").last().screenshot({ path: `${process.env.ARTIFACTS}/matrix-tracks-videojs.png` });
    await page.close();
    console.log("video.js:", JSON.stringify(seen));
    assert.deepEqual(errors, []);
    assert.equal(seen.startedWith, "Français", "the source's default track plays first");
    assertTracksAndCue("video.js", seen);
  });

// --- the storyboard in other players ---------------------------------------------------------------

// The storyboard track as the API wrote it: each cue's times and the sprite tile it names
// (`storyboard_N.jpg#xywh=x,y,w,h`, relative to the track's URL).
async function storyboardCues(url) {
  const res = await fetch(url);
  assert.equal(res.status, 200, url);
  const seconds = (t) => t.split(":").reduce((sum, part) => sum * 60 + Number(part), 0);
  const cues = [];
  for (const block of (await res.text()).split(/\n\n+/)) {
    const lines = block.trim().split("\n");
    const at = lines.findIndex((l) => l.includes("-->"));
    if (at < 0) continue;
    const [start, end] = lines[at].split("-->").map((t) => seconds(t.trim().split(" ")[0]));
    const [, file, x, y, w, h] = /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(lines[at + 1].trim());
    cues.push({ start, end, payload: lines[at + 1].trim(), image: new URL(file, url).href,
                x: +x, y: +y, w: +w, h: +h });
  }
  assert.ok(cues.length > 0, `no cue in ${url}`);
  return cues;
}

test("Shaka Player reads the storyboard as a thumbnails track: each moment's sprite sheet and tile",
  { timeout: 60_000 }, async () => {
    const video = videos["portrait.mp4"];
    const storyboard = new URL(video.playback.storyboard, PROSTREAM_URL).href;
    const cues = await storyboardCues(storyboard);
    const { page, errors } = await pageWith("shaka-player/dist/shaka-player.compiled.js");
    const seen = await page.evaluate(async ({ src, storyboard, times }) => {
      const el = document.createElement("video");
      el.muted = true;
      document.body.append(el);
      shaka.polyfill.installAll();
      const player = new shaka.Player();
      await player.attach(el);
      await player.load(src); // a thumbnails track needs the presentation's duration
      const track = await player.addThumbnailsTrack(storyboard, "text/vtt");
      const thumbnails = [];
      for (const time of times) {
        const t = await player.getThumbnails(track.id, time);
        // Not `segment`: a SegmentReference does not cross into Node.
        thumbnails.push(t && { time, uri: t.uris[0], x: t.positionX, y: t.positionY, w: t.width,
          h: t.height, start: t.startTime, sprite: t.sprite });
      }
      const images = player.getImageTracks().map((t) => ({ id: t.id, type: t.type }));
      await player.destroy();
      return { track: { id: track.id, type: track.type }, images, thumbnails };
    }, { src: PROSTREAM_URL + video.playback.hls, storyboard, times: cues.map((c) => (c.start + c.end) / 2) });
    await page.close();
    console.log("Shaka Player thumbnails:", JSON.stringify(seen));
    assert.deepEqual(errors, []);
    assert.equal(seen.track.type, "image");
    assert.ok(seen.images.some((t) => t.id === seen.track.id), JSON.stringify(seen.images));
    for (const [i, cue] of cues.entries()) {
      const t = seen.thumbnails[i];
      assert.ok(t, `no thumbnail at ${(cue.start + cue.end) / 2} s`);
      // The URI Shaka hands out keeps the cue's #xywh fragment; the tile is also in its fields.
      assert.equal(t.uri.split("#")[0], cue.image, JSON.stringify(t));
      assert.match(t.uri, /\/storyboard_\d+\.jpg(#xywh=\d+,\d+,\d+,\d+)?$/);
      assert.deepEqual([t.x, t.y, t.w, t.h, t.sprite], [cue.x, cue.y, cue.w, cue.h, true], JSON.stringify(t));
      assert.ok(Math.abs(t.start - cue.start) < 0.001, JSON.stringify(t));
    }
    // The sheet Shaka would draw from is a JPEG the API serves.
    const sheet = await fetch(seen.thumbnails[0].uri.split("#")[0]);
    assert.equal(sheet.headers.get("content-type"), "image/jpeg");
  });

test("video.js loads the storyboard as a metadata text track whose cues name the sprite tiles",
  { timeout: 60_000 }, async () => {
    const video = videos["portrait.mp4"];
    const storyboard = new URL(video.playback.storyboard, PROSTREAM_URL).href;
    const cues = await storyboardCues(storyboard);
    const { page, errors } = await pageWith("video.js/dist/video.min.js");
    const seen = await page.evaluate(async ({ src, storyboard }) => {
      const el = document.createElement("video");
      el.muted = true;
      document.body.append(el);
      const player = videojs(el, { muted: true, html5: { vhs: { overrideNative: true },
        nativeAudioTracks: false, nativeVideoTracks: false } });
      player.src({ src, type: "application/x-mpegURL" });
      await new Promise((r) => player.one("loadedmetadata", r));
      // A metadata track is never drawn; "hidden" has the browser load and parse it all the same.
      const trackEl = player.addRemoteTextTrack({ kind: "metadata", src: storyboard, mode: "hidden" }, false);
      const loaded = await new Promise((resolve) => {
        trackEl.addEventListener("load", () => resolve("load"), { once: true });
        trackEl.addEventListener("error", () => resolve("error"), { once: true });
      });
      const track = trackEl.track;
      const list = (l) => Array.from({ length: l.length }, (_, i) => l[i]);
      // VHS has a metadata track of its own ("segment-metadata"): ours is the remote one.
      const metadata = list(player.textTracks()).filter((t) => t.kind === "metadata").map((t) => t.label);
      return { loaded, kind: track.kind, mode: track.mode, metadata,
        listed: list(player.remoteTextTracks()).includes(track) && list(player.textTracks()).includes(track),
        cues: list(track.cues).map((c) => ({ start: c.startTime, end: c.endTime, text: c.text })) };
    }, { src: PROSTREAM_URL + video.playback.hls, storyboard });
    await page.close();
    console.log("video.js storyboard:", JSON.stringify({ ...seen, cues: seen.cues.slice(0, 2) }));
    assert.deepEqual(errors, []);
    assert.equal(seen.loaded, "load", JSON.stringify(seen));
    assert.equal(seen.kind, "metadata");
    assert.equal(seen.listed, true, `video.js does not list the track: ${JSON.stringify(seen.metadata)}`);
    assert.equal(seen.cues.length, cues.length, JSON.stringify(seen));
    for (const [i, cue] of cues.entries()) {
      const got = seen.cues[i];
      assert.match(got.text, /^storyboard_\d+\.jpg#xywh=\d+,\d+,\d+,\d+$/);
      assert.equal(got.text, cue.payload);
      assert.ok(Math.abs(got.start - cue.start) < 0.001 && Math.abs(got.end - cue.end) < 0.001,
        JSON.stringify([got, cue]));
    }
  });

// --- a caption added through the API, in every player ----------------------------------------------

// One cue from 0.5 s to 2.5 s of the 3 s clip, in a language and with a label the source has not.
const CAPTION = { language: "es", label: "Español (API)", kind: "captions",
  text: "Hola desde la API", srt: "1\n00:00:00,500 --> 00:00:02,500\nHola desde la API\n\n" };

// Each player, in the page: its subtitle tracks ({ language, label, kind }), then the one with
// the caption's language chosen and played until its cue shows at 1.2 s; what was on screen.
const captionIn = {
  hlsjs: async ({ src, language }) => {
    const el = document.createElement("video");
    el.muted = true;
    document.body.append(el);
    const hls = new Hls();
    const fatal = [];
    hls.on(Hls.Events.ERROR, (_, d) => d.fatal && fatal.push(d.details));
    hls.loadSource(src);
    hls.attachMedia(el);
    await new Promise((r) => hls.on(Hls.Events.MANIFEST_PARSED, r));
    const text = hls.subtitleTracks.map((t) => ({ language: t.lang, label: t.name,
      kind: t.attrs.CHARACTERISTICS || null }));
    hls.subtitleDisplay = true;
    hls.subtitleTrack = hls.subtitleTracks.findIndex((t) => t.lang === language);
    await el.play();
    return { text, ...await window.cueOnScreen(el, () => [...el.textTracks], () => fatal), fatal };
  },
  shaka: async ({ src, language }) => {
    const el = document.createElement("video");
    el.muted = true;
    document.body.append(el);
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    const fatal = [];
    player.addEventListener("error", (e) => fatal.push(e.detail && e.detail.code));
    await player.attach(el);
    // Chosen before load(), not with selectTextTrack() after it: Shaka holds a text segment until
    // a video segment is appended after the text track was chosen, and load() may have buffered
    // all of a 3 s clip by then (the cue never shows).
    player.configure({ preferredText: [{ language }] });
    await player.load(src);
    const text = player.getTextTracks().map((t) => ({ language: t.language, label: t.label, kind: t.kind }));
    await el.play();
    return { text, ...await window.cueOnScreen(el, () => [...el.textTracks], () => fatal), fatal };
  },
  videojs: async ({ src, language }) => {
    const el = document.createElement("video");
    el.className = "video-js";
    el.muted = true;
    document.body.append(el);
    // Its own style sheet and a size from the picture (fluid), so that the screenshot shows the cue.
    const player = videojs(el, { muted: true, fluid: true, html5: { vhs: { overrideNative: true },
      nativeAudioTracks: false, nativeVideoTracks: false } });
    const fatal = [];
    player.on("error", () => fatal.push(player.error() && player.error().message));
    player.src({ src, type: "application/x-mpegURL" });
    const list = (l) => Array.from({ length: l.length }, (_, i) => l[i]);
    const texts = () => list(player.textTracks()).filter((t) => t.kind === "subtitles" || t.kind === "captions");
    // VHS adds the master's subtitle renditions as text tracks once it has read the master.
    const deadline = Date.now() + 20_000;
    while (!texts().length && !fatal.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const text = texts().map((t) => ({ language: t.language, label: t.label, kind: t.kind }));
    const chosen = texts().find((t) => t.language === language);
    if (chosen) chosen.mode = "showing";
    await player.play();
    // video.js draws the text tracks itself (VHS on MSE): they are its list, not the element's.
    return { text, ...await window.cueOnScreen(player.tech(true).el(), () => list(player.textTracks()),
      () => fatal), fatal };
  },
};

// Waits (20 s at most) until the element is past 1.2 s with a showing track's cue active; the
// cue, and where the picture starts (the cue's times are the source's plus that).
function cueOnScreenScript() {
  window.cueOnScreen = async (el, tracks, fatal) => {
    const showing = () => tracks().find((t) => t.mode === "showing" && t.activeCues
      && t.activeCues.length);
    const deadline = Date.now() + 20_000;
    while (!(el.currentTime >= 1.2 && showing()) && !el.error && !fatal().length && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    const track = showing();
    const cue = track && track.activeCues[0];
    const firstFrame = el.buffered.length ? el.buffered.start(0) : null;
    el.pause();
    return { showing: track ? { language: track.language, label: track.label } : null,
      cue: cue && cue.text, start: cue && cue.startTime, end: cue && cue.endTime, firstFrame,
      time: el.currentTime, error: el.error && el.error.message };
  };
}

test("a caption added through the API is a subtitle track in hls.js, Shaka Player and video.js, with its cue at its time",
  { timeout: 120_000 }, async () => {
    const video = videos["portrait.mp4"];
    const { language, label, kind } = CAPTION;
    const res = await fetch(`${PROSTREAM_URL}/v1/videos/${video.id}/captions?`
      + new URLSearchParams({ language, label, kind }), {
      method: "POST", headers: { "content-type": "application/x-subrip", ...AUTH }, body: CAPTION.srt,
    });
    const added = await res.json();
    assert.equal(res.status, 201, JSON.stringify(added));
    const seen = {};
    try {
      const src = PROSTREAM_URL + video.playback.hls;
      for (const [player, script] of [["hlsjs", null], ["shaka", "shaka-player/dist/shaka-player.compiled.js"],
        ["videojs", "video.js/dist/video.min.js"]]) {
        const { page, errors } = await pageWith(script);
        // video.js lays its cues over the picture with its style sheet.
        if (player === "videojs") {
          await page.addStyleTag({ path: fileURLToPath(new URL("node_modules/video.js/dist/video-js.min.css", import.meta.url)) });
        }
        await page.evaluate(cueOnScreenScript);
        seen[player] = await page.evaluate(captionIn[player], { src, language });
        seen[player].errors = errors;
        // The picture with the cue on it; video.js draws cues in its player's box (the element's
        // parent), not in the element.
        const picture = page.locator("video").last();
        await (player === "videojs" ? picture.locator("..") : picture)
          .screenshot({ path: `${process.env.ARTIFACTS}/matrix-caption-${player}.png` });
        await page.close();
        console.log(`${player} caption:`, JSON.stringify(seen[player]));
      }
    } finally {
      // The matrix video as it was: the other tests read its master.
      const gone = await fetch(`${PROSTREAM_URL}/v1/videos/${video.id}/captions/${added.id}`,
        { method: "DELETE", headers: AUTH });
      assert.equal(gone.status, 204);
    }
    for (const [player, s] of Object.entries(seen)) {
      const why = `${player}: ${JSON.stringify(s)}`;
      assert.deepEqual(s.errors, [], why);
      assert.deepEqual(s.fatal, [], why);
      // The clip has no subtitles of its own: the caption is the one track.
      assert.deepEqual(s.text.map((t) => [t.language, t.label]), [[language, label]], why);
      assert.deepEqual(s.showing, { language, label }, why);
      assert.equal(s.cue, CAPTION.text, why);
      assert.ok(Math.abs(s.start - (s.firstFrame + 0.5)) < 0.1, why);
      assert.ok(Math.abs(s.end - (s.firstFrame + 2.5)) < 0.1, why);
    }
  });
