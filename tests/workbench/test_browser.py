"""The workbench in a real browser: Debian's headless Chromium, driven by Selenium, against `nmpu serve`'s app on a
loopback port. A study through the form, its run page (table and plot), a second study and the comparison.
With NMPU_SCREENSHOTS=1 the form, a run page and a comparison are saved as docs/workbench_*.png."""
from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parents[2] / "docs"



def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(paths):
    import uvicorn
    from cosim.workbench.app import create_app

    url, _, runs = paths
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(url, runs), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < end and thread.is_alive(), "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", runs
    srv.should_exit = True
    thread.join(timeout=15)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # make install brings them (scripts/system-deps.sh): a missing browser is a broken install, not a skip
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), \
        "Debian's chromium and chromium-driver are not installed: run make install"
    profile = tempfile.mkdtemp(prefix="nmpu-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1200,1000"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


SCREENSHOTS = os.environ.get("NMPU_SCREENSHOTS") == "1"
#: the studies: small (a few seconds each), or for the README's pictures a fuller one (seeds, a year of drift)
STUDY = ({"images": "200", "seeds": "3", "drift": "1,3600,86400,31536000"} if SCREENSHOTS else
         {"images": "64", "seeds": "1", "drift": "1,3600"})


def shot(driver, name: str) -> None:
    """The whole page (its full height) as docs/workbench_<name>.png, when NMPU_SCREENSHOTS=1."""
    if SCREENSHOTS:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 1200, "height": min(height + 20, 3000), "deviceScaleFactor": 1, "mobile": False})
        driver.save_screenshot(str(DOCS / f"workbench_{name}.png"))
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


def submit(driver, base: str, fields: dict[str, str], screenshot: str | None = None) -> int:
    from selenium.webdriver.common.by import By
    driver.get(base + "/")
    for name, value in fields.items():
        el = driver.find_element(By.ID, name)
        el.clear()
        el.send_keys(value)
    if screenshot:
        shot(driver, screenshot)
    driver.find_element(By.ID, "submit").click()
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, 20).until(lambda d: "/runs/" in d.current_url)
    return int(driver.current_url.rstrip("/").rsplit("/", 1)[1])


def wait_done(driver, timeout: float = 120) -> None:
    """The run page polls the API and reloads itself when the run ends: wait for its results table."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(driver, timeout, poll_frequency=0.3).until(
        lambda d: d.find_elements(By.ID, "results") or d.find_element(By.ID, "status").text in ("failed", "cancelled"))
    assert driver.find_element(By.ID, "status").text == "done", driver.page_source[-2000:]


def table(driver, selector: str) -> dict[tuple, float]:
    from selenium.webdriver.common.by import By
    out = {}
    for td in driver.find_elements(By.CSS_SELECTOR, selector):
        if td.find_elements(By.CLASS_NAME, "mean"):
            out[(td.get_attribute("data-run"), td.get_attribute("data-post"), float(td.get_attribute("data-t")))] = \
                float(td.find_element(By.CLASS_NAME, "mean").text)
    return out


def image_loaded(driver, img_id: str = "plot") -> bool:
    return driver.execute_script(f"var i = document.getElementById('{img_id}'); "
                                 "return i !== null && i.complete && i.naturalWidth > 200;")


def test_a_study_from_the_form_to_the_comparison(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, runs = server
    # a bad field: the form again, its line beside it, no run
    submit_bad = {"images": "64", "seeds": "1", "drift": "1,-3600"}
    browser.get(base + "/")
    for name, value in submit_bad.items():
        el = browser.find_element(By.ID, name)
        el.clear()
        el.send_keys(value)
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 10).until(lambda d: d.find_elements(By.ID, "error"))
    assert browser.find_element(By.ID, "error").text == "drift: item 1 '-3600' must be a finite time >= 0 s"
    assert list(runs.iterdir()) == []

    first = submit(browser, base, STUDY, screenshot="form")
    wait_done(browser)
    folder = next(runs.glob(f"run-{first:05d}-*"))
    doc = json.loads((folder / "eval.json").read_text())
    shown = table(browser, "#results td[data-post]")
    assert len(shown) == 4 * len(STUDY["drift"].split(","))
    for key in ("fp32_digital", "analog_fp32", "analog_fp16", "analog_fixed"):
        for e in doc[key]:
            assert abs(shown[(None, key, e["t"])] - 100 * e["mean"]) < 0.006
    WebDriverWait(browser, 20).until(lambda d: image_loaded(d))
    assert browser.find_element(By.ID, "command").text.startswith("nmpu eval --model digits-cnn")
    shot(browser, "run")

    second = submit(browser, base, {**STUDY, "output_bits": "4"})
    wait_done(browser)
    browser.get(base + "/runs")
    for rid in (first, second):
        browser.find_element(By.CSS_SELECTOR, f'input[name=id][value="{rid}"]').click()
    browser.find_element(By.ID, "compare").click()
    WebDriverWait(browser, 20).until(lambda d: d.find_elements(By.ID, "comparison"))
    assert browser.current_url.endswith(f"/compare?ids={first},{second}")
    shown = table(browser, "#comparison td[data-post]")
    doc2 = json.loads((next(runs.glob(f"run-{second:05d}-*")) / "eval.json").read_text())
    assert doc2["config"]["output"]["bits"] == 4
    for rid, d in ((first, doc), (second, doc2)):
        for e in d["analog_fixed"]:
            assert abs(shown[(str(rid), "analog_fixed", e["t"])] - 100 * e["mean"]) < 0.006
    WebDriverWait(browser, 20).until(lambda d: image_loaded(d))
    shot(browser, "compare")


def test_an_uploaded_network_swept_through_the_form(server, browser, network):
    """The stage and the network chosen in the form: the fields of other stages hidden, the file fields shown for an
    upload; the sweep of the uploaded network runs, and its page shows the figures of the JSON its command wrote and
    the plot it drew."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, runs = server
    browser.get(base + "/")
    assert not browser.find_element(By.ID, "model_file").is_displayed()        # built-in network: no file fields
    assert browser.find_element(By.ID, "drift").is_displayed() and not browser.find_element(By.ID, "grid_toml").is_displayed()
    Select(browser.find_element(By.ID, "stage")).select_by_value("sweep")
    Select(browser.find_element(By.ID, "network")).select_by_value("upload")
    assert not browser.find_element(By.ID, "drift").is_displayed()             # eval's drift times: hidden
    assert browser.find_element(By.ID, "grid_toml").is_displayed() and browser.find_element(By.ID, "model_file").is_displayed()
    browser.find_element(By.ID, "model_file").send_keys(str(network.folder / "mlp.pt2"))
    browser.find_element(By.ID, "data_file").send_keys(str(network.folder / "data.npz"))
    for name, value in {"digital": "none", "seeds": "1", "images": "", "workers": "0", "drift_time": "3600"}.items():
        el = browser.find_element(By.ID, name)
        el.clear()
        el.send_keys(value)
    browser.find_element(By.ID, "grid_toml").send_keys('[grid]\n"scale.bits" = [2, 8]\n')
    shot(browser, "form_sweep")
    browser.find_element(By.ID, "submit").click()
    WebDriverWait(browser, 30).until(lambda d: "/runs/" in d.current_url)
    WebDriverWait(browser, 180, poll_frequency=0.3).until(
        lambda d: d.find_elements(By.ID, "figures") or d.find_element(By.ID, "status").text in ("failed", "cancelled"))
    assert browser.find_element(By.ID, "status").text == "done", browser.page_source[-2000:]
    run_id = int(browser.current_url.rstrip("/").rsplit("/", 1)[1])
    folder = next(runs.glob(f"run-{run_id:05d}-*"))
    assert (folder / "network.pt2").read_bytes() == network.model
    doc = json.loads((folder / "sweep.json").read_text())
    shown = {td.get_attribute("data-figure"): td.text for td in browser.find_elements(By.CSS_SELECTOR, "#figures td")}
    assert shown["grid points"] == "2" and shown["fp16 accuracy"] == f"{100 * doc['fp16']['mean']:.2f}%"
    assert browser.find_element(By.ID, "command").text.startswith("nmpu sweep --model network.pt2 --data data.npz")
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "var i = document.querySelector('#section img'); return i !== null && i.complete && i.naturalWidth > 200;"))
    shot(browser, "sweep")
