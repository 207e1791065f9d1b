"""`harness data caption`: a tiny BLIP-2 captions a synthetic search space into a file the plugir questioner reads,
with a sidecar manifest; a second run is served from the cache; a failed image writes nothing and says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from benchmarks.captions import caption_search_space
from benchmarks.chatir import read_search_space
from harness.cli import main
from harness.errors import HarnessError
from harness.fixtures.synthetic_benchmark import write_synthetic_benchmark
from harness.hashing import sha256_file
from harness.protocols import Generated, RunContext, TurnFailure
from harness.sidecar import sidecar_path as manifest_path
from simulators.plugir.captions import read_candidate_captions


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    return write_synthetic_benchmark(tmp_path_factory.mktemp("bench"), dialogues=3, distractors=4, rounds=1)


def caption(synthetic, tiny_blip2: Path, out: Path, cache: Path, *extra: str):
    return CliRunner().invoke(main, [
        "data", "caption", "--search-space", str(synthetic.search_space_file), "--image-root",
        str(synthetic.image_root), "--captioner", "blip2", "--captioner-model", str(tiny_blip2), "--captioner-arg",
        "on_invalid=keep", "--out", str(out), "--device", "cpu", "--cache-dir", str(cache), "--batch-size", "3",
        "--quiet", *extra], catch_exceptions=False)


def test_captions_align_with_the_search_space_and_a_second_run_comes_from_the_cache(synthetic, tiny_blip2, tmp_path):
    out = tmp_path / "captions.json"
    result = caption(synthetic, tiny_blip2, out, tmp_path / "cache")
    assert result.exit_code == 0, result.output
    space = read_search_space(synthetic.search_space_file, synthetic.image_root)
    written = json.loads(out.read_text())
    assert [entry["img"] for entry in written] == list(space.paths)
    assert all(isinstance(entry["caption"], list) and len(entry["caption"]) == 1 for entry in written)
    assert len(read_candidate_captions(out, space).first) == len(space)  # what plugir reads
    manifest = json.loads(manifest_path(out).read_text())
    assert manifest["search_space"] == {"file": str(synthetic.search_space_file),
                                        "sha256": sha256_file(synthetic.search_space_file), "images": len(space)}
    assert manifest["output_sha256"] == sha256_file(out)
    assert manifest["captioner"]["generator"]["backend"] == "hf-blip2"
    first = out.read_bytes()
    again = caption(synthetic, tiny_blip2, tmp_path / "again.json", tmp_path / "cache")
    assert again.exit_code == 0 and f"{len(space)} from the cache" in again.output
    assert (tmp_path / "again.json").read_bytes() == first


class Flaky:
    """Fails the images whose file name is in ``failing``."""

    def __init__(self, failing: set[str]) -> None:
        self.failing = failing

    def identity(self):
        return {"role": "captioner", "name": "flaky"}

    def prepare(self, context):
        return None

    def usage(self):
        return {}

    def caption(self, paths):
        return [TurnFailure("HTTP 503: busy") if path.name in self.failing else Generated(f"image {path.stem}")
                for path in paths]


def test_an_image_that_cannot_be_captioned_writes_nothing_and_says_why(synthetic, tmp_path):
    space = read_search_space(synthetic.search_space_file, synthetic.image_root)
    context = RunContext(device="cpu", cache_dir=tmp_path / "cache", progress=False)
    failing = Path(space.paths[2]).name
    out = tmp_path / "captions.json"
    with pytest.raises(HarnessError, match=f"1 of the {len(space)} images could not be captioned .*{failing}: HTTP 503"):
        caption_search_space(space, synthetic.search_space_file, Flaky({failing}), out, context, batch_size=2)
    assert not out.exists() and not manifest_path(out).exists()
    summary = caption_search_space(space, synthetic.search_space_file, Flaky(set()), out, context, batch_size=2)
    assert summary.images == len(space) and out.exists()


def test_images_missing_under_the_root_are_refused(synthetic, tmp_path):
    space = read_search_space(synthetic.search_space_file, tmp_path)
    with pytest.raises(HarnessError, match="are not under the image root"):
        caption_search_space(space, synthetic.search_space_file, Flaky(set()), tmp_path / "c.json",
                             RunContext(device="cpu", cache_dir=tmp_path, progress=False))


def test_a_search_space_is_needed(tmp_path):
    result = CliRunner().invoke(main, ["data", "caption", "--image-root", str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "--search-space" in result.output


def test_a_benchmark_names_the_search_space_to_caption(synthetic, tiny_blip2, tmp_path):
    out = tmp_path / "captions.json"
    result = CliRunner().invoke(main, [
        "data", "caption", "--benchmark", str(synthetic.dialogue_file), "--search-space",
        str(synthetic.search_space_file), "--image-root", str(synthetic.image_root), "--captioner-model",
        str(tiny_blip2), "--captioner-arg", "on_invalid=keep", "--out", str(out), "--device", "cpu", "--cache-dir",
        str(tmp_path / "cache"), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())) == 7
    named = CliRunner().invoke(main, ["data", "caption", "--benchmark", "visdial-val", "--image-root",
                                      str(tmp_path), "--out", str(out)])
    assert named.exit_code == 2 and "needs --data-dir" in named.output
