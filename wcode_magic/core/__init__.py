"""The spine: models, parameters, settings, the key, the HTTP client, the stream and the Response.

It imports nothing from ``analysis`` or ``notebook``; what those add to a call (history, usage totals,
``wm.last()``, ``r.tokens()``) is wired in through ``hooks`` by the package root.
"""
