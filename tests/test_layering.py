"""The layering of the packages (transport < actors < runtime; inside runtime:
workflow < store < cluster, engine), and the shape of each package's public API."""

from __future__ import annotations

import ast
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
FORBIDDEN = {"transport": {"actors", "runtime"}, "actors": {"runtime"}, "runtime": set()}


def imported_packages(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_packages_import_only_downward(package: str) -> None:
    imports = imported_packages(package)
    violations = {name: files for name, files in imports.items() if name in FORBIDDEN[package]}
    assert violations == {}


def test_no_package_imports_pickle() -> None:
    for package in ("transport", "actors", "runtime"):
        assert "pickle" not in imported_packages(package), package


@pytest.mark.parametrize("package", ["actors", "transport", "runtime"])
def test_every_exported_name_resolves_and_nothing_private_leaks(package: str) -> None:
    module = importlib.import_module(package)
    exported = module.__all__
    assert exported == sorted(exported, key=lambda n: (not n.isupper(), n)) or exported == sorted(
        exported
    )
    assert len(set(exported)) == len(exported)
    for name in exported:
        assert not name.startswith("_"), name
        assert getattr(module, name) is not None, name


def test_every_error_has_a_stable_public_name() -> None:
    import runtime

    errors = [
        getattr(runtime, n)
        for n in runtime.__all__
        if isinstance(getattr(runtime, n), type) and issubclass(getattr(runtime, n), Exception)
    ]
    assert len(errors) > 15
    for error in errors:
        assert issubclass(error, runtime.WorkflowError)
        assert error.__module__ == "runtime", error


def test_packages_use_each_others_public_api_only() -> None:
    for package in FORBIDDEN:
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    top, _, rest = node.module.partition(".")
                    if top != package and top in FORBIDDEN and rest.startswith("_"):
                        raise AssertionError(f"{path.relative_to(ROOT)} imports {node.module}")


# Inside runtime: which sub-packages each may import (beside actors and transport).
# workflow: pure descriptions; store: history of descriptions; engine: runs one
# workflow and reaches the cluster only through the step protocol's messages
# (the cluster object itself it knows only as the ``StepCluster`` protocol).
RUNTIME_LAYERS = {
    "workflow": set(),
    "store": {"workflow"},
    "engine": {"workflow", "store", "cluster"},
    "cluster": {"workflow", "store"},
}
ENGINE_FROM_CLUSTER = {"NodeLost", "RunStep", "StepOutcome"}  # the step protocol


def runtime_imports(sub: str) -> list[tuple[str, str, list[str]]]:
    """(file, imported runtime module, imported names) for every runtime import in ``sub``."""
    found = []
    for path in (ROOT / "runtime" / sub).rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                if node.module.startswith("runtime"):
                    names = [alias.name for alias in node.names]
                    found.append((str(path.relative_to(ROOT)), node.module, names))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("runtime"):
                        found.append((str(path.relative_to(ROOT)), alias.name, []))
    return found


@pytest.mark.parametrize("sub", sorted(RUNTIME_LAYERS))
def test_runtime_sub_packages_import_only_their_layers(sub: str) -> None:
    violations = []
    for path, module, _names in runtime_imports(sub):
        parts = module.split(".")
        target = parts[1] if len(parts) > 1 else ""
        if target != sub and target not in RUNTIME_LAYERS[sub]:
            violations.append(f"{path} imports {module}")
    assert violations == []


def test_the_engine_reaches_the_cluster_only_through_step_messages() -> None:
    violations = [
        f"{path} imports {names} from {module}"
        for path, module, names in runtime_imports("engine")
        if module.startswith("runtime.cluster") and not set(names) <= ENGINE_FROM_CLUSTER
    ]
    assert violations == []


def test_sub_packages_use_each_others_public_api() -> None:
    """A sub-package imports another's ``__init__``, never its private modules."""
    violations = []
    for sub in RUNTIME_LAYERS:
        for path, module, _names in runtime_imports(sub):
            parts = module.split(".")
            private = len(parts) > 2 and parts[1] != sub and parts[2].startswith("_")
            if private:
                violations.append(f"{path} imports {module}")
    assert violations == []


# Types a caller meets in a lower layer's public records, exported for annotations
# even though the layer above never names them.
EXPORTED_FOR_ANNOTATIONS = {"SupervisorStats", "MemberStatus", "InlineHandler"}


@pytest.mark.parametrize(
    ("package", "above"), [("actors", ("runtime",)), ("transport", ("actors", "runtime"))]
)
def test_lower_layers_export_only_what_the_layers_above_use(
    package: str, above: tuple[str, ...]
) -> None:
    source = "\n".join(path.read_text() for layer in above for path in (ROOT / layer).rglob("*.py"))
    exported = importlib.import_module(package).__all__
    unused = [
        name
        for name in exported
        if name not in EXPORTED_FOR_ANNOTATIONS and not re.search(rf"\b{name}\b", source)
    ]
    assert unused == []
