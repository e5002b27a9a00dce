"""Identity photos: load safely, find the face, crop and resize it.

Everything that reads a face photo (renderers, ``miex render``, generate's identity screening,
GAN training, recognizers) goes through here, so a bad photo is handled the same way
everywhere: it is either *fixed* or *rejected* with :class:`FaceRejected`, whose ``reason`` is
a short machine-readable code (written to ``skipped.csv`` by generate).

Fixed on load: EXIF orientation (the pixels are rotated as a viewer shows them), grayscale,
16-bit and float grayscale, CMYK, YCbCr/LAB/HSV, palette and multi-frame images (first frame).
Transparent pixels are composited **on white** (``ALPHA_BACKGROUND``): portrait PNGs with a
removed background are the common case and a white studio backdrop is the neutral reading of
"no background"; black would invent a dark frame around the face.

Rejected (reason codes): ``not_found``, ``unreadable`` (an OS error), ``not_an_image``,
``truncated``, ``too_large`` (a decompression bomb), ``too_small``, ``no_face``, ``bad_array``.

Detection works offline from installed packages (DEPENDENCIES.md section 2-3):

* ``mediapipe``: MediaPipe 0.10.14 ``solutions.face_detection``, full-range model
  (``model_selection=1``; finds small and group faces), then the short-range model when the
  full-range one finds nothing (it finds 45-degree profiles the full-range model misses);
* ``haar``: OpenCV's Haar cascades (``cv2.data.haarcascades``): frontal, then profile in both
  orientations when no frontal face is found;
* ``auto`` (default): ``mediapipe``, then ``haar`` when MediaPipe finds nothing or is missing.

Each :class:`FaceBox` records which detector (and model) found it. Detectors are built once
per process and guarded by a lock (MediaPipe graphs are not free to build and not re-entrant);
a forked joblib/multiprocessing worker builds its own instead of reusing its parent's.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import warnings
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from .errors import DataError, DependencyError

ALPHA_BACKGROUND = (255, 255, 255)  # transparent pixels are composited on white
DETECTORS = ("auto", "mediapipe", "haar")
MIN_SCORE = 0.5  # MediaPipe's min_detection_confidence
HAAR_MAX_SIDE = 1024  # Haar runs on a copy downscaled to this long side (speed; faces stay >= 24 px)


class FaceRejected(DataError):
    """A photo that cannot be used as a face; ``reason`` is a short code (see the module doc)."""

    def __init__(self, message: str, *, reason: str, hint: str | None = None, path: str | Path | None = None):
        self.reason = reason
        super().__init__(message, hint=hint, path=path)


@dataclass(frozen=True)
class FaceBox:
    """A face box in pixels of the image it was found in (x1/y1 exclusive, may be fractional)."""

    x0: float
    y0: float
    x1: float
    y1: float
    score: float
    detector: str  # e.g. "mediapipe-full", "mediapipe-short", "haar-frontal", "haar-profile"

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def area(self) -> float:
        return max(self.width, 0.0) * max(self.height, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in render metadata)."""
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


# --------------------------------------------------------------------------------------------
# loading


def load_image(path: str | Path | IO[bytes], *, min_size: int = 64) -> np.ndarray:
    """Read a photo as uint8 RGB ``[H, W, 3]``, fixing what can be fixed (see the module doc).

    Raises :class:`FaceRejected` (never a bare PIL/OS exception) for a missing, unreadable,
    truncated or non-image file, and for an image whose shorter side is below ``min_size``.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    where = path if isinstance(path, (str, Path)) else getattr(path, "name", None)
    if isinstance(path, (str, Path)) and not Path(path).exists():
        raise FaceRejected(f"image {path} does not exist", reason="not_found", hint="check the path")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode now: truncation shows up here, not later
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                image = ImageOps.exif_transpose(img)
                image.load()
                rgb = _to_rgb(image)
    except FileNotFoundError as exc:
        raise FaceRejected(f"image {where} does not exist", reason="not_found", hint="check the path") from exc
    except UnidentifiedImageError as exc:
        raise FaceRejected(f"{where} is not an image PIL can read", reason="not_an_image",
                           hint="use a JPEG or PNG photo") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise FaceRejected(f"{where} is implausibly large for a face photo ({exc})", reason="too_large",
                           hint="downscale the image") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        text = str(exc)
        truncated = "truncat" in text.lower() or isinstance(exc, EOFError) or "broken data stream" in text.lower()
        if truncated:
            raise FaceRejected(f"{where} is truncated or corrupt ({text})", reason="truncated",
                               hint="re-download or re-export the image") from exc
        if isinstance(exc, (PermissionError, IsADirectoryError)):
            raise FaceRejected(f"{where} cannot be read ({text})", reason="unreadable",
                               hint="check the file's permissions") from exc
        raise FaceRejected(f"{where} could not be decoded as an image ({text})", reason="not_an_image",
                           hint="use a JPEG or PNG photo") from exc
    height, width = rgb.shape[:2]
    if min(height, width) < min_size:
        raise FaceRejected(f"{where} is {width}x{height} pixels, smaller than {min_size} on a side",
                           reason="too_small", hint=f"use photos of at least {min_size}x{min_size} pixels")
    return rgb


def _to_rgb(image: Any) -> np.ndarray:
    """Any PIL mode -> uint8 RGB; alpha is composited on ``ALPHA_BACKGROUND``."""
    from PIL import Image

    mode = image.mode
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # high bit depth grayscale: scale the actual range of the type to 0-255
        arr = np.asarray(image, dtype=np.float64)
        top = 65535.0 if mode.startswith("I;16") or (mode == "I" and arr.max(initial=0) > 255) else 255.0
        if mode == "F":
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        gray = np.clip(np.rint(arr / top * 255.0), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "La", "RGBa", "PA") or (mode == "P" and "transparency" in image.info) \
        or (mode in ("L", "RGB") and "transparency" in image.info)
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, ALPHA_BACKGROUND + (255,))
        image = Image.alpha_composite(background, rgba)
    rgb = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb, dtype=np.uint8))


def check_image(image: Any, *, where: str = "image") -> np.ndarray:
    """Return ``image`` as a contiguous uint8 ``[H, W, 3]`` array or raise FaceRejected."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or min(arr.shape[:2]) < 1:
        raise FaceRejected(f"{where} must be uint8 RGB [H, W, 3], got {arr.dtype} {arr.shape}", reason="bad_array",
                           hint="load photos with miex_gen.faces.load_image")
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------------------------
# detection

_CACHE: dict[tuple[int, int, str], Any] = {}
_CACHE_LOCK = threading.Lock()
# detections by image content: generation screens every identity (a detection) before planning and
# prepares it later (the same detection again); the second is then a lookup (~0.3 ms to hash a photo)
DETECTION_CACHE_SIZE = 4096
_DETECTED: OrderedDict[tuple[Any, ...], tuple[FaceBox, ...]] = OrderedDict()


class _Cached:
    """A detector object plus the lock that serialises calls to it."""

    def __init__(self, obj: Any):
        self.obj = obj
        self.lock = threading.Lock()


def _cached(name: str, build: Any) -> _Cached:
    # one graph per process and thread: a forked worker must not use its parent's graph, and
    # threads (generation screens and prepares identities in parallel) must not share one
    key = (os.getpid(), threading.get_ident(), name)
    with _CACHE_LOCK:
        entry = _CACHE.get(key)
        if entry is None:
            entry = _CACHE[key] = _Cached(build())
        return entry


def _mediapipe_detector(model_selection: int) -> _Cached:
    def build() -> Any:
        try:
            from mediapipe.python.solutions import face_detection
        except ImportError as exc:  # pragma: no cover - mediapipe is a core dependency
            raise DependencyError("mediapipe's face detection is not available",
                                  hint="pip install mediapipe==0.10.14") from exc
        return face_detection.FaceDetection(model_selection=model_selection, min_detection_confidence=MIN_SCORE)

    return _cached(f"mediapipe-{model_selection}", build)


def _detect_mediapipe(image: np.ndarray) -> list[FaceBox]:
    height, width = image.shape[:2]
    for selection, label in ((1, "mediapipe-full"), (0, "mediapipe-short")):
        entry = _mediapipe_detector(selection)
        with entry.lock, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*GetPrototype.*")  # protobuf noise inside mediapipe
            result = entry.obj.process(image)
        boxes = []
        for det in result.detections or []:
            rel = det.location_data.relative_bounding_box
            box = _clipped(rel.xmin * width, rel.ymin * height, (rel.xmin + rel.width) * width,
                           (rel.ymin + rel.height) * height, width, height, float(det.score[0]), label)
            if box is not None:
                boxes.append(box)
        if boxes:
            return boxes
    return []


def _haar_cascade(name: str) -> _Cached:
    def build() -> Any:
        import cv2

        data = getattr(cv2, "data", None)
        if data is None or not hasattr(cv2, "CascadeClassifier"):
            raise DependencyError("this OpenCV build has no Haar cascades",
                                  hint='pip install "opencv-contrib-python>=4.10,<5"')
        cascade = cv2.CascadeClassifier(os.path.join(data.haarcascades, name))
        if cascade.empty():
            raise DependencyError(f"OpenCV's cascade {name} could not be loaded",
                                  hint='reinstall "opencv-contrib-python>=4.10,<5"')
        return cascade

    return _cached(f"haar-{name}", build)


def _detect_haar(image: np.ndarray) -> list[FaceBox]:
    import cv2

    height, width = image.shape[:2]
    scale = min(1.0, HAAR_MAX_SIDE / max(height, width))
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        gray = cv2.resize(gray, (max(1, round(width * scale)), max(1, round(height * scale))),
                          interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    side = max(24, min(gray.shape) // 12)
    neighbours = 5
    passes = [("haarcascade_frontalface_default.xml", "haar-frontal", False)]
    profile = [("haarcascade_profileface.xml", "haar-profile", False),
               ("haarcascade_profileface.xml", "haar-profile", True)]
    boxes: list[FaceBox] = []
    for group in (passes, profile):
        for file, label, flip in group:
            entry = _haar_cascade(file)
            src = np.ascontiguousarray(gray[:, ::-1]) if flip else gray
            with entry.lock:
                rects, counts = entry.obj.detectMultiScale2(src, scaleFactor=1.1, minNeighbors=neighbours,
                                                            minSize=(side, side))
            for (x, y, w, h), n in zip(np.asarray(rects).reshape(-1, 4), np.asarray(counts).reshape(-1)):
                if flip:
                    x = src.shape[1] - x - w
                # neighbour count -> (0, 1): more overlapping raw detections = more confident
                score = float(n) / (float(n) + neighbours)
                box = _clipped(x / scale, y / scale, (x + w) / scale, (y + h) / scale, width, height, score, label)
                if box is not None:
                    boxes.append(box)
        if boxes:
            break
    return _non_max_suppression(boxes)


def _clipped(x0: float, y0: float, x1: float, y1: float, width: int, height: int, score: float,
             detector: str) -> FaceBox | None:
    x0, x1 = max(0.0, float(x0)), min(float(width), float(x1))
    y0, y1 = max(0.0, float(y0)), min(float(height), float(y1))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return FaceBox(x0, y0, x1, y1, score, detector)


def _iou(a: FaceBox, b: FaceBox) -> float:
    ix = max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0))
    iy = max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def _non_max_suppression(boxes: list[FaceBox], threshold: float = 0.3) -> list[FaceBox]:
    kept: list[FaceBox] = []
    for box in sorted(boxes, key=lambda b: -b.score):
        if all(_iou(box, k) < threshold for k in kept):
            kept.append(box)
    return kept


def _order(boxes: list[FaceBox]) -> list[FaceBox]:
    """Largest first (the photo's subject), then most confident; deterministic."""
    return sorted(boxes, key=lambda b: (-round(b.area, 1), -b.score, b.x0, b.y0))


def clear_detection_cache() -> None:
    """Forget memoised detections (benchmarks measure detection; tests swap detectors)."""
    with _CACHE_LOCK:
        _DETECTED.clear()


def detect_faces(image: np.ndarray, *, detector: str = "auto") -> list[FaceBox]:
    """Every face in ``image`` (uint8 RGB), largest first (ties: most confident first).

    ``detector`` is ``auto`` (MediaPipe, then Haar when it finds nothing), ``mediapipe`` or
    ``haar``. An image with no face gives ``[]``.
    """
    if detector not in DETECTORS:
        from .errors import ConfigError

        raise ConfigError(f"unknown face detector {detector!r}", hint=f"use one of {', '.join(DETECTORS)}")
    image = check_image(image)
    key = (detector, image.shape, hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16).digest())
    with _CACHE_LOCK:
        if key in _DETECTED:
            _DETECTED.move_to_end(key)
            return list(_DETECTED[key])
    boxes: list[FaceBox] = []
    if detector in ("auto", "mediapipe"):
        try:
            boxes = _detect_mediapipe(image)
        except DependencyError:
            if detector == "mediapipe":
                raise
    if not boxes and detector in ("auto", "haar"):
        boxes = _detect_haar(image)
    boxes = _order(boxes)
    with _CACHE_LOCK:
        _DETECTED[key] = tuple(boxes)
        if len(_DETECTED) > DETECTION_CACHE_SIZE:
            _DETECTED.popitem(last=False)
    return boxes


def detect_face(image: np.ndarray, **kwargs: Any) -> FaceBox:
    """The main face (the first of :func:`detect_faces`); ``FaceRejected("no_face")`` if none."""
    boxes = detect_faces(image, **kwargs)
    if not boxes:
        raise FaceRejected("no face was found in the image", reason="no_face",
                           hint="use a photo with a clearly visible face, or crop it yourself and pass detect=False")
    return boxes[0]


# --------------------------------------------------------------------------------------------
# cropping and resizing


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    """Area averaging when shrinking (no aliasing), bicubic when enlarging."""
    import cv2

    height, width = image.shape[:2]
    if (height, width) == (size, size):
        return np.ascontiguousarray(image)
    shrinking = size < min(height, width)
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_CUBIC
    return np.ascontiguousarray(cv2.resize(image, (size, size), interpolation=interpolation))


def crop_face(image: np.ndarray, box: FaceBox, *, size: int = 128, margin: float = 0.0,
              square: bool = True) -> np.ndarray:
    """Cut ``box`` out of ``image`` and resize it to ``size x size`` (uint8 RGB).

    ``margin`` widens the box by that fraction of its side on every side (0 = GANimation's
    tight crop, as its training data was made). ``square`` grows the shorter side around the
    centre first, so the face is not stretched. Parts outside the photo are filled by repeating
    its edge pixels (no black bars for the generator to reproduce).
    """
    import cv2

    image = check_image(image)
    if size < 1:
        raise ValueError("size must be positive")
    cx, cy = (box.x0 + box.x1) / 2.0, (box.y0 + box.y1) / 2.0
    w, h = max(box.width, 1.0), max(box.height, 1.0)
    if square:
        w = h = max(w, h)
    w, h = w * (1.0 + 2.0 * margin), h * (1.0 + 2.0 * margin)
    x0, y0 = int(round(cx - w / 2.0)), int(round(cy - h / 2.0))
    x1, y1 = x0 + max(1, int(round(w))), y0 + max(1, int(round(h)))
    height, width = image.shape[:2]
    pad = (max(0, -y0), max(0, y1 - height), max(0, -x0), max(0, x1 - width))
    if any(pad):
        image = cv2.copyMakeBorder(image, *pad, borderType=cv2.BORDER_REPLICATE)
        x0, x1, y0, y1 = x0 + pad[2], x1 + pad[2], y0 + pad[0], y1 + pad[0]
    return _resize(image[y0:y1, x0:x1], size)


def resize_face(image: np.ndarray, size: int) -> np.ndarray:
    """An already-cropped face -> ``size x size``: a non-square image loses the edges of its
    longer side (central square), so the face is never stretched."""
    image = check_image(image)
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return _resize(image[top:top + side, left:left + side], size)


def load_face_bytes(data: bytes, *, min_size: int = 64) -> np.ndarray:
    """:func:`load_image` for in-memory file contents (uploads, archives)."""
    return load_image(io.BytesIO(data), min_size=min_size)
