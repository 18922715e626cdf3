"""Use cases of the model lifecycle: enact a deployment plan, load and unload a model, load the startup plans.

A plan is enacted by fetching each new version's artifact, refusing it unless its sha256 equals the digest the
plan names, loading and warming it up, and only then swapping the model's deployment in one step. Versions the
new deployment no longer uses finish their in-flight requests before they are unloaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from collections import defaultdict
from concurrent.futures import Executor
from dataclasses import dataclass

from modelyard.retry import Backoff
from modelyard.serving.codec import TensorCodec
from modelyard.serving.domain.batching import Batcher, RunCost, batchable
from modelyard.serving.domain.deployment import Deployment, ModelManager, ServedVersion
from modelyard.serving.domain.errors import ArtifactError, NotFound, PlanSourceError, ServingError
from modelyard.serving.domain.model import Plan, VersionRef
from modelyard.serving.domain.ports import ArtifactSource, MetricsFactory, ModelLoader, PlanSource, StatusReporter
from modelyard.serving.domain.warmup import warm_up

log = logging.getLogger(__name__)


class LoadFailed(ServingError):
    """A version of a plan could not be served; the previous deployment stays live.

    `transient` when fetching the artifact failed (the source may come back); not when the artifact is wrong.
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True)
class ExecutionPolicy:
    """How loaded versions execute and validate."""

    pool: Executor
    inline_below_s: float = 200e-6  # one-row call time under which inline beats a thread hand-off
    drain_timeout_s: float = 30.0
    reject_non_finite: frozenset[str] = frozenset()  # model names, or "*" for every model
    max_elements: int = 1 << 26
    max_batch_rows: int = 64  # dynamic batching cap; 1 turns batching off
    max_queue_delay_s: float = 0.0  # under load only
    # Batching pays when a call's fixed cost (one-row call minus the cost of a row) exceeds what queueing and
    # splitting a request costs in Python.
    batch_overhead_s: float = 50e-6


# Reloading a plan whose artifacts could not be fetched: soon at first, then at most every 30 s.
LOAD_RETRY = Backoff(first_s=0.5, max_s=30.0)


class Lifecycle:
    def __init__(
        self,
        manager: ModelManager,
        artifacts: ArtifactSource,
        loader: ModelLoader,
        plans: PlanSource,
        status: StatusReporter,
        metrics: MetricsFactory,
        policy: ExecutionPolicy,
        load_retry: Backoff = LOAD_RETRY,
    ) -> None:
        self.manager = manager
        self.artifacts = artifacts
        self.loader = loader
        self.plans = plans
        self.status = status
        self.metrics = metrics
        self.policy = policy
        self.unloaded: set[str] = set()  # models taken down by RepositoryModelUnload, listed as UNAVAILABLE
        self.load_retry = load_retry
        self._locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._retries: dict[str, asyncio.Task[None]] = {}

    async def enact(self, plan: Plan, *, force: bool = False) -> bool:
        """Serve `plan`; False when it is not newer than the plan being served (redelivery, stale event).

        Raises LoadFailed, with the previous deployment still live, when a version cannot be served.
        """
        async with self._locks[plan.model]:
            current = self.manager.get(plan.model)
            if current is not None and plan.revision <= current.plan.revision and not force:
                log.info(
                    "plan revision %d for %s ignored: serving revision %d",
                    plan.revision,
                    plan.model,
                    current.plan.revision,
                )
                return False
            reusable = {v.ref: v for v in current.versions} if current is not None else {}
            served: dict[VersionRef, ServedVersion] = {}
            self.manager.loading(plan)
            try:
                for ref in plan.versions:
                    served[ref] = reusable.get(ref) or await self._load(ref)
            except BaseException:
                for ref, version in served.items():
                    if ref not in reusable:
                        version.close()
                raise
            finally:
                self.manager.loading_done(plan.model)
            deployment = Deployment(
                plan,
                served[plan.primary],
                served[plan.canary] if plan.canary is not None else None,
                served[plan.shadow] if plan.shadow is not None else None,
            )
            previous = self.manager.swap(deployment)
            self.unloaded.discard(plan.model)
            log.info("serving %s revision %d: %s", plan.model, plan.revision, _describe(plan))
            if previous is not None:
                await self._retire([v for v in previous.versions if v.ref not in served])
            return True

    async def apply_decision(self, plan: Plan) -> None:
        """Enact a plan a decision event carries, when it is the very next revision of what is served.

        On any doubt (a revision that jumps ahead, an older or equal revision with other content, a model this
        replica does not serve past its first revision) the plan source, governance, is asked instead and its
        current plan for the model is what gets enacted: a replica never gets stuck behind a revision governance
        never issued, nor goes back to an old plan replayed. Raises PlanSourceError while governance is away. A
        plan whose artifacts cannot be fetched yet is retried in the background (`serve`).
        """
        current = self.manager.get(plan.model)
        served = current.plan.revision if current is not None else 0
        if plan.revision == served + 1:
            return await self.serve(plan)
        if current is not None and plan == current.plan:
            return  # redelivered
        log.warning(
            "plan revision %d for %s does not follow served revision %d: asking the plan source",
            plan.revision,
            plan.model,
            served,
        )
        decided = next((p for p in await self.plans.plans() if p.model == plan.model), None)
        if decided is None:
            log.warning("plan for %s ignored: the plan source has no plan for it", plan.model)
        elif current is None or decided != current.plan:
            await self.serve(decided, force=True)

    async def serve(self, plan: Plan, *, force: bool = False) -> None:
        """Enact `plan`; when a version's artifact cannot be fetched yet (its source is away), keep trying in the
        background with backoff until it can, the model answering UNAVAILABLE meanwhile if nothing of it is live.
        A plan refused for good (a digest mismatch, not a model) was reported as ModelLoadFailed, and is logged."""
        try:
            await self.enact(plan, force=force)
        except LoadFailed as exc:
            if not exc.transient:
                log.error("plan revision %d for %s not served: %s", plan.revision, plan.model, exc)
                return
            log.warning("plan revision %d for %s not served yet, retrying: %s", plan.revision, plan.model, exc)
            self.manager.missing(plan.model)
            previous = self._retries.pop(plan.model, None)
            if previous is not None:
                previous.cancel()
            self._retries[plan.model] = asyncio.create_task(self._keep_trying(plan, force), name=f"load {plan.model}")

    async def _keep_trying(self, plan: Plan, force: bool) -> None:
        wait = self.load_retry.first_s
        try:
            while True:
                await asyncio.sleep(wait * random.uniform(0.8, 1.0))
                try:
                    await self.enact(plan, force=force)  # a newer plan served meanwhile makes this a no-op
                    return
                except LoadFailed as exc:
                    if not exc.transient:
                        log.error("plan revision %d for %s not served: %s", plan.revision, plan.model, exc)
                        return
                    wait = self.load_retry.after(wait)
                    log.warning("plan revision %d for %s: next try in %.1fs: %s", plan.revision, plan.model, wait, exc)
        finally:
            self.manager.not_missing(plan.model)
            if self._retries.get(plan.model) is asyncio.current_task():
                del self._retries[plan.model]

    async def load_model(self, model: str) -> None:
        """(Re)load a model from its plan in the plan source (the repository API's load)."""
        for plan in await self.plans.plans():
            if plan.model == model:
                await self.enact(plan, force=True)
                return
        raise NotFound(f"no deployment plan for model '{model}'")

    async def unload_model(self, model: str) -> None:
        async with self._locks[model]:
            deployment = self.manager.remove(model)
            if deployment is None:
                raise NotFound(f"model '{model}' is not loaded")
            self.unloaded.add(model)
            await self._retire(list(deployment.versions))

    def index(self, ready_only: bool) -> list[tuple[str, str, str, str]]:
        """(model, version, state, reason) of every model this replica serves, loads or was told to unload."""
        rows = [(d.plan.model, v.label, "READY", "") for d in self.manager for v in d.versions]
        if not ready_only:
            rows += [(model, "", "UNAVAILABLE", "artifacts retried") for model in self.manager.missing_models()]
            rows += [(model, "", "UNAVAILABLE", "unloaded") for model in sorted(self.unloaded)]
            rows += [(model, "", "LOADING", "") for model in self.manager.loading_models()]
        return rows

    async def load_startup_plans(self, retry: Backoff | None = None) -> None:
        """Serve every plan the plan source has; one plan that fails does not stop the others, and one whose
        artifacts cannot be fetched yet is retried in the background (`serve`).

        While the source is away (a transient PlanSourceError), ask again as `retry` says, then raise: a replica
        that gives up visibly (and is restarted) is better than one that serves nothing, or stale plans, silently.
        """
        for plan in await self._startup_plans(retry or Backoff()):
            await self.serve(plan)
        self.manager.started = True

    async def _startup_plans(self, retry: Backoff) -> list[Plan]:
        waits = retry.waits()
        for attempt in range(1, len(waits) + 2):
            try:
                return await self.plans.plans()
            except PlanSourceError as exc:
                if not exc.transient or attempt > len(waits):
                    raise
                wait = waits[attempt - 1] * random.uniform(0.8, 1.0)
                log.warning("startup plans not fetched (attempt %d), next in %.1fs: %s", attempt, wait, exc)
                await asyncio.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def close(self) -> None:
        for task in list(self._retries.values()):
            task.cancel()
        await asyncio.gather(*self._retries.values(), return_exceptions=True)
        for deployment in list(self.manager):
            self.manager.remove(deployment.plan.model)
            for version in deployment.versions:
                version.close()

    async def _load(self, ref: VersionRef) -> ServedVersion:
        try:
            artifact = await self.artifacts.fetch(ref)
        except (ServingError, OSError) as exc:
            # An unreachable source may come back (retry); a refusal (e.g. unknown digest) will not.
            await self.status.load_failed(ref, f"artifact not fetched: {exc}")
            raise LoadFailed(f"{ref}: artifact not fetched: {exc}", transient=isinstance(exc, OSError)) from exc
        try:
            digest = "sha256:" + await asyncio.to_thread(lambda: hashlib.sha256(artifact).hexdigest())
            if digest != ref.digest:
                raise ArtifactError(f"artifact of {ref} has digest {digest}, the plan names {ref.digest}")
            runner = await asyncio.to_thread(self.loader.load, ref, artifact)
            result = await asyncio.to_thread(warm_up, runner)
        except Exception as exc:  # whatever the runtime raises on a bad model or a failed warm-up
            await self.status.load_failed(ref, str(exc))
            raise LoadFailed(f"{ref}: {exc}") from exc
        policy = self.policy
        inline = result.call_s < policy.inline_below_s
        # A version whose one-row call costs less than batching itself never batches; any other batchable one
        # gets a batcher, which batches while its measured costs say a full batch pays.
        batcher_cost = (
            RunCost(result.call_s, result.per_row_s)
            if policy.max_batch_rows > 1 and batchable(runner.signature) and result.call_s >= policy.batch_overhead_s
            else None
        )
        log.info(
            "loaded %s (%s) in warm-up %.1f ms: %.1f us per call, %.2f us per extra row, running %s%s",
            ref,
            ref.digest,
            result.total_ms,
            result.call_s * 1e6,
            result.per_row_s * 1e6,
            "inline" if inline else "in the worker pool",
            ", dynamically batched while it pays" if batcher_cost else "",
        )
        codec = TensorCodec(
            runner.signature,
            reject_non_finite=bool({"*", ref.model} & self.policy.reject_non_finite),
            max_elements=self.policy.max_elements,
        )
        metrics = self.metrics.for_version(ref)
        pool = None if inline else policy.pool
        batcher = (
            Batcher(
                runner,
                metrics,
                batcher_cost,
                max_batch_rows=policy.max_batch_rows,
                overhead_s=policy.batch_overhead_s,
                max_delay_s=policy.max_queue_delay_s,
                pool=pool,
            )
            if batcher_cost
            else None
        )
        version = ServedVersion(ref, runner, codec, metrics, pool=pool, batcher=batcher, warmup_ms=result.total_ms)
        await self.status.loaded(ref, result.total_ms)
        return version

    async def _retire(self, versions: list[ServedVersion]) -> None:
        """Let each version finish what it runs, then unload it."""
        for version in versions:
            if not await version.drain(self.policy.drain_timeout_s):
                log.warning(
                    "%s still had %d requests after %.0fs; unloading anyway",
                    version.ref,
                    version.in_flight,
                    self.policy.drain_timeout_s,
                )
            version.close()
            await self.status.unloaded(version.ref)
            log.info("unloaded %s", version.ref)


def _describe(plan: Plan) -> str:
    parts = [f"primary v{plan.primary.version}"]
    if plan.canary is not None:
        parts.append(f"canary v{plan.canary.version} at {plan.canary_weight:.0%}")
    if plan.shadow is not None:
        parts.append(f"shadow v{plan.shadow.version}")
    return ", ".join(parts)
