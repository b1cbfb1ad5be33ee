"""A JPEG file checked beyond what Pillow reports.

Pillow's JPEG decoder discards libjpeg's warnings ("Corrupt JPEG data: ..."): a file with garbled
scan data decodes without a word, into an image whose lower part is smeared or grey. Two checks
stand in for them:

- the marker structure, in numpy over the bytes (`read_layout`): the segments before each scan fit
  in the file; inside the entropy-coded data every 0xFF is a stuffed 0x00, a fill byte or a restart
  marker in its cyclic order, and the data ends at a marker that may follow a scan; the file has an
  end-of-image marker; the message names the byte;
- a strict decode (`decode_problem`): libjpeg-turbo, through `simplejpeg` (pinned; a wheel with its
  own libjpeg-turbo, no other dependency), stops at libjpeg's first warning: scan data that runs
  out before the image does ("premature end of data segment"), bytes left over when the image is
  complete ("extraneous bytes before marker"), a code no Huffman table holds. This costs one more
  decode of each JPEG, in `prepare` only.

What neither sees: garbled bytes that decode as valid codes and leave the decoder in step with the
file (Huffman codes resynchronize), so that it ends exactly where the scan does: no decoder can tell
them from a sound file (a checksum can: `data.checksums`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import simplejpeg

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA
RST0, RST7 = 0xD0, 0xD7
# markers that may end a scan's entropy-coded data: end of image, the next scan and the tables,
# restart interval, line count, application and comment segments before it
AFTER_SCAN = {EOI, SOS, 0xC4, 0xCC, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)}
# the output colourspace a strict decode asks for, by the file's (what needs no conversion libjpeg lacks)
DECODE_AS = {"Gray": "GRAY", "CMYK": "CMYK", "YCCK": "CMYK"}


@dataclass(frozen=True)
class JpegLayout:
    problem: str = ""  # why the file is damaged ("": nothing seen)


def jpeg_problem(data: bytes) -> str:
    """Why `data`, if it is a JPEG (starts with SOI), is damaged in its structure ("" if nothing is
    seen; "" for anything that is not a JPEG, which Pillow identifies or refuses itself)."""
    return read_layout(data).problem


def read_layout(data: bytes) -> JpegLayout:
    """The marker structure of `data` (`JpegLayout()` for anything that is not a JPEG)."""
    if data[:2] != b"\xff\xd8":
        return JpegLayout()
    pos, n = 2, len(data)
    while True:  # segments up to and including each scan's header, then its entropy-coded data
        while pos < n and data[pos] == 0xFF and pos + 1 < n and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes before a marker
        if pos + 2 > n:
            return JpegLayout(f"cut short at byte {pos} (no end-of-image marker)")
        if data[pos] != 0xFF:
            return JpegLayout(f"byte {pos} should start a marker (0xFF), found 0x{data[pos]:02X}")
        marker = data[pos + 1]
        if marker == EOI:
            return JpegLayout()
        if RST0 <= marker <= RST7 or marker in (SOI, 0x01):
            pos += 2
            continue
        if pos + 4 > n:
            return JpegLayout(f"cut short in the marker 0xFF{marker:02X} at byte {pos}")
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        end = pos + 2 + length
        if length < 2 or end > n:
            return JpegLayout(f"segment 0xFF{marker:02X} at byte {pos} runs past the end of the file ({n} bytes)")
        if marker != SOS:
            pos = end
            continue
        found = _scan_end(data, end)
        if isinstance(found, str):
            return JpegLayout(found)
        pos = found


def decode_problem(data: bytes) -> str:
    """Why a strict decode of the JPEG `data` stops (libjpeg's first warning or error), or ""."""
    try:
        colorspace = simplejpeg.decode_jpeg_header(data, strict=True)[2]
        simplejpeg.decode_jpeg(data, colorspace=DECODE_AS.get(colorspace, "RGB"), strict=True)
    except ValueError as exc:
        return " ".join(str(exc).split())
    return ""


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
