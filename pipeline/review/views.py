"""Pages of the review app: queue, article, decision, undo, history, agreement, settle, analyst choice."""

from __future__ import annotations

import dataclasses
import logging
import unicodedata
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from flask import abort, flash, g, redirect, render_template, request, session, url_for

from pipeline import labels
from pipeline.chars import xml_safe
from pipeline.review import agreement, queries
from pipeline.review.analysts import settle_refusal
from pipeline.review.blind import (
    SHOW_OTHERS, is_lead, others_visible, shows_others, visible_clusters, visible_decisions, visible_events,
)
from pipeline.review.blueprint import bp, ctx, current_analyst, is_local_path
from pipeline.review.context import MAX_ROW_ID
from pipeline.review.events import Label, article_history, latest_settle, record_decision, record_settle, undo_last
from pipeline.highlight import (
    KIND_TITLES, MAX_KEY_SENTENCES, best_quote, grouped_evidence, highlight_text, ranked_sentences,
)
from pipeline.review.security import is_token_mode, signed_in_analyst
from pipeline.dates import nl_datetime
from pipeline.records import Prediction, ReviewEvent, date_problems

log = logging.getLogger(__name__)

RESTORED_FORM = "restored_form"  # session key: the values of the decision just undone, shown once in its form
READ_ONLY = ("Read-only: you came in with the shared access token, which does not say who you are, so nothing "
             "was saved. Open the app with your own token (`radar analysts add NAME` prints one).")


@bp.before_request
def require_analyst():
    """Send a visitor without an analyst name to the page that asks for one; refuse writes without one."""
    if is_token_mode():
        if request.method == "POST" and signed_in_analyst() is None:
            abort(403, description=READ_ONLY)
        return None
    if not current_analyst() and request.endpoint not in ("review.choose_analyst", "review.favicon", "static"):
        return redirect(url_for("review.choose_analyst", next=request.full_path))
    return None


bp.add_app_template_filter(nl_datetime, "nl_datetime")  # every screen's times: dd-mm-jjjj uu:mm, Dutch time


@bp.app_context_processor
def common_context() -> dict:
    """Give every template the analyst, the access mode, the codebook and the evidence kind names."""
    read_only = is_token_mode() and "radar_analyst" in g and signed_in_analyst() is None
    return {"analyst": current_analyst(), "token_mode": is_token_mode(), "read_only": read_only,
            "codebook": ctx().codebook, "kind_titles": KIND_TITLES, "visible_decisions": visible_decisions,
            "is_lead": is_lead, "shows_others": shows_others}


@bp.get("/favicon.ico")
def favicon():
    """Answer the browser's icon request without an error in its console."""
    return "", 204


@bp.get("/")
def queue():
    """Show the flagged clusters to review, filtered and ordered, with snippets, progress and the threshold."""
    c, analyst = ctx(), current_analyst()
    filters = queries.QueueFilters.from_args(request.args)
    problems = date_problems(request.args)  # a date that is not one: said on the page, that filter left out
    page = _page_number()
    entries, more = queries.queue_page(c.store, analyst, filters, c.threshold, page)
    ids = [e.canonical_id for e in entries]
    marks = c.store.queue_marks(analyst, ids)
    # Every read is one batch for the page's rows: the reader partial's is_submitted is answered from the
    # marks here, not by the app-wide helper, which asks the store once per row.
    return render_template("queue.html", entries=entries, filters=filters, args=filters.as_args(),
                           decisions=c.store.decisions_by_article(ids), outlets=c.store.queue_outlets(),
                           statuses=queries.STATUSES, orders=queries.ORDERS,
                           progress=queries.progress_counts(c.store, analyst), page=page, more=more,
                           snippets=queries.row_snippets(c.store, entries), threshold=c.threshold,
                           skipped=marks.skipped, is_submitted=marks.is_submitted, problems=problems,
                           typed={k: request.args.get(k, "") for k in ("date_from", "date_to")},
                           bulk_undo=session.pop("bulk_undo", None)), 400 if problems else 200


def _page_number() -> int:
    # A page beyond the 32-bit range or a malformed one shows the first page rather than failing.
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) < 2**31 else 1


@bp.get("/article/<id:article_id>")
def article(article_id: int):
    """Show an article with highlighted evidence, the model's suggestion, the codebook and the form."""
    return render_article(article_id, queries.QueueFilters.from_args(request.args))


def render_article(article_id: int, filters: queries.QueueFilters, form: dict | None = None,
                   error: str = "", status: int = 200):
    """Render the article page, optionally with the analyst's unsaved form values and an error."""
    c, analyst = ctx(), current_analyst()
    art = c.store.article(article_id) or abort(404)
    canonical_id = art.cluster_id
    cluster = c.store.cluster_of(article_id) or abort(404)
    place = queries.queue_place(c.store, analyst, filters, c.threshold, canonical_id)
    prediction = c.store.newest_prediction(article_id) or cluster.prediction
    evidence = prediction.evidence if prediction else []
    per_article = c.store.decisions_by_article([canonical_id]).get(canonical_id, {})
    blind = not others_visible(per_article)  # blind double review: others' labels only after deciding
    return render_template(
        "article.html", article=art, cluster=cluster, canonical_id=canonical_id, prediction=prediction,
        text_html=highlight_text(art.text, evidence), evidence=grouped_evidence(art.text, evidence),
        form=form or restored_form(canonical_id) or _form_defaults(per_article.get(analyst), prediction),
        mine=per_article.get(analyst),
        others=[] if blind else [r for name, r in sorted(per_article.items()) if name != analyst],
        settle=None if blind else latest_settle(c.store, canonical_id), blind=blind,
        suggestion=best_labels(prediction), prev_id=place.prev_id, next_id=place.next_id, args=filters.as_args(),
        error=error, position=place.position, default_quote=best_quote(art.text, evidence),
        key_sentences=key_sentences(art.text, evidence),
    ), status


def key_sentences(text: str, evidence: list[dict]) -> list[str]:
    """Return the key sentences shown on the article, in the quote's ranking: what c cycles through as the quote."""
    # The ranking best_quote takes its default from, so the first c gives the quote already shown.
    return [" ".join(text[s["start"]:s["end"]].split()) for s in ranked_sentences(text, evidence)[:MAX_KEY_SENTENCES]]


def _form_defaults(mine: ReviewEvent | None, prediction: Prediction | None) -> dict:
    # The analyst's own label when there is one, else the model's confident labels only: a stored prediction
    # keeps sector and type only when the model was confident (ScoreRecord.prediction_row), so an unsure
    # suggestion prechecks nothing and cannot anchor the analyst.
    if mine:
        return {"cocreation": mine.cocreation, "sector": mine.sector, "type": mine.type,
                "borderline": bool(mine.borderline), "note": mine.note, "lesson": mine.lesson,
                "private": bool(mine.private), "quote": mine.quote}
    return {"cocreation": None, "sector": prediction.sector if prediction else None,
            "type": prediction.type if prediction else None, "borderline": False, "note": ""}


def best_labels(prediction: Prediction | None) -> dict:
    """Return the model's best sector and type with their probability and whether the model is confident in it."""
    if not prediction:
        return {}
    result = {}
    for aspect, scores, stored in (("sector", prediction.sector_scores or {}, prediction.sector),
                                   ("type", prediction.type_scores or {}, prediction.type)):
        best = max(scores, key=lambda name: scores[name]) if scores else None
        result[aspect] = {"name": best, "probability": scores.get(best, 0.0) if best else None,
                          "confident": stored is not None}
    return result


@bp.post("/article/<id:article_id>/decide")
def decide(article_id: int):
    """Append the analyst's decision for the article's cluster and move on to the next article."""
    c, analyst = ctx(), current_analyst()
    art = c.store.article(article_id)
    if art is None:
        abort(404)  # a decision on a missing article would otherwise fail in the database as a 500
    filters = queries.QueueFilters.from_args(request.args)
    form = _posted_form()
    label, error = _label_from(form)
    if label is None:
        return render_article(article_id, filters, form, error, 400)
    canonical_id = art.cluster_id
    label = dataclasses.replace(label, quote=quote_in((c.store.article(canonical_id) or art).text, label.quote))
    next_id = c.store.queue_place(analyst, filters, c.threshold, canonical_id, counted=False).next_id
    prediction = c.store.newest_prediction(canonical_id)
    record_decision(c.store, canonical_id, analyst, label, codebook_version=c.codebook.version,
                    model_version=prediction.model_version if prediction else None)
    flash(f"Saved #{canonical_id}: {_describe(label)}. Press u to undo.", "saved")
    # Any: url_for types its own keywords (_external: bool), which filter names never are.
    args: dict[str, Any] = filters.as_args()
    if next_id is None or next_id == canonical_id:
        return redirect(url_for("review.queue", **args))
    return redirect(url_for("review.article", article_id=next_id, **args))


def _posted_form() -> dict:
    f = request.form
    return {"cocreation": {"1": 1, "0": 0}.get(f.get("cocreation", "")), "sector": f.get("sector") or None,
            "type": f.get("type") or None, "borderline": f.get("borderline") == "1",
            "note": _clean_note(f.get("note", "")), "lesson": _clean_note(f.get("lesson", ""))[:1000],
            "private": f.get("private") == "1", "quote": " ".join(_clean_note(f.get("quote", "")).split())[:1000]}


def _clean_note(note: str) -> str:
    # Notes are kept verbatim apart from control characters, which have no business in a note, and the
    # noncharacters XML and HTML forbid (U+FFFE would break every page and feed the lesson appears in).
    kept = "".join(ch for ch in note if ch in "\n\t" or unicodedata.category(ch) != "Cc")
    return xml_safe(kept)[:4000].strip()


def _label_from(form: dict) -> tuple[Label | None, str]:
    book = ctx().codebook
    if form["cocreation"] is None:
        return None, "Choose yes (y) or no (n)."
    if form["cocreation"] and form["sector"] not in book.sectors:
        return None, "A yes needs a sector: press 1-9."
    if form["cocreation"] and form["type"] not in book.types:
        return None, "A yes needs a type: press Shift+1-5."
    return Label(bool(form["cocreation"]), form["sector"], form["type"], form["borderline"], form["note"],
                 form.get("lesson", ""), form.get("private", False), form.get("quote", "")), ""


def quote_in(text: str, quote: str) -> str:
    """Return the chosen quote when it is a piece of the article's text (white space aside), else ''.

    The quote goes out under the article's name, so a posted one that the article does not say is dropped.
    """
    return quote if quote and quote in " ".join(text.split()) else ""


def _describe(label: Label) -> str:
    book = ctx().codebook
    text = f"yes · {book.label_of(label.sector)} · {book.label_of(label.type)}" if label.cocreation else "no"
    return text + (" · borderline" if label.borderline else "")


@bp.post("/undo")
def undo():
    """Append an undo of the analyst's newest decision or settle and go back to it, its values in the form."""
    c, analyst = ctx(), current_analyst()
    filters = queries.QueueFilters.from_args(request.args)
    only = _form_article_id()
    undone = undo_last(c.store, analyst, c.codebook.version, c.store.canonical_of(only) if only else None)
    if undone is None:
        flash("Nothing to undo.", "info")
        return redirect(url_for("review.queue", **filters.as_args()))
    if undone.action == "settle":
        flash(f"Undone: your settle of #{undone.article_id}. Settle it again below.", "saved")
        session[RESTORED_FORM] = {"article_id": undone.article_id, "event_id": undone.id}
        return redirect(url_for("review.settle", article_id=undone.article_id))
    flash(f"Undone: your last decision on #{undone.article_id}.", "saved")
    # The form shows the decision just undone (note, lesson, private mark included), as Prodigy's undo does:
    # the analyst corrects it rather than starting again from the model's prefill.
    session[RESTORED_FORM] = {"article_id": undone.article_id, "event_id": undone.id}  # an id: a note outgrows a cookie
    return redirect(url_for("review.article", article_id=undone.article_id, **filters.as_args()))


def restored_form(article_id: int) -> dict | None:
    """Return (once) the form values of the decision or settle the analyst just undid on this article, else None."""
    restored = session.get(RESTORED_FORM)
    if not restored or restored.get("article_id") != article_id:
        return None
    session.pop(RESTORED_FORM)
    event = next((e for e in article_history(ctx().store, article_id) if e.id == restored.get("event_id")), None)
    return _form_defaults(event, None) if event is not None and event.analyst == current_analyst() else None


def _form_article_id() -> int | None:
    # A malformed id must not fall back to "undo the newest decision anywhere": refuse it.
    raw = request.form.get("article_id", "").strip()
    if not raw:
        return None
    if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_ROW_ID:
        abort(400, description="article_id must be a positive whole number. Nothing was undone.")
    return int(raw)


@bp.get("/article/<id:article_id>/history")
def history(article_id: int):
    """Show every review event of the article's cluster, oldest first (others' only once the analyst decided)."""
    c = ctx()
    art = c.store.article(article_id) or abort(404)
    canonical_id = art.cluster_id
    events = article_history(c.store, canonical_id)
    per_article = c.store.decisions_by_article([canonical_id]).get(canonical_id, {})
    shown = visible_events(events, per_article)
    return render_template("history.html", article=art, canonical_id=canonical_id, events=shown,
                           hidden=len(events) - len(shown))


@bp.post("/others")
def toggle_others():
    """Switch a lead's view of others' decisions before deciding on or off (stored in the session)."""
    if not is_lead():
        abort(403, description="Only a lead analyst may see others' decisions before deciding: "
                               "decide the article first, or compare decisions on the agreement page.")
    session[SHOW_OTHERS] = request.form.get("show") == "1"
    target = request.form.get("next", "")
    return redirect(target if is_local_path(target) else url_for("review.queue"))


@bp.get("/agreement")
def agreement_page():
    """Show kappa per analyst pair, each analyst's progress and the disagreements, each linking to its settle screen."""
    c = ctx()
    found, decisions, settles = _disagreement_list()
    # Blind review: the list shows only the disagreements this analyst may see (a lead: all; others: their own).
    shown = visible_clusters(decisions, [d["article_id"] for d in found], settling=True)
    found = [d for d in found if d["article_id"] in shown]
    ids = [d["article_id"] for d in found]
    titles, histories = c.store.article_titles(ids), c.store.review_history(ids)
    refusals = {i: _settle_refusal(i, decisions.get(i, {}), histories.get(i, [])) for i in ids}
    return render_template("agreement.html", pairs=agreement.pair_agreement(decisions),
                           disagreements=found, titles=titles, refusals=refusals, settles=settles,
                           progress=c.store.analyst_progress(datetime.now(UTC).date().isoformat()))


def _disagreement_list() -> tuple[list[dict], dict, dict]:
    # In article id order, settled or not, so a settle never moves a row: the list stays in place.
    c = ctx()
    decisions = c.store.decisions_by_article()
    settles = {e.article_id: e for e in c.store.settle_events()}
    found = sorted(labels.disagreements(decisions, set(settles)), key=lambda d: d["article_id"])
    return found, decisions, settles


def _settle_refusal(canonical_id: int, decided: Mapping[str, ReviewEvent],
                    history: Iterable[ReviewEvent]) -> tuple[int, str] | None:
    return settle_refusal(signed_in_analyst(), is_token_mode(), decided, history, canonical_id)


@bp.route("/article/<id:article_id>/settle", methods=["GET", "POST"])
def settle(article_id: int):
    """GET shows one disputed article with every decision side by side and the settle form; POST settles it.

    One rule for both methods: with two, an id beyond 64 bits would answer 405 instead of 404.
    """
    return render_settle(article_id) if request.method == "GET" else settle_article(article_id)


def render_settle(article_id: int, form: dict | None = None, error: str = "", status: int = 200):
    """Render the settle screen of an article's cluster, optionally with unsaved form values and an error."""
    c = ctx()
    art = c.store.article(article_id) or abort(404)
    canonical_id = art.cluster_id
    found, decisions, settles = _disagreement_list()
    per_article = decisions.get(canonical_id, {})
    if not others_visible(per_article, settling=True):
        message = (f"The decisions on #{canonical_id} stay hidden until you decide it yourself (blind review); "
                   "settling is for a lead.")
        return render_template("error.html", code=403, message=message), 403
    prediction = c.store.newest_prediction(canonical_id)
    head = c.store.article(canonical_id) or art
    prev_id, next_id, position = _neighbours([d["article_id"] for d in found], canonical_id)
    return render_template(
        "settle.html", article=head, canonical_id=canonical_id, decisions=[per_article[n] for n in sorted(per_article)],
        settle=settles.get(canonical_id), quote=best_quote(head.text, prediction.evidence if prediction else []),
        prediction=prediction, suggestion=best_labels(prediction), error=error,
        # Nothing preselected, unless the lead just undid a settle here: then its values, to correct them.
        form=form or restored_form(canonical_id) or {"sector": None, "type": None, "borderline": False, "note": ""},
        refusal=_settle_refusal(canonical_id, per_article, article_history(c.store, canonical_id)),
        prev_id=prev_id, next_id=next_id, position=position, open_count=sum(not d["settled"] for d in found),
    ), status


def _neighbours(ids: list[int], article_id: int) -> tuple[int | None, int | None, str]:
    # The previous and next disagreement in the list's order and the article's place in it.
    if article_id not in ids:
        return None, None, "not in the list"
    at = ids.index(article_id)
    return (ids[at - 1] if at else None, ids[at + 1] if at + 1 < len(ids) else None, f"{at + 1} of {len(ids)}")


def settle_article(article_id: int):
    """Append a settle event with borderline and note (leads only when served to others); go to the next dispute."""
    c, analyst = ctx(), current_analyst()
    art = c.store.article(article_id)
    if art is None:
        abort(404)  # a settle on a missing article would otherwise fail in the database as a 500
    canonical_id = art.cluster_id
    refusal = _settle_refusal(canonical_id, c.store.decisions_by_article([canonical_id]).get(canonical_id, {}),
                              article_history(c.store, canonical_id))
    if refusal:
        log.warning("refused a settle of article %d by %r: %s", canonical_id, analyst, refusal[1])
        return render_template("error.html", code=refusal[0], message="Not settled. " + refusal[1]), refusal[0]
    form = _posted_form()
    label, error = _label_from(form)
    if label is None:
        return render_settle(article_id, form, f"Not settled: {error}", 400)
    prediction = c.store.newest_prediction(canonical_id)
    label = dataclasses.replace(label, quote=quote_in((c.store.article(canonical_id) or art).text, label.quote))
    record_settle(c.store, canonical_id, analyst, label, codebook_version=c.codebook.version,
                  model_version=prediction.model_version if prediction else None)
    flash(f"Settled #{canonical_id}: {_describe(label)}.", "saved")
    next_id = _next_to_settle(canonical_id)
    if next_id is None:
        return redirect(url_for("review.agreement_page"))
    return redirect(url_for("review.settle", article_id=next_id))


def _next_to_settle(after_id: int) -> int | None:
    # The next unsettled disagreement by id that this analyst may settle: a fixed order, never a re-sorted list.
    found, decisions, _settles = _disagreement_list()
    candidates = [d["article_id"] for d in found if not d["settled"] and d["article_id"] > after_id]
    histories = ctx().store.review_history(candidates)
    return next((i for i in candidates
                 if _settle_refusal(i, decisions.get(i, {}), histories.get(i, [])) is None), None)


@bp.route("/analyst", methods=["GET", "POST"])
def choose_analyst():
    """Ask for, or change, the analyst name recorded with this browser's decisions."""
    target = request.values.get("next", "")
    if is_token_mode():
        if request.method == "POST":
            abort(403, description="Your name comes from your access token here and cannot be changed. "
                                   "To review as someone else, open the app with their token.")
        return render_template("analyst.html", next=target)
    if request.method == "POST":
        name = " ".join(request.form.get("analyst", "").split())[:100]
        if name:
            session["analyst"] = name
            return redirect(target if is_local_path(target) else url_for("review.queue"))
        flash("Enter a name.", "error")
    return render_template("analyst.html", next=target)
