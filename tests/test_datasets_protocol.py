"""The shipped MEGC 2019 ground truth and the MiE-X 3-fold split (package data, canonical keys)."""

from __future__ import annotations

from collections import Counter

import pytest

from miex_gen.datasets import canonical_clip, canonical_key, canonical_subject, ground_truth_labels, load_ground_truth
from miex_gen.datasets.megc2019 import ground_truth_path, parse_ground_truth
from miex_gen.datasets.miex_split import load_miex_3fold, parse_list_path
from miex_gen.errors import DataError, FormatError


def test_ground_truth_is_shipped_byte_identical_with_crlf():
    raw = ground_truth_path().read_bytes()
    assert raw.count(b"\r\n") == 442 and raw.endswith(b"\r\n")
    assert raw.startswith(b"casme2,sub01,EP02_01f,1\r\n")


def test_ground_truth_counts_and_canonical_keys():
    rows = load_ground_truth()
    assert len(rows) == 442
    assert Counter(r.label for r in rows) == {0: 250, 1: 109, 2: 83}
    assert Counter(r.dataset for r in rows) == {"smic": 164, "casme2": 145, "samm": 133}
    subjects = {(r.dataset, r.subject) for r in rows}
    assert len(subjects) == 68
    samm = next(r for r in rows if r.dataset == "samm")
    assert (samm.subject, samm.clip, samm.raw_subject) == ("006", "006_1_2", "6")
    assert ("smic", "s01", "s01_ne_01") in ground_truth_labels()
    assert all(not r.subject.startswith("s0") or r.dataset == "smic" for r in rows)


def test_canonical_keys():
    assert canonical_subject("casme2", 1) == "sub01"
    assert canonical_subject("casme2", "sub1") == "sub01"
    assert canonical_subject("samm", "6") == "006"
    assert canonical_subject("samm", 6.0) == "006"
    assert canonical_subject("smic", "s1") == "s01"
    assert canonical_subject("mmew", 3) == canonical_subject("mmew", "s03") == "S03"
    assert canonical_clip("smic", "s1_ne_3") == "s01_ne_03"
    assert canonical_clip("casme2", "EP09_01") == "EP09_01"  # kept verbatim (no trailing f)
    assert canonical_key("samm", 32, "032_3_1") == ("samm", "032", "032_3_1")
    with pytest.raises(DataError, match="subject id"):
        canonical_subject("samm", "abc")


def test_release_folders_reverse_the_canonical_keys():
    from miex_gen.datasets.megc2019 import release_folder

    assert release_folder(("smic", "s01", "s01_ne_01")) == "s1/micro/negative/s1_ne_01"
    assert release_folder(("samm", "006", "006_1_2")) == "006/006_1_2"
    assert release_folder(("casme2", "sub01", "EP02_01f")) == "sub01/EP02_01f"
    assert len({release_folder(r.key) for r in load_ground_truth()}) == 442


def test_bad_ground_truth_file_names_line(tmp_path):
    bad = tmp_path / "gt.csv"
    bad.write_bytes(b"casme2,sub01,EP02_01f,1\r\n,,,\r\nsamm,6,006_1_2,0\r\n")
    with pytest.raises(FormatError, match="line 2"):
        parse_ground_truth(bad)


def test_miex_3fold_matches_ground_truth():
    folds = load_miex_3fold()
    labels = ground_truth_labels()
    assert [len(f.test_keys) for f in folds] == [172, 161, 109]
    assert [len(f.train_keys) for f in folds] == [270, 281, 333]
    assert [len(f.test_subjects) for f in folds] == [24, 23, 21]
    test_keys = [k for f in folds for k in f.test_keys]
    assert len(test_keys) == 442 and set(test_keys) == set(labels)
    for fold in folds:
        assert all(labels[k] == y for k, y in zip(fold.test_keys, fold.test_labels))
        assert not fold.train_subjects & fold.test_subjects
        assert set(fold.train_keys) == set(test_keys) - set(fold.test_keys)
    assert ("samm", "010") in folds[0].test_subjects and ("smic", "s02") in folds[0].test_subjects
    onset, apex = folds[0].frames[("samm", "010", "010_2_1")]
    assert (onset, apex) == (192, 206)


def test_list_path_mapping():
    key, frame = parse_list_path("Data/SMIC_cropped/s2/positive/s2_po_01/image076518.bmp")
    assert key == ("smic", "s02", "s02_po_01") and frame == 76518
    assert parse_list_path("Data/CASMEII_cropped/sub02/EP01_11f/img46.jpg") == (("casme2", "sub02", "EP01_11f"), 46)
    with pytest.raises(FormatError):
        parse_list_path("Data/OTHER/x.jpg")
