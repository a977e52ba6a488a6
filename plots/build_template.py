"""Build plots/template.html: DVC's plots page with Vega, Vega-Lite and Vega-Embed inlined, so `dvc plots show`
and `dvc plots diff` pages render with no network (DVC's own page loads them from a CDN and is blank offline).

    python plots/build_template.py        # needs `npm` and the npm registry; rewrites plots/template.html

The versions are the ones DVC's renderer (dvc-render 1.0.2) loads, so the specs it writes are the specs these
libraries were made for. Each library's licence (BSD-3-Clause) is kept beside it in the page. DVC fills the
page through `{plot_divs}` and `{refresh_tag}`; its scripts placeholder is left out, so no CDN address is added.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

LIBRARIES = (
    ("vega", "5.20.2", "vega.min.js"),
    ("vega-lite", "5.2.0", "vega-lite.min.js"),
    ("vega-embed", "6.18.2", "vega-embed.min.js"),
)
TEMPLATE = Path(__file__).with_name("template.html")

HEAD = """<!DOCTYPE html>
<!-- DVC plots page that renders with no network: Vega, Vega-Lite and Vega-Embed are inlined below, in the
     versions DVC's own page loads from a CDN. Written by plots/build_template.py from the npm packages;
     `dvc plots show` uses it through .dvc/config (plots.html_template). -->
<html>
<head>
    {refresh_tag}
    <meta charset="utf-8">
    <title>DVC Plot</title>
"""

TAIL = """    <style>
        table {
            border-spacing: 15px;
        }
    </style>
</head>
<body>
    {plot_divs}
</body>
</html>
"""


def library_block(tarball: Path, name: str, version: str, script: str) -> str:
    with tarfile.open(tarball) as tar:
        licence = tar.extractfile("package/LICENSE").read().decode().strip()
        code = tar.extractfile(f"package/build/{script}").read().decode()
    if "</script" in code or "-->" in licence or "{" + "plot_divs}" in code:
        raise SystemExit(f"{name}@{version}: cannot be inlined as it is")
    return f"<!-- {name}@{version} (npm, build/{script}), its licence:\n{licence}\n-->\n<script>\n{code}\n</script>\n"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        blocks = []
        for name, version, script in LIBRARIES:
            # npm checks the tarball against the registry's integrity hash.
            packed = subprocess.run(
                ["npm", "pack", f"{name}@{version}", "--silent"], cwd=tmp, capture_output=True, text=True, check=True
            ).stdout.split()[-1]
            blocks.append(library_block(Path(tmp) / packed, name, version, script))
    TEMPLATE.write_text(HEAD + "".join(blocks) + TAIL)
    print(f"{TEMPLATE}: {TEMPLATE.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
