// What the browser tests share: the stack's address and key (set by scripts/web-test.sh), a
// Chromium, the API as a plain client sees it, and a page that has been given the key the way a
// person gives it: in the inline key field.
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

export const { PROSTREAM_URL, PROSTREAM_API_KEY, CLIP, JUNK, TXT, ARTIFACTS } = process.env;
export const AUTH = { authorization: `Bearer ${PROSTREAM_API_KEY}` };
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run"],
  });
}

// The API's answer to `method path` with the stack's key: { status, body }.
export async function api(path, { method = "GET", json } = {}) {
  const headers = { ...AUTH };
  if (json !== undefined) headers["content-type"] = "application/json";
  const res = await fetch(PROSTREAM_URL + path, {
    method, headers, body: json === undefined ? undefined : JSON.stringify(json),
  });
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch (_) { body = text; }
  return { status: res.status, body };
}

export async function video(id) {
  const { status, body } = await api(`/v1/videos/${id}`);
  assert.equal(status, 200, JSON.stringify(body));
  return body;
}

// A URL ingest: the API fetches `url` itself (URL_INGEST_ALLOW_HOSTS lets it reach loopback).
export async function ingestUrl(url, title) {
  const { status, body } = await api(`/v1/videos?title=${encodeURIComponent(title)}`,
    { method: "POST", json: { url } });
  assert.equal(status, 202, JSON.stringify(body));
  return body;
}

export async function waitFor(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

// Types the key into the inline field and saves it; the field closes once the API accepted it.
export async function enterKey(page, key = PROSTREAM_API_KEY) {
  await page.locator("#key-panel").waitFor({ state: "visible", timeout: 10_000 });
  await page.fill("#key", key);
  await page.click("#key-form button[type=submit]");
  await page.locator("#key-panel").waitFor({ state: "hidden", timeout: 10_000 });
}

// A fresh browser context (its own local storage) with the page open and, unless `key` is null,
// the key entered. `done()` checks that no script error and no native dialog (prompt, confirm,
// alert) happened, then closes it.
export async function openPage(browser, { key = PROSTREAM_API_KEY, ...contextOptions } = {}) {
  const context = await browser.newContext({ viewport: { width: 1100, height: 1000 }, ...contextOptions });
  const page = await context.newPage();
  const errors = [];
  const dialogs = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (dialog) => {
    dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    dialog.dismiss().catch(() => {});
  });
  await page.goto(PROSTREAM_URL);
  if (key) await enterKey(page, key);
  const done = async () => {
    assert.deepEqual(errors, [], "script errors on the page");
    assert.deepEqual(dialogs, [], "the page opened a native dialog");
    await context.close();
  };
  return { page, context, errors, dialogs, done };
}

// The row of video `id` in the recent list.
export const row = (page, id) => page.locator(`#recent li[data-id="${id}"]`);

// Waits until the row of `id` shows `status` (data-status, set from the API's answer).
export async function rowStatus(page, id, status, timeout = 30_000) {
  await page.locator(`#recent li[data-id="${id}"][data-status="${status}"]`).waitFor({ timeout });
}
