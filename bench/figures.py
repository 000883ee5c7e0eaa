"""How each figure is measured (bench/__main__.py says what each one is)."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from bench import containers
from bench.api import JSON, NOOP, Api, ApiError
from bench.cluster import Cluster
from bench.load import LoadResult, Target, run_wrk
from bench.openloop import open_loop, percentile
from bench.rawhttp import Client, Endpoint, format_request
from bench.report import Figure

PROBE_PARALLEL = 8
PROBE_MAX_CONTAINERS = 3
PROBE_MAX_S = 3.0  # one after another they take 8 x 500 ms
SUSTAINED = 0.95  # an open-loop run that answers less than this share of its rate saturated
QUANTILES = (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p999", 0.999))
SLEEP_500MS = "function main() { return new Promise((r) => setTimeout(() => r({}), 500)); }"


@dataclass(frozen=True)
class Plan:
    """How long and how often: `quick` is a smoke of the same code path."""

    latency_samples: int
    starts: int
    warmup_s: float
    warmup_rounds: int
    load_s: float
    actions: int
    openloop_s: float

    @classmethod
    def of(cls, quick: bool) -> Plan:
        if quick:
            return cls(latency_samples=200, starts=2, warmup_s=2, warmup_rounds=2, load_s=3,
                       actions=10, openloop_s=5)  # fmt: skip
        return cls(latency_samples=2000, starts=7, warmup_s=4, warmup_rounds=5, load_s=15,
                   actions=100, openloop_s=30)  # fmt: skip


@dataclass
class Run:
    """What every measurement shares; figures accumulate in `figures`."""

    cluster: Cluster
    api: Api
    plan: Plan
    kind: str  # the default kind, e.g. nodejs:22
    image: str  # its image
    stem_cells: int  # how many stem cells of that kind the manifest asks for
    baseline_url: str
    figures: dict[str, Figure] = field(default_factory=dict)

    @property
    def invoker(self) -> str:
        assert self.cluster.invoker_id is not None, "no invoker is running"
        return self.cluster.invoker_id

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(port=self.cluster.port)

    def say(self, what: str) -> None:
        print(f"    {what}", flush=True)

    def add(self, figure: Figure) -> Figure:
        self.figures[figure.name] = figure
        return figure

    def containers_of(self, actions: list[str]) -> int:
        listed = containers.names(self.invoker)
        return sum(len(containers.of_action(self.invoker, a, listed)) for a in actions)

    async def wrk(self, target: Target, connections: int, seconds: float) -> LoadResult:
        return await run_wrk(
            target, connections=connections, seconds=seconds, workdir=self.cluster.workdir
        )

    async def warm_up(self, target: Target, connections: int, actions: list[str]) -> int:
        """Untimed load at the measured concurrency, in rounds, until a round starts no
        container and sees no error: concurrency c needs c warm containers of a
        concurrency-1 action, each a cold start. The number of containers at the end."""
        count = self.containers_of(actions)
        for _ in range(self.plan.warmup_rounds):
            result = await run_wrk(
                target, connections=connections, seconds=self.plan.warmup_s,
                workdir=self.cluster.workdir, timeout_s=60,
            )  # fmt: skip
            await self.cluster.wait_idle()
            before, count = count, self.containers_of(actions)
            self.say(f"warm-up at c={connections}: {result.ok_per_s:.1f} req/s, {count} containers")
            if count == before and not result.errors():
                break
        return count

    async def loaded(
        self, name: str, target: Target, connections: int, of: list[str], **extra: object
    ) -> Figure:
        """A measured wrk run as a figure (its baseline set by the caller): 200 responses per
        second; the containers of the actions `of` once the invoker has run what wrk left in
        flight (`drain_s`); a note on any failed request or any container started meanwhile
        (a cold start inside a warm figure)."""
        before = self.containers_of(of)
        result = await self.wrk(target, connections, self.plan.load_s)
        drain_s, stuck = await self.cluster.wait_idle()
        after = self.containers_of(of)
        self.say(f"{name}: {result.ok_per_s:.1f} req/s, {after} containers")
        figure = Figure(name, result.ok_per_s, None, "req/s",
                        {**result.summary(), "containers": after,
                         "drain_s": round(drain_s, 2), **extra})  # fmt: skip
        notes = [result.problem()]
        if after > before:
            notes.append(f"{after - before} containers started during the measured run")
        if stuck:
            notes.append(f"{stuck} activations stayed in the invoker's queue")
        if any(notes):
            figure.extra["note"] = "; ".join(n for n in notes if n)
        return figure


# Starts: with a stem cell (prewarming invoker) and cold (invoker without prewarm).


async def _first_invocation(run: Run, action: str) -> float:
    request = run.api.openwhisk.request(run.endpoint, action)
    client = Client(run.endpoint)
    try:
        started = time.perf_counter()
        status, body = await client.exchange(request)
        elapsed = (time.perf_counter() - started) * 1000
    finally:
        client.close()
    if status != 200:
        raise RuntimeError(f"first invocation of {action}: {status} {body[:300]!r}")
    return elapsed


async def _wait_for_stem_cells(run: Run, count: int, timeout_s: float = 60.0) -> None:
    """Until `count` containers started as stem cells answer (used ones keep their name)."""
    deadline = time.monotonic() + timeout_s
    while True:
        names = containers.stem_cells(run.invoker, run.kind)
        if len(names) >= count:
            sockets = [containers.socket_of(n) for n in names]
            if all(await asyncio.gather(*(containers.healthy(s) for s in sockets))):
                await asyncio.sleep(0.5)  # the pool polls its new stem cell every <= 50 ms
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{count} stem cells did not start within {timeout_s:.0f} s")
        await asyncio.sleep(0.1)


async def _starts(run: Run, prefix: str, *, stem: bool) -> tuple[list[float], list[float], int]:
    """First invocations of new actions of the default kind, each followed by a `docker run`
    of its image; and how many got a container of their own (a cold start)."""
    family = run.kind.split(":")[0]
    firsts, docker_runs, own = [], [], 0
    for i in range(run.plan.starts):
        action = f"{prefix}{i}"
        await run.api.put_action(action, kind=f"{family}:default")
        if stem:
            await _wait_for_stem_cells(run, run.stem_cells + i)
        firsts.append(await _first_invocation(run, action))
        own += bool(containers.of_action(run.invoker, action))
        docker_runs.append(await containers.docker_run_to_first_answer(run.image))
        run.say(f"{action}: {firsts[-1]:.0f} ms; docker run: {docker_runs[-1]:.0f} ms")
    return firsts, docker_runs, own


def _start_figure(name: str, firsts: list[float], docker_runs: list[float]) -> Figure:
    return Figure(
        name,
        statistics.median(firsts),
        statistics.median(docker_runs),
        "ms",
        {"samples_ms": [round(x, 1) for x in firsts],
         "baseline_samples_ms": [round(x, 1) for x in docker_runs]},
    )  # fmt: skip


async def stem_cell_start(run: Run) -> None:
    await _wait_for_stem_cells(run, run.stem_cells)
    firsts, docker_runs, own = await _starts(run, "stemcell", stem=True)
    figure = run.add(_start_figure("stem_cell_start_ms", firsts, docker_runs))
    figure.extra["stem_cells_used"] = len(firsts) - own
    if own:
        figure.extra["note"] = f"{own} of {len(firsts)} first invocations started a container"


async def cold_start(run: Run) -> None:
    firsts, docker_runs, own = await _starts(run, "coldstart", stem=False)
    figure = run.add(_start_figure("cold_start_ms", firsts, docker_runs))
    if own != len(firsts):
        figure.extra["note"] = f"only {own} of {len(firsts)} first invocations started a container"


# Warm latency at c=1: the OpenWhisk API vs /run into the same warm container.


async def _samples(client: Client, request: bytes, n: int, bad: dict[str, int]) -> list[float]:
    out = []
    for _ in range(n):
        started = time.perf_counter()
        status, _ = await client.exchange(request)
        elapsed = (time.perf_counter() - started) * 1000
        if status == 200:
            out.append(elapsed)
        else:
            bad[str(status)] = bad.get(str(status), 0) + 1
    return out


def _run_request(sock: Path, namespace: str) -> bytes:
    body = {
        "value": {}, "namespace": namespace, "action_name": f"/{namespace}/noop",
        "action_version": "0.0.1", "activation_id": uuid.uuid4().hex,
        "transaction_id": "bench", "deadline": str(int(time.time() * 1000) + 3_600_000),
    }  # fmt: skip
    return format_request(Endpoint(uds=sock), "POST", "/run", JSON, json.dumps(body).encode())


async def warm_latency(run: Run) -> None:
    # One activation per container, as the issue defines the baselines (nodejs actions
    # default to 200 at once, as on Adobe; concurrent_action_throughput measures that).
    await run.api.put_action("noop", code=NOOP, concurrency=1)
    await run.api.warm(["noop"] * 5, parallel=1)
    # The early answer can reach the client before its container is free again, so even
    # one invocation after another may start a second container: any of them will do.
    names = containers.of_action(run.invoker, "noop")
    if not names:
        raise RuntimeError("noop has no warm container")
    sock = containers.socket_of(names[0])
    platform_request = run.api.openwhisk.request(run.endpoint, "noop")
    direct_request = _run_request(sock, run.api.namespace)
    platform, direct = Client(run.endpoint), Client(Endpoint(uds=sock))
    bad: dict[str, int] = {}
    p: list[float] = []
    d: list[float] = []
    try:
        await _samples(platform, platform_request, 20, {})
        await _samples(direct, direct_request, 20, {})
        while len(p) + sum(bad.values()) < run.plan.latency_samples:  # alternating blocks
            p += await _samples(platform, platform_request, 50, bad)
            d += await _samples(direct, direct_request, 50, {})
    finally:
        platform.close()
        direct.close()
    extra: dict[str, object] = {"samples": len(p), "baseline_samples": len(d),
                                "containers": len(names)}  # fmt: skip
    if bad:
        extra |= {"errors": bad, "note": f"{sum(bad.values())} invocations were not 200: {bad}"}
    for name, q in (("warm_p50_ms", 0.5), ("warm_p99_ms", 0.99)):
        run.add(Figure(name, percentile(p, q), percentile(d, q), "ms", dict(extra)))


# Closed-loop throughput with wrk.


async def throughput_c32(run: Run) -> None:
    base = run.cluster.base_url
    openwhisk = run.api.openwhisk.target(base, ["noop"])
    warmed = await run.warm_up(openwhisk, 32, ["noop"])
    ow = await run.loaded("throughput_c32_openwhisk", openwhisk, 32, ["noop"],
                          containers_after_warmup=warmed)  # fmt: skip
    starlette = Target(run.baseline_url, ["/"], JSON)  # while nothing else runs
    await run.wrk(starlette, 32, min(run.plan.warmup_s, 2))
    bare = await run.wrk(starlette, 32, run.plan.load_s)
    seed = run.api.seed.target(base, ["noop"])
    await run.wrk(seed, 32, min(run.plan.warmup_s, 2))
    sd = await run.loaded("throughput_c32_seed", seed, 32, ["noop"])
    for figure in (ow, sd):
        figure.baseline = bare.ok_per_s
        figure.extra["baseline_latency_ms"] = bare.latency_ms
        if bare.errors():
            figure.extra["baseline_errors"] = bare.errors()
        run.add(figure)


async def fsync_cost(run: Run) -> None:
    """What fsyncing Redis's append-only file before each reply costs (`appendfsync always`,
    as the standalone runs its Redis and the README asks of operators, so that a Redis killed
    with -9 loses no accepted invocation): the c=32 noop rate with it, against the same with
    `everysec` (Redis's default), measured one after the other."""
    openwhisk = run.api.openwhisk.target(run.cluster.base_url, ["noop"])
    rates: dict[str, LoadResult] = {}
    for policy in ("everysec", "always"):
        await run.cluster.redis_config("appendfsync", policy)
        await run.wrk(openwhisk, 32, min(run.plan.warmup_s, 2))
        rates[policy] = await run.wrk(openwhisk, 32, run.plan.load_s)
        run.say(f"appendfsync {policy}: {rates[policy].ok_per_s:.1f} req/s")
    extra = {**rates["always"].summary(), "baseline_is": "appendfsync everysec"}
    figure = Figure(
        "throughput_fsync_always", rates["always"].ok_per_s, rates["everysec"].ok_per_s,
        "req/s", extra,
    )  # fmt: skip
    notes = [r.problem() for r in rates.values() if r.problem()]
    if notes:
        figure.extra["note"] = "; ".join(n for n in notes if n)
    run.add(figure)


def _single_action_rate(run: Run) -> tuple[float | None, int | None]:
    single = run.figures.get("throughput_c32_openwhisk")
    if single is None or single.value is None:
        return None, None
    return single.value, single.extra.get("containers")


async def throughput_100_actions(run: Run) -> None:
    actions = [f"rr{i:03d}" for i in range(run.plan.actions)]
    limit = asyncio.Semaphore(4)

    async def create(action: str) -> None:
        async with limit:
            await run.api.put_action(action, code=NOOP, concurrency=1)

    started = time.monotonic()
    await asyncio.gather(*(create(a) for a in actions))
    warmed = await run.api.warm(actions, parallel=4)
    run.say(
        f"{len(actions)} actions created and warmed: {warmed} ({time.monotonic() - started:.0f} s)"
    )
    target = run.api.openwhisk.target(run.cluster.base_url, actions)
    await run.warm_up(target, 32, actions)
    figure = await run.loaded("throughput_100_actions", target, 32, actions, actions=len(actions))
    figure.baseline, _ = _single_action_rate(run)
    if set(warmed) != {"200"}:
        figure.extra["warming_statuses"] = warmed
    run.add(figure)


# Many activations per container.


async def _concurrency_refused(run: Run) -> str | None:
    """Why the platform cannot measure the figure today, or None when it can: the controller
    refuses `limits.concurrency=100`, or the invoker runs parallel activations of such an
    action in separate containers, or one after another."""
    try:
        await run.api.put_action("concprobe", code=SLEEP_500MS, concurrency=100)
    except ApiError as exc:
        if exc.status_code == 400:
            return f"the controller refuses limits.concurrency=100 ({exc})"
        raise
    await run.api.warm(["concprobe"])
    started = time.monotonic()
    statuses = await run.api.warm(["concprobe"] * PROBE_PARALLEL, parallel=PROBE_PARALLEL)
    elapsed = time.monotonic() - started
    used = run.containers_of(["concprobe"])
    run.say(f"concurrency probe: {statuses} in {elapsed:.1f} s on {used} containers")
    probe = f"{PROBE_PARALLEL} parallel 500 ms activations of a concurrency-100 action"
    if used > PROBE_MAX_CONTAINERS:
        return f"not supported yet: {probe} ran in {used} containers"
    if elapsed > PROBE_MAX_S:
        return f"not supported yet: {probe} took {elapsed:.1f} s in {used} containers"
    if set(statuses) != {"200"}:
        return f"not supported yet: {probe} answered {statuses}"
    return None


async def concurrent_action_throughput(run: Run) -> None:
    baseline, baseline_containers = _single_action_rate(run)
    refused = await _concurrency_refused(run)
    if refused is not None:
        run.add(Figure("concurrent_action_throughput", None, baseline, "req/s",
                       {"baseline_containers": baseline_containers, "note": refused}))  # fmt: skip
        return
    await run.api.put_action("conc100", code=NOOP, concurrency=100)
    await run.api.warm(["conc100"])
    target = run.api.openwhisk.target(run.cluster.base_url, ["conc100"])
    await run.warm_up(target, 100, ["conc100"])
    figure = await run.loaded("concurrent_action_throughput", target, 100, ["conc100"],
                              baseline_containers=baseline_containers)  # fmt: skip
    figure.baseline = baseline
    run.add(figure)


# Latency under an open-loop load at 80% of the peak.


def _quantiles(samples: list[float]) -> dict[str, float]:
    if not samples:
        return {}
    return {name: round(percentile(samples, q), 3) for name, q in QUANTILES}


async def p99_at_80pct(run: Run) -> None:
    peak, _ = _single_action_rate(run)
    if not peak:
        note = "no peak throughput (throughput_c32_openwhisk) was measured"
        run.add(Figure("p99_at_80pct_ms", None, None, "ms", {"note": note}))
        return
    rate = 0.8 * peak
    request = run.api.openwhisk.request(run.endpoint, "noop")
    await open_loop(run.endpoint, request, rate=rate, seconds=run.plan.warmup_s, timeout_s=20)
    await run.cluster.wait_idle()
    before = run.containers_of(["noop"])
    result = await open_loop(
        run.endpoint, request, rate=rate, seconds=run.plan.openloop_s, timeout_s=20
    )
    after = run.containers_of(["noop"])
    latencies = result.latencies_ms
    run.say(f"open loop at {rate:.1f} req/s: {_quantiles(latencies)}, {after} containers")
    figure = run.add(Figure(
        "p99_at_80pct_ms",
        percentile(latencies, 0.99) if latencies else None,
        percentile(latencies, 0.5) if latencies else None,
        "ms",
        {"rate": round(rate, 1), "achieved": round(result.achieved, 1),
         "samples": len(latencies), "latency_ms": _quantiles(latencies),
         "generator_lag_ms": _quantiles(result.lag_ms), "connections": result.connections,
         "errors": result.errors(), "containers": after},
    ))  # fmt: skip
    notes: list[str] = []
    if bad := result.errors():
        notes.append(f"{sum(bad.values())} of {int(rate * run.plan.openloop_s)} failed: {bad}")
    if after > before:
        notes.append(f"{after - before} containers started during the measured run")
    if result.achieved < SUSTAINED * rate:  # a ratio to p50 at the same load hides this
        notes.append(f"the rate was not sustained: {result.achieved:.0f} of {rate:.0f} req/s")
    if notes:
        figure.extra["note"] = "; ".join(notes)
