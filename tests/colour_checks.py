"""Colour arithmetic for the theme tests: WCAG contrast and perceived lightness (CIE L*) of ``#rrggbb`` colours.

It checks the promises of the heat map's scales (wcode_magic/analysis/colours.py) and of the stylesheet's
fallback colours; the browser test computes the same contrast in the page, from the colours as rendered.
"""

from __future__ import annotations

AA_CONTRAST = 4.5  # WCAG 2 AA for body text


def rgb(colour: str) -> tuple[float, float, float]:
    """``#rrggbb`` (or ``#rgb``) as sRGB channels from 0 to 1."""
    h = colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    if len(h) != 6 or not all(c in "0123456789abcdefABCDEF" for c in h):
        raise ValueError(f"colour={colour!r} is not #rrggbb or #rgb")
    return (int(h[0:2], 16) / 255, int(h[2:4], 16) / 255, int(h[4:6], 16) / 255)


def _linear(c: float) -> float:
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """WCAG relative luminance, 0 (black) to 1 (white)."""
    r, g, b = (_linear(c) for c in rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(fg: str, bg: str) -> float:
    """WCAG contrast ratio of two opaque colours, 1 to 21 (AA body text needs 4.5)."""
    a, b = sorted((luminance(fg), luminance(bg)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def lightness(colour: str) -> float:
    """CIE L*, perceived lightness from 0 (black) to 100 (white): equal steps look equally far apart."""
    y = luminance(colour)
    return 116 * y ** (1 / 3) - 16 if y > 216 / 24389 else y * 24389 / 27
