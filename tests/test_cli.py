"""The `radar` command: in this process with Typer's CliRunner, and through its real console script where the
test is about the process itself (the script starting, a lock held by another process, kill -9, a server's
output read through a pipe and stopped by a signal)."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cli_helpers import RADAR, invoke, radar
from tests.conftest import article_html, corpus_articles, rss
from tests.httpserver import Reply


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path, monkeypatch):
    """Run every command in the test's own folder, so relative paths (data/local/radar.db) land there."""
    monkeypatch.chdir(tmp_path)


def write_config(tmp_path: Path, feeds: list[tuple[str, str]], **settings) -> Path:
    """Write a feeds file and a config file that points at it; return the config path."""
    (tmp_path / "feeds.toml").write_text("".join(
        f'[[feeds]]\nname = "{name}"\nurl = "{url}"\noutlet = "{name}"\n\n' for name, url in feeds), encoding="utf-8")
    values = {"data_dir": str(tmp_path / "local"), "feeds_file": str(tmp_path / "feeds.toml"), "host_delay": 0,
              "progress": False, **settings}
    lines = "".join(f"{k} = {json.dumps(v)}\n" for k, v in values.items())
    config = tmp_path / "radar.toml"
    config.write_text(f"[radar]\n{lines}", encoding="utf-8")
    return config


def publish_corpus(server, count: int, delay: float = 0.0) -> None:
    """Serve `count` real corpus articles and a feed listing them."""
    items = []
    for i, art in enumerate(corpus_articles()[:count]):
        body = article_html(art["title"], art["text"]).encode("utf-8")
        server.add(f"/art/{i}.html", Reply(200, body, {"Content-Type": "text/html; charset=utf-8"}, delay=delay))
        items.append({"title": art["title"], "link": server.url(f"/art/{i}.html"), "description": art["text"][:100]})
    server.page("/feed.xml", rss(items), "application/rss+xml")


def test_help_lists_the_commands():
    # A process: the one smoke test that the installed `radar` console script starts and reaches the app.
    result = radar("--help")
    assert result.returncode == 0
    for command in ("run", "status", "ingest", "config"):
        assert command in result.stdout


def test_config_precedence_defaults_file_environment(tmp_path):
    config = tmp_path / "radar.toml"
    config.write_text("host_delay = 2.5\nworkers = 7\n", encoding="utf-8")
    result = invoke("--config", str(config), "config", env={"RADAR_WORKERS": "3"})
    assert result.exit_code == 0, result.stderr
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert lines["host_delay"] == "2.5"  # file beats default
    assert lines["workers"] == "3"  # environment beats file
    assert lines["max_redirects"] == "5"  # default


def test_bad_config_is_a_clear_error(tmp_path):
    config = tmp_path / "radar.toml"
    config.write_text("host_dely = 1\n", encoding="utf-8")
    result = invoke("--config", str(config), "config")
    assert result.exit_code == 2 and "host_dely" in result.stderr and "Traceback" not in result.stderr


def test_misspelt_setting_suggests_the_real_name(tmp_path):
    config = tmp_path / "radar.toml"
    config.write_text("[radar]\nhost_dely = 1\nworkers = 0\n", encoding="utf-8")
    result = invoke("--config", str(config), "status")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "unknown setting 'host_dely': did you mean host_delay?" in result.stderr
    assert "workers: Input should be greater than or equal to 1 (got 0)" in result.stderr
    assert "Extra inputs are not permitted" not in result.stderr and "errors.pydantic.dev" not in result.stderr
    # pydantic ignores an unknown RADAR_* variable: it is named, with the one meant, and the rest goes on.
    shown = invoke("config", env={"RADAR_HOST_DELY": "2"})
    assert shown.exit_code == 0 and "host_delay = 1.0" in shown.stdout.splitlines()
    assert "RADAR_HOST_DELY is not a setting and is ignored: did you mean RADAR_HOST_DELAY?" in shown.stderr


def test_config_works_after_the_verb_too(tmp_path):
    config = tmp_path / "radar.toml"
    config.write_text(f"data_dir = {json.dumps(str(tmp_path / 'elsewhere'))}\nworkers = 7\n", encoding="utf-8")
    before = invoke("--config", str(config), "status", "--json")
    after = invoke("status", "--config", str(config), "--json")
    assert before.exit_code == after.exit_code == 0, after.stderr
    assert json.loads(after.stdout)["database"] == json.loads(before.stdout)["database"]
    assert str(tmp_path / "elsewhere") in json.loads(after.stdout)["database"]
    shown = dict(line.split(" = ", 1) for line in invoke("config", "-c", str(config)).stdout.splitlines())
    assert shown["workers"] == "7"
    other = tmp_path / "other.toml"
    other.write_text("workers = 5\n", encoding="utf-8")
    # After the verb wins over before it, which wins over RADAR_CONFIG.
    lines = invoke("--config", str(other), "config", "--config", str(config), env={"RADAR_CONFIG": str(other)}).stdout
    assert "workers = 7" in lines.splitlines()
    assert "workers = 5" in invoke("config", env={"RADAR_CONFIG": str(other)}).stdout.splitlines()
    listed = invoke("analysts", "list", "--config", str(config))  # a sub-group's command too
    assert listed.exit_code == 0 and str(tmp_path / "elsewhere" / "radar.db") in listed.stderr
    assert not (tmp_path / "data").exists()  # the default database was never opened


def test_flags_are_plain_flags_in_help_and_use(tmp_path):
    env = {"RADAR_DATA_DIR": str(tmp_path / "local")}
    top = invoke("--help").stdout
    assert "<bool>" not in top and "<int>" not in top.split("Commands:")[0]
    assert "-vv for debug" in top and "not a number" in top
    status_help = invoke("status", "--help").stdout
    assert "<bool>" not in status_help and "--json " in status_help and "--config FILE" in status_help
    plain = invoke("status", "--json", env=env)
    assert plain.exit_code == 0, plain.stderr
    assert json.loads(plain.stdout)["counts"]["articles"] == 0
    assert invoke("-vv", "status", "--json", env=env).exit_code == 0
    assert invoke("status", "--json", "true", env=env).exit_code == 2  # a flag takes no value


def test_run_json_status_and_ingest(server, tmp_path):
    publish_corpus(server, 3)
    config = write_config(tmp_path, [("krant", server.url("/feed.xml"))])
    result = invoke("--config", str(config), "run", "--json")
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["articles_new"] == 3 and report["feeds"][0]["status"] == "ok"

    status = invoke("--config", str(config), "status", "--json")
    data = json.loads(status.stdout)
    assert data["counts"]["articles"] == 3 and data["runs"][0]["status"] == "ok"

    jsonl = tmp_path / "extra.jsonl"
    jsonl.write_text(json.dumps({"id": "x1", "title": "Eigen tekst", "text": "Een tekst die al tekst is. " * 20})
                     + "\nniet json\n", encoding="utf-8")
    ingest = invoke("--config", str(config), "ingest", str(jsonl))
    # A bad line is reported and exits 1; the good line is stored all the same.
    assert ingest.exit_code == 1 and "1 new" in ingest.stdout and "1 invalid" in ingest.stdout
    assert ingest.stderr == "radar: line 2: not JSON (Expecting value)\n"
    text = invoke("--config", str(config), "status").stdout
    assert "Counts: feeds 1, items 3, articles 4" in text
    # Each kind of run shows its own counts: an ingest run's are not the nightly run's (which read as 0).
    [ingest_line] = [line for line in text.splitlines() if " ingest " in line]
    assert ingest_line.endswith("new 1, duplicate 0, already stored 0, invalid 1, conflicting 0")
    [run_line] = [line for line in text.splitlines() if " run " in line]
    assert "new 3, duplicate 0, failed 0" in run_line


def test_run_where_no_feed_answers_prints_a_line_per_feed_and_a_summary_not_retry_warnings(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # a port nobody listens on: every connect is refused at once
    port = closed.getsockname()[1]
    closed.close()
    config = write_config(tmp_path, [(f"krant-{i}", f"http://127.0.0.1:{port}/feed-{i}.xml") for i in range(6)],
                          allow_private_addresses=True, retries=2)
    result = invoke("--config", str(config), "run")
    assert result.exit_code == 1
    failed = [line for line in result.stdout.splitlines() if line.strip().startswith("FAILED krant-")]
    assert len(failed) == 6 and "Feeds: 6 (0 ok, 0 not modified, 6 failed)" in result.stdout
    assert "Retrying" not in result.stderr and "urllib3" not in result.stderr, result.stderr
    assert "no --config given" not in result.stderr  # said only when the shipped real feed list is read


def test_run_warns_once_when_the_user_agent_gives_no_contact(server, tmp_path):
    publish_corpus(server, 2)
    config = write_config(tmp_path, [("krant", server.url("/feed.xml"))])
    result = invoke("--config", str(config), "run")
    assert result.exit_code == 0 and result.stderr.count("gives no contact address") == 1, result.stderr
    contact = write_config(tmp_path, [("krant", server.url("/feed.xml"))],
                           user_agent="CocreatieRadar/0.1 (+mailto:radar@example.org)")
    assert "contact" not in invoke("--config", str(contact), "run").stderr


def test_run_exit_code_is_1_when_feeds_fail(server, tmp_path):
    config = write_config(tmp_path, [("weg", server.url("/weg.xml"))])
    result = invoke("--config", str(config), "run")
    assert result.exit_code == 1 and "FAILED weg" in result.stdout


def test_second_run_exits_3_while_first_holds_the_lock(server, tmp_path):
    publish_corpus(server, 4, delay=0.5)
    config = write_config(tmp_path, [("krant", server.url("/feed.xml"))], workers=1)
    # A process: the lock must be held by another process while this one tries; the second run may be in-process.
    first = subprocess.Popen([RADAR, "--config", str(config), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(lambda: server.hits("/art/0.html") > 0, 30)
        second = invoke("--config", str(config), "run")
        assert second.exit_code == 3 and "another radar run" in second.stderr
    finally:
        first.wait(timeout=60)
    assert first.returncode == 0


def _wait_for(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)


def _stored(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return sorted(conn.execute("SELECT canonical_url, content_hash, title FROM articles").fetchall())


def _article_count(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return conn.execute("SELECT count(*) FROM articles").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_sigkill_mid_run_then_rerun_loses_and_duplicates_nothing(server, tmp_path):
    publish_corpus(server, 10, delay=0.25)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    reference = write_config(ref_dir, [("krant", server.url("/feed.xml"))], workers=1)
    assert invoke("--config", str(reference), "run").exit_code == 0
    expected = _stored(ref_dir / "local" / "radar.db")
    assert len(expected) == 10

    killed_dir = tmp_path / "killed"
    killed_dir.mkdir()
    config = write_config(killed_dir, [("krant", server.url("/feed.xml"))], workers=1)
    db = killed_dir / "local" / "radar.db"
    # A process: only a real one can be killed with SIGKILL mid-run; the runs around it are in-process.
    proc = subprocess.Popen([RADAR, "--config", str(config), "run"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _wait_for(lambda: _article_count(db) >= 3, 60)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert 3 <= _article_count(db) < 10

    rerun = invoke("--config", str(config), "run", "--json")
    assert rerun.exit_code == 0, rerun.stderr
    assert _stored(db) == expected
    statuses = [run["status"] for run in json.loads(invoke("--config", str(config), "status", "--json").stdout)["runs"]]
    assert statuses == ["ok", "interrupted"]


# -- a database or data directory that cannot be used: one sentence, exit 2 --------------------------

STORE_COMMANDS = [["status"], ["export", "--format", "csv"], ["digest"], ["run"], ["ingest", "{jsonl}"]]


def _damaged_dir(tmp_path: Path, damage: str) -> Path:
    """Return a data directory with a real radar.db damaged the given way."""
    data_dir = tmp_path / "local"
    jsonl = tmp_path / "seed.jsonl"
    jsonl.write_text("".join(json.dumps({"id": f"s{i}", "text": f"Tekst nummer {i} over de wijk. " * 40}) + "\n"
                             for i in range(30)), encoding="utf-8")
    assert invoke("ingest", str(jsonl), env={"RADAR_DATA_DIR": str(data_dir)}).exit_code == 0
    db = data_dir / "radar.db"
    if damage == "truncated":  # e.g. a copy cut short: the header promises pages the file lacks
        with open(db, "r+b") as handle:
            handle.truncate(db.stat().st_size // 2)
    elif damage == "garbage":
        db.write_bytes(os.urandom(8192))
    return data_dir


def _read_only(data_dir: Path):
    """Make data_dir unwritable even for root, or skip.

    The tests run as root, and root ignores permission bits (chmod 0500 changes nothing). The
    immutable attribute (chattr +i) binds root too: no file can be created in the folder, so SQLite
    cannot make its WAL and shared-memory files and the lock file cannot be made.
    """
    done = subprocess.run(["chattr", "+i", str(data_dir)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not available here: {done.stderr.decode().strip()}")


@pytest.mark.parametrize("command", STORE_COMMANDS, ids=[c[0] for c in STORE_COMMANDS])
@pytest.mark.parametrize("damage", ["truncated", "garbage", "read-only", "parent-is-a-file"])
def test_unusable_database_is_one_sentence_and_exit_2(tmp_path, damage, command):
    jsonl = tmp_path / "more.jsonl"
    jsonl.write_text(json.dumps({"id": "m1", "text": "Nog een tekst."}) + "\n", encoding="utf-8")
    if damage == "parent-is-a-file":  # another way to a folder that cannot be written, root or not
        (tmp_path / "file").write_text("not a folder", encoding="utf-8")
        data_dir = tmp_path / "file" / "local"
    else:
        data_dir = _damaged_dir(tmp_path, damage)
    env = {"RADAR_DATA_DIR": str(data_dir), "RADAR_FEEDS_FILE": str(tmp_path / "feeds.toml")}
    (tmp_path / "feeds.toml").write_text("", encoding="utf-8")
    if damage == "read-only":
        _read_only(data_dir)
    try:
        result = invoke(*[arg.format(jsonl=jsonl) for arg in command], env=env)
    finally:
        if damage == "read-only":
            subprocess.run(["chattr", "-i", str(data_dir)], check=True)  # or pytest cannot clean up
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    if damage == "parent-is-a-file" and command[0] in ("status", "export", "digest"):
        # A read-only command makes no database, so a folder that cannot be made is no error: there is none yet.
        assert result.exit_code == 0 and "does not exist yet; nothing was created" in result.stderr
        return
    assert result.exit_code == 2, result.stderr
    expected = {"truncated": "damaged", "garbage": "damaged", "read-only": "writ", "parent-is-a-file": "writ"}
    assert result.stderr.startswith("radar: error: ") and expected[damage] in result.stderr


def test_empty_or_missing_database_is_named_on_stderr(tmp_path):
    # As after `make demo` without its --config: plain commands open data/local/radar.db under the cwd.
    first = invoke("analysts", "add", "ann")  # a command that writes makes the database
    assert first.exit_code == 0, first.stderr
    assert "radar: note: the database sqlite:///data/local/radar.db did not exist; created it empty" in first.stderr
    for command in (["export"], ["digest"], ["status", "--json"], ["analysts", "list"]):
        result = invoke(*command)
        assert result.exit_code == 0, result.stderr
        assert "radar: note: the database sqlite:///data/local/radar.db holds no articles yet" in result.stderr
        assert "--config data/demo/radar-demo.toml" in result.stderr
    assert invoke("export").stdout == ""
    jsonl = tmp_path / "one.jsonl"
    jsonl.write_text(json.dumps({"id": "a1", "text": "Bewoners ontwerpen samen met de gemeente het park. " * 20})
                     + "\n", encoding="utf-8")
    assert invoke("ingest", str(jsonl)).exit_code == 0
    filled = invoke("export", "--status", "all")
    assert filled.exit_code == 0 and "note:" not in filled.stderr and filled.stdout.count("\n") == 1


@pytest.mark.parametrize("command", [["status"], ["status", "--json"], ["export"], ["export", "-f", "csv"],
                                     ["digest"], ["digest", "--format", "html"], ["analysts", "list"]])
def test_read_only_commands_on_a_missing_database_create_nothing(tmp_path, command):
    result = invoke(*command)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("radar: note: the database sqlite:///data/local/radar.db does not exist yet; "
                                    "nothing was created."), result.stderr
    assert "--config data/demo/radar-demo.toml" in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []  # neither data/local/radar.db nor its folder
    if command[0] == "status":
        assert "sqlite:///data/local/radar.db" in result.stdout
        if "--json" in command:  # the keys of an empty database, for scripts that read them
            assert json.loads(result.stdout)["counts"]["articles"] == 0 and json.loads(result.stdout)["runs"] == []
        else:
            assert "articles 0" in result.stdout and "Recent runs: none yet" in result.stdout
    elif command == ["export", "-f", "csv"]:
        assert result.stdout.startswith("article_id,") and result.stdout.count("\n") == 1  # the header only
    elif command[0] == "export":
        assert result.stdout == ""
    elif command[0] == "digest":
        assert "Cocreatie in het nieuws" in result.stdout  # the empty digest, in Dutch


def test_a_read_only_command_writes_its_empty_output_file_but_no_database(tmp_path):
    result = invoke("export", "-f", "csv", "-o", "out/flagged.csv")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "out" / "flagged.csv").read_text(encoding="utf-8").startswith("article_id,")
    assert not (tmp_path / "data").exists()


def test_a_feed_that_refuses_the_connection_is_one_short_line_in_the_report_and_status(tmp_path):
    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = write_config(tmp_path, [("dichte-krant", f"http://127.0.0.1:{port}/feed.xml")], retries=0,
                          allow_private_addresses=True)
    ran = invoke("--config", str(config), "run")
    assert ran.exit_code == 1, ran.stdout + ran.stderr
    failed = [line.strip() for line in ran.stdout.splitlines() if "dichte-krant" in line]
    assert failed == [f"FAILED dichte-krant: connection_error: connection refused (127.0.0.1:{port})"]
    status = invoke("--config", str(config), "status")
    assert f"  dichte-krant (1x): connection_error: connection refused (127.0.0.1:{port})" in status.stdout.splitlines()
    assert "HTTPConnectionPool" not in ran.stdout + ran.stderr + status.stdout


def test_review_on_an_empty_database_prints_its_link_first_then_names_the_database(tmp_path):
    # A process: the server runs until it is stopped by a signal (SIGTERM), and the order of stdout and stderr
    # is read from one OS pipe as a script would read it.
    env = {k: v for k, v in os.environ.items() if not k.startswith("RADAR_")}
    process = subprocess.Popen([RADAR, "review", "--port", "0", "--analyst", "ann"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue = queue.Queue()  # read in a thread, so a silent server fails the test instead of hanging it
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        first, second = lines.get(timeout=60), lines.get(timeout=10)
    finally:
        process.terminate()
        process.wait(timeout=30)
    assert "http://127.0.0.1:" in first  # scripts read the link from the first line
    assert second.startswith("radar: note: the database sqlite:///data/local/radar.db did not exist")


def test_config_never_prints_the_database_password(tmp_path):
    env = {"RADAR_DATABASE_URL": "postgresql+psycopg://radar:s3cret-pw@127.0.0.1:5999/radar"}
    result = invoke("config", env=env)
    assert result.exit_code == 0, result.stderr
    assert "s3cret-pw" not in result.stdout and "radar:***@127.0.0.1:5999/radar" in result.stdout


def test_publish_on_a_missing_database_writes_the_empty_site_but_creates_no_database(tmp_path):
    site = tmp_path.parent / f"{tmp_path.name}-site"  # outside the working folder, which must stay empty
    result = invoke("publish", "--output", str(site))
    assert result.exit_code == 0, result.stderr
    assert "does not exist yet; nothing was created" in result.stderr and "Published 0 examples" in result.stdout
    assert list(tmp_path.iterdir()) == [] and (site / "index.html").exists()
