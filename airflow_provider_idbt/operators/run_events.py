"""ModelRunEvents: the idbt.event/1 lines one model task writes, bound to its run keys and model; and the try's
events published to XCom (``idbt_events``) for the "Model runs" view and `idbt audit`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_idbt import events
from airflow_provider_idbt.errors import PermissionMismatch
from airflow_provider_idbt.events import RunKeys
from airflow_provider_idbt.identity.token import FederatedToken

# The XCom key of a try's events (a list of idbt.event/1 objects, oldest first). Airflow clears a task instance's
# XComs when a new try starts, so it holds the last try's events; earlier tries keep theirs in their task logs.
EVENTS_XCOM_KEY = "idbt_events"

if TYPE_CHECKING:
    from airflow_provider_idbt.dbt.json_log import DbtLogSummary
    from airflow_provider_idbt.dbt.results import RunResult


@dataclass(frozen=True)
class ModelRunEvents:
    """Writes the operator's events for one try; every method is one event line, never a secret."""

    logger: Any
    keys: RunKeys
    model: Mapping[str, Any]

    def _emit(self, kind: str, token: FederatedToken | None, **fields: Any) -> None:
        identity = token.identity if token is not None else None
        events.emit(self.logger, events.build_event(kind, self.keys, identity=identity, model=self.model, **fields))

    def token_issued(self, token: FederatedToken, reason: str | None = None) -> None:
        self._emit(
            "token_issued",
            token,
            audience=list(token.audience),
            expires_at=token.expires_at.isoformat(timespec="seconds"),
            reason=reason,
        )

    def started(self, token: FederatedToken, *, warehouse_role: str | None = None) -> None:
        """dbt is about to run; ``warehouse_role``: the role the try runs as (``warehouse_role_from_identity``)."""
        self._emit("model_run", token, phase="start", warehouse_role=warehouse_role)

    def ended(self, token: FederatedToken, status: str, duration: float, error: BaseException | None) -> None:
        self._emit(
            "model_run",
            token,
            phase="end",
            status=status,
            duration_s=round(duration, 3),
            error_class=type(error).__name__ if error else None,
            error_message=str(error) if error else None,
        )

    def permission_mismatch(
        self, token: FederatedToken | None, mismatch: PermissionMismatch, *, stage: str, connection: str | None = None
    ) -> None:
        """A refusal: pre-flight or warehouse (with the try's token), or ``stage="job"``, before any token
        (``token`` None, ``connection`` the identity connection bound to other jobs)."""
        self._emit(
            "permission_mismatch",
            token,
            stage=stage,
            connection=connection,
            required=list(mismatch.required),
            held=list(mismatch.held),
            warehouse_message=mismatch.warehouse_message,
            error_class=type(mismatch).__name__,
            error_message=str(mismatch),
        )

    def auth_failure(
        self, token: FederatedToken | None, connection: str, error_class: str, error_message: str, **fields: Any
    ) -> None:
        """No token could be had (``token`` None), or the warehouse refused the one this try had."""
        self._emit(
            "auth_failure",
            token,
            connection=connection,
            error_class=error_class,
            error_message=error_message,
            **fields,
        )

    def warehouse_auth_failure(
        self,
        token: FederatedToken,
        connection: str,
        result: RunResult,
        log: DbtLogSummary,
        adapter: str | None,
        *,
        action: str,
    ) -> None:
        """The warehouse refused this try's token: its own words, and what happens next (``action``)."""
        from airflow_provider_idbt.dbt.results import failure_messages, warehouse_message

        said = warehouse_message(failure_messages(result, log.messages), "auth", adapter)
        self.auth_failure(
            token,
            connection,
            "WarehouseAuthFailed",
            said or result.message,
            stage="warehouse",
            action=action,
            model_statements=log.model_statements,
        )


def publish_events(ti: Any, keys: RunKeys, logger: Any) -> None:
    """Push this try's events (already secret-free) as XCom ``idbt_events``; a failure to push is a warning only,
    so it never hides the try's own outcome."""
    try:
        ti.xcom_push(key=EVENTS_XCOM_KEY, value=events.recorded(keys))
    except Exception as error:
        logger.warning("idbt: could not store this try's events in XCom %s: %s", EVENTS_XCOM_KEY, error)
