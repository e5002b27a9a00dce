"""Sample sources: where a sample's frames and labels come from (miex shards or real clips).

A source is a light, picklable index: ``meta[i]`` (a :class:`SampleMeta`) for every sample and
``load(i, positions)`` → uint8 frames ``[K, H, W, 3]`` at those frame positions. File handles are
opened lazily in whichever process reads (DataLoader workers included) and never pickled.
Splits and folds are ``source.subset(indices)``; several sources join with :class:`ConcatSource`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import logging
import re

import numpy as np

from miex_gen.errors import DataError, DependencyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SampleMeta:
    """What is known about a sample without reading its frames.

    ``onset``, ``apex`` and ``last`` are frame *positions* within the sample (0-based), not the
    dataset's frame numbers. For shards ``dataset``/``subject``/``clip`` are the AU provenance
    (the real clip whose AUs drove the rendering) and ``identity`` the face.
    """

    sample_id: str
    dataset: str
    subject: str
    clip: str
    label: int
    onset: int
    apex: int
    last: int
    identity: str = ""
    source_kind: str = "real"

    def group(self, by: str) -> str:
        """The key that splits must keep together: ``subject`` (dataset-qualified) or ``identity``."""
        if by == "subject":
            return f"{self.dataset}/{self.subject}"
        if by == "identity":
            return self.identity or f"{self.dataset}/{self.subject}"
        raise ValueError(f"group by 'subject' or 'identity', not {by!r}")


class SampleSource:
    """Base class: subclasses fill ``self.meta`` and implement ``load``."""

    name: str = "source"
    meta: list[SampleMeta]

    def __len__(self) -> int:
        return len(self.meta)

    def load(self, index: int, positions: Sequence[int]) -> np.ndarray:
        raise NotImplementedError

    def load_many(self, requests: Sequence[tuple[int, Sequence[int]]]) -> list[np.ndarray]:
        """Several samples at once; sources with batched storage reads override this."""
        return [self.load(i, p) for i, p in requests]

    def subset(self, indices: Sequence[int]) -> "SubsetSource":
        return SubsetSource(self, indices)

    def labels(self) -> np.ndarray:
        return np.array([m.label for m in self.meta], dtype=np.int64)


class SubsetSource(SampleSource):
    def __init__(self, base: SampleSource, indices: Sequence[int]):
        self.base = base
        self.indices = [int(i) for i in indices]
        self.name = base.name
        self.meta = [base.meta[i] for i in self.indices]

    def load(self, index: int, positions: Sequence[int]) -> np.ndarray:
        return self.base.load(self.indices[index], positions)

    def load_many(self, requests: Sequence[tuple[int, Sequence[int]]]) -> list[np.ndarray]:
        return self.base.load_many([(self.indices[i], p) for i, p in requests])


class ConcatSource(SampleSource):
    def __init__(self, sources: Sequence[SampleSource]):
        self.sources = list(sources)
        self.name = "+".join(s.name for s in self.sources)
        self.meta = [m for s in self.sources for m in s.meta]
        self._offsets = np.cumsum([0] + [len(s) for s in self.sources])

    def _locate(self, index: int) -> tuple[SampleSource, int]:
        k = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self.sources[k], index - int(self._offsets[k])

    def load(self, index: int, positions: Sequence[int]) -> np.ndarray:
        source, local = self._locate(index)
        return source.load(local, positions)


# ----------------------------------------------------------------------------------------- shards

def _table_rows(table: Any) -> list[dict[str, Any]]:
    """Rows of the shard reader's metadata table (a mapping of columns or a sequence of rows)."""
    if isinstance(table, Mapping):
        columns = {k: list(v) for k, v in table.items()}
        n = len(next(iter(columns.values()))) if columns else 0
        return [{k: columns[k][i] for k in columns} for i in range(n)]
    if hasattr(table, "to_dict"):  # a pandas DataFrame
        return list(table.to_dict("records"))
    return [dict(row) for row in table]


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


class ShardSource(SampleSource):
    """A miex shard dataset (a directory with ``manifest.json``, or one shard file) via ``miex_gen.shards``.

    Onset = frame 0, apex = ``apex_index``, last = T − 1, so for T > 2 the training-time apex
    randomisation has real frames to pick from.
    """

    def __init__(self, path: str | Path):
        try:
            from miex_gen.shards import DatasetReader
        except ImportError as exc:  # pragma: no cover - the shards module ships with miex
            raise DependencyError("miex_gen.shards is not available", hint="install the full miex package") from exc
        self.path = Path(path)
        self.name = f"shards:{self.path.name}"
        reader = DatasetReader(self.path)
        try:
            rows = _table_rows(reader.table())
            num_frames = int(reader.num_frames)
        finally:
            reader.close()
        if not rows:
            raise DataError("the shard dataset has no samples", path=self.path,
                            hint="generate samples first (miex generate) or point at the right directory")
        self.meta = [self._meta(row, i, num_frames) for i, row in enumerate(rows)]
        self._reader: Any = None

    @staticmethod
    def _meta(row: dict[str, Any], i: int, num_frames: int) -> SampleMeta:
        apex = int(row.get("apex_index", num_frames - 1))
        return SampleMeta(
            sample_id=f"miex:{int(row.get('sample_index', i))}",
            dataset=_text(row.get("dataset", "")), subject=_text(row.get("subject", "")),
            clip=_text(row.get("clip", "")), label=int(row["label"]),
            onset=0, apex=apex, last=max(num_frames - 1, apex),
            identity=_text(row.get("identity", "")), source_kind=_text(row.get("source_kind", "")),
        )

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_reader": None}  # h5py handles never cross processes

    @property
    def reader(self) -> Any:
        if self._reader is None:
            from miex_gen.shards import DatasetReader

            self._reader = DatasetReader(self.path)
        return self._reader

    def load(self, index: int, positions: Sequence[int]) -> np.ndarray:
        return np.asarray(self.reader[index]["frames"])[list(positions)]

    def load_many(self, requests: Sequence[tuple[int, Sequence[int]]]) -> list[np.ndarray]:
        """One batched read (sorted indices, as HDF5 likes them), then the wanted frames of each."""
        order = sorted({i for i, _ in requests})
        batch = self.reader.read_batch(order)
        frames = batch["frames"] if isinstance(batch, Mapping) else [b["frames"] for b in batch]
        by_index = {i: frames[k] for k, i in enumerate(order)}
        return [np.asarray(by_index[i])[list(p)] for i, p in requests]


# ------------------------------------------------------------------------------------ real clips

_CROPPED_DIR = re.compile(r"(^|_)cropped$", re.IGNORECASE)  # Cropped, SMIC_all_cropped, CASMEII_cropped
FaceBoxFn = Callable[[np.ndarray], Any]  # image -> miex_gen.faces.FaceBox or None


def is_cropped_release(paths: Sequence[Path]) -> bool:
    """True for the datasets' own face-cropped releases (CASME II ``Cropped``, ``SMIC_all_cropped``…)."""
    return bool(paths) and any(_CROPPED_DIR.search(part) for part in Path(paths[0]).parent.parts)


def read_image(path: Path) -> np.ndarray:
    """An RGB uint8 image (grey files such as SAMM's become three equal channels)."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError("cannot read image (missing, truncated or not an image)", path=path,
                        hint="check the dataset copy; re-extract the archive if needed")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def default_face_box(image: np.ndarray) -> Any:
    """The main face box of ``image`` via ``miex_gen.faces`` (MediaPipe, then Haar), or None if none is found."""
    from miex_gen import faces

    boxes = faces.detect_faces(image)
    return boxes[0] if boxes else None


class ClipSource(SampleSource):
    """Real clips (``miex_gen.datasets.ClipRecord``) with every frame available for apex randomisation.

    Frames are face crops at ``crop_size``: the release's own crops where it has them (resized, as
    MiE-X does), otherwise one box found on the onset frame (``face_box``, by default
    ``miex_gen.faces.detect_faces``) cut from every frame of the clip with ``faces.crop_face``, so head
    motion does not leak into the difference; when no face is found the whole frame is resized (MiE-X). Clips whose label is unknown
    ("others") are left out. Missing apex annotations (SMIC) use the middle frame (MER_PROTOCOL §7.4).
    """

    def __init__(self, records: Sequence[Any], *, name: str = "clips", crop_size: int = 128,
                 face_box: FaceBoxFn | None = None, crop: bool | None = None):
        self.name = name
        self.crop_size = int(crop_size)
        self._face_box = face_box
        self._crop = crop
        self.frames: list[tuple[Path, ...]] = []
        self.meta = []
        self.skipped: list[str] = []  # clips left out, with the reason
        for record in records:
            if record.label is None or int(record.label) < 0:
                continue
            paths = tuple(Path(p) for p in record.frames)
            try:
                self.meta.append(self._meta(record, paths))
            except DataError as exc:
                self.skipped.append(str(exc))
                continue
            self.frames.append(paths)
        if self.skipped:
            log.warning("%s: left out %d clip(s) (first: %s)", name, len(self.skipped), self.skipped[0])
        if not self.meta:
            raise DataError(f"no labelled clips in {name}", hint="check the dataset root and its annotation file")
        self._boxes: dict[int, Any] = {}

    @staticmethod
    def _meta(record: Any, paths: tuple[Path, ...]) -> SampleMeta:
        """``ClipRecord`` onset/apex/offset are positions in ``frames`` (0-based), as ``miex_gen.datasets`` defines."""
        where = f"{record.dataset}/{record.subject}/{record.clip}"
        if len(paths) < 2:
            raise DataError(f"clip {where} has {len(paths)} frame(s); onset and apex need at least 2",
                            path=paths[0] if paths else None)
        last = len(paths) - 1 if record.offset is None else min(int(record.offset), len(paths) - 1)
        onset = int(record.onset)
        apex = onset + (last - onset) // 2 if record.apex is None else int(record.apex)
        if not 0 <= onset < apex <= last:
            raise DataError(f"clip {where}: need onset < apex <= offset, got positions {onset}, {apex}, {last}",
                            path=paths[0].parent, hint="check the annotation row against the frame folder")
        return SampleMeta(sample_id=where, dataset=str(record.dataset), subject=str(record.subject),
                          clip=str(record.clip), label=int(record.label), onset=onset, apex=apex, last=last,
                          identity=f"{record.dataset}/{record.subject}", source_kind="real")

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_boxes": {}}

    def _needs_crop(self, index: int) -> bool:
        return (not is_cropped_release(self.frames[index])) if self._crop is None else self._crop

    def _box(self, index: int) -> Any:
        if index not in self._boxes:
            reference = read_image(self.frames[index][self.meta[index].onset])
            self._boxes[index] = (self._face_box or default_face_box)(reference)
        return self._boxes[index]

    def load(self, index: int, positions: Sequence[int]) -> np.ndarray:
        import cv2

        box = self._box(index) if self._needs_crop(index) else None
        out = []
        for p in positions:
            image = read_image(self.frames[index][p])
            if box is not None:
                from miex_gen.faces import crop_face

                out.append(crop_face(image, box, size=self.crop_size))
            else:
                out.append(cv2.resize(image, (self.crop_size, self.crop_size), interpolation=cv2.INTER_AREA))
        return np.stack(out)
