"""``actorflow web`` in a real browser: headless Chromium opens a run page while the run
progresses (a gated workflow in this process writes the SQLite file), twice, and the
DOM shows the steps and their states changing; a screenshot is saved under tmp_path.

Needs Chromium (Debian: ``apt-get install -y chromium``); without it the test is
skipped, saying so, unless ``ACTORFLOW_REQUIRE_BROWSER=1`` (``.ci/run`` sets it,
after installing Chromium when it runs as root), which makes a missing browser
a failure. ``ACTORFLOW_WEB_SCREENSHOT=PATH`` also copies the screenshot there
(that is how ``docs/web-view.png`` was made).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from runtime import ActorSystem, CheckpointStrategy, SQLiteStore, task
from tests.cli.web_support import get_json, serving
from tests.support import wait_until

pytestmark = pytest.mark.timeout(90)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = (
    "Chromium is not installed, so the web view's browser test is skipped; to run it: "
    "apt-get install -y chromium (or run .ci/run as root, which installs it)"
)

# Headless, and kept on loopback: no proxy, no name resolution but 127.0.0.1, none of the
# background traffic a browser starts on its own (updates, metrics, sync, safe browsing).
_FLAGS = [
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--no-pings",
    "--metrics-recording-only",
    "--safebrowsing-disable-auto-update",
    "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
    "--hide-scrollbars",
]


def chromium(profile: Path, *args: str) -> str:
    if CHROMIUM is None:
        pytest.fail(
            "ACTORFLOW_REQUIRE_BROWSER=1 but neither chromium nor chromium-browser is on PATH; "
            "install it: apt-get install -y chromium"
        )
    command = [CHROMIUM, *_FLAGS, f"--user-data-dir={profile}", *args]
    if os.geteuid() == 0:
        command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def steps_in(dom: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-step="([^"]+)" data-state="([^"]+)">', dom))


def nodes_in(dom: str) -> dict[str, str]:
    """Each step row's node cell."""
    row = r'<tr data-step="([^"]+)"[^>]*>(?:(?!</tr>).)*?<td class="node">([^<]*)</td>'
    return dict(re.findall(row, dom, re.DOTALL))


def run_state(dom: str) -> str:
    found = re.search(r'id="run-state" data-state="([^"]+)"', dom)
    assert found is not None, dom[-2000:]
    return found.group(1)


@pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("ACTORFLOW_REQUIRE_BROWSER") != "1", reason=INSTALL
)
def test_a_browser_sees_the_steps_of_a_running_run_change(tmp_path: Path) -> None:
    release = threading.Event()

    def gated(ctx: Any) -> str:
        if not release.wait(20):
            raise TimeoutError("gate never opened")
        return "released"

    wf = (
        task(lambda ctx: "one", name="extract")
        .then(task(gated, name="transform"))
        .then(task(lambda ctx: "three", name="load"))
        .named("web-demo")
    )
    db, profile = tmp_path / "state.db", tmp_path / "chromium-profile"
    store = SQLiteStore(db)
    checkpoint = CheckpointStrategy.AFTER_EACH_STEP
    with (
        ActorSystem("web-browser", store=store, checkpoint=checkpoint) as system,
        serving(db, {wf.name: wf}, app="test", dot=shutil.which("dot")) as server,
    ):
        handle = system.run(wf, {})
        page = f"{server.url}runs/{handle.id}"
        api = f"{server.url}api/runs/{handle.id}"
        assert wait_until(lambda: db.is_file() and "extract" in str(get_json(api)["steps"]))

        before = chromium(profile, "--dump-dom", page)
        assert steps_in(before) == {"extract": "Completed"}
        assert run_state(before) == "Running"
        assert '<pre class="mermaid-source">' in before and "web-demo" in before

        png = tmp_path / "web-view.png"
        chromium(profile, f"--screenshot={png}", "--window-size=1100,900", page)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
        if target := os.environ.get("ACTORFLOW_WEB_SCREENSHOT"):
            shutil.copyfile(png, target)

        release.set()
        assert handle.result(10) == "three"
        # A virtual-time budget lets the page's own poll run once: the live update works
        # in a real browser, under the page's Content-Security-Policy.
        after = chromium(profile, "--virtual-time-budget=3000", "--dump-dom", page)
        assert steps_in(after) == {
            "extract": "Completed",
            "transform": "Completed",
            "load": "Completed",
        }
        assert run_state(after) == "Completed"
        assert nodes_in(after) == dict.fromkeys(("extract", "transform", "load"), "web-browser")
        assert 'data-live="ok"' in after
    store.close()
