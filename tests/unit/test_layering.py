"""The domain imports only the standard library (architecture.md 2.2)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import service

DOMAIN = Path(service.__file__).parent / "domain"


def test_domain_imports_only_the_standard_library() -> None:
    checked = 0
    for path in DOMAIN.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                ok = name.startswith("service.domain") or top in sys.stdlib_module_names
                assert ok, f"{path.relative_to(DOMAIN)} imports {name}"
                checked += 1
    assert checked > 10  # the walk really saw the domain's imports
