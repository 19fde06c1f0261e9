"""Help for a config's settable keys, read from its dataclasses (``airinfer run --show-config``).

A key's help is its field's ``metadata["help"]``, else the item that documents it
in the ``Attributes:`` section of its class's docstring (or of the base class that
declares it), else the shared text of :data:`COMMON_HELP`; its type is the field's
annotation written short (:func:`type_text`). Nested configs are flattened to
dotted keys, as ``--set`` takes them. Standard library only: the CLI's ``list``
and ``--help`` import neither JAX nor TensorFlow.
"""

import dataclasses
import functools
import inspect
import re
import types
import typing

__all__ = ["COMMON_HELP", "field_help", "leaf_types", "type_text"]

_SECTION = re.compile(r"^(\s*)(Attributes|Args|Arguments|Fields):\s*$")
_ITEM = re.compile(r"^([A-Za-z_][\w]*(?:\s*,\s*[A-Za-z_][\w]*)*)\s*(?:\([^)]*\))?:\s*(.*)$")
_ROLE = re.compile(r":\w+:`~?([^`]+)`")


def _plain(text: str) -> str:
    """Docstring markup as terminal text: roles to their last name, no double backticks."""
    text = _ROLE.sub(lambda match: match.group(1).rpartition(".")[2], text)
    return " ".join(text.replace("``", "").split())


def _docstring_items(doc: str | None) -> dict[str, str]:
    """``{name: text}`` of a docstring's ``Attributes:`` (or ``Args:``) section.

    An item ``a, b: text`` documents both ``a`` and ``b``; indented lines continue it.
    """
    lines = inspect.cleandoc(doc or "").splitlines()
    items: dict[str, str] = {}
    start = next((i for i, line in enumerate(lines) if _SECTION.match(line)), None)
    if start is None:
        return items
    section_indent = len(_SECTION.match(lines[start]).group(1))
    item_indent, names = None, []
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent <= section_indent:
            break
        item_indent = indent if item_indent is None else item_indent
        match = _ITEM.match(line.strip()) if indent == item_indent else None
        if match:
            names = [name.strip() for name in match.group(1).split(",")]
            for name in names:
                items[name] = match.group(2)
        elif indent > item_indent:
            for name in names:
                items[name] += " " + line.strip()
    return {name: _plain(text) for name, text in items.items()}


#: The help of fields that many configs share without documenting them each.
COMMON_HELP = {
    "devices": "how many accelerators share the sweep's JAX draws (none: all this process "
    "sees); results do not depend on it",
    "seed": "the root of every point's random key",
}


@functools.cache
def _class_help(config_type: type) -> dict[str, str]:
    """Field name -> help: ``metadata["help"]``, else the documented attribute of the
    class (or of the base class that declares it)."""
    documented: dict[str, str] = {}
    for base in reversed(config_type.__mro__):
        documented.update(_docstring_items(base.__dict__.get("__doc__")))
    return {
        field.name: field.metadata.get("help")
        or documented.get(field.name)
        or COMMON_HELP.get(field.name, "")
        for field in dataclasses.fields(config_type)
    }


def field_help(config_type: type, prefix: str = "") -> dict[str, str]:
    """Dotted key -> its help text (empty when undocumented), for every settable key."""
    found = {}
    hints = typing.get_type_hints(config_type)
    for name, text in _class_help(config_type).items():
        tp = hints[name]
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            found.update(field_help(tp, f"{prefix}{name}."))
        else:
            found[prefix + name] = text
    return found


def type_text(tp) -> str:
    """A field's type in a few characters: ``int``, ``list[float]``, ``awgn|rayleigh``, ..."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return "|".join(str(choice) for choice in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return f"list[{type_text(args[0])}]"
        return f"({', '.join(map(type_text, args))})"
    if origin in (typing.Union, types.UnionType):
        return "|".join("none" if arg is type(None) else type_text(arg) for arg in args)
    return getattr(tp, "__name__", str(tp))


def leaf_types(config_type: type, prefix: str = "") -> dict[str, object]:
    """Dotted key -> its annotated type, for every settable key (nested configs flattened)."""
    found = {}
    for name, tp in typing.get_type_hints(config_type).items():
        if name not in {field.name for field in dataclasses.fields(config_type)}:
            continue
        if isinstance(tp, type) and dataclasses.is_dataclass(tp):
            found.update(leaf_types(tp, f"{prefix}{name}."))
        else:
            found[prefix + name] = tp
    return found
