"""Documents with a generated section: hand-written prose around tables rendered from code.

The section runs from its BEGIN marker to the END marker; a test re-renders it and fails when it is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

END = "<!-- END GENERATED -->"


def replace_section(document: str, begin: str, rendered: str) -> str:
    """`document` with the section from `begin` to END replaced by `rendered` (which includes both markers)."""
    head, found_begin, rest = document.partition(begin)
    _, found_end, tail = rest.partition(END)
    if not (found_begin and found_end):
        raise ValueError(f"document has no {begin} ... {END} markers")
    return head + rendered + tail


def rewrite_main(update: Callable[[str], str]) -> None:
    """`python -m …  PATH`: rewrite the generated section of the document at PATH."""
    path = Path(sys.argv[1])
    path.write_text(update(path.read_text()))
