"""Named conversations: the message lists that make the next ``%%chat`` continue the last one.

A conversation only ever grows by whole exchanges (the user turn and the assistant turn together), added after
the call has ended, so an interrupt or a failed stream can never leave a question without its answer: a partial
answer is kept as the assistant turn (it is what the user saw), and a call that produced no text at all adds
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .response import Response

DEFAULT = "default"


@dataclass
class Conversation:
    """One thread of messages, with the system prompt it was given."""

    name: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    system: str | None = None

    def request(self, prompt: str) -> list[dict[str, Any]]:
        """The messages to send for a new user turn (history first; the system prompt is added by the client)."""
        return [*self.messages, {"role": "user", "content": prompt}]

    def add(self, prompt: str, response: Response) -> bool:
        """Append the exchange if the answer has any text (or tool calls); True if it was added.

        After a tool loop the exchange is every message it added: the calls, their results, the answer."""
        replies = response.tool_messages or [response.message]
        if not any(reply.get("content") or reply.get("tool_calls") for reply in replies):
            return False
        # one assignment, so an interrupt between two appends cannot leave half an exchange
        self.messages = [*self.messages, {"role": "user", "content": prompt}, *replies]
        return True

    @property
    def turns(self) -> int:
        return sum(1 for m in self.messages if m.get("role") == "user")


class Conversations:
    """All conversations of the session, by name; ``get`` creates on first use."""

    def __init__(self) -> None:
        self._by_name: dict[str, Conversation] = {}

    def get(self, name: str | None = None) -> Conversation:
        key = name or DEFAULT
        conv = self._by_name.get(key)
        if conv is None:
            conv = self._by_name[key] = Conversation(key)
        return conv

    def find(self, name: str | None = None) -> Conversation | None:
        """The conversation if it exists (the default one without a name); unlike ``get``, never creates it."""
        return self._by_name.get(name or DEFAULT)

    def reset(self, name: str | None = None) -> bool:
        """Forget one conversation (the default one without a name); True if it had messages."""
        conv = self._by_name.pop(name or DEFAULT, None)
        return bool(conv and conv.messages)

    def names(self) -> list[str]:
        return list(self._by_name)


CONVERSATIONS = Conversations()
