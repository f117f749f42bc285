"""Invitation QR codes: an inline SVG a page can hold under its policy, encoding the link."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
import segno
from defusedxml import ElementTree as defused

from berater.admin import qr

SVG = "{http://www.w3.org/2000/svg}"
LINK = "https://berater.example.edu.cn/api/admin/auth?seq=" + "A1b2-_" * 7 + "z"


def parse(svg: str) -> ET.Element:
    """The inline SVG (HTML5 gives it its namespace; a lone parse needs it said)."""
    assert "xmlns" not in svg
    return defused.fromstring(svg.replace("<svg", f'<svg xmlns="{SVG[1:-1]}"', 1))


def modules(svg: str) -> list[list[int]]:
    """The dark modules the SVG draws, as rows of 0/1 without the quiet zone.

    segno draws each row's dark runs as horizontal strokes one unit wide, centred on the
    row: `M x y` starts, `m dx dy` moves, `h n` draws n modules."""
    root = parse(svg)
    width = int(root.attrib["viewBox"].split()[2])
    grid = [[0] * width for _ in range(width)]
    (dark,) = [p for p in root.iter(f"{SVG}path") if p.get("stroke")]
    x = y = 0.0
    for command, numbers in re.findall(r"([MmHh])([^MmHh]*)", dark.attrib["d"]):
        values = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", numbers)]
        if command == "M":
            x, y = values
        elif command == "m":
            x, y = x + values[0], y + values[1]
        else:
            for column in range(int(x), int(x + values[0])):
                grid[int(y)][column] = 1
            x += values[0]
    border = qr.BORDER
    return [row[border:-border] for row in grid[border:-border]]


@pytest.mark.parametrize("link", [LINK, "http://127.0.0.1:5000/api/admin/auth?seq=" + "x" * 43])
def test_the_svg_draws_the_qr_code_of_the_link(link):
    svg = str(qr.svg(link, title="邀请"))

    expected = [list(row) for row in segno.make(link, error="m", micro=False).matrix]
    assert modules(svg) == expected
    assert segno.make(link, error="m", micro=False).mode == "byte"  # the whole link, as typed


def test_the_svg_has_a_white_quiet_zone_and_nothing_a_page_policy_refuses():
    svg = str(qr.svg(LINK, title="<邀请>"))
    root = parse(svg)

    assert root.get("class") == "qr"
    assert "width" not in root.attrib and "height" not in root.attrib  # the stylesheet sizes it
    assert root.find(f"{SVG}title").text == "<邀请>"  # escaped in the markup
    light = [p for p in root.iter(f"{SVG}path") if p.get("fill") == "#fff"]
    assert light, "a white background, so a dark page does not eat the quiet zone"
    assert "<script" not in svg and "<style" not in svg and "style=" not in svg
    assert not re.search(r"\son\w+=", svg)  # no event handler
    assert "href" not in svg  # nothing fetched


def test_a_qr_code_is_never_a_micro_qr_code():
    assert qr.symbol("http://x").is_micro is False
