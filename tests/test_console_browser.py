"""The console in a real headless browser (Debian's chromium driven by Playwright; nothing downloaded):
log in, run the playground, watch proxied requests appear, charts, policies. Saves a screenshot of each
page (in docs/console/ for the README with PRIVGATE_SCREENSHOTS=1, else in a temporary directory, so a
test run leaves the checkout clean). Needs /usr/bin/chromium (scripts/install-browser.sh)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright

from gateway.runtime import Runtime
from tests.console_env import ADMIN_TOKEN, TENANT_KEY, console_app, console_runtime
from tests.servers import LoopbackServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCS = Path(__file__).resolve().parent.parent / "docs" / "console"
SHOTS = DOCS if os.environ.get("PRIVGATE_SCREENSHOTS") == "1" else Path(tempfile.mkdtemp(prefix="console-shots-"))

# typed into the playground by the "officer" (shown back to them, by design); the emoji is two UTF-16 units
# but one code point: the page must place the highlights by code points, as the server counts
NAME, EMAIL, DIAGNOSIS = "Hans Müller", "hans.mueller@praxis-beispiel.de", "asthma"
TEXT = f"👋 I am {NAME} ({EMAIL}) and was diagnosed with {DIAGNOSIS} last spring. Which sports are safe?"
# sent by an app through the proxy: must never appear in any console page, response or log
APP_SECRETS = ["Ingrid Söderberg", "ingrid.soderberg@fjord-example.se", "type 2 diabetes"]

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="no chromium: run scripts/install-browser.sh (Debian's package)"
)


@pytest.fixture(scope="module")
def console(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackServer]:
    with LoopbackServer(console_app(console_runtime(runtime, tmp_path_factory.mktemp("console-ui")))) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def responses() -> list[str]:
    """Every body the console's pages received (HTML, script, JSON, SVG), for the final grep."""
    return []


@pytest.fixture(scope="module")
def page(browser: Browser, console: LoopbackServer, responses: list[str]) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=console.url)
    opened = context.new_page()

    def keep(response: Response) -> None:
        if response.url.startswith(console.url) and response.status != 303:
            try:
                responses.append(response.text())
            except Exception:  # a body the browser did not keep (a redirect): nothing to check
                return

    opened.on("response", keep)
    yield opened
    context.close()


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_a_wrong_token_is_refused_then_the_right_one_logs_in(page: Page) -> None:
    page.goto("/console")
    page.fill("#token", "not-the-admin-token")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("That is not the admin token.")
    assert "not-the-admin-token" not in page.url
    shot(page, "login")
    page.fill("#token", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page.locator("body")).to_have_attribute("data-ready", "yes")
    assert page.url.endswith("/console") and ADMIN_TOKEN not in page.url
    cookie = next(c for c in page.context.cookies() if c["name"] == "privgate_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read the session


def test_playground_highlights_spans_and_shows_the_rewritten_body(page: Page) -> None:
    page.goto("/console#playground")
    page.select_option("#pg-domain", "clinic")
    page.fill("#pg-input", TEXT)
    page.click("#pg-run")
    expect(page.locator("#pg-outcome")).to_have_class(re.compile(r"\bok\b"))
    marks = page.locator("#pg-highlight mark")
    expect(marks).to_have_count(3)
    person = page.locator('#pg-highlight mark[data-label="PERSON"]')
    expect(person).to_contain_text(NAME)
    assert "detector: " in (person.get_attribute("title") or "") and "action: pseudonymize" in person.get_attribute(
        "title"
    )
    expect(page.locator('#pg-highlight mark[data-label="EMAIL_ADDRESS"]')).to_contain_text(EMAIL)
    diagnosis = page.locator('#pg-highlight mark[data-label="DIAGNOSIS"]')
    expect(diagnosis).to_contain_text(DIAGNOSIS)
    assert diagnosis.get_attribute("data-action") == "mask"
    body = json.loads(page.locator("#pg-body").inner_text())
    sent = body["messages"][0]["content"]
    assert "[DIAGNOSIS_1]" in sent and NAME not in sent and EMAIL not in sent and DIAGNOSIS not in sent
    expect(page.locator("#pg-cloud")).to_have_text(sent)
    expect(page.locator("#pg-restored")).to_have_text(TEXT)
    page.locator("#pg-highlight mark").first.hover()
    shot(page, "playground")


def test_requests_sent_through_the_proxy_appear_with_their_counts(page: Page, console: LoopbackServer) -> None:
    name, email, diagnosis = APP_SECRETS
    headers = {"X-Privgate-Key": TENANT_KEY}
    with openai.OpenAI(base_url=f"{console.url}/v1", api_key="vendor", max_retries=0, default_headers=headers) as app:
        for content in (f"Patient {name}, diagnosed with {diagnosis}.", f"Send the results to {email}, thanks."):
            app.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": content}])
    other = openai.OpenAI(base_url=f"{console.url}/v1", api_key="vendor", max_retries=0)
    with other, pytest.raises(openai.PermissionDeniedError):  # a value in a field privgate cannot rewrite: a leak
        other.chat.completions.create(
            model="gpt-4o", messages=[{"role": "user", "content": f"Hi {name}"}], metadata={"who": name}
        )
    page.goto("/console#requests")
    rows = page.locator("#rq-table tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator(".n-leaks")).to_have_text("1")
    expect(rows.nth(1).locator(".n-spans")).to_have_text("1")
    expect(rows.nth(2).locator(".n-spans")).to_have_text("2")
    expect(rows.nth(2)).to_contain_text("DIAGNOSIS ×1")
    expect(rows.nth(2)).to_contain_text("clinic-team")
    page.select_option("#rq-label", "DIAGNOSIS")
    page.click("#rq-apply")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.locator("#rq-by-label tbody tr")).to_have_count(2)
    expect(page.locator("#rq-spans .hash").first).to_have_text(re.compile(r"^[0-9a-f]{24}$"))
    page.select_option("#rq-label", "")
    page.check("#rq-leaks")
    page.click("#rq-apply")
    expect(rows).to_have_count(1)
    rows.first.click()
    expect(page.locator("#rq-leaks-list li")).to_have_count(1)
    expect(page.locator("#rq-leaks-list")).to_contain_text("PERSON")
    page.uncheck("#rq-leaks")
    page.click("#rq-apply")
    expect(rows).to_have_count(3)
    rows.nth(2).click()
    expect(page.locator("#rq-detail")).to_contain_text("clinic-team")
    shot(page, "requests")


def test_charts_render_as_svg(page: Page) -> None:
    page.goto("/console#charts")
    for name in ("requests", "spans", "leaks", "overhead", "budget"):
        expect(page.locator(f"#ch-{name} svg")).to_have_count(1)
    expect(page.locator("#ch-spans svg")).to_contain_text("DIAGNOSIS")
    expect(page.locator("#ch-budget svg")).to_contain_text("clinic-team")
    shot(page, "charts")


def test_policies_list_and_validate(page: Page) -> None:
    page.goto("/console#policies")
    clinic = page.locator('.policy[data-domain="clinic"]')
    expect(clinic).to_contain_text("version c1")
    expect(clinic).to_contain_text("DIAGNOSIS: mask")
    page.fill("#po-filename", "clinic.yaml")
    page.fill("#po-text", 'name: clinic\nversion: "2"\nactions:\n  PERSON: shred\n')
    page.click("#po-check")
    expect(page.locator("#po-result")).to_contain_text("clinic.yaml:4: actions.PERSON: Input should be")
    assert page.locator("#po-result").get_attribute("data-ok") == "no"
    shot(page, "policies")
    page.fill("#po-text", 'name: clinic\nversion: "2"\nactions:\n  PERSON: mask\n')
    page.click("#po-check")
    expect(page.locator("#po-result")).to_have_text("clinic.yaml: ok (policy 'clinic' version 2)")


def test_no_app_secret_or_token_in_any_page_response_or_log(
    page: Page, responses: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    page.goto("/console#requests")
    expect(page.locator("#rq-table tbody tr").first).to_be_visible()
    page.locator("#rq-table tbody tr").first.click()
    expect(page.locator("#rq-detail")).to_be_visible()
    seen = "\n".join(responses) + page.content()
    assert len(responses) > 20 and "rq-table" in seen
    logs = "\n".join(f"{r.name} {r.getMessage()} {r.args}" for r in caplog.records)
    for secret in [ADMIN_TOKEN, TENANT_KEY, *APP_SECRETS]:
        assert secret not in seen and secret not in logs, secret
    page.click("#logout")
    expect(page.locator("#token")).to_be_visible()  # logged out: back to the form
    page.goto("/console#charts")
    expect(page.locator("#token")).to_be_visible()
