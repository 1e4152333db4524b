"""Execute notebooks in their full setting and save them with their outputs.

    python notebooks/execute.py                 # all of them, in order
    python notebooks/execute.py 01 05-csp...    # those whose names start so

Each notebook runs top to bottom in a fresh kernel, in a scratch folder (whatever it writes
stays out of the repository), without the test suite's small setting and with matplotlib's
inline backend, so its pictures are saved in the file as a viewer shows them. The notebook's
metadata records a hash of each code cell's source (``minilucid.cell_sources``): the tests
compare it with the cells as committed, so a cell edited after its outputs were made fails
them until the notebook is executed again.
"""

import argparse
import hashlib
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

NOTEBOOKS = Path(__file__).resolve().parent
ROOT = NOTEBOOKS.parent


def cell_hash(source):
    """The sha256 of one cell's source, as the metadata stores it (first 16 hex digits)."""
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]


def code_cell_hashes(notebook):
    """The hash of every code cell's source, in order."""
    return [cell_hash(cell.source) for cell in notebook.cells if cell.cell_type == "code"]


def machine():
    """The CPU, core count and NumPy of the machine the outputs come from, in one line."""
    import numpy as np

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, NumPy {np.__version__}, Python {platform.python_version()}"


def execute(path, timeout=1800):
    """Run one notebook in its full setting, store outputs and source hashes, write it back."""
    import nbclient
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    env = {key: value for key, value in os.environ.items() if key not in ("YOLOV4_NOTEBOOK_QUICK", "MPLBACKEND")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="notebook-") as scratch:
        client = nbclient.NotebookClient(
            notebook, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": scratch}}
        )
        client.execute(env=env)
    seconds = time.perf_counter() - started
    notebook.metadata["minilucid"] = {
        "cell_sources": code_cell_hashes(notebook),
        "executed_on": machine(),
        "seconds": round(seconds),
    }
    staged = path.with_name(path.name + ".partial")
    nbformat.write(notebook, staged)
    staged.replace(path)  # atomically: a killed run leaves the committed notebook as it was
    return seconds


def main(argv=None):
    """Execute the notebooks named (by prefix) or all of them; print each one's time."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook name prefixes, e.g. 01 or 05-csp (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds one cell may run (1800)")
    args = parser.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]-*.ipynb"))
    if args.names:
        paths = [p for p in paths if any(p.name.startswith(name) for name in args.names)]
        if not paths:
            sys.exit(f"no notebook in {NOTEBOOKS} starts with {', '.join(args.names)}")
    for path in paths:
        print(f"{path.name}: running", flush=True)
        print(f"{path.name}: saved with its outputs after {execute(path, args.timeout):.0f} s", flush=True)


if __name__ == "__main__":
    main()
