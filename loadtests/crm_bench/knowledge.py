"""Knowledge-base suite: SearchArticles latency at 1 000 vs 100 000 published articles (SQLite FTS5).

Articles are bulk-inserted straight into the running servicedesk's SQLite file with SQLAlchemy
Core executemany (20 000 rows per transaction, status PUBLISHED); the schema's triggers fill the
FTS5 index in the same transactions, exactly as PublishArticle does. Text is generated from a
fixed vocabulary with a seeded RNG and Zipf-like word frequencies (a few words are in most
articles, most words in few), so queries hit posting lists of very different lengths.

The same query list (1-3 words drawn with the same frequencies, prefix match on the last
word, page size 10) is measured one call at a time through direct gRPC, first at 1 000 articles,
then after adding 99 000 more: latency percentiles and their ratio. Seeding time is printed.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc

from crm_bench.suite import BenchEnv, machine_line

KEY = "knowledge"
TITLE = "Knowledge base: SearchArticles latency at 1 k vs 100 k articles (SQLite FTS5)"

SMALL = 1_000
LARGE = int(os.environ.get("BENCH_KB_ARTICLES", "100000"))
BATCH = 20_000
QUERIES = 300
SEED = 15
VOCABULARY = 5_000
TITLE_WORDS, BODY_WORDS = 6, 80
CATEGORIES = ["billing", "billing/invoices", "account", "network/vpn", "hardware", "shipping"]
_SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "pe", "sa", "do", "gu", "re", "ba", "ti"]


def vocabulary() -> list[str]:
    """VOCABULARY distinct pronounceable words, the same in every run."""
    words = ("".join(parts) for n in (2, 3, 4) for parts in itertools.product(_SYLLABLES, repeat=n))
    return list(itertools.islice(words, VOCABULARY))


class TextGenerator:
    """Seeded Zipf-like text: word k (from 1) is drawn with weight 1 / k."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.words = vocabulary()
        self.cumulative = list(itertools.accumulate(1 / k for k in range(1, len(self.words) + 1)))

    def words_of(self, count: int) -> list[str]:
        return self.rng.choices(self.words, cum_weights=self.cumulative, k=count)

    def query(self) -> str:
        words = self.words_of(self.rng.randint(1, 3))
        last = words[-1]
        words[-1] = last[: max(3, len(last) - 1)]  # the last word typed partly: a prefix match
        return " ".join(words)


def _seed(path: str, start: int, stop: int, text: TextGenerator) -> float:
    """Insert published articles start..stop-1 (sync; run in a thread). Returns seconds taken."""
    import sqlalchemy as sa

    from crm_servicedesk.adapters.article_tables import articles

    began = time.perf_counter()
    base = datetime(2025, 1, 1, tzinfo=UTC)
    engine = sa.create_engine(f"sqlite:///{path}", connect_args={"timeout": 60})
    try:
        for chunk in range(start, stop, BATCH):
            rows = []
            for n in range(chunk, min(chunk + BATCH, stop)):
                moment = base + timedelta(minutes=n)
                rows.append(
                    {
                        "id": str(uuid.UUID(int=text.rng.getrandbits(128), version=4)),
                        "title": " ".join(text.words_of(TITLE_WORDS)).capitalize(),
                        "body": " ".join(text.words_of(BODY_WORDS)) + ".",
                        "category": CATEGORIES[n % len(CATEGORIES)],
                        "status": "published",
                        "author": f"bench-author-{n % 50}",
                        "publish_time": moment,
                        "create_time": moment,
                        "update_time": moment,
                        "row_version": 3,
                    }
                )
            with engine.begin() as conn:
                conn.execute(sa.insert(articles), rows)
        with engine.begin() as conn:
            conn.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()
    return time.perf_counter() - began


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def _latencies(stub, metadata, rpc, queries: list[str]) -> tuple[dict[str, float], int]:
    """One call at a time (latency, not throughput); after a short warm-up of the same queries."""
    for query in queries[:20]:
        await stub.SearchArticles(rpc.SearchArticlesRequest(query=query), metadata=metadata)
    timings, hits = [], 0
    for query in queries:
        began = time.perf_counter()
        reply = await stub.SearchArticles(rpc.SearchArticlesRequest(query=query), metadata=metadata)
        timings.append((time.perf_counter() - began) * 1000)
        hits += len(reply.results)
    return {f"p{p}": _percentile(timings, p) for p in (50, 95, 99)}, hits


async def measure(env: BenchEnv) -> str:
    from crm.servicedesk.v1 import knowledge_service_pb2 as rpc
    from crm.servicedesk.v1 import knowledge_service_pb2_grpc as rpc_grpc

    path = env.database_url("servicedesk").split("///", 1)[1]
    text = TextGenerator(SEED)
    queries = [text.query() for _ in range(QUERIES)]
    async with grpc.aio.insecure_channel(env.direct["servicedesk"]) as channel:
        stub = rpc_grpc.KnowledgeServiceStub(channel)
        seeded_small = await asyncio.to_thread(_seed, path, 0, SMALL, text)
        print(f"  seeded {SMALL:,} articles in {seeded_small:.1f} s", flush=True)
        small, small_hits = await _latencies(stub, env.metadata, rpc, queries)
        seeded_large = await asyncio.to_thread(_seed, path, SMALL, LARGE, text)
        rate = (LARGE - SMALL) / seeded_large
        print(f"  seeded {LARGE - SMALL:,} more in {seeded_large:.1f} s ({rate:,.0f} articles/s)", flush=True)
        large, large_hits = await _latencies(stub, env.metadata, rpc, queries)
    size_mb = (await asyncio.to_thread(os.path.getsize, path)) / 1e6
    for label, figures in ((f"{SMALL:,}", small), (f"{LARGE:,}", large)):
        print(
            f"  {label:>8} articles  p50 {figures['p50']:6.1f} ms  p95 {figures['p95']:6.1f} ms"
            f"  p99 {figures['p99']:6.1f} ms",
            flush=True,
        )
    return render(
        small,
        large,
        seeded_small=seeded_small,
        seeded_large=seeded_large,
        size_mb=size_mb,
        small_hits=small_hits,
        large_hits=large_hits,
    )


def render(
    small: dict[str, float],
    large: dict[str, float],
    *,
    seeded_small: float,
    seeded_large: float,
    size_mb: float,
    small_hits: int,
    large_hits: int,
) -> str:
    lines = [
        machine_line(
            f"Servicedesk on SQLite ({size_mb:.0f} MB file at {LARGE:,} articles), direct gRPC, 1 call in "
            f"flight, {QUERIES} queries of 1-3 words (prefix on the last) from a {VOCABULARY:,}-word "
            f"vocabulary with Zipf-like frequencies, {TITLE_WORDS}-word titles and {BODY_WORDS}-word "
            f"bodies, page size 10, ranked by bm25 (title x10) with a snippet. Seeding (Core "
            f"executemany, {BATCH:,} rows per transaction, FTS5 filled by the schema's triggers): "
            f"{SMALL:,} in {seeded_small:.1f} s, {LARGE - SMALL:,} more in {seeded_large:.1f} s. "
            f"Results returned: {small_hits:,} at {SMALL:,}, {large_hits:,} at {LARGE:,}."
        ),
        "",
        f"| SearchArticles | at {SMALL:,} articles | at {LARGE:,} articles | ratio |",
        "|---|---:|---:|---:|",
    ]
    for key in ("p50", "p95", "p99"):
        ratio = large[key] / small[key] if small[key] else float("nan")
        lines.append(f"| {key} ms | {small[key]:.1f} | {large[key]:.1f} | {ratio:.1f} |")
    return "\n".join(lines)
