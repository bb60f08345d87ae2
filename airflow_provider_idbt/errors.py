"""Typed errors of the pure core: each says what went wrong, how to fix it, and whether a retry can help."""

from __future__ import annotations


class IdbtError(Exception):
    """Base of every error this provider raises on purpose.

    ``retryable`` tells the Airflow layer whether another try can succeed: permanent errors become
    ``AirflowFailException`` (no retry), transient ones a normal failure that Airflow retries.
    Messages never contain a token, secret or assertion.
    """

    retryable: bool = False


class ConfigurationError(IdbtError):
    """A connection, operator argument or file is wrong; retrying cannot fix it."""


class ConnectionFieldError(ConfigurationError):
    """A connection is missing a field or has an invalid one."""

    def __init__(self, conn_id: str, field: str, problem: str, fix: str) -> None:
        self.conn_id = conn_id
        self.field = field
        super().__init__(f"connection `{conn_id}`: field `{field}` {problem}; {fix}")


class IdentityProviderUnavailable(IdbtError):
    """The identity provider could not be reached or answered with a transient error (timeout, 5xx, 429)."""

    retryable = True


class CredentialRejected(IdbtError):
    """The identity provider refused the credentials (invalid_client, wrong audience, ...)."""


class TokenVerificationError(IdbtError):
    """A token failed verification (signature, issuer, audience, expiry or algorithm)."""


class DevTokenRefused(IdbtError):
    """A token from the development identity provider was offered without the explicit opt-in."""


class ManifestError(ConfigurationError):
    """The dbt manifest is missing, unreadable, or does not match the project."""


class ModelNotFound(ManifestError):
    """The requested model is not in the manifest."""


class StaleManifest(ManifestError):
    """The manifest no longer matches the project on disk (file checksum, dbt version, adapter, project)."""


class PermissionMismatch(IdbtError):
    """The identity is not allowed to run the model: detected in pre-flight or reported by the warehouse."""

    def __init__(
        self,
        message: str,
        *,
        model: str,
        subject: str | None = None,
        required: tuple[str, ...] = (),
        held: tuple[str, ...] = (),
        warehouse_message: str | None = None,
    ) -> None:
        self.model = model
        self.subject = subject
        self.required = required
        self.held = held
        self.warehouse_message = warehouse_message
        super().__init__(message)


class DbtRunFailed(IdbtError):
    """dbt ran and the model failed for a reason that is neither a permission nor an authentication problem."""

    retryable = True


class WarehouseAuthFailed(IdbtError):
    """The warehouse rejected the token after a refresh, or after the model had already run statements."""

    retryable = True


class WarehouseUnreachable(IdbtError):
    """dbt could not open a connection to the warehouse (refused, unknown host, timeout): often transient."""

    retryable = True


class JobNotAllowed(PermissionMismatch):
    """An identity connection is bound to other DAGs, tags or bundles than the task's: refused before any token.

    ``required`` holds the connection's allowed patterns, ``held`` what the task's DAG has (its id, tags, bundle).
    """

    def __init__(
        self,
        message: str,
        *,
        conn_id: str,
        dag_id: str,
        required: tuple[str, ...] = (),
        held: tuple[str, ...] = (),
    ) -> None:
        self.conn_id = conn_id
        self.dag_id = dag_id
        super().__init__(message, model="", required=required, held=held)


class ManifestUnreachable(ManifestError):
    """The object storage holding the manifest could not be reached and no cached copy exists yet: often transient."""

    retryable = True


class SelectionError(ConfigurationError):
    """A dbt selection (``select``/``exclude``/``selector``) is malformed or uses what cannot be resolved here."""
