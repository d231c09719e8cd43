"""The HTML of ``actorflow web``: whole pages and the fragments the pages refresh.

Every value from the store, the workflow or the request goes through ``esc``
(``html.escape`` with quotes) before it is put in HTML; attribute values are
quoted. The only script is ``_SCRIPT``, inline and ours: every second it
fetches the page's JSON twin and replaces the fragments it names by id.
Nothing is loaded from anywhere else (no fonts, no CDN).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from runtime._cli._common import format_duration, format_time
from runtime.store import Checkpoint, RunSummary, StepRecord

__all__ = [
    "age",
    "control_form",
    "error_page",
    "esc",
    "graph_section",
    "page",
    "run_body",
    "run_fragments",
    "run_href",
    "runs_body",
    "runs_fragments",
]

ACTIONS = ("pause", "unpause", "cancel")

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.3em; margin: 0 0 .6em; } h2 { font-size: 1.1em; margin: 1.2em 0 .4em; }
table { border-collapse: collapse; } th, td { padding: .25em .7em; text-align: left; }
th { border-bottom: 2px solid #999; } td { border-bottom: 1px solid #ddd; }
td.num { text-align: right; } .error { color: #b71c1c; max-width: 40em; }
.state { padding: .1em .45em; border-radius: .3em; font-size: .9em; }
.state-completed { background: #c8e6c9; } .state-running { background: #bbdefb; }
.state-failed { background: #ffcdd2; } .state-canceled { background: #ffe0b2; }
.state-pending, .state-paused { background: #eeeeee; }
dl { display: grid; grid-template-columns: max-content auto; gap: .2em 1em; }
dt { color: #666; } dd { margin: 0; } .muted { color: #666; }
pre.mermaid-source { background: #f6f6f6; padding: .6em; font-size: .85em; overflow: auto; }
.notice { background: #fff8e1; padding: .4em .7em; border-left: 4px solid #ffb300; }
form.control { display: inline; } form.control button { margin-right: .4em; }
"""

# Polls the page's JSON twin; ``parts`` maps element ids to their new inner HTML,
# which the server rendered (and escaped) exactly as it renders the page itself.
_SCRIPT = """
(function () {
  var api = document.body.getAttribute("data-api");
  function poll() {
    fetch(api, {cache: "no-store"}).then(function (r) { return r.json(); }).then(function (d) {
      Object.keys(d.parts).forEach(function (id) {
        var el = document.getElementById(id);
        if (el && el.innerHTML !== d.parts[id]) { el.innerHTML = d.parts[id]; }
      });
      document.body.setAttribute("data-live", "ok");
    }).catch(function () { document.body.setAttribute("data-live", "error"); });
  }
  setInterval(poll, 1000);
})();
"""


def esc(value: object) -> str:
    """``value`` as text safe in HTML content and in a double- or single-quoted attribute."""
    return html.escape(str(value), quote=True)


def state_badge(state: str | None) -> str:
    name = state or "-"
    css = re.sub(r"[^a-z]", "", name.lower()) or "none"
    return f'<span class="state state-{css}">{esc(name)}</span>'


def run_href(run_id: str) -> str:
    return "/runs/" + quote(run_id, safe="")


def age(seconds: float) -> str:
    """``12s``, ``3m 04s``, ``2h 05m``, ``3d 04h``: how long ago, to the unit that matters."""
    whole = max(0, int(seconds))
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m {secs:02d}s"
    return f"{secs}s"


def page(title: str, body: str, *, api: str | None, nonce: str) -> str:
    """A whole document; ``body`` is already HTML, ``api`` the JSON twin the script polls
    (None: a page that does not change, without script)."""
    script = f'<script nonce="{esc(nonce)}">{_SCRIPT}</script>\n' if api else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style></head>\n"
        f'<body data-api="{esc(api or "")}">\n{body}\n{script}</body></html>\n'
    )


def runs_fragments(summaries: Iterable[RunSummary], now: float) -> dict[str, str]:
    """The run list's live part: one row per run, newest first."""
    rows = [
        "<tr>"
        f'<td><a href="{esc(run_href(s.run_id))}">{esc(s.run_id)}</a></td>'
        f"<td>{esc(s.workflow)}</td>"
        f"<td>{state_badge(s.state)}</td>"
        f'<td class="num">{s.steps_completed}/{s.steps_total}</td>'
        f'<td class="num" title="{esc(format_time(s.created_at))} UTC">'
        f"{esc(age(now - s.created_at))}</td>"
        f'<td class="num">{esc(age(now - s.updated_at))} ago</td>'
        "</tr>"
        for s in sorted(summaries, key=lambda s: s.updated_at, reverse=True)
    ]
    if not rows:
        rows = ['<tr><td colspan="6" class="muted">no runs recorded yet</td></tr>']
    return {"runs": "\n".join(rows)}


def runs_body(db: str, fragments: Mapping[str, str]) -> str:
    return (
        f'<h1>Runs</h1><p class="muted">checkpoint database {esc(db)}; updated every second. '
        "DONE/REC: steps completed / steps recorded (a step is recorded once it "
        "completed or failed).</p>\n"
        "<table><thead><tr><th>Run</th><th>Workflow</th><th>State</th><th>Done/Rec</th>"
        "<th>Age</th><th>Updated</th></tr></thead>\n"
        f'<tbody id="runs">{fragments["runs"]}</tbody></table>'
    )


def _step_row(step: StepRecord) -> str:
    duration = None
    if step.started_at is not None and step.finished_at is not None:
        duration = step.finished_at - step.started_at
    return (
        f'<tr data-step="{esc(step.step)}" data-state="{esc(step.state)}">'
        f'<td class="step">{esc(step.step)}</td>'
        f"<td>{state_badge(step.state)}</td>"
        f'<td class="num">{step.attempts}</td>'
        f'<td class="node">{esc(step.node or "-")}</td>'
        f"<td>{esc(format_time(step.started_at))}</td>"
        f'<td class="num">{esc(format_duration(duration))}</td>'
        f'<td class="error">{esc(step.error or "")}</td>'
        "</tr>"
    )


def run_fragments(checkpoint: Checkpoint, graph: str, now: float) -> dict[str, str]:
    """The run page's live parts: its summary, its steps and its diagram."""
    c = checkpoint
    summary = (
        f'<dt>state</dt><dd id="run-state" data-state="{esc(c.state)}">{state_badge(c.state)}</dd>'
        f"<dt>workflow</dt><dd>{esc(c.workflow)} "
        f'<span class="muted">(fingerprint {esc(c.fingerprint)})</span></dd>'
        f"<dt>epoch</dt><dd>{c.epoch}</dd>"
        f"<dt>created</dt><dd>{esc(format_time(c.created_at))} UTC "
        f'<span class="muted">({esc(age(now - c.created_at))} ago)</span></dd>'
        f"<dt>updated</dt><dd>{esc(format_time(c.updated_at))} UTC "
        f'<span class="muted">({esc(age(now - c.updated_at))} ago)</span></dd>'
    )
    if c.outcome is not None and c.outcome.error:
        summary += f'<dt>error</dt><dd class="error">{esc(c.outcome.error)}</dd>'
    rows = [_step_row(step) for step in c.steps.values()]
    if not rows:
        rows = ['<tr><td colspan="7" class="muted">no step recorded yet</td></tr>']
    return {"summary": summary, "steps": "\n".join(rows), "graph": graph}


def run_body(
    checkpoint: Checkpoint, fragments: Mapping[str, str], *, controls: str, notice: str | None
) -> str:
    shown = f'<p class="notice">{esc(notice)}</p>' if notice else ""
    return (
        f'<p><a href="/">&larr; all runs</a></p><h1>Run {esc(checkpoint.run_id)}</h1>{shown}\n'
        f'<dl id="summary">{fragments["summary"]}</dl>\n{controls}\n'
        '<h2>Steps</h2><p class="muted">Steps as recorded: one still running or not '
        "reached yet has no row until it completes or fails. Node: where its last attempt "
        "ran (- for a run recorded by a version that did not say).</p>\n"
        "<table><thead><tr><th>Step</th><th>State</th><th>Attempts</th><th>Node</th>"
        "<th>Started (UTC)</th>"
        "<th>Duration</th><th>Error</th></tr></thead>\n"
        f'<tbody id="steps">{fragments["steps"]}</tbody></table>\n'
        f'<h2>Workflow</h2><div id="graph">{fragments["graph"]}</div>'
    )


def control_form(run_id: str, token: str | None) -> str:
    """Pause / unpause / cancel buttons (POST), or a note that the view is read-only."""
    if token is None:
        return (
            '<p class="muted" id="controls">Read-only view: start <code>actorflow web</code> '
            "with <code>--allow-control --join SEED</code> for pause, unpause and cancel.</p>"
        )
    buttons = "".join(
        f'<button type="submit" name="action" value="{action}">{action}</button>'
        for action in ACTIONS
    )
    return (
        f'<form class="control" id="controls" method="post" '
        f'action="{esc(run_href(run_id))}/control">'
        f'<input type="hidden" name="token" value="{esc(token)}">{buttons}</form>'
    )


def graph_section(mermaid: str | None, svg: str | None, hint: str) -> str:
    """The diagram: the Mermaid text, the Graphviz SVG (ours, from ``dot``), and a hint
    saying how to get what is missing (``hint`` is plain text)."""
    parts = []
    if svg is not None:
        parts.append(f'<div class="graph-svg">{svg}</div>')
    if mermaid is not None:
        parts.append(
            "<details"
            + ("" if svg is not None else " open")
            + "><summary>Mermaid source (paste into any Mermaid viewer)</summary>"
            f'<pre class="mermaid-source">{esc(mermaid)}</pre></details>'
        )
    if hint:
        parts.append(f'<p class="muted graph-hint">{esc(hint)}</p>')
    return "\n".join(parts)


def error_page(status: int, message: str, nonce: str) -> str:
    body = f'<p><a href="/">&larr; all runs</a></p><h1>{status}</h1><p>{esc(message)}</p>'
    return page(f"{status} - actorflow", body, api=None, nonce=nonce)
