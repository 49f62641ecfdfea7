"""The editor's ES modules (static/js/editor/) import each other; none reaches another through `window.topolab`,
which main.js (the boot) only fills in, read-only, for tests and benchmarks. Each stays under 500 lines."""
from __future__ import annotations

import re
from pathlib import Path

EDITOR = Path(__file__).resolve().parents[2] / "static" / "js" / "editor"
ASSIGNMENT = re.compile(r"window\.topolab(?:\.\w+|Ready|RenderMs|Timings)?\s*=[^=]")


def test_no_module_reaches_another_through_window_topolab():
    for path in sorted(EDITOR.glob("*.js")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.split("//")[0]  # comments may name it
            if "window.topolab" not in line:
                continue
            assert path.name == "main.js", f"{path.name}:{number} reaches through window.topolab: {line.strip()}"
            for use in re.finditer(r"window\.topolab\w*(?:\.\w+)?\s*=?=?", line):
                assert ASSIGNMENT.match(line, use.start()) or line[use.start():].startswith("window.topolabReady -"), \
                    f"main.js:{number} reads window.topolab: {line.strip()}"


def test_the_boot_imports_the_editors_parts():
    boot = (EDITOR / "main.js").read_text()
    for part in ("context", "session", "wiring", "toolbar", "keyboard", "dock", "panel"):
        assert f'from "./{part}.js"' in boot, part
    for part in ("problems", "rename"):
        assert any(f'from "./{part}.js"' in p.read_text() for p in EDITOR.glob("*.js")), part


def test_every_editor_module_is_under_500_lines():
    for path in EDITOR.glob("*.js"):
        assert len(path.read_text().splitlines()) < 500, path.name
