"""Build `offline.html`: the page template of `dvc plots show` with vega, vega-lite and vega-embed
inlined, so the page draws its charts without a network (DVC's own page loads them from a CDN).

    .venv/bin/python plots_template/build.py      # or: make plots-template (needs npm and its registry)

It fetches the pinned packages with `npm pack` (which checks each tarball against the registry's
integrity hash), copies each package's `build/<name>.min.js` byte for byte into a <script> tag
that records its package, version and sha256, and copies the packages' licenses next to it
(vega's npm tarball ships none: `LICENSE.vega` is the vega repository's and is kept as committed).
DVC fills the page by replacing the plot_divs placeholder; the template has no scripts
placeholder, so DVC's CDN <script> tags are left out.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGES = {"vega": "5.33.1", "vega-lite": "5.23.0", "vega-embed": "6.29.0"}  # DVC's specs are Vega-Lite v5
HERE = Path(__file__).resolve().parent
PLACEHOLDER = "{plot_divs}"

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>netadapt: DVC plots</title>
<style>
  body {{ font-family: sans-serif; margin: 16px; }}
  body > div {{ display: inline-block; vertical-align: top; margin: 8px; }}
  table {{ border-spacing: 15px; }}
</style>
<!-- Built by plots_template/build.py. Inlined, unmodified npm builds (BSD-3-Clause; licenses in
     plots_template/): {credits}. Nothing on this page is loaded from the network. -->
{scripts}
</head>
<body>
{placeholder}
</body>
</html>
"""


def script_tag(name: str, version: str, source: str) -> str:
    for bad in ("</script", "<!--", PLACEHOLDER, "{scripts}", "{refresh_tag}"):
        if bad in source:  # would end the tag early, or be filled in by DVC
            raise SystemExit(f"{name}: its build contains {bad!r}; it cannot be inlined as is")
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()
    return f'<script data-package="{name}" data-version="{version}" data-sha256="{digest}">{source}</script>'


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        specs = [f"{name}@{version}" for name, version in PACKAGES.items()]
        subprocess.run(["npm", "pack", "--silent", "--pack-destination", tmp, *specs], check=True,
                       stdout=subprocess.DEVNULL)
        tags = []
        for name, version in PACKAGES.items():
            with tarfile.open(Path(tmp) / f"{name}-{version}.tgz") as tgz:
                source = tgz.extractfile(f"package/build/{name}.min.js").read().decode("utf-8")
                if "package/LICENSE" in tgz.getnames():
                    (HERE / f"LICENSE.{name}").write_bytes(tgz.extractfile("package/LICENSE").read())
            if not (HERE / f"LICENSE.{name}").is_file():
                raise SystemExit(f"{name}: no LICENSE in its npm package; add plots_template/LICENSE.{name}")
            tags.append(script_tag(name, version, source))
    credits = ", ".join(f"{name} {version}" for name, version in PACKAGES.items())
    page = PAGE.format(credits=credits, scripts="\n".join(tags), placeholder=PLACEHOLDER)
    (HERE / "offline.html").write_text(page, encoding="utf-8")
    print(f"wrote {HERE / 'offline.html'} ({len(page.encode()) / 1e6:.2f} MB): {credits}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
