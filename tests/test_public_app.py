"""`radar public`: the submission form's abuse rules and the live collection, on the real app served by waitress."""

from __future__ import annotations

import re

import feedparser
import pytest
import requests

from pipeline.codebook import load_codebook
from pipeline.public.app import make_public_server
from pipeline.public.publish import publish_site
from pipeline.review.events import Label, record_decision
from pipeline.store import Store
from pipeline.public.submissions import MAX_NOTE_CHARS
from tests.conftest import serving

PRIVACY = "naam, e-mailadres en code wissen we na 90 dagen"
ARTICLE = "https://www.example.nl/nieuws/bewoners-ontwerpen-park"


@pytest.fixture
def public(make_settings):
    """Return a factory: (base URL, store) of a public app served with the given settings."""
    stack = []

    def factory(**overrides):
        settings = make_settings(**{"public_min_seconds": 0, **overrides})
        store = Store(settings.effective_database_url)
        store.migrate()
        context = serving(make_public_server(settings, store, "127.0.0.1", 0))
        stack.append((context, store))
        return context.__enter__(), store
    yield factory
    for context, store in stack:
        context.__exit__(None, None, None)
        store.close()


def load_form(session: requests.Session, base: str) -> dict:
    """GET the form and return its hidden fields (CSRF token, the signed time it was served)."""
    page = session.get(f"{base}/deel")
    assert page.status_code == 200
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]+)"', page.text))


def post(session: requests.Session, base: str, hidden: dict | None = None, headers=None, **fields) -> requests.Response:
    """Post the form with the given fields (a valid URL and note by default)."""
    data = {"url": ARTICLE, "note": "Bewoners tekenen mee.", **(hidden if hidden is not None else load_form(session, base)),
            **fields}
    return session.post(f"{base}/deel", data=data, headers=headers or {})


def test_form_is_dutch_without_scripts_and_says_what_is_kept(public):
    base, _store = public()
    page = requests.get(f"{base}/deel")
    assert page.status_code == 200 and "<h1>Deel een voorbeeld</h1>" in page.text
    assert PRIVACY in page.text and "<script" not in page.text
    for name in ("url", "note", "name", "email", "website"):
        assert f'name="{name}"' in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.cookies.get("radar_public") and "session" not in page.cookies  # its own cookie, not the review app's


def test_a_valid_submission_is_queued_with_a_keyed_address_hash(public):
    base, store = public()
    session = requests.Session()
    answer = post(session, base, note="Bewoners tekenen\r\nmee.\x00", name="Henk Lezer", email="henk@example.nl")
    assert answer.status_code == 200 and "Bedankt" in answer.text
    (sub,) = store.list_submissions()
    assert (sub.url, sub.note, sub.name, sub.email, sub.status) == (
        ARTICLE, "Bewoners tekenen\nmee.", "Henk Lezer", "henk@example.nl", "queued")
    assert re.fullmatch(r"[0-9a-f]{64}", sub.ip_hash) and "127.0.0.1" not in sub.ip_hash


@pytest.mark.parametrize("base_url, secure", [("https://voorbeelden.example.nl/", True),
                                               ("http://127.0.0.1:8000/", False), ("", False)])
def test_the_form_cookie_is_secure_when_the_site_is_served_over_https(public, base_url, secure):
    base, _store = public(public_base_url=base_url)
    cookie = requests.get(f"{base}/deel").headers["Set-Cookie"]
    assert cookie.startswith("radar_public=") and ("; Secure" in cookie) is secure


def test_csrf_is_required(public):
    base, store = public()
    session = requests.Session()
    hidden = load_form(session, base)
    no_token = post(session, base, hidden={"issued": hidden["issued"]})
    other = requests.Session()
    foreign = post(other, base, hidden={**load_form(other, base), "csrf_token": hidden["csrf_token"]})
    assert no_token.status_code == 400 and foreign.status_code == 400
    assert "Het formulier is verlopen" in no_token.text
    assert store.list_submissions() == []


def test_honeypot_answers_thanks_and_stores_nothing(public):
    base, store = public()
    answer = post(requests.Session(), base, website="http://spam.example/")
    assert answer.status_code == 200 and "Bedankt" in answer.text
    assert store.list_submissions() == []


def test_a_form_posted_sooner_than_the_minimum_time_is_refused(public):
    base, store = public(public_min_seconds=3600)
    session = requests.Session()
    too_fast = post(session, base)
    forged = post(session, base, hidden={**load_form(session, base), "issued": "forged.value.sig"})
    assert too_fast.status_code == 400 and "erg snel" in too_fast.text
    assert forged.status_code == 400 and "verlopen" in forged.text
    assert store.list_submissions() == []


def test_a_signed_form_is_good_for_one_post(public):
    # The same hidden fields (CSRF token and signed form) posted again, as a script would replay them.
    base, store = public()
    session = requests.Session()
    hidden = load_form(session, base)
    first = post(session, base, hidden=hidden, url=f"{ARTICLE}-1")
    replayed = [post(session, base, hidden=hidden, url=f"{ARTICLE}-{i}") for i in (2, 3)]
    assert first.status_code == 200 and "Bedankt" in first.text
    assert [r.status_code for r in replayed] == [400, 400] and "al verstuurd" in replayed[0].text
    fresh = post(session, base, url=f"{ARTICLE}-4")  # the page is loaded again: a new form, a new post
    assert fresh.status_code == 200
    assert {s.url for s in store.list_submissions()} == {f"{ARTICLE}-1", f"{ARTICLE}-4"}


@pytest.mark.parametrize("url, words", [
    ("", "Vul het adres"),
    ("ftp://example.nl/artikel", "http:// of https://"),
    ("javascript:alert(1)", "http:// of https://"),
    ("https://example.nl/" + "a" * 2000, "langer dan 2000"),
    ("https://lezer:geheim@example.nl/artikel", "gebruikersnaam"),
    ("http://10.0.0.1/intern", "niet openbaar"),
    ("http://127.0.0.1:8080/", "niet openbaar"),
    ("http://[::1]/", "niet openbaar"),
    ("http://localhost/admin", "niet openbaar"),
    ("http://intranet/", "niet openbaar"),
    ("http://10.0.0.1\\@example.nl/", "http:// of https://"),
    ("https://example.nl/a b", "spaties"),
])
def test_url_length_scheme_and_host_checks(public, url, words):
    base, store = public()
    answer = post(requests.Session(), base, url=url)
    assert answer.status_code == 400 and words in answer.text
    assert store.list_submissions() == []


def test_everything_posted_is_shown_escaped_and_the_note_is_capped(public):
    base, store = public()
    session = requests.Session()
    hostile = '"><script>alert(1)</script>'
    refused = post(session, base, url="ftp://x.nl/" + hostile, note=hostile, name=hostile)
    assert refused.status_code == 400 and "<script>alert" not in refused.text
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in refused.text
    post(session, base, note="x" * (MAX_NOTE_CHARS + 500))
    (sub,) = store.list_submissions()
    assert sub.note == "x" * MAX_NOTE_CHARS


def test_per_address_rate_limit(public):
    base, store = public(public_rate_per_ip=2)
    session = requests.Session()
    codes = [post(session, base, url=f"{ARTICLE}-{i}").status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert len(store.list_submissions()) == 2


def test_global_rate_limit_counts_every_address(public):
    # Behind the operator's proxy the reader's address comes from X-Forwarded-For: three readers, one limit.
    base, store = public(public_rate_per_ip=5, public_rate_global=2, public_trusted_proxy="127.0.0.1")
    codes = [post(requests.Session(), base, url=f"{ARTICLE}-{i}", headers={"X-Forwarded-For": f"203.0.113.{i}"})
             .status_code for i in range(3)]
    assert codes == [200, 200, 429]
    assert len({s.ip_hash for s in store.list_submissions()}) == 2


def test_forwarded_addresses_are_ignored_without_a_trusted_proxy(public):
    base, store = public(public_rate_per_ip=1)
    codes = [post(requests.Session(), base, url=f"{ARTICLE}-{i}", headers={"X-Forwarded-For": f"203.0.113.{i}"})
             .status_code for i in range(2)]
    assert codes == [200, 429]  # a reader cannot dodge the limit by claiming another address


def test_an_oversized_post_is_refused(public):
    base, store = public()
    session = requests.Session()
    answer = post(session, base, note="x" * 40_000)
    assert answer.status_code == 413 and store.list_submissions() == []


def test_live_pages_are_the_published_bytes_and_no_review_routes(public, tmp_path):
    base, store = public()
    from tests.review_scenario import fill_store

    ids = fill_store(store)
    record_decision(store, ids["park"], "ann", Label(True, "overheid", "ontwerp", lesson="Teken samen."),
                    model_version=None, codebook_version="1")
    publish_site(store, load_codebook(), tmp_path / "site", form_url="deel")
    for path in ("index.html", f"voorbeeld/{ids['park']}.html", "sector/overheid.html", "feed.atom"):
        live = requests.get(f"{base}/{path}")
        assert live.status_code == 200 and live.content == (tmp_path / "site" / path).read_bytes()
    assert requests.get(base + "/").content == (tmp_path / "site" / "index.html").read_bytes()
    assert requests.get(f"{base}/feed.atom").headers["Content-Type"].startswith("application/atom+xml")
    # A new decision shows at once: the live pages follow the database.
    record_decision(store, ids["care"], "ann", Label(True, "zorg", "ontwerp"), model_version=None, codebook_version="1")
    assert "Patiënten denken mee" in requests.get(f"{base}/index.html").text
    for path in ("/article/1", "/agreement", "/analyst", "/../radar.db", "/voorbeeld/999.html"):
        assert requests.get(base + path).status_code == 404


def test_live_feeds_are_rfc_4287_atom_with_rel_links(public):
    from tests.review_scenario import fill_store
    from tests.test_publish import BASE_URL, atom_problems

    base, store = public(public_base_url=BASE_URL)
    ids = fill_store(store)
    record_decision(store, ids["park"], "ann", Label(True, "overheid", "ontwerp", lesson="Teken samen."),
                    model_version=None, codebook_version="1")
    for path in ("feed.atom", "feed/overheid.atom"):
        body = requests.get(f"{base}/{path}").content
        assert atom_problems(body) == [], path
    entry = feedparser.parse(requests.get(f"{base}/feed.atom").content).entries[0]
    assert {(link.rel, link.href) for link in entry.links} == {
        ("alternate", "https://example.org/park"), ("related", f"{BASE_URL}voorbeeld/{ids['park']}.html")}
