"""``actorflow web`` over HTTP: a real server on 127.0.0.1, a SQLite file written by real runs."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest

from runtime import ActorSystem, Canceled, CheckpointStrategy, PostgresStore, SQLiteStore, task
from runtime import events as ev
from runtime._cli import build_parser
from runtime._cli.web import controller_for
from tests.cli.cli_app import workflows
from tests.cli.conftest import record_failed_run
from tests.cli.web_support import get, get_json, post, serving
from tests.support import ROOT, EventRecorder, actorflow, wait_until

pytestmark = pytest.mark.timeout(60)

AFTER_EACH = CheckpointStrategy.AFTER_EACH_STEP
HOSTILE = "x<img src=y onerror=alert(1)>"  # in a file name, so in the step's error


@pytest.fixture(scope="module")
def failed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A run that failed at its second step; its error holds markup (a hostile file name)."""
    db, run_id, _marker = record_failed_run(tmp_path_factory.mktemp("web"), HOSTILE)
    return db, run_id


def test_the_run_list_shows_id_workflow_state_steps_and_age(failed_run: tuple[Path, str]) -> None:
    db, run_id = failed_run
    with serving(db) as server:
        status, body, headers = get(server.url)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    row = next(line for line in body.splitlines() if run_id in line)
    assert f'href="/runs/{run_id}"' in row and "cli-demo" in row
    assert "state-failed" in row and ">1/2<" in row and "s</td>" in row  # an age in seconds
    assert "<script nonce=" in body and "'nonce-" in headers["Content-Security-Policy"]


def test_the_run_page_shows_each_step_escaping_every_value(failed_run: tuple[Path, str]) -> None:
    db, run_id = failed_run
    with serving(db) as server:
        status, body, _ = get(f"{server.url}runs/{run_id}")
    assert status == 200
    assert '<tr data-step="first" data-state="Completed">' in body
    fragile = next(line for line in body.splitlines() if 'data-step="fragile"' in line)
    assert 'data-state="Failed"' in fragile and '<td class="num">1</td>' in fragile
    assert '<td class="node">cli-test</td>' in fragile  # the system that ran it
    assert "<th>Node</th>" in body and "does not record" not in body
    assert "ms</td>" in fragile  # a duration
    assert "x&lt;img src=y onerror=alert(1)&gt;" in fragile
    assert "<img" not in body
    assert 'id="run-state" data-state="Failed"' in body
    assert "Read-only view" in body and "<form" not in body


def test_without_the_workflow_the_page_says_how_to_see_its_diagram(
    failed_run: tuple[Path, str],
) -> None:
    db, run_id = failed_run
    with serving(db) as server:
        _, body, _ = get(f"{server.url}runs/{run_id}")
    assert "start actorflow web with --app MODULE" in body
    assert '<pre class="mermaid-source">' not in body


def test_with_the_workflow_the_page_has_its_mermaid_text_coloured_by_state(
    failed_run: tuple[Path, str],
) -> None:
    db, run_id = failed_run
    flows = {wf.name: wf for wf in workflows()}
    with serving(db, flows, app="tests.cli.cli_app", dot=None) as server:
        _, body, _ = get(f"{server.url}runs/{run_id}")
    start = body.index('<pre class="mermaid-source">')
    mermaid = body[start : body.index("</pre>", start)]
    assert "flowchart TD" in mermaid and "&quot;fragile&quot;" in mermaid
    assert "#c8e6c9" in mermaid and "#ffcdd2" in mermaid  # completed green, failed red
    assert "install Graphviz" in body and "<svg" not in body


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_with_graphviz_the_page_has_an_inline_svg_coloured_by_state(
    failed_run: tuple[Path, str],
) -> None:
    db, run_id = failed_run
    flows = {wf.name: wf for wf in workflows()}
    with serving(db, flows, app="tests.cli.cli_app", dot=shutil.which("dot")) as server:
        _, body, _ = get(f"{server.url}runs/{run_id}")
    svg = body[body.index("<svg") : body.index("</svg>")]
    assert "fragile" in svg and "#ffcdd2" in svg and "#c8e6c9" in svg
    assert "<?xml" not in body and '<pre class="mermaid-source">' in body


def test_the_json_twins_carry_the_data_and_the_live_fragments(
    failed_run: tuple[Path, str],
) -> None:
    db, run_id = failed_run
    with serving(db) as server:
        runs = get_json(f"{server.url}api/runs")
        one = get_json(f"{server.url}api/runs/{run_id}")
    assert runs["runs"][0]["run_id"] == run_id and run_id in runs["parts"]["runs"]
    assert one["state"] == "Failed" and [s["step"] for s in one["steps"]] == ["first", "fragile"]
    assert [s["node"] for s in one["steps"]] == ["cli-test", "cli-test"]
    assert set(one["parts"]) == {"summary", "steps", "graph"}
    assert "&lt;img" in one["parts"]["steps"]


def test_unknown_pages_and_runs_are_404_and_a_foreign_host_is_refused(
    failed_run: tuple[Path, str],
) -> None:
    db, _ = failed_run
    with serving(db) as server:
        assert get(f"{server.url}runs/nope")[0] == 404
        assert get(f"{server.url}api/runs/nope")[0] == 404
        assert get(f"{server.url}etc/passwd")[0] == 404
        connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
        connection.request("GET", "/", headers={"Host": "evil.example:80"})  # DNS rebinding
        response = connection.getresponse()
        assert response.status == 400 and b"unexpected Host" in response.read()
        connection.close()


def test_read_only_refuses_control_posts(failed_run: tuple[Path, str]) -> None:
    db, run_id = failed_run
    with serving(db) as server:
        status, body, _ = post(f"{server.url}runs/{run_id}/control", {"action": "cancel"})
    assert status == 403 and "--allow-control" in body


def test_control_buttons_need_the_page_token(failed_run: tuple[Path, str]) -> None:
    db, run_id = failed_run
    calls: list[tuple[str, str]] = []

    def controller(run: str, action: str) -> str:
        calls.append((run, action))
        return f"{action} sent to its coordinator c1"

    with serving(db, controller=controller) as server:
        _, body, _ = get(f"{server.url}runs/{run_id}")
        assert server.token is not None and f'value="{server.token}"' in body
        for action in ("pause", "unpause", "cancel"):
            assert f'name="action" value="{action}"' in body
        url = f"{server.url}runs/{run_id}/control"
        assert post(url, {"action": "cancel", "token": "guess"})[0] == 403
        assert post(url, {"action": "rm", "token": server.token})[0] == 400
        status, _, headers = post(url, {"action": "pause", "token": server.token})
        assert status == 303 and headers["Location"].startswith(f"/runs/{run_id}?notice=")
        _, shown, _ = get(server.url.rstrip("/") + headers["Location"])
        _, crafted, _ = get(f"{server.url}runs/{run_id}?notice=Your%20run%20was%20lost")
    assert calls == [(run_id, "pause")]
    assert '<p class="notice">pause sent to its coordinator c1</p>' in shown
    assert "Your run was lost" not in crafted and 'class="notice"' not in crafted


def test_the_cancel_button_reaches_a_live_coordinator(tmp_path: Path) -> None:
    """The whole path: web form -> temporary member -> the coordinator cancels the run."""
    release, recorder = threading.Event(), EventRecorder()

    def first(ctx: Any) -> str:
        if not release.wait(10):
            raise TimeoutError("never released")
        return "first"

    db = tmp_path / "state.db"
    store = SQLiteStore(db)
    with ActorSystem(
        "coord", listen="tcp://127.0.0.1:0", plaintext=True, store=store, checkpoint=AFTER_EACH
    ) as coord:
        handle = coord.run(
            task(first).then(task(lambda c: 2, name="second")), {}, observers=[recorder]
        )
        recorder.wait_for(lambda e: isinstance(e, ev.Started) and e.step == "first")
        args = build_parser().parse_args(
            ["web", "--db", str(db), "--allow-control", "--join", str(coord.address), "--plaintext"]
        )
        with serving(db, controller=controller_for(args)) as server:
            assert wait_until(lambda: get(f"{server.url}runs/{handle.id}")[0] == 200)
            assert server.token is not None
            status, _, headers = post(
                f"{server.url}runs/{handle.id}/control", {"action": "cancel", "token": server.token}
            )
            assert status == 303
            _, shown, _ = get(server.url.rstrip("/") + headers["Location"])
            assert "cancel sent to its coordinator coord" in shown
            with pytest.raises(Canceled):
                handle.result(10)
            release.set()
    store.close()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--listen", "0.0.0.0:8765"], "not a loopback address"),
        (["--listen", "example.org:80"], "--allow-remote"),
        (["--listen", "8765"], "expected HOST:PORT"),
        (["--allow-control"], "needs --join"),
        (["--allow-control", "--join", "tcp://127.0.0.1:9"], "--keys DIR"),
        (["--join", "tcp://127.0.0.1:9", "--plaintext"], "are for --allow-control"),
    ],
)
def test_bad_usage_exits_2(extra: list[str], message: str, failed_run: tuple[Path, str]) -> None:
    result = actorflow("web", "--db", str(failed_run[0]), *extra)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "usage: actorflow web" in result.stderr and message in result.stderr


def test_the_command_serves_until_stopped(failed_run: tuple[Path, str]) -> None:
    db, run_id = failed_run
    with subprocess.Popen(
        [sys.executable, "-m", "runtime._cli", "web", "--db", str(db), "--listen", "127.0.0.1:0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stdout is not None
            line = process.stdout.readline()
            assert "(read-only)" in line, line
            url = line.split(" at ")[1].split()[0]
            assert url.startswith("http://127.0.0.1:")
            status, body, _ = get(url)
            assert status == 200 and run_id in body
        finally:
            process.terminate()
            process.wait(10)


def test_a_missing_database_exits_1(tmp_path: Path) -> None:
    result = actorflow("web", "--db", str(tmp_path / "none.db"), "--listen", "127.0.0.1:0")
    assert result.returncode == 1 and "no checkpoint database" in result.stderr


def test_on_postgresql_the_pages_share_one_pool_of_connections(
    postgres_url: str, postgres_schema: str
) -> None:
    with (
        PostgresStore(postgres_url, schema=postgres_schema) as store,
        ActorSystem("web-pg", store=store, checkpoint=AFTER_EACH) as system,
    ):
        handle = system.run(task(lambda ctx: "done").named("pg-web"), {})
        assert handle.result(timeout=20) == "done"
    url = f"{postgres_url}&application_name=web-{postgres_schema}"
    url += f"&options=-c%20search_path%3D{postgres_schema}"
    query = "SELECT pid FROM pg_stat_activity WHERE application_name = %s"
    with psycopg.connect(postgres_url, autocommit=True) as watch:

        def web_backends() -> set[int]:
            rows = watch.execute(query, (f"web-{postgres_schema}",)).fetchall()
            return {row[0] for row in rows}

        with serving(url) as server:
            status, body, _ = get(server.url)
            assert status == 200 and handle.id in body, body

            def browse() -> None:
                for _ in range(5):
                    assert get(server.url)[0] == 200
                    assert get(server.url + f"runs/{handle.id}")[0] == 200

            # (the pool may open a second connection while its first is still being
            # opened: the set is taken once the pages have been served a while)
            browse()
            first = web_backends()
            browse()
            assert first and web_backends() == first  # the same connections, kept open
        assert wait_until(lambda: not web_backends(), timeout=10)  # closed with the server
