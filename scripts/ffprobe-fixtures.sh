#!/usr/bin/env bash
# Regenerate worker/tests/fixtures/ffprobe/*.json: real ffprobe output of small generated clips, the
# input of the unit tests of the normalisation decisions (worker/src/normalize.rs, src/media/).
#
#   bash scripts/ffprobe-fixtures.sh
#
# Needs ffmpeg with libx264, libx265 and python3 (to write an MP4 rotation matrix: ffmpeg 5.1 has no
# option for it). Streams' `tags` are dropped: they carry encoder versions and change with the host.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=worker/tests/fixtures/ffprobe
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

ff() { ffmpeg -v error -y "$@"; }
src() { echo "testsrc2=size=${2:-320x180}:rate=${1:-30}:duration=1"; }
tone() { echo "sine=frequency=${1:-440}:duration=1:sample_rate=${2:-48000}"; }
probe() {
    ffprobe -v error -print_format json -show_format -show_streams "$tmp/$1" |
        python3 -c 'import json,sys
d=json.load(sys.stdin)
for s in d["streams"]: s.pop("tags", None)
d["format"].pop("tags", None); d["format"]["filename"]="'"$1"'"
print(json.dumps(d, indent=1))' >"$out/$2.json"
}
x264() { echo -c:v libx264 -preset ultrafast; }
x265() { echo -c:v libx265 -preset ultrafast -x265-params log-level=error; }

ff -f lavfi -i "$(src 120)" $(x264) -pix_fmt yuv420p "$tmp/120.mp4"
probe 120.mp4 h264_120fps

ff -f lavfi -i "$(src 30)" -vf "select='lt(n,10)+not(mod(n,3))'" -fps_mode vfr $(x264) "$tmp/vfr.mp4"
probe vfr.mp4 h264_vfr

for t in pq:smpte2084 hlg:arib-std-b67 bt2020_sdr:bt2020-10; do
    ff -f lavfi -i "$(src)" -vf format=yuv420p10le $(x265) -color_primaries bt2020 \
        -color_trc "${t#*:}" -colorspace bt2020nc "$tmp/${t%%:*}.mp4"
    probe "${t%%:*}.mp4" "hevc_${t%%:*}"
done

ff -f lavfi -i "$(src)" $(x264) -pix_fmt yuv444p "$tmp/444.mp4"
probe 444.mp4 h264_yuv444p
ff -f lavfi -i "$(src)" $(x264) -pix_fmt yuv422p10le "$tmp/422.mp4"
probe 422.mp4 h264_yuv422p10
ff -f lavfi -i "$(src)" -c:v prores_ks -profile:v 0 "$tmp/prores.mov"
probe prores.mov prores_mov
ff -f lavfi -i "$(src)" -c:v mjpeg -q:v 5 "$tmp/mjpeg.avi"
probe mjpeg.avi mjpeg_avi

ff -f lavfi -i "$(src)" $(x264) -pix_fmt yuv420p "$tmp/rot.mp4"
python3 scripts/mp4-rotate.py "$tmp/rot.mp4" 90
probe rot.mp4 h264_rotated_90

ff -f lavfi -i "$(src)" -f lavfi -i "$(tone 440)" -f lavfi -i "$(tone 880)" -map 0 -map 1 -map 2 \
    $(x264) -c:a aac -disposition:a:0 0 -disposition:a:1 default "$tmp/two.mkv"
probe two.mkv mkv_two_audio_second_default

ff -f lavfi -i "$(tone 440 44100)" -af "pan=5.1|FC=c0" -c:a aac "$tmp/51.m4a"
probe 51.m4a aac_5_1_44100

# The picture comes from a file: from an endless lavfi source, -frames:v 1 does not stop ffmpeg
# (the mp3 muxer waits for the picture and the source never ends).
ff -f lavfi -i "color=blue:size=64x64" -frames:v 1 "$tmp/cover.png"
ff -f lavfi -i "$(tone)" -i "$tmp/cover.png" -map 0 -map 1 \
    -c:a libmp3lame -c:v png -disposition:v attached_pic "$tmp/cover.mp3"
probe cover.mp3 mp3_with_cover
echo "wrote $(ls "$out" | wc -l) fixtures to $out"
