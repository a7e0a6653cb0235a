"""The README and the manual in docs/: short, every relative link and anchor found, every setting documented.

Read as text, nothing rendered: a link is `[text](target)` or `![alt](target)` outside code; an anchor is
matched against the target's headings as GitHub makes their ids.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Every page whose links are checked: the README, the manual, the measurement notes it links to, the tests' map.
PAGES = [
    README,
    *DOCS,
    ROOT / "bench" / "README.md",
    *sorted((ROOT / "bench").glob("*/README.md")),
    *sorted((ROOT / "bench" / "results").glob("*.md")),
    ROOT / "tests" / "README.md",
]
MAX_README_LINES = 260

FENCE = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
ISSUE = re.compile(r"\bissues?\s*#?\s*\d+", re.IGNORECASE)


def prose(text: str) -> str:
    """The text without fenced code blocks and inline code (links there are examples, not links)."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """The id GitHub gives a heading: its text without markup, lower case, punctuation dropped, spaces as '-'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The ids of a page's headings (a repeated heading gets -1, -2, … as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        out.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return out


def links(page: Path) -> list[str]:
    return LINK.findall(prose(page.read_text(encoding="utf-8")))


def test_the_slug_is_githubs():
    assert slug("Speculative decoding, measured and not adopted (2026-12-02)") == (
        "speculative-decoding-measured-and-not-adopted-2026-12-02"
    )
    assert slug("llama.cpp threads") == "llamacpp-threads"
    assert slug("The `chat` endpoint") == "the-chat-endpoint"


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move detail into docs/ (limit {MAX_README_LINES})"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_finds_its_file_and_heading(page):
    assert page.exists()
    broken = []
    for target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no file {file.relative_to(ROOT) if file.is_relative_to(ROOT) else file}")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(ROOT)}")
    assert not broken, f"{page.relative_to(ROOT)}:\n" + "\n".join(broken)


def test_the_manual_names_no_issue_numbers():
    found = [
        f"{page.relative_to(ROOT)}: {m.group(0)!r}"
        for page in [README, *DOCS]
        for m in ISSUE.finditer(page.read_text(encoding="utf-8"))
    ]
    assert not found, "issue numbers mean nothing to a reader:\n" + "\n".join(found)


def test_the_manuals_index_links_every_page():
    linked = {(ROOT / "docs" / t.partition("#")[0]).resolve() for t in links(ROOT / "docs" / "index.md")}
    missing = [p.name for p in DOCS if p.name != "index.md" and p.resolve() not in linked]
    assert not missing, f"docs/index.md does not link {missing}"
    readme = {(ROOT / t.partition("#")[0]).resolve() for t in links(README)}
    assert not [p.name for p in DOCS if p.resolve() not in readme], "the README links every page of the manual"


def section_block(page: Path, heading: str) -> str:
    """The first fenced block under `## heading` (what .ci/readme_run.py reads from "Run it")."""
    text = page.read_text(encoding="utf-8")
    section = re.search(rf"^## {re.escape(heading)}\s*$(.*?)(?=^## |\Z)", text, re.DOTALL | re.MULTILINE)
    assert section, f"{page.name} has no '## {heading}' section"
    block = re.search(r"```(?:bash|sh|shell|toml)?\n(.*?)```", section.group(1), re.DOTALL)
    assert block, f"{page.name}'s '{heading}' section has no code block"
    return block.group(1)


def test_the_readme_test_command_is_what_ci_runs():
    assert section_block(README, "Test it").strip() == "bash .ci/run"
    assert (ROOT / ".ci" / "run").exists()


def test_the_readme_run_command_is_the_one_ci_reads():
    import importlib.util

    spec = importlib.util.spec_from_file_location("readme_run", ROOT / ".ci" / "readme_run.py")
    readme_run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(readme_run)
    command = readme_run.readme_command(README)
    assert command == section_block(README, "Run it").strip()
    assert command.startswith("pip install torch==") and command.endswith("&& python app.py")
    assert (ROOT / "docs" / "install.md").read_text(encoding="utf-8").count(command) == 1  # the manual shows it too


def documented_config() -> dict:
    """The config file shown in docs/configuration.md, with its commented-out keys (`# lam = 0.5`) read too."""
    block = section_block(ROOT / "docs" / "configuration.md", "The config file")
    return tomllib.loads(re.sub(r"^# (\w+ = )", r"\1", block, flags=re.MULTILINE))


def test_the_configuration_page_shows_every_setting_with_its_default():
    from interactive_format.config import SECTIONS, AppConfig
    from interactive_format.settings.load import ENV_VARS, merge

    documented = documented_config()
    assert set(documented) == set(SECTIONS)
    for name, section in SECTIONS.items():
        fields = {f.name for f in dataclasses.fields(section)}
        assert set(documented[name]) == fields, f"[{name}]: missing {fields - set(documented[name])}"
    defaults = AppConfig()
    shown = merge(defaults, documented)
    paths = {("models", "cache_dir"), ("models", "discriminator"), ("models", "ranking"), ("storage", "db_path")}
    for name in SECTIONS:
        for f in dataclasses.fields(SECTIONS[name]):
            if (name, f.name) in paths or (name, f.name) == ("generation", "lam"):  # paths differ by machine; λ: unset
                continue
            assert getattr(getattr(shown, name), f.name) == getattr(getattr(defaults, name), f.name), (name, f.name)
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert not [v for v in ENV_VARS if f"`{v}`" not in text], "every IF_* variable is in the table"


PACKAGE = ROOT / "interactive_format"
# A source path named anywhere on a page, code included: `interactive_format/engine/chat.py`, `bench/prune.py`,
# `tests/conftest.py`, `signals/` under the package, or a bare `chat.py`.
SOURCE_PATH = re.compile(r"(?<![\w./-])(\.?[\w-]+(?:/[\w.-]+)*\.py|interactive_format(?:/[\w-]+)*/)(?![\w/-])")
MODULE = re.compile(r"(?<![\w.])interactive_format(?:\.[A-Za-z_]\w*)+")


def module_file(dotted: list[str]) -> Path | None:
    """The file of the package's module `dotted` (["engine", "chat"]): a module or a subpackage's __init__."""
    base = PACKAGE.joinpath(*dotted)
    for file in (base.with_suffix(".py"), base / "__init__.py"):
        if file.is_file():
            return file
    return None


def top_level_names(file: Path) -> set[str]:
    """What a module defines or imports at its top level (read with `ast`, nothing imported)."""
    import ast

    names: set[str] = set()
    for node in ast.parse(file.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def module_found(name: str) -> bool:
    """`interactive_format.engine.chat` (or `….chat.ChatEngine`): each part a module, then at most one name in it."""
    parts = name.split(".")[1:]
    for i in range(len(parts), 0, -1):
        file = module_file(parts[:i])
        if file is not None:
            rest = parts[i:]
            return not rest or (len(rest) == 1 and rest[0] in top_level_names(file))
    return False


@functools.cache
def source_file_names() -> frozenset[str]:
    """The names of the project's .py files (hidden folders such as .git or a .venv left out)."""
    files = ROOT.rglob("*.py")
    return frozenset(f.name for f in files if not any(part.startswith(".") for part in f.relative_to(ROOT).parts))


def path_found(page: Path, path: str) -> bool:
    """A path from the project root, the page's folder or the package; a bare `name.py` if any file has that name."""
    if any((base / path).exists() for base in (ROOT, page.parent, PACKAGE)):
        return True
    return "/" not in path and path in source_file_names()


def test_the_resource_finder_knows_moved_modules_from_present_ones():
    page = ROOT / "docs" / "architecture.md"
    assert module_found("interactive_format.engine.chat") and module_found("interactive_format.evaluate")
    assert module_found("interactive_format.ranking.signals.MODULES") and module_found("interactive_format.bench")
    assert not module_found("interactive_format.pipeline") and not module_found("interactive_format.engine.nothing")
    assert path_found(page, "interactive_format/engine/guard.py") and path_found(page, "web/ui.py")
    assert path_found(page, "ui.py") and path_found(page, "bench/prune.py")
    assert not path_found(page, "interactive_format/pipeline.py") and not path_found(page, "pipeline.py")
    assert not path_found(page, "interactive_format/ui.py") and not path_found(page, "interactive_format/signals/")
    assert SOURCE_PATH.findall("`interactive_format/engine/` holds `chat.py`; run .ci/readme_run.py") == [
        "interactive_format/engine/",
        "chat.py",
        ".ci/readme_run.py",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_module_and_source_path_named_exists(page):
    text = page.read_text(encoding="utf-8")
    missing = [m for m in sorted(set(MODULE.findall(text))) if not module_found(m)]
    missing += [p for p in sorted(set(SOURCE_PATH.findall(text))) if not path_found(page, p)]
    assert not missing, f"{page.relative_to(ROOT)} names what is not in the tree (moved or gone):\n" + "\n".join(
        missing
    )
