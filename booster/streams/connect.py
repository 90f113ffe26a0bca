"""Connecting to Kafka: the options every aiokafka client and Faust take (TLS and SASL from the
settings, through the libraries' own credential support), and one-line errors when a client cannot
start (an unreachable broker, a refused password, an untrusted certificate, a missing ACL)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from aiokafka.conn import create_conn
from aiokafka.errors import (
    AuthenticationFailedError,
    ClusterAuthorizationFailedError,
    GroupAuthorizationFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAuthorizationFailedError,
    TransactionalIdAuthorizationFailed,
)
from faust.auth import SASLCredentials, SSLCredentials
from faust.types.auth import CredentialsT

from booster.config import Security, Settings
from booster.errors import BrokerError, BrokerUnreachable

ACL_HELP = "see the ACLs in docs/operations.md (`booster topics create --acls` writes them)"


@functools.cache
def ssl_context(security: Security) -> ssl.SSLContext | None:
    """The TLS context of a protocol that uses TLS: the CA file (or the system's CAs), the client
    certificate for mutual TLS; hostnames are checked. One per settings: clients share it."""
    if not security.uses_tls:
        return None
    try:
        context = ssl.create_default_context(cafile=str(security.ca_file) if security.ca_file else None)
        if security.cert_file is not None and security.key_file is not None:
            context.load_cert_chain(
                str(security.cert_file), str(security.key_file), password=security.key_password or None
            )
    except (ssl.SSLError, OSError) as exc:
        raise BrokerError(
            f"cannot load the TLS files ({exc}); check BOOSTER_SSL_CA_FILE, BOOSTER_SSL_CERT_FILE and "
            "BOOSTER_SSL_KEY_FILE (PEM) and the key's password file"
        ) from None
    return context


def security_options(security: Security) -> dict[str, Any]:
    """aiokafka's security keyword arguments for these settings."""
    options: dict[str, Any] = {"security_protocol": security.protocol}
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    if security.uses_sasl:
        options.update(
            sasl_mechanism=security.mechanism,
            sasl_plain_username=security.username,
            sasl_plain_password=security.password,
        )
    return options


def client_options(settings: Settings) -> dict[str, Any]:
    """bootstrap_servers and the security options: what every aiokafka client of ours is built with."""
    return {"bootstrap_servers": settings.broker, **security_options(settings.security)}


def faust_credentials(security: Security) -> CredentialsT | None:
    """Faust's `broker_credentials` for these settings (None: plaintext)."""
    context = ssl_context(security)
    if security.uses_sasl:
        return SASLCredentials(
            username=security.username, password=security.password, ssl_context=context, mechanism=security.mechanism
        )
    if context is not None:
        return SSLCredentials(context)
    return None


T = TypeVar("T")


async def _stop(client: Any) -> None:
    stop = getattr(client, "stop", None) or client.close
    with contextlib.suppress(TimeoutError, KafkaError, OSError):  # it never connected: closing is all there is
        await stop()


async def started(client: T) -> T:
    """`client` started; if it cannot start (the broker away), it is closed and the error raised, so
    the caller keeps no half-made client: aiokafka's clients are unusable after a failed start (a
    consumer has no fetcher), and one kept would fail every later call, not just this one."""
    try:
        await client.start()  # type: ignore[attr-defined]
    except BaseException:
        await _stop(client)
        raise
    return client


@asynccontextmanager
async def connected(settings: Settings, client: Any) -> AsyncIterator[Any]:
    """Start an aiokafka client, yield it, and stop it, whatever happens: a client that cannot start
    (or is refused by an ACL while used) ends in one BrokerError that says what to fix."""
    try:
        await client.start()
    except BaseException as exc:
        await _stop(client)
        if isinstance(exc, (KafkaError, OSError, TimeoutError)):
            raise await explain(settings, exc) from None
        raise
    try:
        yield client
    except (KafkaError, OSError, TimeoutError) as exc:
        refusal = refused(settings, exc)
        if refusal is None:
            raise
        raise refusal from None
    finally:
        await _stop(client)


def refused(settings: Settings, exc: BaseException) -> BrokerError | None:
    """A missing ACL, said in one line; None when the error is something else."""
    who = f"User:{settings.security.username}" if settings.security.uses_sasl else "this client's principal"
    kinds = (
        (TopicAuthorizationFailedError, "a topic"),
        (GroupAuthorizationFailedError, "the consumer group"),
        (TransactionalIdAuthorizationFailed, "a transactional id"),
        (ClusterAuthorizationFailedError, "the cluster"),
    )
    for kind, what in kinds:
        if isinstance(exc, kind):
            return BrokerError(f"the broker at {settings.broker} refused {who} access to {what} ({exc}); {ACL_HELP}")
    return None


async def explain(settings: Settings, exc: BaseException) -> BrokerError:
    """Why a client could not start, in one line. aiokafka's bootstrap error drops the cause, so the
    first bootstrap address is tried once more, by hand, to learn it."""
    refusal = refused(settings, exc)
    if refusal is not None:
        return refusal
    cause: BaseException = exc
    if isinstance(exc, KafkaConnectionError):
        cause = await _bootstrap_cause(settings) or exc
    return describe_failure(settings, cause)


async def _bootstrap_cause(settings: Settings) -> BaseException | None:
    host, _, port = settings.broker.split(",")[0].strip().rpartition(":")
    options = security_options(settings.security)
    try:
        conn = await asyncio.wait_for(create_conn(host.strip("[]"), int(port), **options), 10.0)
    except (KafkaError, OSError, TimeoutError, ValueError) as cause:
        return cause
    conn.close()
    return None


def describe_failure(settings: Settings, cause: BaseException) -> BrokerError:
    where = f"the Kafka broker at {settings.broker} ({settings.security.describe()})"
    if isinstance(cause, ssl.SSLCertVerificationError):
        return BrokerError(
            f"{where}: its TLS certificate is not trusted ({cause.verify_message}); set BOOSTER_SSL_CA_FILE to the "
            "CA that signed it, and connect by the name or address the certificate holds"
        )
    if isinstance(cause, ssl.SSLError):
        return BrokerError(
            f"{where}: the TLS handshake failed ({cause.reason or cause}); check BOOSTER_SECURITY_PROTOCOL "
            "matches the broker's listener and the client certificate, if the broker asks for one"
        )
    if isinstance(cause, AuthenticationFailedError) or "authentication" in str(cause).lower():
        return BrokerError(
            f"{where}: authentication failed; check BOOSTER_SASL_USERNAME, the password (BOOSTER_SASL_PASSWORD "
            "or BOOSTER_SASL_PASSWORD_FILE) and BOOSTER_SASL_MECHANISM"
        )
    if isinstance(cause, KafkaConnectionError):  # it answered, then hung up: not the protocol it speaks
        return BrokerError(
            f"{where}: the broker closed the connection ({cause}); check that BOOSTER_SECURITY_PROTOCOL is the one "
            "its listener at that address speaks (PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL)"
        )
    return BrokerUnreachable(
        f"could not reach {where}: {cause or type(cause).__name__}. Start a local one with `booster kafka start`, "
        "or set BOOSTER_BROKER to your cluster's bootstrap address (and BOOSTER_SECURITY_PROTOCOL and the "
        "credentials it asks for)"
    )
