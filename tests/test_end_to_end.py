"""The full CLI on a tiny BLIP of the real transformers class and a synthetic benchmark of real PNG files.

The ranks the harness stores are checked against an independent computation: transformers' own
``BlipForImageTextRetrieval(use_itm_head=False)`` scores, pixels prepared here with PIL and numpy, and a full
argsort, as the public ChatIR evaluation does.
"""

import json

import click
import numpy as np
import torch
from click.testing import CliRunner
from PIL import Image
from transformers import AutoTokenizer, BlipForImageTextRetrieval

from harness.cli import main
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.fixtures.tiny_encoders import write_tiny_blip
from harness.hashing import sha256_file
from harness.metrics import compute_metrics

CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def pixels(paths) -> torch.Tensor:
    arrays = []
    for path in paths:
        image = Image.open(path).convert("RGB").resize((224, 224), Image.Resampling.BICUBIC)
        arrays.append(((np.asarray(image, dtype=np.float32) / 255.0 - CLIP_MEAN) / CLIP_STD).transpose(2, 0, 1))
    return torch.tensor(np.stack(arrays), dtype=torch.float32)


def reference_ranks(model_dir, synthetic, rounds: int) -> dict[str, list[int]]:
    model = BlipForImageTextRetrieval.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = json.loads(synthetic.dialogue_file.read_text())
    space = json.loads(synthetic.search_space_file.read_text())
    image_pixels = pixels([synthetic.image_root / path for path in space])
    ranks = {}
    with torch.inference_mode():
        for index, record in enumerate(records):
            texts = [", ".join(record["dialog"][: round_ + 1]) for round_ in range(rounds + 1)]
            tokens = tokenizer(texts, padding="longest", truncation=True, max_length=200, return_tensors="pt")
            scores = model(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=image_pixels,
                use_itm_head=False,
            ).itm_score.T  # (texts, images)
            order = torch.argsort(scores, dim=1, descending=True)
            target = space.index(record["img"])
            ranks[str(index)] = [(row == target).nonzero().item() for row in order]
    return ranks


def test_cli_run_matches_transformers_and_resumes_and_reuses_the_index(tmp_path, isolated_cache):
    synthetic = write_synthetic_benchmark(tmp_path / "bench", dialogues=6, distractors=6, rounds=3)
    model_dir = write_tiny_blip(tmp_path / "tiny-blip")
    common = ["run", "--retriever", "cocoft", "--retriever-model", str(model_dir),
              "--benchmark", str(synthetic.dialogue_file), "--search-space", str(synthetic.search_space_file),
              "--image-root", str(synthetic.image_root), "--rounds", "3", "--device", "cpu", "--quiet",
              "--batch-size", "4"]
    runner = CliRunner()
    result = runner.invoke(main, [*common, "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Hits@10" in result.output

    lines = (tmp_path / "run" / "ranks.jsonl").read_text().splitlines()
    stored = {json.loads(line)["dialogue_id"]: json.loads(line)["ranks"] for line in lines}
    assert stored == reference_ranks(model_dir, synthetic, rounds=3)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    expected = compute_metrics([stored[key] for key in sorted(stored, key=int)])
    assert {name: metrics[name] for name in expected} == expected

    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["components"]["identities"]["retriever"]["encoder"]["weights"]
    assert manifest["identity"]["benchmark_files"]["dialogues"].split()[-1] == sha256_file(synthetic.dialogue_file)

    again = runner.invoke(main, [*common, "--out", str(tmp_path / "run")], catch_exceptions=False)
    assert again.exit_code == 0 and "0 evaluated now, 6 reused" in again.output

    index_entries = list((isolated_cache / "embeddings").iterdir())
    other = runner.invoke(main, [*common, "--out", str(tmp_path / "other")], catch_exceptions=False)
    assert other.exit_code == 0
    assert list((isolated_cache / "embeddings").iterdir()) == index_entries
    assert (tmp_path / "other" / "ranks.jsonl").read_text().splitlines() == lines


def test_demo_runs_offline_and_reports_known_oracle_metrics(tmp_path):
    from harness.demo import run_demo

    report_command = main.get_command(click.Context(main), "report")
    results = run_demo(tmp_path / "demo", progress=False, report_command=report_command)
    assert results["oracle"]["Hits@10"] == [0.0] * 4 + [100.0] * 7
    assert len(results) == 5
    for label, metrics in results.items():
        assert metrics["dialogues"] == 12 and len(metrics["Hits@10"]) == 11, label
    dar = next(metrics for label, metrics in results.items() if label.startswith("dar"))
    assert len(dar["Degradation"]) == 11
    live = json.loads((tmp_path / "demo" / "runs" / "live" / "ranks.jsonl").read_text().splitlines()[0])
    assert len(live["dialog"]) == 11
    # Into the same folder the demo resumes (every run reused); determinism from scratch is checked on a smaller
    # live run in tests/simulators/test_live_end_to_end.py.
    assert run_demo(tmp_path / "demo", progress=False, report_command=report_command) == results
    report = tmp_path / "demo" / "report"
    assert (report / "report.html").is_file() and (report / "results.csv").is_file()
    # The live and the DAR run each keep their full trace, and the explorer shows it.
    def first_trace(run: str) -> list[dict]:
        return json.loads((tmp_path / "demo" / "runs" / run / "trace.jsonl").read_text().splitlines()[0])["rounds"]

    live_trace, dar_trace = first_trace("live"), first_trace("dar")
    assert [entry["round"] for entry in live_trace] == list(range(11)) == [entry["round"] for entry in dar_trace]
    assert all({"raw", "text", "rules"} <= set(entry["question"]) and "raw" in entry["answer"]
               for entry in live_trace[1:])
    assert all(len(entry["top"]) == 10 for entry in live_trace)
    assert all(entry["retriever"]["caption"] and len(entry["retriever"]["image_keys"]) == 1 for entry in dar_trace)
    explorer = tmp_path / "demo" / "explorer"
    assert len(list((explorer / "dialogues").iterdir())) == 12
    page = (explorer / "dialogues" / "0.html").read_text(encoding="utf-8")
    assert live_trace[1]["question"]["text"] in page and "generated images" in page
    assert 'href="../explorer/index.html"' in (report / "report.html").read_text(encoding="utf-8")
