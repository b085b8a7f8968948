"""``deepuad report``: one self-contained HTML page, checked as text and in a real browser.

The browser test drives Debian's headless Chromium over the DevTools protocol on a pipe
(standard library only): it loads the report of the bundled KDD sample and records every
console error, uncaught exception, log error and network request, then reads the top-rows
table back from the rendered page. It skips, saying why, only where Chromium is not installed.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from helpers import KDD_SAMPLE, cli, run_cli

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
MAX_REPORT_BYTES = 2 << 20


@pytest.fixture(scope="module")
def kdd(tmp_path_factory):
    """The KDD sample through extract, cluster, a short train, score and report."""
    folder = tmp_path_factory.mktemp("kdd")
    steps = [
        ("extract", KDD_SAMPLE, "-o", folder / "kdd.features.h5", "--label-column", "label", "--anomaly-values", "normal."),
        ("cluster", folder / "kdd.features.h5"),
        ("train", folder / "kdd.features.h5", folder / "kdd.clusters.h5", "--epochs", "4", "--r", "2"),
        ("score", folder / "kdd.model.h5", folder / "kdd.features.h5"),
        ("report", folder / "kdd.scores.h5"),
    ]
    for step in steps:
        code, _, err = cli("--quiet", *step)
        assert code == 0, (step[0], err)
    return folder


def test_report_is_one_small_page_that_loads_nothing(kdd):
    page = kdd / "kdd.report.html"
    text = page.read_text("utf-8")
    assert page.stat().st_size < MAX_REPORT_BYTES
    # nothing to fetch: no scripts, links or sources; the only URLs are the SVG namespaces
    for marker in ("<script", "<link", "src=", "@import"):
        assert marker not in text, marker
    assert not re.search(r"url\((?!#)", text)  # only the charts' own clip paths, url(#...)
    assert "default-src 'none'" in text
    urls = {word.split('"')[1] for word in text.split() if word.startswith(('xmlns="http', 'xmlns:xlink="http'))}
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls
    # the sections the issue asks for, with the charts inline
    for section in ('id="summary"', 'id="scores"', 'id="drift"', 'id="top-rows"', 'id="training"', 'id="labels"', 'id="run"'):
        assert section in text, section
    assert text.count("<svg") >= 3
    # each top row's explanation, in a list of its own: the columns that drove it, value against expected
    why = text[text.index('<ol class="why">'):text.index("</ol>")]
    assert why.count("<li>") == 20 and why.count("expected") >= 20


def test_report_escapes_the_data(tmp_path):
    """A value from someone else's CSV is text on the page, never markup."""
    rows = ["a,b,kind"] + [f"{i % 7},{(i * 3) % 11},{'<script>alert(1)</script>' if i % 2 else 'y'}" for i in range(120)]
    (tmp_path / "t.csv").write_text("\n".join(rows) + "\n")
    for step in [("extract", tmp_path / "t.csv"), ("cluster", tmp_path / "t.features.h5", "--clusters", "2"),
                 ("train", tmp_path / "t.features.h5", tmp_path / "t.clusters.h5", "--epochs", "2", "--r", "1"),
                 ("score", tmp_path / "t.model.h5", tmp_path / "t.features.h5"), ("report", tmp_path / "t.scores.h5")]:
        code, _, err = cli("--quiet", *step)
        assert code == 0, (step[0], err)
    text = (tmp_path / "t.report.html").read_text("utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script" not in text


def test_report_without_its_features_names_the_missing_file(kdd, tmp_path, capsys):
    moved = tmp_path / "elsewhere.scores.h5"
    shutil.copy(kdd / "kdd.scores.h5", moved)
    with h5py.File(moved, "a") as f:  # the recorded features path points nowhere now
        inputs = json.loads(f.attrs["inputs"])
        inputs["features"]["path"] = str(tmp_path / "gone.features.h5")
        f.attrs["inputs"] = json.dumps(inputs)
    code, out, err = run_cli(capsys, "--quiet", "report", moved, "-o", tmp_path / "r.html")
    assert code == 3
    assert err.startswith(f"deepuad: error: {moved}: records its features file as") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


def test_report_with_a_model_from_other_data_is_refused(kdd, tmp_path, capsys):
    from helpers import make_table

    table = make_table(tmp_path / "other.csv")
    for step in [("extract", table), ("cluster", tmp_path / "other.features.h5"),
                 ("train", tmp_path / "other.features.h5", tmp_path / "other.clusters.h5", "--epochs", "2", "--r", "1")]:
        assert cli("--quiet", *step)[0] == 0
    code, _, err = run_cli(capsys, "--quiet", "report", kdd / "kdd.scores.h5", "--model", tmp_path / "other.model.h5", "-o", tmp_path / "r.html")
    assert code == 5, err
    assert err.startswith("deepuad: error: ") and err.count("\n") == 1
    assert not (tmp_path / "r.html").exists()


# =========================================================================== the browser
def _chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe``: JSON messages, each ended by
    a NUL byte, on the child's file descriptors 3 (commands in) and 4 (answers and events out)."""

    def __init__(self, executable: str, profile: Path):
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()

        def wire():  # in the child: the pipes on the descriptors Chromium reads and writes
            commands, answers = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_browser_r, from_browser_w))
            os.dup2(commands, 3)
            os.dup2(answers, 4)

        self.process = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             f"--user-data-dir={profile}", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-extensions", "about:blank"],
            preexec_fn=wire, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buffer, self._next_id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._next_id:
                assert "error" not in reply, (method, reply["error"])
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 30) -> dict:
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self._read(timeout)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise EOFError("Chromium closed its DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (OSError, TimeoutError, EOFError, AssertionError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)


def load_page(page: Path, profile: Path, script: str) -> tuple[list[str], list[str], object]:
    """Load ``page`` in headless Chromium: (console and log errors, URLs requested other than the
    page itself, the value of ``script`` evaluated in the loaded page)."""
    executable = _chromium()
    if executable is None:
        pytest.skip(f"Chromium is not installed (none of {', '.join(CHROMIUM_NAMES)} on PATH; Debian: apt-get install chromium)")
    browser = Browser(executable, profile)
    try:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.send(f"{domain}.enable", session=session)
        url = page.resolve().as_uri()
        browser.send("Page.navigate", {"url": url}, session=session)
        browser.wait_for("Page.loadEventFired")
        value = browser.send("Runtime.evaluate", {"expression": script, "returnByValue": True}, session=session)["result"].get("value")
        time.sleep(0.2)  # a late request or error still arrives as an event
        browser.send("Runtime.evaluate", {"expression": "1"}, session=session)
    finally:
        browser.close()
    errors, requests = [], []
    for event in browser.events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            errors.append(" ".join(str(arg.get("value", arg.get("description"))) for arg in params.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            errors.append(params["exceptionDetails"].get("text", "exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent" and params["request"]["url"] != url:
            requests.append(params["request"]["url"])
    return errors, requests, value


TOP_ROWS = "JSON.stringify([...document.querySelectorAll('#top-rows tr')].map(r => [...r.cells].map(c => c.textContent)))"


def test_browser_loads_the_kdd_report_offline_with_decoded_categories(kdd, tmp_path):
    errors, requests, table = load_page(kdd / "kdd.report.html", tmp_path / "profile", TOP_ROWS)
    assert errors == []
    assert requests == []
    header, *rows = json.loads(table)
    assert len(rows) == 20
    # the categorical columns come back as the CSV's text, not as one-hot columns
    for column, allowed in (("protocol_type", {"tcp", "udp", "icmp"}), ("flag", None), ("service", None)):
        assert column in header, header
        values = {row[header.index(column)] for row in rows}
        assert all(v and not v.replace(".", "").isdigit() for v in values), (column, values)
        if allowed:
            assert values <= allowed, values
    assert not any(name.startswith("service=") for name in header)


def test_browser_check_sees_errors_and_requests(tmp_path):
    """The checks above can fail: a page that logs an error and fetches an image is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><img src="http://127.0.0.1:9/x.png">'
                    '<script>console.error("broken")</script></body></html>')
    errors, requests, _ = load_page(page, tmp_path / "profile", "1")
    assert any("broken" in e for e in errors), errors
    assert "http://127.0.0.1:9/x.png" in requests


def test_without_matplotlib_the_page_keeps_its_tables_and_says_so(kdd, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    code, out, err = run_cli(capsys, "report", kdd / "kdd.scores.h5", "-o", tmp_path / "r.html", "--json")
    assert code == 0, err
    assert json.loads(out)["charts"] is False
    assert "deepuad: warning: the report has no charts: charts need matplotlib" in err
    text = (tmp_path / "r.html").read_text("utf-8")
    assert "<svg" not in text and "charts need matplotlib" in text and 'id="top-rows"' in text
