"""An app registration's certificate credential: a PEM (key and certificate) or PFX file, checked and held safely."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from airflow_provider_idbt.errors import ConnectionFieldError
from airflow_provider_idbt.identity.secret import Secret

_KEY_BLOCK = re.compile(r"-----BEGIN (?:RSA |EC )?PRIVATE KEY-----.+?-----END (?:RSA |EC )?PRIVATE KEY-----", re.S)


@dataclass(frozen=True)
class AzureCertificate:
    """The private key (a :class:`Secret`) and the public certificate msal sends as x5c and thumbprints."""

    private_key: Secret = field(repr=False)
    certificate_pem: str
    thumbprint: str  # SHA-256 of the DER certificate, hex: what Entra's x5t#S256 header names
    not_after: datetime

    def msal_credential(self) -> dict[str, Any]:
        # msal computes the SHA-256 thumbprint and x5c from public_certificate and signs with PS256.
        return {"private_key": self.private_key.reveal(), "public_certificate": self.certificate_pem}

    def secrets(self) -> tuple[str, ...]:
        return (self.private_key.reveal(),)


def load_certificate(conn_id: str, password: str | None, path: str | None) -> AzureCertificate:
    """The certificate from the password field (PEM) or from `certificate_path` (PEM or unencrypted PFX)."""
    field_name = "certificate_path" if path else "password"
    if path:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise ConnectionFieldError(
                conn_id, field_name, f"cannot be read ({type(exc).__name__})", "mount the certificate file there"
            ) from None
    else:
        data = (password or "").replace("\\n", "\n").encode()
    try:
        return _parse(data)
    except (ValueError, TypeError) as exc:
        # The parser's message may quote key material: name only what is wrong.
        raise ConnectionFieldError(
            conn_id,
            field_name,
            f"holds no usable certificate and private key ({_reason(exc)})",
            "give one PEM with an unencrypted private key and its certificate, or an unencrypted PFX",
        ) from None


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, _Unusable) else type(exc).__name__


class _Unusable(ValueError):
    """A problem whose message is ours and names no key material."""


def _parse(data: bytes) -> AzureCertificate:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs12

    if b"-----BEGIN" in data:
        blocks = _KEY_BLOCK.findall(data.decode("utf-8", "replace"))
        if not blocks:
            raise _Unusable("no unencrypted PRIVATE KEY block")
        key = serialization.load_pem_private_key(blocks[0].encode(), password=None)
        certificates = x509.load_pem_x509_certificates(data)
    else:
        pfx_key, first, extra = pkcs12.load_key_and_certificates(data, None)
        if pfx_key is None or first is None:
            raise _Unusable("the PFX lacks a key or a certificate")
        key, certificates = pfx_key, [first, *extra]
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    leaf = next(
        (
            cert
            for cert in certificates
            if cert.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == public
        ),
        None,
    )
    if leaf is None:
        raise _Unusable("no certificate matches the private key")
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return AzureCertificate(
        private_key=Secret(key_pem, "certificate private key"),
        certificate_pem=leaf.public_bytes(serialization.Encoding.PEM).decode(),
        thumbprint=leaf.fingerprint(hashes.SHA256()).hex(),
        not_after=leaf.not_valid_after_utc.astimezone(UTC),
    )
