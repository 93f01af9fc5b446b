"""The README tells the truth: its generated parts match the code, its snippets run, its links and names exist.

- The quick reference and the model table are generated (``wcode_magic.notebook.reference``); a stale copy fails here with
  the command that regenerates it.
- Every fenced ``python`` block runs, in order, as the cells of one notebook in a real kernel with no key and every
  proxy pointing at a closed port: on the bundled local model, as a newcomer without a key would run them. Fenced
  ``py`` blocks need something this machine lacks (another server); they are only compiled.
- The files it links, the notebooks it lists, the benchmarks it names and the two commands it gives exist.
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

from wcode_magic.core import catalog, params
from wcode_magic.notebook import commands, flags, reference

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DEAD_PROXY = "http://127.0.0.1:9"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _text() -> str:
    return README.read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```$", _text(), flags=re.DOTALL | re.MULTILINE)


# -- generated parts -------------------------------------------------------------------------------------------
def test_generated_sections_match_the_code():
    assert reference.stale(_text()) == [], (
        "README is stale: run `python -m wcode_magic.notebook.reference` and commit it"
    )


def test_reference_names_every_option_parameter_and_subcommand():
    text = reference.magics_reference()
    parser = flags.build_parser()
    for action in parser._actions:
        for spelling in action.option_strings:
            assert spelling in text, spelling
    for p in params.PARAMS.values():
        assert f"`{p.flag} " in text, p.flag
        assert p.allowed.replace("|", "\\|") in text or p.name == "logprobs", p.name
    for name in commands.COMMANDS:
        assert f"`%wcode {name}`" in text, name


def test_model_table_has_every_model_and_its_prices():
    rows = {line.split("|")[1].strip(" `"): line for line in reference.models_table().splitlines()[2:]}
    assert set(rows) == {m.id for m in catalog.MODELS}
    for m in catalog.SEED_MODELS:
        cells = [c.strip() for c in rows[m.id].split("|")]
        price_in, price_out = (float(x) for x in cells[4].split(" / "))
        assert (price_in, price_out) == pytest.approx((m.price_in, m.price_out), rel=1e-9)
        assert m.thinking in cells[5]


def test_regenerating_rewrites_only_a_stale_section(tmp_path):
    copy = tmp_path / "README.md"
    current = reference.render(_text())
    begin = reference.MARK.format(name="models", edge="begin")
    copy.write_text(current.replace(begin + "\n", begin + "\n| stale | row |\n"), encoding="utf-8")
    assert reference.stale(copy.read_text()) == ["models"]
    assert reference.main(["--check", str(copy)]) == 1
    assert reference.main([str(copy)]) == 0
    assert copy.read_text() == current
    assert reference.main(["--check", str(copy)]) == 0


def test_missing_markers_name_the_section():
    with pytest.raises(ValueError, match="'magics'"):
        reference.render("# a README without the markers\n")


# -- snippets ----------------------------------------------------------------------------------------------------
def test_python_snippets_run_on_the_local_model(tmp_path, monkeypatch):
    from nbclient import NotebookClient

    snippets = _blocks("python")
    assert len(snippets) >= 5
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s.rstrip("\n")) for s in snippets]
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, DEAD_PROXY)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("WCODE_DATA_DIR", str(tmp_path / "data"))  # the kernel's history, not the suite's
    NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()

    def shown(cell: nbformat.NotebookNode) -> str:
        parts = []
        for out in cell.outputs:
            parts.append(out.get("text", ""))
            parts.extend(str(v) for v in out.get("data", {}).values())
        return "\n".join(parts)

    assert "local model" in shown(nb.cells[0]), shown(nb.cells[0])
    chats = [c for c in nb.cells if c.source.startswith("%%chat")]
    assert chats and all(shown(c).strip() for c in chats), "a %%chat cell showed nothing"
    assert "Thinking" in shown(chats[0]), "the --think cell showed no thinking"
    assert all(c.execution_count for c in nb.cells)


def test_py_snippets_compile():
    from IPython.core.inputtransformer2 import TransformerManager

    blocks = _blocks("py")
    assert blocks
    for block in blocks:
        compile(TransformerManager().transform_cell(block), "README.md", "exec")


# -- names and links ---------------------------------------------------------------------------------------------
def test_linked_files_exist():
    text = _text()
    links = re.findall(r"\]\(([^)#]+)\)", text)
    local = [link for link in links if "://" not in link]
    assert "docs/panel.png" in local
    for link in local:
        assert (REPO / link).exists(), link


def test_every_notebook_is_listed_and_binder_opens_the_quickstart():
    text = _text()
    listed = set(re.findall(r"\]\((notebooks/[^)]+\.ipynb)\)", text))
    on_disk = {str(p.relative_to(REPO)) for p in (REPO / "notebooks").glob("*.ipynb")}
    assert listed == on_disk
    badges = re.findall(r"https://mybinder\.org/v2/gh/[^)\s]+", text)
    assert badges
    for url in badges:
        path = re.search(r"urlpath=lab/tree/([^&)\s]+)", url).group(1)
        assert path == "notebooks/01-quickstart.ipynb"
        assert (REPO / path).is_file()


def test_named_benchmarks_exist():
    text = _text()
    for script in (REPO / "benchmarks").glob("*.py"):
        assert f"`{script.stem}`" in text, script.stem


def test_the_two_commands_are_make_targets():
    section = _text().split("## Two commands", 1)[1].split("\n## ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)
    commands_given = [line.split("#")[0].strip() for line in block.strip().splitlines()]
    assert commands_given == ["make demo", "make test"]
    makefile = (REPO / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
