"""Who is calling: dev tokens (the phone number itself) or Firebase ID tokens."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import firebase_admin
import structlog
from firebase_admin import _token_gen, auth

from chat_core.accounts import Accounts
from chat_core.close_codes import CloseCode
from chat_core.ids import MAX_USER_ID_BYTES, is_user_id, is_vn_mobile, normalize_user_id
from chat_core.settings import AuthMode, ServiceSettings
from chat_core.testing import TestSettings

log = structlog.get_logger(__name__)


class Refusal(Exception):
    """Why a caller is turned away, as a WebSocket close code and an HTTP status."""

    def __init__(self, close_code: int, http_status: int, reason: str) -> None:
        super().__init__(reason)
        self.close_code = close_code
        self.http_status = http_status
        self.reason = reason


def invalid_token(reason: str = "invalid or missing token") -> Refusal:
    return Refusal(CloseCode.UNAUTHENTICATED, 401, reason)


def user_mismatch() -> Refusal:
    return Refusal(CloseCode.USER_MISMATCH, 403, "token user does not match path user")


def account_disabled() -> Refusal:
    return Refusal(CloseCode.ACCOUNT_DISABLED, 403, "user account is disabled")


class Authenticator(Protocol):
    async def user_id_for(self, token: str | None) -> str:
        """The user the token proves, or raise the 4001 Refusal."""
        ...


class DevAuthenticator:
    """Development mode: the token is the user's Vietnamese mobile number (E.164)."""

    async def user_id_for(self, token: str | None) -> str:
        if not token:
            raise invalid_token("missing token")
        user_id = normalize_user_id(token)
        if not is_vn_mobile(user_id):
            raise invalid_token("token is not a Vietnamese mobile number in E.164 (+84...)")
        return user_id


class FirebaseAuthenticator:
    """Verifies Firebase ID tokens; the user id is the token's `uid`."""

    def __init__(self, settings: ServiceSettings, hooks: TestSettings | None = None) -> None:
        hooks = hooks or TestSettings()
        if settings.firebase_auth_emulator_host:
            # firebase-admin skips signature checks when the emulator variable is set.
            raise RuntimeError("refusing AUTH_MODE=firebase with FIREBASE_AUTH_EMULATOR_HOST set")
        if not settings.firebase_project_id:
            raise RuntimeError("AUTH_MODE=firebase needs FIREBASE_PROJECT_ID")
        options = {"projectId": settings.firebase_project_id}
        credential = (
            firebase_admin.credentials.Certificate(settings.firebase_credentials_file)
            if settings.firebase_credentials_file
            else None
        )
        name = f"chat-{settings.firebase_project_id}-{id(self)}"
        self._app = firebase_admin.initialize_app(credential, options, name=name)
        self._verifier = _token_gen.TokenVerifier(self._app)
        if hooks.firebase_cert_url:
            log.warning("FIREBASE_CERT_URL is set: signing certificates come from a test server")
            self._verifier.id_token_verifier.cert_url = hooks.firebase_cert_url
        self._clock_skew = settings.firebase_clock_skew_seconds

    async def user_id_for(self, token: str | None) -> str:
        if not token:
            raise invalid_token("missing token")
        try:
            # Verification may fetch certificates over HTTP: keep it off the event loop.
            claims: dict[str, Any] = await asyncio.to_thread(
                self._verifier.verify_id_token, token, self._clock_skew
            )
        except (ValueError, auth.InvalidIdTokenError, auth.CertificateFetchError) as error:
            raise invalid_token("invalid Firebase ID token") from error
        uid = claims.get("uid") or claims.get("sub")
        if not isinstance(uid, str) or not uid:
            raise invalid_token("token has no uid")
        if not is_user_id(uid):
            # firebase-admin allows 128 characters; a routing key needs the bound in bytes.
            raise invalid_token(f"uid is not printable or longer than {MAX_USER_ID_BYTES} bytes")
        return uid


def build_authenticator(settings: ServiceSettings) -> Authenticator:
    if settings.auth_mode is AuthMode.FIREBASE:
        return FirebaseAuthenticator(settings)
    return DevAuthenticator()


async def admit(
    authenticator: Authenticator,
    accounts: Accounts,
    token: str | None,
    claimed_user_id: str | None = None,
    *,
    fetch_disabled: Callable[[str], Awaitable[bool]] | None = None,
) -> str:
    """The caller's user id, or the Refusal that says why not (4001, 4002, 4003).

    The disabled flag comes from the process's account cache (chat_core.accounts), read on a
    miss with `fetch_disabled` (default: one `_id` lookup in `users`; the edge passes one that
    batches the lookups of concurrent connects)."""
    user_id = await authenticator.user_id_for(token)
    if claimed_user_id is not None and normalize_user_id(claimed_user_id) != user_id:
        raise user_mismatch()
    if await accounts.is_disabled(user_id, fetch_disabled):
        raise account_disabled()
    return user_id
