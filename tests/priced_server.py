"""The bundled local model answering under wcode model ids, so the cost check's priced path runs for real.

The local server serves only ``local/*`` ids (a wcode id is a 404 there). This ASGI wrapper counts every HTTP
request that reaches it (a refused call must send nothing), keeps the model ids asked for, and hands each request
to the local server with a local model in its place: ``deepseek-r1`` to the ``reasoning_content`` dialect, any
other id to the ``reasoning`` one. The client still prices the answer by the id it sent (``Response.cost``), so
the usage totals, and the budget's ``spent``, grow as they would on wcode.net.
"""

from __future__ import annotations

import json

from wire import serve

LOCAL_FOR = {"deepseek-r1": "local/ngram-thinking-rc"}


class PricedServer:
    def __init__(self) -> None:
        from wcode_magic.local.server import create_app

        self.count = 0
        self.models: list[str] = []
        self._app = create_app(test_mode=True)
        self._server, self.base_url = serve(self._aliased)

    async def _aliased(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        self.count += 1
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        raw = b"".join(chunks)
        if raw:
            body = json.loads(raw)
            self.models.append(body.get("model"))
            body["model"] = LOCAL_FOR.get(body.get("model"), "local/ngram-thinking")
            raw = json.dumps(body).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        scope = {**scope, "headers": [*headers, (b"content-length", str(len(raw)).encode())]}
        given = False

        async def replayed():
            nonlocal given
            if not given:
                given = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self._app(scope, replayed, send)

    def stop(self) -> None:
        self._server.should_exit = True
