"""OpenLineage objects for a model task: datasets and the `idbt_identity` run facet (imports OpenLineage)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attr
from airflow.providers.openlineage.extractors import OperatorLineage
from openlineage.client.event_v2 import InputDataset, OutputDataset
from openlineage.client.facet_v2 import RunFacet

from airflow_provider_idbt.dbt.lineage import FACET_NAME, FACET_SCHEMA_URL, ModelLineage, identity_facet_fields


@attr.define(kw_only=True)
class IdbtIdentityRunFacet(RunFacet):
    """Who ran the model: the allowlisted claims of the task's federated token and its fingerprint."""

    issuer: str
    subject: str
    expires_at: str
    fingerprint: str
    principal: str | None = None
    groups: list[str] = attr.field(factory=list)
    audience: list[str] = attr.field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_URL


def identity_facet(identity: Mapping[str, Any]) -> IdbtIdentityRunFacet:
    fields = identity_facet_fields(identity)
    return IdbtIdentityRunFacet(
        issuer=str(fields["issuer"]),
        subject=str(fields["subject"]),
        expires_at=str(fields["expires_at"]),
        fingerprint=str(fields["fingerprint"]),
        principal=fields.get("principal"),
        groups=list(fields.get("groups") or ()),
        audience=list(fields.get("audience") or ()),
    )


def operator_lineage(lineage: ModelLineage | None, identity: Mapping[str, Any] | None) -> OperatorLineage:
    """The task's ``OperatorLineage``: the model's parents in, its relation out, and who ran it."""
    inputs: list[InputDataset] = []
    outputs: list[OutputDataset] = []
    if lineage is not None:
        read, written = lineage.datasets()
        inputs = [InputDataset(namespace=d.namespace, name=d.name) for d in read]
        outputs = [OutputDataset(namespace=d.namespace, name=d.name) for d in written]
    run_facets: dict[str, Any] = {}
    if identity:
        run_facets[FACET_NAME] = identity_facet(identity)
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)
