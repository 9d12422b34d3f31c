"""Dependencies point one way: the contract at the bottom, the stages above it in the order
data flows, the alerts above the stages, and only the app wiring everything together.

The store SDK and the simulator are the contract's clients: they may import nothing else
of the pipeline. (docs/architecture.md opens with the folder map.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OURS = ("streams", "alerts", "sdk", "simulator", "grafana", "benchmarks", "warroom", "tests")

# Lowest first. A module may import its own package and any package of a lower layer.
LAYERS: list[tuple[str, ...]] = [
    ("streams.contract",),
    ("streams.eventtime",),
    ("streams.runtime",),  # settings, metrics, topics, tables, stage base, web (not app/cli)
    ("streams.ingest", "streams.inventory"),
    ("streams.funnel",),
    ("streams.merge",),
    ("alerts",),
    ("warroom",),  # what people look at: the live view and the post-sale review
    ("streams.runtime.app", "streams.runtime.cli", "streams.__main__"),
]
# Clients of the contract only.
CLIENTS = {"sdk": ("streams.contract",), "simulator": ("streams.contract",)}


def package_of(module: str) -> str:
    """The most specific entry of LAYERS or CLIENTS that `module` belongs to."""
    known = [name for layer in LAYERS for name in layer] + list(CLIENTS)
    matches = [name for name in known if module == name or module.startswith(name + ".")]
    assert matches, f"{module} is in no layer: add it to tests/test_layout.py"
    return max(matches, key=len)


def layer_of(package: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if package in layer)


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found |= {name for name in names if name.split(".")[0] in OURS}
    return found


def modules(*packages: str) -> list[tuple[str, Path]]:
    found = []
    for package in packages:
        for path in sorted((REPO / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            found.append((module.removesuffix(".__init__"), path))
    return found


def allowed(source: str, target: str) -> bool:
    source_package, target_package = package_of(source), package_of(target)
    if source_package in CLIENTS:
        return target_package in (source_package, *CLIENTS[source_package])
    if target_package in CLIENTS:
        # the alerts' backtest and the top-level CLI run the simulator
        return source_package in ("alerts", "streams.runtime.cli")
    if source_package == target_package:
        return True
    source_layer, target_layer = layer_of(source_package), layer_of(target_package)
    top = len(LAYERS) - 1  # the entry points wire everything, each other included
    return target_layer < source_layer or source_layer == target_layer == top


@pytest.mark.parametrize(
    ("module", "path"),
    [
        pytest.param(m, p, id=m)
        for m, p in modules("streams", "alerts", "sdk", "simulator", "warroom")
    ],
)
def test_imports_point_down(module: str, path: Path) -> None:
    wrong = sorted(
        target
        for target in imports(path)
        if target.split(".")[0] in ("streams", "alerts", "sdk", "simulator", "warroom")
        and _is_module(target)
        and not allowed(module, target)
    )
    assert wrong == [], f"{module} imports against the layering: {wrong}"


def _is_module(name: str) -> bool:
    """`from a.b import c` lists a.b.c too: keep it only if it is a module or package."""
    parts = name.split(".")
    return (REPO.joinpath(*parts).with_suffix(".py")).exists() or (REPO.joinpath(*parts)).is_dir()


def test_the_layer_map_knows_an_upward_import_when_it_sees_one() -> None:
    assert not allowed("streams.contract.events", "streams.runtime.settings")
    assert not allowed("streams.funnel.agent", "streams.merge.partition")
    assert not allowed("streams.runtime.settings", "alerts.campaign")
    assert not allowed("sdk.client", "streams.runtime.settings")
    assert allowed("streams.merge.agent", "streams.funnel.aggregates")
    assert allowed("streams.runtime.app", "alerts.stage")
