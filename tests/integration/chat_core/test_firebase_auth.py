"""AUTH_MODE=firebase: real firebase-admin verification of tokens signed with a test key."""

import time
from collections.abc import Callable, Iterator

import pytest

from chat_core.auth import FirebaseAuthenticator, Refusal
from chat_core.settings import AuthMode, ServiceSettings
from chat_core.testing import TestSettings
from tests.support.firebase import (
    PROJECT_ID,
    SigningKey,
    make_signing_key,
    serve_certificates,
    sign_id_token,
)


@pytest.fixture(scope="module")
def signing_key() -> SigningKey:
    return make_signing_key()


@pytest.fixture(scope="module")
def cert_url(signing_key: SigningKey) -> Iterator[str]:
    with serve_certificates(signing_key) as url:
        yield url


@pytest.fixture(scope="module")
def authenticator(cert_url: str) -> FirebaseAuthenticator:
    settings = ServiceSettings(auth_mode=AuthMode.FIREBASE, firebase_project_id=PROJECT_ID)
    return FirebaseAuthenticator(settings, TestSettings(firebase_cert_url=cert_url))


async def test_a_valid_token_yields_its_uid(
    authenticator: FirebaseAuthenticator, signing_key: SigningKey
) -> None:
    assert await authenticator.user_id_for(sign_id_token(signing_key, "alice-uid")) == "alice-uid"


async def test_small_clock_skew_is_tolerated(
    authenticator: FirebaseAuthenticator, signing_key: SigningKey
) -> None:
    issued_in_the_future = int(time.time()) + 5
    token = sign_id_token(
        signing_key, "bob", iat=issued_in_the_future, auth_time=issued_in_the_future
    )
    assert await authenticator.user_id_for(token) == "bob"


# Claims as functions of the time the test runs, not the time it was collected: a slow
# suite once reached this test ten minutes after collection, when "+600 s" was the past.
@pytest.mark.parametrize(
    "claims",
    [
        lambda now: {"exp": now - 3600, "iat": now - 7200},
        lambda now: {"aud": "some-other-project"},
        lambda now: {"iss": "https://securetoken.google.com/some-other-project"},
        lambda now: {"iat": now + 600},
        lambda now: {"sub": ""},
    ],
    ids=["expired", "wrong-audience", "wrong-issuer", "issued-in-the-future", "no-subject"],
)
async def test_tokens_with_bad_claims_are_refused_with_4001(
    authenticator: FirebaseAuthenticator,
    signing_key: SigningKey,
    claims: Callable[[int], dict[str, object]],
) -> None:
    token = sign_id_token(signing_key, "mallory", **claims(int(time.time())))
    with pytest.raises(Refusal) as refused:
        await authenticator.user_id_for(token)
    assert refused.value.close_code == 4001


async def test_a_token_signed_with_another_key_is_refused(
    authenticator: FirebaseAuthenticator,
) -> None:
    forged = sign_id_token(make_signing_key(), "mallory")
    with pytest.raises(Refusal) as refused:
        await authenticator.user_id_for(forged)
    assert refused.value.close_code == 4001


@pytest.mark.parametrize("token", [None, "", "not.a.jwt", "+84912345678"])
async def test_garbage_is_refused(authenticator: FirebaseAuthenticator, token: str | None) -> None:
    with pytest.raises(Refusal) as refused:
        await authenticator.user_id_for(token)
    assert refused.value.close_code == 4001


def test_refuses_to_start_when_the_emulator_variable_would_disable_signature_checks() -> None:
    settings = ServiceSettings(
        auth_mode=AuthMode.FIREBASE,
        firebase_project_id=PROJECT_ID,
        firebase_auth_emulator_host="127.0.0.1:9099",
    )
    with pytest.raises(RuntimeError, match="FIREBASE_AUTH_EMULATOR_HOST"):
        FirebaseAuthenticator(settings)


def test_firebase_mode_needs_a_project_id() -> None:
    with pytest.raises(RuntimeError, match="FIREBASE_PROJECT_ID"):
        FirebaseAuthenticator(ServiceSettings(auth_mode=AuthMode.FIREBASE))


async def test_a_uid_too_long_for_a_routing_key_is_refused(
    authenticator: FirebaseAuthenticator, signing_key: SigningKey
) -> None:
    # 60 characters pass firebase-admin's 128-character rule; 180 bytes would not fit
    # `user.<id>` next to the slot suffix in a 255-byte routing key, so it is refused.
    with pytest.raises(Refusal, match="128 bytes") as refused:
        await authenticator.user_id_for(sign_id_token(signing_key, "€" * 60))
    assert refused.value.http_status == 401
    assert await authenticator.user_id_for(sign_id_token(signing_key, "€" * 42)) == "€" * 42
