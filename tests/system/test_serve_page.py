"""The web page of `nmt serve` in a real browser: headless Chromium (Debian's `chromium` and
`chromium-driver`, which .ci/run installs) driven by Selenium, pointed at that browser so that
it never tries to download one."""
from __future__ import annotations

import os
import time

import pytest

from tests.helpers import nmt_translate

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.path.exists(path)]
    if missing:
        pytest.skip(f"no browser to drive: {', '.join(missing)} missing (Debian: apt-get install "
                    f"chromium chromium-driver, as .ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,1000",
                     "--disable-dev-shm-usage"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def waiting(browser):
    """Waits up to 30 s for a condition, asking again when the page replaced an element the
    condition was reading (the results list is redrawn as each translation arrives)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))


def test_the_page_translates_as_you_type_with_nbest_and_attention(
        browser, reverse_translator, reverse_server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    first, second = "1 2 3 4 5", "9 8 7"
    expected = nmt_translate(reverse_translator, tmp_path, [first, second], nbest=3)
    browser.get(reverse_server.url + "/")
    wait = waiting(browser)
    box = browser.find_element(By.ID, "source")
    assert browser.find_element(By.CSS_SELECTOR, "label[for=source]").text.startswith(
        "Source text")
    wait.until(lambda _: "Model:" in browser.find_element(By.ID, "model").text)

    def best_texts():
        return [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results li .text")]

    box.send_keys(first)  # translated once typing pauses
    wait.until(lambda _: best_texts() == [expected[0].split(" ||| ")[1]])
    box.send_keys(Keys.SHIFT, Keys.ENTER)
    box.send_keys(second, Keys.ENTER)  # Enter: at once, and no new line
    # A pause in the typing may translate a part of the second line first: wait for the whole.
    wait.until(lambda _: best_texts() == [expected[i].split(" ||| ")[1] for i in (0, 3)])
    assert box.get_attribute("value") == f"{first}\n{second}"
    # Each sentence's n-best with scores, as `nmt translate --nbest 3` writes them.
    shown = []
    for index, item in enumerate(browser.find_elements(By.CSS_SELECTOR, "#results li")):
        for row in item.find_elements(By.CSS_SELECTOR, "table.nbest tr"):
            rank, score, text = (cell.text for cell in row.find_elements(By.XPATH, "./*"))
            shown.append(f"{index} ||| {text} ||| {score}")
    assert shown == expected
    # The attention heatmap of the chosen sentence: a row per output token and </s>, a column
    # per source token and </s>.
    browser.find_elements(By.CSS_SELECTOR, "#results li button")[1].click()
    columns = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#heatmap thead th")]
    rows = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#heatmap tbody th")]
    assert columns == second.split() + ["</s>"]
    assert rows == expected[3].split(" ||| ")[1].split() + ["</s>"]
    assert browser.find_elements(By.CSS_SELECTOR, "#results li button")[1].get_attribute(
        "aria-pressed") == "true"
    # Everything the page loaded came from the server itself: it works offline.
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(url.startswith(reverse_server.url + "/") for url in loaded)
    assert not [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]


def test_a_cleared_box_stays_empty_and_a_cut_request_says_so(browser, reverse_server):
    from selenium.webdriver.common.by import By

    browser.get(reverse_server.url + "/")
    wait = waiting(browser)
    wait.until(lambda _: "Model:" in browser.find_element(By.ID, "model").text)
    # A slow server: every translation answers 1.5 s late.
    browser.execute_script("""
        const original = window.fetch;
        window.fetch = async (url, options) => {
          const reply = await original(url, options);
          if (url === "/translate") await new Promise((done) => setTimeout(done, 1500));
          return reply;
        };""")

    def typed(text):
        browser.execute_script("const box = document.getElementById('source'); box.value = "
                               "arguments[0]; box.dispatchEvent(new Event('input'));", text)

    def results():
        return browser.find_elements(By.CSS_SELECTOR, "#results li")

    typed("1 2 3")
    time.sleep(0.8)  # the request has left (300 ms debounce) and is not answered yet
    typed("")
    time.sleep(2.5)  # its answer has come back meanwhile: the box is empty, so are the results
    assert results() == []
    typed("\n".join(["4 5"] * 17))  # one more than the server's --max-lines 16
    wait.until(lambda _: len(results()) == 16)
    assert browser.find_element(By.ID, "status").text == "Only the first 16 lines are translated."
