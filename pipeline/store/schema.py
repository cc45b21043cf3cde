"""The database schema: the tables of every stage and their indexes (the migrations are in migrations.py)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger, Column, Float, ForeignKey, Index, Integer, LargeBinary, MetaData, String, Table, Text, UniqueConstraint,
)

metadata = MetaData()

schema_info = Table("schema_info", metadata, Column("version", Integer, nullable=False))

feeds = Table(
    "feeds", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("outlet", String(200), nullable=False, default=""),
    Column("language", String(10), nullable=False, default="nl"),
    Column("tags", Text, nullable=False, default="[]"),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("last_fetched_at", String(40)),
    Column("last_status", String(20)),
    Column("last_error", Text),
    Column("consecutive_failures", Integer, nullable=False, default=0),
    # Whether the last fetch of this feed that answered connected to a private address (schema 13; NULL: no
    # fetch has answered yet). Its links may then be private too; never decided by a lookup of its own.
    Column("private_origin", Integer),
)

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True),
    Column("kind", String(20), nullable=False, default="run"),
    Column("started_at", String(40), nullable=False),
    Column("finished_at", String(40)),
    Column("status", String(20), nullable=False, default="running"),
    Column("report", Text),
)

fetches = Table(
    "fetches", metadata,
    Column("id", Integer, primary_key=True),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("kind", String(10), nullable=False),
    Column("url", Text, nullable=False),
    Column("status_code", Integer),
    Column("outcome", String(30), nullable=False),
    Column("detail", Text),
    Column("bytes", Integer),
    Column("duration_ms", Integer),
    Column("fetched_at", String(40), nullable=False),
)

items = Table(
    "items", metadata,
    Column("id", Integer, primary_key=True),
    Column("canonical_url", Text, nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("feed_id", Integer, ForeignKey("feeds.id")),
    Column("title", Text, nullable=False, default=""),
    Column("summary", Text, nullable=False, default=""),
    Column("summary_truncated_from", Integer),  # length before the summary was cut to max_text_chars
    Column("published", String(40)),
    Column("author", Text, nullable=False, default=""),
    Column("categories", Text, nullable=False, default="[]"),
    Column("first_run_id", Integer, ForeignKey("runs.id")),
    # pending -> done | failed (retried next run) | gone (final 4xx) | skipped (policy, final)
    Column("status", String(20), nullable=False, default="pending"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("updated_at", String(40)),
)

pages = Table(
    "pages", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id"), nullable=False),
    Column("url", Text, nullable=False),
    Column("final_url", Text, nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("content_type", String(100)),
    Column("body_zlib", LargeBinary, nullable=False),  # raw bytes, immutable, for re-extraction
    Column("fetched_at", String(40), nullable=False),
)

articles = Table(
    "articles", metadata,
    Column("id", Integer, primary_key=True),
    Column("item_id", Integer, ForeignKey("items.id")),
    Column("source", String(20), nullable=False),
    Column("external_id", String(200)),
    Column("url", Text),
    Column("canonical_url", Text, unique=True),
    Column("outlet", String(200), nullable=False, default=""),
    Column("title", Text, nullable=False, default=""),
    Column("author", Text, nullable=False, default=""),
    Column("published", String(40)),
    Column("sitename", Text, nullable=False, default=""),
    Column("categories", Text, nullable=False, default="[]"),
    Column("language", String(10), nullable=False, default=""),
    Column("text", Text, nullable=False),
    Column("text_truncated_from", Integer),  # length before the text was cut to max_text_chars
    Column("content_hash", String(64), nullable=False, index=True),
    Column("method", String(30), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("created_at", String(40), nullable=False),
    # How the article entered: feed | ingest | submission | backfill (schema version 8), and where from:
    # a submission id, a WARC record id; empty for feeds and ingest, whose item or external id says it.
    Column("origin", String(20), nullable=False, default="feed"),
    Column("provenance", Text, nullable=False, default=""),
    UniqueConstraint("source", "external_id", name="uq_articles_source_external"),
)

duplicates = Table(
    "duplicates", metadata,
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
    Column("canonical_id", Integer, ForeignKey("articles.id"), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # exact | near
    Column("similarity", Float, nullable=False),
)

signatures = Table(
    "signatures", metadata,
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
    Column("minhash", LargeBinary, nullable=False),
)

predictions = Table(
    "predictions", metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False, index=True),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("model_version", String(40), nullable=False),
    Column("codebook_version", String(20), nullable=False),
    Column("cocreation_score", Float, nullable=False),
    Column("rule_score", Float, nullable=False),
    Column("flagged", Integer, nullable=False),
    Column("sector", String(30)),
    Column("sector_scores", Text, nullable=False),
    Column("type", String(30)),
    Column("type_scores", Text, nullable=False),
    Column("evidence", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("article_id", "model_version", name="uq_predictions_article_model"),
)

# Analysts' decisions: append-only events, never updated or deleted. The current label of an article
# for an analyst is their newest event; an undo is a new event that restores the previous state.
reviews = Table(
    "reviews", metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False, index=True),
    Column("analyst", String(100), nullable=False, index=True),
    Column("action", String(20), nullable=False),  # decide | undo | settle
    Column("cocreation", Integer),  # 1 yes, 0 no, NULL when an undo returns to "not reviewed"
    Column("sector", String(30)),
    Column("type", String(30)),
    Column("borderline", Integer, nullable=False, default=0),
    Column("note", Text, nullable=False, default=""),
    Column("previous", Text, nullable=False, default="{}"),  # JSON of the analyst's state before
    Column("undoes_id", Integer, ForeignKey("reviews.id")),
    Column("model_version", String(40)),
    Column("codebook_version", String(20), nullable=False),
    Column("created_at", String(40), nullable=False),
    # For the public collection (schema of _migrate_to_10): what readers learn from it, and "never publish".
    Column("lesson", Text, nullable=False, default=""),
    Column("private", Integer, nullable=False, default=0),
    Column("quote", Text, nullable=False, default=""),  # the sentence the analyst chose to quote ('' = the model's)
)

# Analysts with their own access token, for an app served to others. Only a hash of the token is kept;
# a removed analyst is disabled, not deleted, so the name stays tied to the decisions made under it.
analysts = Table(
    "analysts", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, unique=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("is_lead", Integer, nullable=False, default=0),
    Column("created_at", String(40), nullable=False),
    Column("disabled", Integer, nullable=False, default=0),
)

# Articles that a model version could not score, with the reason; unscored_articles skips them for that
# version, so one article that breaks scoring is tried once, not in every later run.
scoring_failures = Table(
    "scoring_failures", metadata,
    Column("id", Integer, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("model_version", String(40), nullable=False),
    Column("run_id", Integer, ForeignKey("runs.id")),
    Column("reason", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("article_id", "model_version", name="uq_scoring_failures_article_model"),
)

# One row per duplicate cluster, keyed by its canonical article: what the review queue filters and orders on.
# The store keeps it as articles, predictions and reviews are written (never by loading tables into Python),
# so a queue page is an indexed range read however many articles there are.
clusters = Table(
    "clusters", metadata,
    Column("cluster_id", Integer, ForeignKey("articles.id"), primary_key=True),
    Column("flagged", Integer, nullable=False, default=0),  # any copy's newest prediction is flagged
    Column("score", Float, nullable=False, default=0.0),  # the highest newest score of any copy
    Column("prediction_id", Integer, ForeignKey("predictions.id")),  # the head's newest, else the first copy's
    Column("sector", String(30)),  # of that prediction, for the queue's filters
    Column("type", String(30)),
    Column("date", String(40), nullable=False, default=""),  # the head's publication (else storage) date
    Column("disputed", Integer, nullable=False, default=0),  # analysts' current decisions differ
    # How many of its articles (head and copies) have a flagged newest prediction (schema version 9): the
    # queue counts stories and articles as the run report does.
    Column("flagged_articles", Integer, nullable=False, default=0),
    Column("submitted", Integer, nullable=False, default=0),  # a reader submitted a copy: queued whatever its score
)

# Articles an analyst parked with "skip for now" (schema version 9): out of their "to do" queue, not a
# decision, so no review event. Unparking deletes the row; a parked cluster appears once per analyst.
skips = Table(
    "skips", metadata,
    Column("id", Integer, primary_key=True),
    Column("cluster_id", Integer, ForeignKey("articles.id"), nullable=False),
    Column("analyst", String(100), nullable=False),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("analyst", "cluster_id", name="uq_skips_analyst_cluster"),
)

# What readers sent through `radar public` (_migrate_to_10). Name, e-mail and the address hash are personal data:
# never published, removed by `radar submissions purge`; the row itself goes with `radar submissions delete`.
submissions = Table(
    "submissions", metadata,
    Column("id", Integer, primary_key=True),
    Column("url", Text, nullable=False),
    Column("note", Text, nullable=False, default=""),
    Column("name", Text, nullable=False, default=""),
    Column("email", Text, nullable=False, default=""),
    Column("ip_hash", String(64), nullable=False, default=""),  # keyed hash of the address, for the rate limit
    Column("created_at", String(40), nullable=False),
    # queued -> stored (a new article) | joined (an article already stored) | refused (final) | failed (retried)
    Column("status", String(20), nullable=False, default="queued"),
    Column("reason", Text, nullable=False, default=""),
    Column("attempts", Integer, nullable=False, default=0),
    Column("article_id", Integer, ForeignKey("articles.id")),
    Column("processed_at", String(40)),
    # AUTOINCREMENT: SQLite would give a deleted submission's id to the next one, and the audit trail names
    # submissions by id (schema 14). PostgreSQL's sequences never reuse one.
    sqlite_autoincrement=True,
)

# Indexes of the review queue, article page and decision (schema version 7).
QUEUE_INDEXES = [
    Index("ix_clusters_flagged_score", clusters.c.flagged, clusters.c.score, clusters.c.cluster_id),
    Index("ix_clusters_flagged_date", clusters.c.flagged, clusters.c.date, clusters.c.cluster_id),
    Index("ix_clusters_flagged_sector_score", clusters.c.flagged, clusters.c.sector, clusters.c.score),
    Index("ix_clusters_flagged_type_score", clusters.c.flagged, clusters.c.type, clusters.c.score),
    Index("ix_clusters_disputed_score", clusters.c.disputed, clusters.c.flagged, clusters.c.score),
    Index("ix_reviews_article_analyst_id", reviews.c.article_id, reviews.c.analyst, reviews.c.id),
    Index("ix_reviews_analyst_article_id", reviews.c.analyst, reviews.c.article_id, reviews.c.id),
    Index("ix_reviews_action_article", reviews.c.action, reviews.c.article_id),
    Index("ix_predictions_article_id_id", predictions.c.article_id, predictions.c.id),
    Index("ix_articles_outlet", articles.c.outlet, articles.c.id),
]

SUBMISSION_INDEXES = [
    Index("ix_submissions_ip_created", submissions.c.ip_hash, submissions.c.created_at),
    Index("ix_submissions_created", submissions.c.created_at),
    Index("ix_submissions_status", submissions.c.status, submissions.c.id),
    Index("ix_submissions_article", submissions.c.article_id),
    Index("ix_clusters_submitted_score", clusters.c.submitted, clusters.c.score, clusters.c.cluster_id),
]

ORIGIN_INDEX = Index("ix_articles_origin", articles.c.origin, articles.c.id)  # load_dataset(origin=...), backfill

# -- backfill (issue 13): per-partition checkpoints and the LSH band keys of cluster heads --------------------
# One row per partition of a WARC file: the records whose offsets lie in [start_offset, end_offset) (end NULL:
# to the end of the file). next_offset moves forward in the same transaction as each stored batch, so a rerun
# or a restarted worker resumes exactly where the last committed batch ended.
backfill_partitions = Table(
    "backfill_partitions", metadata,
    Column("id", Integer, primary_key=True),
    Column("file", Text, nullable=False),
    Column("start_offset", BigInteger, nullable=False),
    Column("end_offset", BigInteger),
    Column("next_offset", BigInteger, nullable=False),
    Column("status", String(20), nullable=False, default="pending"),  # pending | done
    Column("records", Integer, nullable=False, default=0),
    Column("stored", Integer, nullable=False, default=0),  # new articles (heads and copies)
    Column("duplicates", Integer, nullable=False, default=0),  # of which copies of a stored story
    Column("skipped", Text, nullable=False, default="{}"),  # JSON: reason -> count
    Column("worker", Text, nullable=False, default=""),  # host:pid of the process that wrote last
    # Where the file stopped reading as WARC inside this partition, and why (schema 13; NULL: undamaged).
    Column("damaged_at", BigInteger),
    Column("damage", Text),
    Column("updated_at", String(40)),
    UniqueConstraint("file", "start_offset", name="uq_backfill_partitions_file_start"),
)

# The MinHash LSH bands of every cluster head (one row per band), so a worker finds its near-duplicate
# candidates with an indexed read instead of holding every head's signature in memory.
signature_bands = Table(
    "signature_bands", metadata,
    Column("band_key", BigInteger, primary_key=True),
    Column("article_id", Integer, ForeignKey("articles.id"), primary_key=True),
)

# The nonces of public forms already posted (schema 13): a signed form is good for one post. A row is kept until
# the form it came from would have expired anyway.
form_nonces = Table(
    "form_nonces", metadata,
    Column("nonce", String(64), primary_key=True),
    Column("expires_at", String(40), nullable=False),
)

# A WARC record is stored at most once, whatever a crashed or repeated partition does.
BACKFILL_PROVENANCE_INDEX = Index("uq_articles_backfill_provenance", articles.c.provenance, unique=True,
                                  sqlite_where=articles.c.origin == "backfill",
                                  postgresql_where=articles.c.origin == "backfill")

# The queue's head line sums flagged_articles over the flagged clusters on every page view: from the index alone.
FLAGGED_ARTICLES_INDEX = Index("ix_clusters_flagged_articles", clusters.c.flagged, clusters.c.flagged_articles)

# Full-text search of title and text (schema version 9). SQLite: an FTS5 table over the articles table
# (external content, so the text is not stored twice) that triggers keep in step with every write, the
# store's and a bulk load's alike. PostgreSQL: a GIN index on the Dutch tsvector of the same two columns;
# the store's search must spell the expression exactly so (SEARCH_VECTOR) for the planner to use it.
SEARCH_TABLE = "articles_fts"
SEARCH_VECTOR = "to_tsvector('dutch', a.title || ' ' || a.text)"
_SQLITE_SEARCH = [
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {SEARCH_TABLE} USING fts5(title, text, content='articles', "
    "content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    f"CREATE TRIGGER IF NOT EXISTS articles_fts_insert AFTER INSERT ON articles BEGIN "
    f"INSERT INTO {SEARCH_TABLE}(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    f"CREATE TRIGGER IF NOT EXISTS articles_fts_delete AFTER DELETE ON articles BEGIN "
    f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); END",
    f"CREATE TRIGGER IF NOT EXISTS articles_fts_update AFTER UPDATE OF title, text ON articles BEGIN "
    f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}, rowid, title, text) VALUES ('delete', old.id, old.title, old.text); "
    f"INSERT INTO {SEARCH_TABLE}(rowid, title, text) VALUES (new.id, new.title, new.text); END",
    f"INSERT INTO {SEARCH_TABLE}({SEARCH_TABLE}) VALUES ('rebuild')",  # index the articles stored before
]
_POSTGRES_SEARCH = ["CREATE INDEX IF NOT EXISTS ix_articles_search ON articles USING GIN "
                    "(to_tsvector('dutch', title || ' ' || text))"]  # fills itself from the existing rows
