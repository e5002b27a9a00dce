"""The generation plan: quotas per shard, AU draws, profiles, determinism (no rendering here)."""

from __future__ import annotations

import numpy as np
import pytest

from miex_gen.au_sources import AuPool
from miex_gen.config import GenerateConfig, parse_shard_subset
from miex_gen.errors import ConfigError, DataError
from miex_gen.plan import Plan, frame_weights, joint_counts, make_plan, rounded_counts, spread


def _pool(kind: str, n_per_class: int = 4, classes=(0, 1, 2)) -> AuPool:
    labels = np.repeat(np.array(classes, dtype=np.int8), n_per_class)
    n = labels.size
    rng = np.random.default_rng(1)
    apex = rng.uniform(0, 3, (n, 17)).astype(np.float32)
    return AuPool(onset=np.zeros((n, 17), np.float32), apex=apex, label=labels, kind=kind,
                  dataset=np.array(["casme2"] * n), subject=np.array([f"sub{i % 5 + 1:02d}" for i in range(n)]),
                  clip=np.array([f"EP{i:02d}" for i in range(n)]), onset_frame=np.arange(n, dtype=np.int32),
                  apex_frame=np.arange(n, dtype=np.int32) + 10)


def _config(**kw) -> GenerateConfig:
    base = {"sources": ["exp", "mie=/pools/mie.h5", "mae=/pools/mae.h5"], "samples_per_shard": 50, "seed": 11}
    base.update(kw)
    return GenerateConfig.from_mapping({**GenerateConfig().to_dict(), **base})


def _plan(config: GenerateConfig, n_ids: int = 37) -> Plan:
    pools = {"mie": _pool("mie"), "mae": _pool("mae")}
    return make_plan(config, [f"id{i}" for i in range(n_ids)], pools, "hash")


def test_rounded_and_joint_counts_hold_both_marginals_within_one():
    assert rounded_counts(10, [1 / 3] * 3).tolist() == [4, 3, 3]
    for total in (1, 2, 7, 50, 97, 512):
        for sources in ([1.0], [0.5, 0.5], [0.2, 0.3, 0.5], [1 / 3] * 3):
            classes = [0.5, 0.25, 0.25]
            table = joint_counts(total, classes, sources)
            assert table.sum() == total
            assert np.all(np.abs(table.sum(1) - np.array(classes) * total) < 1)
            assert np.all(np.abs(table.sum(0) - np.array(sources) * total) < 1)


def test_spread_interleaves_items_evenly():
    assert spread(np.array([3, 3, 3])) == [0, 1, 2] * 3
    order = spread(np.array([1, 3]))
    assert sorted(order) == [0, 1, 1, 1] and order[0] == 1


def test_class_balance_and_mix_hold_within_one_sample_per_shard():
    config = _config(mix="exp=0.2,mie=0.3,mae=0.5", class_ratio="2,1,1")
    plan = _plan(config)
    assert len(plan) == 37 * 9 and plan.num_shards == -(-len(plan) // 50)
    for k in range(plan.num_shards):
        rows = np.asarray(plan.shard_rows(k))
        n = rows.size
        for c, share in enumerate([0.5, 0.25, 0.25]):
            assert abs(np.sum(plan.label[rows] == c) - share * n) < 1
        for kind, share in {"exp": 0.2, "mie": 0.3, "mae": 0.5}.items():
            assert abs(np.sum(plan.source_kind[rows] == kind) - share * n) < 1


def test_mie_example_gives_each_identity_one_triplet_per_class_and_source():
    plan = _plan(_config(samples_per_shard=90), n_ids=20)  # 9 samples per identity, shards of whole identities
    for i in range(20):
        rows = np.flatnonzero(plan.identity_index == i)
        combos = {(int(plan.label[r]), str(plan.source_kind[r])) for r in rows}
        assert len(combos) == 9


def test_pool_draws_carry_provenance_and_cycle_without_replacement():
    plan = _plan(_config())
    mie = np.flatnonzero(plan.source_kind == "mie")
    pool = _pool("mie")
    assert np.all(plan.pool_row[mie] >= 0)
    np.testing.assert_array_equal(plan.apex[mie], pool.apex[plan.pool_row[mie]])
    assert np.all(plan.label[mie] == pool.label[plan.pool_row[mie]])
    assert set(plan.subject[mie]) <= set(pool.subject)
    neg = mie[plan.label[mie] == 0]
    first = plan.pool_row[neg][:4]
    assert sorted(first.tolist()) == [0, 1, 2, 3]  # a full cycle before any repeat
    exp = np.flatnonzero(plan.source_kind == "exp")
    assert np.all(plan.onset[exp] == 0) and np.all(plan.apex[exp].max(1) > 0)
    assert set(plan.dataset[exp]) == {"facs_rules"} and np.all(plan.pool_row[exp] == -1)


def test_plan_is_a_pure_function_of_content_and_seed():
    a, b = _plan(_config()), _plan(_config())
    for name in Plan._ARRAYS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    c = _plan(_config(seed=12))
    assert not np.array_equal(a.apex, c.apex)
    # execution fields change nothing
    d = _plan(_config(workers=4, batch_size=3, shards="1"))
    np.testing.assert_array_equal(a.apex, d.apex)


def test_plan_save_load_roundtrip(tmp_path):
    plan = _plan(_config(au_jitter=0.1))
    plan.save(tmp_path)
    again = Plan.load(tmp_path)
    for name in Plan._ARRAYS:
        np.testing.assert_array_equal(getattr(plan, name), getattr(again, name))
    assert again.identities == plan.identities


def test_profiles():
    w, apex = frame_weights(2, "onset-apex-offset")
    assert w.tolist() == [0.0, 1.0] and apex == 1
    w, apex = frame_weights(10, "linear")
    np.testing.assert_allclose(w, np.arange(10) / 9) and apex == 9
    w, apex = frame_weights(10, "onset-apex-offset")
    assert w[0] == 0 and w[apex] == pytest.approx(1.0) and w[-1] == pytest.approx(0.0, abs=1e-6)
    assert np.all(np.diff(w[: apex + 1]) > 0) and np.all(np.diff(w[apex:]) < 0)
    plan = _plan(_config(frames=10, profile="onset-apex-offset"), n_ids=3)
    aus = plan.aus_of(range(5))
    assert aus.shape == (5, 10, 17)
    np.testing.assert_allclose(aus[:, apex], plan.apex[:5], atol=1e-6)


def test_pool_missing_a_class_is_a_clear_error():
    pools = {"mie": _pool("mie", classes=(0, 1)), "mae": _pool("mae")}
    with pytest.raises(DataError, match="no surprise samples"):
        make_plan(_config(), ["a", "b"], pools, "h")


def test_config_validation_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match="frames"):
        _config(frames=1).validate()
    with pytest.raises(ConfigError, match="mix: 'exp' is not one of"):
        GenerateConfig().with_overrides(sources=["mie=x.h5"], mix="exp=1").validate()
    with pytest.raises(ConfigError, match="checkpoint"):
        GenerateConfig().with_overrides(renderer="ganimation").validate()
    with pytest.raises(ConfigError, match="unknown field"):
        GenerateConfig.from_mapping({"samples": 3})
    bad = tmp_path / "gen.toml"
    bad.write_text("[generate]\nframes = 'two'\n")
    with pytest.raises(ConfigError, match="frames"):
        GenerateConfig.from_toml(bad)
    assert parse_shard_subset("0-2,5", 6) == [0, 1, 2, 5]
    with pytest.raises(ConfigError, match="has 6 shards"):
        parse_shard_subset("7", 6)


def test_content_hash_ignores_execution_fields():
    a = _config().content_dict()
    b = _config(workers=8, batch_size=2, device="cpu", shards="0", out="/x").content_dict()
    assert a == b
    assert _config(seed=1).content_dict() != a


@pytest.mark.parametrize("name", ["demo.toml", "celeba_5k.toml", "mie_mae_mix.toml", "sequence_t10.toml"])
def test_example_configs_load_and_validate(name):
    from pathlib import Path

    config = GenerateConfig.from_toml(Path(__file__).resolve().parents[1] / "examples" / name)
    assert config.validate() is config
