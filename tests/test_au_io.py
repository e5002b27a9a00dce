"""AU table readers on py-feat's real OpenFace / py-feat CSVs and on files the tests write."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from au_fixture_trees import write_openface_csv

from miex_gen.au_io import read_au_table, write_feat_table
from miex_gen.aus import AU_NAMES, FEAT_AU_NAMES, OPENFACE_COLUMNS
from miex_gen.errors import DataError, FormatError


def _column_by_name(path, name):
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header = [h.strip() for h in rows[0]]
    j = header.index(name)
    return np.array([float(r[j]) for r in rows[1:]])


def test_real_openface_file(feat_test_data):
    path = feat_test_data / "OpenFace_Test.csv"
    table = read_au_table(path)
    assert table.format == "openface" and table.aus.shape == (100, 17) and table.aus.dtype == np.float32
    assert table.frame.tolist() == list(range(100))  # 1-based frames -> 0-based
    assert table.success.all()
    for name in ("AU01_r", "AU45_r", "AU26_r"):
        expected = _column_by_name(path, name)
        np.testing.assert_allclose(table.aus[:, AU_NAMES.index(name[:4])], expected, rtol=0, atol=1e-6)
    assert table.aus[:, AU_NAMES.index("AU12")].max() == 0.0  # AU12_r is all 0 in this file


@pytest.mark.parametrize("name,rows", [("001.csv", 40), ("002.csv", 28), ("Feat_Test.csv", 1)])
def test_real_pyfeat_files_are_scaled_by_5(feat_test_data, name, rows):
    path = feat_test_data / name
    table = read_au_table(path)
    assert table.format == "feat" and table.aus.shape == (rows, 17)
    np.testing.assert_allclose(table.aus[:, AU_NAMES.index("AU12")], 5 * _column_by_name(path, "AU12"), atol=1e-5)
    # AU45 (blink) comes from py-feat's AU43 (eyes closed)
    np.testing.assert_allclose(table.aus[:, AU_NAMES.index("AU45")], 5 * _column_by_name(path, "AU43"), atol=1e-5)
    assert table.frame.tolist() == list(range(rows))


def test_openface_columns_found_by_name_not_position(tmp_path):
    aus = np.round(np.random.default_rng(1).uniform(0, 5, (4, 17)), 3).astype(np.float32)
    path = write_openface_csv(tmp_path / "a.csv", aus)
    # reverse the column order: a positional reader would read garbage
    with open(path) as handle:
        rows = [[c.strip() for c in line.split(",")] for line in handle.read().splitlines()]
    with open(tmp_path / "b.csv", "w") as handle:
        for row in rows:
            handle.write(", ".join(reversed(row)) + "\n")
    a, b = read_au_table(path), read_au_table(tmp_path / "b.csv")
    np.testing.assert_allclose(a.aus, aus, atol=1e-6)
    np.testing.assert_array_equal(a.aus, b.aus)


def test_failed_frames_marked_not_used(tmp_path):
    aus = np.full((5, 17), 2.0, dtype=np.float32)
    success = np.array([1, 0, 1, 1, 0], dtype=bool)
    table = read_au_table(write_openface_csv(tmp_path / "of.csv", aus, success))
    assert table.success.tolist() == success.tolist()
    assert (table.aus[~success] == 0).all()
    np.testing.assert_array_equal(table.vector(2), aus[2])
    with pytest.raises(DataError, match="tracker failed at frame 1"):
        table.vector(1)
    with pytest.raises(DataError, match="no AU row for frame 9"):
        table.vector(9)
    feat = write_feat_table(tmp_path / "f.csv", np.full((3, 20), 0.2), success=np.array([True, False, True]))
    ft = read_au_table(feat)
    assert ft.success.tolist() == [True, False, True] and ft.aus[0, 0] == pytest.approx(1.0)


def test_missing_columns_named(tmp_path):
    path = tmp_path / "x.csv"
    header = ["frame", "success", *OPENFACE_COLUMNS[:-2]]
    path.write_text(", ".join(header) + "\n" + ", ".join(["1", "1"] + ["0.5"] * 15) + "\n")
    with pytest.raises(FormatError, match="x.csv .*AU26_r, AU45_r"):
        read_au_table(path, format="openface")
    with pytest.raises(FormatError, match="neither the OpenFace AU columns nor the py-feat"):
        read_au_table(path)


def test_non_numeric_and_out_of_range_values(tmp_path):
    aus = np.ones((3, 17), dtype=np.float32)
    path = write_openface_csv(tmp_path / "n.csv", aus)
    text = path.read_text().splitlines()
    cells = text[2].split(", ")
    cells[6 + AU_NAMES.index("AU04")] = "abc"
    text[2] = ", ".join(cells)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(FormatError, match="'AU04_r' holds non-numeric 'abc' at data row 2"):
        read_au_table(path)
    big = write_openface_csv(tmp_path / "big.csv", np.full((2, 17), 7.0, dtype=np.float32))
    with pytest.raises(FormatError, match="0..5"):
        read_au_table(big)
    feat = tmp_path / "feat.csv"
    feat.write_text("frame," + ",".join(FEAT_AU_NAMES) + "\n0," + ",".join(["3.0"] * 20) + "\n")
    with pytest.raises(FormatError, match="feat values must lie in 0..1"):
        read_au_table(feat)
    with pytest.raises(DataError, match="not found"):
        read_au_table(tmp_path / "missing.csv")


def test_multiple_faces_keep_most_confident_and_facelandmarkimg(tmp_path):
    header = ["face", "confidence", *OPENFACE_COLUMNS]
    path = tmp_path / "img.csv"
    path.write_text(", ".join(header) + "\n" + ", ".join(["0", "0.6"] + ["1.0"] * 17) + "\n"
                    + ", ".join(["1", "0.9"] + ["3.0"] * 17) + "\n")
    table = read_au_table(path)  # FaceLandmarkImg: no frame column -> one image, frame 0
    assert len(table) == 1 and table.frame.tolist() == [0] and table.aus[0, 0] == 3.0


def test_write_feat_table_round_trip(tmp_path):
    probs = np.random.default_rng(0).uniform(0, 1, (6, 20))
    path = write_feat_table(tmp_path / "sub" / "clip.csv", probs, success=np.ones(6, bool), inputs=[f"f{i}.jpg" for i in range(6)])
    table = read_au_table(path)
    from miex_gen.aus import from_feat20

    np.testing.assert_allclose(table.aus, from_feat20(probs) * 5, atol=1e-5)
    assert not list(path.parent.glob(".*tmp-*"))
