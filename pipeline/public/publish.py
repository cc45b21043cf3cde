"""The public collection: accepted examples as a static Dutch site with Atom feeds (`radar publish`).

One code path renders every page from the database: `render_site` returns path -> bytes, which `radar publish`
writes to a folder and `radar public` serves live. Only the link, title, evidence quote (at most 300 characters)
and the analyst's lesson are published, never an article's text, a reader's name or e-mail, an article marked
private, or anything without a final label.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from feedgen.entry import FeedEntry
from feedgen.feed import FeedGenerator
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from pipeline import labels
from pipeline.chars import one_line, xml_safe
from pipeline.codebook import Codebook
from pipeline.public.digest import clean_quote, dutch_date
from pipeline.errors import ConfigError, PublishRefused
from pipeline.highlight import best_quote, safe_href
from pipeline.store import Store

log = logging.getLogger(__name__)

QUOTE_CHARS = 300
SITE_TITLE = "Cocreatie in het nieuws"
MANIFEST = ".radar-site.json"  # the files the last publish wrote: only those are ever replaced or removed
STYLE = Path(__file__).parent / "static" / "style.css"
# Feeds need a time even when empty; a fixed one keeps an empty collection's bytes the same on every run.
EPOCH = "2026-01-01T00:00:00+00:00"
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/cocreatie-radar/voorbeeld")


@dataclass(frozen=True)
class Example:
    """One published example: what a reader of the collection sees, nothing more."""

    article_id: int
    title: str
    href: str | None
    outlet: str
    published: str
    date: str
    sector: str
    type: str
    sector_label: str
    type_label: str
    quote: str
    lesson: str
    updated: str
    entry_id: str


def collect_examples(store: Store, codebook: Codebook) -> list[Example]:
    """Return the publishable examples, newest first: final yes labels of cluster heads not marked private.

    Read from the final labels, then only those articles: the whole article table is never loaded.
    """
    chosen = [label for label in store.final_labels().values() if labels.may_leave_the_tool(label)]
    predictions = store.newest_predictions(label.article_id for label in chosen)
    rows = []
    for label in chosen:
        art = store.article(label.article_id)
        if art is None or art.canonical_id is not None:  # a decision is recorded on the cluster's head
            continue
        pred = predictions.get(art.id)
        rows.append({"article_id": art.id, "url": art.url, "title": art.title, "outlet": art.outlet,
                     "published": art.published, "sector": label.sector, "type": label.type, "lesson": label.lesson,
                     "reviewed_at": label.reviewed_at,
                     # The analysts' chosen quote, else the model's strongest key sentence.
                     "evidence_quote": label.quote or (best_quote(art.text, pred.evidence) if pred else "")})
    rows.sort(key=lambda r: ((r["published"] or "")[:10], r["article_id"]), reverse=True)
    return [_example(r, codebook) for r in rows]


def _example(row: dict, codebook: Codebook) -> Example:
    # The entry id follows the story's address, so it stays the same across databases and re-runs.
    key = row["url"] or f"article:{row['article_id']}"
    # Names become file names: only the codebook's own, whatever an old or hand-made label says.
    sector = row["sector"] if row["sector"] in codebook.sectors else "overig"
    kind = row["type"] if row["type"] in codebook.types else ""
    # xml_safe: what was stored before the store removed forbidden characters must not break a page or feed.
    return Example(
        article_id=row["article_id"], title=one_line(row["title"]) or "(zonder titel)",
        href=safe_href(row["url"]), outlet=one_line(row["outlet"]), published=(row["published"] or "")[:10],
        date=dutch_date(row["published"]), sector=sector, type=kind,
        sector_label=codebook.label_of(sector), type_label=codebook.label_of(kind) if kind else "",
        quote=short_quote(xml_safe(clean_quote(row["evidence_quote"]))),
        lesson=one_line(row["lesson"]),
        updated=row["reviewed_at"] or EPOCH, entry_id=f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, key)}")


def short_quote(text: str, limit: int = QUOTE_CHARS) -> str:
    """Return a quote of at most `limit` characters, cut at a word with an ellipsis when longer."""
    if len(text) <= limit:
        return text
    cut = text[:limit - 1].rsplit(" ", 1)[0] if " " in text[:limit - 1] else text[:limit - 1]
    return cut.rstrip(" ,;:") + "…"


@lru_cache(maxsize=1)
def _environment() -> Environment:
    # Autoescape everything, also in feeds' templates; a missing variable is an error, never empty output.
    return Environment(loader=PackageLoader("pipeline.public", "templates"), autoescape=select_autoescape(default=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def render_template(name: str, **context) -> bytes:
    """Render one of the public site's templates to UTF-8 bytes."""
    return _environment().get_template(name).render(site_title=SITE_TITLE, **context).encode("utf-8")


def render_site(examples: list[Example], codebook: Codebook, *, form_url: str = "", base_url: str = "") -> dict[str, bytes]:
    """Return every page and feed of the collection as path -> bytes (deterministic for the same examples)."""
    counts = _counts(examples, codebook)
    common = {"counts": counts, "form_url": form_url, "codebook": codebook}
    pages = {"style.css": STYLE.read_bytes(),
             "index.html": render_template("index.html", root="", heading=SITE_TITLE, examples=examples,
                                           feed="feed.atom", **common),
             "feed.atom": render_feed(examples, SITE_TITLE, "feed.atom", base_url)}
    for kind, key in (("sector", "sector"), ("type", "type")):
        for name, label, _count in counts[kind]:
            chosen = [e for e in examples if getattr(e, key) == name]
            feed = f"feed/{name}.atom" if kind == "sector" else ""
            pages[f"{kind}/{name}.html"] = render_template(
                "index.html", root="../", heading=f"{'Sector' if kind == 'sector' else 'Soort'}: {label}",
                examples=chosen, feed=feed, **common)
            if feed:
                pages[feed] = render_feed(chosen, f"{SITE_TITLE}: {label}", feed, base_url)
    for example in examples:
        pages[f"voorbeeld/{example.article_id}.html"] = render_template("example.html", root="../", example=example,
                                                                        **common)
    return pages


def _counts(examples: list[Example], codebook: Codebook) -> dict[str, list[tuple[str, str, int]]]:
    return {"sector": [(s, codebook.label_of(s), sum(e.sector == s for e in examples)) for s in codebook.sectors],
            "type": [(t, codebook.label_of(t), sum(e.type == t for e in examples)) for t in codebook.types]}


def render_feed(examples: list[Example], title: str, path: str, base_url: str = "") -> bytes:
    """Return an Atom feed of the examples: stable ids, updated from the final-label time, one entry each.

    With a base_url the feed links to itself (rel="self") and to the site; without one it carries no links of its
    own, as Atom wants them absolute and only the settings know the site's address.
    """
    feed = FeedGenerator()
    feed.id(f"urn:uuid:{uuid.uuid5(ID_NAMESPACE, 'feed:' + path)}")
    feed.title(title)
    feed.author({"name": "Cocreatie Radar"})
    feed.language("nl")
    feed.generator("Cocreatie Radar")
    feed.updated(max((e.updated for e in examples), default=EPOCH))
    feed.subtitle("Voorbeelden van cocreatie bij maatschappelijke organisaties, door analisten beoordeeld.")
    if base_url:
        feed.link(href=base_url.rstrip("/") + "/" + path, rel="self", type="application/atom+xml")
        feed.link(href=base_url.rstrip("/") + "/", rel="alternate", type="text/html")
    for example in examples:
        _add_entry(feed, example, base_url)
    return feed.atom_str(pretty=True)


class _LinkedEntry(FeedEntry):
    """An Atom entry whose links keep their rel and type."""

    def atom_entry(self, extensions=True):
        """Return the entry's element, with each link's attributes as given."""
        # feedgen 1.0.0 writes an entry's <link> with href only (a name shadowed in FeedEntry.atom_entry), and RFC
        # 4287 then reads every link as rel="alternate". The links come out in the order given: set them back.
        entry = super().atom_entry(extensions)
        for element, link in zip(entry.findall("link"), self.link() or [], strict=True):
            for key in ("rel", "type", "hreflang", "title", "length"):
                if link.get(key):
                    element.set(key, str(link[key]))
        return entry


def _add_entry(feed, example: Example, base_url: str) -> None:
    entry = feed.add_entry(_LinkedEntry(), order="append")
    entry.id(example.entry_id)
    entry.title(example.title)
    entry.updated(example.updated)
    for href, rel in _entry_links(example, base_url):
        entry.link(href=href, rel=rel, type="text/html")
    entry.category(term=example.sector, label=example.sector_label)
    if example.type:
        entry.category(term=example.type, label=example.type_label)
    lines = [f"{example.outlet}, {example.date}".strip(", "), f"{example.sector_label} · {example.type_label}"]
    lines += [f"“{example.quote}”"] if example.quote else []
    lines += [f"Wat we ervan leren: {example.lesson}"] if example.lesson else []
    entry.content("\n".join(lines), type="text")  # content, not summary: Atom needs it when no link is safe


def _entry_links(example: Example, base_url: str) -> list[tuple[str, str]]:
    # The story itself is the entry's alternate, our page about it is related. When the story's address is not
    # safe to link, our page is the only representation left, so it becomes the alternate.
    page = f"{base_url.rstrip('/')}/voorbeeld/{example.article_id}.html" if base_url else ""
    links = [(example.href, "alternate")] if example.href else []
    if page:
        links.append((page, "related" if links else "alternate"))
    return links


def write_site(pages: dict[str, bytes], output: Path, *, force: bool = False) -> dict[str, int]:
    """Write the pages under output, rewriting only changed files and removing pages no longer published.

    Raises PublishRefused, before anything is written, when a page would go through a symlinked folder or
    (unless force) replace a file that the last publish did not write.
    """
    output.mkdir(parents=True, exist_ok=True)
    previous = _previous_paths(output)
    _refuse_unsafe_pages(pages, output, previous, force=force)
    # Claim the files before writing them: a publish stopped midway leaves none that the next one would refuse.
    _write_manifest(output, previous | set(pages))
    counts = {"written": 0, "unchanged": 0, "removed": 0}
    for path, body in sorted(pages.items()):
        target = output / path
        if _is_plain_file(target) and target.read_bytes() == body:
            counts["unchanged"] += 1
            continue
        _write_atomically(target, body)
        counts["written"] += 1
    # A page of an example made private or rejected later must disappear; files we never wrote stay.
    counts["removed"] = _remove_stale_pages(output, previous - set(pages))
    _write_manifest(output, set(pages))
    return counts


def _refuse_unsafe_pages(pages: dict[str, bytes], output: Path, previous: set[str], *, force: bool) -> None:
    # --force is for a folder that already holds someone's files; it never lets a page leave the output folder.
    unsafe = sorted(p for p in pages if not _is_plain_relative(p) or _goes_through_symlink(output, p))
    if unsafe:
        raise PublishRefused(f"refusing to write {_listed(unsafe)} in {output}: a folder on the way is a symlink, "
                             "and publish never writes through one; make it a real folder")
    foreign = sorted(p for p in pages if _is_foreign(output / p, p in previous))
    if foreign and not force:
        raise PublishRefused(f"{output} already holds {_listed(foreign)}, not written by radar publish; "
                             "move them away, or give --force to overwrite them")


def _is_foreign(target: Path, listed: bool) -> bool:
    # Publish writes only plain files: a symlink at a listed path was put there by someone else.
    return os.path.lexists(target) and (not listed or target.is_symlink())


def _is_plain_file(target: Path) -> bool:
    return target.is_file() and not target.is_symlink()


def _listed(paths: list[str], shown: int = 5) -> str:
    # One line, however many files: the first few by name, then a count.
    more = f" and {len(paths) - shown} more" if len(paths) > shown else ""
    return ", ".join(paths[:shown]) + more


def _goes_through_symlink(output: Path, path: str) -> bool:
    # Resolve the page's folder: anything but the plain folder under the resolved output means a symlink on the
    # way, whether it leads out of the site or to another folder of it (whose files are not ours to replace).
    # The output folder itself may be a symlink: that is the user's own choice of where the site lives.
    return (output / path).parent.resolve() != output.resolve() / Path(path).parent


def _is_plain_relative(path: str) -> bool:
    parts = Path(path).parts
    return bool(parts) and not path.startswith(("/", "\\")) and ".." not in parts


def _remove_stale_pages(output: Path, paths: set[str]) -> int:
    removed = 0
    for path in sorted(paths):
        target = output / path
        # Never through a symlinked folder, and not a symlink itself: unlinking a link would spare its target, but
        # publish never writes links, so one listed in the manifest is someone else's (or a tampered manifest).
        if _goes_through_symlink(output, path) or target.is_symlink():
            log.warning("publish: left %s in place: it is or goes through a symlink, which publish never wrote", path)
            continue
        if target.is_file():
            target.unlink()
            removed += 1
    return removed


def _write_manifest(output: Path, paths: set[str]) -> None:
    manifest = (json.dumps(sorted(paths), indent=1) + "\n").encode("utf-8")
    if not _is_plain_file(output / MANIFEST) or (output / MANIFEST).read_bytes() != manifest:
        _write_atomically(output / MANIFEST, manifest)


def _previous_paths(output: Path) -> set[str]:
    try:
        listed = json.loads((output / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    if not isinstance(listed, list):
        return set()
    # Only plain relative paths inside the folder: a tampered manifest must not delete anything elsewhere.
    return {p for p in listed if isinstance(p, str) and _is_plain_relative(p)}


def _write_atomically(target: Path, body: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.unlink(missing_ok=True)  # a stopped run's leftover; unlink removes the name, never a link's target
    # O_EXCL never opens an existing name, so a symlink planted at the temporary name is not written through;
    # not mkstemp: its 0600 files are pages a web server could not read.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(body)
    os.replace(temporary, target)  # a web server never serves a half-written page; replaces a link, not its target


def publish_site(store: Store, codebook: Codebook, output: Path, *, form_url: str = "",
                 base_url: str = "", force: bool = False) -> dict[str, int]:
    """Render the collection from the database and write it to output; return the file counts.

    With force, files in output that publish did not write are overwritten; nothing is ever written through a symlink.
    """
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output} is a file: give a folder for the site")
    examples = collect_examples(store, codebook)
    counts = write_site(render_site(examples, codebook, form_url=form_url, base_url=base_url), output, force=force)
    log.info("publish: %d examples; %d files written, %d unchanged, %d removed", len(examples), counts["written"],
             counts["unchanged"], counts["removed"])
    return {"examples": len(examples), **counts}
