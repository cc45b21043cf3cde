"""What leaves the tool: one rule for digest, publish, Atom and the public app; no character that breaks them."""

from __future__ import annotations

import email
import email.policy
import json

import feedparser
import pytest
import requests
from lxml import etree
from sqlalchemy import update

from pipeline import labels
from pipeline.chars import has_forbidden, xml_safe
from pipeline.codebook import load_codebook
from pipeline.public.digest import FORMATS, Window, digest_groups, render_digest
from pipeline.ingest.jsonl import ingest_file
from pipeline.public.app import make_public_server
from pipeline.public.publish import publish_site
from pipeline.review.app import create_app
from pipeline.review.events import Label, record_decision
from pipeline.store import articles, reviews
from tests.conftest import serving
from tests.test_review_app import csrf_of

# Characters XML 1.0 forbids (C0 controls, U+FFFE) and HTML calls controls (C1).
BAD = "\x01\x08\x1b\x7f\x9b\ufffe\uffff"


def accept(store, article_id: int, *, private: bool = False, lesson: str = "") -> None:
    """Two analysts accept an article (one of them marks it private when asked)."""
    for analyst in ("ann", "bea"):
        record_decision(store, article_id, analyst,
                        Label(True, "overheid", "ontwerp", lesson=lesson, private=private and analyst == "bea"),
                        model_version=None, codebook_version="1")


def every_output(store, tmp_path, settings) -> dict[str, bytes]:
    """Return every output outsiders read: the digest in each format, the published site, the live site."""
    codebook = load_codebook()
    groups = digest_groups(store, codebook, Window())
    outputs = {f"digest.{fmt}": render_digest(groups, fmt, codebook, Window()).encode("utf-8") for fmt in FORMATS}
    site = tmp_path / "site"
    publish_site(store, codebook, site)
    outputs |= {f"site/{p.relative_to(site)}": p.read_bytes() for p in site.rglob("*") if p.is_file()}
    with serving(make_public_server(settings, store, "127.0.0.1", 0)) as base:
        for page in ("", "feed.atom", "feed/overheid.atom", "feed/zorg.atom", "sector/overheid.html"):
            answer = requests.get(f"{base}/{page}", timeout=10)
            assert answer.status_code == 200, (page, answer.status_code)
            outputs[f"live/{page or 'index'}"] = answer.content
    return outputs


def test_may_leave_the_tool_is_a_final_yes_nobody_marked_private(review_store):
    _settings, store, ids = review_store
    accept(store, ids["park"])
    accept(store, ids["care"], private=True)
    record_decision(store, ids["road"], "ann", Label(False), model_version=None, codebook_version="1")
    final = store.final_labels()
    assert [labels.may_leave_the_tool(final.get(ids[k])) for k in ("park", "care", "road", "xss")] == [
        True, False, False, False]


def test_an_article_marked_private_leaves_by_no_output(review_store, tmp_path):
    settings, store, ids = review_store
    accept(store, ids["park"])
    accept(store, ids["care"], private=True)  # "Patiënten denken mee over zorgpad", marked private by bea
    outputs = every_output(store, tmp_path, settings)
    assert {"digest.md", "digest.html", "digest.text", "digest.eml", "site/index.html", "site/feed.atom",
            "site/feed/zorg.atom", "live/index", "live/feed.atom"} <= set(outputs)
    eml = email.message_from_bytes(outputs["digest.eml"], policy=email.policy.default)
    readable = {**outputs, "digest.eml": "\n".join(part.get_content() for part in eml.iter_parts()).encode()}
    shown = [name for name, body in readable.items() if b"zorgpad" in body]
    assert shown == []
    assert all(b"Bewoners ontwerpen nieuw park mee" in readable[name]
               for name in ("digest.md", "digest.html", "digest.text", "digest.eml", "site/index.html",
                            "site/feed.atom", "live/index", "live/feed.atom"))


def test_the_store_keeps_no_forbidden_character_from_ingest(review_store, tmp_path):
    _settings, store, _ids = review_store
    record = {"id": "x1", "url": "https://example.nl/a", "title": f"Bewoners{BAD} ontwerpen\x0bmee",
              "outlet": f"Dagblad{BAD}", "text": f"Bewoners ontwerpen samen{BAD} met de gemeente een plein.",
              "date": "2026-03-10"}
    path = tmp_path / "in.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    assert ingest_file(store, path, 0.8).new == 1
    (stored,) = [a for a in store.articles() if a.external_id == "x1"]
    assert (stored.title, stored.outlet) == ("Bewoners ontwerpen mee", "Dagblad")
    assert not has_forbidden(stored.text) and "samen met de gemeente" in stored.text


def test_the_review_form_keeps_no_forbidden_character_in_a_lesson(review_store):
    settings, store, ids = review_store
    client = create_app(settings, store).test_client()
    token = csrf_of(client.get(f"/article/{ids['park']}").get_data(as_text=True))
    answer = client.post(f"/article/{ids['park']}/decide", data={
        "csrf_token": token, "cocreation": "1", "sector": "overheid", "type": "ontwerp",
        "lesson": f"Begin klein{BAD}.", "note": "Goed\ufffe voorbeeld"})
    assert answer.status_code in (200, 302)
    (event,) = store.current_reviews()
    assert (event.lesson, event.note) == ("Begin klein.", "Goed voorbeeld")


def test_publish_and_the_live_site_survive_forbidden_characters_already_stored(review_store, tmp_path):
    # Rows written before the store cleaned its input: a control character in a title, outlet and URL,
    # U+FFFE in a lesson. Publishing used to stop with a traceback and the live pages answered 500.
    settings, store, ids = review_store
    accept(store, ids["park"], lesson="Laat de buurt tekenen.")
    with store.engine.begin() as conn:
        conn.execute(update(articles).where(articles.c.id == ids["park"]).values(
            title="Bewoners\x01 ontwerpen\x1b nieuw park mee", outlet="Dagblad\x0c De Polder",
            url="https://example.org/park\x01"))
        conn.execute(update(reviews).values(lesson="Laat de buurt\ufffe tekenen."))
    outputs = every_output(store, tmp_path, settings)
    for name, body in outputs.items():
        text = body.decode("utf-8")
        assert not has_forbidden(text), name
    for name in ("site/feed.atom", "live/feed.atom", "site/feed/overheid.atom"):
        etree.fromstring(outputs[name])  # well-formed XML 1.0
        entry = feedparser.parse(outputs[name]).entries[0]
        assert entry.title == "Bewoners ontwerpen nieuw park mee" and "Laat de buurt tekenen." in entry.content[0].value
        assert not [link for link in entry.get("links", []) if "park" in link.href]  # a link with a control character is dropped
    assert "Dagblad De Polder" in outputs["site/index.html"].decode()


@pytest.mark.parametrize("raw, clean", [
    ("plain tekst, é ü ø 😀", "plain tekst, é ü ø 😀"),
    ("a\x00b\x01c\x1fd", "abc d"),
    ("regel\x0bnieuw\x0cblad", "regel nieuw blad"),
    ("tab\tnewline\ncr\r", "tab\tnewline\ncr\r"),
    ("c1\x80\x9f weg", "c1 weg"),
    ("non\ufdd0\ufffe\uffff\U0001fffe\U0010ffff", "non"),
])
def test_xml_safe(raw, clean):
    assert xml_safe(raw) == clean
    etree.fromstring(f"<a>{xml_safe(raw)}</a>".encode())


def test_in_a_team_one_analysts_yes_leaves_by_no_output_until_a_second_agrees(review_store, tmp_path):
    # Issue 21, item 4: with two registered analysts a label is final only once both agree (min_reviews unset).
    from pipeline.detect.train import reviewed_examples
    from pipeline.research.dataset import load_dataset
    from pipeline.research.export import export_rows
    from pipeline.review.analysts import add_analyst

    settings, store, ids = review_store
    for name in ("ann", "bea"):
        add_analyst(store, name)
    park = b"Bewoners ontwerpen nieuw park mee"
    record_decision(store, ids["park"], "ann", Label(True, "overheid", "ontwerp"), model_version=None,
                    codebook_version="1")
    assert store.required_reviews() == 2 and store.final_labels() == {}
    outputs = every_output(store, tmp_path / "one", settings)
    assert [name for name, body in outputs.items() if park in body] == []
    assert [r["article_id"] for r in export_rows(store, "reviewed")] == []
    url = settings.effective_database_url
    assert load_dataset(url)["final_cocreation"].notna().sum() == 0 and reviewed_examples(url) == []

    record_decision(store, ids["park"], "bea", Label(True, "overheid", "ontwerp"), model_version=None,
                    codebook_version="1")
    outputs = every_output(store, tmp_path / "two", settings)
    assert all(park in outputs[name] for name in ("digest.md", "site/index.html", "site/feed.atom", "live/index"))
    assert ids["park"] in {r["article_id"] for r in export_rows(store, "reviewed")}
    assert load_dataset(url)["final_cocreation"].notna().sum() >= 1 and len(reviewed_examples(url)) == 1
    assert load_dataset(url, min_reviews=3)["final_cocreation"].notna().sum() == 0  # a setting can ask for more
