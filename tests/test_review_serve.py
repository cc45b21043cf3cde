"""`radar review` as served: its port and link on the command line, the login page and the help in a real Chromium."""

from __future__ import annotations

import os
import queue
import socket
import subprocess
import threading

import pytest

from pipeline.review.app import create_app, make_server
from tests.cli_helpers import RADAR, radar
from tests.conftest import CHROMIUM, serving
from tests.review_scenario import LONG_TOKEN

browser_only = pytest.mark.skipif(not CHROMIUM.exists(),
                                  reason="Debian's chromium is not installed (make test and .ci/run install it)")


# -- the command line -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("port", ["99999", "65536", "-1"])
def test_an_out_of_range_port_is_refused_with_the_range(tmp_path, port):
    try:
        result = radar("review", "--port", port, env={"RADAR_DATA_DIR": str(tmp_path)}, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail(f"--port {port} was served (on some other port) instead of refused")
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"Invalid value for '--port': {port} is not a port: give 0-65535" in result.stderr
    assert "http://" not in result.stdout
    assert not (tmp_path / "radar.db").exists()  # refused before anything was opened


def _first_line_of(args: list[str], env: dict, cwd) -> str:
    """Start `radar` with args, return the first line it prints, then stop it."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")} | env
    process = subprocess.Popen([RADAR, *args], cwd=cwd, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    lines: queue.Queue = queue.Queue()  # read in a thread, so a silent server fails the test instead of hanging it
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        return lines.get(timeout=60)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serving_on_all_addresses_prints_the_machines_name_not_0000(tmp_path):
    line = _first_line_of(["review", "--host", "0.0.0.0", "--port", "0"],
                          {"RADAR_REVIEW_TOKEN": LONG_TOKEN, "RADAR_DATA_DIR": str(tmp_path)}, tmp_path)
    assert line.startswith("Review app: http://"), line
    assert "0.0.0.0" not in line
    names = {socket.getfqdn(), socket.gethostname()} - {"localhost"}
    assert any(f"http://{name}:" in line for name in names), (line, names)


def test_the_link_host_of_a_wildcard_address_is_this_machine_and_any_other_address_stays():
    from pipeline.review.app import link_host

    assert link_host("0.0.0.0") == link_host("::") == link_host("[::]")
    assert link_host("0.0.0.0") in {socket.getfqdn(), socket.gethostname()}
    assert link_host("0.0.0.0") not in {"0.0.0.0", "localhost"}
    for host in ("127.0.0.1", "::1", "192.168.1.5", "review.example.org"):
        assert link_host(host) == host


# -- the static files: open to all, and nothing else --------------------------------------------------------------

def test_only_the_static_files_are_served_without_a_token(review_store):
    settings, store, ids = review_store
    client = create_app(settings.model_copy(update={"review_token": LONG_TOKEN}), store).test_client()
    css = client.get("/static/review.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and b"header.top" in css.data
    assert client.get("/static/review.js").status_code == 200
    for path in ("/", f"/article/{ids['park']}", "/agreement", "/static/../views.py", "/static/nothing.css"):
        assert client.get(path).status_code in (401, 404), path
    assert client.get("/").status_code == 401 and client.get("/agreement").status_code == 401


# -- in a real browser ---------------------------------------------------------------------------------------------

@pytest.fixture
def token_app(review_store):
    """The review app behind the shared token, served by waitress on a free loopback port."""
    settings, store, ids = review_store
    app = create_app(settings.model_copy(update={"review_token": LONG_TOKEN}), store, host="127.0.0.1")
    with serving(make_server(app, "127.0.0.1", 0)) as base:
        yield base


@browser_only
def test_the_401_page_is_styled(token_app, watched_page):
    page = watched_page()
    answer = page.goto(token_app + "/")
    assert answer.status == 401
    assert "Access token required" in page.inner_text("main")
    header = page.evaluate("() => { const s = getComputedStyle(document.querySelector('header.top'));"
                           " return [s.display, s.backgroundColor]; }")
    assert header == ["flex", "rgb(18, 55, 42)"]  # review.css loaded: the dark green bar, not a bare block
    assert page.evaluate("() => getComputedStyle(document.body).marginTop") == "0px"  # not the browser's 8px


@browser_only
def test_the_help_lists_the_search_key_and_the_key_searches(live_app, watched_page):
    base, _store, _ids = live_app
    page = watched_page()
    page.goto(base + "/")
    page.keyboard.press("?")
    help_box = page.locator("dialog#help")
    assert help_box.is_visible()
    row = help_box.locator("tr", has=page.locator("th kbd", has_text="/"))
    assert row.count() == 1 and "search" in row.inner_text().lower()
    page.keyboard.press("Escape")
    assert not help_box.is_visible()
    page.keyboard.press("/")
    assert page.evaluate("() => document.activeElement.id") == "search"
    assert page.errors == []
