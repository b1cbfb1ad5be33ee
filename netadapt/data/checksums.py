"""`SHA256SUMS` manifests (the `sha256sum` format): verify each dataset file as it is read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from netadapt.errors import DataError

MANIFEST = "SHA256SUMS"


@dataclass(frozen=True)
class Checksums:
    """Expected digests by path relative to `root`; empty when the folder has no manifest."""

    root: Path
    digests: dict[str, str]

    @classmethod
    def load(cls, root: Path, enabled: bool = True) -> "Checksums":
        manifest = root / MANIFEST
        if not enabled or not manifest.is_file():
            return cls(root, {})
        try:
            text = manifest.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{manifest}: not UTF-8 text (byte {exc.start}); regenerate it with "
                            f"sha256sum") from None
        digests: dict[str, str] = {}
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            digest, sep, name = line.partition(" ")
            if not sep or len(digest) != 64 or not all(c in "0123456789abcdefABCDEF" for c in digest):
                raise DataError(f"{manifest}:{lineno}: not a sha256sum line: {line!r}")
            digests[name.strip().lstrip("*")] = digest.lower()
        return cls(root, digests)

    def verify(self, path: Path, content: bytes) -> None:
        """Raise if `path` (already read as `content`) disagrees with the manifest."""
        if not self.digests:
            return
        rel = path.relative_to(self.root).as_posix()
        expected = self.digests.get(rel)
        if expected is None:
            raise DataError(f"{path}: not listed in {self.root / MANIFEST} (regenerate the manifest "
                            f"or set data.verify_checksums: false)")
        actual = hashlib.sha256(content).hexdigest()
        if actual != expected:
            raise DataError(f"{path}: checksum mismatch: {MANIFEST} has {expected[:12]}..., "
                            f"the file has {actual[:12]}...")
