"""Result files: predictions.csv round trip, MEGC log, torchrun de-duplication, report from predictions alone."""

from __future__ import annotations

import json

import pytest

from miex_gen.errors import DataError, FormatError
from recognizers.results import (
    MEGC_LOG_FILE, PREDICTIONS_FILE, SUMMARY_FILE, PredictionRow, dedupe_predictions, megc_log_text, parse_megc_log,
    read_predictions, report, write_predictions, write_report,
)

pytestmark = pytest.mark.filterwarnings("ignore::recognizers.metrics.UndefinedMetricWarning")


def _rows():
    return [
        PredictionRow("casme2/sub01/EP02_01f", "casme2", "sub01", "EP02_01f", 1, 1, "casme2-sub01"),
        PredictionRow("casme2/sub01/EP03_02", "casme2", "sub01", "EP03_02", 0, 1, "casme2-sub01"),
        PredictionRow("samm/006/006_1_2", "samm", "006", "006_1_2", 0, 0, "samm-006"),
        PredictionRow("smic/s01/s01_sur_01", "smic", "s01", "s01_sur_01", 2, 2, "smic-s01"),
        PredictionRow("smic/s01/s01_ne_01", "smic", "s01", "s01_ne_01", 0, 2, "smic-s01"),
    ]


def test_dedupe_removes_distributed_sampler_padding():
    rows = _rows()
    # 2 ranks, 5 samples: DistributedSampler pads to 6 by repeating the first sample; gathered rank by rank
    gathered = [rows[0], rows[2], rows[4], rows[1], rows[3], rows[0]]
    out = dedupe_predictions(gathered)
    assert len(out) == 5 and {r.sample_id for r in out} == {r.sample_id for r in rows}
    assert out[0] == rows[0]
    # the same sample id in two folds is not padding: both kept (and check_rows rejects it at report time)
    moved = PredictionRow(**{**rows[0].__dict__, "fold": "other"})
    assert len(dedupe_predictions([rows[0], moved])) == 2
    clash = PredictionRow(**{**rows[0].__dict__, "truth": 2})
    with pytest.raises(DataError, match="different truth"):
        dedupe_predictions([rows[0], clash])


def test_predictions_csv_round_trip_and_errors(tmp_path):
    rows = _rows()
    rows[0] = PredictionRow(*list(rows[0].__dict__.values())[:7], extra={"prob_0": "0.1"})
    path = write_predictions(rows, tmp_path / "p.csv")
    back = read_predictions(path)
    assert back == rows and back[0].extra == {"prob_0": "0.1"}
    header = path.read_text().splitlines()[0]
    assert header == "dataset,subject,clip,truth,prediction,fold,sample_id,prob_0"
    bad = tmp_path / "bad.csv"
    bad.write_text("dataset,subject,clip,truth,prediction,fold\ncasme2,sub01,EP1,neg,0,f\n")
    with pytest.raises(FormatError, match="line 2: truth 'neg'"):
        read_predictions(bad)
    bad.write_text("dataset,subject,truth,prediction\n")
    with pytest.raises(FormatError, match="clip, fold"):
        read_predictions(bad)


def test_megc_log_format_and_parse(tmp_path):
    text = megc_log_text(_rows())
    assert text.splitlines()[:4] == ["casme2 sub01", "EP02_01f 1 1", "EP03_02 0 1", "samm 006"]
    (tmp_path / "log.txt").write_text(text)
    parsed = parse_megc_log(tmp_path / "log.txt")
    assert [(r.dataset, r.subject, r.clip, r.truth, r.prediction) for r in parsed] == \
        [(r.dataset, r.subject, r.clip, r.truth, r.prediction) for r in _rows()]


def test_report_recomputes_everything_from_predictions(tmp_path):
    summary = write_report(tmp_path, _rows(), config={"protocol": "loso"})
    assert summary["n"] == 5 and summary["num_folds"] == 3 and summary["config"]["protocol"] == "loso"
    assert set(summary["scores"]) == {"all", "casme2", "samm", "smic"}
    assert (tmp_path / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    first = json.loads((tmp_path / SUMMARY_FILE).read_text())
    log_before = (tmp_path / MEGC_LOG_FILE).read_text()
    (tmp_path / SUMMARY_FILE).unlink()
    (tmp_path / MEGC_LOG_FILE).unlink()
    again = report(tmp_path, plot=False)
    assert again["scores"] == first["scores"] and again["uf1"] == first["uf1"]
    assert (tmp_path / MEGC_LOG_FILE).read_text() == log_before
    # a sample tested in two folds is refused
    rows = _rows() + [PredictionRow(**{**_rows()[0].__dict__, "fold": "other"})]
    write_predictions(rows, tmp_path / PREDICTIONS_FILE)
    with pytest.raises(DataError, match="tested in folds"):
        report(tmp_path)
