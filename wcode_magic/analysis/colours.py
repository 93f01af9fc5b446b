"""Colour arithmetic for the views: WCAG contrast, perceived lightness, and the heat map's two colour scales.

Why here (analysis, pure, no I/O): the heat map (``render``) needs its scales, and the tests check the promises
the scales make -- token text readable on every step (contrast >= 4.5:1, WCAG AA) and steps evenly spaced in
perceived lightness (CIE L*), so no half of the scale blurs into near-white as the first one did.

The scales were computed in CIE LCh: lightness in equal steps, hue from red ("the model hesitated") to green
("the model was sure"), chroma fading towards the unremarkable end, each colour pulled into the sRGB gamut by
lowering its chroma only. The light scale runs dark-to-pale under black text; the dark scale runs bright-to-dark
under white text, so the unremarkable end sits near JupyterLab Dark's background instead of glaring in it.
"""

from __future__ import annotations

AA_CONTRAST = 4.5  # WCAG 2 AA for body text

HEAT_LIGHT = (
    "#dd473b",
    "#dd653a",
    "#db7e40",
    "#d9944c",
    "#d7a95f",
    "#d6bc76",
    "#d6ce90",
    "#d9deab",
    "#dfedc8",
    "#ebfce3",
)
HEAT_DARK = (
    "#bc4a3d",
    "#a64f2b",
    "#90511f",
    "#795118",
    "#655017",
    "#524c1a",
    "#42481f",
    "#354224",
    "#2b3b27",
    "#253429",
)
HEAT_TEXT = {"light": "#000000", "dark": "#ffffff"}  # token text on each scale


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
