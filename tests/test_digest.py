"""The Dutch digest: on the demo's real nightly run with reviewed stories, through `radar digest`, in Chromium."""

from __future__ import annotations

import email
import email.policy
import json
import re
from pathlib import Path

import pytest

from pipeline.codebook import load_codebook
from pipeline.demo_site import start_demo_site
from pipeline.public.digest import Window, clean_quote, digest_groups, parse_window, render_digest
from pipeline.runs.nightly import run_nightly
from pipeline.review.events import Label, record_decision, record_settle
from pipeline.settings import load_settings
from pipeline.store import Store
from tests.cli_helpers import invoke
from tests.conftest import ROOT, SCREENSHOT_DIR
from tests.test_review_app import MODEL, fill_store

DEMO = ROOT / "data" / "demo"
EXPECTED = json.loads((DEMO / "expected.json").read_text(encoding="utf-8"))
SCREENSHOT = SCREENSHOT_DIR / "digest.png"  # docs/digest.png only with `make screenshots`
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SINCE_MARCH = ("--since", "2026-03-01")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo site fetched by a real nightly run; ann accepted every co-creation story with its codebook label."""
    tmp = tmp_path_factory.mktemp("digest")
    server, base = start_demo_site("127.0.0.1", 0)
    feeds = tmp / "feeds.toml"
    feeds.write_text((DEMO / "feeds.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", base),
                     encoding="utf-8")
    settings = load_settings(None, data_dir=tmp / "local", feeds_file=feeds, allow_private_addresses=True,
                             host_delay=0.0, progress=False)
    try:
        assert run_nightly(settings).status == "ok"
    finally:
        server.shutdown()
        server.server_close()
    store = Store(settings.effective_database_url)
    by_path = {"/" + a.url.split("://", 1)[1].split("/", 1)[1]: a for a in store.articles()}
    for page in EXPECTED["articles"]:
        article = by_path.get(page["path"])
        if page["cocreation"] and article and not article.canonical_id:
            record_decision(store, article.id, "ann", Label(True, page["sector"], page["type"]),
                            model_version=None, codebook_version="1")
    yield {"env": {"RADAR_DATA_DIR": str(settings.data_dir)}, "store": store, "tmp": tmp}
    store.close()


def digest(demo, *args: str):
    """Run `radar digest` on the demo database; return the finished process."""
    result = invoke("digest", *args, env=demo["env"])
    assert result.exit_code == 0, result.stderr
    return result


def test_markdown_digest_is_dutch_with_display_names_and_type_leads(demo):
    text = digest(demo, *SINCE_MARCH).stdout
    codebook = load_codebook()
    assert text.startswith("# Cocreatie in het nieuws\n")
    assert "9 verhalen gepubliceerd sinds 1 maart 2026 over cocreatie" in text
    headings = re.findall(r"^## (.+)$", text, flags=re.M)
    assert headings == ["Overheid", "Zorg", "Onderwijs", "Welzijn", "Wonen", "Cultuur"]  # codebook order, Dutch
    assert "**Zelfbouw.** " + codebook.lead_of("zelfbouw") in text
    assert "**Beleid.** Mensen denken en beslissen mee over beleid" in text
    assert "Dagblad De Polder, 12 maart 2026 · ook in Rivierstad Courant" in text  # the wire copy is one story
    for english in ("Co-creation", "reviewed example", "also in", "## overheid", " · beleid"):
        assert english not in text


def test_quotes_have_no_dateline_and_no_markdown_escapes(demo):
    text = digest(demo, *SINCE_MARCH).stdout
    quotes = [line[2:] for line in text.splitlines() if line.startswith("> ")]
    assert len(quotes) >= 7
    # The NPB wire story starts "DEN HAAG (NPB) - Nabestaanden ..." in both papers.
    assert "> Nabestaanden van vermiste militairen uit de Tweede Wereldoorlog krijgen voortaan een stem" in text
    assert "DEN HAAG" not in text and "NPB" not in text and "\\(" not in text and "\\" not in "".join(quotes)


@pytest.mark.parametrize("raw,clean", [
    ("DEN HAAG (NPB) - Nabestaanden krijgen een stem.", "Nabestaanden krijgen een stem."),
    ("DEN HAAG \\(NPB\\) - Nabestaanden krijgen een stem.", "Nabestaanden krijgen een stem."),
    ("UTRECHT – Huurders kiezen zelf.", "Huurders kiezen zelf."),
    ("'S-HERTOGENBOSCH (ANP) — Bewoners\n  ontwerpen mee.", "Bewoners ontwerpen mee."),
    ("Het park \\(zie kaart\\) krijgt een \\*vijver\\*.", "Het park (zie kaart) krijgt een *vijver*."),
    ("De gemeente - en niet de provincie - beslist.", "De gemeente - en niet de provincie - beslist."),
    ("GGD en bewoners werken samen.", "GGD en bewoners werken samen."),
])
def test_clean_quote(raw, clean):
    assert clean_quote(raw) == clean


def test_since_is_the_publication_date_and_decided_since_the_old_meaning(demo):
    assert "Geen nieuwe voorbeelden gepubliceerd sinds" in digest(demo).stdout  # 7d: nothing from March 2026
    later = digest(demo, "--since", "2026-03-10").stdout
    assert "Huurders kiezen zelf nieuwe gevels" in later and "Bewoners tekenen mee aan nieuw Wilgenpark" not in later
    decided = digest(demo, "--decided-since", "7d").stdout  # decided today, published in March
    assert "9 verhalen beoordeeld sinds" in decided and "gepubliceerd" not in decided
    assert "Geen nieuwe voorbeelden" in digest(demo, "--decided-since", "2999-01-01").stdout
    bad = invoke("digest", "--decided-since", "gisteren", env=demo["env"])
    assert bad.exit_code == 2 and "--decided-since 'gisteren'" in bad.stderr


def test_email_digest_is_multipart_html_with_a_plain_text_alternative(demo, tmp_path):
    out = tmp_path / "digest.eml"
    digest(demo, *SINCE_MARCH, "--format", "eml", "--output", str(out))
    message = email.message_from_bytes(out.read_bytes(), policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    assert message["Subject"] == "Cocreatie in het nieuws: 9 voorbeelden, gepubliceerd sinds 1 maart 2026"
    plain = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert plain.startswith("COCREATIE IN HET NIEUWS") and "OVERHEID\n========" in plain
    assert "<" not in plain and "\\" not in plain and max(len(line) for line in plain.splitlines()
                                                         if not line.startswith("http")) <= 72
    assert "Nabestaanden van vermiste militairen" in plain and "DEN HAAG" not in plain
    assert html.startswith("<!doctype html>") and ">Overheid</h2>" in html


def test_html_digest_is_styled_inline_for_mail_clients(demo):
    html = digest(demo, *SINCE_MARCH, "--format", "html").stdout
    # Gmail and Outlook drop <style>, classes, external sheets and scripts: none of them, styles inline.
    for banned in ("<style", "class=", "<link", "<script", "url(", "<img"):
        assert banned not in html
    tags = re.findall(r"<(h1|h2|h3|p|td|a|span)\b([^>]*)>", html)
    assert tags and all('style="' in attrs for _tag, attrs in tags)
    assert 'width="600"' in html and "font-family:Arial,Helvetica,sans-serif" in html


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (make test installs it)")
def test_html_digest_in_chromium_and_screenshot(demo):
    sync_api = pytest.importorskip("playwright.sync_api")
    html = digest(demo, *SINCE_MARCH, "--format", "html").stdout
    page_file = demo["tmp"] / "digest.html"
    page_file.write_text(html, encoding="utf-8")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 720, "height": 1000})
            page.goto(page_file.as_uri())
            assert page.locator("h1").inner_text() == "Cocreatie in het nieuws"
            assert page.locator("h2").all_inner_texts() == ["Overheid", "Zorg", "Onderwijs", "Welzijn", "Wonen",
                                                             "Cultuur"]
            assert page.locator("h3").count() == 9 and page.locator("h3 a").count() == 9
            box = page.locator("table[width='600']").bounding_box()
            assert box and box["width"] == 600  # the mail column keeps its width
            colour = page.locator("h2").first.evaluate("e => getComputedStyle(e).color")
            assert colour == "rgb(11, 85, 99)"
            assert "DEN HAAG" not in page.locator("body").inner_text()
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT), full_page=True)
        finally:
            browser.close()
    assert SCREENSHOT.stat().st_size > 20_000


# -- untrusted text (the review app's scenario: a script title, a javascript: link) -------------------

@pytest.fixture
def hostile(make_settings):
    """A store where park is agreed yes by two analysts, xss (hostile title, outlet and link) settled yes."""
    store = Store(make_settings().effective_database_url)
    store.migrate()
    ids = fill_store(store)
    for name in ("ann", "bea"):
        record_decision(store, ids["park"], name, Label(True, "overheid", "ontwerp"), model_version=MODEL,
                        codebook_version="1")
    record_decision(store, ids["xss"], "ann", Label(False), model_version=MODEL, codebook_version="1")
    record_settle(store, ids["xss"], "cas", Label(True, "goede_doelen", "uitvoering"), model_version=MODEL,
                  codebook_version="1")
    yield store
    store.close()


def test_digest_escapes_untrusted_text_in_every_format(hostile):
    codebook = load_codebook()
    groups = digest_groups(hostile, codebook, Window())
    assert list(groups) == ["overheid", "goede_doelen"]
    html = render_digest(groups, "html", codebook)
    assert ">Goede doelen</h2>" in html and "&lt;script&gt;" in html
    assert "<script" not in html and 'href="javascript:' not in html and 'onerror="' not in html
    assert '<a href="https://example.org/park"' in html
    markdown = render_digest(groups, "md", codebook)
    assert "## Goede doelen" in markdown and "<script>" not in markdown and "javascript:" not in markdown
    assert "### [Bewoners ontwerpen nieuw park mee](https://example.org/park)" in markdown


def test_codebook_has_a_dutch_name_for_every_label_and_a_lead_for_every_type():
    codebook = load_codebook()
    names = [codebook.label_of(name) for name in codebook.sectors + codebook.types]
    assert [e.get("label") for e in codebook.raw["sectors"] + codebook.raw["types"]] == names  # none is a fallback
    assert {"Overheid", "Goede doelen", "Zelfbouw"} <= set(names) and len(set(names)) == len(names)
    assert all(codebook.lead_of(t).endswith(".") and len(codebook.lead_of(t)) <= 90 for t in codebook.types)
    assert codebook.label_of("nog_niet") == "Nog niet" and codebook.lead_of("nog_niet") == ""


def test_parse_window_defaults():
    from datetime import date

    today = date(2026, 3, 20)
    assert parse_window(None, None, today) == Window("2026-03-13", None)
    assert parse_window(None, "2w", today) == Window(None, "2026-03-06")
    assert parse_window("2026-03-01", "7d", today) == Window("2026-03-01", "2026-03-13")
