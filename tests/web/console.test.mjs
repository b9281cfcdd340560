// The page's console parts, in headless Chromium against a live stack: the inline API key field
// (never a native prompt; an upload waits for the key), the live list with failure reasons, and the cancel / retry / delete
// actions, checked against what the API says afterwards. Run by scripts/web-test.sh.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import http from "node:http";
import {
  ARTIFACTS, PROSTREAM_API_KEY, PROSTREAM_URL, TXT, api, enterKey, ingestUrl, launch, openPage, row,
  rowStatus, video, waitFor,
} from "./helpers.mjs";

let browser;
before(async () => { browser = await launch(); });
after(async () => browser && browser.close());

const storedKey = (page) => page.evaluate(() => localStorage.getItem("prostream.apiKey"));
const keyMessage = (page) => page.locator("#key-message").innerText();

test("a 401 shows the inline key field, never a prompt; the key is checked, remembered and re-enterable",
  { timeout: 60_000 }, async () => {
    const { page, dialogs, done } = await openPage(browser, { key: null });
    // No key yet: the API answers 401 and the page says so inline, with the dev stack's hint.
    await page.locator("#key-panel").waitFor({ state: "visible", timeout: 10_000 });
    assert.match(await keyMessage(page), /needs an API key/);
    assert.match(await page.locator("#key-hint").innerText(), /\.dev\/api-key/);
    assert.equal(await page.evaluate(() => document.activeElement.id), "key", "the field has the focus");
    assert.equal(await page.locator("#recent li").count(), 0);
    await page.screenshot({ path: `${ARTIFACTS}/key-needed.png` });

    // A wrong key: the API's 401 is shown, nothing is saved, the typo stays to be fixed.
    await page.fill("#key", "not-a-real-key");
    await page.click("#key-form button[type=submit]");
    await page.waitForFunction(() => /refused this key/.test(document.getElementById("key-message").textContent));
    assert.match(await keyMessage(page), /api_key_invalid/);
    assert.equal(await storedKey(page), null);
    assert.equal(await page.inputValue("#key"), "not-a-real-key");
    await page.screenshot({ path: `${ARTIFACTS}/key-refused.png` });

    // A file picked before there is a key waits for one.
    await page.setInputFiles("#file", TXT);
    await page.waitForFunction(() => /needs a valid API key/.test(document.getElementById("problem").textContent));

    // The right key: saved, the field closes, the list is read with it, and the waiting upload
    // goes (and gets the API's verdict on a text file).
    const listed = page.waitForResponse((r) => r.url().includes("/v1/videos?limit=20"));
    await page.fill("#key", PROSTREAM_API_KEY);
    await page.click("#key-form button[type=submit]");
    await page.locator("#key-panel").waitFor({ state: "hidden" });
    assert.equal((await listed).status(), 200);
    await page.waitForFunction(() => /\(unsupported_media\)$/.test(document.getElementById("problem").textContent));
    assert.equal(await storedKey(page), PROSTREAM_API_KEY);
    assert.equal(await page.locator("#key-toggle").innerText(), "API key (saved)");

    // Remembered: a reload reads the list at once, no field.
    const relisted = page.waitForResponse((r) => r.url().includes("/v1/videos?limit=20"));
    await page.reload();
    assert.equal((await relisted).status(), 200);
    assert.equal(await page.locator("#key-panel").isHidden(), true);

    // Re-enterable at any time from the header.
    await page.click("#key-toggle");
    await page.locator("#key-panel").waitFor({ state: "visible" });
    assert.equal(await page.getAttribute("#key-toggle", "aria-expanded"), "true");
    assert.equal(await page.evaluate(() => document.activeElement.id), "key");
    await page.click("#key-toggle");
    await page.locator("#key-panel").waitFor({ state: "hidden" });

    // A saved key the server no longer knows (revoked): the field again, saying so.
    await page.evaluate(() => localStorage.setItem("prostream.apiKey", "a-revoked-key"));
    await page.reload();
    await page.locator("#key-panel").waitFor({ state: "visible", timeout: 10_000 });
    assert.match(await keyMessage(page), /refused the API key/);
    assert.match(await keyMessage(page), /api_key_invalid/);
    await enterKey(page);
    assert.equal(await storedKey(page), PROSTREAM_API_KEY);

    // Forget: gone from storage, and the server's 401 brings the field back.
    await page.click("#key-toggle");
    await page.click("#forget-key");
    await page.waitForFunction(() => /needs an API key/.test(document.getElementById("key-message").textContent));
    assert.equal(await storedKey(page), null);
    assert.deepEqual(dialogs, []);
    await done();
  });

// An origin that starts a download and then trickles a byte a second: a URL ingest of it stays
// `downloading` until it is canceled.
async function trickleServer() {
  const timers = new Set();
  const server = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "video/mp4", "content-length": String(50_000_000) });
    res.write(Buffer.alloc(4096));
    const timer = setInterval(() => res.write(Buffer.alloc(1)), 1000);
    timers.add(timer);
    res.on("close", () => { clearInterval(timer); timers.delete(timer); });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/slow.mp4`,
    close() {
      for (const timer of timers) clearInterval(timer);
      server.closeAllConnections();
      server.close();
    },
  };
}

test("the list is live: a failure shows its reason; cancel, retry and delete act on the API; polling slows when idle and stops when hidden",
  { timeout: 120_000 }, async () => {
    const origin = await trickleServer();
    try {
      const slow = await ingestUrl(origin.url, "A slow download");
      assert.equal(slow.status, "downloading");
      const { page, done } = await openPage(browser);
      const listRequests = [];
      page.on("request", (r) => { if (r.url().includes("/v1/videos?limit=")) listRequests.push(Date.now()); });
      await rowStatus(page, slow.id, "downloading");
      assert.equal(await row(page, slow.id).locator("[data-action=cancel]").count(), 1);

      // A video added elsewhere appears by itself, and when it fails the row says why: the API's
      // error code and message.
      const broken = await ingestUrl(`${PROSTREAM_URL}/no-such-file.mp4`, "A link that is gone");
      await rowStatus(page, broken.id, "failed", 30_000);
      const failed = await video(broken.id);
      assert.equal(failed.status, "failed");
      assert.equal(await row(page, broken.id).locator(".reason").innerText(),
        `${failed.error.message} (${failed.error.code})`);
      assert.equal(failed.error.code, "download_failed");
      assert.equal(await row(page, broken.id).locator("[data-action=retry]").count(), 1);

      // While something is in progress the list is read every 2 s…
      let from = listRequests.length;
      await page.waitForTimeout(5_000);
      assert.ok(listRequests.length - from >= 2, `${listRequests.length - from} list reads in 5 s while busy`);

      // …and not at all while the tab is hidden (nor anything else of the API's)…
      const apiRequests = [];
      page.on("request", (r) => { if (new URL(r.url()).pathname.startsWith("/v1/")) apiRequests.push(r.url()); });
      await page.evaluate(() => {
        Object.defineProperty(document, "hidden", { configurable: true, get: () => true });
        Object.defineProperty(document, "visibilityState", { configurable: true, get: () => "hidden" });
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await page.waitForTimeout(500); // a read that was under way may still end
      apiRequests.length = 0;
      await page.waitForTimeout(5_000);
      assert.deepEqual(apiRequests, [], "the page kept polling in a hidden tab");
      // …and again at once when it is shown.
      const back = page.waitForRequest((r) => r.url().includes("/v1/videos?limit="), { timeout: 2_000 });
      await page.evaluate(() => {
        delete document.hidden;
        delete document.visibilityState;
        document.dispatchEvent(new Event("visibilitychange"));
      });
      await back;

      // Cancel.
      await row(page, slow.id).locator("[data-action=cancel]").click();
      await rowStatus(page, slow.id, "canceled");
      assert.equal((await video(slow.id)).status, "canceled");
      await page.screenshot({ path: `${ARTIFACTS}/list-canceled.png`, fullPage: true });

      // Retry: a download that never finished starts over.
      await row(page, slow.id).locator("[data-action=retry]").click();
      await rowStatus(page, slow.id, "downloading");
      assert.equal((await video(slow.id)).status, "downloading");

      // Delete asks first, inline; "Keep" keeps it.
      await row(page, slow.id).locator("[data-action=delete]").click();
      await row(page, slow.id).locator(".confirm").waitFor();
      assert.equal(await page.evaluate(() => document.activeElement.dataset.action), "delete-keep");
      await page.screenshot({ path: `${ARTIFACTS}/delete-confirm.png` });
      await row(page, slow.id).locator("[data-action=delete-keep]").click();
      await row(page, slow.id).locator("[data-action=delete]").waitFor();
      assert.equal((await api(`/v1/videos/${slow.id}`)).status, 200);
      // Confirmed: the API no longer knows the video, and the row is gone.
      await row(page, slow.id).locator("[data-action=delete]").click();
      await row(page, slow.id).locator("[data-action=delete-confirm]").click();
      await row(page, slow.id).waitFor({ state: "detached", timeout: 10_000 });
      assert.equal((await api(`/v1/videos/${slow.id}`)).status, 404);

      // Nothing in progress now: the list is read every 15 s, not every 2.
      await page.waitForTimeout(1_000);
      from = listRequests.length;
      await page.waitForTimeout(6_000);
      assert.ok(listRequests.length - from <= 1, `${listRequests.length - from} list reads in 6 s while idle`);
      await done();
    } finally {
      origin.close();
    }
  });
