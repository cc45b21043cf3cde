"""Mistakes are correctable (issue 21, items 7 and 8): a lead undoes a settle and settles again; u right after
saving brings back the analyst's own decision, note and private mark. The store's event stack, and the keys in
a real headless Chromium."""

from __future__ import annotations

import pytest

from pipeline.review.app import create_app
from tests.conftest import CHROMIUM, press_and_wait
from tests.test_review_app import csrf_of
from tests.test_review_settle import disagree, label, settle
from tests.review_scenario import MODEL


def test_undoing_settles_walks_back_through_them_and_each_is_a_new_event(review_store):
    _settings, store, ids = review_store
    care = ids["care"]
    disagree(store, care)
    first = store.append_settle(care, "lea", label(True, "zorg", "ontwerp"), model_version=MODEL, codebook_version="1")
    second = store.append_settle(care, "lea", label(False), model_version=MODEL, codebook_version="1")
    assert store.latest_settle(care).id == second and store.final_labels()[care].cocreation == 0
    undone = store.append_undo("lea", "1")
    assert undone.id == second  # before: "nothing to undo", settles were no undo targets
    assert store.latest_settle(care).sector == "zorg" and store.final_labels()[care].sector == "zorg"
    assert store.append_undo("lea", "1").id == first
    assert store.latest_settle(care) is None and care not in store.final_labels()
    assert care in {d for d, per in store.decisions_by_article().items() if len(per) == 2}  # disputed again
    assert store.queue_cluster_ids("ann", _disputed()) == [care]
    assert store.append_undo("lea", "1") is None  # the undos themselves are never undone
    history = [(e.action, e.undoes_id) for e in store.review_history([care])[care]]
    assert history == [("decide", None), ("decide", None), ("settle", None), ("settle", None),
                       ("settle", second), ("settle", first)]
    decisions = store.decisions_by_article([care])[care]
    assert {name: e.cocreation for name, e in decisions.items()} == {"ann": 1, "bea": 0}  # analysts untouched


def _disputed():
    from pipeline.review.queries import QueueFilters
    return QueueFilters(status="disputed")


def test_a_settled_article_can_be_settled_again_and_u_takes_back_the_settle(review_store):
    settings, store, ids = review_store
    care = ids["care"]
    disagree(store, care)
    lead = create_app(settings, store, analyst="lea").test_client()
    assert settle(lead, care, cocreation="1", sector="zorg", type="ontwerp").status_code == 302
    again = settle(lead, care, cocreation="0", note="toch niet")
    assert again.status_code == 302 and store.latest_settle(care).cocreation == 0
    page = lead.get(f"/article/{care}/settle").get_data(as_text=True)
    answer = lead.post("/undo", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/article/{care}/settle")
    restored = lead.get(answer.headers["Location"]).get_data(as_text=True)
    assert "Undone: your settle of" in restored and "toch niet" in restored  # the undone settle's note, to correct
    assert store.latest_settle(care).sector == "zorg"
    history = lead.get(f"/article/{care}/history").get_data(as_text=True)
    assert history.count("undo of settle #") == 1 and history.count('class="event-settle"') == 3


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_u_right_after_saving_brings_back_my_decision_note_and_private_mark_in_the_browser(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(f"{base}/article/{ids['park']}")
    page.keyboard.press("4")
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("e")
    page.keyboard.type("mijn eigen notitie")
    page.keyboard.press("Escape")
    page.fill("#lesson", "Begin bij de buurt")
    page.locator("#private").check()
    page.evaluate("document.activeElement.blur()")  # the keys act on the page, not in a field
    press_and_wait(page, "y")
    assert store.decisions_by_article()[ids["park"]]["ann"].private == 1
    press_and_wait(page, "u")
    assert page.url.split("?")[0].endswith(f"/article/{ids['park']}")
    # Before: the model's prefill (overheid, ontwerp), an empty note and no private mark.
    assert page.input_value("#note") == "mijn eigen notitie" and page.is_checked("#private")
    assert page.input_value("#lesson") == "Begin bij de buurt"
    sector = page.locator("input[name=sector]:checked").get_attribute("value")
    kind = page.locator("input[name=type]:checked").get_attribute("value")
    assert (sector, kind) == (store.review_history([ids["park"]])[ids["park"]][0].sector,
                              store.review_history([ids["park"]])[ids["park"]][0].type)
    assert ids["park"] not in store.decisions_by_article()  # undone: a new event, the decision no longer counts
    page.reload()  # shown once: a reload shows the article as it stands
    assert page.input_value("#note") == "" and not page.is_checked("#private")
    assert not page.errors


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed")
def test_a_lead_undoes_a_settle_with_u_and_settles_again_in_the_browser(live_app, watched_page):
    base, store, ids = live_app
    care = ids["care"]
    disagree(store, care)
    page = watched_page()
    page.goto(f"{base}/article/{care}/settle")
    page.keyboard.press("7")
    page.keyboard.press("Shift+Digit5")
    press_and_wait(page, "y")
    settled = store.latest_settle(care)
    assert settled is not None
    press_and_wait(page, "u")  # before: "Nothing to undo."
    assert page.url.endswith(f"/article/{care}/settle") and "Undone: your settle" in page.inner_text(".flashes")
    assert store.latest_settle(care) is None
    assert page.locator("input[name=sector]:checked").get_attribute("value") == settled.sector
    press_and_wait(page, "n")
    assert store.latest_settle(care).cocreation == 0
    page.goto(f"{base}/article/{care}/settle")
    assert "Settle again" in page.inner_text("body")
    page.keyboard.press("7")
    page.keyboard.press("Shift+Digit5")
    press_and_wait(page, "y")
    assert store.latest_settle(care).cocreation == 1
    page.goto(f"{base}/article/{care}/history")
    assert page.locator("tr.event-settle").count() == 4 and "undo of settle" in page.inner_text("table.history")
    assert not page.errors
