"""`rag-report batch` on a folder of generated studies with the tiny pipeline: outputs, summary, resume,
kills, bad input, sending, 2-process split; and the header warning of single drafts."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest

from rag_report.formats.fhir import validate_bundle
from rag_report.formats.sr import read_sr_content
from rag_report.handoff.runner import BatchConfig, BatchRunner, finished, run_batch
from rag_report.handoff.send import SendError
from rag_report.handoff.sources import SourceError, folder_studies
from rag_report.handoff.studies import study_key
from rag_report.handoff.summary import read_summary
from rag_report.handoff.synthetic import synthetic_uid, write_study, write_truncated
from rag_report.pipeline import ReportPipeline

IDENTIFIERS = ("SYNTHETIC", "PATIENT", "SYN0", "ACC0", "REFERRER", "19600101")


@pytest.fixture(scope="module")
def pipe(tiny_pipeline_config):
    return ReportPipeline(tiny_pipeline_config, progress=False)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Studies 1-3 PA+LAT, 4 AP only, 5 LAT only, 6 CT only, 7 PA + CT, 8 a truncated AP, plus junk."""
    root = tmp_path_factory.mktemp("export")
    for n in (1, 2, 3):
        write_study(root / f"p{n}", n, views=("PA", "LL"), size=64)
    write_study(root / "p4", 4, views=("AP",), size=64)
    write_study(root / "p5", 5, views=("LL",), size=64)
    write_study(root / "p6", 6, views=(), ct_series=True, size=64)
    write_study(root / "p7", 7, views=("PA",), ct_series=True, size=64)
    (whole,) = write_study(root / "tmp8", 8, views=("AP",), size=64)
    write_truncated(root / "p8.dcm", whole)
    for f in (root / "tmp8").iterdir():
        f.unlink()
    (root / "tmp8").rmdir()
    (root / "junk.txt").write_text("SYNTHETIC^PATIENT notes, not an image")
    return root


KEY = {n: study_key(synthetic_uid("study", n)) for n in range(1, 9)}


def _rows(path) -> dict[str, dict[str, str]]:
    return {r["study"]: r for r in read_summary(path)}


def test_header_warning_reaches_single_drafts(pipe, tmp_path):
    pa, lat = write_study(tmp_path, 11, views=("PA", "LL"), size=64)
    assert not any("DICOM header" in w for w in pipe.generate(pa).warnings)
    warned = [w for w in pipe.generate(lat).warnings if "DICOM header" in w]
    assert len(warned) == 1 and "lateral" in warned[0]
    (ct,) = write_study(tmp_path / "ct", 12, views=(), ct_series=True, size=64)[:1]
    assert any("modality CT" in w for w in pipe.generate(ct).warnings)


@pytest.fixture(scope="module")
def tiles_pipe(tiny_world, tiny_pipeline_config, tmp_path_factory):
    """The tiny pipeline over an index whose label classifiers read the X-rays' tiles too."""
    from dataclasses import replace

    from eclip_core.model import EClip
    from rag_report.index import ReportIndex

    out = tmp_path_factory.mktemp("tiles") / "index"
    model = EClip.from_pretrained(tiny_world["model_dir"]).eval()
    train = [s for s in tiny_world["studies"] if s.split == "train" and s.report_text]
    ReportIndex.build(model, train, out, progress=False, classifier_views="image+tiles")
    return ReportPipeline(replace(tiny_pipeline_config, index_dir=str(out)), progress=False)


@pytest.mark.parametrize("views", ["image", "image+tiles"])
def test_batched_embedding_equals_one_at_a_time(pipe, tiles_pipe, export, views):
    pipe = tiles_pipe if views == "image+tiles" else pipe
    assert pipe.index.label_classifiers.views == views
    files = sorted(export.glob("p[1-4]/*PA.dcm")) + sorted(export.glob("p4/*.dcm"))
    batched = pipe.embed_many(files, batch_size=len(files))
    for f, e in zip(files, batched):
        np.testing.assert_allclose(e.vector, pipe.embed(f), atol=1e-5)
        batched, alone = pipe.generate(f, embedded=e), pipe.generate(f)
        assert batched.text == alone.text and batched.predicted_positive == alone.predicted_positive
        for name, p in alone.predicted_labels.items():
            assert batched.predicted_labels[name] == pytest.approx(p, abs=1e-5)


def test_folder_batch_outputs_summary_and_reasons(pipe, export, tmp_path):
    out = tmp_path / "out"
    result = BatchRunner(pipe, BatchConfig(out=str(out), batch_size=3, writers=1), progress=False).run(
        folder_studies(export), out / "summary.csv"
    )
    rows = _rows(out / "summary.csv")
    drafted = {k for k, r in rows.items() if r["status"] == "drafted"}
    assert drafted == {KEY[n] for n in (1, 2, 3, 4, 7)}
    assert rows[KEY[1]]["view"] == "PA" and rows[KEY[4]]["view"] == "AP" and rows[KEY[1]]["images"] == "2"
    assert rows[KEY[5]]["reason"].startswith("only lateral views")
    assert rows[KEY[6]]["reason"].startswith("no CR/DX radiograph")
    assert rows[KEY[8]]["reason"].startswith("no readable image")
    assert sum(1 for r in rows.values() if "not a readable DICOM" in r["reason"]) == 1  # junk.txt
    assert result.ok and result.counts == {"drafted": 5, "skipped": 4}
    for key in drafted:
        folder = out / key
        draft = json.loads((folder / "draft.json").read_text())
        assert draft["models"]["eclip_checkpoint"] == pipe.model.checkpoint_hash
        sr = pydicom.dcmread(folder / "sr.dcm")
        # The SR files into the source study and names the drafted (frontal) instance.
        n = next(n for n, k in KEY.items() if k == key)
        assert sr.StudyInstanceUID == synthetic_uid("study", n)
        content = read_sr_content(sr)
        assert [uid for _, uid in content.references] == [synthetic_uid("sop", n, 1)]
        assert (content.findings, content.impression) == (draft["findings"], draft["impression"])
        validate_bundle(json.loads((folder / "fhir.json").read_text()))  # from scratch: models and bindings
        assert float(rows[key]["embed_ms"]) > 0 and rows[key]["typicality"] != ""
        assert not list(folder.glob(".*.tmp"))
    # Where the time went: the drafting process's stages, and the writer's parts of every study's write.
    assert {"prepare", "embed", "draft", "hand-off to the writer", "wait for the writer", "summary"} <= set(
        result.stages
    )
    written = {k.removeprefix("write: "): v for k, v in result.stages.items() if k.startswith("write: ")}
    assert set(written) == {"sr", "fhir", "json"} and all(v > 0 for v in written.values())
    assert sum(written.values()) == pytest.approx(sum(float(rows[k]["write_ms"]) for k in drafted), abs=1.0)
    # No patient identifier in the summary, the folder names or the rows.
    text = (out / "summary.csv").read_text() + " ".join(p.name for p in out.rglob("*"))
    text += " ".join(p.read_text() for p in out.rglob("row.json"))
    assert not any(word in text for word in IDENTIFIERS)


def test_resume_skips_finished_studies_and_redrafts_on_new_models(pipe, export, tmp_path, tiny_pipeline_config):
    out = tmp_path / "out"
    cfg = BatchConfig(out=str(out), batch_size=4, writers=0)
    BatchRunner(pipe, cfg, progress=False).run(folder_studies(export), out / "summary.csv")
    stamp = {k: (out / k / "sr.dcm").stat().st_mtime_ns for k in (KEY[1], KEY[4])}
    # A study whose draft.json is gone (killed before its last rename) is drafted again.
    (out / KEY[4] / "draft.json").unlink()
    cfg.resume = True
    again = BatchRunner(pipe, cfg, progress=False).run(folder_studies(export), out / "summary.csv")
    status = {r.study: r.status for r in again.rows}
    assert status[KEY[1]] == "resumed" and status[KEY[4]] == "drafted"
    assert (out / KEY[1] / "sr.dcm").stat().st_mtime_ns == stamp[KEY[1]]
    assert (out / KEY[4] / "sr.dcm").stat().st_mtime_ns != stamp[KEY[4]]
    assert _rows(out / "summary.csv")[KEY[1]]["positives"] == _rows(out / "summary.csv")[KEY[1]]["positives"]
    # Other models: nothing is finished.
    identity = dict(BatchRunner(pipe, cfg, progress=False).identity, eclip_checkpoint="0" * 16)
    assert finished(out / KEY[1], BatchRunner(pipe, cfg, progress=False).identity)
    assert not finished(out / KEY[1], identity)


def test_a_kill_mid_batch_leaves_finished_studies_whole(pipe, export, tmp_path, kill_switch):
    out = tmp_path / "out"
    # writers=0: the outputs are written in this process, where the kill switch sees the renames.
    runner = BatchRunner(pipe, BatchConfig(out=str(out), batch_size=2, writers=0), progress=False)
    kill_switch.arm(out, at=9)  # dies a few renames in: inside the second drafted study's writes
    with pytest.raises(kill_switch.Killed):
        runner.run(folder_studies(export), out / "summary.csv")
    kill_switch.disarm()
    complete = [d for d in out.iterdir() if d.is_dir() and (d / "draft.json").exists()]
    assert complete, "some study finished before the kill"
    for d in complete:  # a study with its done mark has every output, each whole
        json.loads((d / "draft.json").read_text())
        pydicom.dcmread(d / "sr.dcm")
        json.loads((d / "fhir.json").read_text())
    # Resume finishes the rest and keeps what was done.
    resumed = BatchRunner(pipe, BatchConfig(out=str(out), resume=True, writers=0), progress=False).run(
        folder_studies(export), out / "summary.csv"
    )
    assert {r.study for r in resumed.rows if r.status == "resumed"} == {d.name for d in complete}
    assert resumed.counts.get("drafted", 0) + len(complete) == 5


class _Refusing:
    """A PACS that refuses every store, then (``accept``) takes them: what a full or locked archive does."""

    def __init__(self) -> None:
        self.accept, self.stored = False, []

    def send(self, dataset) -> None:
        if not self.accept:
            raise SendError("STOW-RS to http://127.0.0.1:9/dicom-web: the PACS refused the SR (HTTP 409)")
        self.stored.append(str(dataset.SOPInstanceUID))


def test_a_refused_send_is_recorded_and_retried_by_resume(pipe, export, tmp_path):
    out = tmp_path / "out"
    pacs = _Refusing()
    cfg = BatchConfig(out=str(out), send=True, writers=0)
    first = BatchRunner(pipe, cfg, sender=pacs, progress=False).run(folder_studies(export), out / "summary.csv")
    assert not first.ok
    failed = {r.study for r in first.rows if r.send_failed}
    assert failed == {KEY[n] for n in (1, 2, 3, 4, 7)}
    assert all("refused" in _rows(out / "summary.csv")[k]["send"] for k in failed)
    pacs.accept = True
    cfg.resume = True
    second = BatchRunner(pipe, cfg, sender=pacs, progress=False).run(folder_studies(export), out / "summary.csv")
    assert second.ok and {r.study for r in second.rows if r.send == "stored"} == failed
    assert sorted(pacs.stored) == sorted(str(pydicom.dcmread(out / k / "sr.dcm").SOPInstanceUID) for k in failed)


def test_a_pacs_that_is_down_fails_before_anything_is_written(tiny_pipeline_config, tmp_path):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    out = tmp_path / "out"
    with pytest.raises(SourceError, match="cannot search the PACS"):
        run_batch(f"http://127.0.0.1:{port}/dicom-web", BatchConfig(out=str(out)), pipeline_config=tiny_pipeline_config)
    assert not out.exists()


def _cli_env(**extra) -> dict[str, str]:
    return dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd(), **extra)


def _config_file(tmp_path, tiny_pipeline_config) -> Path:
    path = tmp_path / "pipeline.json"
    fields = {k: v for k, v in vars(tiny_pipeline_config).items() if v is not None}
    path.write_text(json.dumps(fields))
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_processes_split_the_studies(export, tmp_path, tiny_pipeline_config):
    out = tmp_path / "out"
    config = _config_file(tmp_path, tiny_pipeline_config)
    cmd = [sys.executable, "-m", "rag_report.batch", "--quiet", str(export), "--out", str(out), "--config", str(config)]
    procs = [
        subprocess.Popen(cmd, env=_cli_env(RANK=str(r), WORLD_SIZE="2"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for r in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=280)
        assert p.returncode == 0, err.decode()[-2000:]
    shards = [read_summary(out / f"summary-rank{r}-of-2.csv") for r in range(2)]
    keys = [{row["study"] for row in s} for s in shards]
    assert keys[0] and keys[1] and not keys[0] & keys[1]
    assert keys[0] | keys[1] == {s.key for s in folder_studies(export)}
    drafted = {row["study"] for s in shards for row in s if row["status"] == "drafted"}
    assert drafted == {KEY[n] for n in (1, 2, 3, 4, 7)}
    assert all((out / k / "draft.json").is_file() for k in drafted)


def test_cli_batch_json_and_exit_codes(export, tmp_path, tiny_pipeline_config):
    from rag_report.cli import main

    config = _config_file(tmp_path, tiny_pipeline_config)
    out = tmp_path / "out"
    rc = main(["batch", "--quiet", str(export / "p4"), "--out", str(out), "--config", str(config), "--json"])
    assert rc == 0
    with (out / "summary.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["status"] == "drafted" and row["study"] == KEY[4]
    assert main(["batch", "--quiet", str(tmp_path / "missing"), "--out", str(out), "--config", str(config)]) == 2
    # --send without a PACS to send to is refused before drafting.
    assert main(["batch", "--quiet", str(export / "p4"), "--out", str(out), "--send", "--config", str(config)]) == 2


def test_png_studies_one_per_file_or_per_folder(pipe, tiny_world, tmp_path):
    import shutil

    pngs = [s.image_paths[0] for s in tiny_world["studies"] if s.split == "test"][:3]
    src = tmp_path / "pngs"
    (src / "patient-folder").mkdir(parents=True)
    shutil.copy(pngs[0], src / "DOE_JOHN.png")
    for i, p in enumerate(pngs[1:]):
        shutil.copy(p, src / "patient-folder" / f"view{i}.png")
    for per_folder, expected in ((False, 3), (True, 2)):
        out = tmp_path / f"out-{per_folder}"
        cfg = BatchConfig(out=str(out), writers=0, images_per_folder=per_folder)
        result = BatchRunner(pipe, cfg, progress=False).run(
            folder_studies(src, images_per_folder=per_folder), out / "s.csv"
        )
        assert result.counts == {"drafted": expected}
        for row in result.rows:
            sr = pydicom.dcmread(out / row.study / "sr.dcm")
            (ref,) = read_sr_content(sr).references
            assert ref[0] == "1.2.840.10008.5.1.4.1.1.7"  # the stand-in Secondary Capture of the PNG
            assert str(sr.PatientName) == ""  # a PNG names no patient, and the SR invents none
        assert "DOE" not in (out / "s.csv").read_text() + " ".join(p.name for p in out.rglob("*"))
