"""docs/benchmarks.md is written by the benchmarks, one marked section per scenario, never by hand."""

from __future__ import annotations

import re
from pathlib import Path

HEADER = """# Benchmarks

Written by `make bench` (and later `make loadtest`); each section is replaced by the run that
measured it. Figures are from one run on the machine named in the section; compare ratios
measured in the same run, not absolute numbers across machines.
"""


def write_section(path: Path, key: str, title: str, body: str) -> None:
    text = path.read_text() if path.exists() else HEADER
    begin, end = f"<!-- bench:{key}:begin -->", f"<!-- bench:{key}:end -->"
    block = f"{begin}\n## {title}\n\n{body}\n{end}"
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    text = (
        pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    )
    path.write_text(text)
