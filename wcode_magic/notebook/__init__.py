"""The front-ends: the ``%%chat`` / ``%wcode`` magics, the live views and the ipywidgets panel.

Thin: they parse, call the spine and the analysis layer, and render; no protocol knowledge lives here.
"""
