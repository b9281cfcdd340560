// The page at `/`, driven in headless Chromium: upload a clip with a title and a visibility, watch it
// become ready in the live list, play it (muted, with a hint; a click brings the sound), make it
// private and public again and copy its link; refuse a .txt and a junk file with the API's problem;
// lay out at 390 px without overflowing. Every step is checked against what the API says. Run by
// scripts/web-test.sh, which starts the stack and sets PROSTREAM_URL, PROSTREAM_API_KEY, CLIP, JUNK,
// TXT and ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import {
  ARTIFACTS, CLIP, JUNK, PROSTREAM_URL, TXT, api, launch, openPage, row, rowStatus, video,
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
