"""Reading a PNG screenshot's pixels with the standard library: enough for Chromium's screenshots.

8-bit RGB or RGBA, not interlaced (what Chromium writes); anything else is refused, not guessed.
The five PNG row filters are undone with numpy where a row allows it (None, Sub, Up) and per
byte otherwise (Average, Paeth). Rows are decoded only down to the last one asked for.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path: Path, max_rows: int | None = None) -> np.ndarray:
    """The image as an array of shape (rows, width, channels), uint8; only the first `max_rows` rows if given."""
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    pos, idat, header = len(SIGNATURE), [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError(f"{path} has no IHDR chunk")
    width, height, depth, color_type, _, _, interlace = header
    if depth != 8 or color_type not in (2, 6) or interlace:
        raise ValueError(f"{path}: only 8-bit RGB/RGBA, non-interlaced PNGs are read here")
    channels = 3 if color_type == 2 else 4
    stride = width * channels
    rows = height if max_rows is None else min(height, max_rows)
    raw = zlib.decompressobj().decompress(b"".join(idat), rows * (stride + 1))
    out = np.zeros((rows, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.int32)
    for y in range(rows):
        kind = raw[y * (stride + 1)]
        line = np.frombuffer(raw, dtype=np.uint8, count=stride, offset=y * (stride + 1) + 1).astype(np.int32)
        if kind == 0:
            current = line
        elif kind == 1:  # Sub: a running sum per channel
            current = np.cumsum(line.reshape(width, channels), axis=0).reshape(stride) % 256
        elif kind == 2:  # Up
            current = (line + previous) % 256
        elif kind in (3, 4):
            current = _sequential(line.tolist(), previous.tolist(), channels, paeth=kind == 4)
        else:
            raise ValueError(f"{path}: row {y} has unknown filter {kind}")
        out[y] = current
        previous = np.asarray(current, dtype=np.int32)
    return out.reshape(rows, width, channels)


def _sequential(line: list[int], up: list[int], bpp: int, paeth: bool) -> np.ndarray:
    cur = [0] * len(line)
    for i, value in enumerate(line):
        a = cur[i - bpp] if i >= bpp else 0
        b = up[i]
        if paeth:
            c = up[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
        else:
            predictor = (a + b) >> 1
        cur[i] = (value + predictor) & 0xFF
    return np.asarray(cur, dtype=np.int32)


def ink(pixels: np.ndarray, colour: tuple[int, int, int], tolerance: int = 24) -> int:
    """How many pixels are within `tolerance` of `colour` on every channel."""
    return int(np.all(np.abs(pixels[..., :3].astype(int) - colour) <= tolerance, axis=-1).sum())


def not_white(pixels: np.ndarray) -> float:
    """The share of pixels with any channel under 235: what a chart drew."""
    return float(np.any(pixels[..., :3] < 235, axis=-1).mean())
