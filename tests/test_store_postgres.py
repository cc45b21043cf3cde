"""The store and a whole nightly run on a real, throw-away PostgreSQL cluster (`make test` and .ci/run install it; a skip fails the run)."""

from __future__ import annotations

import glob
import shutil
import socket
import subprocess
import tempfile

import pytest

from pipeline.demo_site import start_demo_site
from pipeline.runs.nightly import run_nightly
from pipeline.store import SCHEMA_VERSION, Store
from tests.conftest import ROOT

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """Start a PostgreSQL cluster as the postgres user (it refuses root) on a free port; yield its URL."""
    pytest.importorskip("psycopg")
    if not PG_BIN or shutil.which("runuser") is None:
        pytest.skip("PostgreSQL server binaries (Debian postgresql-15) are not installed")
    # Not under pytest's tmp dir: that one is private to root and the postgres user cannot enter it.
    bin_dir, root = PG_BIN[-1], tempfile.mkdtemp(prefix="radar-pg-")
    shutil.chown(root, "postgres")
    port = _free_port()
    as_postgres = ["runuser", "-u", "postgres", "--"]
    subprocess.run(as_postgres + [f"{bin_dir}/initdb", "-D", f"{root}/data", "-A", "trust", "-U", "radar"],
                   check=True, capture_output=True)
    subprocess.run(as_postgres + [f"{bin_dir}/pg_ctl", "-D", f"{root}/data", "-l", f"{root}/log", "-w", "-o",
                                  f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        subprocess.run([f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "radar", "radar"], check=True)
        yield f"postgresql+psycopg://radar@127.0.0.1:{port}/radar"
    finally:
        subprocess.run(as_postgres + [f"{bin_dir}/pg_ctl", "-D", f"{root}/data", "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_migrations_run_forward_on_postgres(postgres_url):
    store = Store(postgres_url)
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION  # a second start migrates nothing
    store.close()


def test_nightly_run_on_postgres_matches_expectations(postgres_url, make_settings, tmp_path):
    server, base = start_demo_site("127.0.0.1", 0)
    feeds = (ROOT / "data" / "demo" / "feeds.toml").read_text(encoding="utf-8").replace("http://127.0.0.1:8765", base)
    (tmp_path / "feeds.toml").write_text(feeds, encoding="utf-8")
    settings = make_settings(None, feeds_file=tmp_path / "feeds.toml", database_url=postgres_url,
                             allow_private_addresses=True)
    try:
        first = run_nightly(settings)
        second = run_nightly(settings)
    finally:
        server.shutdown()
        server.server_close()
    assert first.articles_new == 28 and first.articles_duplicate == 2 and first.failed == {"http_500": 1}
    assert second.articles_new == 0 and {f.status for f in second.feeds} == {"not_modified", "failed"}
    store = Store(postgres_url)
    counts = store.counts()
    store.close()
    assert counts["articles"] == 30 and counts["duplicates"] == 2 and counts["predictions"] == 30
