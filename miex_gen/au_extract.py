"""Extract AUs from image folders and videos with py-feat's ``Detectorv2``, offline.

py-feat downloads its weights from the Hugging Face hub with ``cache_dir=<site-packages>/feat/resources``
(so ``HF_HOME``/``HF_HUB_CACHE`` are ignored); with no network that costs about 47 s of retries before
an error. miex sets ``HF_HUB_OFFLINE=1`` and checks for the weight files itself *before* importing
py-feat (a 12-17 s import), so a missing file fails in milliseconds with instructions.

Weights are looked up in a Hugging Face cache tree (DEPENDENCIES.md §1.5)::

    <dir>/models--py-feat--retinaface_r34/refs/main                       (text: <commit>)
    <dir>/models--py-feat--retinaface_r34/snapshots/<commit>/model.safetensors
    <dir>/models--py-feat--face_multitask_v2/refs/main
    <dir>/models--py-feat--face_multitask_v2/snapshots/<commit>/face_multitask_v28.safetensors

``<dir>`` is py-feat's own ``feat/resources`` unless ``weights_dir`` (``--weights-dir``) names another
tree; the multitask file can also come from ``FEAT_MULTITASK_WEIGHTS`` / ``multitask_weights``.
Each clip becomes one py-feat-style CSV (20 AU probabilities, 0-based frames, failed frames marked),
which :func:`miex_gen.au_io.read_au_table` reads (x5 to the OpenFace scale).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .au_io import write_feat_table
from .aus import FEAT_AU_NAMES
from .errors import DataError, DependencyError

log = logging.getLogger(__name__)

RETINAFACE_REPO = "py-feat/retinaface_r34"
RETINAFACE_FILES = ("model.safetensors", "retinaface_r34.safetensors")
MULTITASK_REPO = "py-feat/face_multitask_v2"
MULTITASK_FILES = ("face_multitask_v28.safetensors",)
MULTITASK_ENV = "FEAT_MULTITASK_WEIGHTS"
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v"})


def feat_resource_dir() -> Path:
    """``<site-packages>/feat/resources`` of the installed py-feat, found without importing it."""
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise DependencyError("py-feat is not installed", hint="pip install py-feat")
    return Path(spec.origin).parent / "resources"


def repo_folder(repo: str) -> str:
    owner, name = repo.split("/")
    return f"models--{owner}--{name}"


def hf_cached_file(cache_dir: Path, repo: str, filenames: Sequence[str]) -> Path | None:
    """The first of ``filenames`` in ``cache_dir``'s HF cache tree for ``repo`` (refs/main -> snapshot)."""
    base = cache_dir / repo_folder(repo)
    ref = base / "refs" / "main"
    if not ref.is_file():
        return None
    commit = ref.read_text(encoding="utf-8").strip()
    for name in filenames:
        candidate = base / "snapshots" / commit / name
        if candidate.is_file():
            return candidate
    return None


def _how_to(cache_dir: Path, repo: str, filename: str) -> str:
    folder = cache_dir / repo_folder(repo)
    return (f"on a connected machine run `huggingface-cli download {repo} {filename} --cache-dir <dir>` and copy "
            f"the tree to {cache_dir} (expected {folder}/refs/main holding the commit and "
            f"{folder}/snapshots/<commit>/{filename}), or pass --weights-dir <dir>")


@dataclass(frozen=True)
class FeatWeights:
    """Local files Detectorv2 will load: RetinaFace and the multitask model."""

    cache_dir: Path
    retinaface: Path
    multitask: Path


def locate_feat_weights(weights_dir: Path | str | None = None, multitask_weights: Path | str | None = None) -> FeatWeights:
    """Find every weight file Detectorv2 needs, or raise DependencyError saying how to provide it."""
    cache_dir = Path(weights_dir) if weights_dir is not None else feat_resource_dir()
    retina = hf_cached_file(cache_dir, RETINAFACE_REPO, RETINAFACE_FILES)
    if retina is None:
        raise DependencyError(f"py-feat face detector weights ({RETINAFACE_REPO}) are not available offline in "
                              f"{cache_dir}", hint=_how_to(cache_dir, RETINAFACE_REPO, RETINAFACE_FILES[0]))
    explicit = multitask_weights or os.environ.get(MULTITASK_ENV)
    if explicit:
        multitask = Path(explicit)
        if not multitask.is_file():
            raise DependencyError(f"multitask weights {multitask} (from {'argument' if multitask_weights else MULTITASK_ENV}) "
                                  "do not exist", hint="point it at a .safetensors or .pt checkpoint")
    else:
        found = hf_cached_file(cache_dir, MULTITASK_REPO, MULTITASK_FILES)
        if found is None:
            raise DependencyError(
                f"py-feat AU model weights ({MULTITASK_REPO}) are not available offline in {cache_dir}",
                hint=_how_to(cache_dir, MULTITASK_REPO, MULTITASK_FILES[0]) + f", or set {MULTITASK_ENV}=<file>")
        multitask = found
    return FeatWeights(cache_dir, retina, multitask)


@contextlib.contextmanager
def _feat_resources(cache_dir: Path) -> Iterator[None]:
    """Point py-feat's resource lookup at ``cache_dir`` while the detector is built.

    py-feat passes ``cache_dir=get_resource_path()`` to every hub download and offers no argument for
    RetinaFace's, so a ``weights_dir`` other than its own is honoured by swapping that one function
    for the duration of construction (restored afterwards).
    """
    import feat.utils.io as feat_io

    default = Path(feat_io.get_resource_path())
    if cache_dir.resolve() == default.resolve():
        yield
        return
    original = feat_io.get_resource_path
    feat_io.get_resource_path = lambda: str(cache_dir)
    try:
        yield
    finally:
        feat_io.get_resource_path = original


@dataclass
class ClipAus:
    """py-feat AU probabilities of one clip: ``probs`` f8[F,20] (py-feat order), ``success``, ``score``."""

    probs: np.ndarray
    success: np.ndarray
    score: np.ndarray
    inputs: list[str] = field(default_factory=list)


class FeatAuExtractor:
    """Detectorv2 (RetinaFace + multitask model), run offline; one instance serves many clips."""

    def __init__(self, *, device: str = "cpu", weights_dir: Path | str | None = None,
                 multitask_weights: Path | str | None = None, face_threshold: float = 0.5, batch_size: int = 4):
        os.environ["HF_HUB_OFFLINE"] = "1"  # never wait on the network (read when huggingface_hub is imported)
        hub_constants = sys.modules.get("huggingface_hub.constants")
        if hub_constants is not None:  # imported earlier in this process: switch it too
            hub_constants.HF_HUB_OFFLINE = True
        self.weights = locate_feat_weights(weights_dir, multitask_weights)  # fail fast, before import feat
        self.face_threshold = face_threshold
        self.batch_size = batch_size
        with keep_thread_settings():
            from feat.detector_v2 import Detectorv2  # 12-17 s; sets OMP_NUM_THREADS=1
        try:
            # py-feat's RetinaFace constructor calls torch.set_grad_enabled(False) for the whole
            # process, which would silently stop every later training step: keep our state
            with keep_thread_settings(), _feat_resources(self.weights.cache_dir):
                self.detector = Detectorv2(device=device, face_detection_threshold=face_threshold,
                                           identity_model=None, multitask_weights=str(self.weights.multitask))
        except Exception as exc:  # a corrupt or mismatched file: say which
            raise DependencyError(f"py-feat could not load its weights ({type(exc).__name__}: {exc})",
                                  hint=f"check {self.weights.retinaface} and {self.weights.multitask}") from exc
        names = list(self.detector.multitask.au_names)
        self._columns = [_au_column(names, n) for n in FEAT_AU_NAMES]

    def _collect(self, fex, n: int, inputs: list[str]) -> ClipAus:
        frames = fex["frame"].to_numpy().astype(np.int64)
        score = fex["FaceScore"].to_numpy(dtype=np.float64)
        values = np.stack([fex[c].to_numpy(dtype=np.float64) if c else np.zeros(len(fex)) for c in self._columns],
                          axis=1)
        probs = np.zeros((n, len(FEAT_AU_NAMES)))
        best = np.full(n, -np.inf)
        success = np.zeros(n, dtype=bool)
        for row in range(len(fex)):
            f = frames[row]
            ok = np.isfinite(score[row]) and np.isfinite(values[row]).all()
            if 0 <= f < n and ok and score[row] > best[f]:
                best[f], probs[f], success[f] = score[row], np.clip(values[row], 0, 1), True
        return ClipAus(probs, success, np.where(success, best, np.nan), inputs)

    def extract_images(self, paths: Sequence[Path]) -> ClipAus:
        """AUs of each image (the most confident face per image; no face -> failed frame)."""
        paths = [str(p) for p in paths]
        if not paths:
            raise DataError("no frames to extract AUs from")
        fex = self.detector.detect(paths, data_type="image", batch_size=self.batch_size, progress_bar=False,
                                   face_detection_threshold=self.face_threshold)
        return self._collect(fex, len(paths), [Path(p).name for p in paths])

    def extract_video(self, path: Path) -> ClipAus:
        try:  # torchcodec loads FFmpeg only when a video is decoded
            fex = self.detector.detect(str(path), data_type="video", batch_size=self.batch_size, progress_bar=False,
                                       face_detection_threshold=self.face_threshold)
        except RuntimeError as exc:
            if "libtorchcodec" in str(exc) or "FFmpeg" in str(exc):
                raise DependencyError(f"cannot decode video {path}: FFmpeg libraries are missing",
                                      hint="install FFmpeg (Debian: apt-get install ffmpeg) or extract frames to a folder",
                                      path=path) from exc
            raise
        n = int(fex["frame"].max()) + 1 if len(fex) else 0
        return self._collect(fex, n, [f"{path.name}#{i}" for i in range(n)])


def _au_column(names: list[str], wanted: str) -> str | None:
    if wanted in names:
        return wanted
    if wanted in ("AU11", "AU24", "AU28"):  # not among the 17 miex uses; tolerate their absence
        return None
    raise DependencyError(f"the multitask model predicts {', '.join(names)}, which lacks {wanted}",
                          hint="use py-feat's face_multitask_v2 weights (20 or 24 AUs)")


@contextlib.contextmanager
def keep_thread_settings() -> Iterator[None]:
    """Undo what py-feat does to process-wide torch state: ``import feat`` sets ``OMP_NUM_THREADS=1``
    (halving CPU throughput of this process and of every subprocess it starts) when the variable was
    unset, and its face detectors switch autograd off globally."""
    import torch

    had, threads, grad = os.environ.get("OMP_NUM_THREADS"), torch.get_num_threads(), torch.is_grad_enabled()
    try:
        yield
    finally:
        if had is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        torch.set_num_threads(threads)
        torch.set_grad_enabled(grad)


# ---------------------------------------------------------------------------------------------
# inputs -> one CSV each

@dataclass(frozen=True)
class ExtractJob:
    """One clip to extract: image frames (in order) or a video, and where its CSV goes."""

    name: str
    output: Path
    frames: tuple[Path, ...] = ()
    video: Path | None = None


def jobs_for_path(path: Path, out_dir: Path) -> list[ExtractJob]:
    """A video file, or a folder of frames (one clip), becomes ``<out_dir>/<name>.csv``."""
    from .datasets.records import list_frames

    if path.is_file() and path.suffix.lower() in VIDEO_SUFFIXES:
        return [ExtractJob(path.stem, out_dir / f"{path.stem}.csv", video=path)]
    if path.is_dir():
        frames = list_frames(path)
        if not frames:
            raise DataError(f"{path} holds no image frames", hint="pass a folder of frames or a video", path=path)
        return [ExtractJob(path.name, out_dir / f"{path.name}.csv", frames=frames)]
    raise DataError(f"{path} is neither a video ({', '.join(sorted(VIDEO_SUFFIXES))}) nor a folder of frames",
                    path=path)


def jobs_for_dataset(kind: str, root: Path, out_dir: Path) -> list[ExtractJob]:
    """Every clip of a dataset, to ``<out_dir>/<dataset>/<subject>/<clip>.csv`` (the pool builders' layout)."""
    from .au_sources.clips import au_csv_path
    from .datasets import load_clips

    return [ExtractJob("/".join(c.key), au_csv_path(out_dir, c), frames=c.frames) for c in load_clips(kind, root)]


@dataclass
class ExtractReport:
    written: list[Path] = field(default_factory=list)
    existing: list[Path] = field(default_factory=list)
    failed_frames: dict[str, int] = field(default_factory=dict)


def run_extraction(jobs: Sequence[ExtractJob], *, extractor_factory: Callable[[], FeatAuExtractor],
                   overwrite: bool = False, progress: Callable[[int, int, str], None] | None = None) -> ExtractReport:
    """Extract every job whose CSV does not exist yet (resumable; each CSV written atomically).

    The extractor is built only when there is work, so a finished run costs no py-feat import.
    """
    report = ExtractReport()
    todo = []
    for job in jobs:
        if job.output.is_file() and not overwrite:
            report.existing.append(job.output)
        else:
            todo.append(job)
    extractor = extractor_factory() if todo else None
    for i, job in enumerate(todo):
        if progress:
            progress(i, len(todo), job.name)
        aus = extractor.extract_video(job.video) if job.video else extractor.extract_images(job.frames)
        write_feat_table(job.output, aus.probs, success=aus.success, inputs=aus.inputs, face_score=aus.score)
        report.written.append(job.output)
        missing = int((~aus.success).sum())
        if missing:
            report.failed_frames[job.name] = missing
            log.warning("%s: no face in %d of %d frames (marked as failed)", job.name, missing, len(aus.success))
    if progress:
        progress(len(todo), len(todo), "")
    return report
