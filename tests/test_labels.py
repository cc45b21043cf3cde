"""labels.py, table-driven over review event sequences: agreement, disputes, undo, settle, clusters, provenance."""

from __future__ import annotations

import pytest

from pipeline import labels
from pipeline.records import ReviewEvent

YES_ZORG, YES_WONEN, NO, NONE = (1, "zorg", "ontwerp"), (1, "wonen", "ontwerp"), (0, None, None), (None, None, None)


def ev(event_id: int, analyst: str, action: str, label: tuple, article_id: int = 7) -> ReviewEvent:
    """Build one stored review event with a given label (cocreation, sector, type)."""
    cocreation, sector, type_ = label
    return ReviewEvent(id=event_id, article_id=article_id, analyst=analyst, action=action, cocreation=cocreation,
                       sector=sector, type=type_, borderline=0, note="", previous={}, undoes_id=None,
                       model_version="m1", codebook_version="1", created_at=f"2026-03-0{event_id}T10:00:00+00:00")


def final_of(events: list[ReviewEvent]):
    """Return the final label of article 7 from its whole event sequence, as the store would derive it."""
    return labels.final_label(7, labels.current_decisions(events), labels.newest_settle(events))


# (name, events, expected (source, label, analysts, settled_by) or None when there is no final label)
CASES = [
    ("no events", [], None),
    ("one analyst decides", [ev(1, "ann", "decide", YES_ZORG)], ("agreed", YES_ZORG, "ann", "")),
    ("two agree", [ev(1, "ann", "decide", NO), ev(2, "bea", "decide", NO)], ("agreed", NO, "ann, bea", "")),
    ("two disagree", [ev(1, "ann", "decide", YES_ZORG), ev(2, "bea", "decide", YES_WONEN)], None),
    ("a later change of mind ends the dispute",
     [ev(1, "ann", "decide", YES_ZORG), ev(2, "bea", "decide", NO), ev(3, "bea", "decide", YES_ZORG)],
     ("agreed", YES_ZORG, "ann, bea", "")),
    ("an undo back to not reviewed drops the analyst",
     [ev(1, "ann", "decide", YES_ZORG), ev(2, "bea", "decide", NO), ev(3, "bea", "undo", NONE)],
     ("agreed", YES_ZORG, "ann", "")),
    ("undo of everyone leaves nothing", [ev(1, "ann", "decide", NO), ev(2, "ann", "undo", NONE)], None),
    ("a settle fixes a dispute",
     [ev(1, "ann", "decide", YES_ZORG), ev(2, "bea", "decide", NO), ev(3, "lea", "settle", YES_WONEN)],
     ("settled", YES_WONEN, "ann, bea, lea", "lea")),
    ("the newest settle wins",
     [ev(1, "ann", "decide", NO), ev(2, "bea", "decide", YES_ZORG), ev(3, "lea", "settle", NO),
      ev(4, "max", "settle", YES_ZORG)], ("settled", YES_ZORG, "ann, bea, max", "max")),
    ("a settle is final even after the decisions are undone",
     [ev(1, "ann", "decide", NO), ev(2, "lea", "settle", YES_ZORG), ev(3, "ann", "undo", NONE)],
     ("settled", YES_ZORG, "lea", "lea")),
    ("a settler's own settle is not their decision",
     [ev(1, "ann", "decide", NO), ev(2, "ann", "settle", YES_ZORG)], ("settled", YES_ZORG, "ann", "ann")),
]


@pytest.mark.parametrize("name, events, expected", CASES, ids=[c[0] for c in CASES])
def test_final_label_of_an_event_sequence(name, events, expected):
    final = final_of(events)
    if expected is None:
        assert final is None
        return
    assert (final.label_source, labels.label_key(final), final.analysts, final.settled_by) == expected
    # The time of decision is the newest event that still counts: a current decision or the settle.
    counted = [*labels.current_decisions(events).values(), *filter(None, [labels.newest_settle(events)])]
    assert final.reviewed_at == max(e.created_at for e in counted)


DISPUTES = [
    ("nobody", {}, False),
    ("one analyst", {"ann": ev(1, "ann", "decide", NO)}, False),
    ("same label, other note", {"ann": ev(1, "ann", "decide", NO), "bea": ev(2, "bea", "decide", NO)}, False),
    ("yes against no", {"ann": ev(1, "ann", "decide", NO), "bea": ev(2, "bea", "decide", YES_ZORG)}, True),
    ("other sector", {"ann": ev(1, "ann", "decide", YES_ZORG), "bea": ev(2, "bea", "decide", YES_WONEN)}, True),
]


@pytest.mark.parametrize("name, decisions, disputed", DISPUTES, ids=[d[0] for d in DISPUTES])
def test_is_disputed(name, decisions, disputed):
    assert labels.is_disputed(decisions) is disputed


def test_final_labels_over_many_articles_match_the_one_article_rule():
    events = [ev(1, "ann", "decide", NO, 1), ev(2, "bea", "decide", YES_ZORG, 1), ev(3, "ann", "decide", NO, 2),
              ev(4, "lea", "settle", YES_ZORG, 3)]
    current = [e for a in (1, 2, 3) for e in labels.current_decisions([x for x in events if x.article_id == a]).values()]
    final = labels.final_labels(current, [e for e in events if e.action == "settle"])
    assert sorted(final) == [2, 3]  # article 1 is disputed and not settled
    assert final[2].label_source == "agreed" and final[3].label_source == "settled"


@pytest.mark.parametrize("article_id, canonical_id, cluster", [(5, None, 5), (9, 5, 5), (5, 5, 5)])
def test_cluster_id_of(article_id, canonical_id, cluster):
    assert labels.cluster_id_of(article_id, canonical_id) == cluster


def test_a_cluster_label_reaches_its_copies_and_says_so():
    final = {5: labels.final_label(5, {"ann": ev(1, "ann", "decide", YES_ZORG, 5)}, None)}
    head_label, head_from_cluster = labels.label_for_member(final, 5, None)
    copy_label, copy_from_cluster = labels.label_for_member(final, 9, 5)
    assert head_label is copy_label is final[5]
    assert (head_from_cluster, copy_from_cluster) == (False, True)
    assert labels.label_for_member(final, 11, None) == (None, False)


@pytest.mark.parametrize("flags, flagged", [([], False), ([False, False], False), ([False, True], True)])
def test_a_cluster_is_flagged_when_any_copy_is(flags, flagged):
    assert labels.cluster_flagged(flags) is flagged


def test_disagreements_list_unsettled_first():
    decisions = {1: {"ann": ev(1, "ann", "decide", NO, 1), "bea": ev(2, "bea", "decide", YES_ZORG, 1)},
                 2: {"ann": ev(3, "ann", "decide", NO, 2), "bea": ev(4, "bea", "decide", YES_ZORG, 2)},
                 3: {"ann": ev(5, "ann", "decide", NO, 3), "bea": ev(6, "bea", "decide", NO, 3)}}
    found = labels.disagreements(decisions, settled={1})
    assert [(d["article_id"], d["settled"]) for d in found] == [(2, False), (1, True)]


@pytest.mark.parametrize("first, second, expected", [
    ([], [], None), ([1, 1, 1], [1, 1, 1], None), ([1, 0, 1, 0], [1, 0, 1, 0], 1.0),
    ([1, 1, 0, 0, 1], [1, 0, 0, 1, 1], pytest.approx(1 / 6)),
])
def test_kappa(first, second, expected):
    assert labels.kappa(first, second) == expected


def test_one_analysts_private_mark_keeps_an_agreed_label_private():
    from dataclasses import replace

    marked = replace(ev(1, "ann", "decide", YES_ZORG), private=1)
    label = final_of([marked, ev(2, "bea", "decide", YES_ZORG)])  # bea's newer decision is the deciding event
    assert label.event.analyst == "bea" and label.private is True
    assert final_of([ev(1, "ann", "decide", YES_ZORG), ev(2, "bea", "decide", YES_ZORG)]).private is False


# -- issue 21: what analysts wrote is kept, and one analyst's yes is not final in a team -----------------------
def written(event_id: int, analyst: str, action: str, label: tuple, note: str = "", lesson: str = "") -> ReviewEvent:
    """Build a review event that carries a note and a lesson."""
    return ReviewEvent(**{**ev(event_id, analyst, action, label).__dict__, "note": note, "lesson": lesson})


def test_a_lesson_and_a_note_written_first_survive_a_second_analyst_who_agrees_without_one():
    events = [written(1, "ann", "decide", YES_ZORG, note="zie alinea 3", lesson="Begin klein, met de buurt"),
              written(2, "bea", "decide", YES_ZORG)]
    final = final_of(events)
    assert final.lesson == "Begin klein, met de buurt"  # before: bea's empty lesson, the newest decision's
    assert final.note == "ann: zie alinea 3"
    both = [*events[:1], written(2, "bea", "decide", YES_ZORG, note="eens", lesson="Later geschreven")]
    assert final_of(both).lesson == "Begin klein, met de buurt" and final_of(both).note == "ann: zie alinea 3 | bea: eens"


def test_the_settling_leads_lesson_wins_and_every_note_is_kept_with_its_author():
    events = [written(1, "ann", "decide", YES_ZORG, note="zorg", lesson="Les van ann"),
              written(2, "bea", "decide", YES_WONEN, note="wonen"),
              written(3, "lea", "settle", YES_WONEN, note="het is wonen", lesson="Les van de lead")]
    final = final_of(events)
    assert final.lesson == "Les van de lead" and final.note == "ann: zorg | bea: wonen | lea: het is wonen"
    quiet_lead = [*events[:2], written(3, "lea", "settle", YES_WONEN)]
    assert final_of(quiet_lead).lesson == "Les van ann"  # a settle without a lesson keeps the analysts' first one


def test_required_reviews_is_two_once_a_team_is_registered_unless_set():
    assert [labels.required_reviews(None, n) for n in (0, 1, 2, 5)] == [1, 1, 2, 2]
    assert labels.required_reviews(1, 5) == 1 and labels.required_reviews(3, 0) == 3


def test_one_analysts_yes_is_final_only_when_one_review_is_required_and_a_settle_is_final_at_once():
    one = [ev(1, "ann", "decide", YES_ZORG)]
    decisions = labels.current_decisions(one)
    assert labels.final_label(7, decisions, None, min_reviews=2) is None
    assert labels.final_label(7, decisions, None, min_reviews=1).cocreation == 1
    two = [*one, ev(2, "bea", "decide", YES_ZORG)]
    assert labels.final_label(7, labels.current_decisions(two), None, min_reviews=2).analysts == "ann, bea"
    settled = [*one, ev(2, "lea", "settle", YES_WONEN)]
    final = labels.final_label(7, labels.current_decisions(settled), labels.newest_settle(settled), min_reviews=2)
    assert final.label_source == "settled" and final.sector == "wonen"
    assert labels.final_labels(one, [], min_reviews=2) == {}


def test_a_settle_undone_to_nothing_leaves_the_dispute_open_and_one_undone_to_an_earlier_settle_restores_it():
    dispute = [ev(1, "ann", "decide", YES_ZORG), ev(2, "bea", "decide", NO)]
    undone = [*dispute, ev(3, "lea", "settle", YES_WONEN), ev(4, "lea", "settle", NONE)]
    assert labels.newest_settle(undone) is None and final_of(undone) is None
    back = [*dispute, ev(3, "lea", "settle", YES_WONEN), ev(4, "lea", "settle", YES_ZORG),
            ev(5, "lea", "settle", YES_WONEN)]
    assert labels.newest_settle(back).id == 5 and final_of(back).sector == "wonen"
