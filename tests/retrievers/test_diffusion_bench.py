"""`harness bench dar` on a tiny pipeline, and the SD3-Medium architecture behind `random:sd3-medium`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from retrievers.dar_bench import SD3_MEDIUM_TRANSFORMER, bench_prompts, dar


def test_bench_prompts_are_distinct() -> None:
    prompts = bench_prompts(600)
    assert len(set(prompts)) == 600


@pytest.mark.slow
def test_bench_runs_on_a_tiny_pipeline(tmp_path: Path) -> None:
    result = CliRunner().invoke(dar, [
        "--images", "3", "--batch-size", "2", "--steps", "1", "--size", "32", "--pair-dialogues", "2",
        "--work-dir", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    assert "naive loop, one prompt per call" in result.output and "speed-up over the naive loop" in result.output
    pair = re.findall(r"(first|second) run.*?(\d+) images generated, +(\d+) image cache hits, +(\d+) LLM calls",
                      result.output)
    (_, first_drawn, _, first_calls), (_, *second) = pair
    assert int(first_drawn) > 0 and int(first_calls) > 0
    assert [int(number) for number in second] == [0, 2 * 2 * 3, 0]  # dialogues x rounds x K, all from the cache
    assert (tmp_path / "tiny-sd3" / "model_index.json").is_file()
    assert (tmp_path / "run-pair" / "run-1" / "ranks.jsonl").is_file()


def test_sd3_medium_architecture_matches_the_planning_figures() -> None:
    # PROTOCOL section 8: about 500 TFLOP per 1024 px image at 28 steps with classifier-free guidance.
    from diffusers import SD3Transformer2DModel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        transformer = SD3Transformer2DModel(**SD3_MEDIUM_TRANSFORMER)
        assert 2.0e9 < sum(parameter.numel() for parameter in transformer.parameters()) < 2.1e9
        counter = FlopCounterMode(display=False)
        with counter:
            transformer(  # one guided step: the prompt and the empty prompt, CLIP (77) + T5 (256) tokens
                hidden_states=torch.empty(2, 16, 128, 128), encoder_hidden_states=torch.empty(2, 333, 4096),
                pooled_projections=torch.empty(2, 2048), timestep=torch.empty(2),
            )
    assert 480 < 28 * counter.get_total_flops() / 1e12 < 520
