"""%%chat options: generated from the declarations, shell-style quoting, one-line errors naming the range."""

import re

import pytest

from wcode_magic.core import params
from wcode_magic.notebook import flags


def test_every_parameter_has_its_flag() -> None:
    option_strings = {s for a in flags.parser()._actions for s in a.option_strings}
    for p in params.PARAMS.values():
        assert p.flag in option_strings


def test_values_are_parsed_and_checked() -> None:
    o = flags.parse(
        '--temperature 0.2 --top-k 20 --max-tokens 500 --seed 7 --stop "###" --logprobs 5 '
        "--logit-bias '{\"123\": -100}' --frequency-penalty -0.5"
    )
    assert o.params == {
        "temperature": 0.2,
        "top_k": 20,
        "max_tokens": 500,
        "seed": 7,
        "stop": "###",
        "logprobs": True,
        "top_logprobs": 5,
        "logit_bias": {"123": -100},
        "frequency_penalty": -0.5,
    }


def test_cell_options() -> None:
    o = flags.parse('-m local --system "You are terse." --new --name side --no-stream -o r --no-interpolate;')
    assert (o.model, o.system, o.new, o.name, o.stream, o.out, o.interpolate, o.quiet) == (
        "local",
        "You are terse.",
        True,
        "side",
        False,
        "r",
        False,
        True,
    )


def test_logprobs_alone_and_stop_list() -> None:
    o = flags.parse('--logprobs --stop \'["a b", "c"]\'')
    assert o.params == {"logprobs": True, "stop": ["a b", "c"]}


def test_thinking_switches() -> None:
    assert flags.parse("--think").params == {"reasoning": {"enabled": True}}
    assert flags.parse("--no-think").params == {"reasoning": {"enabled": False}}
    assert flags.parse("--effort high").params == {"reasoning": {"enabled": True, "effort": "high"}}
    with pytest.raises(flags.FlagError, match="cannot go with --no-think"):
        flags.parse("--no-think --effort low")
    with pytest.raises(flags.FlagError, match=re.escape("low | medium | high")):
        flags.parse("--effort max")


def test_format_insert_headers_extra_body() -> None:
    o = flags.parse("--insert --header 'X-Wcode-Fault: status=401' --extra-body '{\"ignore_eos\": true}'")
    assert o.format == "code" and o.insert
    assert o.headers == {"X-Wcode-Fault": "status=401"}
    assert o.extra_body == {"ignore_eos": True}
    assert flags.parse("--format json").format == "json"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("--temperature 5", "temperature=5.0 is not allowed: temperature takes a number from 0 to 2."),
        ("--top-logprobs 50", "top_logprobs=50 is not allowed: top_logprobs takes an integer from 0 to 20."),
        ("--logprobs 99", "top_logprobs=99 is not allowed: top_logprobs takes an integer from 0 to 20."),
        ("--tempreature 0.2", "Unknown option --tempreature. Did you mean --temperature?"),
        ("--format html", "--format 'html' is not allowed: --format takes markdown | text | code | json."),
        ('--stop "###', "Cannot read the options (No closing quotation): close every quote you open."),
        ("hello", "Unexpected text in the options: 'hello'."),
        ("--max-tokens 0", "max_tokens=0 is not allowed: max_tokens takes an integer >= 1."),
        ("--temperature", "Argument --temperature: expected one argument."),
        ("-o 1x", "-o/--out '1x' is not a Python variable name."),
        ("-o class", "-o/--out 'class' is a Python keyword, not a variable name: pick another, e.g. class_."),
        ("-o None", "-o/--out 'None' is a Python keyword, not a variable name"),
        ("--out lambda", "-o/--out 'lambda' is a Python keyword, not a variable name"),
        ("-o a-b", "-o/--out 'a-b' is not a Python variable name."),
        ("--header nocolon", "--header 'nocolon' is not allowed: --header takes NAME:VALUE."),
        ("--insert --format json", "--insert puts code into a new cell"),
    ],
)
def test_errors_are_one_line_and_name_the_range(line: str, expected: str) -> None:
    with pytest.raises(flags.FlagError) as info:
        flags.parse(line)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected)


def test_unquoted_json_gets_a_hint() -> None:
    with pytest.raises(flags.FlagError, match="Quote JSON in single quotes"):
        flags.parse('--logit-bias {"1":')


@pytest.mark.parametrize(
    ("line", "suggested"),
    [
        ('--logit-bias {"1": -100}', """--logit-bias '{"1": -100}'"""),  # was: "Unknown option -100}"
        ('--logit-bias {"1":-100} --seed 3', """--logit-bias '{"1":-100}'"""),  # lost its quotes only
        ('--stop ["a b", "c"] -m local', """--stop '["a b", "c"]'"""),  # was: "Unexpected text"
        ('--extra-body {"ignore_eos": true}', """--extra-body '{"ignore_eos": true}'"""),
        ('--response-format {"type": "json_object"}', """--response-format '{"type": "json_object"}'"""),
    ],
)
def test_json_split_by_the_shell_style_parser_says_to_quote_it(line: str, suggested: str) -> None:
    with pytest.raises(flags.FlagError) as info:
        flags.parse(line)
    message = str(info.value)
    assert "\n" not in message and "Unknown option" not in message and "Unexpected text" not in message
    assert message.endswith(f"Quote JSON in single quotes: {suggested}.")
    flags.parse(suggested)  # the suggestion itself is accepted


def test_quoted_json_errors_keep_their_own_message() -> None:
    with pytest.raises(flags.FlagError, match="Unknown option --tempreature"):
        flags.parse("""--logit-bias '{"1": -100}' --tempreature 1""")
    with pytest.raises(flags.FlagError, match="Expecting ',' delimiter"):
        flags.parse("""--logit-bias '{"1": -100'""")


def test_prompt_line() -> None:
    opts, prompt = flags.parse_prompt_line("what's {x}? it's fine;")
    assert prompt == "what's {x}? it's fine" and opts.quiet
    opts, prompt = flags.parse_prompt_line('-m local --seed 3 -- say "hi"')
    assert opts.model == "local" and opts.params == {"seed": 3} and prompt == 'say "hi"'
    opts, prompt = flags.parse_prompt_line("-m local say hi")
    assert opts.model == "local" and prompt == "say hi"


@pytest.mark.parametrize(
    ("line", "params", "prompt"),
    [
        ("--max-tokens 5 say hi", {"max_tokens": 5}, "say hi"),
        ("--max-tokens=5 say  hi  there", {"max_tokens": 5}, "say  hi  there"),  # the prompt is verbatim
        ("--frequency-penalty -0.5 go on", {"frequency_penalty": -0.5}, "go on"),  # a negative value is a value
        ("--logprobs why", {"logprobs": True}, "why"),  # an optional value only when it reads as one
        ("--logprobs 5 why", {"logprobs": True, "top_logprobs": 5}, "why"),
        ("--logprobs false why", {"logprobs": False}, "why"),
        ("--stop '###' --seed 3 what's {x}?", {"stop": "###", "seed": 3}, "what's {x}?"),
        ("--think --effort low why?", {"reasoning": {"enabled": True, "effort": "low"}}, "why?"),
        ("--seed 3 help me", {"seed": 3}, "help me"),  # a subcommand's word after options is the prompt
        ("--seed 3 -- -1 is negative", {"seed": 3}, "-1 is negative"),  # -- still ends the options
        ("-5 degrees, is it cold?", {}, "-5 degrees, is it cold?"),  # a number is not an option
    ],
)
def test_options_then_prompt_as_any_command_line(line: str, params: dict, prompt: str) -> None:
    opts, text = flags.parse_prompt_line(line)
    assert (opts.params, text) == (params, prompt)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--tempreature 1 hi", "Unknown option --tempreature. Did you mean --temperature?"),
        ("--max-tokens 5 -x hi", "Unknown option -x."),
        ("--temperature 9 hi", "temperature=9.0 is not allowed"),
        ("--max-tokens", "expected one argument"),
    ],
)
def test_bad_options_before_a_prompt_are_refused(line: str, message: str) -> None:
    with pytest.raises(flags.FlagError, match=re.escape(message)):
        flags.parse_prompt_line(line)


@pytest.mark.parametrize(
    ("line", "prompt"),
    [
        ("-- help me write a poem", "help me write a poem"),  # a prompt starting with a subcommand's word
        ("-- use the force;", "use the force"),
        ("-- -1 is negative -- so what", "-1 is negative -- so what"),
        ("--", ""),
    ],
)
def test_prompt_line_with_no_options(line: str, prompt: str) -> None:
    opts, text = flags.parse_prompt_line(line)
    assert text == prompt and opts.params == {} and opts.model is None
    assert opts.quiet == line.endswith(";")


def test_help_is_generated_from_declarations() -> None:
    text = flags.usage_text()
    for p in params.PARAMS.values():
        assert p.flag in text
    assert params.PARAMS["top_logprobs"].allowed.split()[0] in text


def test_wcode_help_lists_compare_and_its_own_options_once() -> None:
    from wcode_magic.notebook import commands

    text = commands.help_([])
    assert "%%compare -m A -m B" in text and "usage: %%compare" in text
    own = flags.compare_usage_text()
    for option in ("--model", "--param", "--runs", "--concurrency", "--out", "--schema"):
        assert option in own
    assert "--temperature" not in own and "(as %%chat --schema)" in own  # request flags: listed once, for %%chat


@pytest.mark.parametrize("name", ["match", "case", "type", "_", "r1", "ответ"])
def test_out_takes_any_identifier_that_is_not_a_keyword(name: str) -> None:
    # soft keywords are ordinary names outside their statements: `match = ...` works
    assert flags.parse(f"-o {name}").out == name
