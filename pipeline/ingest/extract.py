"""Main text and metadata with trafilatura, byte decoding, language check and canonical URLs.

The page is parsed once and that tree is shared by trafilatura, its metadata functions, the lead
and boilerplate repairs (pipeline/ingest/repairs.py) and the date search, which runs once (or not at all
when the date is already known).
"""

from __future__ import annotations

import codecs
import copy
import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterator
from datetime import datetime
from functools import lru_cache
from typing import Any
from urllib.parse import urldefrag
from zoneinfo import ZoneInfo

import courlan
import htmldate
import trafilatura
from lxml import etree
from trafilatura import metadata as tmeta
from trafilatura.htmlprocessing import delete_element
from trafilatura.settings import Document, Extractor
from trafilatura.utils import load_html
from trafilatura.xpaths import AUTHOR_DISCARD_XPATHS, AUTHOR_XPATHS

from pipeline.errors import ExtractError
from pipeline.records import Article
from pipeline.ingest.repairs import contains_words, find_lead, is_tidy, main_text, tidy_lines

log = logging.getLogger(__name__)


def _along(axis: str, expression: etree.XPath) -> etree.XPath:
    """Turn a page-wide XPath such as '//*[...]|//author' into the same one along an axis ('self::*[...]|…')."""
    return etree.XPath(re.sub(r"(^|\|)\s*\.?//", rf"\1{axis}::", expression.path.strip()),
                       namespaces={"re": "http://exslt.org/regular-expressions"})


# Substrings of every attribute value that trafilatura's AUTHOR_XPATHS can match ("[Aa]uthor", "author-?name"
# and "AuthorCard" all hold "uthor"), in the attributes they test; its two element tests are <author> and <rel>.
# tests/test_extract.py checks that every literal and attribute of those XPaths is here, so a new trafilatura
# cannot slip by.
AUTHOR_HINT_WORDS = ("uthor", "yline", "byl", "BBL", "username", "zuozhe", "bianji", "xiaobian", "channel-name",
                     "submitted-by", "posted-by", "journalist-name", "screenname", "writer")
AUTHOR_ATTRIBUTES = frozenset(("class", "id", "rel", "itemprop", "data-testid", "data-component"))
AUTHOR_HINT = re.compile("|".join(map(re.escape, AUTHOR_HINT_WORDS)))  # case-sensitive, as the XPaths test
AUTHOR_VALUES = etree.XPath("|".join(f"//@{name}" for name in sorted(AUTHOR_ATTRIBUTES)))
AUTHOR_VALUES_AND_ELEMENTS = etree.XPath(f"{AUTHOR_VALUES.path}|//author|//*[rel]")
# Compiled once: on a short page compiling an XPath costs as much as running it.
CATEGORY_LINKS = etree.XPath('//a[contains(@href, "/categor")]')
SECTION_METAS = etree.XPath('.//head//meta[@property="article:section" or contains(@name, "subject")][@content]')
LANGUAGE_METAS = etree.XPath('//meta[@property="og:locale" or @http-equiv="content-language" or @name="language" '
                             'or @name="dc.language" or @name="DC.language"]/@content')
AUTHOR_TESTS = [_along("self", expression) for expression in AUTHOR_XPATHS]
# Whether a candidate sits in a pruned part: one union XPath, as only the answer matters.
PRUNED_AROUND = etree.XPath(" | ".join(_along("ancestor-or-self", x).path for x in AUTHOR_DISCARD_XPATHS),
                            namespaces={"re": "http://exslt.org/regular-expressions"})
PRUNED_INSIDE = [_along("descendant", expression) for expression in AUTHOR_DISCARD_XPATHS]

META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
CP1252_HOLES = {0x81, 0x8D, 0x8F, 0x90, 0x9D}  # undefined in Windows-1252: take them as Latin-1
# Words that are frequent in Dutch and rare in other languages; enough to tell nl from en/fr/de.
DUTCH_MARKERS = frozenset(["de", "het", "een", "en", "van", "in", "is", "dat", "op", "te", "zijn", "niet", "met", "voor", "ook", "er", "maar", "bij", "wordt", "werd", "naar", "nog", "uit", "aan", "hun", "zij", "om", "door", "als", "dan", "heeft", "worden"])


def _cp1252_fallback(err: UnicodeError) -> tuple[str, int]:
    if not isinstance(err, UnicodeDecodeError):  # registered for decoding only; an error handler refuses the rest
        raise err
    bad = err.object[err.start:err.end]
    return "".join(bytes([b]).decode("latin-1" if b in CP1252_HOLES else "cp1252") for b in bad), err.end


@lru_cache(maxsize=1)
def _register_cp1252_fallback() -> str:
    # Registered on first use, not on import: importing the package changes no global state.
    codecs.register_error("radar_cp1252_fallback", _cp1252_fallback)
    return "radar_cp1252_fallback"


# -- identity -----------------------------------------------------------------
def canonical_url(url: str) -> str:
    """Normalise a URL for identity: lower-case host, no fragment, no tracking parameters."""
    url = url.strip()
    try:
        return courlan.normalize_url(url, strict=True)  # strict drops the fragment too: no urldefrag first
    except (ValueError, AttributeError):
        return urldefrag(url)[0]


def content_hash(text: str) -> str:
    """Hash the normalised text so that whitespace and case changes give the same hash."""
    if not unicodedata.is_normalized("NFKC", text):  # a quick check: most texts are, and stay as they are
        text = unicodedata.normalize("NFKC", text)
    # lower() leaves every whitespace character as it is and makes none (tests/test_extract.py checks all of
    # Unicode): the lower-cased text is tidy when the text is, which tidy_lines has found out for an extracted one.
    tidy = is_tidy(text)
    lowered = text.lower()
    norm = lowered.replace("\n", " ") if tidy else " ".join(lowered.split())
    return hashlib.sha256(norm.encode("utf-8")).hexdigest()


def guess_language(text: str) -> str:
    """Return 'nl' when the text reads as Dutch by its function words, else 'other'."""
    words = re.findall(r"[a-zà-ÿ]+", text.lower()[:5000])
    if not words:
        return ""
    share = sum(word in DUTCH_MARKERS for word in words) / len(words)
    return "nl" if share >= 0.15 else "other"


# -- decoding -----------------------------------------------------------------
def charset_of(content_type: str) -> str | None:
    """Return the charset parameter of a Content-Type header, if any."""
    match = re.search(r"charset=[\"']?([\w\-:.]+)", content_type or "", re.IGNORECASE)
    return match.group(1) if match else None


def reads_as_dutch(article: Article) -> bool:
    """Tell whether an article is Dutch: it says so, or its words read as Dutch (pages often omit lang)."""
    if not article.language or article.language.lower().startswith("nl"):
        return True
    return guess_language(article.text) == "nl"


def decode_html(body: bytes, declared: str | None = None) -> tuple[str, str]:
    """Decode page bytes; return (text, how).

    A BOM wins; valid UTF-8 is UTF-8 whatever is declared; else a declared non-UTF-8 charset that
    decodes cleanly; else UTF-8 with a Windows-1252 fallback per bad byte. No statistical guess:
    on short Dutch pages detectors pick cp1250 and turn "crème" into "crčme".
    """
    for bom, encoding in ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
                          (codecs.BOM_UTF16_BE, "utf-16")):
        if body.startswith(bom):
            return body.decode(encoding, errors="replace"), encoding
    try:
        return body.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    for encoding in _declared_charsets(body, declared):
        try:
            return body.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError):
            continue
    return body.decode("utf-8", errors=_register_cp1252_fallback()), "utf-8+cp1252"


def _declared_charsets(body: bytes, declared: str | None) -> list[str]:
    names = [declared] if declared else []
    meta = META_CHARSET.search(body[:4096])
    if meta:
        names.append(meta.group(1).decode("ascii", "ignore"))
    result = []
    for name in (n.strip().lower() for n in names if n):
        if name.replace("-", "").replace("_", "") in ("utf8", "utf"):
            continue
        # WHATWG: these labels mean windows-1252 in browsers, and so in what sites actually send.
        result.append("cp1252" if name in ("iso-8859-1", "latin-1", "latin1", "us-ascii", "ascii") else name)
    return result


# -- main text, metadata and date ---------------------------------------------
def find_date(tree, url: str | None, tz: str, *, in_place: bool = False) -> str | None:
    """Return the publication time in the page's local zone (ISO), or its date when no time is known.

    in_place prunes the given tree instead of a copy: for a caller that is done with the tree.
    """
    pruned = tree if in_place else copy.deepcopy(tree)
    for link in _teaser_links(pruned):  # timestamps inside links belong to teasers of other articles
        link.drop_tree()
    try:
        found = htmldate.find_date(pruned, url=url, original_date=True, extensive_search=True,
                                   outputformat="%Y-%m-%dT%H:%M:%S%z")
    except Exception:  # noqa: BLE001 - htmldate raises assorted errors on odd pages; no date is the answer
        return None
    if not found:
        return None
    try:
        moment = datetime.fromisoformat(found)  # htmldate's "%Y-%m-%dT%H:%M:%S%z"; strptime is ten times slower
    except ValueError:
        return found[:10]
    # With no zone the page gave a date only (htmldate then writes no offset): the day, not a made-up time.
    return moment.astimezone(ZoneInfo(tz)).isoformat() if moment.tzinfo else found[:10]


def _teaser_links(tree) -> list:
    # What //a[.//time] finds, from the few <time> elements up instead of from every link down. The order differs
    # where links nest, which leaves the same tree: every one of them is dropped.
    return list(dict.fromkeys(link for time in tree.iter("time") for link in time.iterancestors("a")))


def local_date(value: str, tz: str) -> str:
    """Return an ISO date-time in the zone tz (as find_date gives it); a date or naive time is kept as given."""
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except (AttributeError, ValueError) as err:
        raise ExtractError("bad_date", f"known date {value!r} is not ISO 8601; pass e.g. "
                                       f"2024-05-01T09:30:00+02:00 or leave it out") from err
    return moment.astimezone(ZoneInfo(tz)).isoformat() if moment.tzinfo else value.strip()


def page_metadata(tree, url: str | None) -> Document:
    """Return trafilatura's metadata of the page, without its date search, tags and licence."""
    # The steps of trafilatura.metadata.extract_metadata that fill the fields used here, in its order.
    # Its own date search is a second htmldate pass over the whole page (trafilatura #779) whose
    # result nothing here used: find_date searches once, on the page without teaser links. The canonical
    # URL is only looked up where it is used (_page_url): the page's own URL is nearly always known.
    meta = tmeta.examine_meta(tree)
    if meta.author and " " not in meta.author:
        meta.author = None
    try:
        # Its XPath (compiled on every call) looks for JSON-LD scripts: none on a page without scripts.
        meta = tmeta.extract_meta_json(tree, meta) if next(tree.iter("script"), None) is not None else meta
    except Exception as err:  # noqa: BLE001 - as trafilatura does: JSON-LD bugs leave the meta tags' values
        log.debug("JSON-LD metadata skipped: %s", err)
    meta.title = meta.title or tmeta.extract_title(tree)
    meta.author = meta.author or find_author(tree)
    meta.sitename = _sitename(tree, meta, url)
    meta.categories = meta.categories or find_categories(tree)
    meta.clean_and_trim()
    return meta


def find_author(tree) -> str | None:
    """Return what trafilatura's extract_author returns on the tree, in a fifth of its time."""
    # extract_author copies the page, prunes comments, dates and figures, then runs three XPaths whose
    # predicates are evaluated on every element: a fifth of trafilatura's own extraction time. Here one pass
    # over the elements keeps those few that any of them can match, and the same predicates run on them alone.
    # A candidate in a pruned part is skipped, and only a candidate holding pruned parts is copied and pruned.
    candidates = [(element, _tests_passed(element)) for element in _author_candidates(tree)]
    for number in range(len(AUTHOR_TESTS)):
        for element in (el for el, passed in candidates if passed[number]):
            if PRUNED_AROUND(element):
                continue
            content = tmeta.trim(" ".join(_pruned(element).itertext()))
            if content and 2 < len(content) < 120:  # extract_metainfo's bounds for authors
                return _normalized_author(content)
    return None


@lru_cache(maxsize=1024)
def _normalized_author(byline: str) -> str | None:
    # trafilatura's normalize_authors is a pure function of the byline, and runs eight regexes (8 µs); a site's
    # bylines repeat ("Door de redactie", "ANP").
    return tmeta.normalize_authors(None, byline)


def _author_candidates(tree) -> list:
    # The values of the six attributes, in document order with the elements (an XPath over attribute values
    # costs a third of one whose predicates test six attributes on every element); a value that holds a hint
    # names its element. The <author> and <rel> element tests, rare on a page, only run when it has one.
    has_elements = next(tree.iter("author", "rel"), None) is not None
    candidates: dict[Any, None] = {}  # elements in document order (lxml is untyped here: Any)
    for item in (AUTHOR_VALUES_AND_ELEMENTS if has_elements else AUTHOR_VALUES)(tree):
        if not isinstance(item, str):
            candidates.setdefault(item, None)
        elif AUTHOR_HINT.search(item):
            # lxml's string results are str subclasses that know their element; mypy sees only the str.
            candidates.setdefault(item.getparent(), None)  # type: ignore[attr-defined]
    return list(candidates)


def _tests_passed(element) -> tuple[bool, ...]:
    # The tests read the element's tag and attributes, and the text of a <rel> child: pages of one site repeat
    # their byline markup, so the answers are kept by tag and attributes for an element without that child.
    if element.find("rel") is None:
        try:
            return _tests_passed_by(element.tag, tuple(element.items()))
        except ValueError:  # a name the HTML parser keeps but XML refuses ('xml:lang', 'fb:like'): not kept
            pass
    return tuple(bool(test(element)) for test in AUTHOR_TESTS)


@lru_cache(maxsize=1024)
def _tests_passed_by(tag: str, attributes: tuple[tuple[str, str], ...]) -> tuple[bool, ...]:
    stand_in = etree.Element(tag, dict(attributes))  # the same tag and attributes, no children
    return tuple(bool(test(stand_in)) for test in AUTHOR_TESTS)


def _pruned(element):
    # Pruned descendants in trafilatura's order (one XPath after the other), so that tails join the same text.
    inside = [el for inside in PRUNED_INSIDE for el in inside(element)] if len(element) else []
    if not inside:
        return element
    copied = copy.deepcopy(element)
    counterpart = dict(zip(element.iter(), copied.iter(), strict=True))
    for el in inside:
        delete_element(counterpart[el])
    return copied


def find_categories(tree) -> list[str]:
    """Return what trafilatura's extract_catstags("category", …) returns, skipping its XPaths where none can match."""
    # Its six XPaths keep only links whose href matches /categor(y|ies|s)?/; most pages have no such link.
    if CATEGORY_LINKS(tree):
        return tmeta.extract_catstags("category", tree)
    sections = SECTION_METAS(tree)
    return [r for r in dict.fromkeys(tmeta.line_processing(el.attrib["content"]) for el in sections
                                     if el.attrib["content"]) if r]


def _page_url(tree, meta: Document, url: str | None) -> str | None:
    """Return the page's URL as trafilatura's metadata gives it: og:url, else the canonical link, else url."""
    return meta.url or tmeta.extract_url(tree, url)


def _sitename(tree, meta: Document, url: str | None) -> str | None:
    name = (meta.sitename or tmeta.extract_sitename(tree) or "").lstrip("@")
    if name:
        return name.title() if "." not in name and not name[0].isupper() else name
    match = tmeta.META_URL.match(_page_url(tree, meta, url) or "")
    return match[1] if match else None


def _page_language(tree) -> str | None:
    for candidate in _language_candidates(tree):
        if candidate and re.match(r"^[A-Za-z]{2}(?:[-_]|$)", candidate.strip()):
            return candidate.strip()[:2].lower()
    return None


def _language_candidates(tree) -> Iterator[str | None]:
    yield tree.get("lang")
    yield tree.get("{http://www.w3.org/XML/1998/namespace}lang")
    yield from LANGUAGE_METAS(tree)  # only when the html element says nothing


def _text_with_lead(tree, doc, meta: Document) -> tuple[str, str]:
    text, method = main_text(tree, doc.body if doc is not None else None, meta.title)
    lead = find_lead(tree, meta.description)
    if lead and not contains_words(text, lead):
        text, method = f"{lead}\n{text}", method + "+lead"
    return tidy_lines(text), method


@lru_cache(maxsize=1)
def _options_template() -> Extractor:
    # Links are kept for the link-density repair only. "txt": the body only, as trafilatura.extract does; the
    # default ("python") also renders the text, which main_text renders again after its repairs.
    return Extractor(output_format="txt", comments=False, tables=True, links=True)


def _extraction_options(url: str | None) -> Extractor:
    # Building an Extractor reads eight settings through ConfigParser: 2 % of trafilatura's time per short page.
    # A copy of one built once, slot by slot (copy.copy goes through copyreg's reduce protocol for a slotted
    # class: twice the time); trafilatura copies it again before it changes anything (the recall retry).
    template, options = _options_template(), object.__new__(Extractor)
    for name in Extractor.__slots__:
        setattr(options, name, getattr(template, name))
    options.url = url
    options.source = url and url.encode("utf-8", "replace").decode("utf-8")  # as Extractor.__init__ sets it
    return options


def extract_document(html: str, url: str | None = None, tz: str = "Europe/Amsterdam", *,
                     known_date: str | None = None) -> dict:
    """Extract main text and metadata from HTML; text is '' when nothing is found.

    known_date (ISO 8601, e.g. from the feed entry) is taken as the publication date: no date search then.
    """
    tree = load_html(html)  # parsed once: trafilatura, metadata, lead and date all read this tree
    if tree is None:
        return {"text": "", "method": "none"}
    meta = page_metadata(tree, url)
    # On its own copy of the tree.
    doc = trafilatura.bare_extraction(tree, options=_extraction_options(url or _page_url(tree, meta, None)))
    if doc is None:
        meta = Document()  # no text, no metadata: as when trafilatura extracted both in one call
    text, method = _text_with_lead(tree, doc, meta)
    author = re.sub(r"^(?:door|by)\s+", "", meta.author or "", flags=re.IGNORECASE)
    pagetype = (meta.pagetype or "").lower()
    language = meta.language or _page_language(tree)
    date = local_date(known_date, tz) if known_date else find_date(tree, url, tz, in_place=True)  # tree's last use
    return {
        "text": text, "method": method, "title": meta.title, "author": author, "date": date,
        "sitename": meta.sitename, "categories": meta.categories or [], "language": language,
        # og:type / JSON-LD: home and section pages say "website"; None when the page does not say.
        "is_article": True if "article" in pagetype else (False if pagetype else None),
    }


def build_article(
    body: bytes, url: str, *, content_type: str = "", fallback_title: str = "", fallback_text: str = "",
    fallback_date: str | None = None, outlet: str = "", min_chars: int = 400, tz: str = "Europe/Amsterdam",
    known_date: str | None = None,
) -> Article:
    """Turn fetched page bytes into an Article; fall back to the feed summary when extraction is thin.

    fallback_date is used when the page shows no date; known_date is trusted over the page and skips its search.
    """
    html, encoding = decode_html(body, charset_of(content_type))
    doc = extract_document(html, url, tz, known_date=known_date)
    text, method = doc.get("text", ""), doc.get("method", "none")
    if len(text) < min_chars and len(fallback_text.strip()) > len(text):
        text, method = fallback_text.strip(), "feed_summary"  # paywall teaser or failed extraction
    if not text:
        raise ExtractError("no_text", f"no article text found at {url}")
    return Article(
        url=url, canonical_url=canonical_url(url), title=(doc.get("title") or fallback_title or "").strip(),
        text=text, outlet=outlet, author=doc.get("author") or "", date=doc.get("date") or fallback_date,
        sitename=doc.get("sitename") or "", categories=tuple(doc.get("categories") or ()),
        language=doc.get("language") or guess_language(text), method=method, source="feed",
        content_hash=content_hash(text), extra={"encoding": encoding, "is_article": doc.get("is_article")},
    )
