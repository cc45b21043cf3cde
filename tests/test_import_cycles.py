"""No two modules of the package import each other, directly or round a longer circle, and each folder imports only
the folders below it (both read with stdlib ast)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "pipeline"


def module_name(path: Path, root: Path) -> str:
    """Return the dotted module name of a file under root's parent ('pipeline/review/app.py' -> pipeline.review.app)."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Return, per module of the package at root, the package's modules it imports anywhere in its code.

    Imports inside a function count: a lazy import still ties the two modules together. So do imports under
    `if TYPE_CHECKING:`: dedupe and the store once named each other only so, and a reader follows both ways.
    """
    modules = {module_name(path, root): path for path in root.rglob("*.py")}
    return {name: _imports_of(ast.parse(path.read_text(encoding="utf-8")), name, path, modules) - {name}
            for name, path in modules.items()}


def _imports_of(tree: ast.Module, name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {_known(alias.name, modules) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, package)
            for alias in node.names:
                # `from pipeline.review import views` imports the module views; `from pipeline.x import f` imports x.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else _known(base, modules))
    return {module for module in found if module in modules}


def _absolute(node: ast.ImportFrom, package: str) -> str:
    if not node.level:
        return node.module or ""
    base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
    return f"{base}.{node.module}" if node.module else base


def _known(dotted: str, modules: dict[str, Path]) -> str:
    # The longest prefix that is a module of the package: `import pipeline.store.schema` -> pipeline.store.schema.
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in modules:
            return ".".join(parts[:end])
    return dotted


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Return every circle of imports (each strongly connected group of modules, sorted), none when there is none."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's algorithm; the package is small, so recursion is fine
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(groups)


# The folders from the bottom up: a module may import its own folder and the ones before it, never one after.
# "kernel" is the modules at the top of the package (settings, records, errors, codebook, labels, text, ...).
LAYERS = ("resources", "kernel", "store", "ingest", "detect", "research", "review", "public", "runs", "cli")
# pipeline/__init__.py is the notebook API (load_dataset, score_texts): a lazy door into research, above the rule.
API = "pipeline"


def folder_of(module: str, root: Path) -> str:
    """Return the folder a module of the package lives in: its subpackage, or 'kernel' for a top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (root / parts[1]).is_dir()) else "kernel"


def boundary_breaches(graph: dict[str, set[str]], root: Path, layers=LAYERS, api: str = API) -> list[str]:
    """Return each import of a module from a folder above its own, as 'importer -> imported', sorted."""
    rank = {name: index for index, name in enumerate(layers)}
    breaches = []
    for importer, imported in graph.items():
        if importer == api:
            continue
        for target in imported:
            if rank[folder_of(target, root)] > rank[folder_of(importer, root)]:
                breaches.append(f"{importer} -> {target}")
    return sorted(breaches)


def test_the_package_has_no_import_cycles():
    assert import_cycles(import_graph(PACKAGE)) == []


def test_every_folder_is_a_known_layer():
    folders = {path.parent.name for path in PACKAGE.glob("*/__init__.py")} | {"kernel"}
    assert folders == set(LAYERS)


def test_each_folder_imports_only_the_folders_below_it():
    assert boundary_breaches(import_graph(PACKAGE), PACKAGE) == []


def test_an_import_from_a_folder_above_is_found(tmp_path):
    package = tmp_path / "pkg"
    for folder in ("store", "review"):
        (package / folder).mkdir(parents=True)
        (package / folder / "__init__.py").write_text("", encoding="utf-8")
    (package / "__init__.py").write_text("def load():\n    from pkg.review import views\n", encoding="utf-8")
    (package / "labels.py").write_text("from pkg.store import tables\n", encoding="utf-8")  # kernel -> store
    (package / "store" / "tables.py").write_text("from pkg.review.views import ctx\n", encoding="utf-8")
    (package / "review" / "views.py").write_text("from pkg.store import tables\nfrom pkg import labels\n",
                                                 encoding="utf-8")  # downwards: allowed
    assert boundary_breaches(import_graph(package), package, layers=("kernel", "store", "review"), api="pkg") == [
        "pkg.labels -> pkg.store.tables", "pkg.store.tables -> pkg.review.views"]


def test_the_graph_sees_the_package_s_own_imports():
    graph = import_graph(PACKAGE)
    assert "pipeline.store" in graph["pipeline.runs.nightly"]  # `from pipeline.store import Store, open_store`
    assert "pipeline.review.blueprint" in graph["pipeline.review.queue_views"]
    assert "pipeline.labels" in graph["pipeline.public.publish"]  # `from pipeline import labels`
    assert "pipeline.research.dataset" in graph["pipeline"]  # a lazy import inside a function counts
    assert "pipeline.store" in graph["pipeline.ingest.dedupe"]  # under `if TYPE_CHECKING:`: counted too


def test_a_cycle_added_to_a_package_is_found(tmp_path):
    # A copy of the shape that was here before: classify imported labellers, and labellers (lazily) classify.
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    (package / "classify.py").write_text("from pkg.labellers import fit\n", encoding="utf-8")
    (package / "labellers.py").write_text("def fit():\n    from pkg.classify import make\n", encoding="utf-8")
    (package / "sub" / "__init__.py").write_text("", encoding="utf-8")
    (package / "sub" / "views.py").write_text("from . import queue_views\n", encoding="utf-8")
    (package / "sub" / "queue_views.py").write_text("from .views import bp\n", encoding="utf-8")
    (package / "store.py").write_text("import pkg.dedupe\n", encoding="utf-8")
    (package / "dedupe.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                       "    from pkg.store import Store\n", encoding="utf-8")
    (package / "plain.py").write_text("from pkg import classify, store\n", encoding="utf-8")
    assert import_cycles(import_graph(package)) == [["pkg.classify", "pkg.labellers"], ["pkg.dedupe", "pkg.store"],
                                                    ["pkg.sub.queue_views", "pkg.sub.views"]]
