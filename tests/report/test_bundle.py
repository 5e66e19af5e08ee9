"""Report bundles: every link resolves, every page renders offline in headless Chromium with no
console error, no network request and no header, id or address broken inside a word; the
evidence zips check out with `sha256sum -c`."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import subprocess
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from tests.conftest import copy_case
from tests.conftest import forensics_on as run
from tests.report.test_report import _chromium


@pytest.fixture(scope="module")
def bundle(synth_week: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bundle")
    case = copy_case(synth_week[1], root)
    code, _, err = run(case, "detect")
    assert code == 0, err
    week = duckdb.connect(str(case), read_only=True)
    try:
        [(first,)] = week.execute("SELECT min(ts) FROM requests").fetchall()
    finally:
        week.close()
    year, number, _ = first.isocalendar()
    code, out, err = run(
        case, "report", "bundle", "--week", f"{year}-W{number:02d}", "-o", str(root / "b"), "--zip"
    )
    assert code == 0, err
    assert out.startswith(str(root / "b" / "index.html"))
    return root / "b"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value:
                self.hrefs.append(value)


def links(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.hrefs


def test_every_link_resolves_and_every_page_links_back(bundle):
    pages = sorted(bundle.rglob("*.html"))
    incidents = sorted((bundle / "incidents").glob("*.html"))
    principals = sorted((bundle / "principals").glob("*.html"))
    assert incidents and principals and (bundle / "weekly.html") in pages
    index = links(bundle / "index.html")
    for page in [bundle / "weekly.html", *incidents, *principals]:
        assert page.relative_to(bundle).as_posix() in index, page  # the index reaches it
    for page in pages:
        hrefs = links(page)
        for href in hrefs:
            assert not re.match(r"^[a-z]+:", href), (page, href)  # nothing outside the bundle
            if href.startswith("#"):
                continue
            assert (page.parent / href.split("#")[0]).resolve().is_file(), (page, href)
        if page.name != "index.html":
            assert any(h.endswith("index.html") for h in hrefs), page
    # file names carry the incident id and the principal
    for page in incidents:
        assert re.fullmatch(r"incident-[0-9a-f]{8}-[A-Za-z0-9.-]+-[0-9a-f]{6}\.html", page.name)


def test_evidence_zips_hold_the_incident_and_check_out(bundle):
    zips = sorted((bundle / "evidence").glob("*.zip"))
    assert len(zips) == len(list((bundle / "incidents").glob("*.html")))
    gateway_rows = 0
    for path in zips:  # every zip; ids (so the order) change with every run
        with zipfile.ZipFile(path) as z:
            names = {Path(n).name: n for n in z.namelist()}
            assert set(names) >= {
                "incident.html", "incident.md", "requests.parquet", "requests.csv",
                "findings.json", "triage.json", "runs.json", "sources.json", "manifest.json",
                "SHA256SUMS",
            }  # fmt: skip
            manifest = json.loads(z.read(names["manifest.json"]))
            listed = {f["name"]: f["sha256"] for f in manifest["files"]}
            assert set(listed) == set(names) - {"manifest.json", "SHA256SUMS"}
            for name, digest in listed.items():
                assert hashlib.sha256(z.read(names[name])).hexdigest() == digest, name
            sums = z.read(names["SHA256SUMS"]).decode()
            assert sorted(sums.splitlines()) == sorted(f"{h}  {n}" for n, h in listed.items())
            rows = list(csv.DictReader(io.StringIO(z.read(names["requests.csv"]).decode())))
            parquet = z.read(names["requests.parquet"])
            findings = json.loads(z.read(names["findings.json"]))
            html = z.read(names["incident.html"]).decode()
        con = duckdb.connect()
        try:
            [(n,)] = con.execute(
                "SELECT count(*) FROM read_parquet($p)", {"p": _temp(path, parquet)}
            ).fetchall()
        finally:
            con.close()
        assert n == len(rows), path.name
        if manifest["principal"].startswith("provider_key:"):
            assert n == 0  # a key used outside the gateway has no gateway requests
        gateway_rows += n
        assert findings and all(f["finding_id"] in html for f in findings)
        assert "index.html" not in html  # the page in a zip links to nothing outside it
    assert gateway_rows > 0


def _temp(beside: Path, data: bytes) -> str:
    path = beside.with_suffix(".parquet")
    path.write_bytes(data)
    return str(path)


# Loads a page in an iframe of the same folder and reports every word of a header cell or of
# an id/address (`code` in a cell) wider than the room its cell gives it: a word broken.
MEASURE = """<!DOCTYPE html><html><body>
<iframe id="f" src="PAGE" style="width:WIDTHpx;height:3000px"></iframe><pre id="out">pending</pre>
<script>
document.getElementById('f').addEventListener('load', function () {
  var d = this.contentDocument, w = this.contentWindow, bad = [], n = 0;
  d.querySelectorAll('th, td code').forEach(function (e) {
    var box = e.closest('td, th'), cs = w.getComputedStyle(box);
    var room = box.clientWidth - parseFloat(cs.paddingLeft) - parseFloat(cs.paddingRight);
    e.textContent.split(/\\s+/).forEach(function (word) {
      if (!word) return;
      var s = d.createElement('span');
      s.style.whiteSpace = 'nowrap'; s.textContent = word; e.appendChild(s); n += 1;
      if (s.getBoundingClientRect().width > room + 1) bad.push(word.slice(0, 60));
      e.removeChild(s);
    });
    if (e.tagName === 'TH' && e.scrollWidth > e.clientWidth + 1) bad.push('overflow ' + e.textContent);
  });
  var wide = [];
  d.querySelectorAll('table').forEach(function (t) {
    if (t.scrollWidth > t.parentElement.clientWidth + 1) wide.push(t.scrollWidth);
  });
  document.getElementById('out').textContent = JSON.stringify({words: n, broken: bad, wide: wide});
});
</script></body></html>"""


@pytest.mark.parametrize("width", [1200, 760])
def test_pages_render_offline_without_errors_or_broken_words(bundle, tmp_path, width):
    chromium = _chromium()
    pages = [
        bundle / "index.html",
        bundle / "weekly.html",
        *sorted((bundle / "incidents").glob("*.html"))[:3],
        *sorted((bundle / "principals").glob("*.html"))[:3],
    ]
    for page in pages:
        probe = page.parent / f".measure-{width}.html"
        probe.write_text(
            MEASURE.replace("PAGE", page.name).replace("WIDTH", str(width)), encoding="utf-8"
        )
        netlog = tmp_path / f"{page.stem}.netlog.json"
        for _attempt in range(2):  # a browser that dies on a loaded machine gets one retry
            netlog.unlink(missing_ok=True)
            done = subprocess.run(
                [
                    chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--allow-file-access-from-files", "--enable-logging=stderr",
                    "--v=0", f"--log-net-log={netlog}", "--virtual-time-budget=5000",
                    f"--user-data-dir={tmp_path / 'profile'}", "--proxy-server=127.0.0.1:9",
                    "--dump-dom", probe.as_uri(),
                ],
                capture_output=True, text=True, timeout=120,
            )  # fmt: skip
            found = re.search(r'<pre id="out">(.*?)</pre>', done.stdout)
            if found and found.group(1) != "pending" and netlog.exists():
                break
        probe.unlink()
        assert found, (page, done.stderr[-2000:])
        measured = json.loads(found.group(1).replace("&quot;", '"'))
        assert measured["words"] > 10 and measured["broken"] == [], (page.name, measured)
        if width >= 1200:  # on a desktop window no table runs past the page
            assert measured["wide"] == [], (page.name, measured)
        assert "CONSOLE" not in done.stderr, (page.name, done.stderr[-2000:])
        events = json.loads(netlog.read_text(encoding="utf-8"))["events"]
        fetched = sorted(
            {
                str(e["params"].get("url"))
                for e in events
                if str(e.get("params", {}).get("network_isolation_key", "")).startswith("file")
                and not str(e["params"].get("url", "file:")).startswith("file:")
            }
        )
        assert fetched == [], (page.name, fetched)
