"""The built book as readers see it: every page in the system's Chromium, on a desktop and on a phone.

Each page is opened once, in a fresh browser context (a first visit: empty storage), on a desktop
and then narrowed to a phone, and what the tests need is recorded then; each test below checks one
property over every page, so a failure lists every page and element concerned. Nothing may leave
the machine: any request to another host is aborted and reported.
"""

from __future__ import annotations

import os
import re
import struct
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from browser import AXE_JS, DESKTOP, PHONE, TIMEOUT_MS, keep_local, launched_chromium, served
from conftest import ROOT
from test_book import HTML, built_book, html_pages, style_min_font_pt

# The smallest text a reader should have to read in a figure, in CSS pixels. The course style's
# smallest font (10 pt tick labels) drawn at 100 dpi is 13.9 px at its natural size; 11 px is what
# is left when a figure drawn 25 % wider than the text column is scaled down to fit it.
MIN_FIGURE_TEXT_PX = 11.0
# axe-core rules whose serious or critical violations only the theme can fix, with the upstream
# issue. Empty: the course's overrides (book/_static/course.js) fix every one found so far.
THEME_ONLY_AXE_RULES: dict[str, str] = {}
# Key terms of the course and the page search must find for each.
SEARCHES = {
    "softmax": "book/ch01_human_to_machine_attention.html",
    "Bahdanau": "book/ch02_rnn_attention.html",
    "multi-head": "book/ch04_multi_head_attention.html",
    "KV cache": "book/ch06_beyond.html",
}
RAW_TEX = re.compile(r"\\[A-Za-z]{2,}|\\[()\[\]]|\$")
# COURSE_SCREENSHOTS=FOLDER: save a chapter on a phone (menus open too) and its figures there.
SCREENSHOTS = os.environ.get("COURSE_SCREENSHOTS")
SCREENSHOT_PAGE = "book/ch01_human_to_machine_attention.html"

# After the load event: MathJax has typeset the page, every image has loaded (or failed).
SETTLE = """async () => {
  const startup = window.MathJax && window.MathJax.startup;
  if (startup && startup.promise) { await startup.promise; }
  await Promise.all([...document.images].map((img) => {
    img.loading = "eager";
    return img.decode().catch(() => null);
  }));
  await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
}"""

RECORD = """() => {
  const headingOf = (el) => {
    const section = el.closest("section");
    const heading = section && section.querySelector("h1, h2, h3, h4");
    return heading ? heading.textContent.replace("#", "").trim() : "";
  };
  const article = document.querySelector(".bd-article");
  return {
    images: [...document.images].map((img) => ({
      src: img.currentSrc || img.src,
      alt: img.getAttribute("alt"),
      loaded: img.complete && img.naturalWidth > 0,
      natural: img.naturalWidth,
      shown: img.getBoundingClientRect().width,
      inArticle: article !== null && article.contains(img),
      inOutput: img.closest(".cell_output") !== null,
      section: headingOf(img),
    })),
    math: {
      elements: document.querySelectorAll(".math").length,
      typeset: document.querySelectorAll(".math mjx-container").length,
      untypeset: [...document.querySelectorAll(".math")]
        .filter((m) => !m.querySelector("mjx-container")).map((m) => m.textContent.slice(0, 60)),
      errors: [...document.querySelectorAll("mjx-merror")].map((m) => m.textContent.slice(0, 60)),
    },
  };
}"""

AXE_RUN = """async () => {
  const results = await axe.run(document, {
    resultTypes: ["violations"],
    rules: {"label-content-name-mismatch": {enabled: true}},
  });
  return results.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5), count: v.nodes.length,
  }));
}"""

# Elements of the article that stick out of the viewport without a scroll box of their own.
OVERFLOW = """() => {
  const width = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      if (/(auto|scroll|hidden|clip)/.test(getComputedStyle(p).overflowX)) { return true; }
    }
    return false;
  };
  const out = [];
  for (const el of document.querySelectorAll(".bd-article *")) {
    const box = el.getBoundingClientRect();
    if (box.width > 0 && box.right > width + 1 && !scrolls(el)) {
      const text = (el.textContent || "").trim().slice(0, 50);
      out.push(`<${el.tagName.toLowerCase()} class="${el.className}"> ${text}`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width: width, offenders: out.slice(0, 5)};
}"""


@dataclass
class Visit:
    page: str
    console: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    math: dict = field(default_factory=dict)
    axe: list[dict] = field(default_factory=list)
    overflow: dict = field(default_factory=dict)
    menus: list[str] = field(default_factory=list)


def _open(browser, base: str, page_name: str, viewport: dict):
    """A fresh context (first visit) with the page loaded and settled, and its Visit record."""
    visit = Visit(page_name)
    context = browser.new_context(viewport=viewport)
    context.set_default_timeout(TIMEOUT_MS)
    keep_local(context, base, visit.external)
    page = context.new_page()
    page.on("console", lambda m: visit.console.append(f"{m.type}: {m.text}")
            if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: visit.console.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} ({r.failure})")
            if r.url.startswith(base) else None)
    page.on("response", lambda r: visit.failed.append(f"{r.url} (HTTP {r.status})")
            if r.status >= 400 else None)
    page.goto(base + page_name, wait_until="load")
    page.evaluate(SETTLE)
    return context, page, visit


@pytest.fixture(scope="module")
def site():
    built_book()
    with launched_chromium() as browser, served(HTML) as base:
        yield browser, base


@pytest.fixture(scope="module")
def visits(site) -> dict[str, Visit]:
    """Every page, opened once: on a 1300 px desktop (console, requests, images, math, axe-core),
    then narrowed to a 390 px phone (sideways scrolling, the two sidebar menus)."""
    browser, base = site
    axe = AXE_JS.read_text() if AXE_JS.is_file() else None
    records = {}
    for name in html_pages():
        context, page, visit = _open(browser, base, name, DESKTOP)
        recorded = page.evaluate(RECORD)
        visit.images, visit.math = recorded["images"], recorded["math"]
        if axe is not None:
            page.add_script_tag(content=axe)
            visit.axe = page.evaluate(AXE_RUN)
        if SCREENSHOTS and name == SCREENSHOT_PAGE:
            _figure_screenshots(page, visit, Path(SCREENSHOTS))
        page.set_viewport_size(PHONE)
        page.evaluate(SETTLE)
        visit.overflow = page.evaluate(OVERFLOW)
        if SCREENSHOTS and name == SCREENSHOT_PAGE:
            page.screenshot(path=str(Path(SCREENSHOTS) / "phone-chapter.png"))
        visit.menus = _try_menus(page, Path(SCREENSHOTS) if SCREENSHOTS and name == SCREENSHOT_PAGE else None)
        context.close()
        records[name] = visit
    return records


def _figure_screenshots(page, visit: Visit, folder: Path) -> None:
    """The first figure of the page shown at its drawn size, and the first one scaled down to fit."""
    folder.mkdir(parents=True, exist_ok=True)
    outputs = [image for image in visit.images if image["inOutput"] and image["natural"]]
    locators = page.locator(".bd-article .cell_output img")
    saved = set()
    for index, image in enumerate(outputs):
        name = "figure-scaled-down.png" if image["shown"] / image["natural"] < 0.8 else "figure.png"
        if name not in saved:
            locators.nth(index).screenshot(path=str(folder / name))
            saved.add(name)


def _try_menus(page, screenshots: Path | None = None) -> list[str]:
    """Open the site menu (and the page's contents, where it has any) with their buttons."""
    problems = []
    for kind in ("primary", "secondary"):
        dialog = f"#pst-{kind}-sidebar-modal"
        button = page.locator(f".{kind}-toggle:visible")
        if button.count() == 0:
            if kind == "primary":
                problems.append("no visible button opens the site menu")
            continue
        button.first.click()
        try:
            page.wait_for_function(f"() => document.querySelector('{dialog}').open", timeout=10_000)
        except Exception:  # noqa: BLE001 - reported as a problem of the page
            problems.append(f"the {kind} sidebar button ({button.first.get_attribute('title')}) "
                            "opens nothing")
            continue
        if page.locator(f"{dialog} a:visible").count() == 0:
            problems.append(f"the {kind} menu opened with no visible link")
        if screenshots is not None:
            page.screenshot(path=str(screenshots / f"phone-{kind}-menu.png"))
        page.keyboard.press("Escape")
        page.wait_for_function(f"() => !document.querySelector('{dialog}').open")
    return problems


def _report(problems: dict[str, list[str]]) -> str:
    return "\n".join(f"{page}:\n    " + "\n    ".join(items) for page, items in problems.items() if items)


def test_every_page_loads_with_a_clean_console(visits):
    problems = {name: v.console + v.failed for name, v in visits.items()}
    assert not any(problems.values()), "console errors, warnings or failed requests:\n" + _report(problems)


def test_no_request_leaves_the_machine(visits):
    problems = {name: v.external for name, v in visits.items()}
    assert not any(problems.values()), "requests to other hosts (aborted):\n" + _report(problems)


def test_math_is_typeset(visits):
    problems = {name: [f"not typeset: {t}" for t in v.math["untypeset"]]
                + [f"TeX error: {t}" for t in v.math["errors"]] for name, v in visits.items()}
    assert sum(v.math["typeset"] for v in visits.values()) > 50, "MathJax typeset (almost) nothing"
    assert not any(problems.values()), _report(problems)


def test_every_image_loads(visits):
    problems = {name: [i["src"] for i in v.images if not i["loaded"]] for name, v in visits.items()}
    assert sum(len(v.images) for v in visits.values()) > 10
    assert not any(problems.values()), "images that did not load:\n" + _report(problems)


def _describes(image: dict) -> bool:
    alt = (image["alt"] or "").strip()
    name = Path(image["src"].split("?")[0]).name
    return (len(alt.split()) >= 3 and name not in alt
            and not re.search(r"\.(png|jpe?g|svg|gif)$", alt, re.IGNORECASE))


def test_every_figure_has_alternative_text_that_describes_it(visits):
    """Alt text from the cell's metadata (`mystnb: image: alt:`), not the figure's file path."""
    problems = {name: [f"figure in '{i['section']}': alt={i['alt']!r}" for i in v.images
                       if i["inArticle"] and not _describes(i)] for name, v in visits.items()}
    count = sum(len(items) for items in problems.values())
    assert not count, f"{count} figures without a description:\n" + _report(problems)


def png_dpi(path: Path) -> float | None:
    """The resolution stored in a PNG's pHYs chunk (Matplotlib writes the figure's dpi there)."""
    data = path.read_bytes()
    position = 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        if kind == b"pHYs":
            per_x, _, unit = struct.unpack(">IIB", data[position + 8:position + 17])
            return per_x * 0.0254 if unit == 1 else None
        position += 12 + length
    return None


def test_figure_text_is_readable_at_the_page_width(visits, site):
    """Rendered size of the style's smallest text: pt x dpi/72 x (displayed width / drawn width).

    Measured on the desktop, where the text column is about 770 px wide: a figure drawn wider than
    the style's 7 inches at 100 dpi is scaled down to fit, and its labels shrink with it.
    """
    _, base = site
    points = style_min_font_pt()
    problems: dict[str, list[str]] = {}
    for name, visit in visits.items():
        for image in visit.images:
            if not (image["inOutput"] and image["natural"] and image["src"].startswith(base)):
                continue
            path = HTML / image["src"][len(base):].split("?")[0]
            dpi = png_dpi(path) if path.suffix == ".png" else None
            if dpi is None:
                continue
            text_px = points * dpi / 72 * image["shown"] / image["natural"]
            if text_px < MIN_FIGURE_TEXT_PX:
                problems.setdefault(name, []).append(
                    f"figure in '{image['section']}': drawn {image['natural']} px wide at {dpi:.0f} dpi "
                    f"({image['natural'] / dpi:.1f} in), shown at {image['shown']:.0f} px: {points:g}-pt "
                    f"text is {text_px:.1f} px (< {MIN_FIGURE_TEXT_PX:g})")
    count = sum(len(items) for items in problems.values())
    assert not count, (f"{count} figures with unreadable text (draw them at most 7 in wide, "
                       "book/matplotlibrc):\n" + _report(problems))


def test_axe_finds_no_serious_or_critical_violation(visits):
    if not AXE_JS.is_file():
        pytest.skip(f"axe-core is not installed ({AXE_JS.relative_to(ROOT)}): run scripts/setup "
                    "(npm ci in tests/browser)")
    problems = {name: [f"{a['impact']} {a['id']} ({a['count']} nodes: {', '.join(a['nodes'])}): {a['help']}"
                       for a in v.axe if a["impact"] in ("serious", "critical")
                       and a["id"] not in THEME_ONLY_AXE_RULES] for name, v in visits.items()}
    assert not any(problems.values()), _report(problems)


def test_no_page_scrolls_sideways_on_a_phone(visits):
    problems = {name: ([f"page is {v.overflow['scrollWidth']} px wide in a {v.overflow['width']} px screen"]
                       + v.overflow["offenders"]) if v.overflow["scrollWidth"] > v.overflow["width"] + 1
                else [] for name, v in visits.items()}
    assert not any(problems.values()), _report(problems)


def test_menus_open_on_a_phone(visits):
    problems = {name: v.menus for name, v in visits.items()}
    assert not any(problems.values()), _report(problems)


def test_sidebar_collapses_and_returns_on_a_desktop(site):
    browser, base = site
    context, page, _ = _open(browser, base, "book/ch01_human_to_machine_attention.html", DESKTOP)
    sidebar = page.locator("#pst-primary-sidebar")
    assert sidebar.is_visible()
    page.locator(".primary-toggle:visible").first.click()
    sidebar.wait_for(state="hidden")
    page.locator(".primary-toggle:visible").first.click()
    sidebar.wait_for(state="visible")
    context.close()


@pytest.mark.parametrize("term", sorted(SEARCHES))
def test_search_finds_key_terms(site, term):
    browser, base = site
    context, page, visit = _open(browser, base, f"search.html?q={term}", DESKTOP)
    page.wait_for_function(
        "() => /Search finished/.test(document.getElementById('search-results')?.textContent)")
    results = page.evaluate("""() => [...document.querySelectorAll('#search-results li')].map((li) => ({
        href: li.querySelector('a').getAttribute('href'), text: li.textContent}))""")
    context.close()
    pages = [r["href"].split("#")[0].split("?")[0] for r in results]
    assert SEARCHES[term] in pages, f"searching {term!r} found {pages}"
    raw = [r["text"] for r in results if RAW_TEX.search(r["text"])]
    assert not raw, f"raw TeX in the snippets of {term!r}:\n" + "\n".join(raw)
    assert not visit.console, visit.console
