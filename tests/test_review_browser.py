"""The review app in a real headless Chromium (Debian's), served for real by waitress on 127.0.0.1."""

from __future__ import annotations


import pytest
from sqlalchemy import select

from pipeline.review.analysts import add_analyst
from pipeline.review.app import create_app, make_server
from pipeline.store import Store, reviews
from tests.conftest import CHROMIUM, SCREENSHOT_DIR, press_and_wait, serving, type_analyst_name  # the browser, live_app and watched_page fixtures live in conftest.py
from tests.test_review_app import fill_store

SCREENSHOT = SCREENSHOT_DIR / "review-screen.png"  # docs/review-screen.png only with `make screenshots`

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(),
                                reason="Debian's chromium is not installed (make test and .ci/run install it)")


def current(store: Store, article_id: int, analyst: str) -> dict | None:
    """Return the analyst's current decision on an article as stored, or None."""
    return next((r for r in store.current_reviews() if r.article_id == article_id and r.analyst == analyst), None)




def test_keyboard_review_flow_with_two_analysts(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(base + "/")
    assert page.locator("tr.queue-row").count() == 3
    press_and_wait(page, "Enter")  # the first row is selected on load
    assert page.url.endswith(f"/article/{ids['park']}")
    assert page.locator("#article-text mark.ev-construction").first.is_visible()
    assert page.locator("#article-text mark.ev-participant").count() >= 1
    assert page.locator("#article-text mark.ev-organisation").first.is_visible()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    # ann: change sector and type with number keys, mark borderline, write a note, save with y.
    page.keyboard.press("?")
    assert page.locator("dialog#help").is_visible()
    page.keyboard.press("Escape")
    page.keyboard.press("4")
    page.keyboard.press("Shift+Digit3")
    page.keyboard.press("b")
    page.keyboard.press("e")
    page.keyboard.type("gemeente faciliteert, bewoners trekken")
    page.keyboard.press("Escape")
    timings = [press_and_wait(page, "y")]
    assert page.url.endswith(f"/article/{ids['care']}") and "Saved #" in page.inner_text(".flashes")
    saved = current(store, ids["park"], "ann")
    assert (saved.cocreation, saved.sector, saved.type, saved.borderline, saved.note) == \
        (1, "welzijn", "uitvoering", 1, "gemeente faciliteert, bewoners trekken")
    timings.append(press_and_wait(page, "n"))
    assert page.url.endswith(f"/article/{ids['xss']}")
    timings.append(press_and_wait(page, "n"))
    assert current(store, ids["xss"], "ann").cocreation == 0

    # Reload keeps the decision; k goes back through the queue.
    page.goto(f"{base}/article/{ids['park']}?status=all")
    page.reload()
    assert page.locator("input[name=sector][value=welzijn]").is_checked()
    assert page.locator("#borderline").is_checked() and "Current: yes" in page.inner_text(".decision-panel")

    # Undo is a new event and brings ann back to the article she decided last.
    press_and_wait(page, "u")
    assert page.url.split("?")[0].endswith(f"/article/{ids['xss']}") and current(store, ids["xss"], "ann") is None
    timings.append(press_and_wait(page, "n"))
    with store.engine.connect() as conn:
        actions = conn.execute(select(reviews.c.action).order_by(reviews.c.id)).scalars().all()
    assert actions == ["decide", "decide", "decide", "undo", "decide"]

    # bea, in her own browser, accepts the suggestions for park and care and says no to xss.
    second = watched_page()
    second.goto(base + "/analyst")
    type_analyst_name(second, "bea")
    press_and_wait(second, "Enter")
    assert "bea" in second.inner_text(".who") and second.locator("tr.queue-row").count() == 3
    press_and_wait(second, "Enter")
    for key in ("y", "y", "n"):
        timings.append(press_and_wait(second, key))
    assert current(store, ids["care"], "bea").sector == "zorg"

    # ann yes/no/no against bea yes/yes/no: kappa (2/3 - 4/9) / (5/9) = 0.40.
    second.goto(base + "/agreement")
    assert second.inner_text("#kappa-table td.kappa-decision").startswith("0.40")
    assert "Patiënten denken mee over zorgpad" in second.inner_text("main")
    assert not page.errors and not second.errors and not page.dialogs
    mean = sum(timings) / len(timings)
    print(f"\nkeyboard decisions: {len(timings)}, mean {mean * 1000:.0f} ms, max {max(timings) * 1000:.0f} ms per decision")
    assert mean < 2.0


def test_hostile_article_runs_no_script(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(f"{base}/article/{ids['xss']}")
    assert "<script>" in page.inner_text("#article-title")  # shown as text
    assert "onerror=" in page.inner_text("#article-text")
    page.keyboard.press("e")
    page.keyboard.type('<script>window.__xss="note"</script><img src=x onerror="window.__xss=1">')
    page.keyboard.press("Escape")
    press_and_wait(page, "n")
    for path in (f"/article/{ids['xss']}", f"/article/{ids['xss']}/history", "/?status=all"):
        page.goto(base + path)
        assert page.locator('a[href^="javascript:"]').count() == 0
        assert page.locator("#article-text img, #article-text script, main svg").count() == 0
        assert page.evaluate("window.__xss") is None
    assert "<script>" in current(store, ids["xss"], "ann").note
    assert not page.dialogs and not page.errors


def test_post_without_csrf_token_is_refused_in_the_browser(live_app, watched_page):
    base, store, ids = live_app
    page = watched_page()
    page.goto(f"{base}/article/{ids['park']}")
    status = page.evaluate("""async (url) => {
        const body = new URLSearchParams({cocreation: "1", sector: "zorg", type: "beleid"});
        const response = await fetch(url, {method: "POST", body});
        return response.status;
    }""", f"{base}/article/{ids['park']}/decide")
    assert status == 400
    assert store.current_reviews() == []


def test_served_to_others_the_token_names_the_analyst_and_only_a_neutral_lead_settles(make_settings, watched_page):
    settings = make_settings(analyst="ann")
    store = Store(settings.effective_database_url)
    store.migrate()
    ids = fill_store(store)
    tokens = {name: add_analyst(store, name, lead=name == "lea") for name in ("ann", "bob", "lea")}
    server = make_server(create_app(settings, store, host="127.0.0.1"), "127.0.0.1", 0)
    with serving(server) as base:
        pages = {}
        for name, key in (("ann", "y"), ("bob", "n")):
            pages[name] = page = watched_page()
            page.goto(f"{base}/article/{ids['care']}?token={tokens[name]}")
            assert "token=" not in page.url and name in page.inner_text(".who")  # logged in, token gone
            assert page.locator("a", has_text="change").count() == 0
            press_and_wait(page, key)
        pages["bob"].goto(base + "/agreement")
        assert pages["bob"].locator("form.settle").count() == 0 and "Only a lead" in pages["bob"].inner_text("main")
        lead = watched_page()
        lead.goto(f"{base}/agreement?token={tokens['lea']}")
        with lead.expect_navigation():  # the list links to one settle screen per article (issue 11)
            lead.locator(f"#disagreement-{ids['care']} a.settle-link").click()
        form = lead.locator("form.settle")
        form.locator("input[name=sector][value=zorg]").check()
        form.locator("input[name=type][value=ontwerp]").check()
        with lead.expect_navigation():
            form.locator("button#yes").click()
        assert "Settled #" in lead.inner_text(".flashes")
        final = store.final_labels()[ids["care"]]
        assert (final.action, final.analyst, final.sector) == ("settle", "lea", "zorg")
        assert not any(p.errors for p in (*pages.values(), lead))
    store.close()
