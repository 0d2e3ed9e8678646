#!/usr/bin/env python3
"""Checks that a screenshot of the report shows drawn charts.

check_png.py PNG [--color '#1f77b4' ...] [--min-pixels N] [--min-columns N] [--tolerance T]

Decodes the PNG with the standard library only (zlib), then requires that
  - the image is not blank: at least 1% of its pixels differ from the most common colour, and
  - each --color appears (every channel within --tolerance) on at least --min-pixels pixels spread
    over at least --min-columns distinct x positions (a line across a chart, not a legend swatch).
Prints the counts; exits 0 when all checks pass, 1 otherwise, 2 on an unreadable file.
"""
import argparse
import struct
import sys
import zlib
from collections import Counter

CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> samples per pixel (8-bit depth)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def decode(path):
    """Returns (width, height, rows); rows[y] is a list of (r, g, b) tuples."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, header = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, colour, _, _, interlace = header
    if depth != 8 or colour not in CHANNELS or interlace != 0:
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {colour}, "
                         f"interlace {interlace}); expected 8-bit, non-interlaced")
    bpp = CHANNELS[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows, previous = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            for i in range(stride):
                line[i] = (line[i] + previous[i]) & 0xFF
        elif kind == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + previous[i]) >> 1)) & 0xFF
        elif kind == 4:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                up_left = previous[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + paeth(left, previous[i], up_left)) & 0xFF
        elif kind != 0:
            raise ValueError(f"{path}: bad filter type {kind} in row {y}")
        if bpp >= 3:
            rows.append([tuple(line[i:i + 3]) for i in range(0, stride, bpp)])
        else:
            rows.append([(line[i],) * 3 for i in range(0, stride, bpp)])
        previous = line
    return width, height, rows


def parse_colour(text):
    text = text.lstrip("#")
    if len(text) != 6:
        raise argparse.ArgumentTypeError(f"colour must be #rrggbb, got {text}")
    return tuple(int(text[i:i + 2], 16) for i in (0, 2, 4))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("png")
    parser.add_argument("--color", action="append", type=parse_colour, default=[])
    parser.add_argument("--min-pixels", type=int, default=300)
    parser.add_argument("--min-columns", type=int, default=150)
    parser.add_argument("--tolerance", type=int, default=40)
    args = parser.parse_args()
    try:
        width, height, rows = decode(args.png)
    except (OSError, ValueError, zlib.error) as e:
        print(f"error: {e}")
        return 2

    counts = Counter(p for row in rows for p in row)
    background, background_count = counts.most_common(1)[0]
    total = width * height
    other = total - background_count
    ok = True
    print(f"{args.png}: {width}x{height}, background {background} on {background_count} pixels, "
          f"{other} other pixels, {len(counts)} distinct colours")
    if other < total // 100:
        print("FAIL: the image is blank (under 1% of pixels differ from the background)")
        ok = False
    # Which exact colours match each wanted colour (over the distinct colours, not the pixels),
    # then one pass over the pixels for the columns.
    wanted = {}
    for index, colour in enumerate(args.color):
        for p in counts:
            if all(abs(p[c] - colour[c]) <= args.tolerance for c in range(3)):
                wanted.setdefault(p, []).append(index)
    pixels = [0] * len(args.color)
    columns = [set() for _ in args.color]
    for row in rows:
        for x, p in enumerate(row):
            for index in wanted.get(p, ()):
                pixels[index] += 1
                columns[index].add(x)
    for index, colour in enumerate(args.color):
        name = "#%02x%02x%02x" % colour
        good = pixels[index] >= args.min_pixels and len(columns[index]) >= args.min_columns
        print(f"{'ok' if good else 'FAIL'}: colour {name} on {pixels[index]} pixels in "
              f"{len(columns[index])} columns (need {args.min_pixels} pixels, "
              f"{args.min_columns} columns)")
        ok = ok and good
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
