"""The README and the manual in docs/: short, every relative link and anchor found, every setting documented.

Read as text, nothing rendered: a link is `[text](target)` or `![alt](target)` outside code; an anchor is
matched against the target's headings as GitHub makes their ids.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# Every page whose links are checked: the README, the manual, and the measurement notes it links to.
PAGES = [README, *DOCS, ROOT / "bench" / "README.md", *sorted((ROOT / "bench" / "results").glob("*.md"))]
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
