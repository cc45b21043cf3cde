"""The review app's side of reader submissions (issue 12): the notes readers sent, the "ingezonden" marks.

Kept apart from views.py and the queue so that those screens can change without touching this; the templates
reach these through their own partials (_reader_*.html), each included with one line.
"""

from __future__ import annotations

from flask import Flask, current_app

from pipeline.records import Submission

# How a submission's status reads to the analyst.
STATUS_TEXT = {"queued": "wacht op de volgende run", "stored": "opgehaald", "joined": "stond er al",
               "refused": "geweigerd", "failed": "ophalen mislukt (wordt opnieuw geprobeerd)"}


def _store():
    return current_app.extensions["radar"].store


def reader_submissions(cluster_id: int) -> list[Submission]:
    """Return the readers' submissions of one cluster, oldest first (shown with the article)."""
    return _store().submissions_of_clusters([cluster_id]).get(cluster_id, [])


def is_submitted(cluster_id: int) -> bool:
    """Tell whether a reader submitted this cluster (the queue's "ingezonden" mark)."""
    return _store().is_submitted_cluster(cluster_id)


def unfetched_submissions() -> list[Submission]:
    """Return the submissions that made no article (refused, failing or still queued), newest first."""
    return [s for s in _store().list_submissions() if s.article_id is None]


def install_reader_views(app: Flask) -> None:
    """Give the review templates the submission helpers."""
    app.jinja_env.globals.update(reader_submissions=reader_submissions, is_submitted=is_submitted,
                                 unfetched_submissions=unfetched_submissions, submission_status=STATUS_TEXT)
