"""QR codes of invitation links, drawn as SVG on the server (no request leaves the page).

segno encodes the link at error correction level M (the whole link: a 43-character sequence
and the service's base URL fit a version 5 to 7 symbol, which a phone camera reads from a
screen). The SVG has no size of its own, no script and no style attribute, so the page's
stylesheet sizes it and the page's Content-Security-Policy has nothing to refuse.
"""

from __future__ import annotations

import segno
from markupsafe import Markup

BORDER = 4  # the quiet zone a reader needs, in modules


def symbol(link: str) -> segno.QRCode:
    """The QR code of `link` (never a Micro QR, which WeChat's scanner does not read)."""
    return segno.make(link, error="m", micro=False, boost_error=False)


def svg(link: str, title: str = "QR") -> Markup:
    """`link` as an inline SVG element: dark modules on a white quiet zone."""
    text = symbol(link).svg_inline(
        scale=1,
        border=BORDER,
        dark="#000",
        light="#fff",
        omitsize=True,
        svgclass="qr",
        lineclass=None,
        title=title,
    )
    return Markup(text)  # noqa: S704 - segno's markup: path data, and the title escaped
