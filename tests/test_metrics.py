"""MEGC 2019 pooled UF1/UAR: equal to scikit-learn's macro scores with labels fixed, sanity anchor on the GT."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score
from sklearn.metrics import confusion_matrix as sk_confusion

from miex_gen.datasets import load_ground_truth, load_miex_3fold
from miex_gen.errors import DataError
from recognizers.metrics import UndefinedMetricWarning, scores, scores_by_dataset, uar, uf1, uf1_uar

LABELS = [0, 1, 2]


def _oracle(truth, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (
            f1_score(truth, pred, labels=LABELS, average="macro", zero_division=0),
            recall_score(truth, pred, labels=LABELS, average="macro", zero_division=0),
            accuracy_score(truth, pred),
            f1_score(truth, pred, labels=LABELS, average=None, zero_division=0),
            recall_score(truth, pred, labels=LABELS, average=None, zero_division=0),
            precision_score(truth, pred, labels=LABELS, average=None, zero_division=0),
            sk_confusion(truth, pred, labels=LABELS),
        )


def _check(truth, pred):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        s = scores(truth, pred)
    uf1, uar, acc, f1c, recc, precc, cm = _oracle(truth, pred)
    assert s.uf1 == pytest.approx(uf1, abs=1e-12)
    assert s.uar == pytest.approx(uar, abs=1e-12)
    assert s.accuracy == pytest.approx(acc, abs=1e-12)
    np.testing.assert_allclose(s.f1_per_class, f1c, atol=1e-12)
    np.testing.assert_allclose(s.recall_per_class, recc, atol=1e-12)
    np.testing.assert_allclose(s.precision_per_class, precc, atol=1e-12)
    np.testing.assert_array_equal(np.array(s.confusion), cm)
    assert s.n == len(truth) and sum(s.support) == len(truth)
    return s


def test_random_pooled_predictions_match_sklearn():
    rng = np.random.default_rng(0)
    for n in (1, 2, 5, 17, 442):
        for _ in range(8):
            truth = rng.integers(0, 3, n)
            pred = np.where(rng.random(n) < 0.6, truth, rng.integers(0, 3, n))
            _check(truth.tolist(), pred.tolist())


@pytest.mark.parametrize("truth,pred", [
    ([0, 0, 0], [0, 0, 0]),          # only one class present and predicted
    ([0, 0, 1], [0, 0, 0]),          # class 2 absent and never predicted: F1 = 0, recall = 0
    ([0, 1, 1], [2, 2, 2]),          # class 2 predicted but absent
    ([2], [1]),                      # single sample, wrong
    ([1, 1], [1, 1]),                # perfect on one class only: UF1 = 1/3, not 1
    ([0, 1, 2], [0, 1, 2]),          # perfect
    ([0, 1, 2, 0], [1, 2, 0, 1]),    # all wrong
])
def test_degenerate_cases_match_sklearn_and_never_drop_a_class(truth, pred):
    s = _check(truth, pred)
    assert len(s.f1_per_class) == 3 and len(s.recall_per_class) == 3


def test_absent_class_scores_zero_with_warning():
    with pytest.warns(UndefinedMetricWarning) as record:
        s = scores([1, 1], [1, 1])
    assert sorted(str(w.message)[:27] for w in record) == ["class 0 has no true samples", "class 2 has no true samples"]
    assert s.uf1 == pytest.approx(1 / 3) and s.uar == pytest.approx(1 / 3)  # never 1 (MiE-X) nor dropped (STSTNet)
    assert s.f1_per_class == (0.0, 1.0, 0.0)
    assert len(s.undefined) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert uf1_uar([1, 1], [1, 1]) == pytest.approx((1 / 3, 1 / 3))  # quiet variant for trainers
        scores([0, 1, 2], [0, 0, 0])  # every class present in truth: no warning
        assert uf1([1, 1], [1, 1]) == pytest.approx(1 / 3) and uar([1, 1], [1, 1]) == pytest.approx(1 / 3)
        assert uf1([3, 3], [3, 3], num_classes=4) == pytest.approx(1 / 4)


def test_counts_and_dict():
    s = scores([0, 0, 1, 2, 2], [0, 1, 1, 2, 0])
    assert s.tp == (1, 1, 1) and s.fp == (1, 1, 0) and s.fn == (1, 0, 1)
    d = s.to_dict(["negative", "positive", "surprise"])
    assert d["f1_per_class"]["positive"] == pytest.approx(2 / 3)
    assert d["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def test_bad_inputs_are_clear():
    with pytest.raises(DataError, match="outside labels"):
        scores([0, 3], [0, 1])
    with pytest.raises(DataError, match="2 entries but prediction has 1"):
        scores([0, 1], [0])
    with pytest.raises(DataError, match="no predictions"):
        scores([], [])
    with pytest.raises(DataError, match="integers"):
        scores([0, 1], [0.5, 1])


def _all_negative_rows(keys_in_order):
    labels = {r.key: r.label for r in load_ground_truth()}
    return [{"dataset": k[0], "truth": labels[k], "prediction": 0} for k in keys_in_order]


def test_all_negative_on_shipped_gt_loso_and_3fold_pooling():
    gt = load_ground_truth()
    # LOSO pooling: fold by fold over the 68 subjects, concatenated
    subjects = sorted({(r.dataset, r.subject) for r in gt})
    loso_keys = [r.key for subj in subjects for r in gt if (r.dataset, r.subject) == subj]
    # 3-fold pooling: the three shipped test folds, concatenated
    three_keys = [k for fold in load_miex_3fold() for k in fold.test_keys]
    for keys in (loso_keys, three_keys):
        assert len(keys) == 442
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # every class is present in the pooled truth: no warning
            by = scores_by_dataset(_all_negative_rows(keys))
        full = by["all"]
        assert round(full.uf1, 4) == 0.2408 and round(full.uar, 4) == 0.3333
        assert round(full.accuracy, 4) == 0.5656
        assert full.f1_per_class[0] == pytest.approx(500 / 692)
        assert set(by) == {"all", "casme2", "samm", "smic"}
        assert by["casme2"].n == 145 and by["samm"].n == 133 and by["smic"].n == 164
        assert by["casme2"].uar == pytest.approx(1 / 3)


def test_per_fold_averaging_would_differ():
    """Pooling is not per-fold averaging (the pitfall this module prevents)."""
    folds = [([0, 0], [0, 0]), ([1, 2], [1, 1])]
    pooled = scores([t for f in folds for t in f[0]], [p for f in folds for p in f[1]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        averaged = np.mean([scores(t, p).uf1 for t, p in folds])
    assert pooled.uf1 != pytest.approx(averaged)
