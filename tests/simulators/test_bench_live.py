"""``harness bench live`` on the tiny models: it runs, reports dialogues/s and rounds/s for both runs, and both runs
make every model call; the ``random:`` full-size sources have the published sizes (counted on the meta device) and
are written, loaded and reused through the same path (checked at a shrunken width)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from harness.cli import main
from simulators import full_size
from simulators.bench import NoReuseCache, bench_benchmark, run_loop
from simulators.hf_bots import build_blip2_answerer, build_flan_questioner


def test_bench_live_command() -> None:
    threads = torch.get_num_threads()
    result = CliRunner().invoke(main, ["bench", "live", "--dialogues", "4", "--rounds", "2", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert torch.get_num_threads() == threads  # the command's one-thread setting does not leak
    assert "torch threads 1:" in result.output
    rates = [float(rate) for rate in re.findall(r"([\d.]+) dialogues/s", result.output)]
    round_rates = [float(rate) for rate in re.findall(r"([\d.]+) rounds/s", result.output)]
    assert len(rates) == len(round_rates) == 2 and all(rate > 0 for rate in rates)
    assert round_rates == pytest.approx([2 * rate for rate in rates], rel=0.01, abs=0.01)  # 2 rounds a dialogue
    assert result.output.count("8 questions + 8 answers generated, 0 cache hits") == 2
    assert re.search(r"speed-up from batching: [\d.]+x", result.output)
    assert "identical dialogues batched vs one at a time: 4/4" in result.output  # greedy: batching changes nothing


def test_bench_live_rejects_empty_runs() -> None:
    result = CliRunner().invoke(main, ["bench", "live", "--dialogues", "0"])
    assert result.exit_code != 0 and "at least 1" in result.output


def test_bench_benchmark_has_unique_captions_and_cycles_images(tmp_path: Path) -> None:
    benchmark = bench_benchmark(tmp_path, 250)  # more dialogues than the synthetic fixture has images
    assert len(benchmark) == 250 and len({dialogue.caption for dialogue in benchmark.dialogues}) == 250
    assert all(benchmark.search_space.contains(dialogue.target) for dialogue in benchmark.dialogues)
    assert all(benchmark.search_space.resolve(dialogue.target).is_file() for dialogue in benchmark.dialogues[:3])


def test_run_loop_grows_every_dialogue(tmp_path: Path, tiny_flan_t5: Path, tiny_blip2: Path, bot_context) -> None:
    benchmark = bench_benchmark(tmp_path / "benchmark", 3)
    questioner = build_flan_questioner(str(tiny_flan_t5), max_new_tokens=4)
    answerer = build_blip2_answerer(str(tiny_blip2), max_new_tokens=3)
    questioner.prepare(benchmark, bot_context)
    answerer.prepare(benchmark, bot_context)
    timing = run_loop(questioner, answerer, benchmark, rounds=2, group_size=3)
    assert [len(turns) for turns in timing.dialogues] == [3, 3, 3]
    assert timing.questioner_calls == 6 and timing.answerer_calls + timing.cache_hits == 6
    assert timing.seconds > 0 and timing.dialogues_per_second > 0


def test_no_reuse_cache_generates_every_time(tmp_path: Path) -> None:
    cache = NoReuseCache(tmp_path)
    calls: list[list[int]] = []

    def compute(missing: list[int]) -> list[str]:
        calls.append(missing)
        return [f"out {index}" for index in missing]

    assert cache.get_or_compute(["a", "b", "a"], compute) == ["out 0", "out 1", "out 0"]
    assert cache.get_or_compute(["a"], compute) == ["out 0"]
    assert calls == [[0, 1], [0]] and cache.hits == 0 and cache.misses == 3
    assert not any(tmp_path.rglob("*.json"))


def _checkpoint_parameters(model: torch.nn.Module) -> int:
    """Parameters as the published checkpoint stores them: T5's embedding once (encoder and decoder alias it) and
    the output projection apart (this transformers release ties it to the embedding in memory)."""
    return sum(parameter.numel() for name, parameter in model.named_parameters(remove_duplicate=False)
               if not name.endswith("embed_tokens.weight"))


def test_random_full_size_architectures_have_the_published_sizes() -> None:
    from transformers import Blip2ForConditionalGeneration, T5ForConditionalGeneration

    with torch.device("meta"):  # shapes only: no memory is allocated
        flan = T5ForConditionalGeneration(full_size.flan_t5_xl_config())
        blip2 = Blip2ForConditionalGeneration(full_size.blip2_flan_t5_xl_config())
    assert 2.84e9 < _checkpoint_parameters(flan) < 2.86e9  # Flan-T5-XL: 2.85B
    assert 3.93e9 < _checkpoint_parameters(blip2) < 3.95e9  # BLIP-2 FLAN-T5-XL: 3.94B
    assert blip2.config.num_query_tokens == 32 and blip2.config.image_token_index == full_size.TOKENIZER_SIZE


def test_bench_live_writes_loads_and_reuses_random_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The published layout at a tiny width, so that the write -> from_pretrained -> generate path runs in seconds.
    small = {"d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 4}
    monkeypatch.setattr(full_size, "FLAN_T5_XL", {**full_size.FLAN_T5_XL, **small})
    monkeypatch.setattr(full_size, "BLIP2_VISION", {**full_size.BLIP2_VISION, "hidden_size": 32,
                                                    "intermediate_size": 64, "num_hidden_layers": 2,
                                                    "num_attention_heads": 4})
    monkeypatch.setattr(full_size, "BLIP2_QFORMER", {**full_size.BLIP2_QFORMER, "hidden_size": 32,
                                                     "intermediate_size": 64, "num_hidden_layers": 2,
                                                     "num_attention_heads": 4, "encoder_hidden_size": 32})
    args = ["bench", "live", "--questioner-model", full_size.RANDOM_FLAN_T5_XL, "--answerer-model",
            full_size.RANDOM_BLIP2_FLAN_T5_XL, "--dialogues", "2", "--rounds", "1", "--threads", "1",
            "--dtype", "bf16", "--work-dir", str(tmp_path)]
    first = CliRunner().invoke(main, args)
    assert first.exit_code == 0, first.output
    assert first.output.count("the published architecture, random weights) to") == 2
    assert "random:flan-t5-xl (the published architecture, random weights)" in first.output
    assert len(re.findall(r"[\d.]+ rounds/s", first.output)) == 2
    assert {path.name for path in tmp_path.iterdir()} == {"flan-t5-xl", "blip2-flan-t5-xl"}
    again = CliRunner().invoke(main, args)
    assert again.exit_code == 0 and "to " + str(tmp_path) not in again.output  # written once, then reused


def test_bench_live_rejects_a_random_model_of_the_other_role() -> None:
    result = CliRunner().invoke(main, ["bench", "live", "--questioner-model", full_size.RANDOM_BLIP2_FLAN_T5_XL])
    assert result.exit_code != 0 and "the random model of --questioner-model is random:flan-t5-xl" in result.output
