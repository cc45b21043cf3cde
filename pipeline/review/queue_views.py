"""The queue's own actions: skip for now and unpark, bulk "no" and its undo, and the export of the current filter."""

from __future__ import annotations

import logging
import tempfile
from datetime import datetime, UTC

from flask import abort, flash, redirect, request, send_file, session, url_for

from pipeline.research import export
from pipeline.review import queries
from pipeline.review.context import MAX_ROW_ID
from pipeline.review.events import Label, record_decision
from pipeline.review.blind import blind_rows
from pipeline.review.blueprint import bp, ctx, current_analyst, is_local_path

log = logging.getLogger(__name__)

EXPORT_FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}


def _ids_from(values: list[str], what: str, limit: int) -> list[int]:
    # Hostile input: refuse anything but up to `limit` positive whole numbers, with a message, not a 500.
    if not values:
        abort(400, description=f"Choose at least one {what}. Nothing was changed.")
    if len(values) > limit:
        abort(400, description=f"At most {limit} at a time (one queue page). Nothing was changed.")
    if not all(v.isascii() and v.isdigit() and 0 < int(v) <= MAX_ROW_ID for v in values):
        abort(400, description=f"Each {what} must be a positive whole number. Nothing was changed.")
    return list(dict.fromkeys(int(v) for v in values))


def _cluster_of(article_id: int) -> int:
    # The queue works on clusters: a copy's id stands for its canonical article; a missing one is a 404.
    store = ctx().store
    art = store.article(article_id) or abort(404, description=f"There is no article #{article_id}.")
    return art.cluster_id


def _back_to_queue():
    return redirect(url_for("review.queue", **queries.QueueFilters.from_args(request.args).as_args()))


@bp.post("/skip")
def skip():
    """Park an article for this analyst without deciding: out of their "to do" queue, listed under "skipped"."""
    cluster_id = _cluster_of(_ids_from(request.form.getlist("article_id"), "article id", 1)[0])
    if ctx().store.skip_cluster(current_analyst(), cluster_id):
        flash(f"Skipped #{cluster_id} for now: find it under the status filter \"skipped for now\".", "saved")
    else:
        flash(f"#{cluster_id} was skipped already.", "info")
    # From the article page the analyst goes on to the next article, as after a decision.
    target = request.form.get("next", "")
    return redirect(target) if target and is_local_path(target) else _back_to_queue()


@bp.post("/unskip")
def unskip():
    """Return a parked article to this analyst's "to do" queue."""
    cluster_id = _cluster_of(_ids_from(request.form.getlist("article_id"), "article id", 1)[0])
    if ctx().store.unskip_cluster(current_analyst(), cluster_id):
        flash(f"Unparked #{cluster_id}: it is back in your queue.", "saved")
    else:
        flash(f"#{cluster_id} was not skipped.", "info")
    return _back_to_queue()


@bp.post("/bulk-no")
def bulk_no():
    """Say "no" to every selected article: one decision event each, the path of a single decision."""
    c, analyst = ctx(), current_analyst()
    clusters = list(dict.fromkeys(_cluster_of(i) for i in _ids_from(
        request.form.getlist("article_id"), "article", queries.PAGE_SIZE)))
    predictions = c.store.newest_predictions(clusters)
    events = [record_decision(c.store, cid, analyst, Label(False), codebook_version=c.codebook.version,
                              model_version=predictions[cid].model_version if cid in predictions else None)
              for cid in clusters]
    session["bulk_undo"] = events  # the next queue page offers to undo exactly these events
    shown = ", ".join(f"#{cid}" for cid in clusters)
    flash(f"Saved no for {len(clusters)} article{'s' if len(clusters) != 1 else ''} ({shown}). "
          "Press u to undo them all.", "saved")
    return _back_to_queue()


@bp.post("/bulk-undo")
def bulk_undo():
    """Undo each decision of a bulk "no" that is still the analyst's newest on its article."""
    c, analyst = ctx(), current_analyst()
    events = _ids_from(request.form.getlist("event_id"), "decision", queries.PAGE_SIZE)
    undone = c.store.undo_events(analyst, events, c.codebook.version)
    kept = len(events) - len(undone)
    flash(f"Undone: your no on {len(undone)} article{'s' if len(undone) != 1 else ''}"
          + (f"; {kept} you had changed since were left as they are." if kept else "."), "saved")
    return _back_to_queue()


@bp.get("/export")
def export_queue():
    """Download the articles of the queue's current filter (all pages) as CSV or JSONL, as `radar export` writes them."""
    c, analyst = ctx(), current_analyst()
    fmt = request.args.get("format", "csv")
    if fmt not in EXPORT_FORMATS:
        abort(400, description=f"format must be one of {', '.join(EXPORT_FORMATS)}.")
    filters = queries.QueueFilters.from_args(request.args)
    cluster_ids = c.store.queue_cluster_ids(analyst, filters)
    rows = blind_rows(export.iter_export_rows(c.store, "all", cluster_ids=cluster_ids),
                      c.store.decisions_by_article(cluster_ids), export.REVIEW_COLUMNS)
    # Written to a temporary file, so a large filter does not sit in memory.
    sink = tempfile.TemporaryFile()  # noqa: SIM115  (send_file closes it after the response)
    export.write_export(rows, fmt, sink)
    sink.seek(0)
    name = f"radar-queue-{datetime.now(UTC).date().isoformat()}.{fmt}"
    log.info("%s exported the queue filter %s as %s", analyst or "a read-only visitor", filters.as_args(), fmt)
    return send_file(sink, mimetype=EXPORT_FORMATS[fmt], as_attachment=True, download_name=name)
