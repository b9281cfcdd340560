"""Interoperability with a tus client nobody here wrote: tuspy (PyPI), against a live ProStream.

    python tus_resume.py --api URL --media-root DIR --file CLIP --work DIR

1. A tuspy client process uploads CLIP in small chunks (with sha1 checksums), paced like a slow
   link, keeping its upload URL in tuspy's FileStorage (keyed by the file's fingerprint).
2. Once the server's offset (HEAD) is past 30 %, that process is killed with SIGKILL.
3. A fresh tuspy process, given only the same storage file, finds the URL, asks the server for the
   offset and resumes from there; the resume must start from a non-zero offset.
4. The video must end `ready`, and the original stored under MEDIA_ROOT/uploads/ must be
   byte-identical (sha256) to CLIP.

`client` is the mode the two client processes run in (this same file).
"""

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

CHUNK = 256 * 1024
TITLE = "tus interop"
# The API key of the stack (scripts/lib/stack.sh exports it); sent by the tus client and by us.
AUTH = {"Authorization": "Bearer " + os.environ["PROSTREAM_API_KEY"]}


def client(args):
    from tusclient import client as tus_client
    from tusclient.storage.filestorage import FileStorage

    storage = FileStorage(args.storage)
    uploader = tus_client.TusClient(args.api + "/v1/uploads", headers=AUTH).uploader(
        file_path=args.file,
        chunk_size=CHUNK,
        metadata={"filename": os.path.basename(args.file), "title": TITLE},
        store_url=True,
        url_storage=storage,
        upload_checksum=True,
        # A 423 while the killed process' request is still being wound up is worth a retry.
        retries=5,
        retry_delay=1,
    )
    if not uploader.url:
        uploader.set_url(uploader.create_url())
        uploader.offset = 0
    emit("start", url=uploader.url, offset=uploader.offset)
    size = uploader.get_file_size()
    while uploader.offset < size:
        uploader.upload_chunk()
        emit("chunk", offset=uploader.offset)
        time.sleep(args.pace)
    headers = uploader.request.response_headers
    emit("done", offset=uploader.offset, video_id=headers.get("prostream-video-id"))


def emit(event, **fields):
    print(json.dumps({"event": event, **fields}), flush=True)


def spawn_client(args, pace):
    command = [sys.executable, __file__, "client", "--api", args.api, "--file", args.file,
               "--storage", args.storage, "--pace", str(pace)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def next_event(process, want):
    for line in process.stdout:
        event = json.loads(line)
        if event["event"] == want:
            return event
    raise SystemExit(f"the tuspy client exited ({process.wait()}) before '{want}'")


def server_offset(url):
    request = urllib.request.Request(url, method="HEAD", headers={"Tus-Resumable": "1.0.0", **AUTH})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.headers["Upload-Offset"])


def get_json(url):
    with urllib.request.urlopen(urllib.request.Request(url, headers=AUTH), timeout=10) as response:
        return json.load(response)


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check(condition, message):
    if not condition:
        raise SystemExit(f"FAIL: {message}")


def orchestrate(args):
    os.makedirs(args.work, exist_ok=True)
    args.storage = os.path.join(args.work, "tuspy-urls.json")
    size = os.path.getsize(args.file)
    started = time.monotonic()

    first = spawn_client(args, pace=0.2)
    url = next_event(first, "start")["url"]
    check(url.startswith(args.api + "/v1/uploads/"), f"unexpected upload URL {url}")
    deadline = time.monotonic() + 60
    while (offset := server_offset(url)) <= 0.3 * size:
        check(first.poll() is None, "the first client ended before it could be interrupted")
        check(time.monotonic() < deadline, f"the server's offset is stuck at {offset}")
        time.sleep(0.05)
    os.kill(first.pid, signal.SIGKILL)
    check(first.wait() == -signal.SIGKILL, "the first client was not killed")
    at_kill = server_offset(url)
    print(f"killed the first tuspy client with SIGKILL at server offset {at_kill} of {size} "
          f"({100 * at_kill / size:.0f} %)")
    check(at_kill < size, "the upload finished before the kill")

    second = spawn_client(args, pace=0)
    resumed = next_event(second, "start")
    check(resumed["url"] == url, f"the fresh client did not find the stored URL: {resumed['url']}")
    check(resumed["offset"] > 0, "the fresh client started from offset 0")
    check(resumed["offset"] >= at_kill, f"resumed at {resumed['offset']}, below {at_kill}")
    print(f"a fresh tuspy client resumed {url} from offset {resumed['offset']}")
    done = next_event(second, "done")
    check(second.wait() == 0, "the second client failed")
    check(done["offset"] == size, f"the upload ended at {done['offset']} of {size}")
    video_id = done["video_id"]
    check(video_id, "the last PATCH response named no video (Prostream-Video-Id)")

    deadline = time.monotonic() + 180
    while (video := get_json(f"{args.api}/v1/videos/{video_id}"))["status"] not in ("ready", "failed"):
        check(time.monotonic() < deadline, f"video {video_id} is still {video['status']}")
        time.sleep(0.2)
    check(video["status"] == "ready", f"video {video_id} is {video['status']}: {video['error']}")
    check(video["title"] == TITLE, f"title {video['title']!r}")
    stored = os.path.join(args.media_root, "uploads", video_id)
    want, got = sha256(args.file), sha256(stored)
    check(got == want, f"the stored original {stored} has sha256 {got}, the source {want}")
    print(f"video {video_id} is ready; its original is byte-identical (sha256 {got[:16]}…); "
          f"{time.monotonic() - started:.1f} s")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", nargs="?", default="orchestrate", choices=["orchestrate", "client"])
    parser.add_argument("--api", required=True)
    parser.add_argument("--file", required=True)
    parser.add_argument("--media-root")
    parser.add_argument("--work")
    parser.add_argument("--storage")
    parser.add_argument("--pace", type=float, default=0)
    args = parser.parse_args()
    if args.mode == "client":
        client(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
