"""YAML selectors (``selectors.yml``, as the manifest keeps them under ``selectors``) turned into a selection tree.

A definition is a selection string, a ``method``/``value`` mapping (with ``parents``, ``children``, their depths,
``childrens_parents``, ``indirect_selection`` and an optional ``exclude`` list), a one-key mapping such as
``tag: nightly``, ``method: selector`` naming another selector, or a ``union``/``intersection`` list that may hold
one ``exclude`` entry. dbt normalises these when it writes the manifest; both the raw and the normalised forms
are read here, the way dbt reads them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_idbt.dbt.select_spec import Group, Spec, criterion_from_fields, parse_criterion
from airflow_provider_idbt.errors import SelectionError


def default_selector(selectors: Mapping[str, Any] | None) -> str | None:
    """The name of the selector marked ``default: true``, which dbt uses when nothing is selected."""
    for name, entry in (selectors or {}).items():
        flag = entry.get("default") if isinstance(entry, Mapping) else None
        if flag is True or (isinstance(flag, str) and flag.strip().lower() == "true"):
            return str(name)
    return None


class _Reader:
    def __init__(self, selectors: Mapping[str, Any], indirect_selection: str) -> None:
        self.selectors = selectors
        self.indirect = indirect_selection
        self.stack: list[str] = []

    def selector(self, name: Any) -> Spec:
        if not isinstance(name, str) or name not in self.selectors:
            known = ", ".join(sorted(map(str, self.selectors))) or "none: the project has no selectors.yml"
            raise SelectionError(f"selector {name!r} is not defined in selectors.yml; known selectors: {known}")
        if name in self.stack:
            raise SelectionError(f"selector {name!r} refers to itself through {' -> '.join([*self.stack, name])}")
        entry = self.selectors[name]
        if not isinstance(entry, Mapping) or "definition" not in entry:
            raise SelectionError(f"selector {name!r} has no `definition`; give it one, as dbt's selectors.yml does")
        self.stack.append(name)
        try:
            return self.definition(entry["definition"], root=True)
        finally:
            self.stack.pop()

    def where(self) -> str:
        return f"selector {self.stack[-1]!r}" if self.stack else "selector"

    def definition(self, definition: Any, *, root: bool = False) -> Spec:
        if isinstance(definition, str):
            return parse_criterion(definition, self.indirect)
        if not isinstance(definition, Mapping):
            raise SelectionError(
                f"{self.where()}: expected a union, an intersection, a string or a mapping, got {definition!r}"
            )
        for kind in ("union", "intersection"):
            if kind in definition:
                if root and len(definition) > 1:
                    raise SelectionError(
                        f"{self.where()}: a root definition takes a single `union` or `intersection` key, "
                        f"found {', '.join(map(str, definition))}"
                    )
                return self.group(kind, definition[kind])
        return self.mapping(definition)

    def mapping(self, definition: Mapping[str, Any]) -> Spec:
        if len(definition) == 1:
            key, value = next(iter(definition.items()))
            if key == "exclude":
                raise SelectionError(f"{self.where()}: an `exclude` list belongs inside a union or intersection")
            return criterion_from_fields(definition, {"method": key, "value": value}, self.indirect)
        if definition.get("method") == "selector":
            return self.selector(definition.get("value"))
        if "method" not in definition or "value" not in definition:
            raise SelectionError(
                f"{self.where()}: expected one key (as in `tag: nightly`) or `method` and `value`, "
                f"got {', '.join(map(str, definition))}"
            )
        fields = {key: value for key, value in definition.items() if key != "exclude"}
        criterion = criterion_from_fields(dict(fields), fields, self.indirect)
        if "exclude" not in definition:
            return criterion
        excluded = self.exclusions(definition["exclude"])
        return criterion if excluded is None else Group("difference", (criterion, excluded), raw=definition)

    def exclusions(self, items: Any) -> Spec | None:
        parts = [self.definition(item) for item in self.items(items, "exclude")]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else Group("union", tuple(parts))

    def items(self, items: Any, key: str) -> Sequence[Any]:
        if not isinstance(items, list):
            raise SelectionError(f"{self.where()}: `{key}` must be a list, got {items!r}")
        return items

    def group(self, kind: str, items: Any) -> Spec:
        parts: list[Spec] = []
        excluded: Spec | None = None
        seen_exclude = False
        for item in self.items(items, kind):
            # As dbt: any mapping in the list with an `exclude` key is the list's exclusion.
            if isinstance(item, Mapping) and "exclude" in item:
                if seen_exclude:
                    raise SelectionError(f"{self.where()}: a `{kind}` takes at most one `exclude` entry")
                seen_exclude = True
                excluded = self.exclusions(item["exclude"])
            else:
                parts.append(self.definition(item))
        combined = Group("union" if kind == "union" else "intersection", tuple(parts))
        return combined if excluded is None else Group("difference", (combined, excluded))


def selector_spec(name: str, selectors: Mapping[str, Any] | None, indirect_selection: str) -> Spec:
    """The selection tree of selector ``name``; criteria without their own ``indirect_selection`` take the given
    one, while the selector's unions and intersections combine eagerly, as in dbt."""
    return _Reader(selectors or {}, indirect_selection).selector(name)
