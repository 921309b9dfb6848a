"""The house's import graph (tools/import_graph.py, read from the source with ast): no circles, no ``pgdat.cli``
import outside ``cli/``, no arrow up the floors cli -> experiments -> training -> methods/eval/analysis ->
attacks/models/data -> core. The checker itself is tested on a small package with each fault planted."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def graph_tool():
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "tools" / "import_graph.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pgdat_graph(graph_tool):
    return graph_tool.build_graph(ROOT / "src" / "pgdat")


def test_pgdat_has_no_import_circles(graph_tool, pgdat_graph):
    assert graph_tool.circles(pgdat_graph) == []


def test_only_cli_imports_cli(graph_tool, pgdat_graph):
    assert graph_tool.cli_imports(pgdat_graph) == []
    assert not list((ROOT / "src" / "pgdat" / "analysis").glob("cli_*.py"))


def test_no_arrow_runs_up_the_floors(graph_tool, pgdat_graph):
    assert graph_tool.upward_arrows(pgdat_graph) == []
    parts = {m.split(".")[1] for m in pgdat_graph if m not in graph_tool.ENTRY_POINTS}
    missing = parts - set(graph_tool.FLOORS)
    assert not missing, f"give these a floor in tools/import_graph.py: {missing}"


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pgdat" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pgdat"


def test_checker_finds_planted_circles_cli_imports_and_upward_arrows(graph_tool, tmp_path):
    pkg = _write(tmp_path, {
        "__init__.py": "",
        "data/__init__.py": "from pgdat.data import transforms\n",
        "data/transforms.py": "def f():\n    import pgdat.data.injected\n",  # a lazy import is still an arrow
        "data/injected.py": "from pgdat.data.transforms import f\n",
        "analysis/__init__.py": "",
        "analysis/cli_x.py": "from pgdat.cli.commands import register\n",
        "analysis/ntk.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pgdat.training import t\n",
        "training/__init__.py": "",
        "training/t.py": "from pgdat.analysis import ntk\n",
        "cli/__init__.py": "",
        "cli/commands.py": "from . import main\n",
        "cli/main.py": "from pgdat.cli import commands\n",
    })
    graph = graph_tool.build_graph(pkg)
    assert graph_tool.circles(graph) == [["pgdat.cli.commands", "pgdat.cli.main"],
                                         ["pgdat.data.injected", "pgdat.data.transforms"]]
    assert graph_tool.cli_imports(graph) == [("pgdat.analysis.cli_x", "pgdat.cli"),
                                             ("pgdat.analysis.cli_x", "pgdat.cli.commands")]
    # the TYPE_CHECKING import of training in analysis/ntk.py is not an arrow; cli_x's are
    assert graph_tool.upward_arrows(graph) == [("pgdat.analysis.cli_x", "pgdat.cli"),
                                               ("pgdat.analysis.cli_x", "pgdat.cli.commands")]
