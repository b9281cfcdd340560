// The page at `/`, driven in headless Chromium: upload a clip, watch it become ready, play it;
// refuse a junk file with the API's problem detail. Run by scripts/web-test.sh, which starts the
// stack and sets PROSTREAM_URL, PROSTREAM_API_KEY, CLIP, JUNK and ARTIFACTS.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const { PROSTREAM_URL, PROSTREAM_API_KEY, CLIP, JUNK, ARTIFACTS } = process.env;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
});

after(async () => browser && browser.close());

async function openPage() {
  const page = await browser.newPage({ viewport: { width: 1100, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // The API answers 401 to a browser without a key: the page asks for one, once, as a person would
  // be asked, and keeps it.
  const prompts = [];
  page.on("dialog", (dialog) => {
    prompts.push(dialog.message());
    dialog.accept(PROSTREAM_API_KEY);
  });
  await page.goto(PROSTREAM_URL);
  await page.waitForFunction(() => localStorage.getItem("prostream.apiKey"));
  assert.equal(prompts.length, 1, `asked ${prompts.length} times: ${prompts}`);
  return { page, errors };
}

test("an uploaded clip becomes ready and plays, switching rungs or loading several segments",
  { timeout: 240_000 }, async () => {
    const { page, errors } = await openPage();
    const segments = [];
    page.on("request", (r) => { if (r.url().endsWith(".m4s")) segments.push(new URL(r.url()).pathname); });

    // Every status the badge shows, to check the percentages it printed.
    await page.evaluate(() => {
      window.statusesSeen = [];
      new MutationObserver(() => window.statusesSeen.push(document.getElementById("job-status").textContent))
        .observe(document.getElementById("job-status"), { childList: true, characterData: true, subtree: true });
    });
    await page.setInputFiles("#file", CLIP);
    // The bar follows the upload, then the job; the status badge ends at "ready".
    await page.waitForFunction(() => document.getElementById("job-status").textContent === "ready",
      null, { timeout: 180_000, polling: 250 });
    assert.equal(await page.locator("#bar").getAttribute("value"), "100");
    for (const status of await page.evaluate(() => window.statusesSeen)) {
      const percent = /processing (\d+)%/.exec(status);
      assert.ok(!percent || Number(percent[1]) <= 100, `badge said "${status}"`);
    }

    // Playback started by itself (muted autoplay) or by a click on the video.
    await page.waitForSelector("#player:not([hidden])");
    await page.evaluate(() => document.getElementById("video").play());
    await page.waitForFunction(() => document.getElementById("video").currentTime > 2,
      null, { timeout: 60_000, polling: 200 });
    const state = await page.evaluate(() => {
      const v = document.getElementById("video");
      return { time: v.currentTime, error: v.error && v.error.message, width: v.videoWidth };
    });
    assert.ok(state.time > 2, `currentTime ${state.time}`);
    assert.equal(state.error, null);
    assert.ok(state.width > 0, "no picture was decoded");
    const rungs = new Set(segments.map((p) => p.split("/").pop().split("_")[0]));
    assert.ok(rungs.size >= 2 || segments.length >= 2,
      `expected a rung switch or two segment loads, saw ${JSON.stringify(segments)}`);

    // The recent list shows the video with its renditions and poster.
    await page.evaluate(() => refreshRecent());
    const row = page.locator("#recent tr").first();
    await assert.doesNotReject(row.locator("img").waitFor({ timeout: 10_000 }));
    const text = await row.innerText();
    assert.match(text, /ready/);
    assert.match(text, /360p/);
    assert.equal(await page.locator("#player-info").innerText(), "", "the player still says it is encoding");
    await page.screenshot({ path: `${ARTIFACTS}/page.png`, fullPage: true });
    assert.deepEqual(errors, []);
    await page.close();
  });

test("a junk file is refused with the API's problem detail", { timeout: 60_000 }, async () => {
  const { page, errors } = await openPage();
  await page.setInputFiles("#file", JUNK);
  const problem = page.locator("#problem");
  await problem.waitFor({ state: "visible", timeout: 30_000 });
  const text = await problem.innerText();
  assert.match(text, /not a media file/);
  assert.match(text, /unsupported_media/);
  assert.equal(await page.locator("#job").isHidden(), true);
  await page.screenshot({ path: `${ARTIFACTS}/refused.png` });
  assert.deepEqual(errors, []);
  await page.close();
});
