"""The notebooks: each runs top to bottom in its small setting, asserts included, and each is
committed with the outputs of its full setting, made from the cells as they are now.

The notebooks read ``YOLOV4_NOTEBOOK_QUICK=1`` and shrink their data, image sizes and
epochs; everything else (the code a reader sees, the asserts) is the same. The committed
outputs come from ``python notebooks/execute.py``, which records a hash of every code cell's
source; the outputs tests read the files only and execute nothing.
"""

import ast
import importlib.util
import os
from pathlib import Path

import pytest

from tests.released import released_tiny_weights

nbclient = pytest.importorskip("nbclient", reason="the dev extra installs nbclient to run the notebooks")
nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def load_execute_script():
    """notebooks/execute.py as a module (notebooks/ is not a package): its hash is the one."""
    path = Path(__file__).resolve().parents[2] / "notebooks" / "execute.py"
    spec = importlib.util.spec_from_file_location("notebooks_execute", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


code_cell_hashes = load_execute_script().code_cell_hashes


def test_the_eighteen_notebooks_are_there_numbered_01_to_18():
    assert len(NOTEBOOKS) == 18, [p.name for p in NOTEBOOKS]
    assert [p.name[:2] for p in NOTEBOOKS] == [f"{i:02d}" for i in range(1, 19)]


def run_quick(path, tmp_path, monkeypatch, weights):
    """Execute one notebook in its small setting with ``YOLOV4_TINY_WEIGHTS`` set to ``weights``;
    returns it with its outputs."""
    monkeypatch.setenv("YOLOV4_NOTEBOOK_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("YOLOV4_TINY_WEIGHTS", str(weights or ""))
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute(env={**os.environ, "PYTHONPATH": str(path.parents[1])})
    return notebook


def printed(notebook):
    return "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))


def errors(notebook):
    return [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    weights, why = released_tiny_weights()  # notebook 01 opens on darknet's released model, 18 starts from it
    if weights is None:
        print(f"notebooks 01 and 18 run without the released weights: {why}")
    notebook = run_quick(path, tmp_path, monkeypatch, weights)
    assert not errors(notebook)
    if weights is not None and path.name.startswith("01-"):  # the released model's cell ran, not its fallback
        assert "person" in printed(notebook) and "No weights at" not in printed(notebook)
    if weights is not None and path.name.startswith("18-"):  # it fine-tuned, not trained from scratch
        text = printed(notebook)
        assert "fine-tuning from" in text and "loaded 19 of 21 layers" in text and "NO WEIGHTS" not in text


def test_notebook_18_without_the_weights_trains_from_scratch_and_says_so(tmp_path, monkeypatch):
    (path,) = [p for p in NOTEBOOKS if p.name.startswith("18-")]
    notebook = run_quick(path, tmp_path, monkeypatch, tmp_path / "missing" / "yolov4-tiny.weights")
    assert not errors(notebook)
    text = printed(notebook)
    assert "NO WEIGHTS at" in text and "FROM SCRATCH" in text and "loaded 19 of 21" not in text
    assert "epoch 1/1" in text


# ----------------------------------------------------------------------------- committed outputs

# Method names that draw, on whatever object (see test_committed_outputs_come_from_the_cells_as_they_are);
# not "step" (an optimizer's and a scheduler's too).
DRAWING_METHODS = {
    "imshow", "plot", "scatter", "bar", "barh", "hist", "quiver", "fill_between", "contour",
    "contourf", "matshow", "pcolormesh", "errorbar",
}  # fmt: skip
FIGURE_NAMES = {"ax", "axes", "fig", "figure"}


def top_level_calls(tree):
    """Every call in ``tree`` outside def, class and lambda bodies."""
    todo = list(ast.iter_child_nodes(tree))
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Call):
            yield node
        todo.extend(ast.iter_child_nodes(node))


def root_name(node):
    """The variable a call's target hangs from: ``axes[0].set_title`` -> ``axes``."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def pyplot_function(function):
    """``plt.plot``, ``plt.subplots``, ...: a lower-case name right after ``plt.`` (not
    ``plt.Rectangle``, a shape, nor ``plt.rcParams.update``), except ``plt.close``."""
    return (
        isinstance(function.value, ast.Name)
        and function.value.id == "plt"
        and function.attr.islower()
        and function.attr != "close"
    )


def cell_kind(source):
    """(prints, draws, shows_value) of one code cell's source, by the rule above."""
    tree = ast.parse(source)
    prints = draws = False
    for call in top_level_calls(tree):
        function = call.func
        if isinstance(function, ast.Name) and function.id in ("print", "display"):
            prints = True
        elif isinstance(function, ast.Attribute) and (
            pyplot_function(function) or root_name(function) in FIGURE_NAMES or function.attr in DRAWING_METHODS
        ):
            draws = True
    last = tree.body[-1] if tree.body else None
    shows = isinstance(last, ast.Expr) and not isinstance(last.value, ast.Call) and not source.rstrip().endswith(";")
    return prints, draws, shows


def output_problems(notebook, name):
    """What is wrong with a notebook's committed outputs, one line each (none: nothing)."""
    recorded = notebook.metadata.get("minilucid", {}).get("cell_sources")
    if recorded is None:
        return [f"{name}: no cell_sources in its metadata: run python notebooks/execute.py {name[:2]}"]
    problems = []
    now = code_cell_hashes(notebook)
    code_cells = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    if len(recorded) != len(now):
        problems.append(f"{name}: {len(now)} code cells, but {len(recorded)} when its outputs were made")
    for (index, _), then, current in zip(code_cells, recorded, now, strict=False):
        if then != current:
            problems.append(f"{name}: cell {index} was edited after its outputs were made")
    for index, cell in code_cells:
        prints, draws, shows = cell_kind(cell.source)
        if (prints or draws or shows) and not cell.outputs:
            problems.append(f"{name}: cell {index} prints, draws or shows a value but has no saved outputs")
        elif draws and not any("image/png" in output.get("data", {}) for output in cell.outputs):
            problems.append(f"{name}: cell {index} draws but has no saved picture (image/png)")
    if problems:
        problems.append(f"{name}: run python notebooks/execute.py {name[:2]} and commit it")
    return problems


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_outputs_come_from_the_cells_as_they_are(path):
    """The committed notebook was executed from its cells as they are now, and kept what they show.

    1. ``metadata["minilucid"]["cell_sources"]`` (written by notebooks/execute.py) matches the
       hash of every code cell's source: a cell edited after the outputs were made is named.
    2. A code cell that prints, draws or shows a value has saved outputs. It *prints* when a
       statement outside any def, class or lambda calls ``print`` or ``display``. It *draws*
       when such a statement calls a pyplot function (``plt.plot``, ``plt.subplots``: a
       lower-case name right after ``plt.``, not ``plt.close``, ``plt.rcParams.update`` or
       ``plt.Rectangle``), any method of a variable named ``ax``, ``axes``, ``fig`` or
       ``figure`` (subscripted or not), or a method named in ``DRAWING_METHODS`` on anything
       (``axs[1].imshow``). It *shows a value* when its last statement is a bare expression
       that is not a call (a call may return None, which Jupyter does not show) and the source
       does not end with ``;``.
    3. A code cell that draws has a saved PNG (``image/png``).

    Calls inside a function body are not seen, only where the cell itself calls: a cell that
    prints only through a function of its own is missed.
    """
    problems = output_problems(nbformat.read(path, as_version=4), path.name)
    assert not problems, "\n".join(problems)


def hand_made(*sources, outputs=None):
    """A small notebook of code cells, saved as execute.py saves it, outputs as given."""
    cells = [nbformat.v4.new_markdown_cell("# a title")]
    for i, source in enumerate(sources):
        cell = nbformat.v4.new_code_cell(source)
        cell.outputs = (outputs or {}).get(i, [])
        cells.append(cell)
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["minilucid"] = {"cell_sources": code_cell_hashes(notebook)}
    return notebook


PRINTED = [nbformat.v4.new_output("stream", name="stdout", text="3\n")]
PICTURE = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]


def test_the_outputs_check_passes_a_notebook_saved_from_its_cells():
    notebook = hand_made(
        "import matplotlib.pyplot as plt\nplt.rcParams.update({'figure.dpi': 60})\nx = 3",
        "print(x)",
        "figure, ax = plt.subplots()\nax.plot([1, 2])",
        "def show(a):\n    print(a)\n    plt.imshow(a)",  # defines, calls nothing: no output needed
        "np.testing.assert_allclose(x, 3)",  # ends in a call that returns None
        "optimizer.step()\nscheduler.step()",  # steps, draws nothing
        outputs={1: PRINTED, 2: PICTURE},
    )
    assert output_problems(notebook, "99-hand-made.ipynb") == []


def test_the_outputs_check_finds_each_fault():
    name = "99-hand-made.ipynb"
    notebook = hand_made("x = 3", "print(x)", outputs={1: PRINTED})
    del notebook.metadata["minilucid"]
    assert "no cell_sources" in output_problems(notebook, name)[0]

    notebook = hand_made("x = 3", "print(x)", outputs={1: PRINTED})
    notebook.cells[1].source = "x = 4"  # edited after execution: cell 1 of the notebook
    assert output_problems(notebook, name)[0] == f"{name}: cell 1 was edited after its outputs were made"
    notebook.cells.append(nbformat.v4.new_code_cell("y = 1"))
    assert "3 code cells, but 2" in output_problems(notebook, name)[0]

    for source in ("print(3)", "for i in range(2):\n    print(i)", "x = 3\nx", "axes[0].set_title('a')"):
        problems = output_problems(hand_made(source), name)
        assert problems and "has no saved outputs" in problems[0], (source, problems)

    for source in (
        "plt.plot([1, 2])",
        "figure, ax = plt.subplots()\nprint(1)",
        "axs[1].imshow(image)",
        "fig.colorbar(m)",
    ):
        problems = output_problems(hand_made(source, outputs={0: PRINTED}), name)
        assert problems and "no saved picture" in problems[0], (source, problems)
