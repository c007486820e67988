"""The seams between segbridge's parts (issue 12): who may import whom, and what is built once.

The REST API knows nothing of the pages or of the local Segment (``segbridge.assembly`` puts
them together); the local Segment knows nothing of segbridge (its host hands it its checks);
importing the Segment client leaves the process's logging alone; the Runtime is never
reassigned.
"""

from __future__ import annotations

import ast
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from segbridge.core.settings import Settings
from segbridge.runtime import build_runtime

SRC = Path(__file__).resolve().parents[2] / "src" / "segbridge"


def imported_modules(package: str) -> set[str]:
    """Every module a package's files name in an import statement (lazy ones too) or hand to
    ``importlib.import_module`` as a literal."""
    names: set[str] = set()
    for path in (SRC / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
            elif isinstance(node, ast.Call) and node.args and isinstance(
                    node.args[0], ast.Constant) and isinstance(node.args[0].value, str) and (
                    ast.unparse(node.func).endswith("import_module")):
                names.add(node.args[0].value)
    return names


def reaching(names: set[str], *packages: str) -> set[str]:
    return {n for n in names if any(n == p or n.startswith(f"{p}.") for p in packages)}


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_api_imports_neither_the_pages_nor_the_local_segment() -> None:
    assert reaching(imported_modules("api"), "segbridge.web", "segbridge.sandbox") == set()
    loaded = run_python(
        "import sys, segbridge.api.app, segbridge.api.deps\n"
        "print(sorted(m for m in sys.modules\n"
        "             if m.startswith(('segbridge.web', 'segbridge.sandbox'))))")
    assert loaded == "[]"


def test_the_local_segment_takes_its_checks_from_its_host_not_from_segbridge_api() -> None:
    names = imported_modules("sandbox")
    assert reaching(names, "segbridge.api", "segbridge.web", "segbridge.assembly") == set()
    assert "importlib" not in names


def test_the_app_is_assembled_outside_the_api() -> None:
    tree = ast.parse((SRC / "assembly.py").read_text())
    assembly = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert {"segbridge.api.app", "segbridge.web", "segbridge.sandbox"} <= assembly


def test_importing_the_segment_client_leaves_logging_alone() -> None:
    levels = run_python(
        "import logging, segbridge.apps.segment.client\n"
        "print(logging.getLogger('httpx').level, logging.getLogger('httpcore').level)")
    assert levels == "0 0"  # NOTSET: the process (the server) decides


def test_the_server_keeps_httpx_from_logging_request_urls() -> None:
    levels = run_python(
        "import logging\n"
        "from segbridge.server import configure_logging\n"
        "configure_logging('DEBUG')\n"
        "print(logging.getLogger('httpx').getEffectiveLevel() > logging.INFO)")
    assert levels == "True"


def test_the_runtime_cannot_be_reassigned(tmp_path: Path) -> None:
    runtime = build_runtime(Settings(home=tmp_path))
    try:
        with pytest.raises(dataclasses.FrozenInstanceError):
            runtime.vault = runtime.vault  # type: ignore[misc]
    finally:
        runtime.close()
