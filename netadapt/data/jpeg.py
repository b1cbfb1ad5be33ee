"""A JPEG file's marker structure checked before Pillow decodes it.

Pillow's JPEG decoder discards libjpeg's warnings ("Corrupt JPEG data: ..."): a file with garbled
scan data decodes without a word, into an image with a smeared or grey lower part. What can be
seen without decoding is checked here, in numpy over the bytes: the segments before the scan
fit in the file; inside the entropy-coded data every 0xFF byte is a stuffed 0x00, a fill byte or a
restart marker in its cyclic order (RST0..RST7), and the data ends at a marker that may follow a
scan (end of image, another scan or its tables); the file has an end-of-image marker.

What it cannot see: garbled bytes that happen to form valid Huffman codes and no stray marker
(most of them: libjpeg then reports a desynchronised scan only as a warning, which Pillow drops).
A strict decoder (libjpeg-turbo's TurboJPEG with TJFLAG_STOPONWARNING) would; it is not a
dependency here (docs/configuration.md, data section).
"""

from __future__ import annotations

import numpy as np

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
RST0, RST7 = 0xD0, 0xD7
# markers that may end a scan's entropy-coded data: end of image, the next scan and the tables,
# restart interval, line count, application and comment segments before it
AFTER_SCAN = {EOI, SOS, 0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}


def jpeg_problem(data: bytes) -> str:
    """Why `data`, if it is a JPEG (starts with SOI), is damaged ("" if nothing is seen; "" for
    anything that is not a JPEG, which Pillow identifies or refuses itself)."""
    if data[:2] != b"\xff\xd8":
        return ""
    pos, n = 2, len(data)
    while True:  # segments up to and including each scan's header, then its entropy-coded data
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > n:
            return f"cut short at byte {pos} (no end-of-image marker)"
        if data[pos] != 0xFF:
            return f"byte {pos} should start a marker (0xFF), found 0x{data[pos]:02X}"
        marker = data[pos + 1]
        if marker == EOI:
            return ""
        if RST0 <= marker <= RST7 or marker in (SOI, 0x01):
            pos += 2
            continue
        if pos + 4 > n:
            return f"cut short in the marker 0xFF{marker:02X} at byte {pos}"
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            return f"segment 0xFF{marker:02X} at byte {pos} runs past the end of the file ({n} bytes)"
        if marker != SOS:
            pos = end
            continue
        found = _scan_end(data, end)
        if isinstance(found, str):
            return found
        pos = found


def _scan_end(data: bytes, start: int) -> int | str:
    """The offset of the marker that ends the entropy-coded data starting at `start`, or a problem."""
    scan = np.frombuffer(data, dtype=np.uint8, offset=start)
    ff = np.flatnonzero(scan[:-1] == 0xFF)
    follow = scan[ff + 1]
    markers = ff[(follow != 0x00) & (follow != 0xFF)]
    codes = scan[markers + 1]
    restarts = (codes >= RST0) & (codes <= RST7)
    ends = np.flatnonzero(~restarts)
    if not len(ends):
        return "cut short in the scan data (no end-of-image marker)"
    end, code = int(markers[ends[0]]), int(codes[ends[0]])
    seq = codes[:ends[0]].astype(np.int64) - RST0  # this scan's restart markers, cycling RST0..RST7
    wrong = np.flatnonzero(np.diff(seq) % 8 != 1) + 1 if len(seq) else []
    if len(seq) and (seq[0] != 0 or len(wrong)):
        bad = int(markers[0 if seq[0] != 0 else wrong[0]])
        return f"restart marker out of order at byte {start + bad} (corrupted scan data)"
    if code not in AFTER_SCAN:
        return f"a stray marker 0xFF{code:02X} inside the scan data at byte {start + end} (corrupted bytes)"
    return start + end
