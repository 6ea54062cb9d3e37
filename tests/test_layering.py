"""The packages' seams, read from the source: trainable/ imports neither study/ nor analysis/,
analysis/ reads a study without study/, no package (nor a benchmark) imports another's private
(_x) module, and no modules import each other in a
circle (imports inside functions included: a lazy import must not hide a cycle)."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("trainable", "study", "analysis")
KNOWN: set[tuple[str, str]] = set()  # (importer, private module) pairs allowed: none


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            modules[name.removesuffix(".__init__")] = path
    return modules


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: {n for n in _imports(path) if n in modules and n != name} for name, path in modules.items()}


def _private(module: str) -> bool:
    return any(part.startswith("_") for part in module.split("."))


def test_trainable_knows_nothing_of_study_or_analysis():
    for module, imported in _graph().items():
        if module.startswith("trainable"):
            assert not {n for n in imported if n.split(".")[0] in ("study", "analysis")}, module


def test_analysis_reads_without_study():
    for module, imported in _graph().items():
        if module.startswith("analysis"):
            assert not {n for n in imported if n.split(".")[0] == "study"}, module


def test_benchmarks_use_the_packages_public_modules():
    modules = _modules()
    for path in sorted((ROOT / "benchmarks").glob("*.py")):
        private = {(path.name, n) for n in _imports(path) if n in modules and _private(n)}
        assert not private, sorted(private)


def test_no_package_imports_another_packages_private_module():
    crossing = {(module, name) for module, imported in _graph().items() for name in imported
                if name.split(".")[0] != module.split(".")[0] and _private(name)}
    assert crossing <= KNOWN, sorted(crossing - KNOWN)


def test_no_import_cycle():
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module):] + [module]))
        if module in done:
            return
        for name in graph[module]:
            visit(name, [*path, module])
        done.add(module)

    for module in graph:
        visit(module, [])


def test_no_function_is_longer_than_a_screen():
    """Each function reads on one screen (60 lines), benchmarks included: a longer one has rooms in it."""
    long = []
    for folder in (*PACKAGES, "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} "
                                f"({node.end_lineno - node.lineno + 1} lines)")
    assert not long, long
