"""`dgmbench leaderboard --format html --output site/`: a static page per board with sortable
tables, sample grids and each record's command, checked as files and in headless Chromium.

The browser part needs Debian's `chromium` and `chromium-driver` (/usr/bin/chromium,
/usr/bin/chromedriver) and `selenium`, like tests/test_human_study_browser.py; it is
skipped with that reason when they are missing (CI installs them). Ground truth: the
committed records (their commands and sample grids) and numeric order of the NLL column.
"""
from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from dgmbench.cli import main

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
BOARD_PAGE = "digits__binary.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    assert main(["leaderboard", "--dataset", "digits", "--format", "html", "--output", str(out),
                 "--results-dir", str(RESULTS)]) == 0
    return out


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.codes, self._in_code = [], [], [], False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "code":
            self._in_code = True
            self.codes.append("")

    def handle_endtag(self, tag):
        if tag == "code":
            self._in_code = False

    def handle_data(self, data):
        if self._in_code:
            self.codes[-1] += data


def test_site_has_a_page_per_board_with_its_images_records_and_commands(site):
    index = (site / "index.html").read_text()
    pages = sorted(p.name for p in site.glob("*.html") if p.name != "index.html")
    assert pages == ["digits__17level.html", "digits__binary.html", "digits__dequantized.html"]
    assert all(f'href="{page}"' in index for page in pages)
    parser = _Links()
    parser.feed((site / BOARD_PAGE).read_text())
    records = sorted((RESULTS / "records").glob("*digits__binary*.json"))
    recorded = {json.loads(p.read_text())["command"] for p in records}
    assert set(parser.codes) == recorded  # every record's command, verbatim
    for link in parser.links:
        if not link.startswith("#"):
            assert (site / link).is_file(), link
    for record in records:
        assert f"records/{record.name}" in parser.links
        assert json.loads((site / "records" / record.name).read_text()) == json.loads(record.read_text())
    assert len(parser.images) >= len(records) and all((site / src).is_file() for src in parser.images)
    grids = {src for src in parser.images if not src.endswith("__curves.png")}
    assert grids == {f"samples/{p.stem}.png" for p in records}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("headless Chromium not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--allow-file-access-from-files", "--window-size=1200,900",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _column(browser, index: int) -> list[str]:
    return browser.execute_script(
        "return [...document.querySelector('table.sortable').tBodies[0].rows].map(r => r.cells[arguments[0]].dataset.sort)",
        index)


def test_board_page_renders_with_images_loaded_and_sorts_by_column(site, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get((site / BOARD_PAGE).as_uri())
    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "return document.readyState === 'complete' && [...document.images].every(i => i.complete)"))
    images = browser.execute_script("return [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])")
    assert len(images) > 20
    assert all(width > 0 for _, width in images), [src for src, width in images if width == 0]

    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.sortable th")]
    nll = next(i for i, text in enumerate(headers) if text.startswith("NLL (nats, exact)"))
    cell = browser.find_elements(By.CSS_SELECTOR, "table.sortable th")[nll]
    cell.click()
    ascending = [float(v) for v in _column(browser, nll) if v]
    assert ascending == sorted(ascending) and len(ascending) > 10
    assert all(v == "" for v in _column(browser, nll)[len(ascending):])  # empty cells last
    cell.click()
    descending = [float(v) for v in _column(browser, nll) if v]
    assert descending == sorted(descending, reverse=True)
    model = next(i for i, text in enumerate(headers) if text == "Model")
    browser.find_elements(By.CSS_SELECTOR, "table.sortable th")[model].click()
    labels = _column(browser, model)
    assert labels == sorted(labels)

    # a row's link leads to its runs, whose record link opens the record with its command
    browser.find_element(By.CSS_SELECTOR, "table.sortable tbody a").click()
    anchor = browser.execute_script("return location.hash")
    assert re.fullmatch(r"#row-\d+", anchor)
    section = browser.find_element(By.CSS_SELECTOR, anchor)
    command = section.find_element(By.TAG_NAME, "code").text
    section.find_element(By.LINK_TEXT, "record").click()
    record = json.loads(browser.find_element(By.TAG_NAME, "body").text)
    assert record["command"] == command
