"""Reference profiles, fetched and built off the consumer's lock.

Downloading a reference dataset from the registry and profiling it can take seconds; it runs on a small worker
pool, never under the monitor's lock. A version's fetch starts when the registry says the version is ready (the
monitor prefetches it long before traffic), or at the latest when its first predictions arrive; the consumer then
waits a bounded time for it (`reference_wait_s`), outside the lock, so a version whose reference is fetched in time
is drift-tested from its first record. A source that is away or slow never blocks the stream for longer: the
version is monitored for operations only and adopts its profile when the fetch completes.

With `isolated` (the sources the settings name), each fetch and profile runs in a short-lived child process that
hands back the profile's bytes and exits: reading Parquet maps pyarrow's libraries and the build's working set is
several times the profile's, ~100 MB the monitor would otherwise keep resident for the rest of its life (freed
memory stays in the allocator's arenas), all for a job it does once per version.
"""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
import threading
import time
from collections.abc import Collection

from modelyard.monitor.domain.errors import InvalidArgument, ReferenceNotFound, ReferenceUnavailable
from modelyard.monitor.domain.ports import ReferenceSource
from modelyard.monitor.domain.profile import ProfileOptions, ReferenceProfile, build_profile

log = logging.getLogger(__name__)

Key = tuple[str, int]  # (model name, version)


class ReferenceProfiles:
    """Profiles of versions' reference data: built on request in worker threads, taken once ready."""

    def __init__(
        self,
        source: ReferenceSource,
        options: ProfileOptions | None = None,
        *,
        retry_s: float = 60.0,
        workers: int = 2,
        isolated: bool = False,
    ) -> None:
        self.source = source
        self.options = options or ProfileOptions()
        self.isolated = isolated  # profile in a child process (the source must pickle)
        self.retry_s = retry_s  # how long after a failed fetch a version's reference is asked for again
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reference")
        self._fetches: dict[Key, concurrent.futures.Future[ReferenceProfile]] = {}
        self._failed_at: dict[Key, float] = {}
        self._lock = threading.Lock()

    def build(self, model_name: str, model_version: int) -> ReferenceProfile:
        """Fetch and profile now, in the caller's thread (a rebaseline asked for by a person), or in a child process
        the caller waits for when `isolated`."""
        if not self.isolated:
            return profile_of(self.source, model_name, model_version, self.options)
        context = multiprocessing.get_context("spawn")  # not fork: the parent has threads and open connections
        with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as child:
            data = child.submit(profile_bytes, self.source, model_name, model_version, self.options).result()
        return ReferenceProfile.from_bytes(data)

    def request(self, model_name: str, model_version: int) -> concurrent.futures.Future[ReferenceProfile] | None:
        """Start fetching the version's profile unless a fetch is under way or failed less than `retry_s` ago;
        the fetch under way (or just started), else None."""
        key = (model_name, model_version)
        with self._lock:
            fetch = self._fetches.get(key)
            if fetch is not None:
                return fetch
            failed_at = self._failed_at.get(key)
            if failed_at is not None and time.monotonic() - failed_at < self.retry_s:
                return None
            fetch = self._fetches[key] = self._pool.submit(self.build, model_name, model_version)
            return fetch

    def wait(self, keys: Collection[Key], timeout_s: float) -> None:
        """Wait up to `timeout_s` for the fetches of `keys` that are under way."""
        with self._lock:
            fetches = [f for k in keys if (f := self._fetches.get(k)) is not None]
        if fetches:
            concurrent.futures.wait(fetches, timeout=timeout_s)

    def take(self, model_name: str, model_version: int) -> ReferenceProfile | None:
        """The version's profile if its fetch has completed (once); None while it runs, or when it failed (then
        logged, and asked again after `retry_s`)."""
        key = (model_name, model_version)
        with self._lock:
            fetch = self._fetches.get(key)
            if fetch is None or not fetch.done():
                return None
            del self._fetches[key]
            try:
                profile = fetch.result()
            except (ReferenceNotFound, InvalidArgument):  # a name the registry refuses has no reference either
                log.warning("no reference data for %s/%d: operations only", model_name, model_version)
            except ReferenceUnavailable as exc:
                log.warning(
                    "reference data for %s/%d unavailable (%s): operations only for now", model_name, model_version, exc
                )
            except Exception:
                log.exception("profiling the reference data of %s/%d failed", model_name, model_version)
            else:
                self._failed_at.pop(key, None)
                return profile
            self._failed_at[key] = time.monotonic()
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.source.close()


def profile_of(
    source: ReferenceSource, model_name: str, model_version: int, options: ProfileOptions
) -> ReferenceProfile:
    data = source.load(model_name, model_version)
    return build_profile(model_name, model_version, data.columns, source=data.source, options=options, names=data.names)


def profile_bytes(source: ReferenceSource, model_name: str, model_version: int, options: ProfileOptions) -> bytes:
    """In the child process: the profile as `ReferenceProfile.to_bytes` (exact: arrays as arrays)."""
    return profile_of(source, model_name, model_version, options).to_bytes()
