"""The browser harness shared by the browser tests: JupyterLab on 127.0.0.1 and Debian's Chromium via Playwright.

``lab(root, notebooks, theme=...)`` starts a real JupyterLab server on a free port with its own config (the light
or dark theme written as a user setting, so the page opens in it); ``browser_page(url, viewport)`` opens a page
in headless Chromium; the small helpers run cells and wait for their outputs the way a person would (a click in
the cell, Shift+Enter). Tests that use it are marked ``browser`` and skip (or, under CI, fail) without Chromium.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "artifacts"
THEMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}


def require_chromium() -> None:
    """Skip where Chromium is absent, with the reason printed; under CI (which installs it, .ci/run) fail instead,
    so a broken install can never pass as a green run without the browser test."""
    if Path(CHROMIUM).exists():
        return
    reason = f"{CHROMIUM} is absent: install Debian's chromium (`apt-get install chromium`)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI=1 requires the browser test to run")
    pytest.skip(reason)


def notebook(*sources: str) -> dict:
    """An nbformat 4 notebook of code cells."""

    def cell(src: str) -> dict:
        return {"cell_type": "code", "metadata": {}, "source": src, "outputs": [], "execution_count": None}

    return {
        "cells": [cell(s) for s in sources],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def lab(root: Path, notebooks: dict[str, dict], theme: str = "light") -> Iterator[str]:
    """JupyterLab serving ``notebooks`` (name -> notebook) from ``root`` in ``theme``; yields its URL."""
    for name, nb in notebooks.items():
        (root / name).write_text(json.dumps(nb))
    config = root / ".jupyter"
    themes = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    themes.mkdir(parents=True, exist_ok=True)
    (themes / "themes.jupyterlab-settings").write_text(json.dumps({"theme": THEMES[theme]}))
    # JupyterLab's news and update prompts cover the page's corner: off.
    news = config / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config), JUPYTER_RUNTIME_DIR=str(root / ".runtime"))
    cmd = [
        sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root}",
        f"--LabApp.workspaces_dir={root / '.workspaces'}",
    ]  # fmt: skip
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    with open(root / "lab.log", "w") as log:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    raise RuntimeError("JupyterLab did not start:\n" + (root / "lab.log").read_text()[-3000:]) from None
                time.sleep(0.2)
        try:
            yield url
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def browser_page(url: str, viewport: dict[str, int], shot: str = "last-page.png") -> Iterator:
    """A headless Chromium page at ``url``; a full-page screenshot goes to tests/artifacts/``shot`` at the end."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--disable-quic",
            ],
        )
        pg = browser.new_page(viewport=viewport)
        pg.set_default_timeout(30_000)
        pg.goto(url)
        try:
            yield pg
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(ARTIFACTS / shot), full_page=True)  # what the page showed at the end
            browser.close()


def cell(page, i: int):
    return page.locator(".jp-Notebook .jp-Cell").nth(i)


def dismiss_dialog(page) -> None:
    """A JupyterLab dialog (a kernel or file notice) blocks clicks: record it, then accept it."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count():
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dialog.png"))
        dialog.locator(".jp-mod-accept").first.click()


def run_cell(page, i: int) -> None:
    dismiss_dialog(page)
    cell(page, i).locator(".jp-InputArea-editor").click()
    page.keyboard.press("Shift+Enter")


def output(page, i: int) -> str:
    return cell(page, i).locator(".jp-OutputArea").inner_text()


def wait_output(page, i: int, needle: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = output(page, i)
        if needle in text:
            return text
        time.sleep(0.1)
    raise AssertionError(f"cell {i} never showed {needle!r}; it shows {output(page, i)!r}")


def wait_text(locator, needle: str, timeout: float = 20) -> str:
    """The element's text once it contains ``needle`` (Markdown renders a moment after the widget updates)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = locator.inner_text()
        if needle in text:
            return text
        time.sleep(0.05)
    raise AssertionError(f"never saw {needle!r}; the element shows {locator.inner_text()!r}")


def connect(page, needle: str = "kernel ready") -> None:
    """Run the first cell until it prints ``needle``: the toolbar says idle before the kernel's websocket is up."""
    page.locator(".jp-Notebook .jp-Cell").first.wait_for()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        run_cell(page, 0)
        try:
            wait_output(page, 0, needle, timeout=10)
            return
        except AssertionError:
            continue
    raise AssertionError("the kernel never answered the setup cell")


def use_theme(page, name: str) -> None:
    """Switch theme as a user would (Settings > Theme), then wait until JupyterLab says it is applied."""
    light = "true" if name == "light" else "false"
    page.wait_for_function("document.body.dataset.jpThemeLight !== undefined", timeout=60_000)  # lab has loaded
    if page.evaluate(f"document.body.dataset.jpThemeLight === '{light}'"):
        return
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text(f"JupyterLab {name.title()}", exact=True).click()
    page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=20_000)
    time.sleep(0.5)  # the theme's stylesheet settles
