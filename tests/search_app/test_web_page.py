"""The web page and /docs in real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsearch.samples import recompressed_copy
from tests.conftest import ARTIFACTS, write_folder
from tests.search_app.conftest import COLLECTION, TIMEOUT_MS, Site


def test_pick_an_image_then_click_a_result(browser: object, site: Site, tmp_path: Path) -> None:
    query = recompressed_copy(site.photos[6], tmp_path / "query.jpg", scale=0.7, quality=50)
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url + "/")
    page.wait_for_selector(f"#collection option[value='{COLLECTION}']", state="attached")
    page.select_option("#collection", COLLECTION)
    page.wait_for_selector("#results li")  # the landing page browses the collection
    page.set_input_files("#file-input", str(query))
    page.wait_for_function("document.getElementById('results-title').textContent.startsWith('Like query.jpg')")
    first = page.locator("#results li").first
    assert first.locator(".path").inner_text() == str(site.photos[6])
    assert page.locator("#results li").count() == 10
    # Thumbnails are made on first request: wait for the first one to arrive, then check it decoded.
    page.wait_for_function("(() => { const i = document.querySelector('#results li img');"
                           " return i !== null && i.complete; })()")
    assert page.locator("#results li img").first.evaluate("img => img.naturalWidth > 0")

    # A minimum score keeps only the results that similar: set between the second and third, two stay.
    scores = [float(text) for text in page.locator("#results li .score").all_inner_texts()]
    page.fill("#min-score", f"{(scores[1] + scores[2]) / 2:.5f}")
    page.dispatch_event("#min-score", "change")
    page.wait_for_function("document.querySelectorAll('#results li').length === 2")
    assert "2 results at least" in page.locator("#results-title").inner_text()
    page.fill("#min-score", "")
    page.dispatch_event("#min-score", "change")
    page.wait_for_function("document.querySelectorAll('#results li').length === 10")

    second = page.locator("#results li").nth(1)
    clicked = second.locator(".path").inner_text()
    second.click()  # opens it; "More like this" searches
    page.wait_for_selector("#detail[open] #detail-facts dd")
    page.click("#detail-more")
    page.wait_for_function("document.getElementById('results-title').textContent.startsWith('More like')")
    paths = page.locator("#results li .path").all_inner_texts()
    assert clicked not in paths and len(paths) == 10
    page.wait_for_function("[...document.querySelectorAll('#results img')].every(i => i.complete)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web_page.png"), full_page=True)
    assert errors == []
    page.close()


def test_duplicates_of_a_collection_are_shown_as_groups(browser: object, site: Site, photos: list,
                                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.test_duplicates import plant

    folder = tmp_path_factory.mktemp("page-planted") / "library"
    expected, _ = plant(folder, photos)
    site.index(folder, "page_planted")
    page = browser.new_page(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(site.url + "/")
    row = page.locator("#collections li", has_text="page_planted")
    row.locator("button.duplicates").click()
    page.wait_for_selector("#results li.group")
    groups = page.locator("#results li.group")
    assert groups.count() == 3 and "3 groups at least 0.93" in page.locator("#results-title").inner_text()
    shown = [sorted(groups.nth(n).locator("figcaption .path").all_inner_texts()) for n in range(3)]
    assert sorted(shown) == sorted(sorted(group) for group in expected)
    # The Min score field applies here too: only exact copies at 0.99999; below 0.5 is refused.
    page.fill("#min-score", "0.99999")
    row.locator("button.duplicates").click()
    page.wait_for_function("document.querySelectorAll('#results li.group').length === 2")
    # Answers can come back out of order (leaving the field fires a search as the click starts
    # another). Hold the answers at 0.95 until the refusal at 0.3 is shown, then let them through:
    # the refusal and the two groups stay, a stale answer draws nothing.
    held: list = []
    page.route(lambda url: "min_score=0.95" in url, lambda route: held.append(route))
    page.fill("#min-score", "0.95")
    row.locator("button.duplicates").click()
    while not held:
        page.wait_for_timeout(20)
    page.fill("#min-score", "0.3")
    row.locator("button.duplicates").click()
    page.wait_for_function("document.getElementById('status').classList.contains('error')")
    for route in held:
        with page.expect_response(lambda response: "min_score=0.95" in response.url) as answer:
            route.continue_()
        answer.value.finished()
    page.unroute_all()
    page.evaluate("new Promise((resolve) => setTimeout(resolve, 200))")
    assert "422" in page.locator("#status").inner_text()
    assert page.locator("#status").evaluate("status => status.classList.contains('error')")
    assert groups.count() == 2
    assert errors == []


def test_load_folder_shows_progress_to_completion(browser: object, site: Site, photos: list,
                                                  tmp_path: Path) -> None:
    write_folder(tmp_path / "browser_load", photos, 4, seed=41)
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site.url + "/")
    page.fill("#index-path", str(tmp_path / "browser_load"))
    page.fill("#index-collection", "browser_load")
    page.click("#index-form button")
    page.wait_for_function("document.getElementById('index-text').textContent.startsWith('Done')",
                           timeout=180_000)
    assert page.locator("#index-bar").evaluate("bar => bar.value") == 100
    page.wait_for_selector("#collections li:has-text('browser_load')")
    page.close()


def test_docs_render_offline(browser: object, site: Site) -> None:
    page = browser.new_page()  # type: ignore[attr-defined]
    page.set_default_timeout(TIMEOUT_MS)
    external: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(site.url) or
            request.url.startswith("data:") else external.append(request.url))
    page.goto(site.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=30_000)
    assert page.locator(".opblock").count() >= 19
    assert external == []
    page.close()
