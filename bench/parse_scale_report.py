"""bench/parse_scale.py's section of docs/performance.md: tables, the goals met or missed, and writing the section."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from bench import scheduler_report
from bench.doc_sections import put_section
from bench.measure import Series, table

if TYPE_CHECKING:
    from bench.parse_scale import Run, Subject

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance.md"
BEGIN = "<!-- bench/parse_scale.py: begin (generated; do not edit by hand) -->"
END = "<!-- bench/parse_scale.py: end -->"
TITLE = "DAG-parse cost at scale, beside astronomer-cosmos"
# The line of the page's method list that points here (run_all.py writes that list; `write` puts it back).
METHOD_LINE = (
    f'- `bench/parse_scale.py` (its own section, "{TITLE}"):\n'
    "  100 / 1,000 / 5,000 generated models and a real manifest, our task group beside an EmptyOperator floor and\n"
    "  astronomer-cosmos, each build in a fresh interpreter."
)
METHOD_AFTER = "- `bench/dag_parse.py`"
# The goals: at most 1.3x the floor (1,000 and 5,000 models), 4x faster than cosmos, 0.1 s of import.
FLOOR_RATIO = 1.3
FLOOR_SIZES = ("n1000", "n5000")
COSMOS_RATIO = 4.0
IMPORT_S = 0.1


def _ms(series: Series) -> str:
    if not series.values:
        return "n/a"
    return f"{series.median * 1000:,.0f} ({series.low * 1000:,.0f}-{series.high * 1000:,.0f})"


def _ratio(top: Series, bottom: Series) -> float:
    return top.median / bottom.median if top.values and bottom.values else float("nan")


def _ratios(s: Subject, top: str, bottom: str, digits: int = 2) -> str:
    """``1.42x (CPU 1.35x)``: the ratio of the median wall times, then of the median CPU times."""
    wall, cpu = _ratio(s.build[top], s.build[bottom]), _ratio(s.cpu[top], s.cpu[bottom])
    return f"{wall:.{digits}f}x (CPU {cpu:.{digits}f}x)"


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f}"


def _met(ok: bool) -> str:
    return "met" if ok else "**not met**"


def _name(subject: Subject, run: Run) -> str:
    return f"{subject.label} ({run.real_name})" if subject.key == "real" and run.real_name else subject.label


def build_table(run: Run) -> str:
    rows = []
    for s in run.subjects:
        c = s.counts
        nodes = f"{c.get('model', 0):,} / {c.get('test', 0):,} / {c.get('seed', 0):,}"
        tasks = f"{s.tasks.get('idbt', 0):,} / {s.tasks['cosmos']:,}" if run.cosmos else f"{s.tasks.get('idbt', 0):,}"
        rows.append(
            [
                _name(s, run),
                nodes,
                tasks,
                f"{_mib(s.manifest_bytes)} / {_mib(s.index_bytes)}",
                _ms(s.build["floor"]),
                _ms(s.build["floor_direct"]),
                _ms(s.build["idbt"]),
                _ms(s.build["first"]),
                _ms(s.build["cosmos"]),
                _ratios(s, "idbt", "floor"),
                _ratios(s, "idbt", "floor_direct"),
                _ratios(s, "cosmos", "idbt", 1) if run.cosmos else "n/a",
            ]
        )
    return table(
        [
            "manifest",
            "models / tests / seeds",
            "tasks: idbt (= floor) / cosmos",
            "manifest / slim index, MiB",
            "floor, ms",
            "floor wired as the group wires, ms",
            "DbtIdentityTaskGroup, ms",
            "idbt first build (writes the index), ms",
            "cosmos DbtDag, ms",
            "idbt / floor",
            "idbt / floor wired as the group",
            "cosmos / idbt",
        ],
        rows,
    )


def import_table(run: Run) -> str:
    labels = {
        "floor": "`EmptyOperator`",
        "idbt": "`from airflow_provider_idbt import DbtIdentityTaskGroup`",
        "cosmos": "`from cosmos import DbtDag, ...`",
    }
    rows = [["`import airflow.sdk` (every DAG file)", _ms(run.imports["sdk"]), "-"]]
    for name, label in labels.items():
        if run.imports[name].values:
            rows.append([f"+ {label}", _ms(run.imports[name]), str(run.modules.get(name, 0))])
    return table(["import", "ms", "modules added"], rows)


def memory_table(run: Run) -> str:
    names = [name for name in ("floor", "idbt", "cosmos") if name != "cosmos" or run.cosmos]
    rows = [[_name(s, run), *(f"{s.peak_rss[name].median:.0f}" for name in names)] for s in run.subjects]
    return table(["manifest", *(f"peak RSS {name}, MiB" for name in names)], rows)


def phase_table(run: Run) -> str:
    names = list(dict.fromkeys(name for s in run.subjects for name in s.phases))
    rows = [
        [
            _name(s, run),
            *(f"{s.phases.get(name, 0.0) * 1000:,.0f}" for name in names),
            f"{sum(s.phases.values()) * 1000:,.0f}",
        ]
        for s in run.subjects
    ]
    return table(["manifest", *(f"{name}, ms" for name in names), "total, ms"], rows)


def first_asset(run: Run) -> str:
    if not run.first_asset:
        return ""
    parts = []
    for label, data in run.first_asset.items():
        providers = ", ".join(data["providers"]) or "none"
        parts.append(
            f"{data['first_asset_s'] * 1000:,.0f} ms and {data['modules']:,} modules in {label} (providers: "
            f"{providers})"
        )
    return (
        "The first Asset of a process (median of 3 fresh interpreters): "
        + "; ".join(parts)
        + ". Airflow discovers every installed provider's asset URI handlers on the first Asset it makes, "
        "importing their modules (the Google and Amazon providers' bring their client libraries): any DAG file that "
        "declares an Asset pays it once per parse, ours among them, and the more providers an image has (Cloud "
        "Composer's has many) the more it costs. The group declares Assets by default; `assets=False` skips them, "
        "and this cost with them."
    )


def operator_costs(run: Run) -> str:
    costs = run.per_task
    if not costs:
        return ""
    floor = costs.get("EmptyOperator", 0.0)
    parts = [f"{label} {seconds * 1e6:.0f} µs" for label, seconds in costs.items()]
    extra = max(seconds - floor for seconds in costs.values())
    return (
        f"Constructing one task (CPU, the arguments the group passes, garbage collector paused, best of 3 x "
        f"2,000 tasks): {', '.join(parts)}. The provider's operator classes alone add up to {extra * 1e6:.0f} µs "
        "per task over the floor's, before the group reads anything: Airflow runs each class's `__init__` "
        "wrapper (default arguments, a deep copy of the DAG's params) once per class in the hierarchy, every "
        "attribute an operator sets goes through `BaseOperator.__setattr__`, and each template field is searched "
        "for XCom references. The provider's operators set only the arguments given (defaults stay class "
        "attributes), and the test operator adds no `__init__` of its own."
    )


# The probed steps that only the group has (the floor reads nothing and declares no Assets).
_READING = ("slim index", "selection", "plan", "Asset namespace (profiles.yml)")


def _gap(run: Run, s: Subject) -> str:
    """What the group's CPU time over the floor's is made of, from the probe (approximate: another build)."""
    empty = run.per_task.get("EmptyOperator")
    if not s.phases or empty is None or not s.cpu["idbt"].values or not s.cpu["floor_direct"].values:
        return ""
    over = (s.cpu["idbt"].median - s.cpu["floor_direct"].median) * 1000
    classes = (s.phases.get("operators", 0.0) - empty * s.tasks.get("idbt", 0)) * 1000
    reading = sum(s.phases.get(name, 0.0) for name in _READING) * 1000
    assets = s.phases.get("Assets", 0.0) * 1000
    return (
        f" Of its {over:,.0f} ms of CPU over the floor wired as the group wires, about {classes:,.0f} ms go to "
        f"the provider's operators (and their arguments) over what `EmptyOperator`s cost, {assets:,.0f} ms to "
        f"the Assets and {reading:,.0f} ms to reading the index, selecting and planning."
    )


def goals(run: Run) -> str:
    points = []
    for s in run.subjects:
        ratio = _ratio(s.build["idbt"], s.build["floor"])
        wanted = f" (goal at most {FLOOR_RATIO}x: {_met(ratio <= FLOOR_RATIO)})" if s.key in FLOOR_SIZES else ""
        points.append(
            f"- {_name(s, run)}: the group takes {_ratios(s, 'idbt', 'floor')} the floor{wanted}, and "
            f"{_ratios(s, 'idbt', 'floor_direct')} the floor wired as the group wires.{_gap(run, s)}"
        )
        if run.cosmos:
            faster = _ratio(s.build["cosmos"], s.build["idbt"])
            points.append(
                f"- {_name(s, run)}: cosmos `DbtDag` takes {_ratios(s, 'cosmos', 'idbt', 1)} the group's time "
                f"(goal at least {COSMOS_RATIO:.0f}x: {_met(faster >= COSMOS_RATIO)})."
            )
    provider = run.imports["idbt"]
    points.append(
        f"- Importing the provider on top of `airflow.sdk`: {provider.median:.3f} s "
        f"(goal at most {IMPORT_S} s: {_met(provider.median <= IMPORT_S)})."
    )
    return "\n".join(points)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=115, break_long_words=False, break_on_hyphens=False)


def render(run: Run) -> str:
    real = next((s for s in run.subjects if s.key == "real"), None)
    real_note = (
        f"The real manifest: {run.real_name or 'a real project'}, compiled here with `dbt parse`"
        + (f" ({run.real_note})." if run.real_note else ".")
        if real
        else "No real manifest in this run (`--real-manifest`)."
    )
    cosmos = (
        "astronomer-cosmos `DbtDag` with `LoadMode.DBT_MANIFEST`, its defaults otherwise (seeds as tasks, tests "
        "after each model), installed in the benchmark's virtualenv only"
        if run.cosmos
        else "not installed for this run (`make bench-install`)"
    )
    versions = ", ".join(f"{name} {value}" for name, value in sorted(run.versions.items()))
    method = (
        "Each build is one fresh interpreter, as a DAG-processor child parses a DAG file: `import airflow.sdk`, "
        "the contender's import, then one timed DAG build; median (min-max) over "
        f"{run.processes} interpreters per contender and manifest, the contenders interleaved round by round. "
        "Bytecode caches are on (an installed package has them). The **floor** is the same tasks and edges as our "
        "group's DAG as plain `EmptyOperator`s in a task group, the edges read from a precomputed list before the "
        "clock starts and wired with Airflow's dependency calls (`parents >> task`, one call per task): what "
        "Airflow itself costs for that DAG as a DAG author writes it; the goals are read against it. Each such "
        "call checks that its tasks share one DAG by hashing the DAG, task ids and all, so wiring grows with the "
        "square of the DAG's size. The group records each edge in the two tasks' id sets itself (every task it "
        "wires is its own, in its DAG: tests/unit/test_task_group_wiring.py holds the DAG equal to the one the "
        "calls make), so the table also gives the floor wired that way, to show what is left of the group's own "
        "cost. Our group runs with its defaults (tests after each "
        "node, Assets, run hooks `auto`) and reads the slim index beside the manifest (present: the steady "
        "state); its first build, which reads `manifest.json` and writes the index, is timed apart "
        f"({run.first_builds} interpreters per manifest). Cosmos: {cosmos}. Generated projects come from "
        "bench/synthetic_project.py (one `not_null` test per model, three seeds), parsed by `dbt parse`. "
        f"{real_note} Versions: {versions}. Load average before / after: {run.load_before} -> {run.load_after} "
        "(2 cores, shared: other jobs ran meanwhile, so CPU-time ratios are given beside wall-time ones)."
    )
    return f"""{BEGIN}

## {TITLE}

Generated by `python -m bench --only parse` (bench/parse_scale.py); do not edit by hand, re-run it.

{_wrap(method)}

{build_table(run)}

Imports (median over every interpreter of the run):

{import_table(run)}

Peak resident memory of the interpreter after the build (median):

{memory_table(run)}

Where the group's build goes: CPU time of each step in one more build per manifest, timed by
bench/parse_scale_probe.py ("the rest" is the DAG object, the task groups, the edges and the on-run-start
task's dependency call).

{phase_table(run)}

{_wrap(operator_costs(run))}

{_wrap(first_asset(run))}

Goals:

{goals(run)}

{END}"""


def write(section: str, doc: Path = DOC) -> None:
    """Replace this section of the page (or put it before the scheduler's), and keep the method list's line."""
    current = doc.read_text() if doc.exists() else "# Performance\n"
    current = put_section(current, section, BEGIN, END, before=scheduler_report.BEGIN)
    doc.write_text(_with_method_line(current).rstrip() + "\n")


def _with_method_line(text: str) -> str:
    """The page with this benchmark's entry in its method list, after the entry of bench/dag_parse.py."""
    lines = _without_entry(text.split("\n"), METHOD_LINE.split("\n", 1)[0].split(" (", 1)[0])
    at = next((i for i, line in enumerate(lines) if line.startswith(METHOD_AFTER)), None)
    if at is None:
        return "\n".join(lines)
    return "\n".join([*lines[: _entry_end(lines, at)], METHOD_LINE, *lines[_entry_end(lines, at) :]])


def _entry_end(lines: list[str], at: int) -> int:
    # A list entry goes on over the indented lines after it.
    end = at + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return end


def _without_entry(lines: list[str], start: str) -> list[str]:
    at = next((i for i, line in enumerate(lines) if line.startswith(start)), None)
    return lines if at is None else [*lines[:at], *lines[_entry_end(lines, at) :]]
