"""Dataclass configs as command-line flags and config files: argparse builds the flags, pydantic checks the values.

A front end makes a :class:`ConfigParser` (an ``argparse.ArgumentParser``), adds the dataclasses whose fields
become flags (:meth:`~ConfigParser.add_dataclass`, nested dataclasses included) and ``--config FILE``
(:meth:`~ConfigParser.add_config_option`), parses, and asks for the config (:meth:`~ConfigParser.config`):
the dataclass's defaults < the caller's ``defaults`` < the JSON/YAML file < the flags < the caller's
``overrides``, then the dataclass's ``validate()``. Every bad value is a :class:`~eclip_core.errors.ConfigError`
naming the flag or field, the value and what is allowed.

Field -> flag: ``--field-name`` (a nested dataclass's fields ``--<parent>-<field>``); ``bool`` gives ``--x`` /
``--no-x``, ``X | None`` takes the word ``none``, ``list[X]`` / ``tuple[X, ...]`` one or more values. The help
is the comment above the field (``#:`` or ``#``) or after it on its line. Field metadata, e.g.
``field(default="a", metadata=cli(choices=MODES))``: see :func:`cli`.

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
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pydantic

from eclip_core.errors import ConfigError, EClipError

#: Words that mean None for an ``X | None`` field (case-insensitive) unless its metadata says otherwise.
NONE_WORDS = ("none", "null")
_NAMES = {int: "an integer", float: "a number", str: "text", bool: "true or false", Path: "a path"}
_YAML_BOOLS = {True: ("on", "yes", "true", "y"), False: ("off", "no", "false", "n")}


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
    """Field metadata for the command line (only what is given): ``choices``, ``help`` (instead of the
    comment), ``flags`` (instead of ``--field-name``), ``none`` (the words meaning None), ``metavar``,
    ``append`` (a list flag given once per value), ``prefix`` (of a nested dataclass's flags), ``shorthand``
    (a file's plain value for a nested dataclass sets this field of it), ``hidden`` (no flag).

    >>> cli(choices=("a", "b"), flags="--alpha")
    {'choices': ('a', 'b'), 'flags': ('--alpha',)}
    """
    flags = (flags,) if isinstance(flags, str) else flags
    given = dict(help=help, choices=choices, flags=flags, none=none, metavar=metavar, append=append)
    given.update(prefix=prefix, shorthand=shorthand, cli=False if hidden else None)
    return {k: tuple(v) if k in ("choices", "flags", "none") else v for k, v in given.items() if v is not None}


@dataclasses.dataclass(frozen=True)
class FieldSpec:
    """One dataclass field seen from the command line: its place (``path`` below the config class ``root``),
    its type (``element``; a list's or tuple's items, with ``length`` N for ``tuple[X, Y]``, 0 for any), the
    words meaning None (an optional field), choices, help and default."""

    root: type
    path: tuple[str, ...]
    owner: type
    element: Any
    container: type | None
    length: int
    none_words: tuple[str, ...]
    default: Any
    meta: Mapping[str, Any]
    help: str

    name = property(lambda self: self.path[-1])
    dotted = property(lambda self: ".".join(self.path))
    label = property(lambda self: f"{self.owner.__name__}.{self.name}")
    choices = property(lambda self: self.meta.get("choices"))
    nested = property(lambda self: self.element if dataclasses.is_dataclass(self.element) else None)

    def coerce(self, value: Any, where: str, *, check_choices: bool = True) -> Any:
        """``value`` (a flag's text, a file's value or a typed one) as this field's type, else a ConfigError."""
        if value is None or (isinstance(value, str) and value.strip().lower() in self.none_words):
            if self.none_words:
                return None
            raise ConfigError(f"{where}: none is not allowed here (give {_NAMES.get(self.element, 'a value')})")
        if self.container:
            value = list(value) if isinstance(value, (list, tuple)) else [value]
            if self.length and len(value) != self.length:
                raise ConfigError(f"{where}: {_show(value)} has {len(value)} value(s); give exactly {self.length}")
        elif isinstance(value, bool) and self.element is str:  # YAML reads unquoted off / yes as booleans
            meant = [c for c in self.choices or () if str(c).lower() in _YAML_BOOLS[value]]
            if len(meant) != 1:
                raise ConfigError(f"{where}: {value!r} is not text (YAML reads unquoted on / off / yes / no as "
                                  "true or false: quote the value)")  # fmt: skip
            value = meant[0]
        try:
            items = _adapter(list[self.element] if self.container else self.element).validate_python(value)
        except pydantic.ValidationError as exc:
            raise ConfigError(
                f"{where}: {_show(exc.errors()[0]['input'])} is not {_NAMES.get(self.element, 'valid')}"
            ) from None
        for item in items if self.container else [items]:
            if check_choices and self.choices is not None and item not in self.choices:
                extra = f"; or {self.none_words[0]}" if self.none_words else ""
                raise ConfigError(f"{where}: {_show(item)} is not one of {', '.join(map(str, self.choices))}{extra}")
        return tuple(items) if self.container is tuple else items


@functools.cache
def _adapter(hint: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(hint, config=pydantic.ConfigDict(coerce_numbers_to_str=True))


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def field_specs(cls: type, *, root: type | None = None, path: tuple[str, ...] = ()) -> list[FieldSpec]:
    """Every init field of ``cls`` (not descending into nested dataclasses)."""
    hints, comments, out = typing.get_type_hints(cls), field_comments(cls), []
    for f in [f for f in dataclasses.fields(cls) if f.init]:
        hint, meta = hints[f.name], f.metadata
        optional = typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)
        base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
        origin, inner = typing.get_origin(base), [a for a in typing.get_args(base) if a is not Ellipsis]
        container = tuple if origin is tuple else list if origin in (list, Sequence) else None
        length = len(inner) if container is tuple and Ellipsis not in typing.get_args(base) else 0
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        default = None if default is dataclasses.MISSING else default
        none_words = tuple(meta.get("none", NONE_WORDS)) if optional else ()
        help_text = meta.get("help") or comments.get(f.name, "")
        element = inner[0] if container else base
        out.append(
            FieldSpec(
                root or cls, (*path, f.name), cls, element, container, length, none_words, default, meta, help_text
            )
        )
    return out


# ------------------------------------------------------------------------------ mappings and files
def coerce_mapping(cls: type, data: Any, source: str, *, _path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``data`` (a file's mapping, a dataclass) checked against ``cls``: unknown fields and bad values are
    ConfigErrors naming ``source`` and the field; nested dataclasses are mappings of their own."""
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = {f.name: getattr(data, f.name) for f in dataclasses.fields(data) if f.init}
    where = f"{source}: {'.'.join(_path)}" if _path else source
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    specs = {spec.name: spec for spec in field_specs(cls, path=_path)}
    unknown = [k for k in data if k not in specs]
    if unknown:
        hints = [f"{k!r}" + "".join(f" (did you mean {c!r}?)" for c in difflib.get_close_matches(str(k), specs, 1))
                 for k in unknown]  # fmt: skip
        raise ConfigError(f"{where}: unknown {cls.__name__} field(s) {', '.join(hints)}; known: {', '.join(specs)}")
    out: dict[str, Any] = {}
    for key, value in data.items():
        spec = specs[key]
        if spec.nested and value is not None:
            if not isinstance(value, (Mapping, spec.nested)) and "shorthand" in spec.meta:
                value = {spec.meta["shorthand"]: value}
            out[key] = coerce_mapping(spec.nested, value, source, _path=spec.path)
        else:
            out[key] = spec.coerce(value, f"{source}: {spec.dotted}")
    return out


def instantiate(cls: type, data: Mapping[str, Any]) -> Any:
    """``cls`` from a mapping :func:`coerce_mapping` checked (nested mappings become nested dataclasses)."""
    nested = {spec.name: spec.nested for spec in field_specs(cls)}
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
    return validated(instantiate(cls, coerce_mapping(cls, data, source)))


def read_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON or YAML file's top-level mapping (ConfigError naming the file when it is missing, unreadable
    or not a mapping)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist")
    yaml_file = path.suffix.lower() in (".yaml", ".yml")
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) if yaml_file else json.loads(text)
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
    """Field name -> the comment lines just above it (``#:`` or ``#``), or the comment after it on its line;
    base classes' fields included. A lone ``# Few words.`` heads a group of fields and is no field's help."""
    out: dict[str, str] = {}
    for klass in [k for k in reversed(cls.__mro__[:-1]) if dataclasses.is_dataclass(k)]:
        try:
            lines = textwrap.dedent(inspect.getsource(klass)).splitlines()
        except (OSError, TypeError):
            continue
        names, pending = {f.name for f in dataclasses.fields(klass)}, []
        for line in lines[1:]:
            text, indent = line.strip(), len(line) - len(line.lstrip())
            name = re.match(r"(\w+)\s*:", text)
            if indent == 4 and text.startswith("#"):
                pending.append(text)
                continue
            if indent == 4 and name and name.group(1) in names:
                if len(pending) == 1 and not pending[0].startswith("#:") and pending[0].endswith("."):
                    pending = [] if len(pending[0].split()) <= 5 else pending  # "# Runtime." heads a group
                comment = " ".join(c for c in (re.sub(r"^#:?\s?", "", p).strip() for p in pending) if c)
                if comment or "  # " in text:
                    out[name.group(1)] = comment or text.partition("  # ")[2].strip()
            pending = []
    return out


def _show_default(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none given"
    return {"": "empty", None: "none"}.get(value, str(value)) if isinstance(value, (str, type(None))) else str(value)


def _metavar(spec: FieldSpec) -> str:
    words = [str(c) for c in spec.choices] if spec.choices is not None else []
    none = [spec.none_words[0]] if spec.none_words and spec.default is not None else []
    if "metavar" in spec.meta:
        return spec.meta["metavar"]
    if words:
        return "{" + ",".join(words + none) + "}"
    return "|".join([{int: "INT", float: "FLOAT", str: "TEXT", Path: "PATH"}.get(spec.element, "VALUE"), *none])


# ----------------------------------------------------------------------------------------- parser
class _FlagValueError(Exception):
    """A flag's value is not what its field accepts (raised inside argparse, re-raised as ConfigError)."""


@dataclasses.dataclass
class FlagBinding:
    """One flag on the parser and the field(s) it sets (several when configs share it)."""

    flags: tuple[str, ...]
    targets: list[FieldSpec]
    action: argparse.Action


class ConfigParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` that knows which of its flags set which dataclass fields.

    Sub-parsers made with ``add_subparsers().add_parser`` are ConfigParsers too. A value a field does not
    accept raises :class:`~eclip_core.errors.ConfigError` out of ``parse_args``; argparse's own errors (an
    unknown flag) exit as usual.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._bindings: dict[str, FlagBinding] = {}  # by dest
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
        options = (dict(flags or {}), share, help_prefix, dict(shown_defaults or {}))
        self._add_fields(
            cls, (), "", self.add_argument_group(title or f"{cls.__name__} (every flag is a field)"), options
        )

    def _add_fields(self, cls: type, path: tuple[str, ...], prefix: str, group, options: tuple) -> None:
        specs = [s for s in field_specs(cls, root=self._roots[-1], path=path) if s.meta.get("cli", True)]
        specs.sort(key=lambda s: s.name not in vars(cls).get("__annotations__", {}))  # inherited fields last
        for spec in [s for s in specs if not s.nested]:
            names = options[0].get(spec.dotted, spec.meta.get("flags")) or (
                "--" + prefix + spec.name.replace("_", "-"),
            )
            self._add_flag(spec, (names,) if isinstance(names, str) else tuple(names), group, *options[1:])
        for spec in [s for s in specs if s.nested]:
            sub = spec.meta.get("prefix", prefix + spec.name.replace("_", "-") + "-")
            title = f"{spec.nested.__name__} ({spec.root.__name__}.{spec.dotted})"
            self._add_fields(spec.nested, spec.path, sub, self.add_argument_group(title), options)

    def _add_flag(self, spec: FieldSpec, names, group, share: bool, help_prefix: str, shown: dict) -> None:
        dest = names[0].lstrip("-").replace("-", "_")
        if dest in self._bindings:
            self._share(self._bindings[dest], spec, names, share)
            return
        default = shown.get(spec.dotted, _show_default(spec.default))
        text = f"{spec.help.strip()} (default: {default})" if spec.help.strip() else f"(default: {default})"
        kwargs: dict[str, Any] = {
            "dest": dest,
            "default": argparse.SUPPRESS,
            "help": help_prefix + text.replace("%", "%%"),
        }
        if spec.element is bool and not spec.container:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs.update(type=_flag_type(spec, names[0]), metavar=_metavar(spec))
            if spec.container:
                kwargs.update({"action": "append"} if spec.meta.get("append") else {"nargs": spec.length or "+"})
        self._bindings[dest] = FlagBinding(names, [spec], group.add_argument(*names, **kwargs))

    @staticmethod
    def _share(binding: FlagBinding, spec: FieldSpec, names, share: bool) -> None:
        same, action = binding.targets[0], binding.action
        if not share or binding.flags[0] != names[0]:
            raise ValueError(f"flag {names[0]} of {spec.label} is already taken by {same.label}")
        if (same.element, same.container, same.length) != (spec.element, spec.container, spec.length):
            raise ValueError(f"{spec.label} cannot share {names[0]} with {same.label}: their types differ")
        binding.targets.append(spec)
        choices = ", ".join(map(str, spec.choices or ()))
        if same.choices != spec.choices and action.type is not None:
            # Each config checks its own choices when it is built; the help lists them all.
            action.type, action.metavar = _flag_type(same, names[0], check_choices=False), "NAME"
            if len(binding.targets) == 2:
                action.help = f"{action.help[:-1]}; one of: {', '.join(map(str, same.choices or ()))})"
        also = f" Also {spec.label}"
        if spec.default != same.default:
            also += f" (default: {_show_default(spec.default)}" + (
                f"; one of: {choices})" if same.choices != spec.choices else ")"
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

    def parse_known_args(self, args=None, namespace=None):  # noqa: ANN001 - argparse's signature
        try:
            return super().parse_known_args(args, namespace)
        except _FlagValueError as exc:
            raise ConfigError(str(exc)) from None

    def flags_of(self, cls: type) -> dict[str, tuple[str, ...]]:
        """Dotted field path of ``cls`` -> its flag names (fields without a flag are absent)."""
        return {t.dotted: b.flags for b in self._bindings.values() for t in b.targets if t.root is cls}

    def given(self, namespace: argparse.Namespace, cls: type) -> dict[str, Any]:
        """The flags given for ``cls``'s fields, as a nested mapping of typed values."""
        out: dict[str, Any] = {}
        for dest, binding in self._bindings.items():
            for spec in [t for t in binding.targets if t.root is cls and hasattr(namespace, dest)]:
                node = out
                for part in spec.path[:-1]:
                    node = node.setdefault(part, {})
                node[spec.name] = spec.coerce(getattr(namespace, dest), f"{binding.flags[0]} ({spec.label})")
        return out

    def file_values(self, namespace: argparse.Namespace, cls: type, *others: type) -> dict[str, Any]:
        """``cls``'s part of the ``--config`` file, checked; with ``others``, the file's keys are shared out
        among ``cls`` and ``others`` by field name (the first class with the field takes it)."""
        path = getattr(namespace, self._config_dest, None) if self._config_dest else None
        if not path:
            return {}
        data, classes = read_config_file(path), (cls, *others)
        fields = {k: c for c in reversed(classes) for k in (f.name for f in dataclasses.fields(c))}
        unknown = [k for k in data if k not in fields]
        if others and unknown:
            raise ConfigError(
                f"config file {path}: unknown field(s) {', '.join(map(repr, unknown))} "
                f"(of {' / '.join(c.__name__ for c in classes)}); known: {', '.join(sorted(fields))}"
            )
        return coerce_mapping(cls, {k: v for k, v in data.items() if fields.get(k, cls) is cls}, f"config file {path}")

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
    ) -> Any:
        """The validated ``cls``: its defaults < ``defaults`` < the ``--config`` file < flags < ``overrides``."""
        if cls not in self._roots:
            raise ValueError(f"{cls.__name__} was not added to this parser")
        data = coerce_mapping(cls, defaults or {}, f"{self.prog} defaults")
        deep_update(data, self.values(namespace, cls, *file_shared_with))
        deep_update(data, coerce_mapping(cls, overrides or {}, self.prog))
        return validated(instantiate(cls, data))


def _flag_type(spec: FieldSpec, flag: str, check_choices: bool = True):
    """argparse's ``type=``: one value's text -> the field's element type, checked."""
    one = dataclasses.replace(spec, container=None, length=0)

    def parse(text: str) -> Any:
        try:
            return one.coerce(text, f"{flag} ({spec.label})", check_choices=check_choices)
        except ConfigError as exc:
            raise _FlagValueError(str(exc)) from None

    parse.__name__ = getattr(spec.element, "__name__", "value")
    return parse
