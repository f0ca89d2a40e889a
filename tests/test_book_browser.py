"""book.html in a real browser: every plot loads, every link of the table of contents lands on its section, and the
verdict filter hides and shows claim rows. Needs the `playwright` Python package and a Chromium on the machine
(`apt-get install chromium`, or playwright's own); skipped where either is missing (neither is a dependency)."""
from __future__ import annotations

import json
import shutil

import pytest

from leedl_cli.book.cli import book_main
from tests.test_book import _fake_runs

sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        except Exception as err:   # no browser playwright can start here
            pytest.skip(f"no Chromium starts here: {str(err).splitlines()[0]}")
        yield b
        b.close()


@pytest.mark.parametrize("link_plots", [False, True], ids=["embedded", "linked"])
def test_book_html_in_a_browser(tmp_path, browser, link_plots):
    runs, out = tmp_path / "runs", tmp_path / "docs"
    _fake_runs(runs)
    assert book_main(["report", str(runs), "--out", str(out), *(["--link-plots"] if link_plots else [])]) == 0
    page = browser.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"script error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"not loaded: {r.url}"))
    page.goto((out / "book.html").resolve().as_uri())
    page.wait_for_load_state("load")
    images = page.evaluate("[...document.images].map(i => [i.complete, i.naturalWidth])")
    assert images and all(done and width > 0 for done, width in images)
    dangling = page.evaluate("[...document.querySelectorAll('a[href^=\"#\"]')]"
                             ".map(a => a.getAttribute('href').slice(1)).filter(id => !document.getElementById(id))")
    assert dangling == []
    page.click("nav a[href='#preset-momentum']")
    assert page.evaluate("location.hash") == "#preset-momentum"

    def shown(verdict: str) -> int:
        return page.evaluate(f"[...document.querySelectorAll('tr[data-verdict=\"{verdict}\"]')]"
                             ".filter(r => r.offsetParent !== null).length")

    holding = sum(c["verdict"] == "holds" for c in json.loads((out / "claims.json").read_text())["claims"])
    assert shown("holds") == holding == 4 and shown("fails") == 2
    page.uncheck("#filter input[value=holds]")
    assert shown("holds") == 0 and shown("fails") == 2
    page.check("#filter input[value=holds]")
    assert shown("holds") == 4
    assert problems == []
    page.close()
