"""The package's layout rules (issue 25), checked so they keep holding: at most 12
modules at the top of dave_lsp/, no module over 500 lines and no class over 300, the
domain imports neither front end, the ACP front end does not import the LSP one, and
front ends reach sessions through manager methods only.
Editors too: no VS Code source file over 500 lines (the webview's chatApp.ts at most
400) and no Neovim Lua file over 400."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dave_lsp"
DOMAIN = ("session", "permissions", "review", "tools", "backends")
DOMAIN_MODULES = ("config.py", "events.py", "paths.py", "fsio.py", "trust.py", "rpc.py")


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_the_top_of_the_package_holds_at_most_twelve_modules() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 12, top


def test_no_module_over_500_lines_and_no_class_over_300() -> None:
    too_long = []
    for path in _modules():
        text = path.read_text()
        lines = text.count("\n")
        if lines > 500:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > 300:
                    too_long.append(f"{path.relative_to(ROOT)}: class {node.name} {size} lines")
    assert too_long == []


@pytest.mark.parametrize("front_end", ["dave_lsp.lsp", "dave_lsp.acp"])
def test_the_domain_imports_no_front_end(front_end: str) -> None:
    domain = [p for p in _modules() if p.relative_to(PACKAGE).parts[0] in DOMAIN]
    domain += [PACKAGE / name for name in DOMAIN_MODULES if (PACKAGE / name).exists()]
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in domain
        for name in sorted(_imports(path))
        if name == front_end or name.startswith(front_end + ".")
    ]
    assert wrong == []


def test_the_acp_front_end_does_not_import_the_lsp_one() -> None:
    wrong = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((PACKAGE / "acp").rglob("*.py"))
        for name in sorted(_imports(path))
        if name == "dave_lsp.lsp" or name.startswith("dave_lsp.lsp.")
    ]
    assert wrong == []


def test_front_ends_call_manager_methods_only() -> None:
    # Never the manager's sessions, pool or private members, nor an actor's: what a
    # front end needs is a manager method (issue 25), so the session layer can change.
    wrong = []
    for folder in ("lsp", "acp"):
        for path in sorted((PACKAGE / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if not isinstance(node, ast.Attribute):
                    continue
                owner = node.value
                name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
                if name == "manager" and (
                    node.attr in ("sessions", "pool") or node.attr.startswith("_")
                ):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno} manager.{node.attr}")
    assert wrong == []


def test_editor_sources_stay_small() -> None:
    too_long = []
    for path in sorted((ROOT / "editors" / "vscode" / "src").rglob("*.ts")):
        limit = 400 if path.name == "chatApp.ts" else 500
        lines = path.read_text().count("\n")
        if lines > limit:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} > {limit}")
    for path in sorted((ROOT / "editors" / "nvim").rglob("*.lua")):
        lines = path.read_text().count("\n")
        if lines > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {lines} > 400")
    assert too_long == []
