"""The review scenario every review test starts from: five articles (one a near-duplicate), their predictions."""

from __future__ import annotations

from pipeline.records import Article
from pipeline.store import Store

MODEL = "test-model-1"
LONG_TOKEN = "shared-token-of-the-team-2026"
XSS_TITLE = '<script>window.__xss = "title"</script>Kwaadaardige <b>titel</b>'
XSS_TEXT = ('Bewoners ontwerpen samen met de gemeente een speeltuin. <img src=x onerror="window.__xss = \'img\'">\n'
            'Lees meer: <a href="javascript:window.__xss = \'link\'">klik hier</a> of '
            '<script>window.__xss = "text"</script> en <svg onload="window.__xss = \'svg\'"></svg>.')
PARK_TEXT = ("Bewoners ontwerpen samen met de gemeente Polderveen een nieuw park aan de rand van de wijk.\n"
             "Op drie avonden tekenden zij mee aan paden, speelplekken en een moestuin. "
             "De wethouder noemt het resultaat een plan van de buurt zelf.\n"
             "Ook de waterschapper van het Hoogheemraadschap schoof aan. Bezwaar maken kon niet meer.")
CARE_TEXT = ("Patiënten met reuma denken mee over het nieuwe zorgpad van het ziekenhuis.\n"
             "In vier sessies bepaalden zij mee welke stappen er komen. Het ziekenhuis past het zorgpad daarop aan.")
PLAIN_TEXT = "De Dijkweg is vijf weken dicht voor groot onderhoud. Omleidingen staan aangegeven."


def evidence(text: str, pieces: list[tuple[str, str, float]]) -> list[dict]:
    """Build evidence spans with real offsets into text from (substring, label, weight)."""
    spans = []
    for piece, label, weight in pieces:
        start = text.index(piece)
        spans.append({"text": piece, "start": start, "end": start + len(piece), "label": label, "weight": weight})
    return spans


def prediction(article_id: int, score: float, sector: str, type_: str, spans: list[dict]) -> dict:
    """Build a prediction row as the scoring stage stores it."""
    sectors = {s: 0.01 for s in ("overheid", "zorg", "onderwijs", "welzijn", "wonen", "goede_doelen",
                                 "cultuur", "overig", "bedrijf")}
    types = {t: 0.02 for t in ("beleid", "ontwerp", "uitvoering", "zelfbouw", "onderzoek")}
    sectors[sector], types[type_] = 0.9, 0.8
    return {"article_id": article_id, "model_version": MODEL, "codebook_version": "1", "cocreation_score": score,
            "rule_score": score, "flagged": score >= 0.3, "sector": sector, "sector_scores": sectors,
            "type": type_, "type_scores": types, "evidence": spans}


def add_article(store: Store, key: str, title: str, text: str, outlet: str, date: str, *,
                url: str | None = None, duplicate_of: int | None = None) -> int:
    """Store one article (optionally as a near-duplicate of another) and return its id."""
    art = Article(url=url or f"https://example.org/{key}", canonical_url=f"https://example.org/{key}",
                  title=title, text=text, outlet=outlet, date=date, language="nl", method="test",
                  source="test", external_id=key, content_hash=f"hash-{key}")
    return store.save_article(art, run_id=None, duplicate=(duplicate_of, "near", 0.8) if duplicate_of else None)


def fill_store(store: Store) -> dict[str, int]:
    """Fill a migrated store with a small review scenario; return the article ids by name."""
    ids = {
        "park": add_article(store, "park", "Bewoners ontwerpen nieuw park mee", PARK_TEXT, "Dagblad De Polder",
                            "2026-03-10T09:00:00+01:00"),
        "care": add_article(store, "care", "Patiënten denken mee over zorgpad", CARE_TEXT, "Zorg Vandaag",
                            "2026-03-12T09:00:00+01:00"),
        "xss": add_article(store, "xss", XSS_TITLE, XSS_TEXT, "Onbekend <i>blad</i>", "2026-03-01T09:00:00+01:00",
                           url="javascript:window.__xss = 'url'"),
        "road": add_article(store, "road", "Dijkweg vijf weken dicht", PLAIN_TEXT, "Dagblad De Polder",
                            "2026-03-11T09:00:00+01:00"),
    }
    ids["park_copy"] = add_article(store, "park-copy", "Polderveen krijgt park van bewoners", PARK_TEXT,
                                   "Rivierstad Courant", "2026-03-10T11:00:00+01:00", duplicate_of=ids["park"])
    park_spans = evidence(PARK_TEXT, [
        ("Bewoners ontwerpen samen met de gemeente Polderveen een nieuw park aan de rand van de wijk.",
         "sentence:cocreation", 0.9),
        ("Bewoners", "participant:bewoners", 1.0), ("ontwerpen samen met", "construction:meeontwerpen", 1.0),
        ("gemeente", "organisation:overheid", 1.0), ("Bezwaar maken", "negative:procedure", 0.5)])
    care_spans = evidence(CARE_TEXT, [("Patiënten", "participant:patienten", 1.0),
                                      ("denken mee", "construction:meedenken", 1.0),
                                      ("ziekenhuis", "organisation:zorg", 1.0)])
    xss_spans = evidence(XSS_TEXT, [("Bewoners ontwerpen samen met de gemeente een speeltuin.", "sentence:cocreation", 0.8),
                                    ('<script>window.__xss = "text"</script>', "construction:meeontwerpen", 1.0),
                                    ('onerror="window', "participant:bewoners", 1.0)])
    store.save_predictions([
        prediction(ids["park"], 0.91, "overheid", "ontwerp", park_spans),
        prediction(ids["park_copy"], 0.88, "overheid", "ontwerp", park_spans),
        prediction(ids["care"], 0.62, "zorg", "ontwerp", care_spans),
        prediction(ids["xss"], 0.35, "overheid", "ontwerp", xss_spans),
        prediction(ids["road"], 0.02, "overheid", "beleid", []),
    ], run_id=None)
    return ids
