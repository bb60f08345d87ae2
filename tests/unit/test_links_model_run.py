"""The "Model run" extra link: the model task's try on the Model runs page, under Airflow's base path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from airflow_provider_idbt.get_provider_info import get_provider_info
from airflow_provider_idbt.links import DbtDocsLink, ModelRunLink
from airflow_provider_idbt.operators.dbt_identity import DbtIdentityOperator


def _key(map_index: int = -1) -> SimpleNamespace:
    return SimpleNamespace(
        dag_id="shop", run_id="manual__2026-12-04T19:26:00+00:00", task_id="orders", map_index=map_index, try_number=2
    )


@pytest.mark.parametrize(
    ("base_url", "prefix"), [("http://127.0.0.1:8080", ""), ("https://airflow.example.com/team-a/", "/team-a")]
)
def test_the_link_is_the_task_instance_page_under_airflows_base_path(
    monkeypatch: pytest.MonkeyPatch, base_url: str, prefix: str
) -> None:
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", base_url)
    url = ModelRunLink().get_link(None, ti_key=_key())
    assert url == f"{prefix}/idbt/model-runs/ti/shop/manual__2026-12-04T19%3A26%3A00%2B00%3A00/orders#try-2"
    assert ModelRunLink().get_link(None, ti_key=_key(3)).endswith("/orders?map_index=3#try-2")


def test_every_model_task_has_it_beside_dbt_docs() -> None:
    names = [link.name for link in DbtIdentityOperator.operator_extra_links]
    assert names == [DbtDocsLink.name, ModelRunLink.name] == ["dbt docs", "Model run"]
    assert "airflow_provider_idbt.links.ModelRunLink" in get_provider_info()["extra-links"]
