"""The SPEC registry and parser: one string names a data source everywhere (CLI, app settings, retraining).

A SPEC is ``SCHEME:ARGUMENT``, split at the first colon; :func:`parse_spec` is the one parser and
:func:`register_source` the one way a scheme comes to exist: every source module registers its own
scheme when imported (``folders``: ``pairs:``, ``ab:``, ``ba:``; ``deeppcb``; ``labels``: ``hf:``;
``synth``), and the package ``anodfdnet.data`` imports them all, so whoever imports anything of the
package knows every scheme. A spec may end in ``@train`` or ``@val`` (optionally
``@val(val_fraction=0.3,seed=1)``) to name one side of :func:`~anodfdnet.data.source.split`, which is the
spec a split's ``Subset`` reports, so recorded specs parse back to the same pairs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import UserError
from .source import Source, split


@dataclass(frozen=True)
class _Scheme:
    factory: Callable[[str, str], Source]
    help: str


_SCHEMES: dict[str, _Scheme] = {}
_SPLIT_SUFFIX = re.compile(
    r"^(?P<base>.+)@(?P<side>train|val)(?:\(val_fraction=(?P<frac>[0-9.eE+-]+),seed=(?P<seed>-?\d+)\))?$"
)

_OTHER_SPLIT = re.compile(r"@(?P<side>[A-Za-z]\w*)(?:\([^)]*\))?$")


def register_source(scheme: str, factory: Callable[[str, str], Source], help: str) -> None:
    """Make ``SCHEME:ARGUMENT`` specs build sources with ``factory(argument, full_spec)``.

    ``help`` is one line shown by :func:`spec_help`, e.g. ``"ab:ROOT  ROOT/A, ROOT/B, ROOT/label"``.
    Registering a scheme again replaces it (so reloading a module is harmless).
    """
    if not re.fullmatch(r"[a-z][a-z0-9_-]*", scheme):
        raise ValueError(f"scheme names are lower-case words without a colon, got {scheme!r}")
    _SCHEMES[scheme] = _Scheme(factory, help)


def known_schemes() -> list[str]:
    """The registered scheme names, sorted."""
    return sorted(_SCHEMES)


def spec_help() -> str:
    """A few lines documenting every registered scheme (for the CLI's --help)."""
    lines = ["Data SPECs are SCHEME:ARGUMENT; add @train or @val to take one side of the split."]
    lines += [f"  {_SCHEMES[s].help}" for s in known_schemes()]
    return "\n".join(lines)


def spec_display_name(spec: str) -> str:
    """A short name for the set a SPEC names that shows no server path: the last part of its argument
    without folders or extension, with its split, e.g. ``ab:/srv/data/levir_samples@val`` ->
    ``levir_samples@val``, ``deeppcb:/d/deeppcb/trainval.txt`` -> ``trainval``, ``synth:200:3`` -> ``synth:200:3``.
    For pages that strangers see; the SPEC itself stays on the server."""
    spec = str(spec).strip()
    m = _SPLIT_SUFFIX.match(spec)
    side = ""
    if m and ":" in m["base"]:
        spec, side = m["base"], f"@{m['side']}"
    scheme, _, arg = spec.partition(":")
    arg = arg.split("?", 1)[0].rstrip("/\\")
    if scheme == "synth" or not arg:
        return f"{spec}{side}" if scheme == "synth" else f"{scheme}{side}"
    last = re.split(r"[/\\]", arg)[-1]
    stem = last.rsplit(".", 1)[0] if "." in last.strip(".") else last
    return f"{stem or scheme}{side}"


def parse_spec(spec: str) -> Source:
    """Build the source a SPEC names; a bad SPEC is a ``UserError`` that says what is wrong."""
    spec = str(spec).strip()
    m = _SPLIT_SUFFIX.match(spec)
    if m and ":" in m["base"]:
        frac = float(m["frac"]) if m["frac"] else 0.2
        seed = int(m["seed"]) if m["seed"] else 0
        train, val = split(parse_spec(m["base"]), frac, seed)
        return train if m["side"] == "train" else val
    known = ", ".join(known_schemes()) or "(none registered)"
    scheme, colon, arg = spec.partition(":")
    if not colon:
        raise UserError(f"data spec '{spec}' has no scheme: write SCHEME:ARGUMENT with SCHEME one of {known}.")
    if scheme not in _SCHEMES:
        raise UserError(f"data spec '{spec}' has the unknown scheme '{scheme}': use one of {known}.")
    if not arg.strip():
        raise UserError(f"data spec '{spec}' has nothing after '{scheme}:': {_SCHEMES[scheme].help.strip()}.")
    try:
        return _SCHEMES[scheme].factory(arg.strip(), spec)
    except UserError:
        bad = _OTHER_SPLIT.search(spec)
        if bad:  # e.g. LIST@test: a split that does not exist, not a file name with '@' in it
            raise UserError(f"data spec '{spec}' names the split '@{bad['side']}', which does not exist: the splits are "
                            f"@train and @val (the deterministic 8:2 split of {spec[:bad.start()]}).") from None
        raise
