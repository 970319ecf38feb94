"""The report in headless Chromium: no console error, no network request, every figure drawn."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from ledger.entries import LedgerEntry
from ledger.projections.report import write_report
from tests.test_report import CUTOFF, _trial

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium is not installed (Debian: apt-get install -y chromium); CI installs it",
)

_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--no-sandbox",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # any lookup of a host fails: nothing can be fetched
    "--enable-logging=stderr",
    "--v=0",
    "--virtual-time-budget=10000",
)

# Injected into a copy of the page only: measures each figure once everything has loaded.
_PROBE = """<script>
window.addEventListener("load", () => {
  const out = [...document.querySelectorAll("figure")].map((f) => {
    const svg = f.querySelector("svg"), img = f.querySelector("img");
    const box = (svg || img).getBoundingClientRect();
    return {id: f.id, kind: svg ? "svg" : "img", width: box.width, height: box.height,
            decoded: img ? img.complete && img.naturalWidth > 0 : true};
  });
  const pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>"""


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [CHROMIUM, *_FLAGS, *args], capture_output=True, text=True, timeout=180, cwd=cwd,
        check=False,
    )


def _console_messages(stderr: str) -> list[str]:
    """Chromium's log lines for the page's console messages (``INFO:CONSOLE``)."""
    return [line for line in stderr.splitlines() if ":CONSOLE" in line]


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page asked for (not the browser's own update and sign-in traffic, whose
    initiator is "not an origin"), other than the file itself and data: URIs."""
    events = json.loads(net_log.read_text(encoding="utf-8"))["events"]
    return sorted({
        str(e["params"]["url"]) for e in events
        if "url" in e.get("params", {}) and "initiator" in e["params"]
        and e["params"]["initiator"] != "not an origin"
        and not str(e["params"]["url"]).startswith(("file:", "data:"))
    })


def _load(page: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    net_log = page.with_suffix(".netlog.json")
    run = _chromium(f"--log-net-log={net_log}", "--dump-dom", page.as_uri(), cwd=page.parent)
    return run, _page_requests(net_log)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("browser")
    entries: list[LedgerEntry] = _trial(base)
    files = write_report(entries, as_of=None, cutoff=CUTOFF, out=base / "report",
                         software_version="test", provenance=None)
    return files.html


def test_page_loads_with_no_console_error_and_no_request_outside_the_file(
    report: Path,
) -> None:
    """The page, as written, logs nothing to the console and refers only to itself and data:."""
    run, requests = _load(report)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _console_messages(run.stderr) == []
    assert requests == []
    targets = re.findall(r'\b(?:src|href|xlink:href)="([^"]*)"', run.stdout)
    assert targets
    assert [t for t in targets if not t.startswith(("data:", "#"))] == []


def test_the_browser_checks_catch_a_console_error_and_a_fetch(tmp_path: Path) -> None:
    """Control: a page that fetches an image and logs an error fails both checks above."""
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img src="https://example.com/x.png">'
                   '<script>console.error("boom")</script></body></html>', encoding="utf-8")
    run, requests = _load(bad)
    assert any("boom" in line for line in _console_messages(run.stderr))
    assert requests == ["https://example.com/x.png"]


def test_every_figure_is_drawn_with_a_size_on_the_page(report: Path) -> None:
    """Each figure (inline SVG or decoded PNG) has a laid-out box in the browser."""
    probe = report.with_name("probe.html")
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"),
                     encoding="utf-8")
    run = _chromium("--dump-dom", probe.as_uri(), cwd=report.parent)
    found = re.search(r'<pre id="probe">(.*?)</pre>', run.stdout, re.S)
    assert found, run.stderr[-2000:]
    figures = json.loads(found.group(1).replace("&quot;", '"'))
    assert len(figures) >= 8
    for figure in figures:
        assert figure["decoded"], figure
        assert figure["width"] > 500, figure
        assert figure["height"] > 150, figure


def test_screenshot_shows_the_page(report: Path) -> None:
    """A full-height screenshot is written and is not blank (figures give it many colours)."""
    shot = report.with_name("screenshot.png")
    run = _chromium(f"--screenshot={shot}", "--window-size=1280,6000", report.as_uri(),
                    cwd=report.parent)
    assert shot.exists(), run.stderr[-2000:]
    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None
    assert len(colours) > 200
