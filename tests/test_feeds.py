"""Feed list loading and parsing of real and broken feeds."""

from __future__ import annotations

import time
import tracemalloc

import pytest

from pipeline.resources import FEEDS_FILE
from pipeline.errors import ConfigError, FetchError
from pipeline.ingest.feeds import load_feed_list, parse_feed
from tests.conftest import CORPUS, rss

FEEDS = CORPUS / "feeds"


def test_real_brussels_feed_yields_entries_with_fields():
    body = (FEEDS / "brusselnieuws_be_nl_hoofdpunten_feed.xml").read_bytes()
    parsed = parse_feed(body, "http://www.brusselnieuws.be/nl/hoofdpunten/feed")
    assert len(parsed.entries) == 10
    for entry in parsed.entries:
        assert entry.url.startswith("http") and entry.canonical_url.startswith("http")
        assert entry.title and entry.published and entry.published.startswith("2014")
        assert "<" not in entry.summary
    assert any(entry.categories for entry in parsed.entries)
    assert any(entry.author for entry in parsed.entries)


def test_real_nu_feed_yields_its_items():
    body = (FEEDS / "bpehlivan_nu_algemeen_2024-03-11.xml").read_bytes()
    parsed = parse_feed(body, "https://www.nu.nl/rss/Algemeen")
    assert parsed.title == "NU - Algemeen"
    assert len(parsed.entries) >= 1
    assert all("nu.nl" in e.url and e.title and e.published.startswith("2024") for e in parsed.entries)


def test_malformed_feed_with_entries_is_used_and_problem_recorded():
    good = rss([{"title": "Eerste", "link": "http://x.test/1"}, {"title": "Tweede", "link": "http://x.test/2"}])
    broken = good.replace(b"</channel></rss>", b"<item><title>kapot &nbsp; <b></item>")  # unclosed, bad entity
    parsed = parse_feed(broken, "http://x.test/feed")
    assert [e.url for e in parsed.entries][:2] == ["http://x.test/1", "http://x.test/2"]
    assert parsed.problem


def test_feed_without_entries_is_a_failure():
    with pytest.raises(FetchError) as err:
        parse_feed(b"<html><body>Dit is geen feed <<<", "http://x.test/feed")
    assert err.value.reason in {"feed_unparseable", "feed_empty"}


def test_entity_expansion_bomb_is_refused_without_eating_memory():
    lol = ['<!ENTITY lol "lol">'] + [f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10 if i > 1 else "&lol;" * 10}">'
                                     for i in range(1, 10)]
    bomb = (f'<?xml version="1.0"?><!DOCTYPE rss [{"".join(lol)}]><rss version="2.0"><channel><title>&lol9;'
            f"</title><item><title>&lol9;</title><link>http://x.test/1</link></item></channel></rss>").encode()
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        parse_feed(bomb, "http://x.test/feed")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert err.value.reason == "feed_entities_refused"
    assert peak < 5_000_000 and time.monotonic() - started < 3.0  # an expanding bomb takes minutes and GBs


def _padded_entity_feed(references: int) -> bytes:
    """A feed shaped like the probe's: DOCTYPE after 70 KiB of padding, a 250-character entity used everywhere."""
    entity = "Samen met bewoners. " * 12 + "Eind."
    item = "<item><title>Bericht</title><link>http://x.test/{n}</link><description>{refs}</description></item>"
    per_item = references // 100
    body = "".join(item.format(n=n, refs="&e;" * per_item) for n in range(100))
    return (f'<?xml version="1.0" encoding="utf-8"?>\n{" " * 70_000}\n<!DOCTYPE rss [\n<!ENTITY e "{entity}">\n]>\n'
            f'<rss version="2.0"><channel><title>Opgeblazen</title>{body}</channel></rss>').encode()


def test_padded_doctype_past_64_kib_with_a_widely_used_entity_is_refused_in_low_memory():
    bomb = _padded_entity_feed(1_570_000)
    assert len(bomb) > 4_500_000
    tracemalloc.start()
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        parse_feed(bomb, "http://x.test/feed")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert err.value.reason == "feed_entities_refused" and "DOCTYPE with an internal subset" in str(err.value)
    assert peak < 40_000_000 and time.monotonic() - started < 5.0  # expanded, it is a 392 M-character summary


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_feed_with_an_entity_is_refused(encoding):
    text = ('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE rss [<!ENTITY e "veel tekst">]><rss version="2.0">'
            "<channel><title>&e;</title><item><title>&e;</title><link>http://x.test/1</link></item></channel></rss>")
    with pytest.raises(FetchError) as err:
        parse_feed(text.encode(encoding), "http://x.test/feed", "application/xml")
    assert err.value.reason == "feed_entities_refused"


def test_entity_declaration_anywhere_in_the_document_is_refused():
    body = rss([{"title": "A", "link": "http://x.test/1"}]).replace(
        b"<channel>", b"<channel>" + b" " * 70_000 + b'\n<!ENTITY e "tekst">\n', 1)
    with pytest.raises(FetchError) as err:
        parse_feed(body, "http://x.test/feed")
    assert err.value.reason == "feed_entities_refused" and "entity declaration" in str(err.value)


def test_doctype_with_an_internal_subset_but_no_entity_is_refused():
    body = rss([{"title": "A", "link": "http://x.test/1"}]).replace(
        b"<rss", b'<!DOCTYPE rss SYSTEM "x.dtd" [\n<!ATTLIST rss gevaar CDATA "ja">\n]>\n<rss', 1)
    with pytest.raises(FetchError) as err:
        parse_feed(body, "http://x.test/feed")
    assert err.value.reason == "feed_entities_refused" and "internal subset" in str(err.value)


def test_doctype_without_internal_subset_is_accepted():
    # RSS 0.91 feeds name Netscape's DTD; it has no internal subset and is never fetched.
    body = rss([{"title": "A", "link": "http://x.test/1"}]).replace(
        b"<rss", b'<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" '
                 b'"http://my.netscape.com/publish/formats/rss-0.91.dtd">\n<rss', 1)
    assert [e.url for e in parse_feed(body, "http://x.test/feed").entries] == ["http://x.test/1"]


def test_relative_links_resolve_against_feed_url():
    body = rss([{"title": "Relatief", "link": "/nieuws/1.html"}])
    parsed = parse_feed(body, "http://x.test/feed.xml")
    assert parsed.entries[0].url == "http://x.test/nieuws/1.html"


def test_tracking_parameters_and_fragment_leave_the_canonical_url():
    body = rss([{"title": "A", "link": "http://X.test/a.html?utm_source=rss&id=3#reacties"}])
    entry = parse_feed(body, "http://x.test/feed.xml").entries[0]
    assert entry.canonical_url == "http://x.test/a.html?id=3"


def test_shipped_feed_list_is_valid():
    feeds = load_feed_list(FEEDS_FILE)
    assert len(feeds) >= 30
    assert all(f.url.startswith("https://") or f.url.startswith("http://") for f in feeds)
    assert {"vlaanderen", "zorg", "onderwijs", "wonen", "overheid"} <= {t for f in feeds for t in f.tags}


def test_feed_list_with_double_names_is_refused(tmp_path):
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nname="a"\nurl="http://x/1"\noutlet="X"\n[[feeds]]\nname="a"\nurl="http://x/2"\noutlet="X"\n')
    with pytest.raises(ConfigError, match="more than once"):
        load_feed_list(path)


def test_feed_list_missing_fields_is_refused(tmp_path):
    path = tmp_path / "feeds.toml"
    path.write_text('[[feeds]]\nname="a"\n')
    with pytest.raises(ConfigError, match="lacks url, outlet"):
        load_feed_list(path)
