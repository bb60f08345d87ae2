"""The dbt commands one task may run on one node, and what each of them may run on."""

from __future__ import annotations

from airflow_provider_idbt.errors import ConfigurationError

# command -> the resource types its node may have. `test` and `build` on a model run the model's tests too
# (dbt's indirect selection, "buildable": a test of this node and nodes upstream of it, never one that also
# reads a node built later); `build` is the model and its tests in one task; `test` on a test runs that test.
NODE_TYPES: dict[str, tuple[str, ...]] = {
    "run": ("model",),
    "build": ("model", "seed", "snapshot"),
    "test": ("model", "seed", "snapshot", "test"),
    "seed": ("seed",),
    "snapshot": ("snapshot",),
}
# The commands whose node selection also selects tests, and how: "buildable", so a relationships test between
# this node and one downstream of it runs with the downstream node (dbt's default, "eager", would run it here,
# before the other node exists, and again there).
INDIRECT_SELECTION = {"build": "buildable", "test": "buildable"}
# dbt accepts --full-refresh on these only.
FULL_REFRESH_COMMANDS = frozenset({"run", "build", "seed"})


def node_types(command: str) -> tuple[str, ...]:
    """The resource types ``command`` runs on; a clear error for a command a one-node task cannot run."""
    try:
        return NODE_TYPES[command]
    except KeyError:
        raise ConfigurationError(
            f"command {command!r} is not one a task runs on one node; use one of {', '.join(NODE_TYPES)}"
        ) from None


def check_full_refresh(command: str, full_refresh: bool) -> None:
    if full_refresh and command not in FULL_REFRESH_COMMANDS:
        raise ConfigurationError(
            f"full_refresh does not apply to `dbt {command}`; it applies to {', '.join(sorted(FULL_REFRESH_COMMANDS))}"
        )


def parse_flag(name: str, value: object) -> bool:
    """A templated boolean: True/False, or the strings Jinja renders them to."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off", "", "none"):
        return False
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")
