"""The HTTP client against a real local server: retries, caps, redirects, robots, address safety."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time

import pytest

from pipeline.errors import FetchError
from pipeline.ingest.fetch import HTML_TYPES, HostPacer, HttpClient, is_public_address, is_public_host, map_by_host
from tests.httpserver import Reply, ScriptedServer, drip

PAGE = "<html><body><p>Hallo</p></body></html>"


@pytest.fixture
def client(make_settings):
    made = []

    def factory(**overrides):
        overrides.setdefault("allow_private_addresses", True)
        made.append(HttpClient(make_settings(**overrides)))
        return made[-1]
    yield factory
    for c in made:
        c.close()


def test_404_is_final_and_not_retried(server, client):
    server.add("/gone.html", Reply(404, b"weg", {"Content-Type": "text/html"}))
    with pytest.raises(FetchError) as err:
        client().get(server.url("/gone.html"), accept=HTML_TYPES)
    assert err.value.reason == "http_404" and not err.value.retryable
    assert server.hits("/gone.html") == 1


def test_500_then_200_succeeds_on_retry(server, client):
    server.add("/flaky.html", Reply(500, b"oops"), Reply(200, PAGE.encode(), {"Content-Type": "text/html"}))
    resp = client(retries=2).get(server.url("/flaky.html"), accept=HTML_TYPES)
    assert resp.status == 200 and b"Hallo" in resp.body
    assert server.hits("/flaky.html") == 2


def test_persistent_500_is_a_retryable_failure(server, client):
    server.add("/down.html", Reply(503, b"down"))
    with pytest.raises(FetchError) as err:
        client(retries=2).get(server.url("/down.html"), accept=HTML_TYPES)
    assert err.value.retryable and err.value.reason == "http_503"
    assert server.hits("/down.html") == 3  # first try + 2 retries


def test_429_honours_retry_after(server, client):
    server.add("/busy.html", Reply(429, b"slow down", {"Retry-After": "1"}),
               Reply(200, PAGE.encode(), {"Content-Type": "text/html"}))
    resp = client(retries=2, backoff=0).get(server.url("/busy.html"), accept=HTML_TYPES)
    first, second = [t for path, _, t in server.requests if path == "/busy.html"]
    assert resp.status == 200
    assert second - first >= 0.95


def test_timeout_is_retryable(server, client):
    server.add("/slow.html", Reply(200, PAGE.encode(), {"Content-Type": "text/html"}, delay=2.0))
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        client(read_timeout=0.3, retries=0).get(server.url("/slow.html"), accept=HTML_TYPES)
    assert err.value.reason in {"timeout", "retries_exhausted", "connection_error"} and err.value.retryable
    assert time.monotonic() - started < 1.9


def test_redirect_loop_stops(server, client):
    server.add("/a", Reply(302, b"", {"Location": "/b"}))
    server.add("/b", Reply(302, b"", {"Location": "/a"}))
    with pytest.raises(FetchError) as err:
        client(max_redirects=4).get(server.url("/a"), accept=HTML_TYPES)
    assert err.value.reason == "too_many_redirects"
    assert server.hits("/a") + server.hits("/b") == 5


def test_redirect_is_followed_to_final_url(server, client):
    server.add("/old", Reply(301, b"", {"Location": "/new.html"}))
    server.page("/new.html", PAGE)
    resp = client().get(server.url("/old"), accept=HTML_TYPES)
    assert resp.final_url == server.url("/new.html") and resp.redirects == 1


def test_50_mb_body_is_cut_off(server, client):
    def fifty_mb():
        for _ in range(50 * 16):
            yield b"x" * 65536
    server.add("/huge.html", Reply(200, headers={"Content-Type": "text/html"}, stream=fifty_mb))
    with pytest.raises(FetchError) as err:
        client(max_bytes=1_000_000).get(server.url("/huge.html"), accept=HTML_TYPES)
    assert err.value.reason == "too_large"


def test_declared_huge_content_length_is_refused_before_reading(server, client):
    server.add("/big.html", Reply(200, b"x" * 2_000_000, {"Content-Type": "text/html"}))
    with pytest.raises(FetchError) as err:
        client(max_bytes=1_000_000).get(server.url("/big.html"), accept=HTML_TYPES)
    assert err.value.reason == "too_large" and "Content-Length" in str(err.value)


def test_pdf_is_refused(server, client):
    server.page("/report.pdf", b"%PDF-1.7 binary", "application/pdf")
    with pytest.raises(FetchError) as err:
        client().get(server.url("/report.pdf"), accept=HTML_TYPES)
    assert err.value.reason == "unsupported_content_type" and "application/pdf" in str(err.value)


def test_robots_disallow(server, client):
    server.page("/robots.txt", "User-agent: *\nDisallow: /intern/\n", "text/plain")
    server.page("/intern/geheim.html", PAGE)
    with pytest.raises(FetchError) as err:
        client().get(server.url("/intern/geheim.html"), accept=HTML_TYPES, check_robots=True)
    assert err.value.reason == "robots_disallowed"
    assert server.hits("/intern/geheim.html") == 0


def test_robots_is_fetched_once_per_host(server, client):
    server.page("/x.html", PAGE)
    http = client()
    for _ in range(3):
        http.get(server.url("/x.html"), accept=HTML_TYPES, check_robots=True)
    assert server.hits("/robots.txt") == 1


def test_missing_robots_allows_everything(server, client):
    del server.routes["/robots.txt"]
    server.page("/x.html", PAGE)
    assert client().get(server.url("/x.html"), accept=HTML_TYPES, check_robots=True).status == 200


def test_crawl_delay_paces_without_eating_the_download_time(server, client):
    server.page("/robots.txt", "User-agent: *\nCrawl-delay: 1\n", "text/plain")
    server.page("/a.html", PAGE)
    server.page("/b.html", PAGE)
    http = client(read_timeout=0.3)
    http.get(server.url("/a.html"), accept=HTML_TYPES, check_robots=True)
    started = time.monotonic()
    assert http.get(server.url("/b.html"), accept=HTML_TYPES, check_robots=True).status == 200
    assert time.monotonic() - started >= 0.9  # waited for the crawl delay, then still read the page


def test_user_agent_is_sent(server, client):
    server.page("/x.html", PAGE)
    client(user_agent="RadarTest/1.0").get(server.url("/x.html"), accept=HTML_TYPES)
    assert server.requests[-1][1]["User-Agent"] == "RadarTest/1.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "192.168.0.10", "[::1]", "localhost"])
def test_non_public_addresses_are_recognised(host):
    assert not is_public_host(host)


@pytest.mark.parametrize("address", ["::127.0.0.2", "::10.0.0.1", "64:ff9b::a00:1", "64:ff9b::7f00:2",
                                     "64:ff9b:1::a00:1", "::ffff:127.0.0.2", "2002:7f00:2::1", "2002:a00:1::1"])
def test_ipv6_forms_that_carry_a_private_ipv4_address_are_private(address):
    # IPv4-compatible, NAT64 (well-known and local-use), IPv4-mapped and 6to4 forms reach the IPv4 address.
    assert not is_public_address(address)


@pytest.mark.parametrize("address", ["145.97.39.1", "64:ff9b::9161:2701", "2a00:1450:400e::1"])
def test_public_addresses_in_ipv6_forms_stay_public(address):
    assert is_public_address(address)


def test_a_url_on_an_ipv4_compatible_loopback_address_is_refused(client):
    with pytest.raises(FetchError) as err:
        client(allow_private_addresses=False).get("http://[::127.0.0.2]:9/x", accept=HTML_TYPES)
    assert err.value.reason == "private_address"


def test_public_address_is_recognised():
    assert is_public_host("145.97.39.1")  # numeric: no DNS lookup, no traffic


def test_private_address_refused_without_setting(server, client):
    server.page("/x.html", PAGE)
    with pytest.raises(FetchError) as err:
        client(allow_private_addresses=False).get(server.url("/x.html"), accept=HTML_TYPES)
    assert err.value.reason == "private_address"
    assert server.hits("/x.html") == 0


def test_redirect_to_private_address_is_refused_per_hop(server, internal_server, client, loopback_is_public):
    # The server's own address counts as public, so only the redirect target is private.
    internal_server.page("/secret", PAGE)
    server.add("/jump", Reply(302, b"", {"Location": internal_server.url("/secret")}))
    with pytest.raises(FetchError) as err:
        client(allow_private_addresses=False).get(server.url("/jump"), accept=HTML_TYPES)
    assert err.value.reason == "private_address"
    assert server.hits("/jump") == 1 and internal_server.requests == []


def test_backslash_authority_is_refused_as_ambiguous(server, client, fake_dns):
    # urllib.parse reads the host as public-host.test; urllib3 (which connects) reads 127.0.0.1.
    fake_dns.set("public-host.test", ["93.184.216.34"])
    server.page("/x", PAGE)
    port = server.httpd.server_address[1]
    with pytest.raises(FetchError) as err:
        client(allow_private_addresses=False).get(f"http://127.0.0.1:{port}\\@public-host.test/x", accept=HTML_TYPES)
    assert err.value.reason == "ambiguous_url"
    assert server.requests == []  # the internal server saw nothing


@pytest.mark.parametrize("url", ["http://127.0.0.1:{port}\\@public-host.test/",
                                 "http://public-host.test\\@127.0.0.1:{port}/"])
def test_urls_read_differently_by_the_two_parsers_are_refused_even_when_private_is_allowed(server, client, url):
    with pytest.raises(FetchError) as err:
        client(allow_private_addresses=True).get(url.format(port=server.httpd.server_address[1]), accept=HTML_TYPES)
    assert err.value.reason in {"ambiguous_url", "bad_url"}
    assert server.requests == []


def test_dns_rebinding_connects_only_to_the_checked_address(server, client, fake_dns, loopback_only):
    # First answer (for the check) public, every later one loopback: a rebinding name.
    fake_dns.set("rebind.test", ["93.184.216.34"], ["127.0.0.1"])
    server.page("/secret", PAGE)
    port = server.httpd.server_address[1]
    with pytest.raises(FetchError) as err:
        client(allow_private_addresses=False, retries=1).get(f"http://rebind.test:{port}/secret", accept=HTML_TYPES)
    assert err.value.reason == "connection_error"
    assert server.hits("/secret") == 0 and server.requests == []
    assert set(loopback_only) == {("93.184.216.34", port)}  # only ever the checked address, retries included
    assert fake_dns.calls == ["rebind.test"]  # resolved once


def test_pinned_connection_keeps_the_host_name(server, client, fake_dns):
    fake_dns.set("krant.test", ["127.0.0.1"])
    server.page("/x.html", PAGE)
    port = server.httpd.server_address[1]
    http = client()
    for _ in range(2):  # the second request reuses the kept-alive connection
        resp = http.get(f"http://krant.test:{port}/x.html", accept=HTML_TYPES)
        assert resp.status == 200 and resp.final_url == f"http://krant.test:{port}/x.html"
    assert [headers["Host"] for _, headers, _ in server.requests] == [f"krant.test:{port}"] * 2


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A throw-away CA and a certificate for krant.test signed by it (openssl command line)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, timeout=60)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=Radar test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "site.key", "-out", "site.csr", "-subj", "/CN=krant.test")
    (folder / "san.cnf").write_text("subjectAltName=DNS:krant.test\n")
    openssl("x509", "-req", "-in", "site.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "site.pem", "-days", "2", "-extfile", "san.cnf")
    return folder


@pytest.fixture
def tls_server(tls_files):
    """A scripted HTTPS server on 127.0.0.1 whose certificate names krant.test only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "site.pem", tls_files / "site.key")
    srv = ScriptedServer(tls=context)
    srv.page("/x.html", PAGE)
    srv.start()
    yield srv
    srv.stop()


@pytest.mark.parametrize("name, works", [("krant.test", True), ("ander.test", False)])
def test_https_to_a_pinned_address_checks_the_certificate_against_the_name(tls_server, tls_files, client, fake_dns,
                                                                            name, works):
    # Connected to 127.0.0.1, yet SNI and the certificate check use the name: krant.test passes,
    # a name the certificate does not list fails, as it would without pinning.
    fake_dns.set(name, ["127.0.0.1"])
    http = client(retries=0)
    http.session.verify = str(tls_files / "ca.pem")
    url = f"https://{name}:{tls_server.port}/x.html"
    if works:
        resp = http.get(url, accept=HTML_TYPES)
        assert resp.status == 200 and tls_server.requests[-1][1]["Host"] == f"{name}:{tls_server.port}"
    else:
        with pytest.raises(FetchError) as err:
            http.get(url, accept=HTML_TYPES)
        assert err.value.reason == "connection_error" and "certificate" in str(err.value).lower()


def test_dripping_body_is_cut_at_the_request_deadline(server, client):
    # 1 byte per 0.1 s: every read is well inside read_timeout, so only a wall-clock deadline stops it.
    server.add("/drip.html", Reply(200, headers={"Content-Type": "text/html"}, stream=drip(b"<p>" * 50, 0.1)))
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        client(request_deadline=1.0, read_timeout=5.0, retries=2).get(server.url("/drip.html"), accept=HTML_TYPES)
    assert err.value.reason == "timeout" and err.value.retryable and "deadline" in str(err.value)
    assert time.monotonic() - started < 3.0  # deadline 1 s plus a margin; the drip alone lasts 15 s


def test_dripping_headers_are_cut_at_the_request_deadline(server, client):
    head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Padding: " + b"p" * 100 + b"\r\n\r\n<p>hoi</p>"
    server.add("/slowhead.html", Reply(raw=drip(head, 0.1)))
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        client(request_deadline=1.0, read_timeout=5.0, retries=2).get(server.url("/slowhead.html"), accept=HTML_TYPES)
    assert err.value.reason == "timeout" and "deadline" in str(err.value)
    assert time.monotonic() - started < 3.0  # retries do not get a new deadline
    assert server.hits("/slowhead.html") == 1


@pytest.mark.parametrize("how", ["stop", "deadline"])
def test_a_long_retry_after_wait_ends_with_the_stage_or_the_request_deadline(server, client, how):
    import threading
    server.add("/busy.html", Reply(503, b"later", {"Retry-After": "20"}), Reply(200, PAGE.encode(), {"Content-Type": "text/html"}))
    http = client(retries=1, max_retry_after=30, request_deadline=60.0 if how == "stop" else 1.0)
    if how == "stop":
        threading.Timer(0.5, http.stop).start()
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        http.get(server.url("/busy.html"), accept=HTML_TYPES)
    assert err.value.reason == "timeout" and time.monotonic() - started < 3.0  # not the 20 s asked for
    assert server.hits("/busy.html") == 1


def test_stop_ends_a_request_in_flight_at_once(server, client):
    import threading
    server.add("/drip.html", Reply(200, headers={"Content-Type": "text/html"}, stream=drip(b"<p>" * 100, 0.1)))
    http = client(request_deadline=60.0, read_timeout=5.0)
    threading.Timer(0.5, http.stop).start()
    started = time.monotonic()
    with pytest.raises(FetchError) as err:
        http.get(server.url("/drip.html"), accept=HTML_TYPES)
    assert err.value.reason == "timeout" and time.monotonic() - started < 2.5
    with pytest.raises(FetchError) as err:
        http.get(server.url("/drip.html"), accept=HTML_TYPES)
    assert err.value.reason == "stopped"


def test_pacer_spaces_requests_to_one_host():
    pacer = HostPacer(0.2)
    started = time.monotonic()
    for _ in range(3):
        pacer.wait("a")
    pacer.wait("b")  # another host does not wait for a
    assert 0.38 <= time.monotonic() - started < 3.0  # lower bound is the point; the upper only catches hangs


def test_map_by_host_runs_hosts_concurrently_and_keeps_failures():
    tasks = [f"http://h{i % 3}.test/{i}" for i in range(9)]

    def work(url):
        time.sleep(0.1)
        if url.endswith("/4"):
            raise ValueError("boom")
        return url.upper()
    started = time.monotonic()
    results = dict(map_by_host(tasks, lambda u: u, work, workers=3))
    assert time.monotonic() - started < 0.85  # 3 hosts x 3 tasks in parallel; in series it takes >= 0.9 s
    assert isinstance(results["http://h1.test/4"], ValueError)
    assert results["http://h0.test/0"] == "HTTP://H0.TEST/0" and len(results) == 9


# -- a failed connection is said in a few words on one line, never in requests' nested reprs ----------------------

def _closed_port() -> int:
    """Return a loopback port that nothing listens on (bound, then released)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_short_line(error: FetchError) -> str:
    text = str(error)
    assert "\n" not in text and len(text) < 160, text
    for raw in ("HTTPConnectionPool", "Max retries", "Caused by", "Errno", "<urllib3", "object at 0x"):
        assert raw not in text, text
    return text


def test_a_refused_connection_is_connection_refused(client):
    port = _closed_port()
    with pytest.raises(FetchError) as err:
        client(retries=1).get(f"http://127.0.0.1:{port}/feed.xml", accept=HTML_TYPES)
    assert err.value.reason == "connection_error" and err.value.retryable
    assert _one_short_line(err.value) == f"connection_error: connection refused (127.0.0.1:{port})"


def test_a_read_timeout_is_timed_out(server, client):
    server.add("/slow.html", Reply(200, PAGE.encode(), {"Content-Type": "text/html"}, delay=2.0))
    with pytest.raises(FetchError) as err:
        client(read_timeout=0.3, retries=0).get(server.url("/slow.html"), accept=HTML_TYPES)
    assert err.value.reason == "timeout"
    assert _one_short_line(err.value) == f"timeout: timed out (127.0.0.1:{server.port})"


def test_a_name_that_does_not_resolve_is_name_not_found(client):
    with pytest.raises(FetchError) as err:  # .invalid never resolves (RFC 6761)
        client().get("http://krant-die-niet-bestaat.invalid/feed.xml", accept=HTML_TYPES)
    assert err.value.reason == "dns_error"
    assert _one_short_line(err.value) == "dns_error: name not found (krant-die-niet-bestaat.invalid)"


def test_a_certificate_for_another_name_says_so_in_one_line(tls_server, tls_files, client, fake_dns):
    fake_dns.set("ander.test", ["127.0.0.1"])
    http = client(retries=0)
    http.session.verify = str(tls_files / "ca.pem")
    with pytest.raises(FetchError) as err:
        http.get(f"https://ander.test:{tls_server.port}/x.html", accept=HTML_TYPES)
    text = _one_short_line(err.value)
    assert text.startswith("connection_error: certificate check failed: ") and "ander.test" in text


def test_describe_connection_error_reads_the_chain_and_falls_back_to_the_class_name():
    from http.client import BadStatusLine, RemoteDisconnected

    import requests
    from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError, ResponseError

    from pipeline.ingest.transport import describe_connection_error

    def wrapped(inner: BaseException) -> requests.exceptions.ConnectionError:
        return requests.exceptions.ConnectionError(MaxRetryError(None, "/x", inner))

    unreachable = NewConnectionError(None, "Failed to establish a new connection: [Errno 113] No route to host")
    unreachable.__cause__ = OSError(113, "No route to host")
    assert describe_connection_error(wrapped(unreachable)) == "no route to host"  # not "timed out" (its base class)
    assert describe_connection_error(wrapped(TimeoutError("timed out"))) == "timed out"
    assert describe_connection_error(wrapped(ResponseError("too many 503 error responses"))) == \
        "too many 503 error responses"
    closed = ProtocolError("Connection aborted.", RemoteDisconnected("Remote end closed connection without response"))
    assert describe_connection_error(requests.exceptions.ConnectionError(closed)) == "connection reset"
    garbled = ProtocolError("Connection aborted.", BadStatusLine("HTTP/9 200 OK\r\n<html>"))
    assert describe_connection_error(requests.exceptions.ConnectionError(garbled)) == "BadStatusLine"
