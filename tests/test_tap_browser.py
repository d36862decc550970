"""The landing page in a real headless browser (Debian's chromium), driven from the test over the
DevTools protocol: the page lists the tables with row counts and units, and its form runs ADQL
and shows the result as an HTML table with a link to the same result as VOTable."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time

import httpx
import pytest
from _tap import query_lake, server, tap_dirs  # noqa: F401  (fixtures)
from astropy.io import votable


class Browser:
    """Headless chromium with one page, driven by DevTools protocol commands over a websocket."""

    def __init__(self, profile):
        exe = shutil.which("chromium") or shutil.which("chromium-browser")
        assert exe, "chromium is not installed (apt-get install chromium; .ci/run does)"
        self.proc = subprocess.Popen([exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                      "--disable-dev-shm-usage", "--remote-debugging-port=0",
                                      f"--user-data-dir={profile}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        t0 = time.time()
        while not (port_file.exists() and port_file.read_text().strip()):
            assert time.time() - t0 < 60 and self.proc.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
        ws_url = next(p["webSocketDebuggerUrl"] for p in pages if p["type"] == "page")
        from websockets.sync.client import connect

        self._conn = connect(ws_url, max_size=None, open_timeout=30)
        self.ws = self._conn.__enter__()
        self.n = 0
        self.call("Page.enable")

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg.get("result")

    def wait_load(self, timeout: float = 60) -> None:
        end = time.time() + timeout
        while time.time() < end:
            msg = json.loads(self.ws.recv(timeout=timeout))
            if msg.get("method") == "Page.loadEventFired":
                return
        raise TimeoutError("page did not load")

    def goto(self, url: str) -> None:
        self.call("Page.navigate", url=url)
        self.wait_load()

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r["result"].get("value")

    def close(self) -> None:
        try:
            self._conn.__exit__(None, None, None)
        finally:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    b = Browser(tmp_path_factory.mktemp("chromium"))
    yield b
    b.close()


def test_landing_page_lists_tables_units_and_examples(browser, server, query_lake):
    browser.goto(server.url)
    assert browser.js("document.title") == "legacylake TAP"
    listing = browser.js("document.querySelector('#table-list').innerText")
    assert "dr9_derived" in listing and "ls_dr9.tractor" in listing and "8,000" in listing
    cols = browser.js("Array.from(document.querySelectorAll('details tr')).map("
                      "r => Array.from(r.cells).map(c => c.textContent).join('\\t')).join('\\n')")
    assert "flux_g\tfloat\tnanomaggy" in cols and "dered_mag_r\tdouble\tmag" in cols
    assert browser.js("document.querySelectorAll('#examples ~ pre').length") >= 6


def test_form_runs_adql_and_links_the_votable(browser, server):
    browser.goto(server.url)
    q = "SELECT TOP 4 brickid, objid, ra FROM dr9 ORDER BY brickid, objid"
    browser.js(f"document.querySelector('#query').value = {json.dumps(q)}; "
               "document.querySelector('#maxrec').value = '50'; document.querySelector('#run').click()")
    browser.wait_load()
    assert browser.js("document.querySelector('#nrows').innerText") == "4"
    cells = browser.js("Array.from(document.querySelectorAll('#result tr')).map(r => r.innerText)")
    assert cells[0].split("\t") == ["brickid", "objid", "ra"] and len(cells) == 5
    href = browser.js("document.querySelector('#votable').href")
    vot = votable.parse_single_table(io.BytesIO(httpx.get(href, timeout=30).content)).to_table()
    assert [f"{b}\t{o}" for b, o in zip(vot["brickid"], vot["objid"])] == \
        ["\t".join(c.split("\t")[:2]) for c in cells[1:]]


def test_form_shows_the_error(browser, server):
    browser.goto(server.url)
    browser.js("document.querySelector('#query').value = 'SELECT nosuchcol FROM dr9'; "
               "document.querySelector('#run').click()")
    browser.wait_load()
    assert "nosuchcol" in browser.js("document.querySelector('#error').innerText")
