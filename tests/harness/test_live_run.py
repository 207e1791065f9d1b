"""Live runs through the CLI with the shipped scripted bots: generated dialogues recorded, failures kept with their
reasons, resume, and the checks that fail a run before any model loads."""

import json

from click.testing import CliRunner

from harness.cli import main


def run_cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def live_args(small_benchmark, out, *extra: str) -> list[str]:
    return ["run", "--retriever", "random", "--questioner", "scripted", "--answerer", "scripted",
            "--benchmark", str(small_benchmark.dialogues), "--search-space", str(small_benchmark.search_space),
            "--out", str(out), "--quiet", "--device", "cpu", "--rounds", "4", *extra]


def records(out) -> list[dict]:
    return [json.loads(line) for line in (out / "ranks.jsonl").read_text().splitlines()]


def test_live_run_records_generated_dialogues(small_benchmark, tmp_path):
    code, output = run_cli(*live_args(small_benchmark, tmp_path / "run"))
    assert code == 0, output
    first = records(tmp_path / "run")[0]
    assert first["dialog"][0] == "caption 0"
    assert first["dialog"][1].startswith("what color is it? ") and first["dialog"][2].startswith("is it indoors? ")
    assert len(first["dialog"]) == 5 and len(first["ranks"]) == 5
    assert all(turn.split("? ")[1] in ("yes", "no") for turn in first["dialog"][1:])
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["identity"]["questioner"] == "scripted"
    assert manifest["components"]["identities"]["source"]["name"] == "live"


def test_a_failed_answer_fails_its_dialogue_only_and_is_retried_on_resume(small_benchmark, tmp_path):
    args = live_args(small_benchmark, tmp_path / "run", "--answerer-arg", 'fail_on=["2:3"]')
    code, output = run_cli(*args)
    assert code == 0 and "1 dialogues FAILED" in output
    assert "1 x round 3: answerer: scripted failure at round 3" in output
    by_id = {record["dialogue_id"]: record for record in records(tmp_path / "run")}
    assert by_id["2"]["status"] == "failed"
    assert by_id["2"]["error"] == "round 3: answerer: scripted failure at round 3"
    assert len(by_id["2"]["ranks"]) == 3 and len(by_id["2"]["dialog"]) == 3
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["dialogues"] == small_benchmark.count - 1 and metrics["failed_dialogues"] == ["2"]
    code, output = run_cli(*args)
    assert code == 0 and "1 evaluated now" in output


def test_live_run_needs_both_bots(small_benchmark, tmp_path):
    args = live_args(small_benchmark, tmp_path / "run")
    args.remove("--answerer")
    args.remove("scripted")
    code, output = run_cli(*args[:4] + args[4:])
    assert code == 2 and "needs both --questioner and --answerer" in output


def test_base_url_without_an_openai_bot_is_refused(small_benchmark, tmp_path):
    code, output = run_cli(*live_args(small_benchmark, tmp_path / "run", "--base-url", "http://127.0.0.1:1/v1"))
    assert code == 2 and "--base-url" in output


def test_replay_questioner_reasks_the_recorded_questions(small_benchmark, tmp_path):
    args = live_args(small_benchmark, tmp_path / "run")
    args[args.index("--questioner") + 1] = "replay"
    assert run_cli(*args)[0] == 0
    first = records(tmp_path / "run")[0]
    assert [turn.split("? ")[0] + "?" for turn in first["dialog"][1:]] == ["q1?", "q2?", "q3?", "q4?"]


def test_export_refuses_a_replay_run_and_failed_dialogues(small_benchmark, tmp_path):
    replay = ["run", "--retriever", "random", "--benchmark", str(small_benchmark.dialogues), "--search-space",
              str(small_benchmark.search_space), "--out", str(tmp_path / "replay"), "--quiet", "--device", "cpu"]
    assert run_cli(*replay)[0] == 0
    code, output = run_cli("dialogues", "export", str(tmp_path / "replay"), "--out", str(tmp_path / "x.json"))
    assert code != 0 and "only live runs" in output
    assert run_cli(*live_args(small_benchmark, tmp_path / "live", "--answerer-arg", 'fail_on=["1:2"]'))[0] == 0
    code, output = run_cli("dialogues", "export", str(tmp_path / "live"), "--out", str(tmp_path / "x.json"))
    assert code != 0 and "1 failed dialogues" in output
    code, output = run_cli("dialogues", "export", str(tmp_path / "live"), "--out", str(tmp_path / "x.json"),
                           "--skip-failed")
    assert code == 0 and "left out 1 failed dialogues: 1" in output
    exported = json.loads((tmp_path / "x.json").read_text())
    assert len(exported) == small_benchmark.count - 1 and exported[0]["dialog"][0] == "caption 0"


def test_failure_reasons_are_listed_and_a_run_where_all_failed_exits_non_zero(small_benchmark, tmp_path):
    fail_all = json.dumps([f"{index}:1" for index in range(small_benchmark.count)])
    code, output = run_cli(*live_args(small_benchmark, tmp_path / "run", "--answerer-arg", f"fail_on={fail_all}"))
    assert code == 2
    assert f"{small_benchmark.count} dialogues FAILED" in output
    assert f"{small_benchmark.count} x round 1: answerer: scripted failure at round 1" in output
    assert f"every one of the {small_benchmark.count} dialogues failed" in output


def test_a_recorded_turn_without_a_question_fails_its_dialogue_with_the_turn(small_benchmark, tmp_path):
    records_in = json.loads(small_benchmark.dialogues.read_text())
    records_in[1]["dialog"][2] = "no question here"
    records_in[2]["dialog"][1] = " ? yes"  # an empty question, as a questioner that leaked "A: yes" leaves it
    small_benchmark.dialogues.write_text(json.dumps(records_in))
    args = live_args(small_benchmark, tmp_path / "run")
    args[args.index("--questioner") + 1] = "replay"
    code, output = run_cli(*args)
    assert code == 0 and "2 dialogues FAILED" in output
    unasked = ("round 2: questioner: dialogue 1, round 2: the recorded turn 'no question here' has no '?', so it "
               "holds no question to replay (a recorded turn cannot be redrawn)")
    empty = ("round 1: questioner: dialogue 2, round 1: the recorded turn ' ? yes' asks an empty question, so it "
             "holds no question to replay (a recorded turn cannot be redrawn)")
    assert f"1 x {unasked}" in output and f"1 x {empty}" in output
    by_id = {record["dialogue_id"]: record for record in records(tmp_path / "run")}
    assert by_id["1"]["status"] == "failed" and by_id["1"]["error"] == unasked
    assert by_id["2"]["error"] == empty
    assert by_id["1"]["dialog"] == ["caption 1", by_id["1"]["dialog"][1]]  # no "? answer" turn was stored
    assert all(turn.split("? ")[0] for record in by_id.values() for turn in record["dialog"][1:])


def test_an_image_answerer_without_image_root_fails_before_loading_anything(small_benchmark, tmp_path):
    # The model path does not exist: loading it would fail with another error, so this one comes first.
    args = live_args(small_benchmark, tmp_path / "run", "--answerer-model", str(tmp_path / "no-such-model"))
    args[args.index("--answerer") + 1] = "blip2"
    code, output = run_cli(*args)
    assert code == 2
    assert "the blip2 answerer looks at each dialogue's target image, so this run needs --image-root" in output
    assert not (tmp_path / "run").exists()


def test_dialogue_stats_measure_files_live_runs_and_replayed_runs_alike(small_benchmark, tmp_path):
    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0
    replay = ["run", "--retriever", "random", "--benchmark", str(small_benchmark.dialogues), "--search-space",
              str(small_benchmark.search_space), "--out", str(tmp_path / "replay"), "--quiet", "--device", "cpu"]
    assert run_cli(*replay)[0] == 0
    code, output = run_cli("dialogues", "stats", str(small_benchmark.dialogues), str(tmp_path / "live"),
                           str(tmp_path / "replay"), "--json")
    assert code == 0, output
    measured = json.loads(output)
    assert measured["replay"] == measured["dialogues.json"]  # a replayed run measures the file it replayed
    assert measured["dialogues.json"]["rounds"] == small_benchmark.count * 10
    assert measured["live"]["rounds"] == small_benchmark.count * 4  # --rounds 4 of generated turns
    generated = [json.loads(line)["dialog"] for line in (tmp_path / "live" / "ranks.jsonl").read_text().splitlines()]
    asked = [turn.split("?")[0] for dialog in generated for turn in dialog[1:]]
    assert measured["live"]["mean_question_words"] == sum(len((q + "?").split()) for q in asked) / len(asked)
    code, output = run_cli("dialogues", "stats", str(small_benchmark.dialogues), str(tmp_path / "live"))
    assert code == 0 and output.startswith("measure") and "already_answered: rounds whose question" in output
    small_benchmark.dialogues.unlink()
    code, output = run_cli("dialogues", "stats", str(tmp_path / "replay"))
    assert code != 0 and "pass the dialogue file itself" in output


def test_metrics_hold_the_dialogue_quality_of_what_was_evaluated(small_benchmark, tmp_path):
    from harness.dialogue_quality import quality_by_round, quality_measures
    from harness.types import Dialogue

    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0
    generated = [Dialogue(record["dialogue_id"], record["target"], tuple(record["dialog"]))
                 for record in records(tmp_path / "live")]
    quality = json.loads((tmp_path / "live" / "metrics.json").read_text())["DialogueQuality"]
    assert quality["overall"] == {**json.loads(json.dumps(quality_measures(generated))), "turns_redrawn": 0,
                                  "turns_kept_invalid": 0, "turns_failed_invalid": 0, "failed_dialogues": 0}
    assert quality["per_round"]["rounds"] == [None] + [small_benchmark.count] * 4  # --rounds 4
    assert quality["per_round"]["mean_question_words"][1:] == quality_by_round(generated)["mean_question_words"]
    code, output = run_cli("metrics", str(tmp_path / "live"))
    assert code == 0 and "dialogue quality" in output and f"(of the {small_benchmark.count} generated dialogues)" in output

    replay = ["run", "--retriever", "random", "--benchmark", str(small_benchmark.dialogues), "--search-space",
              str(small_benchmark.search_space), "--out", str(tmp_path / "replay"), "--quiet", "--device", "cpu",
              "--rounds", "3"]
    assert run_cli(*replay)[0] == 0
    replayed = json.loads((tmp_path / "replay" / "metrics.json").read_text())["DialogueQuality"]
    assert replayed["overall"]["rounds"] == small_benchmark.count * 3  # the recorded rounds the run evaluated


def test_a_live_run_traces_every_bot_turn_raw_and_cleaned(small_benchmark, tmp_path):
    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0
    lines = [json.loads(line) for line in (tmp_path / "live" / "trace.jsonl").read_text().splitlines()]
    assert [line["dialogue_id"] for line in lines] == [record["dialogue_id"] for record in records(tmp_path / "live")]
    first, dialog = lines[0], records(tmp_path / "live")[0]["dialog"]
    assert [entry["round"] for entry in first["rounds"]] == [0, 1, 2, 3, 4]
    for entry, turn in zip(first["rounds"][1:], dialog[1:]):
        question, answer = entry["question"], entry["answer"]
        assert turn == f"{question['text']} {answer['text']}"
        assert {"raw", "text", "rules"} <= set(question) or set(question) == {"text"}
    manifest = json.loads((tmp_path / "live" / "manifest.json").read_text())
    assert manifest["identity"]["keep_top"] == 10
    code, output = run_cli(*live_args(small_benchmark, tmp_path / "live", "--keep-top", "3"))
    assert code != 0 and "keep_top" in output  # another --keep-top is another run


def test_an_orphan_trace_line_is_dropped_when_the_run_is_opened_again(small_benchmark, tmp_path):
    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0
    trace = tmp_path / "live" / "trace.jsonl"
    kept = trace.read_text()
    orphan = json.dumps({"dialogue_id": "0", "record_sha256": "0" * 64, "rounds": []})
    trace.write_text(kept + orphan + "\n" + '{"dialogue_id": "torn')  # a crash before its record, and a torn line
    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0
    assert trace.read_text() == kept


SMOLLM_PLUGIN = '''
from harness.registry import register
from harness.turn_validity import InvalidPolicy
from simulators.common.bots import LLMQuestioner
from simulators.common.prompts import load_template


class SmolLMScript:
    """What SmolLM2-135M-Instruct wrote as hf-chat questioner: greedy, it continued the prompt's Q/A pattern
    ("A: no") for dialogue 0, refused for dialogue 1, made a statement for dialogue 2; sampled, it asks."""

    def __init__(self, temperature=0.0):
        self.temperature = temperature

    @property
    def sampling(self):
        return self.temperature > 0

    def identity(self):
        return {"backend": "smollm-script", "temperature": self.temperature}

    def load(self, context):
        return None

    def sampled(self, temperature):
        return SmolLMScript(temperature)

    def generate(self, prompts, seeds):
        greedy = {"0": "A: no", "1": "I'm sorry for any confusion, but as a chatbot, I cannot see the image.",
                  "2": "The camera is on a tripod."}
        outputs = []
        for prompt in prompts:
            dialogue = prompt.split("caption ")[1].split()[0].strip(".")
            if self.sampling:
                outputs.append("I'm sorry, as a chatbot I cannot." if dialogue == "1" else "is it red?")
            else:
                outputs.append(greedy.get(dialogue, "is it big?"))
        return outputs


@register("questioner", "smollm-script")
def build(on_invalid="resample"):
    return LLMQuestioner(SmolLMScript(), load_template("questioner"), policy=InvalidPolicy(on_invalid))
'''


def test_invalid_questions_are_redrawn_or_fail_and_the_run_shows_every_draw(small_benchmark, tmp_path):
    plugin = tmp_path / "smollm_script.py"
    plugin.write_text(SMOLLM_PLUGIN)
    args = live_args(small_benchmark, tmp_path / "live", "--plugin", str(plugin), "--rounds", "1")
    args[args.index("--questioner") + 1] = "smollm-script"
    code, output = run_cli(*args)
    assert code == 0 and "1 dialogues FAILED" in output
    assert "1 x round 1: questioner: questioner output invalid in 3 draws (no question mark)" in output
    by_id = {record["dialogue_id"]: record for record in records(tmp_path / "live")}
    assert by_id["0"]["dialog"][1].startswith("is it red? ") and by_id["2"]["dialog"][1].startswith("is it red? ")
    traces = {line["dialogue_id"]: line["rounds"] for line in
              map(json.loads, (tmp_path / "live" / "trace.jsonl").read_text().splitlines())}
    assert traces["0"][1]["question"]["rejected"] == [{"attempt": 0, "raw": "A: no", "text": "", "reason": "empty"}]
    assert [draw["attempt"] for draw in traces["1"][1]["question"]["rejected"]] == [0, 1, 2]
    assert "failure" in traces["1"][1]
    quality = json.loads((tmp_path / "live" / "metrics.json").read_text())["DialogueQuality"]
    assert {name: quality["overall"][name] for name in ("turns_redrawn", "turns_failed_invalid", "failed_dialogues",
                                                        "empty_questions")} == {
        "turns_redrawn": 2, "turns_failed_invalid": 1, "failed_dialogues": 1, "empty_questions": 0}
    code, shown = run_cli("metrics", str(tmp_path / "live"))
    assert code == 0 and "turns_redrawn" in shown and "turns_failed_invalid" in shown

    kept = live_args(small_benchmark, tmp_path / "kept", "--plugin", str(plugin), "--rounds", "1",
                     "--questioner-arg", "on_invalid=keep")
    kept[kept.index("--questioner") + 1] = "smollm-script"
    assert run_cli(*kept)[0] == 0
    by_id = {record["dialogue_id"]: record for record in records(tmp_path / "kept")}
    assert by_id["2"]["dialog"][1].startswith("The camera is on a tripod? ")
    assert by_id["0"]["dialog"][1].startswith("? ")  # an empty question, kept as asked for, and counted
    quality = json.loads((tmp_path / "kept" / "metrics.json").read_text())["DialogueQuality"]["overall"]
    assert quality["turns_kept_invalid"] == 3 and quality["empty_questions"] == 1 and quality["non_questions"] == 0


def test_a_secret_in_the_environment_reaches_neither_the_records_nor_the_trace(small_benchmark, tmp_path,
                                                                                monkeypatch):
    monkeypatch.setenv("SCRIPTED_SERVER_API_KEY", "it indoors")  # as if a server echoed its key into a question
    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0
    for name in ("ranks.jsonl", "trace.jsonl"):
        text = (tmp_path / "live" / name).read_text()
        assert "it indoors" not in text and "is <redacted>?" in text
    assert run_cli(*live_args(small_benchmark, tmp_path / "live"))[0] == 0  # resumes: every trace still pairs
    assert len((tmp_path / "live" / "trace.jsonl").read_text().splitlines()) == small_benchmark.count


def test_a_questioner_asking_one_question_every_round_is_counted(small_benchmark, tmp_path):
    # What SmolLM2-135M-Instruct asked with another prompt, every round.
    args = live_args(small_benchmark, tmp_path / "live", "--questioner-arg", 'questions=["What is in the photo?"]')
    assert run_cli(*args)[0] == 0
    overall = json.loads((tmp_path / "live" / "metrics.json").read_text())["DialogueQuality"]["overall"]
    assert overall["repeated_questions"] == small_benchmark.count * 3  # rounds 2..4 repeat round 1
    assert overall["dialogues_repeating"] == small_benchmark.count
    assert overall["distinct_questions_per_dialogue"] == 1
