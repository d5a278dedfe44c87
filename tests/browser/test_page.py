"""The status page in a real browser (issue #21, point 5), against the two
daemons tests/integration/daemon/browser.rs starts and describes through
AGENTMESH_TEST_* variables. One chromium for every scenario, in file order:
the mesh drawn, a pause and a resume, a handoff, a peer stopped, and no
request URL holding the key. Screenshots go to AGENTMESH_TEST_SCREENSHOTS."""

import os
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ENV = os.environ
PAGE_URL = ENV["AGENTMESH_TEST_PAGE_URL"]
KEY = ENV["AGENTMESH_TEST_KEY"]
NODE = ENV["AGENTMESH_TEST_NODE"]
PEER = ENV["AGENTMESH_TEST_PEER"]
CAPABILITY = ENV["AGENTMESH_TEST_CAPABILITY"]
PEER_SERVICE = ENV["AGENTMESH_TEST_PEER_SERVICE"]
PEER_SERVICE_SAYS = ENV["AGENTMESH_TEST_PEER_SERVICE_SAYS"]
CONVERSATION = ENV["AGENTMESH_TEST_CONVERSATION"]
SHOTS = Path(ENV["AGENTMESH_TEST_SCREENSHOTS"])

# Every URL the browser asked for, the event stream's WebSockets included.
requested = []


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=ENV["AGENTMESH_TEST_CHROMIUM"], args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        context.on("request", lambda request: requested.append(request.url))
        page = context.new_page()
        page.on("websocket", lambda socket: requested.append(socket.url))
        page.goto(f"{PAGE_URL}#key={KEY}")
        yield page
        browser.close()


def row_of(page, table, name):
    return page.locator(f"#{table} tr", has_text=name)


def shot(page, name):
    page.screenshot(path=SHOTS / f"{name}.png", full_page=True)


def test_the_page_lists_both_nodes_and_the_capability_placement(page):
    expect(row_of(page, "nodes", NODE)).to_contain_text("online")
    expect(row_of(page, "nodes", PEER)).to_contain_text("online")
    expect(row_of(page, "capabilities", CAPABILITY)).to_contain_text(PEER)
    expect(page.locator("#stream")).to_have_text("live")
    assert KEY not in page.url, "the key is dropped from the address bar"
    expect(row_of(page, "conversation-rows", CONVERSATION)).to_contain_text(NODE)
    # A peer's Service, with its output read through this node.
    expect(row_of(page, "services", PEER_SERVICE)).to_contain_text(PEER, timeout=10_000)
    expect(row_of(page, "services", PEER_SERVICE)).to_contain_text(PEER_SERVICE_SAYS, timeout=10_000)
    shot(page, "1-mesh")


def test_reconciles_are_paused_and_resumed_from_the_page_after_a_confirmation(page):
    page.click("#pause")
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-key")).to_be_hidden()  # the session came from the key
    page.click("#confirm button[value=cancel]")
    expect(page.locator("#confirm")).to_be_hidden()
    expect(page.locator("#paused")).to_have_text("running")
    page.click("#pause")
    page.click("#confirm-ok")
    expect(page.locator("#paused")).to_have_text("paused")
    shot(page, "2-paused")
    page.click("#resume")
    page.click("#confirm-ok")
    expect(page.locator("#paused")).to_have_text("running")


def test_a_handoff_started_from_the_page_completes(page):
    row = row_of(page, "conversation-rows", CONVERSATION)
    row.locator("button.hand-over").click()
    expect(page.locator("#confirm-node")).to_have_value(PEER)
    shot(page, "3-handoff-confirm")
    page.click("#confirm-ok")
    expect(row.locator("[data-outcome=succeeded]")).to_be_visible(timeout=30_000)
    expect(row.locator(".steps li").first).to_contain_text("freeze")
    expect(row.locator(".steps")).to_contain_text("barrier")
    expect(row.locator("td[data-label=Owner]")).to_have_text(PEER, timeout=10_000)
    shot(page, "4-handed-over")


def test_a_stopped_peer_shows_as_unreachable_within_5_s_without_a_reload(page):
    page.evaluate("window.notReloaded = true")
    os.kill(int(ENV["AGENTMESH_TEST_PEER_PID"]), signal.SIGSTOP)
    stopped = time.monotonic()
    expect(row_of(page, "nodes", PEER).locator("td[data-label=State]")).to_contain_text("unreachable", timeout=5_000)
    took = time.monotonic() - stopped
    print(f"the stopped peer showed as unreachable after {took:.1f} s")
    assert page.evaluate("window.notReloaded") is True, "the page was not reloaded"
    shot(page, "5-peer-unreachable")
    page.set_viewport_size({"width": 380, "height": 800})
    shot(page, "6-phone")


def test_the_key_is_in_no_request_url(page):
    assert any(url.startswith("ws://") for url in requested), requested
    assert any("/api/v1/handoff" in url for url in requested), requested
    leaking = [url for url in requested if KEY in url]
    assert not leaking, f"the key is in request URLs: {leaking}"
