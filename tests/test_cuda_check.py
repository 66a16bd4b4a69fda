"""The device-check script (eval.bench.cuda_check) runs its code paths end to end on the CPU."""

import json

import pytest
import torch

from eval.bench import cuda_check


@pytest.mark.slow
def test_quick_self_test_on_the_cpu(tmp_path):
    assert cuda_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "cuda_check.json").read_text())["results"]
    status = {k.split(" ")[0]: v["status"] for k, v in report.items()}
    assert status == {"environment": "ok", "training": "ok", "training-step": "ok", "frozen": "ok", "faiss": "skipped"}
    train = next(v for k, v in report.items() if k.startswith("training ("))["result"]
    assert set(train) == {"no", "bf16"} and all(r["finite"] and r["expert_steps"] >= 3 for r in train.values())
    llm = next(v for k, v in report.items() if k.startswith("frozen"))["result"]
    assert llm["nf4"]["footprint_mib"] < llm["none"]["footprint_mib"]  # 4-bit weights really stored as 4-bit
    assert llm["nf4"]["id"].endswith("/nf4") and llm["none"]["new_tokens"] == 8
    ratios = next(v for k, v in report.items() if k.startswith("training-step"))["result"]
    assert set(ratios) == {"fp32", "bf16 autocast"}
    assert all(r["CLIP step"]["ratio"].startswith("1.000x") for r in ratios.values())  # the base of each table
    assert all(len(r) == 5 for r in ratios.values())  # the steps training runs, no [before: ...] rows
    page = (tmp_path / "cuda_check.md").read_text()
    assert "| frozen LLM (rag_report.llm, bitsandbytes) | ok |" in page


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_requested_without_a_gpu_is_refused(tmp_path, capsys):
    assert cuda_check.main(["--out", str(tmp_path)]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err
    assert not (tmp_path / "cuda_check.json").exists()
