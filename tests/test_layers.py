"""Imports point down. docs/architecture.md's module maps list the modules in dependency
order, a row per layer, lowest first; a module may import only modules of its own row or of earlier rows,
and minilucid never imports yolov4. Imports inside functions count too: a lazy import is
still a dependency."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.test_docs import ROOT, modules_named_in, read, section, table_rows

TABLES = (("### `minilucid/`", "minilucid/"), ("### `yolov4/`", "yolov4/"))


def layers() -> dict[str, int]:
    """Each module or folder path the map names -> its row, counted over both tables in order."""
    rank, row_index = {}, 0
    text = read("docs/architecture.md")
    for heading, root in TABLES:
        for row in table_rows(section(text, heading)):
            for path in modules_named_in(row[0], root):
                rank[path] = row_index
            row_index += 1
    return rank


def layer_of(path: str, rank: dict[str, int]) -> int | None:
    """The row of a module path: its own, or that of the folder that holds it. A package
    (``minilucid/nn/``) imported whole sits where its highest module does."""
    if path in rank:
        return rank[path]
    folders = [p for p in rank if p.endswith("/") and path.startswith(p)]
    if folders:
        return rank[max(folders, key=len)]
    inside = [row for p, row in rank.items() if path.endswith("/") and p.startswith(path)]
    return max(inside) if inside else None


def module_path(dotted: str) -> str | None:
    """``yolov4.data.augment`` -> ``yolov4/data/augment.py``; a package -> its folder; None if
    it is not one of ours."""
    relative = Path(*dotted.split("."))
    if (ROOT / relative).with_suffix(".py").is_file():
        return str(relative.with_suffix(".py"))
    if (ROOT / relative / "__init__.py").is_file():
        return str(relative) + "/"
    return None


def imports_of(path: Path) -> set[str]:
    """The project modules (paths) that a file imports, at any depth of its code."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from minilucid import nn`` imports the module minilucid.nn where there is one
            names = [
                f"{node.module}.{alias.name}" if module_path(f"{node.module}.{alias.name}") else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(p for p in map(module_path, names) if p)
    return found


def sources() -> list[Path]:
    return [p for package in ("minilucid", "yolov4") for p in sorted((ROOT / package).rglob("*.py"))]


def test_the_maps_place_every_module():
    rank = layers()
    missing = [
        str(p.relative_to(ROOT))
        for p in sources()
        if p.name != "__init__.py" and layer_of(str(p.relative_to(ROOT)), rank) is None
    ]
    assert not missing, f"docs/architecture.md's module maps do not place {missing}"


@pytest.mark.parametrize("source", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_down(source: Path):
    rank = layers()
    here = str(source.relative_to(ROOT))
    if source.name == "__init__.py":  # a package's face: it gathers its modules
        return
    own = layer_of(here, rank)
    for target in imports_of(source):
        if here.startswith("minilucid/"):
            assert not target.startswith("yolov4"), f"{here} imports {target}: the engine never imports the detector"
        if target.split("/")[0] != here.split("/")[0]:
            continue  # yolov4 importing minilucid: the whole engine sits below the detector
        if target.endswith("/") and here.startswith(target):
            continue  # its own package (``from minilucid import backend`` reads the package first)
        theirs = layer_of(target, rank)
        assert theirs is not None, f"{here} imports {target}, which the module map does not place"
        assert theirs <= own, f"{here} (row {own}) imports {target} (row {theirs}), a later row"
