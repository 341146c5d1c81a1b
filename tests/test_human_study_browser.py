"""Click through an exported study page in headless Chromium, download the CSV, ingest it.

Needs Debian's `chromium` and `chromium-driver` packages (/usr/bin/chromium,
/usr/bin/chromedriver) and the `selenium` pip package; skipped when they are missing.
Ground truth: the manifest (which side is real, which PNG file is on which side) and the
balanced design (a participant who always picks left scores exactly 50% per model).
"""
from __future__ import annotations

import base64
import re
import time
import urllib.parse
from pathlib import Path

import pandas as pd
import pytest
import torch

from dgmbench import human_study as hs

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
    pytest.skip(
        "headless Chromium not installed (apt-get install chromium chromium-driver)", allow_module_level=True
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

TRIALS_PER_MODEL, ATTENTION_CHECKS = 4, 2


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (40, 1, 8, 8), dtype=torch.uint8, generator=generator)
    fakes = {"model_a": images[20:30], "model_b": images[30:40]}
    out = tmp_path_factory.mktemp("study")
    files = hs.export_study(images[:20], fakes, out, trials_per_model=TRIALS_PER_MODEL, seed=0,
                            attention_checks=ATTENTION_CHECKS)
    manifest = pd.read_csv(files.manifest, dtype=str, keep_default_na=False).set_index("trial_id", drop=False)
    return files, manifest


@pytest.fixture(scope="module")
def downloads(tmp_path_factory):
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="module")
def browser(tmp_path_factory, downloads):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1000,800",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    yield driver
    driver.quit()


def wait_for_download(folder: Path, name: str, timeout: float = 20.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        path = folder / name
        if path.exists() and not list(folder.glob("*.crdownload")):
            return path
        time.sleep(0.1)
    raise AssertionError(f"{name} was not downloaded; folder holds {[p.name for p in folder.iterdir()]}")


def run_participant(browser, study, downloads: Path, participant: str, choose, via_keys: bool = False) -> Path:
    """Open the page, answer every trial with `choose(manifest_row) -> "left"/"right"`,
    check what is shown against the manifest, download the CSV and return its path."""
    files, manifest = study
    query = urllib.parse.urlencode({"participant": participant})
    browser.get(f"{files.page.resolve().as_uri()}?{query}")
    wait = WebDriverWait(browser, 10)
    assert browser.find_element(By.ID, "participant-id").get_attribute("value") == participant
    browser.find_element(By.ID, "start").click()
    root = files.page.parent
    for position in range(len(manifest)):
        left = browser.find_element(By.ID, "choose-left")
        wait.until(lambda _: left.is_enabled())
        pair = browser.find_element(By.ID, "pair")
        row = manifest.loc[pair.get_attribute("data-trial")]
        assert int(row["trial_index"]) == position
        # The page shows the manifest's images, and nothing in the DOM names the real one.
        for side in hs.SIDES:
            image = browser.find_element(By.ID, f"image-{side}")
            shown = base64.b64decode(image.get_attribute("src").removeprefix("data:image/png;base64,"))
            assert shown == (root / row[f"{side}_image"]).read_bytes()
            assert image.get_attribute("alt") == f"{side} image"
        markup = re.sub(r'src="[^"]*"', "", pair.get_attribute("outerHTML"))
        assert not re.search(r"real|fake|model_", markup, flags=re.I), markup
        choice = choose(row)
        if via_keys:
            browser.find_element(By.TAG_NAME, "body").send_keys("f" if choice == "left" else "j")
        else:
            browser.find_element(By.ID, f"choose-{choice}").click()
        # The next trial (or the end screen) replaces this one before we answer again.
        wait.until(lambda driver: driver.find_element(By.ID, "pair").get_attribute("data-trial") != row["trial_id"]
                   or driver.find_element(By.ID, "download").is_displayed())
    download = browser.find_element(By.ID, "download")
    wait.until(lambda _: download.is_displayed())
    download.click()
    safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in participant)
    return wait_for_download(downloads, f"responses_{files.study_id}_{safe}.csv")


def test_always_left_participant_scores_exactly_half(browser, study, downloads):
    files, manifest = study
    csv_path = run_participant(browser, study, downloads, "left,picker", lambda row: "left")
    responses = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    assert list(responses.columns) == list(hs.RESPONSE_COLUMNS)
    assert (responses["participant_id"] == "left,picker").all()  # quoted comma survives
    assert responses["trial_id"].tolist() == manifest["trial_id"].tolist()
    assert (responses["study_id"] == files.study_id).all()
    assert (responses["response_time_ms"].astype(float) >= 0).all()

    table = hs.ingest(csv_path, files.manifest)  # strict: the page's own `correct` must agree
    assert table["n"].tolist() == [TRIALS_PER_MODEL] * 2
    assert table["accuracy"].tolist() == [0.5, 0.5]
    assert table.attrs["attention"]["left,picker"]["accuracy"] == 0.5


def test_oracle_participant_with_keys_scores_all(browser, study, downloads):
    files, manifest = study
    csv_path = run_participant(browser, study, downloads, "oracle", lambda row: row["real_position"], via_keys=True)
    table = hs.ingest(csv_path, files.manifest)
    assert table["accuracy"].tolist() == [1.0, 1.0]
    assert table["correct"].tolist() == [TRIALS_PER_MODEL] * 2
    assert table.attrs["attention"]["oracle"] == {"n": ATTENTION_CHECKS, "correct": ATTENTION_CHECKS,
                                                   "accuracy": 1.0}
    responses = pd.read_csv(csv_path)
    assert responses["correct"].eq(1).all()


def test_start_needs_a_participant_id(browser, study):
    files, _ = study
    browser.get(files.page.resolve().as_uri())
    start = browser.find_element(By.ID, "start")
    assert not start.is_enabled()
    browser.find_element(By.ID, "participant-id").send_keys("typed-id")
    assert start.is_enabled()
    start.click()
    assert browser.find_element(By.ID, "trial").is_displayed()
