"""The README and docs/ stay true to the tree: the README's setup and test commands are the ones
CI runs, and every relative link (file and #anchor) in README.md, docs/ and benchmarks/ resolves."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", REPO / "benchmarks" / "README.md",
         *sorted((REPO / "docs").rglob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README has no '## {title}' section"
    return match.group(1)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", page.read_text(), re.M)}


def test_readme_setup_and_test_commands_are_what_ci_runs():
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    for title in ("Setup", "Test"):
        blocks = re.findall(r"```bash\n(.*?)```", _section(readme, title), re.S)
        assert len(blocks) == 1, f"'{title}' should show one command block, found {len(blocks)}"
        for command in blocks[0].strip().splitlines():
            assert command in ci, f"README {title} command {command!r} is not what .ci/run runs"


def test_every_relative_link_resolves():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target} (no such file)")
            elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
                broken.append(f"{page.relative_to(REPO)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_results_pages_name_their_command_and_machine():
    for page in sorted((REPO / "docs" / "results").glob("*.md")):
        if page.name == "README.md":
            continue
        head = page.read_text()[:3000]
        assert "benchmarks/bench_" in head, f"{page.name}: no reproducing command at the top"
        assert "AMD EPYC" in head or "Xeon" in head, f"{page.name}: no CPU model at the top"


def test_no_machine_paths_in_docs():
    for page in PAGES:
        text = page.read_text()
        for pattern in ("/work/", "/tmp/", "/home/", "/root/"):
            assert pattern not in text, f"{page.relative_to(REPO)} names a machine path {pattern}"


def _documented_modules() -> set[str]:
    """Module paths named in the first cell of docs/architecture.md's tables: a `dir/name.py`
    entry, and bare `name.py` entries after it in the same cell (same folder)."""
    documented = set()
    for line in (REPO / "docs" / "architecture.md").read_text().splitlines():
        if not line.startswith("| `"):
            continue
        folder = ""
        for name in re.findall(r"`([^`]+\.py)`", line.split("|")[1]):
            if "/" in name:
                folder = name.rsplit("/", 1)[0]
                documented.add(name)
            else:
                documented.add(f"{folder}/{name}")
    return documented


def test_architecture_names_every_module():
    package = REPO / "clip_perception"
    modules = {str(p.relative_to(package)) for p in package.rglob("*.py")
               if p.name != "__init__.py"}
    documented = _documented_modules()
    assert not modules - documented, \
        f"docs/architecture.md has no row for {sorted(modules - documented)}"
    assert not documented - modules, \
        f"docs/architecture.md names modules that do not exist: {sorted(documented - modules)}"
