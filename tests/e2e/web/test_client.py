"""The browser client (clients/web) in headless Chromium: two people chat end to end.

Debian's chromium, driven by Playwright (no browser download). The page is served by
scripts/serve_web.py on a free port, configured for this session's stack, with its own edge
so the test can stop it (a lost connection) and start it again (the reconnect).
On failure a screenshot of each page is saved under test-artifacts/.
"""

import os
import re
import shutil
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from chat_launcher import launch, wait_ready
from playwright.async_api import Browser, Locator, Page, async_playwright, expect

from tests.support.stack import ServiceProcess, Stack, free_port
from tests.support.users import new_user

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[3]
DIST = ROOT / "clients" / "web" / "dist"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STEP = 20_000  # ms: one UI step on a loaded machine


@pytest.fixture(scope="module")
def web_edge(stack: Stack) -> Iterator[ServiceProcess]:
    edge = stack.start("ws-edge", EDGE_ID=f"edge-web-{stack.names[1][-6:]}")
    yield edge
    edge.stop()


@pytest.fixture(scope="module")
def web_url(
    stack: Stack, web_edge: ServiceProcess, messaging: ServiceProcess, presence: ServiceProcess
) -> Iterator[str]:
    assert (DIST / "index.html").is_file(), "no web bundle: run `make web`"
    port = free_port()
    server = launch(
        "web",
        port,
        os.environ,
        command=[
            sys.executable,
            str(ROOT / "scripts" / "serve_web.py"),
            "--port",
            str(port),
            "--ws-url",
            web_edge.ws_url,
            "--messaging-url",
            messaging.http_url,
            "--presence-url",
            presence.http_url,
            "--reconnect-max-ms",
            "1000",
        ],
        log_path=stack.log_dir / f"web-{port}.log",
    )
    wait_ready([server], 90)
    yield server.http_url
    server.stop()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert shutil.which("chromium"), "chromium missing: run `make browser`"
    async with async_playwright() as playwright:
        # Playwright gives each launch a fresh, empty --user-data-dir.
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        yield launched
        await launched.close()


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


async def sign_in(browser: Browser, url: str, phone: str) -> Page:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_test_id("signin-phone").fill(phone)
    await page.get_by_test_id("signin-submit").click()
    await expect(page.get_by_test_id("connection")).to_have_attribute(
        "data-state", "connected", timeout=STEP
    )
    return page


def message(page: Page, text: str) -> Locator:
    return page.get_by_test_id("message").filter(has_text=text)


@pytest.mark.timeout(240)
async def test_two_people_chat_in_the_browser(
    browser: Browser, web_url: str, web_edge: ServiceProcess, stack: Stack
) -> None:
    alice, bob = new_user(), new_user()
    pages: dict[str, Page] = {}
    started = time.monotonic()
    try:
        pages["alice"] = a = await sign_in(browser, web_url, alice)
        pages["bob"] = b = await sign_in(browser, web_url, bob)

        # Alice starts a conversation and writes; Bob's list shows it, unread, with the text.
        await a.get_by_test_id("new-conversation-participants").fill(bob)
        await a.get_by_test_id("new-conversation-name").fill("browser test")
        await a.get_by_test_id("new-conversation-submit").click()
        await expect(a.get_by_test_id("thread-title")).to_have_text("browser test", timeout=STEP)
        await a.get_by_test_id("composer-input").fill("hello bob")
        await a.get_by_test_id("composer-send").click()
        await expect(message(a, "hello bob")).to_have_count(1, timeout=STEP)
        row = b.locator("[data-conversation-id]").filter(has_text="browser test")
        await expect(row).to_contain_text("hello bob", timeout=STEP)
        await expect(row.locator(".badge")).to_have_text("1", timeout=STEP)

        # Bob opens it: the message is there, the badge goes, Alice sees the read ticks.
        await row.click()
        await expect(message(b, "hello bob")).to_have_count(1, timeout=STEP)
        await expect(row.locator(".badge")).to_have_count(0, timeout=STEP)
        await expect(message(a, "hello bob")).to_have_attribute("data-read", "true", timeout=STEP)

        # Typing reaches Alice; Bob's reply too.
        await b.get_by_test_id("composer-input").press_sequentially("hi al", delay=50)
        await expect(a.get_by_test_id("typing-indicator")).to_contain_text(
            f"{bob} is typing", timeout=STEP
        )
        await b.get_by_test_id("composer-input").press("Enter")
        await expect(message(a, "hi al")).to_have_count(1, timeout=STEP)

        # Status: Bob goes away; his ack, and Alice's presence dot for him.
        await b.get_by_test_id("status-away").click()
        await expect(b.get_by_test_id("my-status")).to_have_attribute(
            "data-status", "away", timeout=STEP
        )
        await expect(a.get_by_test_id(f"presence-{bob}").first).to_have_attribute(
            "data-status", "away", timeout=STEP
        )

        # The edge dies: both pages lose their socket. Alice still sends (REST) meanwhile.
        web_edge.stop()
        for page in (a, b):
            await expect(page.get_by_test_id("connection")).to_have_attribute(
                "data-state", "reconnecting", timeout=STEP
            )
        missed = ["missed one", "missed two"]
        for text in missed:
            await a.get_by_test_id("composer-input").fill(text)
            await a.get_by_test_id("composer-send").click()
            await expect(message(a, text)).to_have_count(1, timeout=STEP)

        # A new edge on the same port: both reconnect with `since`; Bob gets what he missed.
        restarted = stack.start("ws-edge", port=web_edge.port, EDGE_ID=f"{stack.names[1]}-web2")
        for page in (a, b):
            await expect(page.get_by_test_id("connection")).to_have_attribute(
                "data-state", "connected", timeout=STEP
            )
        for text in missed:
            await expect(message(b, text)).to_have_count(1, timeout=STEP)
        # Caught up by the server's replay (or /sync when replay_done is late).
        await expect(b.get_by_test_id("connection")).to_have_attribute(
            "data-caught-up", re.compile("^(replay|sync)$"), timeout=STEP
        )
        await a.get_by_test_id("composer-input").fill("live again")
        await a.get_by_test_id("composer-send").click()
        await expect(message(b, "live again")).to_have_count(1, timeout=STEP)

        texts = await b.get_by_test_id("message").locator(".content").all_inner_texts()
        assert texts == ["hello bob", "hi al", "missed one", "missed two", "live again"]
        ids = await b.get_by_test_id("message").evaluate_all(
            "nodes => nodes.map(n => n.dataset.messageId)"
        )
        assert len(ids) == len(set(ids)) == 5
        # What a person would have seen, kept for review (test-artifacts/ is not committed).
        for name, page in pages.items():
            await page.screenshot(path=str(artifacts_dir() / f"web-client-{name}-done.png"))
        restarted.stop()
    except BaseException:
        artifacts_dir()
        for name, page in pages.items():
            shot = ARTIFACTS / f"web-client-{name}.png"
            await page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot: {shot}")
        raise
    finally:
        print(f"browser test took {time.monotonic() - started:.1f}s")


async def test_the_page_is_configured_for_this_stack(
    web_url: str, web_edge: ServiceProcess
) -> None:
    async with httpx.AsyncClient(base_url=web_url) as client:
        config = (await client.get("/config.json")).json()
        index = await client.get("/")
    assert config["wsBase"] == web_edge.ws_url
    assert index.status_code == 200
    assert re.search(r'<div id="root">', index.text)
