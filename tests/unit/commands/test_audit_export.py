"""`idbt audit`'s two modes on the command line: one run's trail, or a period's export (the export itself runs
against real Airflow in tests/e2e/test_model_runs.py)."""

from __future__ import annotations

import pytest

from airflow_provider_idbt.commands.cli import main


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["audit"], "give --dag-id and --run-id (one run's trail), or --since"),
        (["audit", "--dag-id", "d"], "give --dag-id and --run-id"),
        (["audit", "--until", "2026-12-01"], "--until needs --since"),
        (["audit", "--dag-id", "d", "--run-id", "r", "--output", "x.csv"], "--output needs --since"),
        (["audit", "--dag-id", "d", "--run-id", "r", "--format", "json"], "--format needs --since"),
        (["audit", "--since", "2026-11-01", "--run-id", "r"], "--run-id and --json print one run's trail"),
        (["audit", "--since", "2026-11-01", "--json"], "an export (--since) takes --format"),
        (["audit", "--since", "2026-11-01", "--format", "xml"], "invalid choice: 'xml'"),
    ],
)
def test_a_mix_of_the_two_modes_is_a_usage_error(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--since", "last week"], "since 'last week' is not an ISO 8601 date or date-time"),
        (["--since", "2026-11-01", "--until", "2026-10-01"], "must be after since"),
    ],
)
def test_a_bad_period_says_what_to_write_before_any_database_is_read(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["audit", *argv]) == 2
    captured = capsys.readouterr()
    assert said in captured.err and captured.out == ""
