"""Dataclass configs as command-line flags and config files: argparse builds the flags, pydantic checks the values.

A front end makes a :class:`ConfigParser` (an ``argparse.ArgumentParser``), adds the dataclasses whose fields
become flags (:meth:`~ConfigParser.add_dataclass`, nested dataclasses included) and ``--config FILE``
(:meth:`~ConfigParser.add_config_option`), parses, and asks for the config (:meth:`~ConfigParser.config`):
the dataclass's defaults < the caller's ``defaults`` < the JSON/YAML file < the flags < the caller's
``overrides``, then the dataclass's ``validate()``. Each source is checked by pydantic against a ``TypedDict``
of the dataclass's fields (:func:`schema`); every bad value is a :class:`~eclip_core.errors.ConfigError`
naming the flag or field, the value and what is allowed.

Field -> flag: ``--field-name`` (a nested dataclass's fields ``--<parent>-<field>``); ``bool`` gives ``--x`` /
``--no-x``, ``X | None`` takes the word ``none``, ``list[X]`` / ``tuple[X, ...]`` one or more values. The help
is the ``#:`` comment above the field. Field metadata, e.g.
``field(default="a", metadata=cli(choices=MODES))``: see :func:`cli`; bounds are pydantic's, in the type
(``lr: Annotated[float, pydantic.Field(gt=0)]``).

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
>>> parser.config(parser.parse_args(["--mode", "c"]), Demo)
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
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import pydantic
import typing_extensions
import yaml

from eclip_core.errors import ConfigError, EClipError

#: Words that mean None for an ``X | None`` field (case-insensitive) unless its metadata says otherwise.
NONE_WORDS = ("none", "null")
#: What a pydantic error's type (its first word) asked for.
_NAMES = {"int": "an integer", "float": "a number", "string": "text", "bool": "true or false", "path": "a path"}


#: What :func:`cli` takes.
CLI_KEYS = ("help", "choices", "flags", "none", "metavar", "append", "prefix", "shorthand", "hidden")


def cli(**meta: Any) -> dict[str, Any]:
    """Field metadata for the command line: ``choices``, ``help`` (instead of the comment), ``flags`` (instead
    of ``--field-name``), ``none`` (the words meaning None), ``metavar``, ``append`` (a list flag given once per
    value), ``prefix`` (of a nested dataclass's flags), ``shorthand`` (a file's plain value for a nested
    dataclass sets this field of it), ``hidden=True`` (no flag).

    >>> cli(choices=("a", "b"), flags="--alpha")
    {'choices': ('a', 'b'), 'flags': ('--alpha',)}
    """
    if set(meta) - set(CLI_KEYS):
        raise TypeError(f"cli() takes {', '.join(CLI_KEYS)}; got {', '.join(sorted(set(meta) - set(CLI_KEYS)))}")
    if isinstance(meta.get("flags"), str):
        meta["flags"] = (meta["flags"],)
    return {k: tuple(v) if k in ("choices", "flags", "none") else v for k, v in meta.items()}


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One init field of the dataclass ``owner`` at ``path`` below a config class: its type without None
    (``hint``), a list's or tuple's items (``element``), the words meaning None (an optional field), the
    field's metadata, help and default."""

    owner: type
    path: tuple[str, ...]
    hint: Any
    element: Any
    container: type | None
    none_words: tuple[str, ...]
    meta: Mapping[str, Any]
    help: str
    default: Any

    @property
    def nested(self) -> type | None:
        return self.hint if dataclasses.is_dataclass(self.hint) else None


def field_specs(cls: type, path: tuple[str, ...] = ()) -> list[FieldSpec]:
    """Every init field of ``cls`` (not descending into nested dataclasses)."""
    hints, comments, out = typing.get_type_hints(cls, include_extras=True), field_comments(cls), []
    for f in [f for f in dataclasses.fields(cls) if f.init]:
        args = typing.get_args(hints[f.name])
        optional = typing.get_origin(hints[f.name]) in (typing.Union, types.UnionType) and type(None) in args
        hint = next(a for a in args if a is not type(None)) if optional else hints[f.name]
        plain = typing.get_args(hint)[0] if typing.get_origin(hint) is Annotated else hint  # bounds: pydantic's
        origin, inner = typing.get_origin(plain), [a for a in typing.get_args(plain) if a is not Ellipsis]
        container = tuple if origin is tuple else list if origin in (list, Sequence) else None
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        none = tuple(f.metadata.get("none", NONE_WORDS)) if optional else ()
        help_text = f.metadata.get("help") or comments.get(f.name, "")
        element = inner[0] if container else plain
        out.append(FieldSpec(cls, (*path, f.name), hint, element, container, none, f.metadata, help_text,
                             None if default is dataclasses.MISSING else default))  # fmt: skip
    return out


# ------------------------------------------------------------------------------ checking values
def _before(spec: FieldSpec, value: Any) -> Any:
    """A value as pydantic should see it: none words -> None, one value -> a list of it, a shorthand -> a
    mapping."""
    if isinstance(value, str) and value.strip().lower() in spec.none_words:
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if spec.nested and "shorthand" in spec.meta and value is not None and not isinstance(value, Mapping):
        return {spec.meta["shorthand"]: value}
    return [value] if spec.container and not isinstance(value, (list, tuple, type(None))) else value


def _after(spec: FieldSpec, value: Any) -> Any:
    """The field's choices, checked for each value."""
    choices = spec.meta.get("choices")
    for item in [] if value is None or choices is None else value if spec.container else [value]:
        if item not in choices:
            extra = f"; or {spec.none_words[0]}" if spec.none_words else ""
            raise ValueError(f"{_show(item)} is not one of {', '.join(map(str, choices))}{extra}")
    return value


@functools.cache
def _typed_dict(cls: type) -> Any:
    """``cls``'s fields as a ``TypedDict`` (any may be left out; unknown keys refused), each with the checks above."""
    fields = {}
    for spec in field_specs(cls):
        hint = _typed_dict(spec.nested) if spec.nested else spec.hint
        fields[spec.path[-1]] = Annotated[
            hint | None if spec.none_words else hint,
            pydantic.BeforeValidator(functools.partial(_before, spec)),
            pydantic.AfterValidator(functools.partial(_after, spec)),
        ]
    out = typing_extensions.TypedDict(cls.__name__, fields, total=False)  # type: ignore[operator]
    out.__pydantic_config__ = pydantic.ConfigDict(extra="forbid", coerce_numbers_to_str=True)
    return out


@functools.cache
def schema(cls: type) -> pydantic.TypeAdapter:
    """The pydantic adapter that checks a mapping of ``cls``'s fields (nested mappings for nested dataclasses)."""
    return pydantic.TypeAdapter(_typed_dict(cls))


def check(cls: type, data: Any, where: Callable[[tuple[str, ...]], str]) -> dict[str, Any]:
    """``data`` (a mapping of ``cls``'s fields) with typed values; a ConfigError naming ``where(field path)``
    for an unknown field or a bad value."""
    try:
        return schema(cls).validate_python(data)
    except pydantic.ValidationError as exc:
        raise ConfigError(_message(cls, exc, where)) from None


def check_fields(obj: Any) -> None:
    """The dataclass ``obj``'s fields (nested ones too) against their types, choices and bounds, as a file's
    are: a ConfigError naming the field, the value and what is allowed (for a ``validate()`` method)."""
    check(type(obj), dataclasses.asdict(obj), _in(type(obj).__name__))


def _message(cls: type, exc: pydantic.ValidationError, where: Callable[[tuple[str, ...]], str]) -> str:
    error = exc.errors()[0]
    path = tuple(p for p in error["loc"] if isinstance(p, str))
    if error["type"] == "extra_forbidden":
        owner = cls
        for name in path[:-1]:
            owner = next(s.nested for s in field_specs(owner) if s.path[-1] == name)
        known = [s.path[-1] for s in field_specs(owner)]
        unknown = [
            e["loc"][-1] for e in exc.errors() if e["type"] == error["type"] and e["loc"][:-1] == error["loc"][:-1]
        ]
        hints = [f"{k!r}" + "".join(f" (did you mean {c!r}?)" for c in difflib.get_close_matches(str(k), known, 1))
                 for k in unknown]  # fmt: skip
        return f"{where(path[:-1])}: unknown {owner.__name__} field(s) {', '.join(hints)}; known: {', '.join(known)}"
    kind = error["type"].split("_")[0]
    if error["type"] == "value_error":
        text = str(error["ctx"]["error"])
    elif error["input"] is None:
        text = f"none is not allowed here (give {_NAMES.get(kind, 'a value')})"
    elif kind == "dict":
        text = f"expected a mapping of fields, got {type(error['input']).__name__}"
    elif kind in _NAMES:
        text = f"{_show(error['input'])} is not {_NAMES[kind]}"
    else:  # a bound (greater_than, ...): pydantic's words
        text = f"{_show(error['input'])}: {error['msg'][0].lower()}{error['msg'][1:]}"
    return f"{where(path)}: {text}"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# ------------------------------------------------------------------------------ mappings and files
def _in(source: str) -> Callable[[tuple[str, ...]], str]:
    return lambda path: f"{source}: {'.'.join(path)}" if path else source


def instantiate(cls: type, data: Mapping[str, Any]) -> Any:
    """``cls`` from a mapping :func:`check` returned (nested mappings become nested dataclasses)."""
    nested = {spec.path[-1]: spec.nested for spec in field_specs(cls)}
    return cls(**{k: instantiate(nested[k], v) if nested[k] and isinstance(v, Mapping) else v for k, v in data.items()})


def validated(obj: Any) -> Any:
    """Run ``obj.validate()`` when it has one; any bad-input error it raises becomes a ConfigError."""
    try:
        result = obj.validate() if callable(getattr(obj, "validate", None)) else obj
    except ConfigError:
        raise
    except (EClipError, ValueError) as exc:
        raise ConfigError(f"{type(obj).__name__}: {exc}") from exc
    return result if isinstance(result, type(obj)) else obj


def from_mapping(cls: type, data: Mapping[str, Any], source: str = "config") -> Any:
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
    return validated(instantiate(cls, check(cls, data, _in(source))))


class _Yaml(yaml.SafeLoader):
    """YAML 1.2's booleans: only true / false; YAML 1.1's yes / no / on / off stay words (``label_boost: off``
    is the mode; a bool field reads them as pydantic does)."""


_Yaml.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON or YAML file's top-level mapping (ConfigError naming the file when it is missing, unreadable
    or not a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_Yaml) if yaml_file else json.loads(text)  # noqa: S506 - a safe loader
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} is not valid {'YAML' if yaml_file else 'JSON'}: {exc}") from exc
    if not isinstance(data, (dict, type(None))):
        raise ConfigError(
            f"config file {path} must hold a mapping of field names at top level, got {type(data).__name__}"
        )
    return data or {}


def deep_update(base: dict, update: Mapping) -> dict:
    """Merge ``update`` into ``base`` in place, recursing into nested dicts; returns ``base``.

    >>> deep_update({"a": {"b": 1, "c": 2}}, {"a": {"c": 3}, "d": 4})
    {'a': {'b': 1, 'c': 3}, 'd': 4}
    """
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            deep_update(base[key], value)
        else:
            base[key] = dict(value) if isinstance(value, Mapping) else value
    return base


# ------------------------------------------------------------------------------------------- help
@functools.cache
def field_comments(cls: type) -> dict[str, str]:
    """Field name -> the ``#:`` comment lines just above it (base classes' fields included)."""
    out: dict[str, str] = {}
    for klass in [k for k in reversed(cls.__mro__[:-1]) if dataclasses.is_dataclass(k)]:
        try:
            lines, pending = textwrap.dedent(inspect.getsource(klass)).splitlines(), []
        except (OSError, TypeError):
            continue
        for line in lines[1:]:
            if line.strip().startswith("#:"):
                pending.append(line.strip()[2:].strip())
                continue
            name = re.match(r" {4}(\w+)\s*:", line)
            if name and pending:
                out[name.group(1)] = " ".join(p for p in pending if p)
            pending = []
    return out


def show_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none given"
    return {"": "empty", None: "none"}.get(value, str(value)) if isinstance(value, (str, type(None))) else str(value)


def _metavar(spec: FieldSpec) -> str:
    words = [str(c) for c in spec.meta.get("choices") or ()]
    none = [spec.none_words[0]] if spec.none_words and spec.default is not None else []
    if "metavar" in spec.meta:
        return spec.meta["metavar"]
    if words:
        return "{" + ",".join(words + none) + "}"
    return "|".join([{int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH"}.get(spec.element, "VALUE"), *none])


# ----------------------------------------------------------------------------------------- parser
@dataclasses.dataclass
class _Flag:
    """One flag on the parser and the fields it sets (of several configs when they share it)."""

    names: tuple[str, ...]
    targets: list[tuple[type, FieldSpec]]  # (the config class added, the field)
    action: argparse.Action


class ConfigParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that knows which of its flags set which dataclass fields.

    Flags keep their text; :meth:`config` checks it (sub-parsers made with ``add_subparsers().add_parser``
    are ConfigParsers too). argparse's own errors (an unknown flag) exit as usual.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._flags: dict[str, _Flag] = {}  # by dest
        self._roots: list[type] = []
        self._config_dest: str | None = None

    def add_dataclass(
        self,
        cls: type,
        *,
        title: str | None = None,
        flags: Mapping[str, str | Sequence[str]] | None = None,
        share: bool = False,
        help_prefix: str = "",
        shown_defaults: Mapping[str, str] | None = None,
    ) -> None:
        """A flag for every field of ``cls`` (and of its nested dataclasses), in an argument group.

        ``flags``: dotted field path -> flag name(s) instead of the metadata's or ``--field-name``; ``share``:
        a flag another config on this parser already has sets this config's field too (``--manifest`` of
        several benchmark suites); ``help_prefix`` goes before each flag's help; ``shown_defaults``: dotted
        path -> the default the help states, where the front end's differs from the dataclass's.
        """
        if cls in self._roots:
            raise ValueError(f"{cls.__name__} is already on this parser")
        self._roots.append(cls)
        options = (cls, dict(flags or {}), share, help_prefix, dict(shown_defaults or {}))
        self._add_fields(
            cls, (), "", self.add_argument_group(title or f"{cls.__name__} (every flag is a field)"), options
        )

    def _add_fields(self, cls: type, path: tuple[str, ...], prefix: str, group, options: tuple) -> None:
        specs = [s for s in field_specs(cls, path) if not s.meta.get("hidden")]
        specs.sort(key=lambda s: s.path[-1] not in vars(cls).get("__annotations__", {}))  # inherited fields last
        for spec in [s for s in specs if not s.nested]:
            dotted = ".".join(spec.path)
            names = options[1].get(dotted, spec.meta.get("flags")) or ("--" + prefix + spec.path[-1].replace("_", "-"),)
            self._add_flag(spec, (names,) if isinstance(names, str) else tuple(names), group, *options)
        for spec in [s for s in specs if s.nested]:
            sub = spec.meta.get("prefix", prefix + spec.path[-1].replace("_", "-") + "-")
            title = f"{spec.hint.__name__} ({options[0].__name__}.{'.'.join(spec.path)})"
            self._add_fields(spec.hint, spec.path, sub, self.add_argument_group(title), options)

    def _add_flag(self, spec: FieldSpec, names, group, root: type, _, share: bool, prefix: str, shown: dict) -> None:
        dest = names[0].lstrip("-").replace("-", "_")
        if dest in self._flags:
            self._share(self._flags[dest], root, spec, names, share)
            return
        default = shown.get(".".join(spec.path), show_default(spec.default))
        text = f"{spec.help.strip()} (default: {default})" if spec.help.strip() else f"(default: {default})"
        kwargs: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS, "help": prefix + text.replace("%", "%%")}
        if spec.element is bool and not spec.container:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["metavar"] = _metavar(spec)
            if spec.container:
                kwargs.update({"action": "append"} if spec.meta.get("append") else {"nargs": "+"})
        self._flags[dest] = _Flag(names, [(root, spec)], group.add_argument(*names, **kwargs))

    @staticmethod
    def _share(flag: _Flag, root: type, spec: FieldSpec, names, share: bool) -> None:
        same, action = flag.targets[0][1], flag.action
        if not share or flag.names[0] != names[0]:
            raise ValueError(f"flag {names[0]} of {spec.owner.__name__} is already taken by {same.owner.__name__}")
        flag.targets.append((root, spec))
        mine, theirs = spec.meta.get("choices"), same.meta.get("choices")
        if mine != theirs and action.metavar and action.metavar.startswith("{"):
            # Each config checks its own choices when it is built; the help lists them all.
            action.metavar = "NAME"
            if len(flag.targets) == 2:
                action.help = f"{action.help[:-1]}; one of: {', '.join(map(str, theirs or ()))})"
        also = f" Also {spec.owner.__name__}.{spec.path[-1]}"
        if spec.default != same.default:
            also += f" (default: {show_default(spec.default)}" + (
                f"; one of: {', '.join(map(str, mine or ()))})" if mine != theirs else ")"
            )
        action.help = (action.help or "") + (also + ".").replace("%", "%%")

    def add_config_option(self, flag: str = "--config", help: str | None = None) -> None:
        """``--config FILE``: a JSON or YAML mapping of the config's fields, read before the flags."""
        names = ", ".join(c.__name__ for c in self._roots) or "config"
        self._config_dest = flag.lstrip("-").replace("-", "_")
        self.add_argument(
            flag, dest=self._config_dest, default=None, metavar="FILE",
            help=help or f"JSON or YAML file of {names} fields; flags given override it",
        )  # fmt: skip

    def flags_of(self, cls: type) -> dict[str, tuple[str, ...]]:
        """Dotted field path of ``cls`` -> its flag names (fields without a flag are absent)."""
        return {".".join(s.path): f.names for f in self._flags.values() for root, s in f.targets if root is cls}

    def given(self, namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
        """The flags given for ``cls``'s fields, as a nested mapping of typed values."""
        out: dict[str, Any] = {}
        where: dict[tuple[str, ...], str] = {}
        for dest, flag in self._flags.items():
            for spec in [s for root, s in flag.targets if root is cls and hasattr(namespace, dest)]:
                node = out
                for part in spec.path[:-1]:
                    node = node.setdefault(part, {})
                node[spec.path[-1]] = getattr(namespace, dest)
                where[spec.path] = f"{flag.names[0]} ({spec.owner.__name__}.{spec.path[-1]})"
        return check(cls, out, lambda path: where.get(path, self.prog))

    def values(self, namespace: argparse.Namespace, cls: type, *others: type) -> dict[str, Any]:
        """The ``--config`` file then the flags for ``cls``, merged and typed (what the user set; no
        defaults). With ``others``, one file holds the fields of them all, each class taking its own."""
        path = getattr(namespace, self._config_dest, None) if self._config_dest else None
        data, classes = (read_config_file(path) if path else {}), (cls, *others)
        owners = {f.name: c for c in reversed(classes) for f in dataclasses.fields(c)}
        if others and any(k not in owners for k in data):
            unknown = ", ".join(repr(k) for k in data if k not in owners)
            raise ConfigError(f"config file {path}: unknown field(s) {unknown} "
                              f"(of {' / '.join(c.__name__ for c in classes)}); known: {', '.join(sorted(owners))}")  # fmt: skip
        mine = check(cls, {k: v for k, v in data.items() if owners.get(k, cls) is cls}, _in(f"config file {path}"))
        return deep_update(mine, self.given(namespace, cls))

    def config(
        self,
        namespace: argparse.Namespace,
        cls: type,
        *,
        defaults: Mapping[str, Any] | None = None,
        overrides: Mapping[str, Any] | None = None,
        file_shared_with: Sequence[type] = (),
    ) -> Any:
        """The validated ``cls``: its defaults < ``defaults`` < the ``--config`` file < flags < ``overrides``."""
        if cls not in self._roots:
            raise ValueError(f"{cls.__name__} was not added to this parser")
        data = check(cls, defaults or {}, _in(f"{self.prog} defaults"))
        deep_update(data, self.values(namespace, cls, *file_shared_with))
        deep_update(data, check(cls, overrides or {}, _in(self.prog)))
        return validated(instantiate(cls, data))
