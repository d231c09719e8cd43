"""The layering of DESIGN.md, and the shape of each package's public API."""

from __future__ import annotations

import ast
import importlib
import pathlib

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
