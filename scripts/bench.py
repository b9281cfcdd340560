"""ProStream benchmarks, driven by scripts/bench (which starts the stack and sets the environment).

Every figure is measured side by side with its comparison point in this one run, on this machine,
and written to BENCHMARKS.md with the ratio and the command that reproduces it.
"""

import contextlib
import datetime
import json
import os
import platform
import re
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path



def stack(name):
    """A setting of the stack scripts/bench started (scripts/lib/stack.sh); empty when it started
    none (BENCH_ONLY=fuzz)."""
    return os.environ.get(name, "")


API = stack("STACK_URL")
# The stack's API key; every /v1 request but public playback carries it.
AUTH_HEADER = "Authorization: Bearer " + stack("STACK_KEY")
AUTH = dict([AUTH_HEADER.split(": ", 1)])
SCRATCH = Path(stack("STACK_DIR") or ".")
MEDIA = Path(stack("MEDIA_ROOT") or ".")
API_PID = int(stack("STACK_API_PID") or 0)
WORKER_LOGS = [Path(p) for p in stack("STACK_WORKER_LOGS").split(":") if p]
QUICK = os.environ.get("BENCH_QUICK") == "1"
REPO = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;]*m")

rows = []  # (benchmark, ours, comparison, ratio, goal, verdict, command)


def log(msg):
    print(f"==> {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def timed(cmd, first_listed=None):
    """Wall seconds and CPU seconds (user + system of the children) of a command.

    With `first_listed` (a list of playlist paths) it also returns the seconds until every one of
    them lists a segment: when a player could start on the bare command's output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, shell=isinstance(cmd, str))
    listed_after = None
    while first_listed and listed_after is None and proc.poll() is None:
        if all(p.exists() and ".m4s" in p.read_text() for p in first_listed):
            listed_after = time.perf_counter() - start
        time.sleep(0.02)
    if proc.wait() != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return (wall, cpu, listed_after) if first_listed else (wall, cpu)


def http_json(method, path, body=None, headers=None):
    req = urllib.request.Request(API + path, data=body, method=method, headers={**AUTH, **(headers or {})})
    with urllib.request.urlopen(req, timeout=600) as resp:
        return resp.status, json.loads(resp.read() or b"null")


def upload(path):
    with open(path, "rb") as f:
        # Public: its HLS is served as players and nginx get it, without a signed URL.
        status, video = http_json("POST", "/v1/videos?visibility=public", f.read(), {"Content-Type": "video/mp4"})
    assert status == 202, video
    return video["id"]


def wait_status(video_id, wanted, interval=0.25, limit=3600):
    deadline = time.time() + limit
    while time.time() < deadline:
        _, video = http_json("GET", f"/v1/videos/{video_id}")
        if video["status"] in wanted:
            return video
        time.sleep(interval)
    raise TimeoutError(f"{video_id} not {wanted}")


def psql(sql):
    out = run(["psql", "-X", "-At", "-d", os.environ["DATABASE_URL"], "-c", sql], capture_output=True, text=True)
    return out.stdout.strip()


def make_clip(name, secs, width, height):
    """Noisy test pattern with a tone, at a high bitrate: testsrc2 alone is too easy to encode."""
    path = SCRATCH / name
    run([
        "ffmpeg", "-v", "error", "-y",
        "-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate=30:duration={secs}",
        "-f", "lavfi", "-i", f"sine=frequency=440:duration={secs}",
        "-vf", "noise=alls=20:allf=t+u", "-c:v", "libx264", "-preset", "ultrafast", "-b:v", "20M",
        "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path),
    ])
    return path


def worker_command(video_id):
    """The exact ffmpeg command a worker ran for the video, from its debug log."""
    for log_path in WORKER_LOGS:
        for line in log_path.read_text().splitlines():
            line = ANSI.sub("", line)
            if video_id in line and "running ffmpeg" in line and "command=" in line:
                return shlex.split(line.split("command=", 1)[1])
    raise LookupError(f"no ffmpeg command logged for {video_id}")


def add(bench, ours, comparison, ratio, goal, met, command):
    verdict = "—" if met is None else ("met" if met else "not met")
    rows.append((bench, ours, comparison, ratio, goal, verdict, command))
    log(f"{bench}: {ours} vs {comparison} ({ratio}) {verdict}")


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# --- 1 and 2: pipeline overhead, single decode against one process per rung -------------------------

def upload_and_time_playable(clip, until_ready):
    """Uploads; returns (id, seconds from the upload's response to `playable`, the final video)."""
    video_id = upload(clip)
    uploaded = time.perf_counter()
    playable_after = None
    while True:
        _, video = http_json("GET", f"/v1/videos/{video_id}")
        if playable_after is None and video.get("playable"):
            playable_after = time.perf_counter() - uploaded
            if not until_ready:
                return video_id, playable_after, video
        if video["status"] in {"ready", "failed", "canceled"}:
            return video_id, playable_after, video
        time.sleep(0.05)


def bench_pipeline(clip, duration):
    start = time.perf_counter()
    video_id, playable_after, video = upload_and_time_playable(clip, until_ready=True)
    pipeline_wall = time.perf_counter() - start
    assert video["status"] == "ready", video
    cmd = worker_command(video_id)
    bare_out = SCRATCH / "bare"
    bare_out.mkdir(exist_ok=True)
    attempt_dir = str(MEDIA / "videos" / video_id / video["playback"]["hls"].split("/")[-2]) + "/"
    bare_cmd = [a.replace(attempt_dir, str(bare_out) + "/") for a in cmd]
    playlists = [bare_out / f"{r['name']}.m3u8" for r in video["renditions"]]
    bare_wall, bare_cpu, bare_listed = timed(bare_cmd, first_listed=playlists)
    add(f"3. Time to first playable ({duration} s clip)", f"{playable_after:.2f} s after the upload's response",
        f"{bare_listed:.2f} s for the same ffmpeg command, run bare, to list a segment in every rung",
        f"{playable_after / bare_listed:.2f}×", "≤ 3 s", playable_after <= 3,
        "poll GET /v1/videos/{id} every 50 ms for playable: true; the bare command's playlists every 20 ms")
    ratio = pipeline_wall / bare_wall
    add("1. Pipeline overhead: upload → ready (wall)", f"{pipeline_wall:.1f} s", f"{bare_wall:.1f} s bare ffmpeg",
        f"{ratio:.2f}×", "≤ 1.10×", ratio <= 1.10,
        "the worker's logged ffmpeg command, rerun by hand on the same file")
    return video, bare_cmd, bare_wall, bare_cpu


def per_rung_commands(source, rungs, crf, out_dir):
    """The peers' way: one ffmpeg per rung, each decoding the source, same encoder settings."""
    out_dir.mkdir(exist_ok=True)
    cmds = []
    for r in rungs:
        kbps = int(r["bandwidth_target"])
        cmds.append([
            "ffmpeg", "-hide_banner", "-nostdin", "-y", "-loglevel", "error", "-i", str(source),
            "-vf", f"scale={r['width']}:{r['height']},setsar=1",
            "-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-pix_fmt", "yuv420p",
            "-sc_threshold", "0", "-flags", "+cgop", "-g", "60", "-keyint_min", "60",
            "-force_key_frames", "expr:gte(t,if(eq(n_forced,0),0,1+2*(n_forced-1)))",
            "-crf", str(crf), "-maxrate", f"{kbps}k", "-bufsize", f"{kbps * 3 // 2}k",
            "-c:a", "aac", "-b:a", "128k", "-ac", "2",
            "-f", "hls", "-hls_time", "2", "-hls_init_time", "1", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
            "-hls_fmp4_init_filename", f"{r['name']}_init.mp4",
            "-hls_segment_filename", str(out_dir / f"{r['name']}_%05d.m4s"), str(out_dir / f"{r['name']}.m3u8"),
        ])
    return cmds


def rate_control_args(cmd):
    """The worker's CRF and per-rung caps in kbit/s, from its command (-crf 23, -maxrate:v:N 2800k)."""
    caps = {}
    for i, a in enumerate(cmd):
        m = re.fullmatch(r"-maxrate:v:(\d+)", a)
        if m:
            caps[int(m.group(1))] = int(cmd[i + 1].rstrip("k"))
    return int(cmd[cmd.index("-crf") + 1]), [caps[i] for i in sorted(caps)]


def bench_first_playable_long(width, height):
    """A 10-minute source: playable as fast as a short one, then deleted (its encode is not needed)."""
    long_clip = make_clip("long.mp4", 600, width, height)
    video_id, playable_after, _ = upload_and_time_playable(long_clip, until_ready=False)
    req = urllib.request.Request(f"{API}/v1/videos/{video_id}", method="DELETE", headers=AUTH)
    urllib.request.urlopen(req, timeout=60).read()
    add("3. Time to first playable (600 s clip)", f"{playable_after:.2f} s after the upload's response", "—", "—",
        "≤ 3 s, whatever the length", playable_after <= 3, "as above, with a 10-minute clip; then DELETE")
    long_clip.unlink()


def bench_single_decode(clip, video, bare_cmd, bare_wall, bare_cpu):
    crf, caps = rate_control_args(bare_cmd)
    rungs = [dict(r, bandwidth_target=cap) for r, cap in zip(video["renditions"], caps)]
    wall = cpu = 0.0
    for cmd in per_rung_commands(clip, rungs, crf, SCRATCH / "per-rung"):
        w, c = timed(cmd)
        wall += w
        cpu += c
    add(f"2a. Single decode, CPU ({len(rungs)} rungs)", f"{bare_cpu:.0f} CPU-s", f"{cpu:.0f} CPU-s, one process per rung",
        f"{bare_cpu / cpu:.2f}×", "< 1× (reference 0.68×)", bare_cpu < cpu, "scripts/bench: per_rung_commands()")
    add(f"2b. Single decode, wall ({len(rungs)} rungs)", f"{bare_wall:.1f} s", f"{wall:.1f} s, one process per rung",
        f"{bare_wall / wall:.2f}×", "< 1× (reference 0.64×)", bare_wall < wall, "scripts/bench: per_rung_commands()")


# --- 2c: audio encoded once per track, not once per rung ---------------------------------------------

def bench_audio_once(clip, rungs, whole_cpu=None):
    """The CPU of encoding the source's audio once (the worker's way since each audio track is its
    own rendition that every rung plays with) against once per rung (before, every rung's variant
    carried its own AAC). One ffmpeg decodes the audio once either way: only the encoding differs.
    The two commands alternate, so both see the same load; the median of five runs each."""
    def cmd(copies):
        c = ["ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error", "-i", str(clip)]
        for _ in range(copies):
            c += ["-map", "0:a:0", "-c:a", "aac", "-b:a", "128k", "-ac", "2", "-ar", "48000", "-f", "null", "-"]
        return c
    once, per_rung = [], []
    for _ in range(5):
        once.append(timed(cmd(1))[1])
        per_rung.append(timed(cmd(rungs))[1])
    o, p = statistics.median(once), statistics.median(per_rung)
    share = ""
    if whole_cpu:
        share = f"; {(p - o) / (whole_cpu + p - o):.1%} of the {whole_cpu + p - o:.0f} CPU-s a per-rung encode took"
    add(f"2c. Audio encoded once, not once per rung ({rungs} rungs)", f"{o:.2f} CPU-s{share}",
        f"{p:.2f} CPU-s, one AAC encode per rung", f"{o / p:.2f}×", "< 1×", o < p,
        f"scripts/bench: bench_audio_once(), {clip.name}, median of 5 alternated runs each")


# --- 4: queue latency -------------------------------------------------------------------------------

def claim_latencies(ids):
    rows_ = psql(
        "SELECT extract(epoch FROM j.started_at - v.created_at) * 1000 FROM jobs j JOIN videos v ON v.id = j.video_id "
        f"WHERE v.id IN ({','.join(repr(i) for i in ids)}) AND j.started_at IS NOT NULL"
    )
    return [float(x) for x in rows_.splitlines()]


def bench_queue_latency(tiny):
    idle_ids = []
    for _ in range(20 if QUICK else 50):
        video_id = upload(tiny)
        wait_status(video_id, {"ready", "failed"}, interval=0.05)
        idle_ids.append(video_id)
    idle = claim_latencies(idle_ids)
    p50, p99 = pct(idle, 50), pct(idle, 99)
    add("4a. Queue latency, idle workers (insert → claim)", f"p50 {p50:.0f} ms, p99 {p99:.0f} ms", "—", "—",
        "p50 ≤ 50 ms", p50 <= 50, f"{len(idle)} tiny uploads one at a time; jobs.started_at − videos.created_at")
    burst_ids = [upload(tiny) for _ in range(50 if QUICK else 200)]
    for video_id in burst_ids:
        wait_status(video_id, {"ready", "failed"}, interval=0.2)
    burst = claim_latencies(burst_ids)
    add("4b. Queue latency, burst (insert → claim)", f"p50 {pct(burst, 50):.0f} ms, p99 {pct(burst, 99):.0f} ms",
        "—", "—", "informative (a backlog on 2 workers)", None, f"{len(burst)} tiny uploads as fast as possible")


# --- 5: API and HLS serving against nginx ------------------------------------------------------------

def wrk(url, seconds=8, headers=()):
    extra = [a for h in headers for a in ("-H", h)]
    out = run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", *extra, url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale


def cpu_ticks(pids):
    """User + system CPU of `pids` so far, in clock ticks."""
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total


SERVING_ROUNDS = 3


def wrk_with_cpu(url, pids, seconds=5):
    """wrk against `url`: (req/s, p99 ms, CPU µs per request of `pids`)."""
    before = cpu_ticks(pids)
    out = run(["wrk", "-t2", "-c64", f"-d{seconds}s", "--latency", url], capture_output=True, text=True).stdout
    cpu_s = (cpu_ticks(pids) - before) / os.sysconf("SC_CLK_TCK")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    return rps, float(p99.group(1)) * scale, cpu_s * 1e6 / requests


def bench_serving(video):
    video_id = video["id"]
    rps, p99 = wrk(f"{API}/v1/videos/{video_id}", headers=[AUTH_HEADER])
    add("5a. GET /v1/videos/{id} at 64 connections", f"{rps:.0f} req/s, p99 {p99:.1f} ms", "—", "—",
        "informative", None, f"wrk -t2 -c64 -d8s --latency -H 'Authorization: Bearer KEY' {API}/v1/videos/ID")
    key = video["playback"]["hls"].split("/")[-2]
    # The attempt's directory URL as playback.hls names it (signed for a private video).
    hls_dir = video["playback"]["hls"].rsplit("/", 1)[0]
    out = MEDIA / "videos" / video_id / key
    # The top rung's segment (bytes dominate) and the bottom rung's (per-request cost dominates).
    names = [r["name"] for r in video["renditions"]]
    segments = [f"{names[0]}_00001.m4s", f"{names[-1]}_00001.m4s"]
    conf = SCRATCH / "nginx.conf"
    port = free_port()
    conf.write_text(f"""
worker_processes auto;
pid {SCRATCH}/nginx.pid;
error_log {SCRATCH}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    server {{
        listen 127.0.0.1:{port};
        root {MEDIA}/videos;
    }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-g", "daemon off;"])
    try:
        wait_http(f"http://127.0.0.1:{port}/{video_id}/{key}/{segments[0]}")
        nginx_workers = [int(p) for p in run(["pgrep", "-P", str(nginx.pid)], capture_output=True,
                                             text=True).stdout.split()]
        for segment in segments:
            size_kb = (out / segment).stat().st_size / 1000
            # Alternated rounds: the machine's load drifts, and each side gets its share of it.
            ours, theirs = [], []
            for _ in range(SERVING_ROUNDS):
                ours.append(wrk_with_cpu(f"{API}{hls_dir}/{segment}", [API_PID]))
                theirs.append(wrk_with_cpu(f"http://127.0.0.1:{port}/{video_id}/{key}/{segment}", nginx_workers))
            ratio = statistics.median(o[0] / t[0] for o, t in zip(ours, theirs))
            med = lambda runs, i: statistics.median(r[i] for r in runs)  # noqa: E731
            add(f"5b. HLS segment serving, {segment} ({size_kb:.0f} kB)",
                f"{med(ours, 0):.0f} req/s (p99 {med(ours, 1):.1f} ms; {med(ours, 2):.0f} µs CPU per request)",
                f"{med(theirs, 0):.0f} req/s nginx (p99 {med(theirs, 1):.1f} ms; {med(theirs, 2):.0f} µs CPU per request)",
                f"{ratio:.2f}×", "≥ 0.7× nginx", ratio >= 0.7,
                f"wrk -t2 -c64 -d5s on {segment} through the API and through nginx (same file), {SERVING_ROUNDS} "
                "alternated rounds each: medians, ratio = median of the rounds' ratios")
    finally:
        nginx.terminate()
        nginx.wait()


def free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, limit=10):
    deadline = time.time() + limit
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read(1)
            return
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.1)


# --- 6: upload ingest ---------------------------------------------------------------------------------

def curl_upload(path):
    return ["curl", "-sS", "-o", "/dev/null", "-X", "POST", "-T", str(path),
            "-H", "Content-Type: application/octet-stream", "-H", AUTH_HEADER, f"{API}/v1/videos"]


def vm_hwm_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1))


def vm_rss_kib(pid):
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


@contextlib.contextmanager
def rss_sampled(pid, every):
    """While the block runs, samples the VmRSS (KiB) of `pid` every `every` seconds into the list
    it yields; the first sample is taken before the block starts."""
    samples = [vm_rss_kib(pid)]
    done = threading.Event()

    def sample():
        while not done.is_set():
            samples.append(vm_rss_kib(pid))
            time.sleep(every)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        yield samples
    finally:
        done.set()
        sampler.join()


def bench_ingest():
    size_gb = 0.5 if QUICK else 2
    big = SCRATCH / "big.bin"
    run(["head", "-c", f"{int(size_gb * 1024)}M", "/dev/urandom"], stdout=open(big, "wb"))
    copy_target = MEDIA / "copy-test.bin"
    disk_wall, _ = timed(["dd", f"if={big}", f"of={copy_target}", "bs=1M", "conv=fsync", "status=none"])
    copy_target.unlink()
    wall, _ = timed(curl_upload(big))  # random bytes: stored, fsynced, probed, refused (415)
    mb = big.stat().st_size / 1e6
    add(f"6a. Upload ingest ({size_gb:g} GB raw body)", f"{mb / wall:.0f} MB/s", f"{mb / disk_wall:.0f} MB/s dd with fsync",
        f"{disk_wall / wall:.2f}×", "informative", None, "curl -T FILE -X POST …/v1/videos vs dd conv=fsync")
    part = SCRATCH / "part.bin"
    run(["head", "-c", "64M" if QUICK else "512M", str(big)], stdout=open(part, "wb"))
    with rss_sampled(API_PID, 0.05) as rss:
        procs = [subprocess.Popen(curl_upload(part)) for _ in range(16)]
        for p in procs:
            p.wait()
    baseline = rss[0]
    peak_mb = max(rss) / 1024
    add(f"6b. API peak RSS, 16 concurrent {part.stat().st_size // 2**20} MB uploads", f"{peak_mb:.0f} MB",
        f"{baseline / 1024:.0f} MB before", "—", "< 100 MB", peak_mb < 100, "16 × curl -T in parallel; VmRSS sampled")
    big.unlink()
    part.unlink()


# --- 8: RSS under attack ------------------------------------------------------------------------------

ATTACK_BYTES = 1 << 30  # what each hostile client is prepared to send
BOUNDARY = "benchboundary"


def hostile_request(head, body_prefix, filler, chunked):
    """Sends `head`, then `body_prefix` and `filler` up to ATTACK_BYTES (chunk-framed when `chunked`,
    else raw: a request line or header that never ends), until the API answers or hangs up.
    Returns (status, code, bytes sent)."""
    import select
    import socket
    host, port = API.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)))
    sock.settimeout(10)
    block = filler * (64 << 10)
    frame = (lambda data: b"%x\r\n" % len(data) + data + b"\r\n") if chunked else (lambda data: data)
    sent = 0
    try:
        sock.sendall(head + frame(body_prefix))
        while sent < ATTACK_BYTES:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer (or the hang-up) is there
            sock.sendall(frame(block))
            sent += len(block)
    except OSError:
        pass  # reset or stalled: the API stopped reading
    answer = b""
    try:
        while b"\r\n\r\n" not in answer or len(answer) < answer.index(b"\r\n\r\n") + 4 + content_length(answer):
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except OSError:
        pass
    sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    code = None
    if b"\r\n\r\n" in answer:
        body = answer.split(b"\r\n\r\n", 1)[1]
        try:
            code = json.loads(body).get("code")
        except ValueError:
            pass
    return status, code, sent


def content_length(answer):
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1")
    match = re.search(r"(?im)^content-length:\s*(\d+)", head)
    return int(match.group(1)) if match else 0


def bench_attack():
    host = API.removeprefix("http://")
    common = f"Host: {host}\r\n{AUTH_HEADER}\r\n"
    chunked = "Transfer-Encoding: chunked\r\n\r\n"
    multipart = f"POST /v1/videos HTTP/1.1\r\n{common}Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n{chunked}"
    kinds = [
        ("JSON body (URL ingest)",
         f"POST /v1/videos HTTP/1.1\r\n{common}Content-Type: application/json\r\n{chunked}",
         b'{"url": "http://example.com/a.mp4", "title": "', b"a", True),
        ("multipart title field", multipart,
         f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="title"\r\n\r\n'.encode(), b"t", True),
        ("endless multipart part header", multipart,
         f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; x="'.encode(), b"h", True),
        ("tus Upload-Metadata header",
         f"POST /v1/uploads HTTP/1.1\r\n{common}Tus-Resumable: 1.0.0\r\nUpload-Length: 1000\r\n", b"Upload-Metadata: title ",
         b"A", False),
        ("long query string", f"GET /v1/videos?title=", b"", b"q", False),
    ]
    for name, head, prefix, filler, chunked_body in kinds:
        with rss_sampled(API_PID, 0.02) as rss:
            status, code, sent = hostile_request(head.encode(), prefix, filler, chunked_body)
        before = rss[0]
        peak_mb = max(rss) / 1024
        answer = f"{status} {code or '(no body)'}" if status else "no answer"
        add(f"8. API RSS under attack: 1 GiB {name}", f"{peak_mb:.0f} MB peak; {answer}",
            f"{before / 1024:.0f} MB before; client sent {sent / 2**20:.1f} MiB before the answer", "—",
            "≤ 100 MB and a 4xx", peak_mb <= 100 and status is not None and 400 <= status < 500,
            "one raw-socket client ready to send 1 GiB, stopping at the answer; VmRSS sampled every 20 ms")
    add("8. API VmHWM after the attacks", f"{vm_hwm_kib(API_PID) / 1024:.0f} MB", "—", "—", "≤ 100 MB",
        vm_hwm_kib(API_PID) <= 100 * 1024, "/proc/PID/status VmHWM (whole run so far)")


# --- 7: bits for quality ------------------------------------------------------------------------------

def bench_quality(video, clip, duration):
    video_dir = MEDIA / "videos" / video["id"] / video["playback"]["hls"].split("/")[-2]
    for r in video["renditions"]:
        name = r["name"]
        size = sum(p.stat().st_size for p in video_dir.glob(f"{name}_*.m4s"))
        mb_per_min = size / 1e6 / (duration / 60)
        out = subprocess.run([
            "ffmpeg", "-hide_banner", "-nostats", "-i", str(video_dir / f"{name}.m3u8"), "-i", str(clip),
            "-lavfi", f"[1:v]scale={r['width']}:{r['height']}:flags=bicubic[ref];[0:v][ref]ssim", "-f", "null", "-",
        ], capture_output=True, text=True, check=True).stderr
        ssim = float(re.search(r"All:([\d.]+)", out).group(1))
        add(f"7. {name}: size and SSIM", f"{mb_per_min:.1f} MB/min, SSIM {ssim:.4f}", "source scaled to the rung",
            "—", "informative", None, "ffmpeg -i RUNG.m3u8 -i SOURCE -lavfi '[1:v]scale=W:H[ref];[0:v][ref]ssim' -f null -")


# Four kinds of picture, from hardest to easiest to encode; lossless 720p30 sources.
RATE_CONTROL_CONTENT = [
    ("noisy test pattern", "testsrc2=size=1280x720:rate=30,noise=alls=20:allf=t+u"),
    ("fractal zoom", "mandelbrot=size=1280x720:rate=30"),
    ("cellular automaton", "life=size=320x180:mold=10:rate=30:ratio=0.1:death_color=#C83232:life_color=#00ff00,"
                           "scale=1280:720:flags=neighbor"),
    ("slides (mostly still)", "testsrc=size=1280x720:rate=30"),
]
# The 720p rung: its cap, and the ABR setting the worker used before (average 2800k, peak 1.07×).
RATE_CONTROL_CAP_KBPS = 2800
ABR_ARGS = ["-b:v", "2800k", "-maxrate", "2996k", "-bufsize", "4200k"]


def encode_and_ssim(source, rate_args, out):
    run(["ffmpeg", "-v", "error", "-y", "-i", str(source), "-an", "-c:v", "libx264", "-preset", "veryfast",
         "-profile:v", "high", "-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
         *rate_args, str(out)])
    err = subprocess.run(["ffmpeg", "-hide_banner", "-nostats", "-i", str(out), "-i", str(source),
                          "-lavfi", "[0:v][1:v]ssim", "-f", "null", "-"],
                         capture_output=True, text=True, check=True).stderr
    return out.stat().st_size, float(re.search(r"All:([\d.]+)", err).group(1))


def bench_rate_control(crf):
    """7b: the worker's capped CRF against plain ABR at the 720p rung, on four kinds of content."""
    secs = 10
    capped_args = ["-crf", str(crf), "-maxrate", f"{RATE_CONTROL_CAP_KBPS}k",
                   "-bufsize", f"{RATE_CONTROL_CAP_KBPS * 3 // 2}k"]
    total_crf = total_abr = 0
    worst_delta = 1.0
    for name, graph in RATE_CONTROL_CONTENT:
        source = SCRATCH / "rc-source.mkv"
        run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", graph, "-t", str(secs),
             "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", str(source)])
        crf_bytes, crf_ssim = encode_and_ssim(source, capped_args, SCRATCH / "rc-crf.mp4")
        abr_bytes, abr_ssim = encode_and_ssim(source, ABR_ARGS, SCRATCH / "rc-abr.mp4")
        total_crf += crf_bytes
        total_abr += abr_bytes
        worst_delta = min(worst_delta, crf_ssim - abr_ssim)
        add(f"7b. 720p, {name}: capped CRF vs ABR",
            f"CRF {crf} ≤ {RATE_CONTROL_CAP_KBPS}k: {crf_bytes / 1e6:.2f} MB, SSIM {crf_ssim:.4f}",
            f"ABR 2800k: {abr_bytes / 1e6:.2f} MB, SSIM {abr_ssim:.4f}", f"{crf_bytes / abr_bytes:.2f}× bytes",
            "informative", None, f"scripts/bench: bench_rate_control(), {secs} s lossless `{graph.split(',')[0]}`")
        for f in (source, SCRATCH / "rc-crf.mp4", SCRATCH / "rc-abr.mp4"):
            f.unlink()
    ratio = total_crf / total_abr
    met = ratio < 1 and worst_delta >= -0.002
    add("7b. Decision: capped CRF (the worker's) over ABR", f"{total_crf / 1e6:.2f} MB in all, worst ΔSSIM "
        f"{worst_delta:+.4f}", f"{total_abr / 1e6:.2f} MB in all with ABR", f"{ratio:.2f}× bytes",
        "fewer bytes, no content worse by more than 0.002 SSIM", met, "the four rows above")


# --- fuzzing: the parsers that take untrusted bytes, each for a bounded time ------------------------

FUZZ_SECONDS = 20 if QUICK else 60


def bench_fuzz():
    """Runs scripts/fuzz.sh (every cargo-fuzz target, FUZZ_SECONDS each) and records each target's
    executions. A crash fails the script, and so this benchmark."""
    cmd = ["bash", "scripts/fuzz.sh", str(FUZZ_SECONDS)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    found = re.findall(r"^fuzz: (\S+) runs=(\d+) seconds=(\d+) corpus=(\d+) exit=(\d+)$", proc.stdout, re.M)
    for target, runs, seconds, corpus, code in found:
        add(
            f"fuzz `{target}`",
            f"{int(runs):,} inputs in {seconds} s, corpus {corpus}, no crash" if code == "0" else f"exit {code}",
            "—",
            "—",
            "no crash, no panic",
            code == "0",
            f"`bash scripts/fuzz.sh {seconds} {target}`",
        )
    if proc.returncode != 0:
        log(proc.stderr[-4000:])
        add("fuzzing", f"scripts/fuzz.sh failed (exit {proc.returncode})", "—", "—", "no crash", False, "`bash scripts/fuzz.sh`")

# --- 8: the job state machine under random interleavings ----------------------------------------------

# At least 10,000 operations (PROSTREAM_STATE_INTERLEAVINGS of worker/tests/it/state_machine.rs).
STATE_INTERLEAVINGS = int(os.environ.get("BENCH_STATE_INTERLEAVINGS", "10000"))


def bench_state_machine():
    """Runs the randomised state-machine test with many interleavings; records the count and the
    wall time of the test itself (as it prints it), and the seed to replay the run."""
    env = dict(os.environ, PROSTREAM_STATE_INTERLEAVINGS=str(STATE_INTERLEAVINGS))
    cmd = ["bash", "scripts/test.sh", "-p", "prostream-worker", "--test", "it",
           "-E", "test(/^state_machine::random_interleavings/)", "--no-capture"]
    out = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
    text = ANSI.sub("", out.stdout + out.stderr)
    seed = re.search(r"PROSTREAM_FUZZ_SEED=(\d+)", text)
    timing = re.search(r"(\d+) interleavings on (\d+) jobs in ([\d.]+) s", text)
    if out.returncode != 0 or not timing:
        log(text[-4000:])
    add("8. Job state machine, random interleavings (invariants hold)",
        f"{timing.group(1)} operations on {timing.group(2)} jobs in {timing.group(3)} s" if timing else "failed",
        "—", "—", "every invariant holds", out.returncode == 0,
        f"PROSTREAM_STATE_INTERLEAVINGS={STATE_INTERLEAVINGS} PROSTREAM_FUZZ_SEED={seed.group(1) if seed else '?'} "
        f"{shlex.join(cmd)}")


def machine():
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    ffmpeg = run(["ffmpeg", "-version"], capture_output=True, text=True).stdout.splitlines()[0]
    return f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, {ffmpeg}"


def write_report(duration, clip_desc, started):
    lines = [
        "# Benchmarks",
        "",
        f"Written by `scripts/bench{' (BENCH_QUICK=1)' if QUICK else ''}` on {started:%Y-%m-%d %H:%M} UTC; "
        f"machine: {machine()}.",
        f"Source clip: {clip_desc}. Every ratio is ours ÷ the comparison, measured side by side in this run. "
        "The machine is shared and noisy: compare ratios, not absolute times, between runs. "
        "Load average (1, 5, 15 min) when the report was written: "
        + ", ".join(f"{x:.1f}" for x in os.getloadavg()) + ".",
        "",
        "| benchmark | ProStream | comparison | ratio | goal | verdict | how |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |")
    lines += [
        "",
    ]
    (REPO / "BENCHMARKS.md").write_text("\n".join(lines))
    log(f"wrote {REPO / 'BENCHMARKS.md'}")


def rerun_rows(section, prefixes, started):
    """Replaces the rows of one section (those whose name starts with one of `prefixes`) in the BENCHMARKS.md
    of the last full run with this run's, and says so under the header: the other rows keep their
    own run's date, so a reader can tell which figures were measured together."""
    report = REPO / "BENCHMARKS.md"
    lines = report.read_text().splitlines()
    fresh = ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    prefixes = (prefixes,) if isinstance(prefixes, str) else prefixes
    kept = [line for line in lines if not line.startswith(tuple(f"| {p}" for p in prefixes))]
    note = (f"The {section} rows were rerun alone by `BENCH_ONLY={section} scripts/bench` on "
            f"{started:%Y-%m-%d %H:%M} UTC; the other rows are from the full run above.")
    kept = [line for line in kept if not line.startswith(f"The {section} rows were rerun")]
    table = next(i for i, line in enumerate(kept) if line.startswith("| benchmark |"))
    kept[table:table] = [note, ""]
    last = max(i for i, line in enumerate(kept) if line.startswith("|"))
    kept[last + 1:last + 1] = fresh
    report.write_text("\n".join(kept) + "\n")
    log(f"replaced the {section} rows of {report}")


def main():
    started = datetime.datetime.now(datetime.timezone.utc)
    if os.environ.get("BENCH_ONLY") == "fuzz":
        # Only the fuzzing rows (a few minutes, no stack): BENCH_ONLY=fuzz scripts/bench
        bench_fuzz()
        rerun_rows("fuzz", "fuzz", started)
        return
    if os.environ.get("BENCH_ONLY") == "pipeline":
        # Only rows 3 (60 s clip), 1, 2a, 2b and 2c, on the full run's clip: BENCH_ONLY=pipeline scripts/bench
        clip = make_clip("clip.mp4", 60, 1920, 1080)
        video, bare_cmd, bare_wall, bare_cpu = bench_pipeline(clip, 60)
        bench_single_decode(clip, video, bare_cmd, bare_wall, bare_cpu)
        bench_audio_once(clip, len(rate_control_args(bare_cmd)[1]), bare_cpu)
        rerun_rows("pipeline", ("3. Time to first playable (60 s", "1. ", "2a.", "2b.", "2c."), started)
        return
    if os.environ.get("BENCH_ONLY") == "audio":
        # Only row 2c (a minute, no stack): BENCH_ONLY=audio scripts/bench
        global SCRATCH
        SCRATCH = Path(tempfile.mkdtemp(prefix="prostream-bench-audio."))
        clip = make_clip("audio.mp4", 60, 320, 180)
        bench_audio_once(clip, 5)
        rerun_rows("audio", "2c.", started)
        clip.unlink()
        SCRATCH.rmdir()
        return
    if os.environ.get("BENCH_ONLY") == "serving":
        # Only rows 5a, 5b, 6a, 6b and section 8 (a few minutes), on a 20 s clip: BENCH_ONLY=serving scripts/bench
        clip = make_clip("clip.mp4", 20, 1920, 1080)
        video_id = upload(clip)
        video = wait_status(video_id, {"ready", "failed", "canceled"})
        assert video["status"] == "ready", video
        bench_serving(video)
        bench_ingest()
        bench_attack()
        rerun_rows("serving", ("5a.", "5b.", "6a.", "6b.", "8. API"), started)
        return
    if os.environ.get("BENCH_ONLY") == "attack":
        # Only section 8 (seconds, not minutes): BENCH_ONLY=attack scripts/bench
        # BENCHMARKS.md keeps the last full run; the rows go to stdout.
        bench_attack()
        for row in rows:
            print(" | ".join(str(c) for c in row))
        return
    secs, width, height = (20, 1280, 720) if QUICK else (60, 1920, 1080)
    log(f"generating a {secs} s {height}p30 clip")
    clip = make_clip("clip.mp4", secs, width, height)
    tiny = make_clip("tiny.mp4", 1, 160, 120)
    video, bare_cmd, bare_wall, bare_cpu = bench_pipeline(clip, secs)
    bench_single_decode(clip, video, bare_cmd, bare_wall, bare_cpu)
    bench_audio_once(clip, len(rate_control_args(bare_cmd)[1]), bare_cpu)
    if not QUICK:
        bench_first_playable_long(width, height)
    bench_queue_latency(tiny)
    bench_serving(video)
    bench_ingest()
    bench_attack()
    bench_quality(video, clip, secs)
    bench_rate_control(rate_control_args(bare_cmd)[0])
    bench_fuzz()
    bench_state_machine()
    write_report(secs, f"{secs} s {width}×{height} 30 fps testsrc2 + noise + sine, 20 Mb/s H.264", started)


if __name__ == "__main__":
    main()
