#!/usr/bin/env python3
"""Set the display rotation of every video track of an MP4/MOV file in place.

    python3 scripts/mp4-rotate.py FILE DEGREES   # DEGREES: 0, 90, 180 or 270, clockwise

ffmpeg 5.1 cannot write a rotation (the `rotate` tag is gone, `-display_rotation` came in 6.0),
so this rewrites the matrix of each `tkhd` box whose track has a picture size, as a phone does.
The same is done in Rust by the test harness (worker/tests/it/common/media.rs, `set_rotation`).
"""
import struct
import sys

MATRICES = {0: (1, 0, 0, 1), 90: (0, 1, -1, 0), 180: (-1, 0, 0, -1), 270: (0, -1, 1, 0)}


def rotate(path, degrees):
    a, b, c, d = MATRICES[degrees]
    data = bytearray(open(path, "rb").read())
    at = 0
    while (at := data.find(b"tkhd", at + 1)) >= 0:
        version = data[at + 4]
        # version/flags, created, modified, track id, reserved, duration, reserved, layer,
        # alternate group, volume, reserved: then the 3x3 matrix, then width and height.
        matrix = at + 8 + (8 if version == 0 else 16) + 8 + (4 if version == 0 else 8) + 16
        if struct.unpack(">I", data[matrix + 36 : matrix + 40])[0] == 0:
            continue  # an audio track: no picture to turn
        values = (a << 16, b << 16, 0, c << 16, d << 16, 0, 0, 0, 1 << 30)
        data[matrix : matrix + 36] = struct.pack(">9i", *values)
    open(path, "wb").write(data)


if __name__ == "__main__":
    rotate(sys.argv[1], int(sys.argv[2]))
