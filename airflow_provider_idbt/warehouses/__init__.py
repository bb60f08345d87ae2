"""One module per dbt adapter, each declaring a `WarehouseSpec`; this registry finds them by adapter name.

Adding a warehouse is adding ``warehouses/<adapter>.py`` with a module-level ``WAREHOUSE``: nothing else in the
package branches on the adapter name. Modules load on first use, so DAG parsing imports none of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from airflow_provider_idbt.warehouses.spec import GENERIC_FAILURES, FailureRow, WarehouseSpec

_NOT_ADAPTERS = frozenset({"spec", "login"})


@cache
def all_warehouses() -> dict[str, WarehouseSpec]:
    """Every declared warehouse by adapter name, in name order."""
    found: dict[str, WarehouseSpec] = {}
    for module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if module.name in _NOT_ADAPTERS or module.name.startswith("_"):
            continue
        spec = importlib.import_module(f"{__name__}.{module.name}").WAREHOUSE
        if not isinstance(spec, WarehouseSpec) or spec.adapter != module.name:
            raise TypeError(f"{__name__}.{module.name}.WAREHOUSE must be the WarehouseSpec of `{module.name}`")
        found[spec.adapter] = spec
    return found


def warehouse(adapter: str | None) -> WarehouseSpec | None:
    """The spec of a dbt adapter (the profile's ``type``), or None for one the provider knows nothing about."""
    return all_warehouses().get(adapter) if adapter else None


def candidates(adapter: str | None) -> tuple[WarehouseSpec, ...]:
    """The spec of ``adapter``; every spec when the adapter could not be read (None); none for an unknown one."""
    if adapter is None:
        return tuple(all_warehouses().values())
    spec = warehouse(adapter)
    return (spec,) if spec is not None else ()


def failure_rows_for(adapter: str | None) -> tuple[FailureRow, ...]:
    """The classifier rows of :func:`candidates`, then the rows that hold for any warehouse."""
    return (*(row for spec in candidates(adapter) for row in spec.failures), *GENERIC_FAILURES)
