#!/usr/bin/env python3
"""Regenerate the evatag icons from assets/icon.svg.

Run by hand after editing the SVG, then commit the outputs:

    python3 -m venv /tmp/venv-icons
    /tmp/venv-icons/bin/pip install pillow cairosvg
    /tmp/venv-icons/bin/python packaging/make_icons.py

Outputs (all under assets/icons/):

    evatag-{16,24,32,48,64,128,256,512}.png   Linux hicolor theme, cargo-packager
    evatag.icns                                macOS bundle icon (32 to 1024 px)
    evatag.ico                                 Windows executable/installer icon (16 to 256 px)

Rasterising uses cairosvg when it can be imported, else the `rsvg-convert`
command (Debian/Ubuntu: `apt-get install librsvg2-bin`). Pillow is required
either way; it writes the .icns and .ico and recompresses the PNGs.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
SVG = ROOT / "assets" / "icon.svg"
OUT = ROOT / "assets" / "icons"

PNG_SIZES = [16, 24, 32, 48, 64, 128, 256, 512]
ICNS_SIZES = [32, 64, 128, 256, 512, 1024]
ICO_SIZES = [16, 24, 32, 48, 64, 128, 256]


def render(size: int) -> Image.Image:
    """Rasterise the SVG at size x size pixels."""
    try:
        import cairosvg  # type: ignore[import-not-found]
    except ImportError:
        cairosvg = None
    if cairosvg is not None:
        data = cairosvg.svg2png(url=str(SVG), output_width=size, output_height=size)
    else:
        tool = shutil.which("rsvg-convert")
        if tool is None:
            sys.exit("need cairosvg (pip install cairosvg) or rsvg-convert (apt-get install librsvg2-bin)")
        data = subprocess.run(
            [tool, "-w", str(size), "-h", str(size), str(SVG)], check=True, capture_output=True
        ).stdout
    image = Image.open(io.BytesIO(data)).convert("RGBA")
    if image.size != (size, size):
        raise SystemExit(f"renderer gave {image.size}, expected {size}x{size}")
    return image


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    sizes = sorted(set(PNG_SIZES + ICNS_SIZES + ICO_SIZES))
    images = {size: render(size) for size in sizes}

    for size in PNG_SIZES:
        images[size].save(OUT / f"evatag-{size}.png", optimize=True)

    # Pillow writes one PNG entry per size it finds in append_images.
    largest = images[max(ICNS_SIZES)]
    largest.save(OUT / "evatag.icns", append_images=[images[s] for s in ICNS_SIZES])

    biggest_ico = images[max(ICO_SIZES)]
    biggest_ico.save(
        OUT / "evatag.ico",
        sizes=[(s, s) for s in ICO_SIZES],
        append_images=[images[s] for s in ICO_SIZES],
    )

    total = 0
    for path in sorted(OUT.iterdir()):
        total += path.stat().st_size
        print(f"{path.stat().st_size:>8}  {path.relative_to(ROOT)}")
    print(f"{total:>8}  total")


if __name__ == "__main__":
    main()
