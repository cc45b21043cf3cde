"""Analysts' own tokens: who is recorded, who may settle, token handling, through the app, waitress and the CLI."""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import sqlite3
import subprocess
import threading

import pytest
import requests

from pipeline.errors import ConfigError
from pipeline.review.analysts import add_analyst
from pipeline.review.app import create_app
from pipeline.review.security import check_binding
from pipeline.store import Store
from tests.cli_helpers import RADAR, invoke
from tests.test_review_app import LONG_TOKEN, csrf_of, events, fill_store, served

YES_ZORG = {"cocreation": "1", "sector": "zorg", "type": "ontwerp"}
NO = {"cocreation": "0"}


@pytest.fixture
def team(review_store):
    """A filled store with analysts ann and bob, leads lea and max; the settings' default analyst is 'ann'."""
    settings, store, ids = review_store
    tokens = {name: add_analyst(store, name, lead=name in ("lea", "max")) for name in ("ann", "bob", "lea", "max")}
    return create_app(settings, store), store, ids, tokens


def login(app, token: str):
    """Return a test client logged in with a token through the link an analyst opens."""
    client = app.test_client()
    answer = client.get(f"/?token={token}")
    assert answer.status_code == 302 and "token" not in answer.headers["Location"]
    return client


def post(client, path: str, form: dict, page: str = "/agreement"):
    """Post a form with a valid CSRF token taken from a page of the same session."""
    token = csrf_of(client.get(page).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **form})


def current(store: Store, article_id: int) -> dict[str, tuple]:
    """Return analyst -> (action, cocreation) of every current decision on an article."""
    return {r.analyst: (r.action, r.cocreation) for r in store.current_reviews() if r.article_id == article_id}


def settles(store: Store) -> list[dict]:
    """Return every settle event."""
    return [e for e in events(store) if e["action"] == "settle"]


def test_another_analysts_token_cannot_undo_or_alter_their_decision(team):
    app, store, ids, tokens = team
    ann, bob = login(app, tokens["ann"]), login(app, tokens["bob"])
    post(ann, f"/article/{ids['park']}/decide", {"cocreation": "1", "sector": "overheid", "type": "ontwerp"})
    # bob names ann everywhere he can: the form, the query string, the analyst page.
    assert post(bob, "/analyst", {"analyst": "ann"}).status_code == 403
    answer = post(bob, "/undo?analyst=ann", {"analyst": "ann", "article_id": str(ids["park"])})
    assert answer.status_code == 302
    assert "Nothing to undo" in bob.get("/").get_data(as_text=True)
    post(bob, f"/article/{ids['park']}/decide?analyst=ann", {"analyst": "ann", **NO})
    assert current(store, ids["park"]) == {"ann": ("decide", 1), "bob": ("decide", 0)}
    assert [(e["analyst"], e["action"]) for e in events(store)] == [("ann", "decide"), ("bob", "decide")]


def test_a_form_field_naming_another_analyst_is_recorded_as_the_tokens_owner(team):
    app, store, ids, tokens = team
    client = app.test_client()
    headers = {"X-Radar-Token": tokens["bob"]}
    page = client.get(f"/article/{ids['care']}?analyst=ann", headers=headers).get_data(as_text=True)
    assert "<strong>bob</strong>" in page and "<strong>ann</strong>" not in page
    client.post(f"/article/{ids['care']}/decide?analyst=ann", headers=headers,
                data={"csrf_token": csrf_of(page), "analyst": "ann", **YES_ZORG})
    [event] = events(store)
    assert event["analyst"] == "bob"


def test_the_shared_token_reads_but_never_writes(team, make_settings):
    _app, store, ids, _tokens = team
    app = create_app(make_settings(analyst="ann", review_token=LONG_TOKEN), store)
    viewer = login(app, LONG_TOKEN)
    assert "Read-only" in viewer.get("/").get_data(as_text=True)
    for path, form in [(f"/article/{ids['park']}/decide", NO), ("/undo", {}),
                       (f"/article/{ids['park']}/settle", NO), ("/analyst", {"analyst": "anyone"})]:
        answer = post(viewer, path, {"analyst": "anyone", **form})
        assert answer.status_code == 403 and "Read-only" in answer.get_data(as_text=True)
    assert events(store) == []


def disagree(app, tokens: dict, article_id: int, first: str = "ann", second: str = "bob") -> None:
    """Let two analysts give the article different labels."""
    post(login(app, tokens[first]), f"/article/{article_id}/decide", YES_ZORG)
    post(login(app, tokens[second]), f"/article/{article_id}/decide", NO)


def test_a_non_lead_cannot_settle(team):
    app, store, ids, tokens = team
    disagree(app, tokens, ids["care"])
    page = login(app, tokens["bob"]).get("/agreement").get_data(as_text=True)
    assert 'class="settle"' not in page and "Only a lead" in page  # the form is not even offered
    for name in ("bob", "ann"):
        answer = post(login(app, tokens[name]), f"/article/{ids['care']}/settle", {"analyst": "lea", **YES_ZORG})
        assert answer.status_code == 403 and "Only a lead analyst may settle" in answer.get_data(as_text=True)
    assert settles(store) == [] and ids["care"] not in store.final_labels()


def test_a_lead_who_took_part_cannot_settle_another_lead_can(team):
    app, store, ids, tokens = team
    disagree(app, tokens, ids["care"], "lea", "bob")
    lea = login(app, tokens["lea"])
    answer = post(lea, f"/article/{ids['care']}/settle", YES_ZORG)
    assert answer.status_code == 403 and "reviewed #" in answer.get_data(as_text=True)
    # Undoing her decision first does not make her a neutral judge.
    post(lea, "/undo", {"article_id": str(ids["care"])})
    post(login(app, tokens["ann"]), f"/article/{ids['care']}/decide", YES_ZORG)
    assert post(lea, f"/article/{ids['care']}/settle", YES_ZORG).status_code == 403
    assert settles(store) == []
    answer = post(login(app, tokens["max"]), f"/article/{ids['care']}/settle", {"analyst": "lea", **YES_ZORG})
    assert answer.status_code == 302
    [event] = settles(store)
    assert (event["analyst"], event["article_id"], event["sector"]) == ("max", ids["care"], "zorg")


def test_an_undisputed_article_cannot_be_settled(team):
    app, store, ids, tokens = team
    for name in ("ann", "bob"):
        post(login(app, tokens[name]), f"/article/{ids['park']}/decide", YES_ZORG)
    lead = login(app, tokens["max"])
    for key in ("park", "xss"):  # agreed by two; reviewed by nobody
        answer = post(lead, f"/article/{ids[key]}/settle", NO)
        assert answer.status_code == 400 and "not disputed" in answer.get_data(as_text=True)
    assert settles(store) == []


def test_an_undisputed_article_cannot_be_settled_by_a_single_user_either(make_settings):
    settings = make_settings(analyst="ann")
    store = Store(settings.effective_database_url)
    store.migrate()
    ids = fill_store(store)
    client = create_app(settings, store).test_client()
    post(client, f"/article/{ids['park']}/decide", YES_ZORG)
    answer = post(client, f"/article/{ids['park']}/settle", NO)
    assert answer.status_code == 400 and settles(store) == []
    assert store.final_labels()[ids["park"]].action == "decide"
    store.close()


@pytest.mark.parametrize("where", ["query", "header", "bearer"])
def test_a_short_token_is_refused(team, make_settings, where):
    _app, store, _ids, _tokens = team
    app = create_app(make_settings(review_token=LONG_TOKEN), store)
    short = LONG_TOKEN[:19]  # even a prefix of the real one
    request = {"query": dict(path=f"/?token={short}"), "header": dict(path="/", headers={"X-Radar-Token": short}),
               "bearer": dict(path="/", headers={"Authorization": f"Bearer {short}"})}[where]
    answer = app.test_client().get(**request)
    assert answer.status_code == 401 and "too short" in answer.get_data(as_text=True)


def test_a_short_shared_token_setting_is_refused(make_settings, tmp_path):
    with pytest.raises(ConfigError, match="at least 20"):
        check_binding("0.0.0.0", "nineteen-characters")
    settings = make_settings(review_token="nineteen-characters")
    store = Store(settings.effective_database_url)
    store.migrate()
    with pytest.raises(ConfigError, match="review_token is 19 characters"):
        create_app(settings, store)
    store.close()
    result = invoke("review", "--host", "0.0.0.0", "--port", "0",
                    env={"RADAR_REVIEW_TOKEN": "too-short", "RADAR_DATA_DIR": str(tmp_path / "cli")})
    assert result.exit_code == 2 and "review_token is 9 characters; use at least 20" in result.stderr


def test_analysts_registered_allow_binding_beyond_loopback_without_a_shared_token():
    check_binding("0.0.0.0", "", True)
    with pytest.raises(ConfigError, match="radar analysts add"):
        check_binding("0.0.0.0", "", False)


def test_the_token_is_printed_once_and_only_its_hash_is_stored(tmp_path):
    env = {"RADAR_DATA_DIR": str(tmp_path)}
    added = invoke("analysts", "add", "ann", "--lead", env=env)
    assert added.exit_code == 0, added.stderr
    token = added.stdout.strip()
    assert re.fullmatch(r"[A-Za-z0-9_-]{40,}", token) and "only time" in added.stderr
    assert invoke("analysts", "add", "bob", env=env).stdout.strip() != token
    database = (tmp_path / "radar.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("radar.db-*"))
    assert token.encode() not in database
    with sqlite3.connect(tmp_path / "radar.db") as conn:
        rows = conn.execute("SELECT name, token_hash, is_lead, disabled, created_at FROM analysts ORDER BY name").fetchall()
    assert rows[0][:4] == ("ann", hashlib.sha256(token.encode()).hexdigest(), 1, 0) and rows[0][4]
    listed = invoke("analysts", "list", env=env)
    assert listed.exit_code == 0 and "ann" in listed.stdout and "lead" in listed.stdout and "bob" in listed.stdout
    assert token not in listed.stdout and rows[0][1] not in listed.stdout
    again = invoke("analysts", "add", "ann", env=env)
    assert again.exit_code == 2 and "exists" in again.stderr and not again.stdout.strip()


def test_a_removed_or_rotated_token_stops_working(team, tmp_path):
    app, store, _ids, tokens = team
    env = {"RADAR_DATA_DIR": str(tmp_path / "local")}
    ann = login(app, tokens["ann"])
    removed = invoke("analysts", "remove", "ann", env=env)
    assert removed.exit_code == 0, removed.stderr
    assert ann.get("/").status_code == 401  # her open session ends too
    assert app.test_client().get(f"/?token={tokens['ann']}").status_code == 401
    assert "disabled" in invoke("analysts", "list", env=env).stdout
    bob = login(app, tokens["bob"])
    rotated = invoke("analysts", "rotate", "bob", env=env)
    new = rotated.stdout.strip()
    assert rotated.exit_code == 0 and new and new != tokens["bob"]
    assert bob.get("/").status_code == 401 and app.test_client().get(f"/?token={tokens['bob']}").status_code == 401
    assert login(app, new).get("/").status_code == 200
    assert invoke("analysts", "remove", "nobody", env=env).exit_code == 2


def test_the_real_server_records_the_bearer_of_the_token(team, make_settings):
    _app, store, ids, tokens = team
    with served(make_settings(analyst="ann"), store) as server:
        base = f"http://127.0.0.1:{server.effective_port}"
        with requests.Session() as session:
            session.headers["Authorization"] = f"Bearer {tokens['bob']}"
            page = session.get(f"{base}/article/{ids['park']}", timeout=10)
            answer = session.post(f"{base}/article/{ids['park']}/decide?analyst=ann", timeout=10,
                                  data={"csrf_token": csrf_of(page.text), "analyst": "ann", **NO},
                                  allow_redirects=False)
        assert requests.get(f"{base}/", timeout=10).status_code == 401
    assert answer.status_code == 302
    assert [(e["analyst"], e["cocreation"]) for e in events(store)] == [("bob", 0)]


def test_export_no_longer_reports_forged_settles(team, tmp_path):
    app, store, ids, tokens = team
    env = {"RADAR_DATA_DIR": str(tmp_path / "local")}
    disagree(app, tokens, ids["care"])
    bob = login(app, tokens["bob"])
    post(bob, f"/article/{ids['care']}/settle", {"analyst": "anyone", **NO})  # his own dispute, not a lead
    post(bob, f"/article/{ids['park']}/settle", {"analyst": "anyone", **YES_ZORG})  # undisputed
    exported = invoke("export", "--status", "reviewed", env=env)
    assert exported.exit_code == 0, exported.stderr
    rows = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r for r in rows if r["label_source"] == "settled" or r["settled_by"]] == []
    assert ids["care"] not in {r["article_id"] for r in rows}  # disputed and unsettled: not final
    assert settles(store) == []


def test_radar_review_serves_to_token_holders_only(tmp_path):
    env = {"RADAR_DATA_DIR": str(tmp_path)}
    token = invoke("analysts", "add", "bob", env=env).stdout.strip()
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")} | env
    # A process: the server runs until it is terminated, reading its address from its live output.
    process = subprocess.Popen([RADAR, "review", "--port", "0", "--analyst", "ann"], env=full_env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        first = lines.get(timeout=60)
        base = re.search(r"http://127\.0\.0\.1:\d+/", first).group(0)
        assert "names come from the tokens, not from --analyst" in lines.get(timeout=10)
        assert requests.get(base, timeout=10).status_code == 401
        page = requests.get(base, headers={"X-Radar-Token": token}, timeout=10)
        assert page.status_code == 200 and "<strong>bob</strong>" in page.text and "<strong>ann</strong>" not in page.text
    finally:
        process.terminate()
        process.wait(timeout=30)
