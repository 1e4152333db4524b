"""The docs against the code: every name, file, default and figure a page quotes must exist
or agree with its source, so that a page cannot drift from the code unnoticed."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import io
import json
import re
import tokenize
from pathlib import Path

import pytest

from minilucid import nn
from yolov4 import YOLO_V4Config, tiny_config
from yolov4.darknet.weights import RELEASED_WEIGHTS
from yolov4.model_config import VARIANTS
from yolov4.training.settings import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("minilucid", "yolov4")


def read(relative: str) -> str:
    return (ROOT / relative).read_text(encoding="utf-8")


def section(text: str, heading: str) -> str:
    """The text under a markdown heading, up to the next heading of any level."""
    start = text.index(heading) + len(heading)
    following = re.search(r"^#+ ", text[start:], flags=re.MULTILINE)
    return text[start : start + following.start()] if following else text[start:]


def table_rows(text: str) -> list[list[str]]:
    """The cells of every markdown table row in ``text``, header and separator rows left out."""
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def code_spans(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


def pyproject() -> tuple[str, set[str]]:
    """The distribution's name and its optional-dependency extras."""
    text = read("pyproject.toml")
    name = re.search(r'^name = "([^"]+)"', text, flags=re.MULTILINE).group(1)
    block = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([\w-]+) = \[", block, flags=re.MULTILINE))
    return name, extras


def install_hints() -> list[tuple[str, str]]:
    """(file, what follows ``pip install``) in the README, the docs, the packages' code and the
    notebooks' cells (their sources, not the outputs they were saved with)."""
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for package in (*PACKAGES, "benchmarks"):
        files += sorted((ROOT / package).rglob("*.py"))
    texts = [(path, path.read_text(encoding="utf-8")) for path in files]
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        texts.append((path, "\n".join("".join(cell["source"]) for cell in cells)))
    hints = []
    for path, text in texts:
        for match in re.finditer(r"pip install ([^`\n;)&]*)", text):
            hints.append((str(path.relative_to(ROOT)), match.group(1)))
    return hints


def test_install_hints_name_what_can_be_installed():
    name, extras = pyproject()
    hints = install_hints()
    assert any(".[dev]" in rest for _, rest in hints)  # the README's test command is among them
    for where, rest in hints:
        for token in re.findall(r"'[^']*'|\"[^\"]*\"|\S+", rest):
            token = token.strip("'\",")
            assert not token.startswith(name), (
                f"{where}: pip install {token}: {name} is not published; install from the repository's folder"
            )
            if "[" in token:
                path, wanted = token.split("[", 1)
                assert path == ".", f"{where}: pip install {token}: extras only install from the repository's folder"
                unknown = set(wanted.rstrip("]").split(",")) - extras
                assert not unknown, f"{where}: pip install {token}: no extra {sorted(unknown)} (there are {extras})"


def modules_named_in(cell: str, root: str = "") -> list[str]:
    """Paths in a module table's cell: `a/b.py`, `c.py` means a/b.py and a/c.py; `a/` a folder.
    ``root`` is the folder the table's paths are relative to."""
    paths, folder = [], root
    for span in code_spans(cell):
        if "/" in span:
            folder = root + (span if span.endswith("/") else span.rsplit("/", 1)[0] + "/")
            paths.append(root + span)
        else:
            paths.append(folder + span)
    return paths


MODULE_TABLES = [  # (page, heading, the folder its paths are relative to, the packages it maps)
    ("README.md", "## What is where", "", PACKAGES),
    ("docs/architecture.md", "### `minilucid/`", "minilucid/", ("minilucid",)),
    ("docs/architecture.md", "### `yolov4/`", "yolov4/", ("yolov4",)),
]


@pytest.mark.parametrize(("page", "heading", "root", "packages"), MODULE_TABLES)
def test_module_tables_list_every_module_and_only_real_ones(page, heading, root, packages):
    rows = table_rows(section(read(page), heading))
    listed = [path for row in rows for path in modules_named_in(row[0], root)]
    assert f"{packages[0]}/backend.py" in listed or f"{packages[0]}/model.py" in listed
    for path in listed:
        assert (ROOT / path).exists(), f"{page} ({heading}) names {path}, which does not exist"
    folders = [p for p in listed if p.endswith("/")]
    for package in packages:
        for module in sorted((ROOT / package).rglob("*.py")):
            relative = str(module.relative_to(ROOT))
            if module.name == "__init__.py" or any(relative.startswith(f) for f in folders):
                continue
            assert relative in listed, f"{page} ({heading}) does not list {relative}"


def resolve(module: str, dotted: str):
    """The object ``dotted`` (e.g. ``PANet.top_down``) names in ``module``; AttributeError if none."""
    target = importlib.import_module(module)
    for part in dotted.split("."):
        target = getattr(target, part)
    return target


def test_paper_map_names_exist():
    text = read("docs/yolov4-paper-map.md")
    checked = 0
    # "`yolov4/neck.py`: `SPP`, `PANet.top_down`": each name after a file is defined in it.
    for path, names in re.findall(r"`((?:minilucid|yolov4)/[\w/]+\.py)`: ((?:`[^`]+`(?:, | and )?)+)", text):
        module = path[: -len(".py")].replace("/", ".")
        for name in code_spans(names):
            name = re.match(r"[\w.]+", name).group(0)  # `iou(..., kind="ciou")` names iou
            resolve(module, name)
            checked += 1
    assert checked > 20
    config_fields = {f.name for f in dataclasses.fields(YOLO_V4Config)}
    for name in re.findall(r"Config `(\w+)`", text):
        assert name in config_fields, f"the paper map names YOLO_V4Config.{name}, which does not exist"
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for name in re.findall(r"Train `(\w+)", text):
        assert name in train_fields, f"the paper map names TrainConfig.{name}, which does not exist"


def test_every_paper_technique_points_at_exactly_one_function():
    rows = table_rows(read("docs/yolov4-paper-map.md"))
    techniques = [row for row in rows if row[0] != "technique"]
    assert len(techniques) > 20
    for technique, where, *_ in techniques:
        spans = code_spans(where)
        assert len(spans) == 2 and spans[0].endswith(".py"), (
            f"the paper map's {technique!r} points at {spans}: expected one file and one name in it"
        )
        name = re.match(r"[\w.]+", spans[1]).group(0)
        found = resolve(spans[0][: -len(".py")].replace("/", "."), name)
        assert callable(found), f"{spans[0]}: {name} ({technique!r}) is not a function or class"


NOTEBOOK_CITATION = re.compile(r"\[(\d+(?:, \d+)*)\]")  # [13] or [1, 14], outside code spans
NAMED_BY_EVERY_NOTEBOOK = {"yolo_v4"}  # naming the model's factory shows no one technique


def code_names(source: str) -> set[str]:
    """The names a cell of Python uses: its identifiers, and its string literals that are one
    identifier (a setting passed as a dict key, ``{"multiscale": True}``); not its comments, nor
    words inside longer strings."""
    names = set()
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.NAME:
                names.add(token.string)
            elif token.type == tokenize.STRING:
                names.add(token.string.strip("\"'"))
    except (tokenize.TokenError, SyntaxError) as error:
        raise AssertionError(f"a notebook cell does not tokenize as Python ({error}):\n{source}") from error
    return {name for name in names if name.isidentifier()}


def notebook_names(number: int) -> set[str] | None:
    """``code_names`` over the code cells of notebook ``number`` (their sources, not their
    outputs); None if there is no such notebook."""
    paths = sorted((ROOT / "notebooks").glob(f"{number:02d}-*.ipynb"))
    if len(paths) != 1:
        return None
    cells = json.loads(paths[0].read_text(encoding="utf-8"))["cells"]
    return set().union(*(code_names("".join(cell["source"])) for cell in cells if cell["cell_type"] == "code"))


def paper_map_row_names(where: str, switch: str) -> set[str]:
    """The code names a paper-map row gives: each part of the function or class it points at
    (`DetectionLoader.input_size_at`: both), and each setting, attribute or function that its
    switch cell puts in backticks as `name`, `a.name`, `name(...)`, `name=...`, `name: value` or
    `name: {key: value, ...}` (whose keys are the names). Other spans (commands, numbers) name
    nothing."""
    names = set(re.match(r"[\w.]+", code_spans(where)[1]).group(0).split("."))
    for span in code_spans(switch):
        keys = re.fullmatch(r"\w+: \{(.*)\}", span)
        if keys:
            names |= {key.split(":")[0].strip() for key in keys.group(1).split(",")}
        elif plain := re.fullmatch(r"(\w+(?:\.\w+)*)(?:\(.*\)|=.*|: .*)?", span):
            names |= set(plain.group(1).split("."))
    return {name for name in names if name.isidentifier()} - NAMED_BY_EVERY_NOTEBOOK


def paper_map_citation_problems(text: str) -> list[str]:
    """What is wrong with the notebook citations of a paper map's technique rows: a row that cites
    no notebook, or cites one that does not exist or whose code cells use none of the row's code
    names (``paper_map_row_names`` against ``notebook_names``)."""
    problems, code = [], {}
    for technique, where, switch, *_ in [row for row in table_rows(text) if row[0] != "technique"]:
        cited = [
            int(n) for group in NOTEBOOK_CITATION.findall(re.sub(r"`[^`]*`", "", switch)) for n in group.split(", ")
        ]
        if not cited:
            problems.append(f"{technique!r} cites no notebook")
        names = paper_map_row_names(where, switch)
        for number in cited:
            if number not in code:
                code[number] = notebook_names(number)
            if code[number] is None:
                problems.append(f"{technique!r} cites notebook {number}, which does not exist")
                continue
            if not names & code[number]:
                problems.append(f"{technique!r} cites notebook {number}, whose code names none of {sorted(names)}")
    return problems


def test_paper_map_cites_notebooks_that_show_each_technique():
    text = read("docs/yolov4-paper-map.md")
    assert len([row for row in table_rows(text) if row[0] != "technique"]) > 20
    problems = paper_map_citation_problems(text)
    assert not problems, "docs/yolov4-paper-map.md:\n" + "\n".join(problems)


def test_paper_map_citation_check_catches_a_wrong_citation():
    row = "| Mosaic | `yolov4/data/augment.py`: `mosaic` | Train `augment: {mosaic: p}` [%s] |"
    assert paper_map_row_names("`yolov4/data/augment.py`: `mosaic`", "Train `augment: {mosaic: p}`") == {"mosaic"}
    assert paper_map_citation_problems(row % "13") == []
    assert "cites notebook 2, whose code names none of ['mosaic']" in paper_map_citation_problems(row % "2")[0]
    assert "cites no notebook" in paper_map_citation_problems(row.replace(" [%s]", ""))[0]
    assert "which does not exist" in paper_map_citation_problems(row % "99")[0]


def flat_settings(settings: dict, prefix: str = "") -> dict:
    """TrainConfig settings with the nested ones spread out: {"augment.mosaic": 1.0, ...}."""
    spread = {}
    for key, value in settings.items():
        if isinstance(value, dict):
            spread.update(flat_settings(value, f"{prefix}{key}."))
        else:
            spread[prefix + key] = value
    return spread


def paper_map_ablation_problems(text: str) -> list[str]:
    """What is wrong with the "ablation row" column of a paper map's technique rows: a row name
    that ``ablate --rows`` refuses, or that its table writes otherwise (``+mosaic`` is ``+m``), a
    cell that names no row, or a setting in backticks that the row does not change from the
    baseline (on the demo's settings; ``+ga`` with one evolved setting)."""
    from yolov4.demo import DEMO
    from yolov4.training.ablation import baseline_settings, parse_switches, row_name, row_settings

    baseline = flat_settings(baseline_settings(DEMO))
    problems = []
    for technique, *_, cell in [row for row in table_rows(text) if row[0] != "technique"]:
        if cell == "-":
            continue
        spans = code_spans(cell)
        names = [span for span in spans if span.startswith("+")]
        settings = [span for span in spans if span.isidentifier()]
        if not names:
            problems.append(f"{technique!r}: its ablation row {cell!r} names no row (+switch)")
        for name in names:
            try:
                switches = parse_switches(name)
            except ValueError as error:
                problems.append(f"{technique!r}: {error}")
                continue
            if row_name(switches) != name:
                problems.append(f"{technique!r}: ablate's table calls the row {name!r} {row_name(switches)!r}")
            row = flat_settings(row_settings(switches, DEMO, {"lr": DEMO["lr"] / 2}))
            changed = {key.rsplit(".", 1)[-1] for key, value in row.items() if baseline.get(key) != value}
            for setting in settings:
                if setting not in changed:
                    problems.append(
                        f"{technique!r}: the row {name!r} does not change {setting} (it changes {sorted(changed)})"
                    )
    return problems


def test_paper_map_ablation_rows_are_rows_ablate_knows():
    text = read("docs/yolov4-paper-map.md")
    cells = [row[-1] for row in table_rows(text) if row[0] != "technique" and row[-1] != "-"]
    assert len(cells) >= 10 and any("`+dm`" in cell for cell in cells) and any("`+ga`" in cell for cell in cells)
    problems = paper_map_ablation_problems(text)
    assert not problems, "docs/yolov4-paper-map.md:\n" + "\n".join(problems)


def test_paper_map_ablation_check_catches_a_wrong_row():
    row = "| Mosaic | `yolov4/data/augment.py`: `mosaic` | Train `augment: {mosaic: p}` [13] | %s |"
    assert paper_map_ablation_problems(row % "`+m` (`mosaic`)") == []
    assert "unknown switch 'mosiac'" in paper_map_ablation_problems(row % "`+mosiac` (`mosaic`)")[0]
    assert "calls the row '+mosaic' '+m'" in paper_map_ablation_problems(row % "`+mosaic` (`mosaic`)")[0]
    assert "does not change mosaic" in paper_map_ablation_problems(row % "`+ls` (`mosaic`)")[0]
    assert "names no row" in paper_map_ablation_problems(row % "mosaic on")[0]


def test_every_variant_the_docs_name_is_accepted():
    texts = [read("README.md"), *(p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md")))]
    variants = {v for text in texts for v in re.findall(r'variant="([^"]+)"', text)}
    assert variants
    for variant in variants:
        assert variant in VARIANTS, f'the docs name variant="{variant}"; YOLO_V4Config accepts {VARIANTS}'
    assert tiny_config().variant in VARIANTS


def test_api_page_names_every_config_field_and_our_defaults():
    text = read("docs/api.md")
    for field in dataclasses.fields(YOLO_V4Config):
        assert re.search(rf"\b{field.name}\b", text), f"docs/api.md does not name YOLO_V4Config.{field.name}"
    ours = YOLO_V4Config()
    table = table_rows(section(text, "## Deliberate differences"))
    rows = [row for row in table if row[0].startswith("`")]
    assert {row[0].strip("`") for row in rows} >= {"pos_iou_thr", "ignore_iou_thr", "obj_balance", "iou_aware_alpha"}
    for field, _lucid, documented in rows:
        value = getattr(ours, field.strip("`"))
        assert documented == str(value), f"docs/api.md says our {field} defaults to {documented}; it is {value}"
    per_anchor = [row for row in table if row[0] == "values per anchor"]
    assert per_anchor[0][2].startswith("5 + C") and YOLO_V4Config(num_classes=7).values_per_anchor == 5 + 7
    assert YOLO_V4Config(num_classes=7, iou_branch_weight=1.0).values_per_anchor == 6 + 7


def test_api_page_batch_norm_keyword_exists():
    bullet = section(read("docs/api.md"), "## Deliberate differences")
    bullet = bullet[bullet.index("**BatchNorm's running variance.**") :].split("\n- ", 1)[0]
    module_keyword = re.search(r"`nn\.BatchNorm2d`.*?takes `(\w+)=False`", bullet, flags=re.DOTALL).group(1)
    assert module_keyword in inspect.signature(nn.BatchNorm2d).parameters
    functional_keyword = re.search(r"`nn\.functional\.batch_norm` takes `(\w+)=False`", bullet).group(1)
    assert functional_keyword in inspect.signature(nn.functional.batch_norm).parameters


def test_faq_quotes_the_performance_tables_range():
    table = section(read("docs/performance.md"), "## The whole model")
    rows = [row for row in table_rows(table) if row[0] != "case"]
    time_ratios = [float(row[3]) for row in rows]  # | case | ours s | PyTorch s | ratio | ...
    assert len(time_ratios) >= 6
    answer = section(read("docs/faq.md"), "### Why NumPy, when PyTorch exists?")
    quoted = [float(x) for x in re.findall(r"(\d+\.\d+)x", answer)]
    assert min(time_ratios) in quoted and max(time_ratios) in quoted, (quoted, min(time_ratios), max(time_ratios))
    assert all(min(time_ratios) <= q <= max(time_ratios) for q in quoted)


DEMO_COMMAND = "pip install . && python -m yolov4 demo"
TEST_COMMAND = 'pip install -e ".[dev]" && python -m pytest'
GLOSSARY = ("cell", "anchor", "objectness", "NMS", "mAP")


def test_readme_leads_with_the_two_set_up_commands_then_the_first_notebook():
    text = read("README.md")
    blocks = re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL)
    assert [b.strip() for b in re.findall(r"```\w*\n(.*?)```", section(text, "## Set up"), flags=re.DOTALL)] == [
        DEMO_COMMAND,
        TEST_COMMAND,
    ]
    jupyter = blocks[2][1].strip()
    assert blocks[:2] == [("bash", DEMO_COMMAND + "\n"), ("bash", TEST_COMMAND + "\n")]
    assert jupyter.startswith("jupyter lab notebooks/01-") and (ROOT / jupyter.split()[-1]).exists()
    assert "notebooks" in pyproject()[1]  # the extra the README names for Jupyter
    ci = read(".ci/run")  # CI runs the README's test command, in two lines
    assert all(half.strip() in ci.splitlines() for half in TEST_COMMAND.split("&&"))


def test_readme_defines_its_five_words_before_using_them():
    text = read("README.md")
    assert "- **cell**" in text, "the README has no glossary (a list of bold words)"
    glossary = text.index("- **cell**")
    before = text[:glossary]
    for word in GLOSSARY:
        assert f"- **{word}**" in text[glossary:], f"the README's glossary lacks {word}"
        used = re.search(rf"\b{word}s?\b", before, flags=re.IGNORECASE)
        assert not used, f"the README uses '{word}' before its glossary defines it"
    assert text.index("```python") > glossary  # engine code comes after the first page's orientation


def test_the_conftests_dependency_check_names_every_runtime_dependency_but_numpy():
    from tests.conftest import RUNTIME_DEPENDENCIES

    block = read("pyproject.toml").split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    declared = set(re.findall(r'^\s*"([A-Za-z0-9_-]+)', block, flags=re.MULTILINE))
    assert declared == {"numpy", *RUNTIME_DEPENDENCIES.values()}


# ----------------------------------------------------------------------------- figures quoted twice

WEIGHTS = {cfg.removesuffix(".cfg") + ".weights": size for size, cfg in RELEASED_WEIGHTS.items()}
# Where the size of darknet's yolov4.weights (the same bytes as a saved 80-class YOLOv4) is quoted.
WEIGHTS_SIZE_QUOTES = [
    ("README.md", r"writes a ([\d.]+) MB file"),
    ("docs/training-your-data.md", r"trained on COCO's 80 classes \(([\d.]+) MB = ([\d.]+) MiB"),
    ("notebooks/17-darknet.ipynb", r"trained on COCO \(([\d.]+) MB = ([\d.]+) MiB, ([\d,]+) bytes"),
]


def prose(relative: str) -> str:
    """A page's text; for a notebook, its cells' sources (what a reader wrote, not the outputs)."""
    if relative.endswith(".ipynb"):
        return "\n".join("".join(cell["source"]) for cell in json.loads(read(relative))["cells"])
    return read(relative)


def every_page() -> list[str]:
    """The README, the docs and the notebooks, as paths relative to the repository."""
    pages = ["README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md")))]
    return pages + [f"notebooks/{p.name}" for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))]


def number(text: str) -> int:
    return int(text.replace(",", ""))


@pytest.mark.parametrize(("page", "pattern"), WEIGHTS_SIZE_QUOTES, ids=[p for p, _ in WEIGHTS_SIZE_QUOTES])
def test_the_yolov4_weights_size_is_quoted_the_same_everywhere(page, pattern):
    size = WEIGHTS["yolov4.weights"]
    found = re.findall(pattern, prose(page))
    assert len(found) == 1, f"{page}: expected one quote of the yolov4.weights size matching {pattern!r}, found {found}"
    figures = found[0] if isinstance(found[0], tuple) else (found[0],)
    expected = (f"{size / 1e6:.1f}", f"{size / 2**20:.1f}", f"{size:,}")  # MB, MiB, bytes
    for quoted, right in zip(figures, expected[: len(figures)], strict=True):  # the first one, two or three
        assert quoted == right, f"{page} quotes {quoted} where yolov4.weights ({size:,} bytes) gives {right}"


def test_every_weights_file_size_and_float_count_quoted_is_the_released_files():
    sizes, floats = 0, 0
    for page in every_page():
        text = prose(page)
        for name, quoted in re.findall(r"`(yolov4(?:-tiny)?\.weights)`\s+\(([\d,]+) bytes", text):
            assert number(quoted) == WEIGHTS[name], f"{page}: {name} is {WEIGHTS[name]:,} bytes, not {quoted}"
            sizes += 1
        for quoted in re.findall(r"\b(\d{1,3}(?:,\d{3}){2,}) floats", text):  # 20-byte header, 4 bytes a float
            assert number(quoted) in {(size - 20) // 4 for size in WEIGHTS.values()}, (
                f"{page}: {quoted} floats is neither released file's count: {WEIGHTS}"
            )
            floats += 1
    assert sizes >= 3 and floats >= 4, (sizes, floats)


def test_every_yolov4_parameter_count_quoted_is_the_models():
    from yolov4 import yolo_v4

    expected = yolo_v4(num_classes=80).count_parameters()
    quotes = [
        (page, quoted)
        for page in every_page()
        for quoted in re.findall(r"\b(64,\d{3},\d{3}) (?:trainable )?parameters", prose(page))
    ]
    assert len(quotes) >= 5, quotes
    for page, quoted in quotes:
        assert number(quoted) == expected, f"{page} says YOLOv4 has {quoted} parameters; it has {expected:,}"
