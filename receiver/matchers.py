"""Alertmanager's label matchers, evaluated as Alertmanager does: regular expressions are RE2
(Go syntax such as ``\\pL`` or ``(?U)``), anchored at both ends.

Used for silences (``/api/v2/silences`` matcher objects) and for routes (``name=~"value"``
strings, and the older ``match``/``match_re`` maps). RE2 is imported with the first regular
expression compiled: a receiver that reads no silences never loads it (1.5 MB).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*(.*?)\s*')


@functools.lru_cache(maxsize=512)
def _compiled(pattern: str) -> Any:
    import re2

    options = re2.Options()
    options.log_errors = False  # a bad pattern is reported by the ValueError below, not on stderr
    try:
        return re2.compile(f"^(?:{pattern})$", options=options)
    except re2.error as err:
        raise ValueError(f"not an RE2 regular expression: {pattern[:80]!r} ({err})") from None


@dataclass(frozen=True)
class Matcher:
    name: str
    value: str
    regex: bool = False
    equal: bool = True

    def matches(self, labels: Mapping[str, str]) -> bool:
        """As Alertmanager: a missing label is the empty string."""
        actual = labels.get(self.name, "")
        hit = _compiled(self.value).search(actual) is not None if self.regex else actual == self.value
        return hit == self.equal

    def __str__(self) -> str:
        """As Alertmanager writes it: ``name=~"value"``."""
        op = ("=" if self.equal else "!") + ("~" if self.regex else ("" if self.equal else "="))
        value = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{op}"{value}"'

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Matcher:
        """A matcher object of Alertmanager's API (``name``, ``value``, ``isRegex``, ``isEqual``)."""
        matcher = cls(str(data.get("name", "")), str(data.get("value", "")), bool(data.get("isRegex")),
                      bool(data.get("isEqual", True)))
        if matcher.regex:
            _compiled(matcher.value)  # a pattern RE2 refuses is reported here, not mid-decision
        return matcher

    @classmethod
    def parse(cls, text: str) -> Matcher:
        """A matcher of the configuration file: ``name=value``, ``name!="value"``, ``name=~"a|b"``."""
        parsed = _MATCHER.fullmatch(text)
        if parsed is None:
            raise ValueError(f"not a matcher: {text!r}")
        name, op, value = parsed.groups()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1].encode().decode("unicode_escape")
        matcher = cls(name, value, regex="~" in op, equal=not op.startswith("!"))
        if matcher.regex:
            _compiled(value)
        return matcher


def route_matchers(route: Mapping[str, Any]) -> list[Matcher]:
    """Every matcher of a route: ``matchers`` strings and the older ``match``/``match_re`` maps."""
    found = [Matcher.parse(m) for m in route.get("matchers") or []]
    found += [Matcher(k, str(v)) for k, v in (route.get("match") or {}).items()]
    found += [Matcher(k, str(v), regex=True) for k, v in (route.get("match_re") or {}).items()]
    return found
