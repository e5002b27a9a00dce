"""Face preparation in a helper process: same results as in-process, and every failure of the
helper (a photo it cannot prepare, the process dying, a task not yet started) ends with the
parent preparing the identity itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from face_helpers import save_face_photos

from miex_gen.config import GenerateConfig
from miex_gen.errors import DataError
from miex_gen.generate import (
    PhotoLoader,
    PreparedPrefetcher,
    RemotePrepare,
    build_renderer,
    generate,
    remote_prepare,
    renderer_options,
)
from miex_gen.identities import list_candidates, load_candidate
from miex_gen.prepare_process import HelperUnavailable, PrepareHelper, usable_cores
from miex_gen.shards import DatasetReader

PHOTOS = ("single_face.jpg", "0-f1-su-ph.jpg", "0-f15-hao-ph.jpg")
TWO_CORES = pytest.mark.skipif(usable_cores() < 2, reason="generate starts no helper on a single core")


@pytest.fixture(scope="module")
def folder(tmp_path_factory, feat_test_data) -> Path:
    return save_face_photos(feat_test_data, tmp_path_factory.mktemp("faces"), PHOTOS, 300)


def _config(folder: Path, out: Path | None = None, **kw) -> GenerateConfig:
    data = {**GenerateConfig().to_dict(), "ids": [f"folder:{folder}"], "sources": ["exp"], "samples_per_id": 4,
            "samples_per_shard": 5, "seed": 3, "out": str(out) if out else None, "progress": False, **kw}
    return GenerateConfig.from_mapping(data)


@pytest.fixture(scope="module")
def helper():
    helper = PrepareHelper()
    yield helper
    helper.close()


def _remote(helper: PrepareHelper, config: GenerateConfig) -> RemotePrepare:
    remote = RemotePrepare(helper, renderer_options(config))
    assert remote.warm_up()
    return remote


def _assert_same(a, b) -> None:
    np.testing.assert_array_equal(a.face, b.face)
    assert a.meta == b.meta
    for name in ("landmarks", "bases", "saturation"):
        np.testing.assert_array_equal(getattr(a.state, name), getattr(b.state, name), err_msg=name)
    np.testing.assert_array_equal(a.state.field.pixel_triangle, b.state.field.pixel_triangle)
    np.testing.assert_array_equal(a.state.field.simplices, b.state.field.simplices)


def test_the_helper_prepares_exactly_what_this_process_would(folder, helper):
    config = _config(folder)
    renderer = build_renderer(config)
    load = PhotoLoader(list_candidates(config.ids))
    remote = _remote(helper, config)
    for identity in load.candidates:
        _assert_same(remote.submit(load.candidates[identity]).result(timeout=60), renderer.prepare(load(identity)))


def test_prefetcher_prepares_here_what_the_helper_cannot(folder, helper, tmp_path):
    config = _config(folder)
    renderer = build_renderer(config)
    (tmp_path / "broken.png").write_bytes(b"not a photo")
    candidates = list_candidates(config.ids) + list_candidates(_config(tmp_path).ids)
    load = PhotoLoader(candidates)
    order = [c.id for c in candidates for _ in range(2)]
    with PreparedPrefetcher(renderer, order, load, remote=_remote(helper, config)) as prefetch:
        for identity in order[:-2:2]:
            got = prefetch.take([identity, identity])
            assert got[0] is got[1]
            _assert_same(got[0], renderer.prepare(load(identity)))
        with pytest.raises(DataError, match="broken"):  # the real error, raised by this process's prepare
            prefetch.take(order[-2:])
    assert helper.alive  # a failed task does not end the helper


def test_a_task_not_yet_sent_can_be_taken_back(folder, helper):
    config = _config(folder)
    load = PhotoLoader(list_candidates(config.ids))
    remote = _remote(helper, config)
    identities = list(load.candidates)
    futures = [remote.submit(load.candidates[identities[i % len(identities)]]) for i in range(6)]  # 2 go out, 4 wait
    assert helper.steal(futures[-1]) and not helper.steal(futures[-1])
    for future in futures[:-1]:
        future.result(timeout=60)
    assert futures[-1].cancelled()  # taken back: the caller prepares it


def test_when_the_helper_dies_open_tasks_come_back_and_data_stay_the_same(folder, tmp_path):
    config = _config(folder)
    renderer = build_renderer(config)
    load = PhotoLoader(list_candidates(config.ids))
    helper = PrepareHelper()
    try:
        remote = _remote(helper, config)
        identities = list(load.candidates)
        futures = [remote.submit(load.candidates[i]) for i in identities]
        helper._process.kill()
        for future in futures:
            try:
                future.result(timeout=60)
            except HelperUnavailable:
                pass
        assert not helper.alive
        with pytest.raises(HelperUnavailable):
            remote.submit(load.candidates[identities[0]]).result(timeout=5)
        with PreparedPrefetcher(renderer, identities, load, remote=remote) as prefetch:
            for identity in identities:
                _assert_same(prefetch.take([identity])[0], renderer.prepare(load(identity)))
    finally:
        helper.close()


@TWO_CORES
def test_generate_gives_the_same_data_with_or_without_the_helper(folder, tmp_path, monkeypatch):
    config = _config(folder, tmp_path / "helper")
    remote = remote_prepare(config, build_renderer(config))
    assert remote is not None, "the warp renderer prepares in a helper process where 2 cores are free"
    assert remote.warm_up()  # so that it, not this process, prepares
    from_helper: list[str] = []
    monkeypatch.setattr(PhotoLoader, "forget", lambda self, identity: from_helper.append(identity))
    with_helper = generate(config)
    assert from_helper, "no identity was prepared by the helper"
    monkeypatch.setattr("miex_gen.generate.remote_prepare", lambda *args: None)
    without = generate(_config(folder, tmp_path / "threads"))
    assert with_helper.complete and without.complete
    a, b = DatasetReader(tmp_path / "helper"), DatasetReader(tmp_path / "threads")
    rows = list(range(len(a)))
    assert len(a) == len(b) == 12
    first, second = a.read_batch(rows), b.read_batch(rows)
    for key in ("frames", "aus", "label", "identity"):
        np.testing.assert_array_equal(np.asarray(first[key]), np.asarray(second[key]), err_msg=key)


def test_closing_takes_back_unsent_work_and_waits_only_for_what_was_sent(folder, helper):
    import time

    config = _config(folder)
    load = PhotoLoader(list_candidates(config.ids))
    order = [identity for identity in load.candidates for _ in range(3)]  # 3 identities: 2 sent, 1 waiting
    prefetch = PreparedPrefetcher(build_renderer(config), order, load, remote=_remote(helper, config), lookahead=6)
    futures = list(prefetch._futures.values())
    start = time.perf_counter()
    prefetch.close()
    assert time.perf_counter() - start < 20  # a taken-back task is never waited for (that would be 60 s each)
    assert all(f.done() for f in futures) and sum(f.cancelled() for f in futures) >= 1


def test_screening_in_the_helper_keeps_and_skips_exactly_what_this_process_would(folder, helper, tmp_path,
                                                                                  feat_test_data):
    from miex_gen.identities import screen

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    for photo in folder.iterdir():
        (mixed / photo.name).write_bytes(photo.read_bytes())
    (mixed / "b_notes.jpg").write_text("not an image")
    (mixed / "c_landscape.png").write_bytes((feat_test_data / "free-mountain-vector-01.jpg").read_bytes())
    config = _config(mixed)
    renderer = build_renderer(config)
    candidates = list_candidates(config.ids)
    remote = _remote(helper, config)

    def check(candidate):
        renderer.screen(load_candidate(candidate))

    here = screen(candidates, check, wanted=None)
    for every in (1, 2):  # all of them there; every second one there
        there = screen(candidates, check, wanted=None, offload=remote.screen, offload_every=every)
        assert there == here
    assert {s.reason for s in here[1]} == {"not_an_image", "no_face"} and len(here[0]) == 3
