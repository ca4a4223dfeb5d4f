"""The page's browse grid, detail view, URL state, paste, duplicate resolution and runs panel, in
real headless Chromium on a real server; with the keyboard alone, and on a 390 px phone screen."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imgsearch.samples import recompressed_copy
from tests.conftest import ARTIFACTS, ROOT, write_folder
from tests.search_app.conftest import COLLECTION, TIMEOUT_MS, Site
from tests.test_duplicates import plant

BROWSE_PAGE = 60  # what the page asks for at a time
# The phone screenshots land in tests/artifacts; with IMGSEARCH_UPDATE_SCREENSHOTS=1, in docs/images,
# where the documentation shows them.
SHOTS = ROOT / "docs" / "images" if os.environ.get("IMGSEARCH_UPDATE_SCREENSHOTS") else ARTIFACTS


class Page:
    """A Chromium tab on the site, collecting the page's script errors."""

    def __init__(self, browser: Any, site: Site, width: int = 1280, height: int = 900) -> None:
        self.tab = browser.new_page(viewport={"width": width, "height": height})
        self.tab.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.tab.on("pageerror", lambda error: self.errors.append(str(error)))
        self.site = site

    def open(self, query: str = "") -> Any:
        self.tab.goto(f"{self.site.url}/{query}")
        return self.tab

    def title(self) -> str:
        return self.tab.locator("#results-title").inner_text()

    def paths(self) -> list[str]:
        return self.tab.locator("#results li .path").all_inner_texts()

    def tab_to(self, selector: str, most: int = 150) -> None:
        """Press Tab until the focus is on an element matching `selector` (the keyboard alone)."""
        for _ in range(most):
            self.tab.keyboard.press("Tab")
            if self.tab.evaluate(f"document.activeElement.matches({selector!r})"):
                return
        raise AssertionError(f"Tab never reached {selector}")

    def wait_title(self, start: str) -> None:
        self.tab.wait_for_function(f"document.getElementById('results-title').textContent.startsWith({start!r})")


@pytest.fixture
def page(browser: Any, site: Site) -> Iterator[Page]:
    opened = Page(browser, site)
    yield opened
    assert opened.errors == []
    opened.tab.close()


@pytest.fixture(scope="module")
def grown(site: Site, photos: list, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """A collection of more images than one page of the grid holds."""
    paths = write_folder(tmp_path_factory.mktemp("grown") / "many", photos, BROWSE_PAGE + 6, seed=61)
    site.index(paths[0].parent.parent, "grown")
    return paths


def test_the_landing_page_browses_newest_first_with_filters(page: Page, grown: list[Path]) -> None:
    tab = page.open("?collection=grown")
    tab.wait_for_selector("#results li")
    assert page.title().startswith("grown: 60 shown") and tab.locator("#results li").count() == BROWSE_PAGE
    tab.locator("#more").scroll_into_view_if_needed()  # infinite scroll: the rest arrives by itself
    tab.wait_for_function(f"document.querySelectorAll('#results li').length === {len(grown)}")
    assert sorted(page.paths()) == sorted(map(str, grown)) and tab.locator("#more").is_hidden()
    tab.wait_for_function("[...document.querySelectorAll('#results img')].slice(0, 8).every(i => i.complete && i.naturalWidth > 0)")

    folder = str(grown[0].parent)
    tab.select_option("#folder", folder)
    tab.wait_for_function(f"[...document.querySelectorAll('#results li .path')].every(p => p.textContent.startsWith({folder + '/'!r}))")
    assert f"folder={folder.replace('/', '%2F')}" in tab.url
    expected = sorted(str(p) for p in grown if p.parent == grown[0].parent)
    assert sorted(page.paths()) == expected
    tab.reload()  # the URL holds the filter
    tab.wait_for_selector("#results li")
    assert sorted(page.paths()) == expected and tab.locator("#folder").input_value() == folder

    label = grown[0].parent.name
    tab.goto(f"{page.site.url}/?collection=grown&label={label}")
    tab.wait_for_function("document.getElementById('results-title').textContent.includes('label')")
    assert sorted(page.paths()) == expected  # write_folder labels by folder


def test_an_image_opens_for_more_and_less_like_it_and_the_url_keeps_the_query(page: Page, site: Site) -> None:
    tab = page.open(f"?collection={COLLECTION}")
    tab.wait_for_selector("#results li")
    first = tab.locator("#results li").first
    path = first.locator(".path").inner_text()
    first.click()
    tab.wait_for_selector("#detail[open] #detail-facts dd")
    facts = tab.locator("#detail-facts").inner_text()
    assert path in facts and "500×375 px" in facts and "image=" in tab.url
    tab.wait_for_function("document.getElementById('detail-image').complete && document.getElementById('detail-image').naturalWidth > 256")
    assert tab.locator("#detail-less").is_disabled()  # nothing to move away from yet
    tab.click("#detail-more")
    page.wait_title("More like image")
    assert "view=similar" in tab.url and "positive=" in tab.url and "image=" not in tab.url
    liked = page.paths()
    assert path not in liked and len(liked) == 10

    third = tab.locator("#results li").nth(2)
    unliked = third.locator(".path").inner_text()
    third.click()
    tab.wait_for_selector("#detail[open] #detail-facts dd")
    tab.click("#detail-less")
    page.wait_title("More like 1, less like 1")
    assert "negative=" in tab.url and unliked not in page.paths()
    shown, url = page.paths(), tab.url

    tab.reload()  # bookmarkable: the same query answers the same
    page.wait_title("More like 1, less like 1")
    assert page.paths() == shown and tab.url == url
    tab.go_back()  # back through the history: the detail view it came from, then the first query
    tab.wait_for_selector("#detail[open]")
    tab.keyboard.press("Escape")
    tab.wait_for_function("!location.search.includes('image=')")  # the close event has replaced the entry
    tab.go_back()
    page.wait_title("More like image")
    assert page.paths() == liked
    tab.locator("#positives .chip").click()  # the example removed: back to browsing
    page.wait_title(COLLECTION)


def test_a_pasted_image_is_searched(page: Page, site: Site, tmp_path: Path) -> None:
    query = recompressed_copy(site.photos[4], tmp_path / "pasted.jpg", scale=0.6, quality=60)
    tab = page.open(f"?collection={COLLECTION}")
    tab.wait_for_selector("#results li")
    tab.evaluate("""bytes => {
        const file = new File([new Uint8Array(bytes)], "clipboard.jpg", { type: "image/jpeg" });
        const data = new DataTransfer();
        data.items.add(file);
        document.dispatchEvent(new ClipboardEvent("paste", { clipboardData: data, bubbles: true }));
    }""", list(query.read_bytes()))
    page.wait_title("Like clipboard.jpg")
    assert page.paths()[0] == str(site.photos[4])
    assert not tab.locator("#query-preview").is_hidden()


def test_the_keyboard_alone_browses_opens_and_searches(page: Page) -> None:
    tab = page.open(f"?collection={COLLECTION}")
    tab.wait_for_selector("#results li")
    page.tab_to("#results li")
    tab.keyboard.press("Enter")
    tab.wait_for_selector("#detail[open] #detail-facts dd")
    assert tab.evaluate("document.activeElement.id") == "detail-more"
    tab.keyboard.press("Escape")  # closes, and the URL forgets the image (in the dialog's close event, just after)
    tab.wait_for_function("!document.getElementById('detail').open && !location.search.includes('image=')")
    page.tab_to("#results li")
    tab.keyboard.press("Enter")
    tab.wait_for_selector("#detail[open] #detail-facts dd")
    tab.keyboard.press("Enter")  # "More like this" has the focus
    page.wait_title("More like image")
    page.tab_to("#results li")
    tab.keyboard.press(" ")
    tab.wait_for_selector("#detail[open] #detail-facts dd")
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.id") == "detail-less"
    tab.keyboard.press("Enter")
    page.wait_title("More like 1, less like 1")


def test_a_duplicate_group_is_resolved_and_undone_with_the_keyboard(page: Page, site: Site, photos: list,
                                                                   tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("page-resolve") / "library"
    plant(folder, photos)
    site.index(folder, "page_resolve")
    aside = folder.parent / "aside"
    tab = page.open("?collection=page_resolve")
    tab.wait_for_selector("#results li")
    page.tab_to("#collections button[aria-label='Duplicates in page_resolve']")
    tab.keyboard.press("Enter")
    tab.wait_for_selector("#results li.group")
    assert "view=duplicates" in tab.url
    group = tab.locator("#results li.group").first
    members = group.locator("figcaption .path").all_inner_texts()
    suggested, second = members[:2]
    count = len(members)
    page.tab_to("#results li.group input[type=radio]:checked")
    tab.keyboard.press("ArrowRight")  # keep the second one instead
    assert group.locator("input[type=radio]").nth(1).is_checked()
    page.tab_to("#results li.group .move-to")
    tab.keyboard.type(str(aside))
    tab.keyboard.press("Tab")
    assert tab.evaluate("document.activeElement.classList.contains('resolve')")
    tab.keyboard.press("Enter")
    tab.wait_for_selector("#undo-bar:not([hidden])")
    assert tab.evaluate("document.activeElement.id") == "undo"
    assert f"removed {count - 1} from the index, moved {count - 1} files into {aside}" in page.tab.locator(
        "#undo-text").inner_text()
    assert os.path.exists(second) and not os.path.exists(suggested)
    assert sorted(os.listdir(aside)) == sorted(Path(p).name for p in members if p != second)
    tab.keyboard.press("Enter")  # Undo
    tab.wait_for_function("document.getElementById('status').textContent.startsWith('Undone')")
    assert os.path.exists(suggested) and os.listdir(aside) == []
    tab.wait_for_function(f"document.querySelectorAll('#results li.group:first-child figure').length === {count}")
    assert tab.locator("#results li.group").count() == 3


def test_the_runs_panel_lists_runs_with_their_figures(page: Page, site: Site, photos: list, tmp_path: Path) -> None:
    write_folder(tmp_path / "panel", photos, 3, seed=71)
    tab = page.open()
    tab.fill("#index-path", str(tmp_path / "panel"))
    tab.fill("#index-collection", "runs_page")
    tab.click("#index-form button")
    tab.wait_for_function("document.getElementById('index-text').textContent.startsWith('Done')", timeout=180_000)
    tab.click("#runs-panel summary")
    run = tab.locator("#runs li", has_text="index panel into runs_page").first
    run.wait_for()
    assert "Completed" in run.locator(".state").inner_text() and "3 indexed" in run.locator(".figures").inner_text()
    link = run.locator("a.name").get_attribute("href")
    assert link and "/runs/flow-run/" in link


def test_a_390_px_phone_screen_shows_every_view(browser: Any, site: Site, grown: list[Path]) -> None:
    phone = Page(browser, site, width=390, height=844)
    tab = phone.open("?collection=grown")
    tab.wait_for_selector("#results li")
    tab.wait_for_function("[...document.querySelectorAll('#results img')].slice(0, 4).every(i => i.complete)")
    SHOTS.mkdir(parents=True, exist_ok=True)
    wide = "document.documentElement.scrollWidth"
    assert tab.evaluate(wide) <= 390, "nothing runs off the side of the screen"
    tiles = tab.locator("#results li")
    assert tiles.first.bounding_box()["width"] >= 150  # two to a row, not a strip of thumbnails
    tab.screenshot(path=str(SHOTS / "phone_browse.png"))
    tiles.first.click()
    tab.wait_for_selector("#detail[open] #detail-facts dd")
    tab.wait_for_function("document.getElementById('detail-image').complete")
    box = tab.locator("#detail").bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390 and tab.evaluate(wide) <= 390
    tab.screenshot(path=str(SHOTS / "phone_detail.png"))
    tab.click("#detail-more")
    phone.wait_title("More like image")
    time.sleep(0.2)
    assert tab.evaluate(wide) <= 390
    tab.screenshot(path=str(SHOTS / "phone_results.png"), full_page=True)
    assert phone.errors == []
    tab.close()
