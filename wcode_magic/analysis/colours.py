"""The heat map's two colour scales (``render``; ``branches`` uses the light one).

The promises the scales make are checked by the tests (tests/colour_checks.py holds the arithmetic): token text
readable on every step (contrast >= 4.5:1, WCAG AA) and steps evenly spaced in perceived lightness (CIE L*), so no
half of the scale blurs into near-white as the first one did.

The scales were computed in CIE LCh: lightness in equal steps, hue from red ("the model hesitated") to green
("the model was sure"), chroma fading towards the unremarkable end, each colour pulled into the sRGB gamut by
lowering its chroma only. The light scale runs dark-to-pale under black text; the dark scale runs bright-to-dark
under white text, so the unremarkable end sits near JupyterLab Dark's background instead of glaring in it.
"""

from __future__ import annotations

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
# JupyterLab (and Notebook 7) mark their dark themes here; elsewhere the light colours apply. The heat map
# (render) and the panel's stylesheet (notebook/theme.py) both key their dark rules on it.
DARK = 'body[data-jp-theme-light="false"]'
