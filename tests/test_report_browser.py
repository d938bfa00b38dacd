"""snr report pages in a real browser: headless Chromium driven by Selenium through the system chromedriver.

Each page is opened from a file: URL with the browser's console log on. Checked: no console
message of level SEVERE (script errors, blocked loads, CSP violations), no script ran, nothing was
fetched, every figure decoded with a non-zero size, the per-layer table holds one row per layer
with the report's values, and a layer named ``<script>alert(1)</script>`` shows as that text.
A full-page PNG of each page is saved in the test's temporary folder.

Without chromium, chromedriver or selenium the tests skip with the reason, except under CI
(the environment variable CI set), where they fail: ``.ci/run`` installs the browser.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
from pathlib import Path

import pytest

from report_runs import ESCAPE_NAME, ODD_NAMES, analyse, family, report_of

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _missing() -> str | None:
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install '.[test]')"
    if not any(shutil.which(b) for b in BROWSERS):
        return "no chromium on PATH (apt-get install -y chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (apt-get install -y chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("CI"):
            pytest.fail(f"browser tests cannot run under CI: {why}")
        pytest.skip(why)
    pytest.importorskip("matplotlib")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = next(shutil.which(b) for b in BROWSERS if shutil.which(b))
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, path: Path, shot: Path) -> None:
    """Load the page, save a full-page screenshot, and assert the checks every page shares."""
    from selenium.common.exceptions import NoAlertPresentException

    driver.get_log("browser")                    # drop what an earlier page left
    driver.get(path.resolve().as_uri())
    state = driver.execute_script("""
        const imgs = Array.from(document.images);
        return {ready: document.readyState, scripts: document.scripts.length,
                resources: performance.getEntriesByType('resource').map(e => e.name),
                images: imgs.map(i => { const r = i.getBoundingClientRect();
                    return {complete: i.complete, nw: i.naturalWidth, nh: i.naturalHeight, w: r.width, h: r.height,
                            alt: i.alt}; }),
                figures: Array.from(document.querySelectorAll('figure')).map(f => {
                    const r = f.getBoundingClientRect(); return [r.width, r.height]; }),
                height: document.documentElement.scrollHeight};
    """)
    try:
        alert = driver.switch_to.alert.text
    except NoAlertPresentException:
        alert = None
    assert alert is None, f"an alert opened: {alert!r}"
    logs = driver.get_log("browser")
    assert not [e for e in logs if e["level"] == "SEVERE"], logs
    assert state["ready"] == "complete" and state["scripts"] == 0
    assert state["resources"] == [], state["resources"]
    assert state["images"] and len(state["images"]) == len(state["figures"])
    for img in state["images"]:
        assert img["complete"] and img["nw"] > 0 and img["nh"] > 0 and img["w"] > 0 and img["h"] > 0, img
    for w, h in state["figures"]:
        assert w > 0 and h > 0
    metrics = {"width": 1280, "height": int(state["height"]), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    shot.write_bytes(base64.b64decode(png["data"]))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def layer_rows(driver) -> list[dict]:
    return driver.execute_script("""
        return Array.from(document.querySelectorAll('#layers tbody tr')).map(tr => ({
            layer: tr.dataset.layer,
            cells: Array.from(tr.cells).map(td => ({text: td.innerText, value: td.dataset.value}))}));
    """)


def head(driver) -> list[str]:
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#layers thead th')).map(th => th.innerText);")


def check_one_run_table(driver, report: dict) -> None:
    rows, cols = layer_rows(driver), head(driver)
    assert len(rows) == len(report["layers"])
    for row, L in zip(rows, report["layers"]):
        cells = dict(zip(cols, row["cells"]))
        assert int(row["layer"]) == L["index"] and cells["layer"]["text"].startswith(L["name"])
        for col, key in (("S", "S_mean"), ("G", "G_mean"), ("S_c", "S_mean_centred"), ("G_c", "G_mean_centred"),
                         ("activity", "activity_mean")):
            want = L[key]
            assert (float(cells[col]["value"]) if cells[col]["value"] else None) == want, (col, L["index"])
            digits = 3 if key == "activity_mean" else 4
            assert cells[col]["text"] == ("-" if want is None else f"{want:.{digits}f}")


def test_one_run(browser, run_cli, tmp_path):
    run = analyse(tmp_path, "a", seed=1)
    run_cli("report", run, "--html", "one.html")
    open_page(browser, tmp_path / "one.html", tmp_path / "one.png")
    check_one_run_table(browser, report_of(run))
    assert len(browser.find_elements("css selector", "img")) == 4


def test_run_without_per_unit_data(browser, run_cli, tmp_path):
    run = analyse(tmp_path, "a", seed=1, folder_run=False)
    run_cli("report", run, "--html", "nounits.html")
    open_page(browser, tmp_path / "nounits.html", tmp_path / "nounits.png")
    check_one_run_table(browser, report_of(run))
    assert len(browser.find_elements("css selector", "img")) == 1
    assert "No per-unit figures" in browser.find_element("id", "per-layer").text


def test_escaping(browser, run_cli, tmp_path):
    run = analyse(tmp_path, "odd", seed=3, names=ODD_NAMES)
    run_cli("report", run, "--html", "escape.html")
    open_page(browser, tmp_path / "escape.html", tmp_path / "escape.png")
    check_one_run_table(browser, report_of(run))
    names = [r["cells"][1]["text"] for r in layer_rows(browser)]
    assert names[0] == ESCAPE_NAME and names[1] == ODD_NAMES[1] and names[2].startswith(ODD_NAMES[2])
    heading = browser.find_element("id", "layer-1").text
    assert ESCAPE_NAME in heading
    assert browser.execute_script("return document.querySelectorAll('script, b').length") == 0


def test_two_runs(browser, run_cli, tmp_path):
    a, b = analyse(tmp_path, "a", seed=1), analyse(tmp_path, "b", seed=2)
    run_cli("report", a, b, "--html", "two.html")
    open_page(browser, tmp_path / "two.html", tmp_path / "two.png")
    cmp = json.loads(run_cli("compare", a, b, "--json").stdout)
    rows, cols = layer_rows(browser), head(browser)
    assert len(rows) == len(cmp["layers"])
    for row, crow in zip(rows, cmp["layers"]):
        cells = dict(zip(cols, row["cells"]))
        t = crow["figures"]["G_mean"]
        assert [float(cells[f"G {s}"]["value"]) for s in ("A", "B", "B-A")] == [t["a"], t["b"], t["delta"]]
    assert len(browser.find_elements("css selector", "img")) == 4


def test_five_runs(browser, run_cli, tmp_path):
    runs = family(tmp_path, 5)
    (tmp_path / "cov.csv").write_text("run,epoch\n" + "".join(f"ep{k},{k * 2}\n" for k in range(1, 6)))
    run_cli("report", *runs, "--covariates", "cov.csv", "--x", "epoch", "--html", "five.html")
    open_page(browser, tmp_path / "five.html", tmp_path / "five.png")
    reports = [report_of(r) for r in runs]
    rows = layer_rows(browser)
    assert len(rows) == 3
    for row in rows:
        idx = int(row["layer"])
        assert [float(c["value"]) for c in row["cells"][4:]] == [r["layers"][idx - 1]["G_mean"] for r in reports]
    assert len(browser.find_elements("css selector", "#runs tbody tr")) == 5
    assert len(browser.find_elements("css selector", "img")) == 2 + 3


def test_print_layout_keeps_figures(browser, run_cli, tmp_path):
    """Printed (print CSS), the page still shows every figure: the PDF has as many images as the page."""
    run = analyse(tmp_path, "a", seed=1)
    run_cli("report", run, "--html", "p.html")
    browser.get((tmp_path / "p.html").resolve().as_uri())
    pdf = base64.b64decode(browser.execute_cdp_cmd("Page.printToPDF", {"printBackground": False})["data"])
    assert pdf.startswith(b"%PDF") and len(pdf) > 20000
    (tmp_path / "p.pdf").write_bytes(pdf)
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        hidden = browser.execute_script("return getComputedStyle(document.querySelector('nav')).display")
        sizes = browser.execute_script(
            "return Array.from(document.images).map(i => i.getBoundingClientRect().height)")
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    assert hidden == "none" and all(h > 0 for h in sizes) and len(sizes) == 4
