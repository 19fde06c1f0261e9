"""Griffe extension: the docstrings' Sphinx roles and Sionna-style sections, for Markdown.

The docstrings are Google style (Args, Returns, Raises, Attributes) with two habits
that Markdown does not know:

- Sphinx roles, ``:func:`~airinfer.phy.bridge.bridge` ``: they become cross-references
  (optional ones, so that a name outside the site renders as code, with no warning);
- reStructuredText's ``text::`` before a literal block: ``text:`` (the indented
  block is a Markdown code block already);
- Sionna's ``Input:``/``Output:`` blocks, one ``name: text`` entry a line: their
  entries become list items, so that each keeps its line inside the admonition
  griffe makes of the block (``Input (``__call__``):`` gets that title).
"""

from __future__ import annotations

import html
import re

import griffe

_ROLE = re.compile(r":(?:func|class|meth|mod|attr|data|obj|exc):`(~?)([\w.]+)`")
_LITERAL = re.compile(r"(?m)(?<=\S)::$")  # "text::" before an indented literal block
# an entry's start: "name:", "a, b:", ":class:`X`:" or "``x``:" then text
_ENTRY = re.compile(r"^(\w[\w, ]*|:\w+:`[^`]+`|``[^`]+``)\s*:(\s|$)")
_SECTION = re.compile(r"^(?P<indent>\s*)(?P<kind>Inputs?|Outputs?)(?P<title> \(.*\))?:\s*$")


def _role(match: re.Match, module: str) -> str:
    short, target = match.group(1) == "~", match.group(2)
    title = target.rsplit(".", 1)[-1] if short else target
    # a name without its package is looked up beside the object, in its module
    identifier = target if target.startswith("airinfer.") else f"{module}.{target}"
    return (
        f'<autoref identifier="{html.escape(identifier)}" optional>'
        f"<code>{html.escape(title)}</code></autoref>"
    )


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _sections_as_lists(text: str) -> str:
    lines = text.splitlines()
    out = []
    header_indent = item_indent = None
    in_item = False
    for line in lines:
        match = _SECTION.match(line)
        if match:
            header_indent, item_indent, in_item = len(match.group("indent")), None, False
            title = match.group("title")
            # "Input (``__call__``):" is griffe's admonition "Input" with a title
            kind = match.group("kind")
            out.append(f"{match.group('indent')}{kind}:" + (f" {kind}{title}" if title else ""))
            continue
        if header_indent is not None and line.strip():
            if _indent(line) <= header_indent:
                header_indent = None
            else:
                item_indent = item_indent or _indent(line)
                if _indent(line) == item_indent and _ENTRY.match(line.lstrip()):
                    line, in_item = f"{line[:item_indent]}- {line[item_indent:]}", True
                elif in_item:  # a continuation: under the item's text
                    line = "  " + line
        out.append(line)
    return "\n".join(out)


class SionnaDocstrings(griffe.Extension):
    """Rewrites each docstring before griffe parses its sections."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is None:
            return
        module = obj.module.path if not obj.is_module else obj.path
        text = _sections_as_lists(obj.docstring.value)
        text = _LITERAL.sub(":", text)
        obj.docstring.value = _ROLE.sub(lambda match: _role(match, module), text)
