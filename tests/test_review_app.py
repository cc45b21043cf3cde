"""The review app through Flask's test client: pages, CSRF, headers, access rules, audit trail, agreement."""

from __future__ import annotations

import json
import re
import socket
from contextlib import contextmanager

import pytest
from sqlalchemy import select

from pipeline.errors import ConfigError
from pipeline.review.agreement import kappa, pair_agreement
from pipeline.review.app import create_app, make_server, safe_href
from pipeline.review.security import check_binding, is_loopback
from pipeline.store import Store, reviews
from tests.cli_helpers import invoke
from tests.conftest import serving

from tests.review_scenario import (  # noqa: F401  (other test modules import the scenario from here too)
    CARE_TEXT, LONG_TOKEN, MODEL, PARK_TEXT, PLAIN_TEXT, XSS_TEXT, XSS_TITLE, add_article, evidence, fill_store,
    prediction,
)


@pytest.fixture
def client(review_store):
    """A Flask test client of the review app for analyst 'ann'."""
    settings, store, _ids = review_store
    app = create_app(settings, store)
    return app.test_client()


def csrf_of(page: str) -> str:
    """Return the CSRF token embedded in a rendered page."""
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def events(store: Store) -> list[dict]:
    """Return every review event, oldest first."""
    with store.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(reviews).order_by(reviews.c.id)).mappings()]


def decide(client, article_id: int, **form) -> object:
    """Post a decision with a valid CSRF token taken from the article page."""
    token = csrf_of(client.get(f"/article/{article_id}").get_data(as_text=True))
    return client.post(f"/article/{article_id}/decide", data={"csrf_token": token, **form})


def test_queue_lists_each_flagged_cluster_once(client, review_store):
    _settings, _store, ids = review_store
    page = client.get("/").get_data(as_text=True)
    assert page.count('class="queue-row"') == 3  # park (with its copy), care, xss; the road is not flagged
    assert "Bewoners ontwerpen nieuw park mee" in page and "+1 copy" in page
    assert "Polderveen krijgt park van bewoners" not in page and "Dijkweg" not in page
    assert "3 stories flagged (4 articles)" in " ".join(re.sub(r"<[^>]+>", "", page).split())


def test_the_queue_comes_in_pages_that_keep_order_and_filters(client, review_store, monkeypatch):
    ids = review_store[2]
    monkeypatch.setattr("pipeline.review.queries.PAGE_SIZE", 2)
    rows = lambda page: re.findall(r'data-href="/article/(\d+)', page)  # noqa: E731
    first = client.get("/?order=newest").get_data(as_text=True)
    assert rows(first) == [str(ids["care"]), str(ids["park"])] and "page=2" in first and "order=newest" in first
    second = client.get("/?order=newest&page=2").get_data(as_text=True)
    assert rows(second) == [str(ids["xss"])] and "next page" not in second and "previous page" in second
    assert rows(client.get("/?page=x").get_data(as_text=True)) == [str(ids["park"]), str(ids["care"])]


@pytest.mark.parametrize("order,first", [("score", "park"), ("newest", "care"), ("uncertain", "xss")])
def test_queue_orders_by_the_chosen_priority(client, review_store, order, first):
    ids = review_store[2]
    page = client.get(f"/?order={order}").get_data(as_text=True)
    assert re.search(r'data-href="/article/(\d+)', page).group(1) == str(ids[first])


def test_queue_filters_by_sector_outlet_and_dates(client):
    assert client.get("/?sector=zorg").get_data(as_text=True).count('class="queue-row"') == 1
    assert client.get("/?outlet=Rivierstad+Courant").get_data(as_text=True).count('class="queue-row"') == 1
    page = client.get("/?date_from=2026-03-05&date_to=2026-03-11").get_data(as_text=True)
    assert page.count('class="queue-row"') == 1 and "park" in page


def test_article_page_highlights_evidence_by_kind(client, review_store):
    ids = review_store[2]
    page = client.get(f"/article/{ids['park']}").get_data(as_text=True)
    for kind in ("participant", "construction", "organisation", "negative", "sentence"):
        assert f"ev-{kind}" in page
    assert re.search(r'<mark class="ev ev-participant ev-sentence"[^>]*>Bewoners</mark>', page)
    assert "Codebook v1" in page and "zelfbouwkavels" in page  # the codebook panel
    assert "Polderveen krijgt park van bewoners" in page  # cluster member listed


@pytest.mark.parametrize("path", ["/", "/article/1", "/agreement", "/article/1/history", "/static/review.js", "/nope"])
def test_every_response_carries_security_headers(client, path):
    response = client.get(path)
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("path", ["/article/1/decide", "/undo", "/article/1/settle", "/analyst"])
def test_post_without_csrf_token_is_refused_and_writes_nothing(client, review_store, path):
    store = review_store[1]
    response = client.post(path, data={"cocreation": "1", "sector": "zorg", "type": "ontwerp", "analyst": "eve"})
    assert response.status_code == 400
    assert "Nothing was saved" in response.get_data(as_text=True)
    assert events(store) == []
    assert "ann" in client.get("/").get_data(as_text=True)


def test_post_with_a_forged_csrf_token_is_refused(client, review_store):
    response = client.post("/article/1/decide", data={"csrf_token": "forged", "cocreation": "0"})
    assert response.status_code == 400 and events(review_store[1]) == []


def test_untrusted_text_is_escaped_everywhere(client, review_store):
    _settings, store, ids = review_store
    decide(client, ids["xss"], cocreation="0", note='<script>window.__xss="note"</script><img src=x onerror=alert(1)>')
    pages = [client.get(p).get_data(as_text=True) for p in
             ("/?status=all", f"/article/{ids['xss']}", f"/article/{ids['xss']}/history")]
    for page in pages:
        assert "<script>window" not in page and "<img src=x" not in page and "<svg onload" not in page
        assert 'href="javascript:' not in page
        assert "<i>blad</i>" not in page
    assert "&lt;script&gt;window.__xss" in pages[1]


@pytest.mark.parametrize("url,expected", [("https://a.nl/x", "https://a.nl/x"), ("javascript:alert(1)", None),
                                          (" JaVaScRiPt:alert(1)", None), ("data:text/html,x", None), ("", None)])
def test_only_http_links_become_hrefs(url, expected):
    assert safe_href(url) == expected


def test_decision_is_appended_with_provenance_and_moves_on(client, review_store):
    _settings, store, ids = review_store
    response = decide(client, ids["park"], cocreation="1", sector="overheid", type="ontwerp", note="duidelijk")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/article/{ids['care']}")
    [event] = events(store)
    assert (event["analyst"], event["action"], event["cocreation"], event["sector"], event["type"]) == \
        ("ann", "decide", 1, "overheid", "ontwerp")
    assert event["model_version"] == MODEL and event["codebook_version"] == "1" and event["previous"] == "{}"
    assert event["created_at"]


def test_saving_keeps_the_filters(client, review_store):
    ids = review_store[2]
    token = csrf_of(client.get(f"/article/{ids['park']}?order=newest").get_data(as_text=True))
    response = client.post(f"/article/{ids['park']}/decide?order=newest", data={"csrf_token": token, "cocreation": "0"})
    assert "order=newest" in response.headers["Location"]


def test_a_no_drops_sector_and_type_and_a_yes_needs_them(client, review_store):
    _settings, store, ids = review_store
    response = decide(client, ids["care"], cocreation="1", sector="", type="ontwerp", note="mijn notitie")
    assert response.status_code == 400 and events(store) == []
    assert "A yes needs a sector" in response.get_data(as_text=True) and "mijn notitie" in response.get_data(as_text=True)
    decide(client, ids["care"], cocreation="0", sector="zorg", type="ontwerp")
    assert (events(store)[0]["sector"], events(store)[0]["type"]) == (None, None)


def test_decision_on_a_copy_is_recorded_on_the_canonical_article(client, review_store):
    _settings, store, ids = review_store
    decide(client, ids["park_copy"], cocreation="1", sector="overheid", type="ontwerp")
    assert events(store)[0]["article_id"] == ids["park"]
    assert "+1 copy" not in client.get("/").get_data(as_text=True)  # the cluster left ann's queue


def test_changes_and_undo_are_new_events_never_rewrites(client, review_store):
    _settings, store, ids = review_store
    decide(client, ids["park"], cocreation="1", sector="overheid", type="ontwerp")
    first = events(store)
    decide(client, ids["park"], cocreation="0")
    assert json.loads(events(store)[1]["previous"])["cocreation"] == 1
    token = csrf_of(client.get("/").get_data(as_text=True))
    response = client.post("/undo", data={"csrf_token": token})
    assert response.headers["Location"].endswith(f"/article/{ids['park']}")
    undo = events(store)[2]
    assert (undo["action"], undo["undoes_id"], undo["cocreation"], undo["sector"]) == ("undo", 2, 1, "overheid")
    client.post("/undo", data={"csrf_token": token})
    assert events(store)[3]["cocreation"] is None and store.current_reviews() == []
    assert events(store)[:1] == first  # the first event is untouched
    history = client.get(f"/article/{ids['park']}/history").get_data(as_text=True)
    assert history.count("<tr class=\"event-") == 4 and "undo of #2" in history


def test_kappa_on_a_constructed_case():
    # ann yes yes no no, bea yes no no no: observed 0.75, expected 0.5 -> kappa 0.5.
    assert kappa([1, 1, 0, 0], [1, 0, 0, 0]) == pytest.approx(0.5)
    assert kappa([], []) is None and kappa([1, 1], [1, 1]) is None


def test_agreement_page_shows_kappa_per_pair_and_settles_disagreements(review_store):
    settings, store, ids = review_store
    clients = {}
    for name in ("ann", "bea"):
        clients[name] = create_app(settings, store, analyst=name).test_client()
    for name, labels in {"ann": ["1", "1", "0"], "bea": ["1", "0", "0"]}.items():
        for key, value in zip(("park", "care", "xss"), labels, strict=True):
            decide(clients[name], ids[key], cocreation=value, sector="overheid", type="ontwerp")
    [pair] = pair_agreement({a: {r.analyst: r for r in store.current_reviews() if r.article_id == a}
                             for a in (ids["park"], ids["care"], ids["xss"])})
    assert pair["n"] == 3 and pair["decision"]["kappa"] == pytest.approx(0.4)
    page = clients["ann"].get("/agreement").get_data(as_text=True)
    assert "ann &amp; bea" in page and "0.40" in page and "Patiënten denken mee" in page
    assert ids["care"] not in store.final_labels()
    token = csrf_of(page)
    clients["ann"].post(f"/article/{ids['care']}/settle",
                        data={"csrf_token": token, "cocreation": "1", "sector": "zorg", "type": "ontwerp"})
    final = store.final_labels()[ids["care"]]
    assert (final.action, final.analyst, final.sector) == ("settle", "ann", "zorg")
    assert final.previous.keys() == {"ann", "bea"}  # the store decodes JSON columns (issue 10)
    assert "settled" in clients["bea"].get("/agreement").get_data(as_text=True)


def test_second_analyst_is_chosen_per_browser(client, review_store):
    ids = review_store[2]
    decide(client, ids["park"], cocreation="1", sector="overheid", type="ontwerp")
    page = client.get("/analyst").get_data(as_text=True)
    answer = client.post("/analyst", data={"csrf_token": csrf_of(page), "analyst": "bea", "next": "//evil.example/"})
    assert answer.status_code == 302 and "evil" not in answer.headers["Location"]
    page = client.get("/").get_data(as_text=True)
    assert "<strong>bea</strong>" in page and page.count('class="queue-row"') == 3


@pytest.mark.parametrize("target", ["//evil.example/", "/\t/evil.example", "/\\evil.example", "https://evil.example/",
                                    "javascript:alert(1)", "/\n/evil.example"])
def test_analyst_form_never_redirects_off_site(client, target):
    page = client.get("/analyst").get_data(as_text=True)
    answer = client.post("/analyst", data={"csrf_token": csrf_of(page), "analyst": "bea", "next": target})
    assert answer.status_code == 302 and "evil" not in answer.headers["Location"]
    assert answer.headers["Location"].startswith("/")


def test_local_redirect_target_is_kept(client):
    page = client.get("/analyst").get_data(as_text=True)
    answer = client.post("/analyst", data={"csrf_token": csrf_of(page), "analyst": "bea", "next": "/agreement"})
    assert answer.headers["Location"] == "/agreement"


def test_without_a_default_analyst_the_app_asks_for_a_name(review_store):
    settings, store, _ids = review_store
    client = create_app(settings.model_copy(update={"analyst": ""}), store).test_client()
    response = client.get("/")
    assert response.status_code == 302 and "/analyst" in response.headers["Location"]


@pytest.mark.parametrize("host,ok", [("127.0.0.1", True), ("localhost", True), ("::1", True),
                                     ("0.0.0.0", False), ("192.168.1.5", False), ("::", False)])
def test_binding_beyond_loopback_needs_a_token(host, ok):
    assert is_loopback(host) == ok
    if ok:
        check_binding(host, "")
    else:
        with pytest.raises(ConfigError, match="review_token"):
            check_binding(host, "")
        check_binding(host, LONG_TOKEN)


def test_cli_refuses_to_serve_on_all_addresses_without_token(tmp_path):
    result = invoke("review", "--host", "0.0.0.0", env={"RADAR_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 2 and "without an access token" in result.stderr


def test_token_is_required_when_configured(review_store):
    settings, store, _ids = review_store
    client = create_app(settings.model_copy(update={"review_token": LONG_TOKEN}), store).test_client()
    assert client.get("/").status_code == 401
    assert client.get("/?token=wrong-but-long-enough-token").status_code == 401
    assert client.get("/", headers={"X-Radar-Token": LONG_TOKEN}).status_code == 200
    login = client.get(f"/?token={LONG_TOKEN}&order=newest")
    assert login.status_code == 302 and "token" not in login.headers["Location"]
    assert client.get("/").status_code == 200  # the session cookie carries the login


def test_foreign_host_header_is_refused_without_token(client):
    assert client.get("/", headers={"Host": "evil.example:80"}).status_code == 400
    assert client.get("/", headers={"Host": "localhost:8000"}).status_code == 200


def test_decision_on_a_missing_article_is_404_and_writes_nothing(client, review_store):
    _settings, store, ids = review_store
    token = csrf_of(client.get(f"/article/{ids['park']}").get_data(as_text=True))
    answer = client.post("/article/999999/decide", data={"csrf_token": token, "cocreation": "0"})
    assert answer.status_code == 404 and store.current_reviews() == []


BEYOND_64_BITS = "99999999999999999999999"


@pytest.mark.parametrize("path", [f"/article/{BEYOND_64_BITS}", f"/article/{BEYOND_64_BITS}/history",
                                  "/article/0", "/article/999999", "/article/999999/history"])
def test_an_article_id_out_of_range_or_missing_is_404(client, path):
    response = client.get(path)
    assert response.status_code == 404 and "Not found" in response.get_data(as_text=True)


@pytest.mark.parametrize("article", ["999999", BEYOND_64_BITS])
@pytest.mark.parametrize("action", ["decide", "settle"])
def test_a_post_on_a_missing_article_is_404_and_writes_nothing(client, review_store, article, action):
    _settings, store, ids = review_store
    token = csrf_of(client.get(f"/article/{ids['park']}").get_data(as_text=True))
    answer = client.post(f"/article/{article}/{action}",
                         data={"csrf_token": token, "cocreation": "1", "sector": "zorg", "type": "ontwerp"})
    assert answer.status_code == 404 and events(store) == []


@pytest.mark.parametrize("value", [BEYOND_64_BITS, "abc", "-3", "1e3", "٣"])
def test_undo_with_a_malformed_article_id_is_400_and_undoes_nothing(client, review_store, value):
    _settings, store, ids = review_store
    decide(client, ids["park"], cocreation="0")
    token = csrf_of(client.get("/").get_data(as_text=True))
    answer = client.post("/undo", data={"csrf_token": token, "article_id": value})
    assert answer.status_code == 400 and "Nothing was undone" in answer.get_data(as_text=True)
    assert [e["action"] for e in events(store)] == ["decide"]


@contextmanager
def served(settings, store):
    """Serve the review app with the real waitress server on a free loopback port; yield the server."""
    server = make_server(create_app(settings, store, host="127.0.0.1"), "127.0.0.1", 0)
    with serving(server):
        yield server


def raw_exchange(port: int, data: bytes) -> tuple[str, dict[str, str]]:
    """Send raw bytes to 127.0.0.1:port and return the status line and headers of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer:
            chunk = conn.recv(65536)
            if not chunk:
                break
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return head[0], {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in head[1:])}


def test_waitress_own_error_responses_carry_the_security_headers(review_store):
    settings, store, _ids = review_store
    with served(settings, store) as server:
        limit = server.adj.max_request_header_size
        # Exactly the limit, no end of headers: waitress reads it all, answers 431 and closes cleanly.
        answers = [raw_exchange(server.effective_port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n"),
                   raw_exchange(server.effective_port, b"NOT A REQUEST\r\n\r\n"),
                   raw_exchange(server.effective_port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * limit)]
        good = raw_exchange(server.effective_port, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert [status.split(" ", 2)[1] for status, _ in answers] == ["400", "400", "431"]
    assert good[0].split(" ", 2)[1] == "200"
    for _status, headers in [*answers, good]:
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff" and headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"


def test_dates_read_and_type_as_dd_mm_jjjj():
    from pipeline.dates import nl_date, parse_nl_date
    from pipeline.errors import ConfigError

    assert nl_date("2026-03-05T10:00:00+01:00") == "05-03-2026" and nl_date(None) == "" and nl_date("gisteren") == ""
    assert parse_nl_date("5-3-2026") == "2026-03-05" == parse_nl_date("2026-03-05") and parse_nl_date(" ") is None
    with pytest.raises(ConfigError, match="dd-mm-jjjj"):
        parse_nl_date("31-02-2026")


def test_every_screen_writes_dates_and_times_as_dd_mm_jjjj(review_store):
    # Issue 21, item 16: ISO in the article header, raw UTC stamps on the settle and history screens before.
    from pipeline.dates import nl_datetime
    from tests.test_review_settle import disagree

    settings, store, ids = review_store
    disagree(store, ids["care"])
    client = create_app(settings, store, analyst="lea").test_client()
    decide(client, ids["park"], cocreation="1", sector="overheid", type="ontwerp")
    iso = re.compile(r"\d{4}-\d{2}-\d{2}")
    stamp = store.review_history([ids["park"]])[ids["park"]][0].created_at
    for path in (f"/article/{ids['park']}", f"/article/{ids['park']}/history", f"/article/{ids['care']}/settle",
                 f"/article/{ids['care']}/history", "/", "/agreement"):
        text = " ".join(re.sub(r"<[^>]+>", " ", client.get(path).get_data(as_text=True)).split())
        assert iso.findall(text) == [], path
    article = client.get(f"/article/{ids['park']}").get_data(as_text=True)
    assert "10-03-2026" in article and f"({nl_datetime(stamp)})" in article  # published date; my decision's time
    assert re.fullmatch(r"\d{2}-\d{2}-\d{4} \d{2}:\d{2}", nl_datetime(stamp))
    assert nl_datetime(stamp) in client.get(f"/article/{ids['park']}/history").get_data(as_text=True)


def test_nl_datetime_is_dutch_time_and_keeps_a_bare_date():
    from pipeline.dates import nl_datetime
    assert nl_datetime("2026-03-05T09:30:12+00:00") == "05-03-2026 10:30"  # winter: UTC+1
    assert nl_datetime("2026-07-05T09:30:12Z") == "05-07-2026 11:30"  # summer time: UTC+2
    assert nl_datetime("2026-03-05") == "05-03-2026" and nl_datetime("") == "" and nl_datetime("gisteren") == ""
