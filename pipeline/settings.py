"""One Settings object: shipped defaults < TOML config file < RADAR_* environment."""

from __future__ import annotations

import difflib
import logging
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from pipeline.errors import ConfigError
from pipeline.records import MAX_TEXT_CHARS
from pipeline.resources import FEEDS_FILE, MODEL_DIR

log = logging.getLogger(__name__)

# The checkout a development install runs from; only the shared corpus (training and evaluation, never shipped)
# is found beside it. The shipped feed list and model come from pipeline.resources.
REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"

# Operators should add a contact address (see deploy/radar.example.toml).
DEFAULT_USER_AGENT = "CocreatieRadar/0.1 (research crawler; reads public news feeds once a night)"
# What a site's operator can reach the crawler's operator by: an e-mail address or a web address.
CONTACT = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+|https?://\S+|mailto:\S+", re.IGNORECASE)


def has_contact(user_agent: str) -> bool:
    """Tell whether a User-Agent names a contact (e-mail or web address) that sites can write to."""
    return bool(CONTACT.search(user_agent or ""))


class Settings(BaseSettings):
    """Everything a run can be told; paths are relative to the working directory."""

    model_config = SettingsConfigDict(env_prefix="RADAR_", extra="forbid")

    data_dir: Path = Field(Path("data/local"), description="runtime files: database, lock, caches")
    database_url: str = Field("", description="SQLAlchemy URL; empty means data_dir/radar.db (SQLite)")
    feeds_file: Path = Field(FEEDS_FILE, description="the feed list")
    user_agent: str = DEFAULT_USER_AGENT
    host_delay: float = Field(1.0, ge=0, description="seconds between two requests to one host")
    workers: int = Field(4, ge=1, description="hosts fetched at the same time")
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(20.0, gt=0, description="longest wait for the next bytes of an answer")
    request_deadline: float = Field(
        60.0, gt=0, description="wall-clock limit of one request (connect, headers and body), whatever the drip rate"
    )
    article_stage_deadline: float = Field(
        1800.0, gt=0, description="seconds the article stage may take; items still waiting wait for the next run"
    )
    max_bytes: int = Field(5_000_000, gt=0, description="largest response body read")
    max_redirects: int = Field(5, ge=0)
    retries: int = Field(2, ge=0, description="extra tries for timeouts, 429 and 5xx")
    backoff: float = Field(0.5, ge=0, description="back-off factor between retries (seconds)")
    max_retry_after: float = Field(30.0, ge=0, description="longest Retry-After honoured in a run")
    allow_private_addresses: bool = Field(
        False, description="fetch article links on private/loopback addresses (demo, tests)"
    )
    max_attempts: int = Field(3, ge=1, description="runs an article is tried before it is given up")
    max_items_per_feed: int = Field(200, ge=1)
    min_text_chars: int = Field(400, ge=0, description="shorter extractions fall back to the feed summary")
    # Below spaCy's max_length (1,000,000) with room for the title that is scored with the text.
    max_text_chars: int = Field(
        MAX_TEXT_CHARS, ge=1000, le=900_000, description="longest stored text or feed summary; cut at a paragraph"
    )
    near_duplicate_threshold: float = Field(
        0.5, gt=0, le=1, description="word-trigram Jaccard above which two texts are one story (tested on real wire copy)"
    )
    max_failed_share: float = Field(
        0.5, ge=0, le=1, description="run fails (exit 1) when more feeds or articles than this fail"
    )
    progress: bool = Field(True, description="progress bars when on a terminal")
    review_host: str = Field("127.0.0.1", description="address the review app binds")
    review_port: int = Field(0, ge=0, le=65535, description="port of the review app; 0 picks a free one")
    review_token: str = Field("", description="access token; required to bind anything but loopback")
    min_reviews: int | None = Field(
        None, ge=1, description="agreeing analysts that make a label final (unset: 2 once more than one analyst "
                                "is registered, else 1); a settle is final at once"
    )
    analyst: str = Field("", description="default analyst name in the review app")
    review_https: bool = Field(
        False, description="the review app is reached over HTTPS (a TLS proxy in front): its session cookie is "
                           "marked Secure, so browsers never send it over plain HTTP; leave off for http:// use"
    )
    server_connection_limit: int = Field(
        200, ge=10, description="connections `radar review` and `radar public` each keep open at once; more wait"
    )
    server_idle_timeout: int = Field(
        30, ge=1, description="seconds a connection may stay silent (no request, no answer pending) before it "
                              "is closed"
    )
    server_connections_per_client: int = Field(
        20, ge=0, description="connections one address may hold open at once, further ones are closed at once "
                              "(0: no cap); public_trusted_proxy is exempt"
    )
    model_dir: Path = Field(MODEL_DIR, description="the trained models and their card")
    train_articles: list[Path] = Field([CORPUS / "articles" / "dev.jsonl", CORPUS / "articles" / "dev2.jsonl"],
                                       description="labelled texts, one file per part")
    train_labels: list[Path] = Field([CORPUS / "labels" / "dev.jsonl", CORPUS / "labels" / "dev2.jsonl"],
                                     description="their labels, in the same order")
    public_host: str = Field("127.0.0.1", description="address `radar public` binds (put a reverse proxy in front)")
    public_port: int = Field(0, ge=0, le=65535, description="port of `radar public`; 0 picks a free one")
    public_trusted_proxy: str = Field(
        "", description="address of your reverse proxy: its X-Forwarded-For gives the reader's address"
    )
    public_base_url: str = Field("", description="address the published site is served at (absolute links in feeds)")
    public_form_url: str = Field("", description="address of the submission form, linked from a static site")
    public_rate_per_ip: int = Field(5, ge=1, description="submissions one address may make per hour")
    public_rate_global: int = Field(100, ge=1, description="submissions everyone together may make per hour")
    public_min_seconds: float = Field(3.0, ge=0, description="least time between loading the form and posting it")
    public_output: str = Field("", description="folder deploy/radar-nightly publishes the static site to after "
                                               "each run (empty: not published)")
    # The public form promises readers this (form.html says 90 dagen): keep the two the same.
    submission_retention: int = Field(90, ge=1, description="days a reader's name, e-mail and address code are "
                                                            "kept; the nightly run wipes older ones")
    submission_allow_loopback: bool = Field(
        False, description="tests only: let a submission fetch a page on 127.0.0.1; never set in production"
    )
    retrain_after: int = Field(0, ge=0, description="retrain in the nightly run once this many new final labels "
                                                    "exist (0: never)")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The config file arrives as init kwargs; listing env first makes RADAR_* win over it.
        return (env_settings, init_settings)

    @property
    def effective_database_url(self) -> str:
        """Return the database URL, defaulting to the SQLite file in data_dir."""
        return self.database_url or f"sqlite:///{self.data_dir / 'radar.db'}"

    @property
    def lock_path(self) -> Path:
        """Return the path of the file lock that keeps two runs apart."""
        return self.data_dir / "radar.lock"


def read_toml(path: Path, what: str, when_missing: str = "") -> dict[str, Any]:
    """Read a TOML file; a missing or malformed one is a ConfigError naming `what` it is ('config file')."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} {path} does not exist{when_missing}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path} is not valid TOML: {exc}") from exc


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a TOML config file; keys may sit at the top or under [radar]."""
    data = read_toml(path, "config file")
    return data.get("radar", data)


# RADAR_* variables that are not settings but are read elsewhere (the CLI's config file).
OTHER_VARIABLES = frozenset({"RADAR_CONFIG"})


def warn_unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """Log a warning for each RADAR_* variable that is no setting (pydantic ignores them); return the names."""
    fields = {f"RADAR_{name.upper()}": name for name in Settings.model_fields}
    unknown = sorted(k for k in environ if k.upper().startswith("RADAR_") and k.upper() not in fields
                     and k.upper() not in OTHER_VARIABLES)
    for name in unknown:
        close = difflib.get_close_matches(name.upper(), list(fields), n=1, cutoff=0.6)
        log.warning("%s is not a setting and is ignored%s", name, f": did you mean {close[0]}?" if close else "")
    return unknown


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Build the effective settings from defaults, an optional config file and RADAR_* variables."""
    warn_unknown_variables(os.environ)
    values = read_config_file(config) if config else {}
    values.update(overrides)
    try:
        return Settings(**values)
    except ValidationError as exc:
        where = f"config file {config}, " if config else ""
        problems = "; ".join(describe_error(error) for error in exc.errors())
        raise ConfigError(f"invalid settings ({where}RADAR_* variables): {problems}") from exc


def describe_error(error: ErrorDetails) -> str:
    """Say what is wrong with one setting in a sentence, suggesting the nearest name for a misspelt one."""
    name = ".".join(str(part) for part in error["loc"]) or "settings"
    if error["type"] == "extra_forbidden":
        # pydantic's own text ("Extra inputs are not permitted") does not say what was meant.
        close = difflib.get_close_matches(name, list(Settings.model_fields), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else "see `radar config` for the known settings"
        return f"unknown setting {name!r}: {hint}"
    return f"{name}: {error['msg']} (got {error.get('input')!r})"
