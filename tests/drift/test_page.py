"""The report's page in headless Chromium without a network: every plot is drawn, and the screenshot
shows the baseline's and the period's colours."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from serving.drift.__main__ import main
from tests.drift.week import OURS, SINCE, UNTIL, model_with_baseline, write_week

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
SECTIONS = 8  # seven columns and the predictions
BASELINE, CURRENT = (0x7F, 0x7F, 0x7F), (0xD6, 0x27, 0x28)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("page")
    source = write_week(root / "week", OURS, ("Temperature_C",))
    args = ["--source", str(source), "--model", str(model_with_baseline(root / "model.onnx"))]
    assert main([*args, "--since", SINCE.isoformat(), "--until", UNTIL.isoformat(), "--output-dir", str(root)]) == 1
    return root / "report.html"


def chromium(page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
               "--host-resolver-rules=MAP * ~NOTFOUND",  # no network: nothing may come from a CDN
               "--virtual-time-budget=20000", *args, page.as_uri()]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_the_page_loads_no_script_from_elsewhere(page: Path) -> None:
    html = page.read_text()
    assert re.findall(r"<script[^>]*\bsrc=", html) == []
    assert html.count('<section class="plot"') == SECTIONS


def test_every_plot_is_drawn_after_load(page: Path) -> None:
    dom = chromium(page, "--dump-dom").stdout
    drawn = re.findall(r'<section class="plot" data-column="([^"]+)">.*?class="main-svg"', dom, re.DOTALL)
    assert len(drawn) == SECTIONS, dom[:2000]
    assert "Temperature_C: DRIFT" in dom
    assert "predictions: no drift" in dom


def test_the_screenshot_shows_the_baseline_and_the_period(page: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    chromium(page, "--window-size=1200,3300", f"--screenshot={shot}")  # the whole page
    width, height, pixels = decode_png(shot.read_bytes())
    colours = [pixels[i : i + 3] for i in range(0, len(pixels), 4)]
    # Lines and the predictions' bars of both series: far more than the legends alone draw (a few hundred).
    assert sum(1 for c in colours if tuple(c) == CURRENT) > 20_000
    assert sum(1 for c in colours if tuple(c) == BASELINE) > 20_000
    assert (width, height) == (1200, 3300)


def decode_png(data: bytes) -> tuple[int, int, bytes]:
    """An 8-bit RGBA or RGB, non-interlaced PNG (what Chromium writes) -> width, height, RGBA bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks, header = 8, [], b""
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0)
    channels = {6: 4, 2: 3}[colour]
    raw, stride = zlib.decompress(b"".join(chunks)), width * channels
    out, previous = bytearray(), bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for x in range(stride):
            left = line[x - channels] if x >= channels else 0
            up, corner = previous[x], previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + left) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + up) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                line[x] = (line[x] + (left if pa <= pb and pa <= pc else up if pb <= pc else corner)) & 0xFF
        previous = line
        out += line if channels == 4 else b"".join(bytes(line[i : i + 3]) + b"\xff" for i in range(0, stride, 3))
    return width, height, bytes(out)
