// ProStream's page: upload with a progress bar, follow the job, play the HLS result.
// No framework: the API does the work; this file only talks to it.
"use strict";

const KEY_STORAGE = "prostream.apiKey";
const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

// --- talking to the API ----------------------------------------------------------------------------

function authHeaders() {
  const key = localStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Asked once, when the API first answers 401; kept in this browser's local storage.
function askForKey() {
  const key = prompt("This ProStream server needs an API key:");
  if (!key) return false;
  localStorage.setItem(KEY_STORAGE, key.trim());
  $("forget-key").hidden = false;
  return true;
}

// A problem+json body's `detail` (and `code`), or a plain description of the failure.
async function problemOf(response) {
  try {
    const problem = await response.json();
    if (problem.detail) return { code: problem.code, detail: problem.detail };
  } catch (_) { /* not JSON */ }
  return { code: `http_${response.status}`, detail: `the server answered ${response.status} ${response.statusText}` };
}

async function api(path, options = {}) {
  for (;;) {
    const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...(options.headers || {}) } });
    if (response.status === 401 && askForKey()) continue;
    if (!response.ok) throw await problemOf(response);
    return response.status === 204 ? null : response.json();
  }
}

// fetch() cannot report upload progress; XMLHttpRequest can.
function uploadFile(file, onProgress) {
  return new Promise((resolve, reject) => {
    const send = () => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/v1/videos?title=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
      xhr.upload.onprogress = (e) => e.lengthComputable && onProgress(e.loaded / e.total);
      xhr.onerror = () => reject({ code: "network_error", detail: "the upload broke off; check the connection and try again" });
      xhr.onload = () => {
        if (xhr.status === 401 && askForKey()) return send();
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
        if (xhr.status === 202 && body) return resolve(body);
        reject(body && body.detail ? { code: body.code, detail: body.detail }
                                   : { code: `http_${xhr.status}`, detail: `the server answered ${xhr.status}` });
      };
      xhr.send(file);
    };
    send();
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

let following = null; // the id of the video the upload card follows

async function upload(file) {
  showProblem(null);
  showJob(file.name, "uploading", 0, `${(file.size / 1e6).toFixed(1)} MB`);
  let video;
  try {
    video = await uploadFile(file, (done) => showJob(file.name, "uploading", done * 100,
      `${(done * file.size / 1e6).toFixed(1)} of ${(file.size / 1e6).toFixed(1)} MB`));
  } catch (problem) {
    $("job").hidden = true;
    showProblem(problem);
    return;
  }
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

async function follow(video) {
  if (video.id !== following) return;
  const [status, percent, detail] = describe(video);
  showJob(video.title, status, percent, detail);
  if (video.playable && video.playback && currentSource !== video.playback.hls) play(video);
  if (video.status === "ready" && currentSource === video.playback.hls) $("player-info").textContent = "";
  if (["ready", "failed", "canceled"].includes(video.status)) {
    refreshRecent();
    return;
  }
  setTimeout(async () => {
    try { follow(await api(`/v1/videos/${video.id}`)); } catch (problem) { showProblem(problem); }
  }, POLL_MS);
}

// --- the player ------------------------------------------------------------------------------------

let hls = null;
let currentSource = null;

function play(video) {
  const el = $("video");
  currentSource = video.playback.hls;
  $("player").hidden = false;
  $("player-title").textContent = video.title;
  $("player-info").textContent = video.status === "ready" ? "" : "Still encoding: the rest arrives as you watch.";
  if (video.playback.poster) el.poster = video.playback.poster;
  if (hls) { hls.destroy(); hls = null; }
  if (window.Hls && Hls.isSupported()) {
    hls = new Hls();
    hls.on(Hls.Events.ERROR, (_, data) => {
      if (data.fatal) $("player-info").textContent = `Playback error: ${data.details}`;
    });
    hls.loadSource(currentSource);
    hls.attachMedia(el);
  } else {
    el.src = currentSource; // Safari plays HLS natively
  }
  el.play().catch(() => { /* autoplay refused: the controls are there */ });
}

// --- recent videos ---------------------------------------------------------------------------------

function cell(row, text) {
  const td = row.insertCell();
  td.textContent = text;
  return td;
}

async function refreshRecent() {
  let page;
  try { page = await api("/v1/videos?limit=10"); } catch (problem) { showProblem(problem); return; }
  const body = $("recent");
  body.replaceChildren();
  for (const video of page.items) {
    const row = body.insertRow();
    row.dataset.id = video.id;
    const thumb = row.insertCell();
    if (video.playback && video.playback.poster) {
      const img = document.createElement("img");
      img.src = video.playback.poster;
      img.alt = "";
      thumb.append(img);
    }
    cell(row, video.title);
    const status = cell(row, "");
    const badge = document.createElement("span");
    badge.className = `badge ${video.status}`;
    badge.textContent = video.status;
    status.append(badge);
    cell(row, video.source.duration_s == null ? "—" : `${video.source.duration_s.toFixed(1)} s`);
    cell(row, video.renditions.map((r) => r.name).join(", ") || "—");
    if (video.playable && video.playback) {
      row.className = "playable";
      row.title = "Play";
      row.onclick = () => play(video);
    }
  }
}

// --- wiring ----------------------------------------------------------------------------------------

const drop = $("drop");
$("file").addEventListener("change", (e) => e.target.files[0] && upload(e.target.files[0]));
drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (e) => {
  e.preventDefault();
  drop.classList.remove("over");
  if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
});
$("forget-key").hidden = !localStorage.getItem(KEY_STORAGE);
$("forget-key").addEventListener("click", () => { localStorage.removeItem(KEY_STORAGE); $("forget-key").hidden = true; });
refreshRecent();
