"""What the server enforces on names, kinds and limits, stated as JSON Schema for the OpenAPI
documents. The fragments derive from the same sources the validation reads (`controller.names`,
the system limits, the runtimes manifest), so the documents cannot drift from the checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from controller.limits import SystemLimits
from controller.names import DEFAULT_PACKAGE, MAX_NAME_LENGTH
from controller.runtimes import SEQUENCE_KIND, Manifest

Schema = dict[str, Any]

# `controller.names._NAME` in ECMA-262 syntax (`\w` there is ASCII).
_FIRST = "[A-Za-z0-9_]"
SEGMENT = f"{_FIRST}(?:[A-Za-z0-9_@ .&-]{{0,{MAX_NAME_LENGTH - 2}}}[A-Za-z0-9_@.&-])?"
ENTITY_NAME: Schema = {"type": "string", "pattern": f"^{SEGMENT}$", "maxLength": MAX_NAME_LENGTH}
ACTION_NAME: Schema = {
    "type": "string",
    "pattern": f"^(?:{SEGMENT}/)?{SEGMENT}$",
    "description": f"`name` or `package/name`; the package may not be `{DEFAULT_PACKAGE}`",
}
# `/ns/name`, `/ns/pkg/name`, `pkg/name`, `ns/pkg/name` or `name` (`_` is the caller's).
ENTITY_PATH: Schema = {
    "type": "string",
    "pattern": f"^(?:/?{SEGMENT}/)?(?:{SEGMENT}/)?{SEGMENT}$",
}
# `controller.actionspec.parse_version`: three numbers, not 0.0.0.
VERSION: Schema = {
    "type": "string",
    "pattern": r"^(?!0\.0\.0$)(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)$",
}
# `{orgId}-{intId}` is a namespace name: it starts as a name does and ends as a name does.
ORG_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_][A-Za-z0-9_@ .&-]*$"}
INT_ID: Schema = {"type": "string", "pattern": "^[A-Za-z0-9_@ .&-]*[A-Za-z0-9_@.&-]$"}
ORG_INT_NOTE = f"`{{orgId}}-{{intId}}` is the namespace name: at most {MAX_NAME_LENGTH} characters"


def any_case(*words: str) -> Schema:
    """A string equal to one of `words` in any letter case (ECMA patterns have no flags)."""
    spelled = ("".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in w) for w in words)
    return {"type": "string", "pattern": f"^(?:{'|'.join(spelled)})$"}


def digits_between(low: int, high: int) -> str:
    """A regex (no anchors) of the decimal numerals of `low`..`high`, leading zeros allowed."""
    return "0*(?:" + "|".join(_ranges(low, high)) + ")" if high > 0 else "0+"


def _ranges(low: int, high: int) -> list[str]:
    """Alternatives covering `low`..`high` (numerals without leading zeros), as digit classes."""
    if low > high:
        return []
    if low == 0:
        return ["0", *_ranges(1, high)] if high >= 1 else ["0"]
    low_text, high_text = str(low), str(high)
    if len(low_text) < len(high_text):
        top = 10 ** len(low_text) - 1
        return [*_ranges(low, top), *_ranges(top + 1, high)]
    return _same_length(low_text, high_text)


def _same_length(low: str, high: str) -> list[str]:
    if len(low) == 1:
        return [_digit_class(low, high)]
    if low[0] == high[0]:
        return [low[0] + tail for tail in _same_length(low[1:], high[1:])]
    rest = len(low) - 1
    out = []
    lower_tail = low[1:] != "0" * rest
    upper_tail = high[1:] != "9" * rest
    first_full = int(low[0]) + (1 if lower_tail else 0)
    last_full = int(high[0]) - (1 if upper_tail else 0)
    if lower_tail:
        out += [low[0] + tail for tail in _same_length(low[1:], "9" * rest)]
    if first_full <= last_full:
        out.append(_digit_class(str(first_full), str(last_full)) + f"[0-9]{{{rest}}}")
    if upper_tail:
        out += [high[0] + tail for tail in _same_length("0" * rest, high[1:])]
    return out


def _digit_class(low: str, high: str) -> str:
    return low if low == high else f"[{low}-{high}]"


def _whole_in(low: int, high: int, *, as_string: bool) -> Schema:
    number: Schema = {"type": "integer", "minimum": low, "maximum": high}
    if not as_string:
        return number
    text = {"type": "string", "pattern": rf"^\s*{digits_between(low, high)}\s*$"}
    return {"anyOf": [text, number, {"type": "null"}]}


@dataclass(frozen=True)
class Constraints:
    """The configured system limits and runtimes, as schema fragments."""

    limits: SystemLimits
    manifest: Manifest

    def code_kinds(self) -> list[str]:
        """Kinds an action with code may be written with: the runtimes that are not
        deprecated, and `<family>:default` for each family with a default."""
        kinds = {
            rt.kind for rts in self.manifest.families.values() for rt in rts if not rt.deprecated
        }
        kinds |= {
            f"{family}:default"
            for family, rts in self.manifest.families.items()
            if any(rt.default for rt in rts)
        }
        return sorted(kinds)

    def sequence_kind(self) -> str:
        return SEQUENCE_KIND

    def action_limit(self, name: str, *, as_string: bool = False) -> Schema:
        """`timeout`, `memory`, `logs` or `concurrency`: the configured range; the seed API
        also takes decimal strings, blanks around them ignored (and null for "unchanged")."""
        low, high = getattr(self.limits, f"{name}_min"), getattr(self.limits, f"{name}_max")
        return _whole_in(low, high, as_string=as_string)

    def list_limit(self) -> Schema:
        return {"type": "integer", "minimum": 0, "maximum": self.limits.list_max}

    def wait_ms(self) -> Schema:
        return {"type": "integer", "minimum": 1, "maximum": self.limits.blocking_wait_ms}
