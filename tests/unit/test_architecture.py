"""The seams hold: no import cycle among the coordinator's modules, the shared core imports
no service, and no service imports another (they talk through SQLite, sockets and D-Bus)."""

from __future__ import annotations

import ast
from pathlib import Path

SERVICES = Path(__file__).resolve().parents[2] / "services"


def module_name(path: Path) -> str:
    rel = path.relative_to(SERVICES.parent).with_suffix("")
    parts = ["hyperhive", *rel.parts[1:]]  # the services/ folder is the package hyperhive
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_of(path: Path) -> list[str]:
    name = module_name(path).split(".")
    return name if path.name == "__init__.py" else name[:-1]


def top_level_imports(path: Path) -> set[str]:
    """Modules imported when `path` is imported: top-level statements, `if` blocks included
    (TYPE_CHECKING too: a cycle there is still a cycle of meaning); never function bodies.
    Relative imports are resolved against the module's package."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    package = package_of(path)

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                found.add(module)
                found.update(f"{module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.If | ast.Try):
                visit(node.body)
                visit(node.orelse)

    visit(tree.body)
    return found


def graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in SERVICES.rglob("*.py")}
    return {
        m: {i for i in top_level_imports(p) if i in modules and i != m} for m, p in modules.items()
    }


def cycles(edges: dict[str, set[str]], within: str) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def walk(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges.get(node, ())):
            if not nxt.startswith(within):
                continue
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                walk(nxt, [*path, nxt])
        state[node] = 2

    for node in sorted(edges):
        if node.startswith(within) and node not in state:
            walk(node, [node])
    return found


def test_the_coordinator_has_no_import_cycle() -> None:
    edges = graph()
    assert "hyperhive.coordinator.registry" in edges  # the sweep sees the modules
    assert cycles(edges, "hyperhive.coordinator") == []


def test_the_parts_never_import_the_service() -> None:
    edges = graph()
    for part in ("lifecycle", "approvals", "questions", "commands", "registry", "signin_commands"):
        assert "hyperhive.coordinator.service" not in edges[f"hyperhive.coordinator.{part}"], part


def test_imports_inside_the_package_are_relative() -> None:
    """The package is installed as `hyperhive` from the services/ folder: only relative
    imports name it right under both."""
    for path in SERVICES.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert not node.module.startswith(("services", "hyperhive")), (path, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith(("services", "hyperhive")) for a in node.names)


def test_the_shared_core_imports_no_service_and_services_import_no_other() -> None:
    edges = graph()
    packages = {m.split(".")[1] for m in edges if m.count(".") >= 1}
    for module, imports in edges.items():
        own = module.split(".")[1] if module.count(".") else module
        for target in imports - {"hyperhive"}:  # the root package (its path) is no service
            other = target.split(".")[1] if target.count(".") else target
            if own == "hive":
                assert other == "hive", (module, target)
            elif other in packages and other not in (own, "hive"):
                assert own == "sandbox" or other == "sandbox", (module, target)
