"""IdbtLineageMixin: a model task's datasets for its events, and OpenLineage's methods when OpenLineage is on."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt import events
from airflow_provider_idbt.dbt.lineage import ModelLineage, dataset_namespace, model_lineage, profile_target

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.manifest import ModelSpec

log = logging.getLogger(__name__)
_UNSET = object()


class IdbtLineageMixin:
    """Dataset naming and OpenLineage facets for an operator that runs one dbt model.

    Reads only the operator's own arguments (manifest, profile) and the events this try emitted, so it
    needs no change to ``execute``. OpenLineage is imported inside the ``get_openlineage_facets_*``
    methods, which only the OpenLineage provider calls: without it nothing here imports it.
    """

    model: str
    project_dir: str
    manifest_path: str
    manifest_conn_id: str | None
    profiles_dir: str | None
    profile_name: str | None
    target: str | None
    profile_args: Mapping[str, Any] | None
    command: str
    _idbt_unique_id: str | None

    def idbt_manifest_file(self) -> str:
        """The local manifest file: ``manifest_path`` itself, or a cached copy of an object-storage URI."""
        from airflow_provider_idbt.manifest_store import local_manifest

        return str(local_manifest(self.manifest_path, conn_id=getattr(self, "manifest_conn_id", None)))

    def idbt_dataset_namespace(self) -> str | None:
        """The OpenLineage namespace of the warehouse this task's profile points at (None if unknown)."""
        cached = self.__dict__.get("_idbt_namespace", _UNSET)
        if cached is not _UNSET:
            return cached
        namespace: str | None = None
        try:
            if self.profile_args:
                namespace = dataset_namespace(self.profile_args)
            elif self.profiles_dir is not None:
                target = profile_target(self.profiles_dir, self.project_dir, self.profile_name, self.target)
                namespace = dataset_namespace(target)
        except Exception:  # lineage naming must never fail a model run
            log.debug("idbt: no dataset namespace for the task's profile", exc_info=True)
        self.__dict__["_idbt_namespace"] = namespace
        return namespace

    def idbt_model_fields(self, spec: ModelSpec) -> dict[str, Any]:
        """The ``model`` object of this task's events: unique id, namespace, inputs and outputs."""
        return model_lineage(spec, self.idbt_dataset_namespace()).as_event()

    def idbt_model_lineage(self) -> ModelLineage | None:
        """The model's lineage read from the operator's manifest, or None when it cannot be read."""
        from airflow_provider_idbt.dbt.commands import node_types
        from airflow_provider_idbt.dbt.manifest import ManifestIndex

        try:
            index = ManifestIndex.load(self.idbt_manifest_file())
            spec = index.node(self._idbt_unique_id or self.model, node_types(self.command))
        except Exception:
            log.debug("idbt: model %s not readable from %s", self.model, self.manifest_path, exc_info=True)
            return None
        return model_lineage(spec, self.idbt_dataset_namespace())

    def idbt_event_model(self) -> dict[str, Any]:
        """The ``model`` object for events written without a loaded model (the listener's)."""
        lineage = self.idbt_model_lineage()
        if lineage is None:
            return {"unique_id": self._idbt_unique_id or self.model}
        return lineage.as_event()

    # -- OpenLineage (called by apache-airflow-providers-openlineage only) ------------------------------

    def get_openlineage_facets_on_start(self) -> Any:
        return self._idbt_operator_lineage(None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self._idbt_operator_lineage(task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        return self._idbt_operator_lineage(task_instance)

    def _idbt_operator_lineage(self, task_instance: Any) -> Any:
        from airflow_provider_idbt.operators.lineage_facets import operator_lineage

        identity = None
        if task_instance is not None:
            # The identity the task log names for this try; the operator keeps no token around.
            keys = events.RunKeys.from_task_instance(task_instance)
            identity = next((e["identity"] for e in reversed(events.recorded(keys)) if e.get("identity")), None)
        return operator_lineage(self.idbt_model_lineage(), identity)
