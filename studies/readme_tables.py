"""Tables a study generates, kept in its README between markers, so a README's
figures are never typed by hand:

    <!-- generated: detection (python -m studies.dense.run --report_only ...) -->
    | detection (400 steps) | AP | ...
    <!-- end generated: detection -->

`update` rewrites the text between a pair of markers; `block` reads it back
(the tests compare it with what the study renders from its committed files).
"""

from __future__ import annotations

import re

from big_vision_like import filesystem as fs


def _pattern(name: str) -> re.Pattern:
    return re.compile(rf"(<!-- generated: {re.escape(name)}\b[^>]*-->\n)(.*?)"
                      rf"(<!-- end generated: {re.escape(name)} -->)", re.S)


def block(text: str, name: str) -> str:
    """The generated text between the `name` markers."""
    match = _pattern(name).search(text)
    if match is None:
        raise ValueError(f"no '<!-- generated: {name} -->' ... '<!-- end generated: {name} "
                         "-->' markers; add them where the table goes.")
    return match.group(2)


def update(path: str, name: str, body: str) -> None:
    """Replaces the `name` block of the Markdown file at `path` with `body`."""
    text = fs.read_text(path)
    block(text, name)  # the markers must be there
    body = body if body.endswith("\n") else body + "\n"
    fs.write_atomic(path, _pattern(name).sub(lambda m: m.group(1) + body + m.group(3), text))
