"""Dataset loaders on fixture trees in the release layouts (MER_PROTOCOL.md §7), one test per quirk."""

from __future__ import annotations

import pytest
from au_fixture_trees import (
    make_casme2, make_ckplus, make_megc2019, make_mmew, make_oulu, make_samm, make_smic, touch_frames, write_xlsx,
)

from miex_gen.datasets import (
    list_celeba, list_image_folder, load_casme2, load_ckplus, load_clips, load_megc2019, load_mmew, load_oulu,
    load_samm, load_smic,
)
from miex_gen.datasets.records import list_frames
from miex_gen.errors import DataError


@pytest.fixture(scope="module")
def casme2(tmp_path_factory):
    return make_casme2(tmp_path_factory.mktemp("casme2"))


def by_clip(records):
    return {r.clip: r for r in records}


# ----------------------------------------------------------------------------- CASME II
def test_casme2_columns_by_name_with_blank_columns(casme2):
    clips = by_clip(load_casme2(casme2))
    rec = clips["EP02_01f"]
    assert (rec.dataset, rec.subject, rec.label, rec.emotion) == ("casme2", "sub01", 1, "happiness")
    assert rec.frames[rec.onset].name == "img46.jpg" and rec.frames[rec.apex].name == "img59.jpg"
    assert rec.frames[rec.offset].name == "img60.jpg" and rec.apex_source == "annotated"


def test_casme2_slash_apex_is_none(casme2):
    rec = by_clip(load_casme2(casme2))["EP19_05f"]
    assert rec.apex is None and rec.apex_source == "none" and rec.label == 0


def test_casme2_frames_sorted_numerically(casme2):
    rec = by_clip(load_casme2(casme2))["EP19_05f"]
    assert [p.name for p in rec.frames] == ["img98.jpg", "img99.jpg", "img100.jpg", "img101.jpg", "img102.jpg"]


def test_casme2_filename_without_f_kept_and_others_unlabelled(casme2):
    clips = by_clip(load_casme2(casme2))
    assert clips["EP09_01"].label == 0 and clips["EP09_01"].emotion == "repression"
    assert clips["EP03_02"].label is None


def test_casme2_offset_typo_falls_back_to_last_frame(casme2):
    rec = by_clip(load_casme2(casme2))["EP12_01f"]
    assert rec.offset == len(rec.frames) - 1 and rec.frames[rec.apex].name == "img35.jpg"


def test_casme2_absent_frames_reported_not_crashing(casme2):
    clips = load_casme2(casme2)
    assert "EP01_2" not in by_clip(clips)
    assert len(clips.skipped) == 1 and "row 6" in clips.skipped[0].where and "onset frame 1" in clips.skipped[0].reason
    with pytest.raises(DataError, match="row 6"):
        load_casme2(casme2, strict=True)


def test_casme2_cropped_folder(casme2):
    clips = load_casme2(casme2, cropped=True)
    assert [r.clip for r in clips] == ["EP02_01f"]
    assert clips[0].frames[clips[0].apex].name == "reg_img59.jpg"
    assert len(clips.skipped) == 5  # the other rows have no cropped folder here


def test_casme2_missing_root_and_unreadable_sheet(tmp_path):
    with pytest.raises(DataError, match="CASME II root not found"):
        load_casme2(tmp_path / "nope")
    (tmp_path / "CASME2_RAW_selected").mkdir()
    with pytest.raises(DataError, match="no CASME2-coding"):
        load_casme2(tmp_path)
    (tmp_path / "CASME2-coding-20140508.xlsx").write_bytes(b"not a zip file")
    with pytest.raises(DataError, match="cannot read spreadsheet .*CASME2-coding-20140508.xlsx"):
        load_casme2(tmp_path)
    write_xlsx(tmp_path / "CASME2-coding-20140508.xlsx", [["Subject", "Name", "Onset"], [1, "x", 3]])
    with pytest.raises(DataError, match="no header row naming"):
        load_casme2(tmp_path)


# ----------------------------------------------------------------------------- SAMM
def test_samm_header_found_by_content_and_subject_padding(tmp_path):
    clips = load_samm(make_samm(tmp_path))
    rec = by_clip(clips)["006_1_2"]
    assert (rec.subject, rec.label, rec.emotion) == ("006", 1, "happiness")
    assert rec.frames[rec.apex].name == "006_05566.jpg"
    assert by_clip(clips)["007_6_1"].frames[by_clip(clips)["007_6_1"].apex].name == "007_0195.jpg"
    assert [s.reason for s in clips.skipped] == ["no Subject / Filename"]  # the trailing notes row


def test_samm_missing_apex_and_five_digit_frames(tmp_path):
    rec = by_clip(load_samm(make_samm(tmp_path)))["006_1_3"]
    assert rec.apex is None and rec.label == 0
    assert [p.name for p in rec.frames][:3] == ["006_09998.jpg", "006_09999.jpg", "006_10000.jpg"]


def test_samm_one_header_row_variant(tmp_path):
    make_samm(tmp_path)
    (tmp_path / "SAMM_Micro_FACS_Codes_v2.xlsx").unlink()
    write_xlsx(tmp_path / "SAMM_20181215_Micro_FACS_Codes_v2.xlsx", [
        ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type", "Action Units",
         "Estimated Emotion", "Objective Classes", "Notes"],
        [7, "007_6_1", 6, 192, 194, 198, 7, "Micro", "1+2", "Surprise", 6, ""],
    ])
    rec = load_samm(tmp_path)[0]
    assert rec.key == ("samm", "007", "007_6_1") and rec.apex == 2 and rec.label == 2


# ----------------------------------------------------------------------------- SMIC
def test_smic_folder_labels_canonical_keys_and_integer_middle_apex(tmp_path):
    clips = by_clip(load_smic(make_smic(tmp_path)))
    assert set(clips) == {"s01_ne_01", "s01_po_01", "s02_sur_01"}
    ne = clips["s01_ne_01"]
    assert (ne.subject, ne.label, ne.apex_source) == ("s01", 0, "middle")
    assert [p.name for p in ne.frames][-1] == "image1000002.bmp"  # 6 and 7 digit names sorted numerically
    assert ne.apex == 2 and isinstance(ne.apex, int)  # 5 frames: 0 + 4 // 2
    assert clips["s02_sur_01"].apex == 1  # 4 frames: 3 // 2, an integer (not len/2 = 2.0)


def test_smic_apex_file(tmp_path):
    make_smic(tmp_path)
    apex = tmp_path / "apex.csv"
    apex.write_text("clip,apex\ns1_po_1,76522\n")
    clips = by_clip(load_smic(tmp_path, apex_file=apex))
    assert clips["s01_po_01"].apex == 4 and clips["s01_po_01"].apex_source == "file"
    assert clips["s01_ne_01"].apex_source == "middle"
    apex.write_text("clip,apex\ns1_po_1,5\n")
    with pytest.raises(DataError, match="apex frame 5"):
        load_smic(tmp_path, apex_file=apex, strict=True)


# ----------------------------------------------------------------------------- composite
def test_megc2019_labels_from_ground_truth_and_missing_clips_reported(tmp_path):
    clips = load_megc2019(make_megc2019(tmp_path))
    keys = {r.key: r for r in clips}
    # on disk and in the GT: casme2 sub01/EP02_01f (1), samm 006/006_1_2 (0 in the GT!), smic s01_ne_01 (0)
    assert keys[("casme2", "sub01", "EP02_01f")].label == 1
    assert keys[("samm", "006", "006_1_2")].label == 0  # GT label wins over the sheet's "Happiness" fixture
    assert keys[("smic", "s01", "s01_ne_01")].label == 0
    assert len(clips) + len(clips.skipped) == 442
    # a GT clip whose sheet row references an absent frame says so
    skip = next(s for s in clips.skipped if s.key == ("casme2", "sub03", "EP01_2"))
    assert "row 6" in skip.reason and "onset frame 1" in skip.reason
    assert ("samm", "006", "006_1_3") in keys and keys[("samm", "006", "006_1_3")].apex is None
    with pytest.raises(DataError, match="combined_3class_gt.csv"):
        load_megc2019(tmp_path, strict=True)
    with pytest.raises(DataError, match="has no casme2 folder"):
        load_megc2019(tmp_path / "casme2")


# ----------------------------------------------------------------------------- macro sources
def test_ckplus_sadness_is_negative_and_unlabelled_left_out(tmp_path):
    root = make_ckplus(tmp_path)
    clips = {r.key: r for r in load_ckplus(root)}
    assert clips[("ckplus", "S010", "002")].emotion == "sadness"
    assert clips[("ckplus", "S010", "002")].label == 0
    assert clips[("ckplus", "S010", "003")].label == 1 and clips[("ckplus", "S005", "001")].label == 0
    assert ("ckplus", "S011", "001") not in clips
    rec = clips[("ckplus", "S005", "001")]
    assert rec.onset == 0 and rec.apex == rec.offset == 10
    assert len(load_ckplus(root, labelled_only=False)) == 4
    (root / "Emotion" / "S005" / "001" / "S005_001_00000011_emotion.txt").write_text("9.0\n")
    bad = load_ckplus(root)
    assert len(bad) == 2 and "not 0-7" in bad.skipped[0].reason


def test_oulu_folder_labels(tmp_path):
    clips = load_oulu(make_oulu(tmp_path))
    assert len(clips) == 6
    rec = {r.key: r for r in clips}[("oulu", "P002", "Happiness")]
    assert rec.label == 1 and rec.frames[0].name == "000.jpeg" and rec.apex == 7
    with pytest.raises(DataError, match="OriginalImg"):
        load_oulu(tmp_path, camera="NI")


def test_mmew_micro_and_macro(tmp_path):
    root = make_mmew(tmp_path)
    micro = {r.clip: r for r in load_mmew(root)}
    assert micro["S01-01-001"].subject == "S01" and micro["S01-01-001"].label == 1
    assert micro["S01-01-001"].frames[micro["S01-01-001"].apex].name == "9.jpg"
    assert micro["S02-01-004"].label is None
    macro = load_mmew(root, kind="macro")
    assert [(r.subject, r.label, r.apex) for r in macro] == [("S03", 0, 11)]
    assert load_clips("mmew-macro", root)[0].clip == "S03-02-001"


# ----------------------------------------------------------------------------- identities
def test_list_frames_natural_order(tmp_path):
    touch_frames(tmp_path, ["img100.jpg", "img46.jpg", "img9.jpg", "notes.txt"])
    assert [p.name for p in list_frames(tmp_path)] == ["img9.jpg", "img46.jpg", "img100.jpg"]


def test_celeba_and_image_folder(tmp_path):
    touch_frames(tmp_path / "img_align_celeba", ["000001.jpg", "000002.jpg", "000003.jpg"])
    (tmp_path / "identity_CelebA.txt").write_text("000001.jpg 2880\n000002.jpg 2937\n000003.jpg 8692\n")
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n000002.jpg 0\n000003.jpg 2\n")
    (tmp_path / "list_landmarks_align_celeba.txt").write_text(
        "3\nlefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y\n"
        "000001.jpg    69  109  106  113   77  142   73  152  108  154\n"
        "000002.jpg    69  110  107  112   81  135   70  151  108  153\n"
        "000003.jpg    76  112  104  106  108  128   74  156   98  158\n")
    records = list_celeba(tmp_path)
    assert [r.id for r in records] == ["000001", "000002", "000003"]
    assert records[0].person == "2880" and records[0].landmarks[:2] == (69.0, 109.0)
    assert [r.id for r in list_celeba(tmp_path, partition="test")] == ["000003"]
    folder = tmp_path / "faces"
    touch_frames(folder / "b", ["x10.png", "x9.png"])
    touch_frames(folder, ["a.jpg"])
    assert [r.id for r in list_image_folder(folder)] == ["a", "b/x9", "b/x10"]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(DataError, match="no images"):
        list_image_folder(tmp_path / "nothing")
