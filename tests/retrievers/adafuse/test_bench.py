"""`harness bench adafuse` with tiny settings: the printed figures' structure (samples/s, parameter counts), not
their timing values."""

import re

import pytest
from click.testing import CliRunner

from harness.cli import main
from retrievers.adafuse.model import AdaFuseConfig

TINY = ["bench", "adafuse", "--steps", "1", "--warmup", "0", "--batch-size", "4", "--device", "cpu"]
RATE = r"[\d,]+(\.\d)? samples/s"


def test_frozen_bench_prints_samples_per_second_and_the_fusion_parameters():
    result = CliRunner().invoke(main, [*TINY, "--dim", "16"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    parameters = AdaFuseConfig.for_embed_dim(16).parameter_count()
    assert re.fullmatch(
        rf"frozen: +{RATE} \(D=16, batch 4, {parameters:,} fusion parameters, cpu, \d+ threads\); one VisDial-train "
        r"epoch \(1,356,157 examples\) ~ [\d.]+ min", result.output.strip()), result.output


@pytest.mark.slow  # a full-size BLIP base with random weights: ~10 s and 3 GB on a CPU
def test_end_to_end_bench_adds_a_full_blip_text_side(tmp_path):
    result = CliRunner().invoke(main, [*TINY, "--dim", "16", "--end-to-end", "--text-tokens", "8", "--cache-dir",
                                       str(tmp_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.strip().splitlines() if not line.startswith("writing random:blip-base")]
    assert len(lines) == 3 and lines[0].startswith("frozen:")
    assert re.fullmatch(rf"end-to-end: {RATE} \(BLIP base text side \+ fusion, random weights, 8 tokens per caption, "
                        r"batch 4, float32, cpu\); one VisDial-train epoch ~ [\d.]+ h", lines[1]), lines[1]
    # The published +5.29% of 256-d ADaFuSE over BLIP base retrieval (PROTOCOL.md section 6).
    assert re.fullmatch(r"11,812,613 fusion parameters, \+5\.29% over the base encoder's 223,452,418; [\d,]+ "
                        r"text-side parameters train too", lines[2].strip()), lines[2]
