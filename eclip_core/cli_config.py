"""Dataclass configs as command-line flags: the one helper every front end builds its parser with.

A front end makes a :class:`ConfigParser` (an ``argparse.ArgumentParser``), adds the dataclasses whose
fields become flags (:meth:`ConfigParser.add_dataclass`, nested dataclasses included) and a
``--config FILE`` option (:meth:`ConfigParser.add_config_option`), parses, and asks for the config
(:meth:`ConfigParser.config`). A config is built from, in this order (later wins): the dataclass's
defaults, the caller's ``defaults``, the JSON/YAML file, the flags given, the caller's ``overrides``; then
the dataclass's own ``validate()`` runs. Every problem is an :class:`~eclip_core.errors.ConfigError` that
says which flag or field, what was given and what is allowed.

Field -> flag:

* name: ``--field-name``; a nested dataclass's fields are ``--<parent>-<field>`` (its field's metadata
  ``prefix``, or the ``prefix`` argument, changes that; ``""`` puts them at the top level).
* type, from the annotation: ``int``, ``float``, ``str``, ``Path``, ``dict`` (JSON text), ``bool``
  (``--x`` / ``--no-x``), ``X | None`` (the word ``none`` gives None), ``list[X]`` / ``tuple[X, ...]``
  (one or more values), ``tuple[X, Y]`` (exactly two), ``Literal[...]`` (its values are the choices).
* help: the field's metadata ``help``, else the comment just above the field (``#:`` or ``#``) or after it
  on its line.
* field metadata (all optional, e.g. ``field(default="auto", metadata=cli(choices=MODES))``):
  ``choices``, ``help``, ``flags`` (the flag names instead of ``--field-name``), ``none`` (the words that mean
  None), ``metavar``, ``append`` (a list flag given once per value), ``prefix`` (for a nested dataclass),
  ``shorthand`` (a nested dataclass given as one value in a file sets this field of it), ``cli=False``
  (no flag).

>>> from dataclasses import dataclass, field
>>> @dataclass
... class Demo:
...     k: int = 5
...     mode: str = field(default="a", metadata=cli(choices=("a", "b")))
...     floor: float | None = None
...     fast: bool = False
>>> parser = ConfigParser(prog="demo")
>>> parser.add_dataclass(Demo)
>>> parser.config(parser.parse_args(["--k", "3", "--fast", "--floor", "none"]), Demo)
Demo(k=3, mode='a', floor=None, fast=True)
>>> parser.parse_args(["--mode", "c"])
Traceback (most recent call last):
...
eclip_core.errors.ConfigError: --mode (Demo.mode): 'c' is not one of a, b
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import inspect
import json
import os
import re
import textwrap
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eclip_core.config import deep_update
from eclip_core.errors import ConfigError, EClipError

#: Words that mean None for an ``X | None`` field (case-insensitive) unless its metadata says otherwise.
NONE_WORDS = ("none", "null")
_SCALARS = (int, float, str, bool, Path, dict)


def cli(
    *,
    help: str | None = None,
    choices: Sequence[Any] | None = None,
    flags: str | Sequence[str] | None = None,
    none: Sequence[str] | None = None,
    metavar: str | None = None,
    append: bool | None = None,
    prefix: str | None = None,
    shorthand: str | None = None,
    hidden: bool = False,
) -> dict[str, Any]:
    """Field metadata for the command line (only what is given): ``field(default=..., metadata=cli(...))``.

    >>> cli(choices=("a", "b"), flags="--alpha")
    {'choices': ('a', 'b'), 'flags': ('--alpha',)}
    """
    out: dict[str, Any] = {}
    for key, value in (
        ("help", help),
        ("choices", None if choices is None else tuple(choices)),
        ("flags", (flags,) if isinstance(flags, str) else None if flags is None else tuple(flags)),
        ("none", None if none is None else tuple(none)),
        ("metavar", metavar),
        ("append", append),
        ("prefix", prefix),
        ("shorthand", shorthand),
    ):
        if value is not None:
            out[key] = value
    if hidden:
        out["cli"] = False
    return out


# ---------------------------------------------------------------------------------------------- types
@dataclass(frozen=True)
class Kind:
    """What an annotation accepts: a scalar ``base`` (or a dataclass), optional (None allowed), and a
    container (list / tuple, with a fixed ``length`` for ``tuple[X, Y]``)."""

    base: Any
    optional: bool = False
    container: type | None = None
    length: int | None = None
    literal: tuple | None = None

    @property
    def is_dataclass(self) -> bool:
        return self.container is None and dataclasses.is_dataclass(self.base)

    def describe(self) -> str:
        names = {
            int: "an integer",
            float: "a number",
            str: "text",
            bool: "true or false",
            Path: "a path",
            dict: "a JSON object",
        }
        one = names.get(self.base, getattr(self.base, "__name__", str(self.base)))
        if self.container is not None:
            one = f"a list of {_plural(one)}" if self.length is None else f"{self.length} values ({_plural(one)})"
        return one + (" or none" if self.optional else "")


def _plural(text: str) -> str:
    return {
        "an integer": "integers",
        "a number": "numbers",
        "text": "texts",
        "true or false": "booleans",
        "a path": "paths",
        "a JSON object": "JSON objects",
    }.get(text, text)


def kind_of(tp: Any) -> Kind:
    """The :class:`Kind` of a (resolved) annotation.

    >>> kind_of(int | None)
    Kind(base=<class 'int'>, optional=True, container=None, length=None, literal=None)
    >>> kind_of(tuple[float, float]).length, kind_of(list[str]).container
    (2, <class 'list'>)
    """
    optional = False
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        if len(args) != 1:
            raise TypeError(f"unsupported union {tp!r}: one type (or it | None) per field")
        tp = args[0]
        origin = typing.get_origin(tp)
    if origin is typing.Literal:
        values = typing.get_args(tp)
        return Kind(type(values[0]), optional, literal=tuple(values))
    if tp in (list, tuple):
        return Kind(str, optional, tp)
    if origin in (list, tuple, Sequence, typing.Sequence, set, frozenset):
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        fixed = origin is tuple and typing.get_args(tp)[-1:] != (Ellipsis,) and len(args) > 0
        inner = kind_of(args[0]) if args else Kind(str)
        container = tuple if origin is tuple else list
        return Kind(inner.base, optional, container, len(args) if fixed else None, inner.literal)
    if origin in (dict, Mapping, typing.Mapping) or tp is dict:
        return Kind(dict, optional)
    if tp is Any:
        return Kind(str, optional)
    if tp in _SCALARS or dataclasses.is_dataclass(tp) or isinstance(tp, type):
        return Kind(tp, optional)
    raise TypeError(f"unsupported field type {tp!r}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


@dataclass(frozen=True)
class FieldSpec:
    """One dataclass field seen from the command line: where it sits (``path`` below the config class
    ``root``), what it accepts, its choices and help."""

    root: type
    path: tuple[str, ...]
    owner: type
    name: str
    kind: Kind
    choices: tuple | None
    none_words: tuple[str, ...]
    help: str
    default: Any
    metadata: Mapping[str, Any]

    @property
    def dotted(self) -> str:
        return ".".join(self.path)

    @property
    def label(self) -> str:
        return f"{self.owner.__name__}.{self.name}"

    def coerce(self, value: Any, where: str) -> Any:
        """``value`` (text from a flag or a file, or an already typed value) as this field's type; a
        ConfigError naming ``where`` otherwise."""
        return _coerce(value, self.kind, self.choices, self.none_words, where)


def field_specs(
    cls: type, *, root: type | None = None, path: tuple[str, ...] = ()
) -> list[tuple[FieldSpec, dataclasses.Field]]:
    """Every field of ``cls`` (not descending into nested dataclasses) with its spec."""
    root = root or cls
    hints = _hints(cls)
    comments = field_comments(cls)
    out = []
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        kind = kind_of(hints[f.name])
        meta = f.metadata or {}
        choices = tuple(meta["choices"]) if "choices" in meta else kind.literal
        none_words = tuple(meta.get("none", NONE_WORDS)) if kind.optional else ()
        default = (
            f.default
            if f.default is not dataclasses.MISSING
            else f.default_factory()
            if f.default_factory is not dataclasses.MISSING
            else None
        )
        out.append(
            (
                FieldSpec(
                    root,
                    (*path, f.name),
                    cls,
                    f.name,
                    kind,
                    choices,
                    none_words,
                    meta.get("help") or comments.get(f.name, ""),
                    default,
                    meta,
                ),
                f,
            )
        )
    return out


# ------------------------------------------------------------------------------------- conversion
def _fail(where: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {message}")


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _coerce(value: Any, kind: Kind, choices: tuple | None, none_words: tuple[str, ...], where: str) -> Any:
    if value is None or (isinstance(value, str) and kind.optional and value.strip().lower() in none_words):
        if kind.optional:
            return None
        raise _fail(where, f"none is not allowed here (give {kind.describe()})")
    if kind.container is not None:
        if isinstance(value, str) and kind.container is not None and value.strip().startswith("["):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if kind.length is not None and len(items) != kind.length:
            raise _fail(where, f"{_show(value)} has {len(items)} value(s); give exactly {kind.length}")
        element = Kind(kind.base)
        out = [_coerce(v, element, choices, (), where) for v in items]
        return tuple(out) if kind.container is tuple else out
    if isinstance(value, bool) and kind.base is str:
        # YAML 1.1 reads unquoted off / no / on / yes as booleans: take the choice that was meant.
        meant = [c for c in choices or () if str(c).lower() in _YAML_BOOL_WORDS[value]]
        if len(meant) == 1:
            return meant[0]
        raise _fail(
            where, f"{value!r} is not text (YAML reads unquoted on / off / yes / no as true or false: quote the value)"
        )
    typed = _scalar(value, kind, where)
    if choices is not None and typed not in choices:
        allowed = ", ".join(str(c) for c in choices)
        extra = f"; or {none_words[0]}" if kind.optional and none_words else ""
        raise _fail(where, f"{_show(value)} is not one of {allowed}{extra}")
    return typed


_YAML_BOOL_WORDS = {True: ("on", "yes", "true", "y"), False: ("off", "no", "false", "n")}


def _scalar(value: Any, kind: Kind, where: str) -> Any:
    base = kind.base
    bad = _fail(where, f"{_show(value)} is not {Kind(base).describe()}")
    if kind.is_dataclass:
        if isinstance(value, base):
            return value
        raise bad
    if base is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.strip().lower() in ("true", "yes", "on", "1")
        raise bad
    if base is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if base is float:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):  # also YAML's "3e-4" (PyYAML reads it as text)
            try:
                return float(value.strip())
            except ValueError:
                raise bad from None
        raise bad
    if base is dict:
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, str):
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError:
                raise bad from None
            if isinstance(parsed, dict):
                return parsed
        raise bad
    if base is str or base is Path:
        if isinstance(value, (str, Path)) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return base(str(value)) if base is Path else str(value)
        raise bad
    if isinstance(value, base):
        return value
    try:
        return base(value)
    except (TypeError, ValueError):
        raise bad from None


def coerce_mapping(cls: type, data: Mapping[str, Any], source: str, *, _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` (e.g. a config file's mapping) checked against ``cls``: unknown fields and bad values are
    ConfigErrors naming ``source`` and the field; nested dataclasses are mappings of their own."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.init}
    if not isinstance(data, Mapping):
        where = f"{source}: {'.'.join(_path)}" if _path else source
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    specs = {spec.name: spec for spec, _ in field_specs(cls, path=_path)}
    unknown = [k for k in data if k not in specs]
    if unknown:
        where = f"{source}: {'.'.join(_path)}" if _path else source
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), list(specs), n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(f"{where}: unknown {cls.__name__} field(s) {', '.join(hints)}; known: {', '.join(specs)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = specs[key]
        where = f"{source}: {spec.dotted}"
        if spec.kind.is_dataclass and value is not None:
            if not isinstance(value, (Mapping, spec.kind.base)) and spec.metadata.get("shorthand"):
                value = {spec.metadata["shorthand"]: value}
            out[key] = coerce_mapping(spec.kind.base, value, source, _path=spec.path)
        else:
            out[key] = spec.coerce(value, where)
    return out


def instantiate(cls: type, data: Mapping[str, Any]):
    """``cls`` from a mapping :func:`coerce_mapping` checked (nested mappings become nested dataclasses)."""
    kwargs = {}
    for spec, _ in field_specs(cls):
        if spec.name not in data:
            continue
        value = data[spec.name]
        if spec.kind.is_dataclass and isinstance(value, Mapping):
            value = instantiate(spec.kind.base, value)
        kwargs[spec.name] = value
    return cls(**kwargs)


def validated(obj: Any) -> Any:
    """Run ``obj.validate()`` when it has one; any bad-input error it raises becomes a ConfigError."""
    check = getattr(obj, "validate", None)
    if not callable(check):
        return obj
    try:
        result = check()
    except ConfigError:
        raise
    except (EClipError, ValueError) as exc:
        raise ConfigError(f"{type(obj).__name__}: {exc}") from exc
    return result if isinstance(result, type(obj)) else obj


def from_mapping(cls: type, data: Mapping[str, Any], source: str = "config"):
    """A validated ``cls`` from a plain mapping (a parsed file, a JSON body): strict field names, typed
    values, the dataclass's own ``validate()``.

    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Two:
    ...     n: int = 1
    >>> from_mapping(Two, {"n": "4"})
    Two(n=4)
    >>> from_mapping(Two, {"m": 4})
    Traceback (most recent call last):
    ...
    eclip_core.errors.ConfigError: config: unknown Two field(s) 'm'; known: n
    """
    return validated(instantiate(cls, coerce_mapping(cls, data, source)))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON or YAML file's top-level mapping (ConfigError naming the file when it is missing, unreadable
    or not a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml and json raise different types; both mean "unreadable"
        raise ConfigError(
            f"config file {path} is not valid {path.suffix.lstrip('.').upper() or 'JSON'}: {exc}"
        ) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of field names at top level, got {type(data).__name__}"
        )
    return data


# ------------------------------------------------------------------------------------------- help
@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the comment lines just above it in the class body (``#:`` or ``#``), or the comment
    after it on its line; base classes' fields included. Empty when the source is not available."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__[:-1]):
        if dataclasses.is_dataclass(klass):
            out.update(_own_comments(klass))
    return out


_FIELD_LINE = re.compile(r"^(\w+)\s*:\s*[^=]+(?:=.*)?$")


def _own_comments(cls: type) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("class ")), None)
    if start is None:
        return {}
    body = [line for line in lines[start + 1 :] if line.strip()]
    if not body:
        return {}
    indent = len(body[0]) - len(body[0].lstrip())
    out: dict[str, str] = {}
    pending: list[str] = []
    in_string = False
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            pending = []
            continue
        level = len(line) - len(line.lstrip())
        quotes = stripped.count('"""') + stripped.count("'''")
        if in_string or (level == indent and quotes and stripped.startswith(('"""', "'''", 'r"""'))):
            if quotes % 2 == 1:
                in_string = not in_string
            pending = []
            continue
        if level != indent:
            continue
        if stripped.startswith("#"):
            pending.append(stripped)
            continue
        code, _, inline = stripped.partition("  # ")
        match = _FIELD_LINE.match(code.strip())
        if match:
            if len(pending) == 1 and _is_heading(pending[0]):
                pending = []  # "# Runtime." names the fields below it; it is no field's help
            comments = [re.sub(r"^#:?\s?", "", p).strip() for p in pending]
            text = " ".join(c for c in comments if c) or inline.strip()
            if text:
                out[match.group(1)] = text
        pending = []
    return out


def _is_heading(comment: str) -> bool:
    """A one-line plain comment of a few words ending in a full stop heads a group of fields
    ("# Runtime."); a ``#:`` comment is always the field's own."""
    return not comment.startswith("#:") and comment.endswith(".") and len(comment.split()) <= 5


def _show_default(value: Any) -> str:
    if value == "":
        return "empty"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value) if value else "none given"
    return str(value)


def _metavar(spec: FieldSpec) -> str:
    if "metavar" in spec.metadata:
        return spec.metadata["metavar"]
    if spec.choices is not None:
        words = [str(c) for c in spec.choices]
        if spec.kind.optional and spec.default is not None and spec.none_words:
            words.append(spec.none_words[0])
        return "{" + ",".join(words) + "}"
    name = {int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH", dict: "JSON"}.get(spec.kind.base, "VALUE")
    if spec.kind.optional and spec.default is not None and spec.none_words:
        name += "|" + spec.none_words[0]
    return name


def _choices_text(spec: FieldSpec) -> str:
    return ", ".join(str(c) for c in spec.choices or ())


def _help_text(spec: FieldSpec, shown_default: str | None = None) -> str:
    text = spec.help.strip()
    default = _show_default(spec.default) if shown_default is None else shown_default
    tail = f"default: {default}"
    text = f"{text} ({tail})" if text else f"({tail})"
    return text.replace("%", "%%")


# ----------------------------------------------------------------------------------------- parser
class _FlagValueError(Exception):
    """A flag's value is not what its field accepts (raised inside argparse, re-raised as ConfigError)."""


@dataclass
class FlagBinding:
    """One flag on the parser and the field(s) it sets (several when configs share it)."""

    flags: tuple[str, ...]
    dest: str
    targets: list[FieldSpec] = field(default_factory=list)
    action: argparse.Action | None = None


class ConfigParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that knows which of its flags set which dataclass fields.

    Sub-parsers made with ``add_subparsers().add_parser`` are ConfigParsers too. A value a field does not
    accept raises :class:`~eclip_core.errors.ConfigError` out of ``parse_args`` (a front end prints it, or
    calls ``parser.error`` with it); argparse's own errors (an unknown flag) exit as usual.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bindings: dict[str, FlagBinding] = {}  # by dest
        self._roots: list[type] = []
        self._config_dest: str | None = None
        self._shown_defaults: dict[str, str] = {}

    # -- building ----------------------------------------------------------------------------------
    def add_dataclass(
        self,
        cls: type,
        *,
        title: str | None = None,
        flags: Mapping[str, str | Sequence[str]] | None = None,
        prefix: Mapping[str, str] | None = None,
        exclude: Iterable[str] = (),
        share: bool = False,
        help_prefix: str = "",
        shown_defaults: Mapping[str, str] | None = None,
    ) -> None:
        """A flag for every field of ``cls`` (and of its nested dataclasses), in an argument group.

        ``flags``: dotted field path -> flag name(s), instead of the metadata's or ``--field-name``;
        ``prefix``: dotted path of a nested dataclass field -> prefix of its fields' flags;
        ``exclude``: dotted paths without a flag; ``share``: a flag another config on this parser already
        has sets this config's field too (e.g. ``--manifest`` of several benchmark suites);
        ``help_prefix``: put before each flag's help (e.g. "embedding suite: "); ``shown_defaults``: dotted
        path -> the default the help states, where the front end's default differs from the dataclass's.
        """
        if cls in self._roots:
            raise ValueError(f"{cls.__name__} is already on this parser")
        self._roots.append(cls)
        group = self.add_argument_group(title or f"{cls.__name__} (every flag is a field)")
        self._shown_defaults = dict(shown_defaults or {})
        self._add_fields(
            cls, cls, (), "", group, dict(flags or {}), dict(prefix or {}), set(exclude), share, help_prefix
        )

    def _add_fields(
        self,
        root: type,
        cls: type,
        path: tuple[str, ...],
        flag_prefix: str,
        group,
        flags: dict,
        prefixes: dict,
        exclude: set,
        share: bool,
        help_prefix: str,
    ) -> None:
        nested = []
        for spec, _f in field_specs(cls, root=root, path=path):
            if spec.dotted in exclude or spec.metadata.get("cli", True) is False:
                continue
            if spec.kind.is_dataclass:
                nested.append(spec)
                continue
            names = flags.get(spec.dotted, spec.metadata.get("flags"))
            names = (names,) if isinstance(names, str) else tuple(names or ())
            if not names:
                names = ("--" + flag_prefix + spec.name.replace("_", "-"),)
            self._add_flag(spec, names, group, share, help_prefix)
        for spec in nested:
            sub_prefix = prefixes.get(
                spec.dotted, spec.metadata.get("prefix", flag_prefix + spec.name.replace("_", "-") + "-")
            )
            sub_group = self.add_argument_group(f"{spec.kind.base.__name__} ({root.__name__}.{spec.dotted})")
            self._add_fields(
                root, spec.kind.base, spec.path, sub_prefix, sub_group, flags, prefixes, exclude, share, help_prefix
            )

    def _add_flag(self, spec: FieldSpec, names: tuple[str, ...], group, share: bool, help_prefix: str) -> None:
        dest = names[0].lstrip("-").replace("-", "_")
        existing = self._bindings.get(dest)
        if existing is not None:
            if not share or existing.flags[0] != names[0]:
                raise ValueError(f"flag {names[0]} of {spec.label} is already taken by {existing.targets[0].label}")
            same = existing.targets[0]
            if (same.kind.base, same.kind.container, same.kind.length) != (
                spec.kind.base,
                spec.kind.container,
                spec.kind.length,
            ):
                raise ValueError(f"{spec.label} cannot share {names[0]} with {same.label}: their types differ")
            existing.targets.append(spec)
            action = existing.action
            if same.choices != spec.choices and action is not None and action.type is not None:
                # Each config checks its own choices when it is built; the help lists them all.
                action.type = self._flag_type(existing, check_choices=False)
                action.metavar = "NAME"
                if len(existing.targets) == 2:
                    action.help = action.help[:-1] + f"; one of: {_choices_text(same)})"
            if action is not None and action.help:
                also = f" Also {spec.label}"
                if spec.default != same.default:
                    also += f" (default: {_show_default(spec.default)}"
                    also += f"; one of: {_choices_text(spec)})" if same.choices != spec.choices else ")"
                action.help += (also + ".").replace("%", "%%")
            return
        binding = FlagBinding(names, dest, [spec])
        text = _help_text(spec, self._shown_defaults.get(spec.dotted))
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": help_prefix + text}
        if spec.kind.base is bool and spec.kind.container is None:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = self._flag_type(binding)
            kwargs["metavar"] = _metavar(spec)
            if spec.kind.container is not None:
                if spec.metadata.get("append"):
                    kwargs["action"] = "append"
                else:
                    kwargs["nargs"] = spec.kind.length or "+"
        binding.action = group.add_argument(*names, **kwargs)
        self._bindings[dest] = binding

    @staticmethod
    def _flag_type(binding: FlagBinding, check_choices: bool = True):
        spec = binding.targets[0]
        element = Kind(spec.kind.base, spec.kind.optional if spec.kind.container is None else False)
        choices = spec.choices if check_choices else None
        none_words = spec.none_words if spec.kind.container is None else ()

        def parse(text: str) -> Any:
            try:
                return _coerce(text, element, choices, none_words, f"{binding.flags[0]} ({spec.label})")
            except ConfigError as exc:
                raise _FlagValueError(str(exc)) from None

        parse.__name__ = getattr(spec.kind.base, "__name__", "value")
        return parse

    def add_config_option(self, flag: str = "--config", help: str | None = None) -> None:
        """``--config FILE``: a JSON or YAML mapping of the config's fields, read before the flags."""
        dest = flag.lstrip("-").replace("-", "_")
        names = ", ".join(c.__name__ for c in self._roots) or "config"
        self.add_argument(
            flag,
            dest=dest,
            default=None,
            metavar="FILE",
            help=help or f"JSON or YAML file of {names} fields; flags given override it",
        )
        self._config_dest = dest

    # -- parsing -----------------------------------------------------------------------------------
    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001 - argparse's signature
        try:
            return super().parse_known_args(args, namespace)
        except _FlagValueError as exc:
            raise ConfigError(str(exc)) from None

    def bindings(self, cls: type | None = None) -> list[FlagBinding]:
        """The dataclass flags (of ``cls``'s config only, when given)."""
        return [b for b in self._bindings.values() if cls is None or any(t.root is cls for t in b.targets)]

    def flags_of(self, cls: type) -> dict[str, tuple[str, ...]]:
        """Dotted field path of ``cls`` -> its flag names (fields without a flag are absent)."""
        return {t.dotted: b.flags for b in self._bindings.values() for t in b.targets if t.root is cls}

    def given(self, namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
        """The flags given for ``cls``'s fields, as a nested mapping of typed values."""
        out: dict[str, Any] = {}
        for binding in self._bindings.values():
            if not hasattr(namespace, binding.dest):
                continue
            value = getattr(namespace, binding.dest)
            for spec in binding.targets:
                if spec.root is not cls:
                    continue
                where = f"{binding.flags[0]} ({spec.label})"
                node = out
                for part in spec.path[:-1]:
                    node = node.setdefault(part, {})
                node[spec.name] = spec.coerce(value, where)
        return out

    def file_values(self, namespace: argparse.Namespace, cls: type, *others: type) -> dict[str, Any]:
        """``cls``'s part of the ``--config`` file (checked and typed); with ``others``, the file's keys are
        shared out among ``cls`` and ``others`` by field name."""
        path = getattr(namespace, self._config_dest, None) if self._config_dest else None
        if not path:
            return {}
        return split_file(read_config_file(path), (cls, *others), f"config file {path}")[cls]

    def values(self, namespace: argparse.Namespace, cls: type, *others: type) -> dict[str, Any]:
        """File then flags for ``cls``, merged (what the user set; no defaults)."""
        return deep_update(self.file_values(namespace, cls, *others), self.given(namespace, cls))

    def config(
        self,
        namespace: argparse.Namespace,
        cls: type,
        *,
        defaults: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        file_shared_with: Sequence[type] = (),
    ):
        """The validated ``cls``: its defaults < ``defaults`` < the ``--config`` file < flags < ``overrides``."""
        if cls not in self._roots:
            raise ValueError(f"{cls.__name__} was not added to this parser")
        data: dict[str, Any] = {}
        if defaults:
            deep_update(data, coerce_mapping(cls, defaults, f"{self.prog} defaults"))
        deep_update(data, self.values(namespace, cls, *file_shared_with))
        if overrides:
            deep_update(data, coerce_mapping(cls, overrides, self.prog))
        return validated(instantiate(cls, data))


def split_file(data: Mapping[str, Any], classes: Sequence[type], source: str) -> dict[type, dict[str, Any]]:
    """A config file's mapping shared out among ``classes`` by field name (the first class with the
    field takes it), each part checked; a key no class has is a ConfigError listing them all."""
    if len(classes) == 1:
        return {classes[0]: coerce_mapping(classes[0], data, source)}
    names = [{f.name for f in dataclasses.fields(c)} for c in classes]
    parts: dict[type, dict[str, Any]] = {c: {} for c in classes}
    unknown = []
    for key, value in data.items():
        owner = next((c for c, n in zip(classes, names) if key in n), None)
        if owner is None:
            unknown.append(key)
        else:
            parts[owner][key] = value
    if unknown:
        known = ", ".join(sorted(set().union(*names)))
        raise ConfigError(
            f"{source}: unknown field(s) {', '.join(map(repr, unknown))} "
            f"(of {' / '.join(c.__name__ for c in classes)}); known: {known}"
        )
    return {c: coerce_mapping(c, part, source) for c, part in parts.items()}
