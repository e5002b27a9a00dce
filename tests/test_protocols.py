"""Protocol folds (LOSO, MiE-X 3-fold, per-dataset LOSO, holdout) and the leakage guard."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from miex_gen.datasets import load_ground_truth, load_miex_3fold
from miex_gen.errors import ConfigError, DataError
from recognizers.protocols import (
    check_partition, dataset_loso, filter_synthetic, holdout, inner_split, loso, make_folds, miex_3fold, subject_keys,
)


@pytest.fixture(scope="module")
def gt():
    return load_ground_truth()


def test_loso_68_folds_partition_442_samples(gt):
    folds = loso(gt)
    assert len(folds) == 68 == len(loso())  # default samples: the shipped composite
    tested = Counter()
    for fold in folds:
        train, test = fold.split(gt)
        assert len(fold.test_subjects) == 1 and len(fold.train_subjects) == 67
        assert len(train) + len(test) == 442 and test
        assert not set(train) & set(test)
        tested.update(test)
    assert sorted(tested) == list(range(442)) and set(tested.values()) == {1}
    check_partition(folds, gt)
    sizes = {f.name: len(f.split(gt)[1]) for f in folds}
    assert sizes["smic-s03"] == 39 and sizes["casme2-sub17"] == 31 and sizes["samm-011"] == 20
    assert min(sizes.values()) == 1 and max(sizes.values()) == 39
    assert len({f.name for f in folds}) == 68


def test_miex_3fold_reproduces_shipped_lists(gt):
    folds = miex_3fold(gt)
    lists = load_miex_3fold()
    keys = [r.key for r in gt]
    assert [len(f.split(gt)[1]) for f in folds] == [172, 161, 109]
    for fold, shipped in zip(folds, lists):
        train, test = fold.split(gt)
        assert {keys[i] for i in test} == set(shipped.test_keys)
        assert {keys[i] for i in train} == set(shipped.train_keys)
    check_partition(folds, gt)
    assert ("samm", "010") in folds[0].test_subjects and ("smic", "s02") in folds[0].test_subjects
    assert [len(f.test_subjects) for f in folds] == [24, 23, 21]


def test_miex_3fold_rejects_foreign_subjects():
    with pytest.raises(DataError, match="does not contain 1 subject"):
        miex_3fold([("casme2", "sub01"), ("ckplus", "S005")])


def test_dataset_loso_and_make_folds(gt):
    folds = make_folds("loso:casme2", gt)
    assert len(folds) == 24 and all(s[0] == "casme2" for f in folds for s in f.train_subjects | f.test_subjects)
    train, test = folds[0].split(gt)
    assert {gt[i].dataset for i in train + test} == {"casme2"}
    assert len(make_folds("miex-3fold")) == 3
    with pytest.raises(ConfigError, match="unknown protocol"):
        make_folds("kfold", gt)
    with pytest.raises(ConfigError, match="at least 2 subjects"):
        dataset_loso("mmew", gt)


def test_holdout_is_seeded_stratified_and_disjoint(gt):
    (a,) = holdout(gt, fraction=0.25, seed=3)
    (b,) = holdout(gt, fraction=0.25, seed=3)
    (c,) = holdout(gt, fraction=0.25, seed=4)
    assert a == b and a.test_subjects != c.test_subjects
    per = Counter(d for d, _ in a.test_subjects)
    assert per == {"casme2": 6, "samm": 7, "smic": 4}  # round(0.25 * 24 / 28 / 16)
    assert a.train_subjects | a.test_subjects == set(subject_keys(gt))
    with pytest.raises(ConfigError, match="between 0 and 1"):
        holdout(gt, fraction=1.0)


def test_inner_split_uses_training_subjects_only(gt):
    fold = loso(gt)[0]
    fit, val = inner_split(fold.train_subjects, fraction=0.2, seed=0, fold=fold.name)
    assert fit | val == fold.train_subjects and not fit & val and val
    assert not (fit | val) & fold.test_subjects


def test_subject_keys_canonicalise_provenance():
    table = {"dataset": np.array([b"samm", b"smic", b"exp"]), "subject": np.array([b"6", b"s1", b""])}
    assert subject_keys(table) == [("samm", "006"), ("smic", "s01"), ("exp", "")]


def _synthetic_table(gt, n=3000, seed=0):
    """Provenance of a synthetic set: MiE-source samples from composite subjects plus other sources."""
    rng = np.random.default_rng(seed)
    subjects = sorted({(r.dataset, r.raw_subject) for r in gt})  # raw ids, as an AU pool may store them
    other = [("ckplus", "S005"), ("oulu", "P012"), ("exp", "")]
    pool = subjects + other
    picks = rng.integers(0, len(pool), n)
    return {"dataset": [pool[i][0] for i in picks], "subject": [pool[i][1] for i in picks]}, picks, pool


@pytest.mark.parametrize("protocol", ["loso", "miex-3fold"])
def test_leakage_guard_removes_exactly_test_subject_samples(gt, protocol):
    table, picks, pool = _synthetic_table(gt)
    canon = subject_keys(table)
    for fold in make_folds(protocol, gt):
        keep, removed = filter_synthetic(table, fold.test_subjects)
        expected_removed = {i for i, k in enumerate(canon) if k in fold.test_subjects}
        assert removed == len(expected_removed) > 0
        assert set(keep.tolist()) == set(range(len(canon))) - expected_removed
        assert all(canon[i] not in fold.test_subjects for i in keep)
    # the non-composite sources are never removed
    keep, removed = filter_synthetic(table, {k for k in canon if k[0] in {"casme2", "samm", "smic"}})
    assert {canon[i][0] for i in keep} == {"ckplus", "oulu", "exp"}


def test_leakage_guard_on_records_and_sources(gt):
    class Source:  # the recognizers' sample sources expose .meta records
        meta = [type("M", (), {"dataset": r.dataset, "subject": r.subject})() for r in gt[:20]]

    fold = loso(gt)[0]
    keep, removed = filter_synthetic(Source(), fold.test_subjects)
    expected = sum(1 for r in gt[:20] if (r.dataset, r.subject) in fold.test_subjects)
    assert removed == expected and len(keep) == 20 - expected
    with pytest.raises(DataError, match="provenance"):
        filter_synthetic([{"label": 0}], fold.test_subjects)
