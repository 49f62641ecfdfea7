"""The strict YAML/JSON loader of topology documents (and of containerlab files).

    load_yaml(source) -> (data, [Problem])

A safe loader (libyaml's parser where PyYAML has it) that refuses anchors/aliases (no billion laughs), merge keys,
duplicate keys, integers of more than 100 digits, nesting deeper than 64 levels and more than 120 000 elements,
and resolves only YAML 1.2-like scalars (`true`/`false`, decimal numbers), so `on`, `52:54:00:12:34:56` or
`2024-01-01` stay strings. Text over 2 MiB is refused without being parsed. A dict is passed through unchanged but
for strings that are not Unicode text (lone surrogates). Every document is read within about a second.
"""
from __future__ import annotations

import importlib
import re
from typing import Any

import yaml

from .errors import Problem

MAX_TEXT_BYTES = 2 * 1024 * 1024
MAX_INT_DIGITS = 100  # Python refuses to read integers of more than 4300 digits; no value needs more than 100
MAX_DEPTH = 64  # a topology document nests about 8 levels deep
MAX_EVENTS = 120_000  # parser events (scalars, collection starts and ends): a full 2000-host lab has about 80 000

Source = str | bytes | dict[str, Any]


def load_yaml(source: Source) -> tuple[Any, list[Problem]]:
    """Safely load YAML/JSON text (size limit, no anchors/aliases, no duplicate keys): (data, problems)."""
    return _load(source)


class _Refused(Exception):
    def __init__(self, message: str, mark: Any = None):
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        super().__init__(message + where)


class _Strict:
    """What both loaders add to PyYAML's safe constructor: integers of a sane length, and the place of a value
    that cannot be read."""

    def construct_scalar(self, node: Any) -> Any:
        self._scalar_mark = node.start_mark  # where a value that cannot be read is (see _load)
        return super().construct_scalar(node)  # type: ignore[misc]


def _construct_int(loader: Any, node: Any) -> Any:
    digits = len(str(node.value))
    if digits > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {digits} digits is too large (at most {MAX_INT_DIGITS})", node.start_mark)
    return yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)


class _StrictLoader(_Strict, yaml.SafeLoader):
    """SafeLoader without anchors/aliases and with YAML 1.2-like implicit scalars (pure Python: the fallback when
    PyYAML has no libyaml)."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        # Refusing every anchor refuses every alias too: an alias needs an anchor defined before it.
        event = self.peek_event()  # type: ignore[no-untyped-call]
        if getattr(event, "anchor", None) and not isinstance(event, yaml.AliasEvent):
            raise _Refused(f"anchors and aliases (&{event.anchor}) are not allowed", event.start_mark)
        return super().compose_node(parent, index)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _construct_int)

_BOOL_TAG = "tag:yaml.org,2002:bool"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL_TAG, _INT_TAG, _FLOAT_TAG, _TIMESTAMP_TAG)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_StrictLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))
_StrictLoader.add_implicit_resolver(_INT_TAG, re.compile(r"^[-+]?(?:0|[1-9][0-9]*)$"), list("-+0123456789"))
_StrictLoader.add_implicit_resolver(
    _FLOAT_TAG,
    re.compile(r"^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


#: what the loader reads as something other than a string (netops.writer quotes strings that match one)
IMPLICIT_RESOLVERS: dict[Any, list[tuple[str, Any]]] = _StrictLoader.yaml_implicit_resolvers


def _c_parser() -> Any:
    try:
        return importlib.import_module("yaml.cyaml").CParser
    except (ImportError, AttributeError):  # PyYAML built without libyaml
        return None


_CParser = _c_parser()

if _CParser is not None:
    class _StrictCLoader(_Strict, _CParser, yaml.constructor.SafeConstructor,  # type: ignore[misc,valid-type]
                         yaml.resolver.Resolver):
        """The same loader on libyaml's parser and composer (ten times faster: a 2 MiB document is read within a
        second). libyaml composes anchors and recurses without limit, so `_prescan` refuses anchors and deep
        nesting from the event stream first."""

        yaml_implicit_resolvers = _StrictLoader.yaml_implicit_resolvers
        yaml_constructors = _StrictLoader.yaml_constructors

        def __init__(self, stream: str) -> None:
            _CParser.__init__(self, stream)
            yaml.constructor.SafeConstructor.__init__(self)
            yaml.resolver.Resolver.__init__(self)

    _LOADER: type = _StrictCLoader
else:  # pragma: no cover
    _LOADER = _StrictLoader


def _prescan(text: str) -> None:
    """Refuse, from libyaml's events alone (no nodes made), anchors and aliases, nesting deeper than MAX_DEPTH and
    documents of more than MAX_EVENTS elements: what would make composing slow or unbounded."""
    if _LOADER is _StrictLoader:
        return  # the pure loader refuses anchors itself, and runs out of recursion on deep nesting
    depth = 0
    for count, event in enumerate(yaml.parse(text, Loader=yaml.CBaseLoader)):
        anchor = getattr(event, "anchor", None)
        if isinstance(event, yaml.AliasEvent) or anchor:
            raise _Refused(f"anchors and aliases (&{anchor}) are not allowed", event.start_mark)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                raise _Refused(f"the document is nested too deeply (more than {MAX_DEPTH} levels)", event.start_mark)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
        if count > MAX_EVENTS:
            raise _Refused(f"the document has too many elements (more than {MAX_EVENTS})", event.start_mark)


def _load(source: object) -> tuple[Any, list[Problem]]:
    if isinstance(source, dict):
        problems = _lone_surrogates(source)
        return (None if problems else source), problems
    if isinstance(source, bytes):
        if len(source) > MAX_TEXT_BYTES:
            return None, [Problem("", f"the document is larger than {MAX_TEXT_BYTES} bytes")]
        try:
            text = source.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [Problem("", f"the document is not UTF-8 text (byte {exc.start})")]
    elif isinstance(source, str):
        text = source
        if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "surrogatepass")) > MAX_TEXT_BYTES:
            return None, [Problem("", f"the document is larger than {MAX_TEXT_BYTES} bytes")]
        if _SURROGATE_RE.search(text):
            return None, [Problem("", "the document is not valid Unicode text (it holds a lone surrogate)")]
    else:
        return None, [Problem("", f"expected YAML or JSON text or a mapping, got {type(source).__name__}")]
    try:
        _prescan(text)
        loader = _LOADER(text)  # its reader already refuses some characters (NUL, other controls)
    except _Refused as exc:
        return None, [Problem("", str(exc))]
    except yaml.YAMLError as exc:
        return None, [Problem("", f"not valid YAML: {' '.join(str(exc).split())}")]
    try:
        node = loader.get_single_node()
        if node is None:
            return None, [Problem("", "the document is empty")]
        problems = _duplicate_keys(node)
        if problems:
            return None, problems
        data = loader.construct_document(node)
        problems = _lone_surrogates(data)  # a double-quoted "\\ud800" escape
        return (None if problems else data), problems
    except _Refused as exc:
        return None, [Problem("", str(exc))]
    except (ValueError, TypeError, AttributeError, OverflowError) as exc:
        # a scalar its tag cannot read (`!!int abc`, `!!timestamp x`): the document is wrong, not the loader
        mark = getattr(loader, "_scalar_mark", None)
        return None, [Problem("", str(_Refused(f"a value cannot be read ({str(exc)[:200]})", mark)))]
    except yaml.YAMLError as exc:
        return None, [Problem("", f"not valid YAML: {' '.join(str(exc).split())}")]
    except RecursionError:
        return None, [Problem("", "the document is nested too deeply")]
    finally:
        loader.dispose()


def _duplicate_keys(root: yaml.Node) -> list[Problem]:
    """Duplicate and merge (`<<`) keys anywhere in a composed YAML tree, each named by its path."""
    problems: list[Problem] = []
    stack: list[tuple[yaml.Node, str]] = [(root, "")]
    while stack:
        node, path = stack.pop()
        if isinstance(node, yaml.MappingNode):
            seen: set[tuple[str, str]] = set()
            for key, value in node.value:
                label = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                key_path = join(path, label)
                if key.tag == _MERGE_TAG:
                    problems.append(Problem(key_path, "merge keys (<<) are not allowed"))
                    continue
                if isinstance(key, yaml.ScalarNode):
                    if (key.tag, key.value) in seen:
                        problems.append(
                            Problem(key_path, f"duplicate key {key.value!r} (line {key.start_mark.line + 1})")
                        )
                    seen.add((key.tag, key.value))
                stack.append((value, key_path))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                stack.append((item, join(path, str(i))))
    problems.sort(key=lambda p: p.path)
    return problems


def _lone_surrogates(root: object) -> list[Problem]:
    """Strings of a loaded document (JSON and double-quoted YAML may escape them: "\\ud800") that are not Unicode
    text: they cannot be encoded, so no name or value may hold one."""
    problems: list[Problem] = []
    stack: list[tuple[object, str]] = [(root, "")]
    while stack and len(problems) < 20:
        value, path = stack.pop()
        items: list[tuple[object, object]] = []
        if isinstance(value, dict):
            items = list(value.items())
        elif isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, str) and _SURROGATE_RE.search(value):
            problems.append(Problem(path, "is not valid Unicode text (it holds a lone surrogate)"))
        for key, item in items:
            if isinstance(key, str) and _SURROGATE_RE.search(key):
                problems.append(Problem(join(path, ascii(key)), "this key is not valid Unicode text (it holds a lone "
                                                                "surrogate)"))
                continue
            stack.append((item, join(path, key)))
    problems.sort(key=lambda p: p.path)
    return problems


_SURROGATE_RE = re.compile("[\ud800-\udfff]")


def join(path: str, key: object) -> str:
    """`path.key` (just `key` at the root)."""
    return f"{path}.{key}" if path else str(key)


