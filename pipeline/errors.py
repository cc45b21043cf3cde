"""The package's own exception types; only cli.py turns them into exit codes."""

from __future__ import annotations


class RadarError(Exception):
    """Base class: the message says what went wrong and what to do next."""


class ConfigError(RadarError):
    """Settings, a config file or the feed list is wrong."""


class RunLocked(RadarError):
    """Another run holds the lock."""


class RunCrashed(RadarError):
    """A run stopped on an unexpected error; it is recorded as crashed and its work so far is kept."""


class StoreError(RadarError):
    """The database cannot be used (damaged, in a folder that cannot be written, unreachable, newer schema)."""


class FetchError(RadarError):
    """A feed or page could not be fetched; `reason` is a short stable code."""

    def __init__(self, reason: str, detail: str = "", *, retryable: bool = False, status: int | None = None):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.retryable = retryable
        self.status = status


class ExtractError(RadarError):
    """A page yielded no usable article text."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ModelError(RadarError):
    """A model cannot be loaded or used (missing, changed since training, untrusted, or built for another codebook)."""


class ModelMissing(ModelError):
    """No trained model is there yet: scoring is skipped until `radar train` has run."""


class SubmissionRefused(RadarError):
    """A reader's submission breaks a rule of the public form; the message is Dutch, for the reader."""

    def __init__(self, reason: str, message: str, *, status: int = 400):
        super().__init__(message)
        self.reason = reason
        self.status = status


class PublishRefused(RadarError):
    """`radar publish` would overwrite a file it did not write, or write or delete through a symlink."""
