"""Every request parameter, declared once.

The seed pages (``shared/seeds/*``, section 可选参数, identical on all five pages) are the spec: each ``Param``
below carries the type, range and default they give, and their help text (``help_zh`` verbatim in substance,
``help`` in English). Validation, the magics' flags, the panel's controls and ``%wcode help`` are all derived
from this table, so a range is written in exactly one place.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..local import MAX_STOP_STRINGS, MAX_TOP_LOGPROBS  # the local server enforces the same limits
from .catalog import Model
from .errors import InvalidParameterError, warn_user
from .sendable import check_json

Kind = Literal["float", "int", "bool", "enum", "stop", "object", "array", "choice", "reasoning"]


@dataclass(frozen=True)
class Param:
    """One request parameter: what it accepts, its documented default, and why a user would touch it."""

    name: str
    kind: Kind
    help: str
    help_zh: str
    default: Any = None
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    group: str = "sampling"
    step: float | None = None

    @property
    def flag(self) -> str:
        """The command-line spelling used by the magics (``top_k`` -> ``--top-k``)."""
        return "--" + self.name.replace("_", "-")

    @property
    def allowed(self) -> str:
        """The allowed values in words, for error messages and help."""
        if self.kind in ("float", "int"):
            what = "an integer" if self.kind == "int" else "a number"
            if self.min is not None and self.max is not None:
                return f"{what} from {_num(self.min)} to {_num(self.max)}"
            if self.min is not None:
                return f"{what} >= {_num(self.min)}"
            if self.max is not None:
                return f"{what} <= {_num(self.max)}"
            return what  # no bound to state (seed): never "-inf"
        if self.kind == "bool":
            return "true or false"
        if self.kind == "enum":
            return " | ".join(self.choices)
        if self.kind == "stop":
            return f"a string or a list of up to {MAX_STOP_STRINGS} strings"
        if self.kind == "object":
            return _OBJECT_TAKES.get(self.name, "a JSON object")
        if self.kind == "array":
            return "a JSON array"
        if self.kind == "choice":
            return "none | auto | required, or a JSON object naming a function"
        return 'true/false, or an object like {"enabled": true, "effort": "high", "max_tokens": 2000, "exclude": false}'

    def check(self, value: Any) -> Any:
        """Return the value as it will be sent, or raise InvalidParameterError naming value and range.

        Also checked: that the value can be sent as JSON at all (``sendable.check_json``), so ``%wcode set`` or
        ``configure`` cannot store a value that would break every later call."""
        checker = _CHECKERS[self.kind]
        try:
            checked = checker(self, value)
        except _Bad:
            raise InvalidParameterError(
                f"{self.name}={value!r} is not allowed: {self.name} takes {self.allowed}.",
                param=self.name,
                value=value,
            ) from None
        check_json(checked, self.name)  # the right shape may still hide a NaN or a lone surrogate deep inside
        return checked

    def parse(self, text: str) -> Any:
        """Turn what a user typed (a magic flag, ``%wcode set``, a panel text box) into a checked value."""
        text = text.strip()
        if self.kind in ("object", "array", "choice", "reasoning", "stop") and text[:1] in '[{"':
            try:
                return self.check(json.loads(text))
            except json.JSONDecodeError as e:
                raise InvalidParameterError(
                    f"{self.name}: {text!r} is not valid JSON ({e.msg}); {self.name} takes {self.allowed}.",
                    param=self.name,
                    value=text,
                ) from None
        if self.kind == "bool" or (self.kind == "reasoning" and text.lower() in _BOOL_WORDS):
            if text.lower() not in _BOOL_WORDS:
                raise InvalidParameterError(
                    f"{self.name}={text!r} is not allowed: {self.name} takes {self.allowed}.",
                    param=self.name,
                    value=text,
                )
            return self.check(_BOOL_WORDS[text.lower()])
        if self.kind in ("float", "int"):
            try:
                number: Any = float(text) if self.kind == "float" else int(text)
            except ValueError:
                raise InvalidParameterError(
                    f"{self.name}={text!r} is not allowed: {self.name} takes {self.allowed}.",
                    param=self.name,
                    value=text,
                ) from None
            return self.check(number)
        return self.check(text)


class _Bad(Exception):
    """Internal: the value failed its check; Param.check turns it into the user-facing error."""


_BOOL_WORDS = {
    "true": True,
    "on": True,
    "yes": True,
    "1": True,
    "false": False,
    "off": False,
    "no": False,
    "0": False,
}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _check_number(p: Param, v: Any) -> float | int:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _Bad
    if p.kind == "int":
        if isinstance(v, float):
            if not v.is_integer():
                raise _Bad
            v = int(v)
    elif not math.isfinite(v):
        raise _Bad
    if (p.min is not None and v < p.min) or (p.max is not None and v > p.max):
        raise _Bad
    return float(v) if p.kind == "float" else v


def _check_bool(p: Param, v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad
    return v


def _check_enum(p: Param, v: Any) -> str:
    if v not in p.choices:
        raise _Bad
    return v


def _check_stop(p: Param, v: Any) -> str | list[str]:
    if isinstance(v, str) and v:
        return v
    if isinstance(v, (list, tuple)) and 1 <= len(v) <= MAX_STOP_STRINGS and all(isinstance(s, str) and s for s in v):
        return list(v)
    raise _Bad


RESPONSE_FORMATS = ("text", "json_object", "json_schema")  # seeds: json_object (JSON mode), json_schema; text: off
_OBJECT_TAKES = {
    "logit_bias": 'a JSON object mapping token ids (integers as strings, like "1234") to biases from -100 to 100',
    "response_format": 'a JSON object whose "type" is text, json_object or json_schema (with a "json_schema" object)',
}


def _check_object(p: Param, v: Any) -> dict:
    if not isinstance(v, Mapping):
        raise _Bad
    if p.name == "logit_bias":
        for key, bias in v.items():
            if isinstance(key, bool) or not isinstance(key, (str, int)) or isinstance(bias, bool):
                raise _Bad
            if not isinstance(bias, (int, float)) or not -100 <= bias <= 100:
                raise _Bad
        return {str(k): b for k, b in v.items()}
    if p.name == "response_format":
        kind = v.get("type")
        if kind not in RESPONSE_FORMATS or (kind == "json_schema" and not isinstance(v.get("json_schema"), Mapping)):
            raise _Bad
    return dict(v)


def _token_id(key: str) -> bool:
    return key.isascii() and key.isdigit()


def _check_array(p: Param, v: Any) -> list:
    if not isinstance(v, (list, tuple)) or not all(isinstance(t, Mapping) for t in v):
        raise _Bad
    return list(v)


def _check_choice(p: Param, v: Any) -> str | dict:
    if v in ("none", "auto", "required"):
        return v
    if isinstance(v, Mapping) and v.get("type") == "function" and isinstance(v.get("function"), Mapping):
        return dict(v)
    raise _Bad


def _check_reasoning(p: Param, v: Any) -> dict:
    if isinstance(v, bool):
        return {"enabled": v}
    if not isinstance(v, Mapping) or not set(v) <= {"enabled", "effort", "max_tokens", "exclude"} or not v:
        raise _Bad
    out = dict(v)
    if "enabled" in out and not isinstance(out["enabled"], bool):
        raise _Bad
    if "exclude" in out and not isinstance(out["exclude"], bool):
        raise _Bad
    if "effort" in out and out["effort"] not in EFFORTS:
        raise _Bad
    mt = out.get("max_tokens")
    if "max_tokens" in out and (isinstance(mt, bool) or not isinstance(mt, int) or mt < 1):
        raise _Bad
    return out


_CHECKERS = {
    "float": _check_number,
    "int": _check_number,
    "bool": _check_bool,
    "enum": _check_enum,
    "stop": _check_stop,
    "object": _check_object,
    "array": _check_array,
    "choice": _check_choice,
    "reasoning": _check_reasoning,
}

EFFORTS = ("low", "medium", "high")

# Ranges and defaults: seeds/*.txt, 可选参数 (the same table on every page).
PARAMS: dict[str, Param] = {
    p.name: p
    for p in (
        Param(
            "temperature",
            "float",
            "Variety of the reply: lower is more predictable, higher more diverse; "
            "0 gives (as far as possible) the same reply to the same input.",
            "此设置影响模型回复的多样性。较低的值会使回复更可预测、更常见;较高的值会鼓励更具多样性且较不常见的回复。"
            "当设置为 0 时,模型对相同输入将尽可能的给出相同的回复。",
            default=1.0,
            min=0.0,
            max=2.0,
            step=0.05,
        ),
        Param(
            "top_p",
            "float",
            "Nucleus sampling: pick only among the most likely tokens whose probabilities add up "
            "to p. Set this or temperature, not both.",
            "top_p 参数控制模型在生成文本时的候选词选择范围。模型会从累积概率达到或超过 p 的 token 中随机选择一个作为输出。"
            "由于 temperature 与 top_p 均可以控制生成文本的多样性,因此建议您只设置其中一个值。",
            default=1.0,
            min=0.0,
            max=1.0,
            step=0.01,
        ),
        Param(
            "top_k",
            "int",
            "Pick only among the k most likely tokens; 1 always takes the most likely; 0 is off.",
            "top_k 会限制模型在每一步对 token 的选择,使其从较小的集合中进行选择。值为 1 表示模型将始终选择最有可能的下一个 token。",
            default=0,
            min=0,
            max=None,
            step=1,
        ),
        Param(
            "frequency_penalty",
            "float",
            "Lowers the chance of a token in proportion to how often it already "
            "appeared; negative values encourage repetition.",
            "frequency_penalty 可根据词条在输入中出现的频率来控制其重复使用。词条惩罚会随着出现次数的增加而增加。负值将鼓励词条重复使用。",
            default=0.0,
            min=-2.0,
            max=2.0,
            step=0.05,
        ),
        Param(
            "presence_penalty",
            "float",
            "Lowers the chance of any token that already appeared, however often; negative values encourage reuse.",
            "presence_penalty 调整模型重复输入中已使用的特定标记的频率。值越高,重复的可能性就越小,负值则相反。标记惩罚不会随着出现次数而变化。",
            default=0.0,
            min=-2.0,
            max=2.0,
            step=0.05,
        ),
        Param(
            "repetition_penalty",
            "float",
            "Scales down tokens already in the input; too high makes the text incoherent (small words go missing).",
            "repetition_penalty 有助于减少输入中标记的重复。较高的值会降低模型重复标记的可能性,但过高的值会使输出不够连贯。",
            default=1.0,
            min=0.0,
            max=2.0,
            step=0.05,
        ),
        Param(
            "min_p",
            "float",
            "Keep only tokens at least this fraction as likely as the best one (0.1: a tenth).",
            "min_p 表示某个 token 被考虑的最小概率,该概率是相对于最可能的 token 的概率而言的。",
            default=0.0,
            min=0.0,
            max=1.0,
            step=0.01,
        ),
        Param(
            "top_a",
            "float",
            "Keep only tokens whose probability is high enough relative to the best one's (a dynamic top-p).",
            "top_a 仅考虑概率“足够高”的 top tokens,该概率基于最可能的 token 概率。可以将其视为一个动态的 Top-P。",
            default=0.0,
            min=0.0,
            max=1.0,
            step=0.01,
        ),
        Param(
            "seed",
            "int",
            "Sample deterministically: the same seed and parameters should give the same reply "
            "(some models cannot guarantee it).",
            "如果指定了 seed 参数,推理将确定性地进行采样,即使用相同种子和参数的重复请求应该返回相同的结果。某些模型无法保证确定性。",
            default=None,
            min=None,
            max=None,
            step=1,
        ),
        Param(
            "max_tokens",
            "int",
            "Upper limit on the tokens generated in the reply, thinking included; at most the context length minus "
            "the prompt.",
            "max_tokens 可设定模型在响应中可以生成的 token 数量的上限。其最大值等于上下文长度减去 prompt 长度。",
            default=None,
            min=1,
            max=None,
            step=1,
        ),
        Param(
            "logit_bias",
            "object",
            'Change how likely given tokens are: {"token id": bias from -100 to 100}.',
            "logit_bias 是一个可选参数,用于修改指定 token 在模型生成输出中出现的可能性。",
            group="logprobs",
        ),
        Param(
            "logprobs",
            "bool",
            "Return the log-probability of each output token.",
            "logprobs 设置是否返回输出 token 的对数概率。",
            default=False,
            group="logprobs",
        ),
        Param(
            "top_logprobs",
            "int",
            f"How many most likely alternatives (0 to {MAX_TOP_LOGPROBS}) to return at each position; needs logprobs.",
            "top_logprobs 是一个介于 0 和 20 之间的整数,指定在每个 token 位置要返回的最可能 token 的数量。如果使用此参数,则必须将 logprobs 设置为 true。",
            default=0,
            min=0,
            max=MAX_TOP_LOGPROBS,
            step=1,
            group="logprobs",
        ),
        Param(
            "response_format",
            "object",
            'Force an output format: {"type": "json_object"} for JSON mode (also ask for JSON in the prompt).',
            'response_format 强制模型产出特定的输出格式。将其设置为 { "type": "json_object" } 可启用 JSON 模式。',
            group="output",
        ),
        Param(
            "structured_outputs",
            "bool",
            "Whether the model may return structured output from a json_schema response_format.",
            "指示模型是否能够使用 response_format 中的 json_schema 返回结构化输出。",
            group="output",
        ),
        Param(
            "stop",
            "stop",
            "Stop generating as soon as one of these strings appears.",
            "如果模型遇到 stop 数组中指定的任意 token,则立即停止生成。",
            group="output",
        ),
        Param(
            "tools",
            "array",
            "Tools the model may call, in OpenAI's tool-calling format.",
            "工具调用参数,遵循 OpenAI 的工具调用请求格式。",
            group="tools",
        ),
        Param(
            "tool_choice",
            "choice",
            "Which tool to call: none, auto, required, or a specific function.",
            "控制模型调用哪个工具。'none' 表示不调用工具,'auto' 表示模型自行选择,'required' 表示必须调用一个或多个工具。",
            group="tools",
        ),
        Param(
            "parallel_tool_calls",
            "bool",
            "Allow several tool calls at once.",
            "是否在使用工具时启用并行函数调用。",
            default=True,
            group="tools",
        ),
        Param(
            "verbosity",
            "enum",
            "How long and detailed the reply is.",
            "控制模型响应的冗长程度和长度。",
            default="medium",
            choices=("low", "medium", "high"),
            group="output",
        ),
        # The thinking switch: seeds/003 documents "reasoning": {"enabled": true}; effort, max_tokens and exclude
        # follow OpenRouter's reasoning object (protocol.md, "Thinking switches by server").
        Param(
            "reasoning",
            "reasoning",
            "Thinking: enabled (true/false), effort (low/medium/high), a max_tokens "
            "budget, or exclude (think but do not send the thinking). Only switchable models honour it.",
            '模型可以通过 "reasoning": {"enabled": true} 参数来控制推理行为。',
            group="thinking",
        ),
    )
}

# DeepSeek reasoning models ignore these (protocol.md, last section).
SAMPLING_IGNORED_BY_REASONERS = ("temperature", "top_p", "frequency_penalty", "presence_penalty")


# wm.chat's / wm.achat's own keywords, declared once: not request parameters, but what a misspelt keyword most
# often meant. chat's and achat's signatures are exactly these (tests/test_params.py holds them to it), and
# compare and batch pass on these (sweeps.CALL_KEYWORDS) and send the rest as request parameters.
CHAT_KEYWORDS = (
    "model",
    "system",
    "stream",
    "base_url",
    "api_key",
    "on_event",
    "timeout",
    "deadline",
    "headers",
    "extra_body",
    "cache",
    "schema",
    "max_steps",
    "confirm",
)


def suggest(name: str, also: tuple[str, ...] = ()) -> str:
    """A 'did you mean' hint for a misspelt name among the parameters and ``also``, or an empty string."""
    close = difflib.get_close_matches(name.replace("-", "_"), [*PARAMS, *also], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def get(name: str, also: tuple[str, ...] = ()) -> Param:
    """The declaration for a name (dashes allowed), or InvalidParameterError with a suggestion.

    ``also`` names the other keywords the caller accepts (wm.chat's own, configure's settings): they are
    suggested for a typo and listed as known too.
    """
    found = PARAMS.get(name.replace("-", "_")) if isinstance(name, str) else None
    if found is None:
        others = f"; other keywords: {', '.join(also)}" if also else ""
        raise InvalidParameterError(
            f"Unknown parameter {name!r}.{suggest(str(name), also)} Known parameters: {', '.join(PARAMS)}{others}.",
            param=name,
            value=None,
        )
    return found


def validate(
    params: Mapping[str, Any], model: Model | None = None, *, warn: bool = True, also: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check every parameter and return the body fragment to send; None values mean "not set" and are dropped.

    Raises InvalidParameterError before anything is sent (``also``: the caller's own keywords, suggested for an
    unknown name). With a known model that ignores sampling settings (the DeepSeek reasoners), one WcodeWarning
    lists what will have no effect.
    """
    body: dict[str, Any] = {}
    for name, value in params.items():
        p = get(name, also)
        if value is None:
            continue
        body[p.name] = p.check(value)
    if model is not None:
        _check_for_model(body, model)
    if body.get("top_logprobs") and not body.get("logprobs"):
        raise InvalidParameterError(
            f"top_logprobs={body['top_logprobs']} needs logprobs=true: set logprobs as well.",
            param="top_logprobs",
            value=body["top_logprobs"],
        )
    if model is not None and model.thinking != "switchable" and "reasoning" in body and warn:
        warn_user(f"{model.id} cannot switch its thinking ({model.thinking}); 'reasoning' is sent but may be ignored.")
    if model is not None and model.ignores_sampling and warn:
        ignored = [n for n in SAMPLING_IGNORED_BY_REASONERS if n in body]
        if ignored:
            warn_user(f"{model.id} ignores {', '.join(ignored)}; they are sent but will have no effect.")
    return body


def _check_for_model(body: dict[str, Any], model: Model) -> None:
    """What only a known model can tell: max_tokens against its context, logit_bias keys it cannot read."""
    max_tokens = body.get("max_tokens")
    if max_tokens is not None and max_tokens > model.context:
        raise InvalidParameterError(
            f"max_tokens={max_tokens} is more than {model.id}'s context of {model.context:,} tokens: the answer "
            f"can be at most the context length minus the prompt. Ask for fewer (well under {model.context:,}), "
            "or leave max_tokens unset.",
            param="max_tokens",
            value=max_tokens,
        )
    if not model.local:  # the bundled local server also takes a token's text as key; real servers take ids only
        for key in body.get("logit_bias", {}):
            if not _token_id(key):
                raise InvalidParameterError(
                    f"logit_bias key {key!r} is not a token id: for {model.id}, logit_bias takes "
                    f"{_OBJECT_TAKES['logit_bias']}.",
                    param="logit_bias",
                    value=body["logit_bias"],
                )
