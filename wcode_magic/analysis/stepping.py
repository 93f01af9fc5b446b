"""Generation one token at a time, the choices in the user's hands: what ``wm.step(...)``'s widget drives.

Each step asks the server for the next token's candidates: the text so far is sent as the assistant's begun
answer (a prefill, in the server's dialect: core/prefill.py), with ``max_tokens=1``, ``logprobs`` and the top 20
alternatives, at temperature 1, so the candidates carry the model's own probabilities. The sampling settings
(temperature, top_k, top_p, min_p) are then applied here, on those candidates, in the order real servers apply
them (temperature, then each filter on the renormalised survivors of the one before): ``shape`` gives the
probabilities after them, 0 for a cut candidate. The mass outside the listed candidates is not known and is left
out, so "after" is over the listed ones.

A token is taken by choice (``take``) or drawn with the current settings (``sample``); ``back`` undoes one;
``run_to_end`` lets the server finish with the settings. On the local models and llama.cpp the end-of-text token
is kept out of the candidates (``ignore_eos``) so that there is always a next step; "Run to end" ends the text.
Servers of unknown dialect are checked first (a short answer, then the continuation probe), and refused plainly
when they do not continue a prefill.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..core import prefill
from ..core.client import chat
from ..core.errors import InvalidParameterError
from ..core.response import Response
from ..core.settings import SESSION
from .tokentext import texts_from

TOP = 20
FILTERS = ("temperature", "top_k", "top_p", "min_p")
DEFAULTS: dict[str, float] = {"temperature": 1.0, "top_k": 0, "top_p": 1.0, "min_p": 0.0}
_RANGES = {"temperature": (0.0, 2.0), "top_k": (0, TOP), "top_p": (0.0, 1.0), "min_p": (0.0, 1.0)}


@dataclass(frozen=True)
class Candidate:
    """One listed next token: its text, its bytes and the model's probability for it."""

    text: str
    raw: bytes
    prob: float


@dataclass(frozen=True)
class Taken:
    """A token in the text: the model's probability for it (None: not known) and how it came ("click",
    "sample", "run")."""

    text: str
    raw: bytes
    prob: float | None
    how: str


def check_settings(settings: Mapping[str, Any]) -> dict[str, float]:
    """The sampling settings the widget applies, checked (each named with its range when refused)."""
    out = dict(DEFAULTS)
    for name, value in settings.items():
        if name not in _RANGES:
            raise InvalidParameterError(
                f"{name}={value!r} is not a step setting: the widget applies {', '.join(FILTERS)}.", param=name
            )
        low, high = _RANGES[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidParameterError(
                f"{name}={value!r} is not allowed: give a number from {low} to {high}.", param=name, value=value
            )
        out[name] = value
    return out


def shape(probs: Sequence[float], temperature: float, top_k: int, top_p: float, min_p: float) -> list[float]:
    """Probabilities after temperature, top_k, top_p and min_p over the listed candidates (most likely first);
    a cut one gets 0. Temperature 0 is greedy: everything on the most likely."""
    if not probs:
        return []
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    if temperature == 0:
        out = [0.0] * len(probs)
        out[order[0]] = 1.0
        return out
    logits = [math.log(p) / temperature if p > 0 else -math.inf for p in probs]
    top = max(logits)
    weights = [math.exp(v - top) for v in logits]
    keep = set(order)
    if top_k:
        keep = set(order[: int(top_k)])

    def normalised() -> dict[int, float]:
        total = sum(weights[i] for i in keep)
        return {i: weights[i] / total for i in keep}

    if top_p < 1.0:
        p = normalised()
        cumulative, kept = 0.0, set()
        for i in (i for i in order if i in keep):
            kept.add(i)
            cumulative += p[i]
            if cumulative >= top_p:
                break
        keep = kept
    if min_p > 0.0:
        p = normalised()
        best = max(p.values())
        keep = {i for i in keep if p[i] >= min_p * best}
    p = normalised()
    return [p.get(i, 0.0) for i in range(len(probs))]


class Stepper:
    """The state of one stepped generation: the prompt, the tokens taken, the current candidates, the settings."""

    def __init__(
        self,
        prompt: str | list[dict[str, Any]],
        *,
        model: str | None = None,
        base_url: str | None = None,
        dialect: str | None = None,
        headers: Mapping[str, str] | None = None,
        seed: int | None = None,
        max_tokens: int = 40,
        **settings: Any,
    ) -> None:
        self.messages: list[dict[str, Any]] = (
            [{"role": "user", "content": prompt}] if isinstance(prompt, str) else [dict(m) for m in prompt]
        )
        if not self.messages or (isinstance(prompt, str) and not prompt.strip()):
            raise InvalidParameterError("The prompt is empty: give the text to continue.", param="prompt")
        self.model = SESSION.resolve_model(model)
        self.base_url = SESSION.resolve_base_url(base_url, self.model)
        self.dialect = prefill.dialect_for(self.base_url, dialect)
        self.headers = dict(headers or {})
        self.settings = check_settings(settings)
        self.max_tokens = max_tokens
        self.rng = random.Random(seed)
        self.taken: list[Taken] = []
        self.finished: str | None = None  # the finish reason once "Run to end" ended the text
        self._candidates: dict[bytes, list[Candidate]] = {}
        if self.dialect == prefill.CHECK:
            self._check()

    # -- the server ---------------------------------------------------------------------------------------------
    def _send(self, prefix: str, **params: Any) -> Response:
        messages, extra = prefill.prefill_request(self.messages, prefix, self.dialect)
        if not prefix:
            messages = messages[:-1]  # nothing begun yet: the plain prompt
        if self.dialect in (prefill.LOCAL, prefill.LLAMA):
            extra = {**extra, "ignore_eos": params.pop("ignore_eos", True)}
        params.pop("ignore_eos", None)
        return chat(
            messages, model=self.model, base_url=self.base_url, headers=self.headers, extra_body=extra, **params
        )

    def _check(self) -> None:
        """An unknown server must show it continues a prefill before stepping on it."""
        sample = chat(
            self.messages,
            model=self.model,
            base_url=self.base_url,
            headers=self.headers,
            max_tokens=6,
            logprobs=True,
            top_logprobs=5,
        )
        prefill.ensure_continues(sample, headers=self.headers)

    @property
    def prefix_bytes(self) -> bytes:
        return b"".join(t.raw for t in self.taken)

    @property
    def prefix(self) -> str:
        """The text so far, as sent; an error when it ends inside a multi-byte character."""
        entries = [{"token": t.text, "bytes": list(t.raw)} for t in self.taken]
        return prefill.prefix_text(entries, len(entries), b"")

    @property
    def text(self) -> str:
        return self.prefix_bytes.decode("utf-8", "replace")

    def candidates(self) -> list[Candidate]:
        """The next token's listed candidates, most likely first (asked once per text so far)."""
        key = self.prefix_bytes
        if key not in self._candidates:
            r = self._send(self.prefix, max_tokens=1, logprobs=True, top_logprobs=TOP, temperature=1.0)
            if not r.logprobs:
                raise prefill.PrefillError(
                    f"The server ({self.base_url}) sent no logprobs for model {self.model}: there are no candidates "
                    "to step through."
                )
            alts = [a for a in r.logprobs[0].get("top_logprobs") or [] if isinstance(a, dict)]
            alts = [a for a in alts if isinstance(a.get("logprob"), (int, float)) and math.isfinite(a["logprob"])]
            alts.sort(key=lambda a: -a["logprob"])
            texts = texts_from([a.get("token") for a in alts], [a.get("bytes") for a in alts])
            found: list[Candidate] = []
            for a, text in zip(alts, texts, strict=True):
                raw = prefill.entry_bytes(a)
                if raw not in {c.raw for c in found}:
                    found.append(Candidate(text or a.get("token") or "", raw, math.exp(a["logprob"])))
            self._candidates[key] = found
        return self._candidates[key]

    def shaped(self) -> list[float]:
        """The candidates' probabilities after the current settings (0: cut)."""
        s = self.settings
        return shape([c.prob for c in self.candidates()], s["temperature"], int(s["top_k"]), s["top_p"], s["min_p"])

    # -- moves ------------------------------------------------------------------------------------------------------
    def take(self, choice: int | str, how: str = "click") -> Taken:
        """Take a listed candidate by its index or its text."""
        cands = self.candidates()
        if isinstance(choice, str):
            index = next((i for i, c in enumerate(cands) if c.text == choice), None)
            if index is None:
                raise InvalidParameterError(f"{choice!r} is not among the listed candidates.", param="choice")
            choice = index
        if not 0 <= choice < len(cands):
            raise InvalidParameterError(f"choice={choice} is not a candidate index (0..{len(cands) - 1}).")
        c = cands[choice]
        taken = Taken(c.text, c.raw, c.prob, how)
        self.taken.append(taken)
        self.finished = None
        return taken

    def sample(self) -> Taken:
        """Draw the next token from the candidates with the current settings."""
        weights = self.shaped()
        index = self.rng.choices(range(len(weights)), weights=weights)[0]
        return self.take(index, how="sample")

    def back(self) -> Taken | None:
        """Undo the last token (None when there is none)."""
        self.finished = None
        return self.taken.pop() if self.taken else None

    def run_to_end(self, max_tokens: int | None = None) -> Response:
        """Let the server finish the text with the current settings (each token's probability kept)."""
        s = self.settings
        params: dict[str, Any] = {"temperature": s["temperature"], "top_p": s["top_p"], "min_p": s["min_p"]}
        if s["top_k"]:
            params["top_k"] = int(s["top_k"])
        r = self._send(
            self.prefix,
            max_tokens=max_tokens or self.max_tokens,
            logprobs=True,
            top_logprobs=1,
            ignore_eos=False,
            seed=self.rng.randrange(2**31),
            **params,
        )
        entries = r.logprobs
        texts = texts_from([e.get("token") for e in entries], [e.get("bytes") for e in entries])
        for e, text in zip(entries, texts, strict=True):
            lp = e.get("logprob")
            prob = math.exp(lp) if isinstance(lp, (int, float)) and math.isfinite(lp) else None
            self.taken.append(Taken(text, prefill.entry_bytes(e), prob, "run"))
        if not entries and r.text:
            self.taken.append(Taken(r.text, r.text.encode(), None, "run"))
        self.finished = r.finish_reason or "stop"
        return r
