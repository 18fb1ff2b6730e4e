"""No import circles among mauth_client's modules (issue 11 item 6).

Reads each module's source (nothing is imported) and follows the imports that run when
the module is loaded: module-level ``import``/``from`` statements, including those inside
module-level ``try``/``if`` blocks, but not those under ``if TYPE_CHECKING:`` nor inside
functions (deferred imports are the sanctioned way to reach a higher layer)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mauth_client"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _load_time_statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    for node in body:
        if isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from _load_time_statements(node.body)
            yield from _load_time_statements(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _load_time_statements(block)
            for handler in node.handlers:
                yield from _load_time_statements(handler.body)
        else:
            yield node


def imports_of(name: str, modules: dict[str, Path] = MODULES) -> set[str]:
    """The package's own modules that ``name`` imports when it is loaded."""
    path = modules[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in _load_time_statements(ast.parse(path.read_text()).body):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {module for module in found if module in modules and module != name}


def find_cycles(modules: dict[str, Path] = MODULES) -> list[list[str]]:
    graph = {name: imports_of(name, modules) for name in modules}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        path.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name)
    return cycles


def test_the_walker_sees_known_imports() -> None:
    # Guards the test itself: were the parsing wrong, "no cycles" would prove nothing.
    assert "mauth_client.signer" in imports_of("mauth_client.authenticator")
    assert "mauth_client._console" in imports_of("mauth_client.cli")
    assert "mauth_client.testing.service" in imports_of("mauth_client.testing")
    assert "mauth_client.cli" not in imports_of("mauth_client.demo")


def test_the_walker_finds_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from . import b\n")
    (tmp_path / "b.py").write_text("from .a import thing\n")
    (tmp_path / "c.py").write_text("def f():\n    from . import a\n")  # deferred: no edge
    (tmp_path / "d.py").write_text("if TYPE_CHECKING:\n    from . import a\n")  # no edge
    modules = {f"mauth_client.{n}": tmp_path / f"{n}.py" for n in "abcd"}
    assert find_cycles(modules) == [["mauth_client.a", "mauth_client.b", "mauth_client.a"]]
    assert imports_of("mauth_client.c", modules) == imports_of("mauth_client.d", modules) == set()


def test_no_import_cycles() -> None:
    cycles = find_cycles()
    assert not cycles, "\n".join(" -> ".join(cycle) for cycle in cycles)
