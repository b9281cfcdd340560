// ProStream's page: an API key field; upload (with a title and a visibility) with a progress bar,
// follow the job, play the HLS result with its audio and subtitle menus and its captions (listed,
// added, deleted); the recent videos, kept up to date, with their actions.
// No framework, no build step: the API does the work; this file only talks to it.
"use strict";

const KEY_STORAGE = "prostream.apiKey";
const FOLLOW_MS = 1000; // the upload card's video, while it is in progress
const LIST_BUSY_MS = 2000; // the list, while one of its videos is in progress
const LIST_IDLE_MS = 15000; // the list otherwise: for videos added elsewhere
const LIST_LIMIT = 20;
const IN_PROGRESS = new Set(["downloading", "queued", "processing"]);
const $ = (id) => document.getElementById(id);

// --- timers that wait while the tab is hidden ------------------------------------------------------

const dueWhenVisible = new Set();

// Runs fn after ms, or, if the tab is hidden then, as soon as it is shown again.
function later(fn, ms) {
  setTimeout(() => (document.hidden ? dueWhenVisible.add(fn) : fn()), ms);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) return;
  const due = [...dueWhenVisible];
  dueWhenVisible.clear();
  for (const fn of due) fn();
});

// --- the API key -----------------------------------------------------------------------------------

const savedKey = () => localStorage.getItem(KEY_STORAGE) || "";

function authHeaders() {
  const key = savedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function showKeyPanel(message) {
  $("key-panel").hidden = false;
  $("key-toggle").setAttribute("aria-expanded", "true");
  $("key-message").textContent = message || "";
  $("key-message").hidden = !message;
}

function hideKeyPanel() {
  $("key-panel").hidden = true;
  $("key-toggle").setAttribute("aria-expanded", "false");
  $("key-message").hidden = true;
}

function showKeyState() {
  $("key-toggle").textContent = savedKey() ? "API key (saved)" : "API key";
  $("forget-key").disabled = !savedKey();
  $("key").placeholder = savedKey() ? "a key is saved; another replaces it" : "";
}

// The API answered 401: the key field, saying why. Never a modal prompt.
function keyRefused(problem) {
  showKeyPanel(savedKey()
    ? `The server refused the API key: ${problem.detail} (${problem.code}). Enter a valid key.`
    : "This server needs an API key: enter it below.");
  if (!$("key-panel").contains(document.activeElement)) $("key").focus();
}

// --- talking to the API ----------------------------------------------------------------------------

// A problem+json body's `detail` (and `code`), or a plain description of the failure; `status` is
// the HTTP status.
async function problemOf(response) {
  try {
    const problem = await response.json();
    if (problem.detail) return { status: response.status, code: problem.code, detail: problem.detail };
  } catch (_) { /* not JSON */ }
  return { status: response.status, code: `http_${response.status}`,
           detail: `the server answered ${response.status} ${response.statusText}` };
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
  } catch (_) {
    throw { status: 0, code: "network_error", detail: "the server cannot be reached; check the connection" };
  }
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) keyRefused(problem);
    throw problem;
  }
  return response.status === 204 ? null : response.json();
}

// fetch() cannot report upload progress; XMLHttpRequest can. The file goes as multipart/form-data:
// what the browser guesses from its name (text/plain for a .txt) decides nothing, the API probes
// the bytes and says what it found.
function uploadFile({ file, title, visibility }, onProgress) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    if (title) form.append("title", title);
    form.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/v1/videos?visibility=${encodeURIComponent(visibility)}`);
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
    xhr.onerror = () => reject({ status: 0, code: "network_error",
                                 detail: "the upload broke off; check the connection and try again" });
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status === 202 && body) return resolve(body);
      const problem = body && body.detail
        ? { status: xhr.status, code: body.code, detail: body.detail }
        : { status: xhr.status, code: `http_${xhr.status}`, detail: `the server answered ${xhr.status}` };
      if (xhr.status === 401) keyRefused(problem);
      reject(problem);
    };
    xhr.send(form);
  });
}

// --- the upload card -------------------------------------------------------------------------------

function showProblem(problem) {
  const el = $("problem");
  el.textContent = problem ? `${problem.detail} (${problem.code})` : "";
  el.hidden = !problem;
}

function showJob(title, status, percent, detail) {
  $("job").hidden = false;
  $("job-title").textContent = title;
  const badge = $("job-status");
  badge.textContent = status;
  badge.className = `badge ${status.split(" ")[0]}`;
  $("bar").value = percent;
  $("job-detail").textContent = detail;
}

const megabytes = (bytes) => (bytes / 1e6).toFixed(1);

let following = null; // the id of the video the upload card follows
let pendingUpload = null; // an upload refused for want of a key: sent again once one is saved

// What the form says now, for this file.
function chosenUpload(file) {
  return {
    file,
    title: $("title").value.trim(),
    visibility: document.querySelector('input[name="visibility"]:checked').value,
  };
}

async function upload(chosen) {
  const { file } = chosen;
  const name = chosen.title || file.name;
  showProblem(null);
  showJob(name, "uploading", 0, `${megabytes(file.size)} MB, ${chosen.visibility}`);
  let video;
  try {
    video = await uploadFile(chosen, (done) => showJob(name, "uploading", done * 100,
      `${megabytes(done * file.size)} of ${megabytes(file.size)} MB, ${chosen.visibility}`));
  } catch (problem) {
    $("job").hidden = true;
    if (problem.status === 401) {
      pendingUpload = chosen;
      showProblem({ code: problem.code, detail: "The server needs a valid API key (above); "
                                               + "the upload starts again once it is saved" });
    } else {
      showProblem(problem);
    }
    return;
  }
  $("title").value = "";
  following = video.id;
  follow(video);
  refreshRecent();
}

function describe(video) {
  switch (video.status) {
    // `progress` is a percentage (0-100).
    case "processing": return [`processing ${Math.round(video.progress)}%`, video.progress, video.stage || ""];
    case "ready": return ["ready", 100, `${video.renditions.map((r) => r.name).join(", ")}`];
    case "failed": return ["failed", 100, video.error ? `${video.error.message} (${video.error.code})` : ""];
    default: return [video.status, 0, ""];
  }
}

const autoPlayed = new Set(); // the uploads the player started by itself, once each

async function follow(video) {
  if (video.id !== following) return;
  const [status, percent, detail] = describe(video);
  showJob(video.title, status, percent, detail);
  if (video.playable && video.playback && !autoPlayed.has(video.id)) {
    autoPlayed.add(video.id);
    play(video);
  }
  if (video.status === "ready" && currentId === video.id) $("player-info").textContent = "";
  if (!IN_PROGRESS.has(video.status)) {
    refreshRecent();
    return;
  }
  later(async () => {
    if (video.id !== following) return;
    try {
      follow(await api(`/v1/videos/${video.id}`));
    } catch (problem) {
      if (problem.status !== 401) showProblem(problem);
    }
  }, FOLLOW_MS);
}

// --- the player ------------------------------------------------------------------------------------

let hls = null;
let currentSource = null;
let currentId = null;

// Browsers start a video by themselves only without sound: it starts muted, with a hint that a
// click brings the sound (`keepSound`: the same video again, as loud as it was).
function play(video, { at = 0, keepSound = false } = {}) {
  const el = $("video");
  if (currentId !== video.id) {
    trackChoice = {}; // a choice is for the video it was made on
    // Not the last video's captions while this one's are read.
    $("caption-list").replaceChildren();
    $("caption-note").textContent = "";
    showCaptionProblem(null);
  }
  currentId = video.id;
  currentSource = video.playback.hls;
  $("player").hidden = false;
  $("player-title").textContent = video.title;
  $("player-info").textContent = video.status === "ready" ? "" : "Still encoding: the rest arrives as you watch.";
  if (video.playback.poster) el.poster = video.playback.poster;
  else el.removeAttribute("poster");
  if (hls) { hls.destroy(); hls = null; }
  if (!keepSound) el.muted = true;
  showMuteHint();
  if (window.Hls && Hls.isSupported()) {
    // The same video loaded again (after a caption was added or deleted) starts where it was, with
    // the audio and subtitles chosen before: hls.js numbers the tracks anew, so by name and language.
    hls = new Hls({
      ...(at ? { startPosition: at } : {}),
      ...(trackChoice.audio ? { audioPreference: trackChoice.audio } : {}),
      ...(trackChoice.subtitles ? { subtitlePreference: trackChoice.subtitles } : {}),
    });
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) $("player-info").textContent = `Playback error: ${data.details}`;
    });
    // hls.js knows the tracks once the master is read, and the audio and subtitle tracks of a
    // level's groups once it picks a level: the menus follow each of these.
    for (const event of [Hls.Events.MANIFEST_PARSED, Hls.Events.AUDIO_TRACKS_UPDATED,
      Hls.Events.SUBTITLE_TRACKS_UPDATED, Hls.Events.AUDIO_TRACK_SWITCHED,
      Hls.Events.SUBTITLE_TRACK_SWITCH]) {
      hls.on(event, showTracks);
    }
    hls.loadSource(currentSource);
    hls.attachMedia(el);
  } else {
    el.src = currentSource; // Safari plays HLS natively, with its own track menus
    if (at) el.currentTime = at;
  }
  showTracks();
  el.play().catch(() => { /* autoplay refused: the controls are there */ });
  loadStoryboard(video.playback.storyboard);
  loadCaptions(video.id);
}

// --- audio and subtitle menus ----------------------------------------------------------------------

// The tracks chosen in the menus ({ audio, subtitles }, each { name, lang }; `subtitles: null`:
// "Off"), kept while the same video is loaded again.
let trackChoice = {};

function fillSelect(select, options, value) {
  const wanted = options.map(([v, text]) => `${v}\u0000${text}`).join("\n");
  // Rebuilt only when the tracks change: rebuilding an open menu would close it.
  if (select.dataset.options !== wanted) {
    select.replaceChildren(...options.map(([v, text]) => {
      const option = element("option", null, text);
      option.value = String(v);
      return option;
    }));
    select.dataset.options = wanted;
  }
  select.value = String(value);
}

// What a track is called in its menu: its name and language (two tracks may share a name), and
// "CC" for captions that transcribe the sound too.
function trackName(track) {
  let text = track.name || track.lang || "unnamed";
  if (track.lang && text !== track.lang) text += ` · ${track.lang}`;
  if (/transcribes-spoken-dialog/.test((track.attrs && track.attrs.CHARACTERISTICS) || "")) text += " [CC]";
  return text;
}

function showTracks() {
  $("tracks").hidden = !hls;
  if (!hls) return;
  const audio = hls.audioTracks || [];
  $("audio-field").hidden = audio.length < 2;
  fillSelect($("audio-track"), audio.map((t, i) => [i, trackName(t)]), hls.audioTrack);

  const subtitles = hls.subtitleTracks || [];
  // "Off" stays off when the video is loaded again: hls.js would turn a DEFAULT=YES track on.
  if (trackChoice.subtitles === null && hls.subtitleTrack >= 0) hls.subtitleTrack = -1;
  const current = hls.subtitleDisplay && hls.subtitleTrack >= 0 ? hls.subtitleTrack : -1;
  fillSelect($("subtitle-track"), [[-1, "Off"], ...subtitles.map((t, i) => [i, trackName(t)])], current);
  $("subtitle-track").disabled = subtitles.length === 0;
}

// --- seek thumbnails -------------------------------------------------------------------------------

// The playing video's storyboard: WebVTT cues, each naming a tile of a sprite sheet
// (`storyboard_1.jpg#xywh=x,y,w,h`, relative to the track's URL).
let storyboard = [];

const vttTime = (text) => text.split(":").reduce((sum, part) => sum * 60 + Number(part), 0);

function parseStoryboard(text, base) {
  const cues = [];
  for (const block of text.replace(/\r/g, "").split(/\n\n+/)) {
    const lines = block.trim().split("\n");
    const at = lines.findIndex((l) => l.includes("-->"));
    const target = at >= 0 && lines[at + 1];
    const match = target && /^(.*)#xywh=(\d+),(\d+),(\d+),(\d+)$/.exec(target.trim());
    if (!match) continue;
    const [start, end] = lines[at].split("-->").map((t) => vttTime(t.trim().split(" ")[0]));
    const [, file, x, y, w, h] = match;
    cues.push({ start, end, url: new URL(file, base).href, x: +x, y: +y, w: +w, h: +h });
  }
  return cues;
}

async function loadStoryboard(url) {
  storyboard = [];
  $("seek").hidden = !url;
  $("seek-thumb").hidden = true;
  delete $("seek").dataset.tiles;
  if (!url) return;
  try {
    const response = await fetch(url);
    if (response.ok) storyboard = parseStoryboard(await response.text(), new URL(url, location.href));
  } catch { /* no previews; seeking still works */ }
  $("seek").dataset.tiles = storyboard.length; // how many previews there are (0: none)
}

const clock = (s) => `${Math.floor(s / 60)}:${String(Math.floor(s % 60)).padStart(2, "0")}`;

function previewAt(clientX) {
  const scrub = $("scrub");
  const box = scrub.getBoundingClientRect();
  const duration = Number(scrub.max);
  const fraction = Math.min(1, Math.max(0, (clientX - box.left) / box.width));
  const time = fraction * duration;
  const cue = storyboard.find((c) => time >= c.start && time < c.end) || storyboard[storyboard.length - 1];
  const thumb = $("seek-thumb");
  if (!cue || !duration) { thumb.hidden = true; return; }
  Object.assign(thumb.style, {
    width: `${cue.w}px`, height: `${cue.h}px`,
    backgroundImage: `url("${cue.url}")`, backgroundPosition: `${-cue.x}px ${-cue.y}px`,
    left: `${Math.min(box.width - cue.w, Math.max(0, fraction * box.width - cue.w / 2))}px`,
  });
  thumb.dataset.time = time.toFixed(1);
  $("seek-time").textContent = clock(time);
  thumb.hidden = false;
}

function stopPlayer() {
  const el = $("video");
  if (hls) { hls.destroy(); hls = null; }
  trackChoice = {};
  showTracks();
  captionsGeneration++; // an answer still on its way is for a video no longer shown
  el.pause();
  el.removeAttribute("src");
  el.removeAttribute("poster");
  el.load();
  currentId = currentSource = null;
  $("player").hidden = true;
  loadStoryboard(null);
}

function showMuteHint() {
  $("unmute").hidden = !$("video").muted;
}

function unmute() {
  const el = $("video");
  el.muted = false;
  if (el.volume === 0) el.volume = 1;
  if (el.paused) el.play().catch(() => { /* the controls are there */ });
}

// --- the playing video's captions ------------------------------------------------------------------

let captionsGeneration = 0;

function showCaptionProblem(problem) {
  const el = $("caption-problem");
  el.textContent = problem ? `${problem.detail} (${problem.code})` : "";
  el.hidden = !problem;
}

function renderCaptions(items) {
  $("caption-note").textContent = items.length ? "" : "No captions yet: add a WebVTT or SubRip file below.";
  $("caption-list").replaceChildren(...items.map((caption) => {
    const li = element("li");
    li.dataset.id = caption.id;
    const cues = `${caption.cues} cue${caption.cues === 1 ? "" : "s"}`;
    li.append(element("span", "label", caption.label),
      element("span", "muted small", `${caption.language} · ${caption.kind} · ${cues}`));
    const button = element("button", null, "Delete");
    button.type = "button";
    button.dataset.action = "delete-caption";
    button.setAttribute("aria-label", `Delete captions “${caption.label}”`);
    li.append(button);
    return li;
  }));
}

async function loadCaptions(id) {
  const generation = ++captionsGeneration;
  try {
    const { items } = await api(`/v1/videos/${id}/captions`);
    if (generation === captionsGeneration && currentId === id) renderCaptions(items);
  } catch (problem) {
    if (generation !== captionsGeneration || currentId !== id) return;
    $("caption-note").textContent = `The captions could not be read: ${problem.detail} (${problem.code})`;
  }
}

// The master playlist names a video's captions: after a change the player loads it again, at the
// same moment and as loud, so that its Subtitles menu shows the change. Playlists may be kept for
// a second (Cache-Control: max-age=1): the fresh master goes into the browser's cache first.
async function reloadPlayer(id) {
  let video;
  try {
    video = await api(`/v1/videos/${id}`); // a fresh signed link for a private video, too
  } catch (problem) {
    if (problem.status !== 401 && currentId === id) showCaptionProblem(problem);
    return;
  }
  if (currentId !== id) return;
  if (!video.playable || !video.playback) {
    loadCaptions(id);
    return;
  }
  try {
    await fetch(video.playback.hls, { cache: "reload" });
  } catch { /* hls.js says what is wrong when it loads it */ }
  if (currentId === id) play(video, { at: $("video").currentTime, keepSound: true });
}

const captionType = (name) => (/\.vtt$/i.test(name) ? "text/vtt" : "application/x-subrip");

async function addCaption() {
  const id = currentId;
  const file = $("caption-file").files[0];
  if (!id || !file) return;
  const params = new URLSearchParams({ kind: $("caption-kind").value });
  const language = $("caption-language").value.trim();
  const label = $("caption-label").value.trim();
  if (language) params.set("language", language);
  if (label) params.set("label", label);
  showCaptionProblem(null);
  let bytes;
  try {
    bytes = await file.arrayBuffer();
  } catch (_) {
    showCaptionProblem({ code: "file_unreadable", detail: "the browser could not read the file; pick it again" });
    return;
  }
  $("caption-submit").disabled = true;
  try {
    // The file's bytes as they are: the API reads them strictly and names the line it stopped at.
    await api(`/v1/videos/${id}/captions?${params}`, {
      method: "POST", headers: { "Content-Type": captionType(file.name) }, body: bytes,
    });
  } catch (problem) {
    if (problem.status !== 401 && currentId === id) showCaptionProblem(problem);
    return;
  } finally {
    $("caption-submit").disabled = false;
  }
  $("caption-file").value = "";
  $("caption-label").value = "";
  await reloadPlayer(id);
}

async function deleteCaption(id, captionId, button) {
  showCaptionProblem(null);
  button.disabled = true;
  try {
    await api(`/v1/videos/${id}/captions/${captionId}`, { method: "DELETE" });
  } catch (problem) {
    button.disabled = false;
    if (problem.status !== 401 && currentId === id) showCaptionProblem(problem);
    if (problem.status !== 404) return; // gone already: the list and the player catch up
  }
  await reloadPlayer(id);
}

// --- recent videos ---------------------------------------------------------------------------------

let listed = []; // the last page of videos, newest first
const rows = new Map(); // id -> { signature, li }: a row is rebuilt only when what it shows changes
const linkShown = new Set(); // ids whose playback link field is open
const copyNotes = new Map(); // id -> what the last "Copy link" did
const rowProblems = new Map(); // id -> the problem the API answered to the last action on that row
let confirmingDelete = null; // the id whose delete waits for a confirmation
let focusAfter = null; // { id, action }: what gets the focus once the list is drawn again
let listGeneration = 0;
let refreshing = null;
let refreshAgain = false;

const linkOf = (video) => new URL(video.playback.hls, location.href).href;

function scheduleList(ms) {
  const generation = ++listGeneration;
  later(() => generation === listGeneration && refreshRecent(), ms);
}

// Reads the list again; returns whether that worked. Polls again in 2 s while a video is in
// progress, else in 15 s, and not at all while the tab is hidden or the API wants a key.
async function refreshRecent() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    try {
      const page = await api(`/v1/videos?limit=${LIST_LIMIT}`);
      listed = page.items;
      $("recent-note").textContent = listed.length ? "" : "No videos yet.";
      renderList();
      scheduleList(listed.some((v) => IN_PROGRESS.has(v.status)) ? LIST_BUSY_MS : LIST_IDLE_MS);
      return true;
    } catch (problem) {
      if (problem.status === 401) {
        listGeneration++; // no polling until a key is saved
        listed = [];
        $("recent-note").textContent = "The list needs an API key.";
        renderList();
      } else {
        $("recent-note").textContent = `The list could not be read: ${problem.detail} (${problem.code})`;
        scheduleList(LIST_IDLE_MS);
      }
      return false;
    }
  })();
  try {
    return await refreshing;
  } finally {
    refreshing = null;
    if (refreshAgain) {
      refreshAgain = false;
      refreshRecent();
    }
  }
}

function element(tag, className, text) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text != null) el.textContent = text;
  return el;
}

function actionButton(action, text, video, className) {
  const button = element("button", className, text);
  button.type = "button";
  button.dataset.action = action;
  button.setAttribute("aria-label", `${text} “${video.title}”`);
  return button;
}

function renderRow(video) {
  const li = element("li", "video");
  li.dataset.id = video.id;
  li.dataset.status = video.status;
  li.dataset.visibility = video.visibility;

  const thumb = element("div", "thumb");
  if (video.playback && video.playback.poster) {
    const img = element("img");
    img.src = video.playback.poster;
    img.alt = "";
    thumb.append(img);
  }
  li.append(thumb);

  const info = element("div", "info");
  info.append(element("p", "title", video.title));
  const meta = element("p", "meta muted");
  const badge = element("span", `badge ${video.status}`,
    video.status === "processing" ? `processing ${Math.round(video.progress)}%` : video.status);
  const facts = [video.visibility];
  if (video.source.duration_s != null) facts.push(`${video.source.duration_s.toFixed(1)} s`);
  if (video.renditions.length) facts.push(video.renditions.map((r) => r.name).join(", "));
  meta.append(badge, ` ${facts.join(" · ")}`);
  info.append(meta);
  if (video.error) info.append(element("p", "reason", `${video.error.message} (${video.error.code})`));

  const actions = element("div", "actions");
  if (confirmingDelete === video.id) {
    actions.append(element("span", "confirm", "Delete it and its files for good?"),
      actionButton("delete-confirm", "Delete", video, "danger"),
      actionButton("delete-keep", "Keep", video));
  } else {
    if (video.playable && video.playback) actions.append(actionButton("play", "Play", video));
    if (IN_PROGRESS.has(video.status)) actions.append(actionButton("cancel", "Cancel", video));
    if (video.status === "failed" || video.status === "canceled") actions.append(actionButton("retry", "Retry", video));
    actions.append(video.visibility === "public"
      ? actionButton("private", "Make private", video)
      : actionButton("public", "Make public", video));
    if (video.playback) actions.append(actionButton("copy", "Copy link", video));
    actions.append(actionButton("delete", "Delete", video, "danger"));
  }
  info.append(actions);

  if (linkShown.has(video.id) && video.playback) {
    const link = element("div", "link");
    const label = element("label", null, "Playback link (HLS)");
    const input = element("input");
    input.readOnly = true;
    input.value = linkOf(video);
    input.dataset.action = "link";
    label.append(input);
    link.append(label);
    if (copyNotes.has(video.id)) link.append(element("p", "muted small", copyNotes.get(video.id)));
    info.append(link);
  }
  if (rowProblems.has(video.id)) {
    const problem = rowProblems.get(video.id);
    const p = element("p", "problem", `${problem.detail} (${problem.code})`);
    p.setAttribute("role", "alert");
    info.append(p);
  }
  li.append(info);
  return li;
}

function renderList() {
  const ul = $("recent");
  const focused = document.activeElement;
  const wanted = listed.map((video) => {
    const signature = JSON.stringify([video, linkShown.has(video.id), copyNotes.get(video.id) || null,
      rowProblems.get(video.id) || null, confirmingDelete === video.id]);
    let row = rows.get(video.id);
    if (!row || row.signature !== signature) {
      const li = renderRow(video);
      // A row drawn again keeps the focus on the same control.
      if (row && row.li.contains(focused) && !focusAfter && focused.dataset.action) {
        focusAfter = { id: video.id, action: focused.dataset.action };
      }
      if (row) row.li.replaceWith(li);
      row = { signature, li };
      rows.set(video.id, row);
    }
    return row.li;
  });
  // In order, moving only what moved (a moved element loses the focus).
  let previous = null;
  for (const li of wanted) {
    const next = previous ? previous.nextSibling : ul.firstChild;
    if (next !== li) ul.insertBefore(li, next);
    previous = li;
  }
  while (previous ? previous.nextSibling : ul.firstChild) (previous ? previous.nextSibling : ul.firstChild).remove();
  for (const id of rows.keys()) if (!listed.some((v) => v.id === id)) rows.delete(id);

  if (focusAfter) {
    const row = rows.get(focusAfter.id);
    const target = row && (row.li.querySelector(`[data-action="${focusAfter.action}"]`)
                           || row.li.querySelector("button"));
    focusAfter = null;
    if (target) {
      target.focus();
      if (target.select) target.select();
    }
  }
}

// The API's answer to an action on a row replaces that row's video.
function replaceVideo(video) {
  listed = listed.map((v) => (v.id === video.id ? video : v));
  if (currentId === video.id) {
    const el = $("video");
    if (!video.playable || !video.playback) stopPlayer();
    else if (video.playback.hls !== currentSource) play(video, { at: el.currentTime, keepSound: true });
  }
}

function forgetVideo(id) {
  listed = listed.filter((v) => v.id !== id);
  linkShown.delete(id);
  copyNotes.delete(id);
  rowProblems.delete(id);
  if (currentId === id) stopPlayer();
  if (following === id) {
    following = null;
    $("job").hidden = true;
  }
}

async function copyLink(video) {
  const url = linkOf(video);
  linkShown.add(video.id);
  let note;
  try {
    await navigator.clipboard.writeText(url); // only on https or localhost pages
    note = "Copied to the clipboard.";
  } catch (_) {
    note = "Select the link above and copy it.";
  }
  if (video.playback.expires_at) {
    note += ` A private video's link is signed: it works until ${new Date(video.playback.expires_at).toLocaleString()}.`;
  }
  copyNotes.set(video.id, note);
  focusAfter = { id: video.id, action: "link" };
  renderList();
}

async function act(video, action) {
  const id = video.id;
  rowProblems.delete(id);
  try {
    switch (action) {
      case "cancel":
        replaceVideo(await api(`/v1/videos/${id}/cancel`, { method: "POST" }));
        break;
      case "retry":
        replaceVideo(await api(`/v1/videos/${id}/retry`, { method: "POST" }));
        autoPlayed.delete(id);
        break;
      case "public":
      case "private":
        replaceVideo(await api(`/v1/videos/${id}`, {
          method: "PATCH",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ visibility: action }),
        }));
        copyNotes.delete(id); // the link changed: what was copied is the old one
        focusAfter = { id, action: action === "public" ? "private" : "public" };
        break;
      case "delete-confirm":
        confirmingDelete = null;
        await api(`/v1/videos/${id}`, { method: "DELETE" });
        forgetVideo(id);
        break;
    }
  } catch (problem) {
    if (problem.status !== 401) rowProblems.set(id, problem);
    confirmingDelete = null;
  }
  renderList();
  refreshRecent();
}

$("recent").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action]");
  if (!button) return;
  const id = button.closest("li").dataset.id;
  const video = listed.find((v) => v.id === id);
  if (!video) return;
  const action = button.dataset.action;
  switch (action) {
    case "play":
      play(video);
      $("player").scrollIntoView({ behavior: "smooth", block: "nearest" });
      return;
    case "copy":
      copyLink(video);
      return;
    case "delete":
      confirmingDelete = id;
      focusAfter = { id, action: "delete-keep" };
      renderList();
      return;
    case "delete-keep":
      confirmingDelete = null;
      focusAfter = { id, action: "delete" };
      renderList();
      return;
    default:
      button.disabled = true; // until the row is drawn again with the API's answer
      act(video, action);
  }
});

// --- wiring ----------------------------------------------------------------------------------------

const drop = $("drop");
$("file").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (file) upload(chosenUpload(file));
  e.target.value = ""; // the same file can be picked again
});
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(chosenUpload(e.dataTransfer.files[0]));
});
$("upload-form").addEventListener("submit", (e) => e.preventDefault());

$("key-toggle").addEventListener("click", () => {
  if ($("key-panel").hidden) {
    showKeyPanel(null);
    $("key").focus();
  } else {
    hideKeyPanel();
  }
});
$("key-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const key = $("key").value.trim();
  if (!/^[\x21-\x7e]+$/.test(key)) {
    showKeyPanel("An API key is printable ASCII without spaces, e.g. the line in .dev/api-key.");
    return;
  }
  // Checked before it replaces the saved key: a typo stays in the field, to be fixed.
  let answer;
  try {
    answer = await fetch("/v1/videos?limit=1", { headers: { Authorization: `Bearer ${key}` } });
  } catch (_) {
    answer = null; // the server is away: keep the key, the list says what is wrong
  }
  if (answer && answer.status === 401) {
    const problem = await problemOf(answer);
    showKeyPanel(`The server refused this key: ${problem.detail} (${problem.code}).`);
    $("key").select();
    return;
  }
  localStorage.setItem(KEY_STORAGE, key);
  $("key").value = "";
  showKeyState();
  hideKeyPanel();
  $("key-toggle").focus();
  refreshRecent();
  if (pendingUpload) {
    const chosen = pendingUpload;
    pendingUpload = null;
    upload(chosen);
  }
});
$("forget-key").addEventListener("click", () => {
  localStorage.removeItem(KEY_STORAGE);
  showKeyState();
  stopPlayer();
  refreshRecent(); // a server that needs a key says so, in the panel
});

$("video").addEventListener("volumechange", showMuteHint);
$("video").addEventListener("timeupdate", () => {
  const el = $("video");
  if (Number.isFinite(el.duration)) $("scrub").max = el.duration;
  if (document.activeElement !== $("scrub")) $("scrub").value = el.currentTime;
});
$("scrub").addEventListener("input", () => { $("video").currentTime = Number($("scrub").value); });
$("scrub").addEventListener("pointermove", (e) => previewAt(e.clientX));
$("scrub").addEventListener("pointerleave", () => { $("seek-thumb").hidden = true; });
$("unmute").addEventListener("click", unmute);

const choice = (track) => track && { name: track.name, lang: track.lang };
$("audio-track").addEventListener("change", (e) => {
  if (!hls) return;
  const index = Number(e.target.value);
  trackChoice.audio = choice(hls.audioTracks[index]);
  hls.audioTrack = index;
});
$("subtitle-track").addEventListener("change", (e) => {
  if (!hls) return;
  const index = Number(e.target.value);
  trackChoice.subtitles = index >= 0 ? choice(hls.subtitleTracks[index]) : null;
  hls.subtitleDisplay = index >= 0;
  hls.subtitleTrack = index;
});
$("caption-form").addEventListener("submit", (e) => {
  e.preventDefault();
  addCaption();
});
$("caption-list").addEventListener("click", (e) => {
  const button = e.target.closest("button[data-action=delete-caption]");
  if (button && currentId) deleteCaption(currentId, button.closest("li").dataset.id, button);
});

showKeyState();
refreshRecent();
