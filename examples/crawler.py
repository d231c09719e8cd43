"""A crawler: discover pages, fetch 200 of them (some flaky), then summarize.

It shows the authoring tools on one pipeline, with nothing fetched from a
network (the "site" is generated):

- ``graph``: ``fetch_all``, ``robots`` and ``census`` start as soon as
  ``discover`` is done; ``summarize`` waits for ``fetch_all`` and ``robots``;
- ``map_items``: one step per discovered URL (``fetch[0]``...), outputs in URL
  order, bounded by ``max_running_steps``, each retried by its own policy;
- ``async def`` tasks: ``fetch`` awaits like a real HTTP client would;
- a typed ``parallel`` whose branches both write ``notes``, merged on purpose.

Run it: ``python -m examples.crawler`` (``--pages N``, ``--flaky-every K``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any, TextIO

from runtime import (
    ActorSystem,
    Fixed,
    RetryPolicy,
    RunHandle,
    TemporaryError,
    Workflow,
    current_step,
    graph,
    map_items,
    parallel,
    task,
)

SITE = "https://shop.example"  # never contacted: pages are made up from their URL


def discover(ctx: dict[str, Any]) -> int:
    """List the pages to fetch (a sitemap, here generated)."""
    ctx["urls"] = [f"{SITE}/item/{n}" for n in range(ctx["pages"])]
    return len(ctx["urls"])


async def fetch(url: str) -> dict[str, Any]:
    """Fetch one page; every ``flaky_every``-th page times out once, then works."""
    await asyncio.sleep(0)  # where a real client would await the response
    number = int(url.rsplit("/", 1)[1])
    if number % FLAKY_EVERY[0] == 0 and current_step().attempt == 1:
        raise TemporaryError(f"{url} timed out")
    return {"url": url, "words": 50 + number % 17, "links": number % 5}


def robots(ctx: dict[str, Any]) -> list[str]:
    """The paths the site asks crawlers to skip (read alongside the fetches)."""
    return ["/cart", "/checkout"]


def census(ctx: dict[str, Any]) -> int:
    """Needs only the URL list: runs while the pages are still being fetched."""
    return len({url.rsplit("/", 2)[1] for url in ctx["urls"]})


def remember_pages(ctx: dict[str, Any], pages: list[dict[str, Any]]) -> int:
    """The map's output, in URL order, handed to the parts that depend on it."""
    ctx["fetched"] = pages
    return len(pages)


def count_words(ctx: dict[str, Any]) -> int:
    pages = ctx["fetched"]
    ctx["notes"] = [f"{sum(p['words'] for p in pages)} words"]
    return sum(p["words"] for p in pages)


def count_links(ctx: dict[str, Any]) -> int:
    pages = ctx["fetched"]
    ctx["notes"] = [f"{sum(p['links'] for p in pages)} links"]
    return sum(p["links"] for p in pages)


FLAKY_EVERY = [10]  # a module-level setting, so workers importing this module see it too


def build_crawler() -> Workflow[dict[str, Any], dict[str, Any]]:
    retry = RetryPolicy(max_attempts=3, backoff=Fixed(0.01), retry_on=(TemporaryError,))
    fetch_all = map_items(lambda ctx: ctx["urls"], task(fetch, retry=retry), name="fetch")
    # Both branches write "notes": the merge says how (without it the run would fail,
    # naming the key and the branches, instead of keeping one of them silently).
    counts = parallel(
        task(count_words),
        task(count_links),
        merge={"notes": lambda lists: [note for notes in lists for note in notes]},
    )
    g = graph("crawler")
    found = g.add(task(discover), name="discover")
    fetched = g.add(
        fetch_all.nested(lambda ctx: ctx, remember_pages), after=[found], name="fetch_all"
    )
    skipped = g.add(task(robots), after=[found], name="robots")
    g.add(task(census), after=[found], name="census")
    g.add(counts, after=[fetched, skipped], name="summarize")
    return g.build()


def crawl(
    pages: int = 200, flaky_every: int = 10, *, out: TextIO = sys.stdout, max_running: int = 32
) -> tuple[RunHandle[dict[str, Any]], dict[str, Any]]:
    """Run the crawler in one process; returns the handle and the graph's outputs."""
    FLAKY_EVERY[0] = flaky_every
    with ActorSystem("crawler", max_running_steps=max_running) as system:
        handle = system.run(build_crawler(), {"pages": pages})
        outputs = handle.result(timeout=120)
        retried = sorted(s.step for s in handle.steps() if s.attempts > 1)
        out.write(f"discovered {outputs['discover']} pages\n")
        words, links = outputs["summarize"]
        out.write(f"fetched {outputs['fetch_all']} pages, {len(retried)} after a retry\n")
        out.write(f"{words} words, {links} links; skipped paths {outputs['robots']}\n")
    return handle, outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--flaky-every", type=int, default=10)
    args = parser.parse_args(argv)
    crawl(args.pages, args.flaky_every)
    return 0


if __name__ == "__main__":
    sys.exit(main())
