// The page at `/`, driven in headless Chromium: upload a clip with a title and a visibility, watch it
// become ready in the live list, play it (muted, with a hint; a click brings the sound), make it
// private and public again and copy its link; add captions in the player's panel, see them in the
// Subtitles menu and on the picture, and delete them; switch a video's own audio and subtitle
// tracks in the player's menus; refuse a .txt and a junk file with the API's problem;
// lay out at 390 px without overflowing. Every step is checked against what the API says. Run by
// scripts/web-test.sh, which starts the stack and sets PROSTREAM_URL, PROSTREAM_API_KEY, CLIP, JUNK,
// TXT and ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import {
  ARTIFACTS, AUTH, CLIP, JUNK, PROSTREAM_URL, TXT, api, launch, openPage, row, rowStatus, video, waitFor,
} from "./helpers.mjs";

let browser;
let clip; // the video the first test uploads, once ready

// The first test's clip, or (should that test have failed) any ready video: the media matrix's.
async function readyVideo() {
  if (clip) return clip;
  const { body } = await api("/v1/videos?status=ready&limit=1");
  assert.ok(body.items && body.items.length, "no ready video to work with");
  return body.items[0];
}
before(async () => { browser = await launch(); });
after(async () => browser && browser.close());

const TITLE = "Test card — uploaded from the page";

test("an uploaded clip keeps its title and visibility, turns ready in the live list, and plays muted with a hint until a click",
  { timeout: 240_000 }, async () => {
    const { page, done } = await openPage(browser);
    const segments = [];
    page.on("request", (r) => { if (r.url().endsWith(".m4s")) segments.push(new URL(r.url()).pathname); });

    // Every status the card's badge and the list's row showed, to check the percentages and
    // that the row moved on by itself.
    await page.evaluate(() => {
      window.statusesSeen = [];
      window.rowStatusesSeen = [];
      new MutationObserver(() => window.statusesSeen.push(document.getElementById("job-status").textContent))
        .observe(document.getElementById("job-status"), { childList: true, characterData: true, subtree: true });
      new MutationObserver(() => {
        for (const li of document.querySelectorAll("#recent li")) window.rowStatusesSeen.push(`${li.dataset.id} ${li.dataset.status}`);
      }).observe(document.getElementById("recent"), { childList: true, subtree: true, attributes: true });
    });
    await page.fill("#title", TITLE);
    await page.check('input[name="visibility"][value="public"]');
    const uploaded = page.waitForResponse((r) => r.url().includes("/v1/videos?") && r.request().method() === "POST");
    await page.setInputFiles("#file", CLIP);
    const response = await uploaded;
    assert.equal(response.status(), 202);
    assert.match(response.request().headers()["content-type"], /^multipart\/form-data/);
    const { id } = await response.json();

    // The API took the title and the visibility chosen in the page.
    const accepted = await video(id);
    assert.equal(accepted.title, TITLE);
    assert.equal(accepted.visibility, "public");

    // The bar follows the upload, then the job; the badge ends at "ready"; so does the list's row,
    // by itself, having shown the video in progress first.
    await page.waitForFunction(() => document.getElementById("job-status").textContent === "ready",
      null, { timeout: 180_000, polling: 250 });
    assert.equal(await page.locator("#bar").getAttribute("value"), "100");
    for (const status of await page.evaluate(() => window.statusesSeen)) {
      const percent = /processing (\d+)%/.exec(status);
      assert.ok(!percent || Number(percent[1]) <= 100, `badge said "${status}"`);
    }
    await rowStatus(page, id, "ready", 10_000);
    const rowSeen = (await page.evaluate(() => window.rowStatusesSeen)).filter((s) => s.startsWith(id));
    assert.ok(rowSeen.some((s) => /(queued|processing)$/.test(s)), `the row only showed ${[...new Set(rowSeen)]}`);
    assert.equal(await page.locator("#job-title").innerText(), TITLE);

    // Playback started by itself, muted (autoplay policy), with a visible hint.
    await page.waitForSelector("#player:not([hidden])");
    await page.waitForFunction(() => document.getElementById("video").currentTime > 2,
      null, { timeout: 60_000, polling: 200 });
    const state = await page.evaluate(() => {
      const v = document.getElementById("video");
      return { time: v.currentTime, error: v.error && v.error.message, width: v.videoWidth, muted: v.muted };
    });
    assert.ok(state.time > 2, `currentTime ${state.time}`);
    assert.equal(state.error, null);
    assert.ok(state.width > 0, "no picture was decoded");
    assert.equal(state.muted, true);
    assert.equal(await page.locator("#unmute").isVisible(), true);
    assert.match(await page.locator("#unmute").innerText(), /click for sound/i);
    const rungs = new Set(segments.map((p) => p.split("/").pop().split("_")[0]));
    assert.ok(rungs.size >= 2 || segments.length >= 2,
      `expected a rung switch or two segment loads, saw ${JSON.stringify(segments)}`);

    // The recent list shows the video with its renditions and poster.
    const ready = row(page, id);
    await assert.doesNotReject(ready.locator("img").waitFor({ timeout: 10_000 }));
    const text = await ready.innerText();
    assert.match(text, /ready/);
    assert.match(text, /360p/);
    assert.match(text, /public/);
    assert.equal(await page.locator("#player-info").innerText(), "", "the player still says it is encoding");
    await page.screenshot({ path: `${ARTIFACTS}/page.png`, fullPage: true });
    clip = accepted;

    // One click on the hint brings the sound; the hint goes.
    await page.click("#unmute");
    await page.waitForFunction(() => !document.getElementById("video").muted, null, { timeout: 5_000 });
    assert.equal(await page.locator("#unmute").isHidden(), true);
    assert.equal(await page.evaluate(() => document.getElementById("video").paused), false);
    await done();
  });

test("hovering the seek bar of a ready video shows the storyboard tile of that moment",
  { timeout: 60_000 }, async () => {
    const { page, done } = await openPage(browser);
    await row(page, clip.id).locator("[data-action=play]").click();
    await page.waitForSelector("#seek:not([hidden])");
    // The track is read (its cues counted) and the video's length known.
    await page.waitForFunction(() => Number(document.getElementById("seek").dataset.tiles) > 0
      && Number(document.getElementById("scrub").max) > 0, null, { timeout: 30_000, polling: 200 });
    // hover() scrolls the bar into view first, then points at its middle.
    const box = await page.locator("#scrub").boundingBox();
    await page.locator("#scrub").hover({ position: { x: box.width * 0.5, y: box.height / 2 } });
    await page.waitForSelector("#seek-thumb:not([hidden])");
    const shown = await page.evaluate(() => {
      const t = document.getElementById("seek-thumb");
      return { image: t.style.backgroundImage, position: t.style.backgroundPosition,
               time: Number(t.dataset.time), width: t.style.width };
    });
    // The API's storyboard track says which tile covers that moment.
    const ready = await video(clip.id);
    const track = await (await fetch(new URL(ready.playback.storyboard, PROSTREAM_URL))).text();
    const seconds = (t) => t.split(":").reduce((sum, part) => sum * 60 + Number(part), 0);
    const cue = track.split("\n\n").slice(1).map((block) => {
      const [times, target] = block.trim().split("\n");
      const [start, end] = times.split(" --> ").map(seconds);
      const [, x, y, w] = /#xywh=(\d+),(\d+),(\d+),/.exec(target);
      return { start, end, x, y, w };
    }).find((c) => shown.time >= c.start && shown.time < c.end);
    assert.ok(cue, `no cue at ${shown.time} s in ${track}`);
    assert.match(shown.image, /storyboard_1\.jpg/);
    assert.equal(shown.position, `${-cue.x}px ${-cue.y}px`);
    assert.equal(shown.width, `${cue.w}px`);
    // The sheet itself loads.
    const sheet = await fetch(new URL(/url\("(.*)"\)/.exec(shown.image)[1], PROSTREAM_URL));
    assert.equal(sheet.headers.get("content-type"), "image/jpeg");
    // The viewport as it is (a locator screenshot would scroll, and the pointer leave the bar).
    await page.screenshot({ path: `${ARTIFACTS}/seek-preview.png` });
    await done();
  });

// A SubRip file with one cue, from 4 s to 9 s of the 12 s clip; a WebVTT file with another; and a
// SubRip file whose second cue has a bad end time on line 6 (the first cue is fine: the API must
// name the right line, not refuse the file at its top).
const SRT = "1\n00:00:04,000 --> 00:00:09,000\nCaptions from the page's panel\n\n";
const VTT = "WEBVTT\n\nnote\n00:00:01.000 --> 00:00:03.000\nEine Notiz\n\n";
const BROKEN_SRT = "1\n00:00:01,000 --> 00:00:02,000\nFine\n\n2\n00:00:03,000 --> 00:00:0x,000\nBroken\n\n";
const LABEL = "English (page test)";

// The page's <video> as the test wants it: where it is, whether it plays, and the text tracks
// (hls.js adds one a subtitle track; one "showing" at most) with the showing one's active cues.
const playerState = (page) => page.evaluate(() => {
  const v = document.getElementById("video");
  const tracks = [...v.textTracks];
  const showing = tracks.find((t) => t.mode === "showing");
  return {
    time: v.currentTime, paused: v.paused, readyState: v.readyState, error: v.error && v.error.message,
    showing: showing ? { label: showing.label, language: showing.language,
      cues: [...(showing.cues || [])].map((c) => ({ text: c.text, start: c.startTime, end: c.endTime })),
      active: [...(showing.activeCues || [])].map((c) => c.text) } : null,
  };
});

// The Subtitles menu: its options' texts and the chosen one's.
const subtitleMenu = (page) => page.evaluate(() => {
  const select = document.getElementById("subtitle-track");
  return { options: [...select.options].map((o) => o.text), chosen: select.selectedOptions[0]?.text,
           disabled: select.disabled };
});

// Picks a caption file in the panel and submits it; returns the API's answer to the POST.
async function addThroughPanel(page, { name, text, language, label, kind }) {
  await page.setInputFiles("#caption-file", { name, mimeType: "text/plain", buffer: Buffer.from(text) });
  await page.fill("#caption-language", language);
  await page.fill("#caption-label", label || "");
  await page.selectOption("#caption-kind", kind);
  const posted = page.waitForResponse((r) => /\/captions\?/.test(r.url()) && r.request().method() === "POST");
  await page.click("#caption-form button[type=submit]");
  return posted;
}

// Seeks the paused player to `time` and waits until the element has finished seeking there.
async function seekTo(page, time) {
  await page.evaluate((t) => new Promise((resolve) => {
    const v = document.getElementById("video");
    v.pause();
    v.addEventListener("seeked", resolve, { once: true });
    v.currentTime = t;
  }), time);
}

test("captions added in the panel are listed, in the Subtitles menu and on the picture at their time; a malformed file is refused with its line; deleting takes them away",
  { timeout: 300_000 }, async () => {
    const { page, done } = await openPage(browser);
    await page.fill("#title", "Captions from the page");
    const uploaded = page.waitForResponse((r) => r.url().includes("/v1/videos?") && r.request().method() === "POST");
    await page.setInputFiles("#file", CLIP);
    const response = await uploaded;
    assert.equal(response.status(), 202);
    const { id } = await response.json();
    // Ready, so that every segment is there to seek into, and playing (the upload card plays it).
    await rowStatus(page, id, "ready", 180_000);
    await page.waitForFunction(() => document.getElementById("video").currentTime > 1,
      null, { timeout: 60_000, polling: 200 });
    assert.equal(await page.locator("#player-title").innerText(), "Captions from the page");

    // The clip has no subtitles: an empty list, and a menu with nothing but "Off".
    await page.waitForFunction(() => /No captions yet/.test(document.getElementById("caption-note").textContent));
    assert.equal(await page.locator("#caption-list li").count(), 0);
    assert.deepEqual(await subtitleMenu(page), { options: ["Off"], chosen: "Off", disabled: true });
    assert.equal(await page.locator("#audio-field").isHidden(), true, "an Audio menu for one audio track");

    // Every moment the player plays from now on (timeupdate with data to play, not seeking: a
    // reload resets the element to 0 with none), to see that loading it again keeps its place.
    const before = await page.evaluate(() => {
      const v = document.getElementById("video");
      window.playedAt = [];
      v.addEventListener("timeupdate", () => {
        if (!v.seeking && v.readyState >= 3) window.playedAt.push(v.currentTime);
      });
      return v.currentTime;
    });

    // Add the SubRip file as captions (for the deaf and hard of hearing) with a label of our own.
    const added = await addThroughPanel(page, { name: "dialogue.srt", text: SRT, language: "en",
      label: LABEL, kind: "captions" });
    assert.equal(added.status(), 201, await added.text());
    // The file's bytes as they are, typed by the file's extension (the browser said text/plain).
    assert.equal(added.request().headers()["content-type"], "application/x-subrip");
    assert.equal(added.request().postDataBuffer().toString(), SRT);
    const caption = await added.json();
    assert.deepEqual((await api(`/v1/videos/${id}/captions`)).body.items.map((c) => c.id), [caption.id]);
    assert.deepEqual([caption.language, caption.label, caption.kind, caption.cues], ["en", LABEL, "captions", 1]);

    // Listed with its label, language, kind and cue count; in the menu once the player has loaded
    // the master again, at the same moment.
    const item = page.locator(`#caption-list li[data-id="${caption.id}"]`);
    await item.waitFor();
    assert.equal(await item.locator(".label").innerText(), LABEL);
    assert.match(await item.innerText(), /\ben · captions · 1 cue\b/);
    const option = `${LABEL} · en [CC]`;
    await page.waitForFunction((o) => [...document.getElementById("subtitle-track").options].some((x) => x.text === o),
      option, { timeout: 30_000 });
    assert.deepEqual(await subtitleMenu(page), { options: ["Off", option], chosen: "Off", disabled: false });
    // Played on for a second since, never from before where it was.
    await page.waitForFunction((t) => Math.max(...window.playedAt) > t + 1, before, { timeout: 30_000 });
    const played = await page.evaluate(() => window.playedAt);
    assert.ok(Math.min(...played) >= before - 0.1, `played from ${Math.min(...played)} s, was at ${before} s`);

    // Chosen in the menu: its cue is on the picture inside 4–9 s, not before.
    await page.selectOption("#subtitle-track", { label: option });
    await page.waitForFunction(() => document.getElementById("video").readyState >= 1);
    await seekTo(page, 6.5);
    await page.waitForFunction(() => [...document.getElementById("video").textTracks]
      .some((t) => t.mode === "showing" && [...(t.activeCues || [])].length > 0), null, { timeout: 30_000 });
    let state = await playerState(page);
    assert.equal(state.showing.label, LABEL, JSON.stringify(state));
    assert.equal(state.showing.language, "en");
    assert.deepEqual(state.showing.active, ["Captions from the page's panel"], JSON.stringify(state));
    const [cue] = state.showing.cues;
    assert.ok(Math.abs(cue.start - 4) < 0.25 && Math.abs(cue.end - 9) < 0.25, JSON.stringify(state));
    await page.screenshot({ path: `${ARTIFACTS}/captions.png`, fullPage: true });
    await seekTo(page, 2);
    state = await playerState(page);
    assert.deepEqual(state.showing.active, [], `a cue shown at 2 s: ${JSON.stringify(state)}`);

    // A WebVTT file next to it: sent as text/vtt, and the player, loaded again, keeps the
    // captions chosen before (by name and language: hls.js numbers the tracks anew).
    await seekTo(page, 6.5);
    const second = await addThroughPanel(page, { name: "notes.vtt", text: VTT, language: "de",
      label: "", kind: "subtitles" });
    assert.equal(second.status(), 201, await second.text());
    assert.equal(second.request().headers()["content-type"], "text/vtt");
    const notes = await second.json();
    assert.equal(notes.label, "Deutsch", "no label given: the API names it after the language");
    await page.locator(`#caption-list li[data-id="${notes.id}"]`).waitFor();
    await page.waitForFunction(() => document.getElementById("subtitle-track").options.length === 3,
      null, { timeout: 30_000 });
    await page.waitForFunction((label) => [...document.getElementById("video").textTracks]
      .some((t) => t.mode === "showing" && t.label === label), LABEL, { timeout: 30_000 });
    assert.deepEqual(await subtitleMenu(page),
      { options: ["Off", option, "Deutsch · de"], chosen: option, disabled: false });
    assert.deepEqual(await page.locator("#caption-list li .label").allInnerTexts(), [LABEL, "Deutsch"]);

    // A malformed file: the API's problem, naming the line; nothing added, the form kept.
    const refused = await addThroughPanel(page, { name: "broken.srt", text: BROKEN_SRT, language: "en",
      label: "Broken", kind: "subtitles" });
    assert.equal(refused.status(), 422);
    const problem = page.locator("#caption-problem");
    await problem.waitFor({ state: "visible" });
    assert.match(await problem.innerText(), /^line 6: .*0x.*\(invalid_captions\)$/);
    assert.equal(await page.inputValue("#caption-label"), "Broken", "the form was cleared for a refused file");
    assert.equal((await api(`/v1/videos/${id}/captions`)).body.items.length, 2);
    await page.screenshot({ path: `${ARTIFACTS}/captions-refused.png`, fullPage: true });

    // Delete the chosen captions: gone from the API, the list and the menu, and none shown.
    const deleted = page.waitForResponse((r) => r.url().includes("/captions/") && r.request().method() === "DELETE");
    await page.click(`#caption-list button[aria-label="Delete captions “${LABEL}”"]`);
    assert.equal((await deleted).status(), 204);
    await item.waitFor({ state: "detached" });
    await page.waitForFunction(() => document.getElementById("subtitle-track").options.length === 2,
      null, { timeout: 30_000 });
    assert.deepEqual(await subtitleMenu(page), { options: ["Off", "Deutsch · de"], chosen: "Off", disabled: false });
    assert.equal((await playerState(page)).showing, null);
    assert.deepEqual((await api(`/v1/videos/${id}/captions`)).body.items.map((c) => c.id), [notes.id]);
    assert.equal(await problem.isHidden(), true, "the earlier problem is still shown");

    // And the last one: the list says there are none, the menu is back to "Off" alone.
    await page.click('#caption-list button[aria-label="Delete captions “Deutsch”"]');
    await page.waitForFunction(() => /No captions yet/.test(document.getElementById("caption-note").textContent),
      null, { timeout: 30_000 });
    await page.waitForFunction(() => document.getElementById("subtitle-track").options.length === 1,
      null, { timeout: 30_000 });
    assert.deepEqual((await api(`/v1/videos/${id}/captions`)).body.items, []);
    await done();
  });

test("the Audio and Subtitles menus list a video's own tracks and switch between them",
  { timeout: 240_000 }, async () => {
    // The media matrix's clip with three audio and two subtitle languages (scripts/web-test.sh).
    const res = await fetch(`${PROSTREAM_URL}/v1/videos?title=Languages`, {
      method: "POST", headers: { "content-type": "application/octet-stream", ...AUTH },
      body: await readFile(`${process.env.MATRIX_DIR}/languages.mkv`),
    });
    assert.equal(res.status, 202);
    const { id } = await res.json();
    const ready = await waitFor("languages.mkv ready", async () => {
      const v = await video(id);
      assert.notEqual(v.status, "failed", JSON.stringify(v.error));
      return v.status === "ready" && v;
    }, 180_000);
    // Which playlist each audio language is, to see the player fetch the one chosen.
    const master = await (await fetch(new URL(ready.playback.hls, PROSTREAM_URL))).text();
    const audio = master.split("\n").filter((l) => l.startsWith("#EXT-X-MEDIA:TYPE=AUDIO,"))
      .map((l) => ({ name: /NAME="([^"]*)"/.exec(l)[1], uri: /URI="([^"]*)"/.exec(l)[1] }));
    const english = audio.find((a) => a.name === "English");
    assert.ok(english, master);

    const { page, done } = await openPage(browser);
    await row(page, id).locator("[data-action=play]").click();
    await page.locator("#audio-field").waitFor({ state: "visible", timeout: 30_000 });
    const menu = (select) => page.evaluate((s) => {
      const el = document.getElementById(s);
      return { options: [...el.options].map((o) => o.text), chosen: el.selectedOptions[0]?.text };
    }, select);
    // The source's default (French) plays first.
    assert.deepEqual(await menu("audio-track"), {
      options: ["English · en", "Français · fr", "English (audio description) · en"], chosen: "Français · fr",
    });
    // Each menu is named by its label (what a screen reader says).
    assert.equal(await page.getByLabel("Audio", { exact: true }).getAttribute("id"), "audio-track");
    assert.equal(await page.getByLabel("Subtitles", { exact: true }).getAttribute("id"), "subtitle-track");
    const englishLoaded = page.waitForRequest((r) => new URL(r.url()).pathname.endsWith(`/${english.uri}`));
    await page.selectOption("#audio-track", { label: "English · en" });
    await englishLoaded;
    await page.waitForFunction(() => document.getElementById("audio-track").selectedOptions[0].text === "English · en");

    assert.deepEqual(await menu("subtitle-track"), { options: ["Off", "English · en", "Français · fr"], chosen: "Off" });
    await page.selectOption("#subtitle-track", { label: "Français · fr" });
    // Its cue (0.5–2.5 s of the source) on the picture at 1.5 s.
    await seekTo(page, 1.5);
    await page.waitForFunction(() => [...document.getElementById("video").textTracks]
      .some((t) => t.mode === "showing" && [...(t.activeCues || [])].length > 0), null, { timeout: 30_000 });
    const state = await playerState(page);
    assert.equal(state.showing.language, "fr", JSON.stringify(state));
    assert.deepEqual(state.showing.active, ["Bonjour des sous-titres"], JSON.stringify(state));
    await page.locator("#player").screenshot({ path: `${ARTIFACTS}/tracks.png` });

    // Off again: no track shows.
    await page.selectOption("#subtitle-track", { label: "Off" });
    await page.waitForFunction(() => ![...document.getElementById("video").textTracks].some((t) => t.mode === "showing"));
    await done();
  });

test("make private / make public and copy link change and hand out the API's playback URL",
  { timeout: 60_000 }, async () => {
    const target = await readyVideo();
    const { page, done } = await openPage(browser, { permissions: ["clipboard-read", "clipboard-write"] });
    const ready = row(page, target.id);
    await rowStatus(page, target.id, "ready");

    // Copy link: the field and the clipboard hold the full URL of the API's playback.hls, which
    // serves the master playlist to anyone (no key): a plain URL for a public video, a signed
    // one for a private video.
    const copy = async (visibility) => {
      await ready.locator("[data-action=copy]").click();
      await ready.locator(".link p").waitFor();
      const shown = await ready.locator("input[data-action=link]").inputValue();
      const expected = new URL((await video(target.id)).playback.hls, PROSTREAM_URL).href;
      assert.equal(shown, expected);
      assert.equal(await page.evaluate(() => navigator.clipboard.readText()), expected);
      assert.match(await ready.locator(".link p").innerText(), /Copied/);
      if (visibility === "private") assert.match(shown, /\/signed\//);
      else assert.doesNotMatch(shown, /\/signed\//);
      const playlist = await fetch(shown);
      assert.equal(playlist.status, 200, shown);
      assert.match(await playlist.text(), /^#EXTM3U/);
      return shown;
    };
    const start = target.visibility;
    const first = await copy(start);

    // Each way round: the API says so afterwards, and a public URL stops working once private.
    let publicUrl = start === "public" ? first : null;
    for (const visibility of start === "public" ? ["private", "public"] : ["public", "private"]) {
      await ready.locator(`[data-action=${visibility}]`).click();
      await page.locator(`#recent li[data-id="${target.id}"][data-visibility="${visibility}"]`).waitFor();
      assert.equal((await video(target.id)).visibility, visibility);
      if (visibility === "private") {
        assert.notEqual((await fetch(publicUrl)).status, 200, "the public URL still works for a private video");
      }
      const url = await copy(visibility);
      if (visibility === "public") publicUrl = url;
      if (visibility === "private") {
        assert.match(await ready.locator(".link p").innerText(), /signed/);
        await page.screenshot({ path: `${ARTIFACTS}/private-link.png`, fullPage: true });
      }
    }
    assert.equal((await video(target.id)).visibility, start);
    if (start === "public") assert.equal(publicUrl, first, "public again, but with another link");
    await done();
  });

test("an upload keeps a private visibility and its title, and a confirmed delete removes it from the API",
  { timeout: 60_000 }, async () => {
    const { page, done } = await openPage(browser);
    await page.fill("#title", "Private, then deleted");
    assert.equal(await page.isChecked('input[name="visibility"][value="private"]'), true, "private is the default");
    const uploaded = page.waitForResponse((r) => r.url().includes("/v1/videos?") && r.request().method() === "POST");
    await page.setInputFiles("#file", CLIP);
    const response = await uploaded;
    assert.equal(response.status(), 202);
    const { id } = await response.json();
    const accepted = await video(id);
    assert.equal(accepted.title, "Private, then deleted");
    assert.equal(accepted.visibility, "private");
    assert.equal(await page.inputValue("#title"), "", "the title field is cleared for the next upload");

    await row(page, id).locator("[data-action=delete]").click();
    await row(page, id).locator("[data-action=delete-confirm]").click();
    await row(page, id).waitFor({ state: "detached", timeout: 10_000 });
    assert.equal((await api(`/v1/videos/${id}`)).status, 404);
    await page.locator("#job").waitFor({ state: "hidden" });
    await done();
  });

test("a .txt file and random bytes are refused with the API's unsupported_media problem", { timeout: 60_000 }, async () => {
  const { page, done } = await openPage(browser);
  const before = (await api("/v1/videos?limit=100")).body.items.length;
  for (const [name, file] of [["txt", TXT], ["junk", JUNK]]) {
    await page.evaluate(() => { document.getElementById("problem").hidden = true; });
    await page.setInputFiles("#file", file);
    const problem = page.locator("#problem");
    await problem.waitFor({ state: "visible", timeout: 30_000 });
    const text = await problem.innerText();
    assert.match(text, /not a media file/, name);
    assert.match(text, /\(unsupported_media\)$/, name);
    assert.doesNotMatch(text, /Content-Type|unsupported_content_type/, name);
    assert.equal(await page.locator("#job").isHidden(), true);
    await page.screenshot({ path: `${ARTIFACTS}/refused-${name}.png` });
  }
  assert.equal((await api("/v1/videos?limit=100")).body.items.length, before, "a refused file made a video");
  await done();
});

test("at 390 px wide nothing overflows horizontally", { timeout: 60_000 }, async () => {
  const target = await readyVideo();
  const { page, done } = await openPage(browser, { viewport: { width: 390, height: 844 } });
  await rowStatus(page, target.id, "ready");
  // Everything at once: the key field, a refusal, the player, a failed row, an open link field.
  await page.click("#key-toggle");
  await page.setInputFiles("#file", TXT);
  await page.locator("#problem").waitFor({ state: "visible", timeout: 30_000 });
  await row(page, target.id).locator("[data-action=play]").click();
  await page.waitForSelector("#player:not([hidden])");
  await row(page, target.id).locator("[data-action=copy]").click();
  await row(page, target.id).locator("input[data-action=link]").waitFor();
  assert.ok(await page.locator("#recent li .reason").count() >= 1, "no failed row to lay out");

  const layout = await page.evaluate(() => ({
    innerWidth,
    scrollWidth: document.scrollingElement.scrollWidth,
    // Hiding the overflow would pass the check without fixing anything.
    overflow: [getComputedStyle(document.documentElement).overflowX, getComputedStyle(document.body).overflowX],
  }));
  assert.equal(layout.innerWidth, 390);
  assert.ok(layout.scrollWidth <= layout.innerWidth, `scrollWidth ${layout.scrollWidth} > ${layout.innerWidth}`);
  assert.deepEqual(layout.overflow, ["visible", "visible"]);
  await page.screenshot({ path: `${ARTIFACTS}/mobile.png`, fullPage: true });
  await done();
});
