"""The digest: accepted co-creation examples in Dutch, as Markdown, plain text, e-mail-safe HTML or an e-mail."""

from __future__ import annotations

import email.policy
import re
import textwrap
from dataclasses import dataclass
from datetime import date, datetime, UTC
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from pipeline import labels
from pipeline.chars import one_line, xml_safe
from pipeline.codebook import Codebook
from pipeline.dates import date_parts
from pipeline.errors import ConfigError
from pipeline.research.export import export_rows, parse_since
from pipeline.highlight import safe_href
from pipeline.store import Store

FORMATS = ("md", "html", "text", "eml")
TITLE = "Cocreatie in het nieuws"
MONTHS = ("januari", "februari", "maart", "april", "mei", "juni", "juli", "augustus", "september", "oktober",
          "november", "december")

# A wire-copy dateline opens many Dutch news texts ("DEN HAAG (ANP) - ", "UTRECHT - ", "'S-HERTOGENBOSCH
# (NPB) – "): capitals only, an optional agency in brackets, a dash. A normal sentence never starts so.
CAPS = r"[A-ZÀ-Þ'’][A-ZÀ-Þ'’.\-]"
DATELINE = re.compile(rf"^(?:{CAPS}*\s+){{0,3}}{CAPS}+\s*(?:\([^()]{{1,30}}\)\s*)?[-–—]\s+")
# A backslash before ASCII punctuation is a Markdown escape (`\(NPB\)`); readers should never see one.
MARKDOWN_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


@dataclass(frozen=True)
class Window:
    """Which stories a digest covers: published on or after `published`, decided on or after `decided`."""

    published: str | None = None
    decided: str | None = None

    def describe(self) -> str:
        """Say the window in Dutch ('gepubliceerd sinds 1 maart 2026'), or '' for all time."""
        parts = [f"{verb} sinds {dutch_date(day)}" for verb, day in
                 (("gepubliceerd", self.published), ("beoordeeld", self.decided)) if day]
        return " en ".join(parts)


def parse_window(since: str | None, decided_since: str | None, today: date | None = None) -> Window:
    """Read --since (publication, 7 days by default) and --decided-since (when the label became final)."""
    # The publication default applies only when the reader asked for nothing else: --decided-since alone
    # keeps the old meaning of the digest ("decided this week") without a hidden publication limit.
    published = since if since is not None else (None if decided_since else "7d")
    try:
        decided = parse_since(decided_since, today)
    except ConfigError:
        raise ConfigError(f"--decided-since {decided_since!r}: give a date (2026-03-01) or a span such as 7d "
                          "or 2w") from None
    return Window(parse_since(published, today), decided)


def dutch_date(iso: str | None) -> str:
    """Return an ISO date as Dutch readers write it ('10 maart 2026', 'maart 2026', '2026'); '' when there is none."""
    parts = date_parts(iso)  # a story dated by year or month only is shown so, never on a made-up day
    if parts is None:
        return ""
    year, month, day = parts
    if not month:  # a bare year (date_parts gives a day only with its month)
        return str(year)
    if day is not None:
        return f"{day} {MONTHS[month - 1]} {year}"
    return f"{MONTHS[month - 1]} {year}"


def clean_quote(text: str | None) -> str:
    """Return an evidence sentence as a reader should see it: one line, no dateline, no Markdown escapes."""
    text = MARKDOWN_ESCAPE.sub(r"\1", " ".join((text or "").split()))
    return DATELINE.sub("", text, count=1)


def digest_groups(store: Store, codebook: Codebook, window: Window = Window()) -> dict[str, list[dict]]:
    """Return the accepted examples in the window, one per story, grouped by sector in codebook order.

    Only what may leave the tool (labels.may_leave_the_tool): a newsletter is read outside the team, so an
    article an analyst marked private is left out as `radar publish` leaves it out.
    """
    # Publication dates filter the same way as `radar export --since` (the same function).
    reviewed = export_rows(store, "reviewed", window.published)
    final = store.final_labels()
    copies: dict[int, list[str]] = {}
    for row in reviewed:
        if not row["is_canonical"] and row["outlet"]:
            copies.setdefault(row["cluster_id"], []).append(row["outlet"])
    rows = [r for r in reviewed if r["is_canonical"] and labels.may_leave_the_tool(final.get(r["article_id"]))
            and (not window.decided or (r["reviewed_at"] or "")[:10] >= window.decided)]
    groups: dict[str, list[dict]] = {sector: [] for sector in codebook.sectors}
    for row in sorted(rows, key=lambda r: (r["published"] or "", r["article_id"]), reverse=True):
        also_in = sorted(set(copies.get(row["cluster_id"], [])) - {row["outlet"]})
        groups.setdefault(row["sector"] or "overig", []).append(_item(row, also_in, codebook))
    return {sector: items for sector, items in groups.items() if items}


READERS = "Ingezonden door lezers"


def split_readers(store: Store, groups: dict[str, list[dict]]) -> tuple[dict[str, list[dict]], list[dict]]:
    """Move the examples readers submitted out of their sector into a list of their own (the readers' section)."""
    readers: list[dict] = []
    rest: dict[str, list[dict]] = {}
    for sector, items in groups.items():
        for item in items:
            (readers if store.is_submitted_cluster(item["article_id"]) else rest.setdefault(sector, [])).append(item)
    return rest, readers


def _item(row: dict, also_in: list[str], codebook: Codebook) -> dict:
    # xml_safe: text stored before the store removed forbidden characters must not break the HTML or e-mail.
    return {"article_id": row["article_id"],
            "title": one_line(row["title"]) or "(zonder titel)",
            "href": safe_href(row["url"]), "outlet": one_line(row["outlet"]), "date": dutch_date(row["published"]),
            "sector": row["sector"], "type": codebook.label_of(row["type"]), "lead": codebook.lead_of(row["type"]),
            "quote": xml_safe(clean_quote(row["evidence_quote"])), "also_in": [one_line(o) for o in also_in]}


def render_digest(groups: dict[str, list[dict]], fmt: str, codebook: Codebook, window: Window = Window(),
                  readers: list[dict] | None = None) -> str:
    """Render the digest as Markdown, plain text, e-mail-safe HTML or an e-mail (HTML with a text alternative).

    `readers` (from split_readers) become the last section, "Ingezonden door lezers".
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")
    counted = {**groups, READERS: readers} if readers else groups
    view = {"title": TITLE, "intro": _intro(counted, window), "window": window.describe(),
            "sections": [(codebook.label_of(sector), items) for sector, items in groups.items()]
            + ([(READERS, readers)] if readers else [])}
    if fmt == "eml":
        return _email(view, counted)
    return {"md": _markdown, "text": _plain_text, "html": _html}[fmt](view)


def _intro(groups: dict[str, list[dict]], window: Window) -> str:
    count = sum(len(items) for items in groups.values())
    period = f" {window.describe()}" if window.describe() else ""
    if not count:
        return f"Geen nieuwe voorbeelden{period}."
    stories = "verhaal" if count == 1 else "verhalen"
    return (f"{count} {stories}{period} over cocreatie bij maatschappelijke organisaties: mensen denken, "
            "beslissen, ontwerpen of bouwen mee. Door onze analisten gelezen en beoordeeld.")


def _md_escape(text: str) -> str:
    # Titles and quotes are untrusted: neutralise only what Markdown would turn into links, emphasis, code or
    # HTML, so that ordinary punctuation such as (NPB) stays as it is.
    text = re.sub(r"([\\`*_\[\]<>~])", r"\\\1", text)
    return "\\" + text if text[:1] in ("#", "-", "+", ">") else text


def _markdown(view: dict) -> str:
    lines = [f"# {view['title']}", "", view["intro"], ""]
    for sector, items in view["sections"]:
        lines += [f"## {sector}", ""]
        for item in items:
            title = _md_escape(item["title"])
            head = f"[{title}]({quote(item['href'], safe=':/?&=#%+,;@~')})" if item["href"] else title
            lines += [f"### {head}", "", _md_escape(_source_line(item)), ""]
            lines += [f"**{item['type']}.** {_md_escape(item['lead'])}".rstrip(), ""]
            if item["quote"]:
                lines += [f"> {_md_escape(item['quote'])}", ""]
    return "\n".join(lines)


def _source_line(item: dict) -> str:
    also = f" · ook in {', '.join(item['also_in'])}" if item["also_in"] else ""
    return ", ".join(part for part in (item["outlet"], item["date"]) if part) + also


def _plain_text(view: dict) -> str:
    wrap = textwrap.TextWrapper(width=72, break_long_words=False, break_on_hyphens=False)
    lines = [view["title"].upper(), "", wrap.fill(view["intro"]), ""]
    for sector, items in view["sections"]:
        lines += [sector.upper(), "=" * len(sector), ""]
        for item in items:
            lines += [wrap.fill(item["title"]), wrap.fill(_source_line(item)),
                      wrap.fill(f"{item['type']}. {item['lead']}".strip())]
            if item["quote"]:
                lines.append(textwrap.fill(f"“{item['quote']}”", width=72, initial_indent="  ",
                                           subsequent_indent="  "))
            lines += ([item["href"]] if item["href"] else []) + [""]
    return "\n".join(lines)


# E-mail clients (Gmail, Outlook) drop <style> blocks, classes and external sheets: every style is inline,
# the layout is a 600-pixel table, fonts and colours are ones every client has.
FONT = "font-family:Arial,Helvetica,sans-serif;"
DIGEST_HTML = """<!doctype html>
<html lang="nl"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{{ title }}</title></head>
<body style="margin:0;padding:0;background-color:#f2f4f5;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f2f4f5;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" style="width:100%;max-width:600px;background-color:#ffffff;border:1px solid #d9dee1;">
<tr><td style="background-color:#0b5563;padding:24px 28px;{{ font }}">
<h1 style="margin:0;font-size:26px;line-height:32px;color:#ffffff;{{ font }}">{{ title }}</h1>
{% if window %}<p style="margin:6px 0 0 0;font-size:14px;line-height:20px;color:#cfe6e8;{{ font }}">Voorbeelden {{ window }}</p>{% endif %}
</td></tr>
<tr><td style="padding:20px 28px 4px 28px;{{ font }}"><p style="margin:0;font-size:15px;line-height:22px;color:#222222;{{ font }}">{{ intro }}</p></td></tr>
{% for sector, items in sections %}
<tr><td style="padding:20px 28px 0 28px;{{ font }}"><h2 style="margin:0;padding-bottom:6px;border-bottom:2px solid #0b5563;font-size:19px;line-height:24px;color:#0b5563;{{ font }}">{{ sector }}</h2></td></tr>
{% for item in items %}
<tr><td style="padding:14px 28px 6px 28px;{{ font }}">
<h3 style="margin:0 0 4px 0;font-size:17px;line-height:23px;{{ font }}">{% if item.href %}<a href="{{ item.href }}" style="color:#0b5563;text-decoration:underline;{{ font }}">{{ item.title }}</a>{% else %}<span style="color:#222222;">{{ item.title }}</span>{% endif %}</h3>
<p style="margin:0 0 8px 0;font-size:13px;line-height:18px;color:#5f6b70;{{ font }}">{{ item.outlet }}{% if item.date %}, {{ item.date }}{% endif %}{% if item.also_in %} · ook in {{ item.also_in|join(', ') }}{% endif %}</p>
<p style="margin:0 0 8px 0;font-size:14px;line-height:20px;color:#222222;{{ font }}"><span style="display:inline-block;padding:1px 8px;background-color:#e3f0f1;color:#0b5563;font-weight:bold;font-size:12px;line-height:18px;{{ font }}">{{ item.type }}</span> {{ item.lead }}</p>
{% if item.quote %}<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td style="border-left:4px solid #0b5563;padding:4px 0 4px 12px;font-size:15px;line-height:22px;font-style:italic;color:#333333;{{ font }}">“{{ item.quote }}”</td></tr></table>{% endif %}
</td></tr>
{% endfor %}{% endfor %}
<tr><td style="padding:20px 28px 24px 28px;{{ font }}"><p style="margin:0;font-size:12px;line-height:18px;color:#5f6b70;{{ font }}">Samengesteld met Cocreatie Radar: nieuwsberichten die de radar vond en analisten als cocreatie beoordeelden.</p></td></tr>
</table>
</td></tr></table>
</body></html>
"""


def _html(view: dict) -> str:
    from jinja2 import Environment

    # Autoescaping: titles, outlets and quotes come from the web.
    return Environment(autoescape=True).from_string(DIGEST_HTML).render(**view, font=FONT)


def _email(view: dict, groups: dict[str, list[dict]]) -> str:
    message = EmailMessage()
    count = sum(len(items) for items in groups.values())
    period = f", {view['window']}" if view["window"] else ""
    message["Subject"] = f"{TITLE}: {count} {'voorbeeld' if count == 1 else 'voorbeelden'}{period}"
    message["Date"] = format_datetime(datetime.now(UTC))
    # Outlook opens a message marked unsent as a draft to address and send; other clients ignore the header.
    message["X-Unsent"] = "1"
    message.set_content(_plain_text(view))
    message.add_alternative(_html(view), subtype="html")
    # Headers up to RFC 5322's 998 characters stay on one line: Python's folding at 78 moves a subject that
    # just does not fit whole onto a continuation line, which readers then show with a leading space.
    return message.as_string(policy=email.policy.default.clone(max_line_length=998))
