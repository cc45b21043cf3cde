"""What the review app's pages share: the per-app context and the URL converter of article ids."""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.routing import IntegerConverter

from pipeline.codebook import Codebook
from pipeline.store import Store

MAX_ROW_ID = 2**63 - 1  # the largest id SQLite and PostgreSQL's BIGINT hold


@dataclass
class ReviewContext:
    """What every request needs: the store, the codebook, the default analyst and the flag threshold."""

    store: Store
    codebook: Codebook
    default_analyst: str
    threshold: float


class RowIdConverter(IntegerConverter):
    """An article id in a URL: a positive integer that fits the database's 64-bit column.

    Beyond that range SQLite raises OverflowError (a 500); out of range the route does not match: a 404.
    """

    def __init__(self, map, *args, **kwargs):
        super().__init__(map, min=1, max=MAX_ROW_ID)
