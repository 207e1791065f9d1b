"""PlugIR's candidate-aware questioner over any retriever that scores texts, any LLM back-end and any benchmark.

    harness run --retriever cocoft-large --questioner plugir --questioner-model gpt-4o-mini --answerer blip2 \\
                --answerer-arg see_reconstruction=true --candidate-captions captions.json ...
    harness run --retriever dar ... --questioner plugir --questioner-model DIR --questioner-arg llm=hf-seq2seq ...

Each round r = 1..10, for every running dialogue (each step one batched call across dialogues):
  1. c, the caption reconstructed from the dialogue so far, is the previous round's "reconstruction" note (the
     caption at round 1). Notes are written once the round's answer is known (``write_notes``): the LLM rewrites
     caption + turns into one caption (temperature 0, one worked example); one equal to the previous c is
     paraphrased (temperature 0.7, top_p 0.8). Without ``reconstruct`` c is the caption and turns joined by ", ".
  2. Candidates: the top N = int(T - (r - 1) T / 10) images for c (scored by the retriever's base text encoder;
     ``candidates_from=retriever``: the retriever's own current ranking, fused for DAR and ADaFuSE); each
     candidate's caption entropy; our seeded spherical k-means of their image embeddings (``clusters``); from each
     cluster the lowest-entropy member's caption, shown numbered from 0 (``simulators.plugir.candidates``).
  3. q_n candidate questions (temperature 0.5, at most 32 new tokens, cut after the first "?"), each prompted with
     the candidates, the caption and the dialogue, followed by the questions to avoid.
  4. Filtering (of the candidate-aware questions, as in PlugIR's code: ``referring=false`` draws q_n plain questions
     unfiltered): the LLM answers each question from c alone (temperature 0, at most 10 tokens); one whose answer
     lacks "uncertain" is answerable: it joins the avoid list and is drawn again, at most 3 draws. As PlugIR's code
     does, the avoid list carries across the round's q_n candidates, and once it holds exactly 3 questions after a
     candidate's draws, that candidate is replaced by a plain (candidate-free) question, itself replaced by the fixed
     fallback question when answerable too.
  5. Selection: the question with the smallest KL(p_prev || p_q) over the candidates ranked k..N-1, p the softmax of
     the similarities to c and to c + ", " + question (the first on ties; without ``select``, the first question).
A question still invalid after its redraws (``on_invalid=resample``) is left out, recorded in the trace; a dialogue
fails only when every candidate is, when the retriever ranks nothing for c, or when an LLM call fails for good.
The question goes to the answerer, which with ``see_reconstruction`` reads c too. With ``query=reconstruction``
(the default) the retriever is queried with each round's c, as PlugIR evaluates; ``query=dialogue`` queries the
dialogue. Sampling seeds come from (run seed, dialogue, round, step, draw), k-means seeds from (dialogue, round).
Every step's prompt is a role-tagged template (``harness.messages``); every call goes through the response cache.
The trace of each question (``details``) holds c, N, the candidates shown, every draw with its filter answer, the
KL values and the choice.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from harness.errors import ConfigError
from harness.hashing import derive_seed, stable_hash
from harness.messages import ChatTemplate, Conversation, load_chat_template
from harness.protocols import Generated, RetrievalView, RunContext, TurnFailure
from harness.ranking import best_images
from harness.turn_validity import DEFAULT_POLICY, InvalidPolicy, InvalidTurn
from harness.turns import split_turn
from harness.types import RECONSTRUCTION, Benchmark, DialogueState
from harness.vector_cache import VectorCache
from retrievers.dar.cleaning import CLEANING_VERSION, caption_problem, clean_caption
from simulators.common.cleaning import clean_question, question_problem
from simulators.plugir.candidates import candidate_count, caption_entropies, kl_divergences, representatives, smallest
from simulators.plugir.captions import CandidateCaptions, read_candidate_captions
from simulators.plugir.kmeans import spherical_kmeans
from simulators.plugir.steps import LLMSteps, StepDecoding

QUERIES = ("reconstruction", "dialogue")
CANDIDATE_SOURCES = ("reconstruction", "retriever")
FALLBACK_QUESTION = "what is the other object in the image?"
FILTER_DRAWS = 3
UNCERTAIN = "uncertain"
TEMPLATE_FIELDS = {
    "reconstruct": ("caption", "dialogue"),
    "paraphrase": ("text",),
    "question": ("candidates", "caption", "dialogue"),
    "plain_question": ("caption", "dialogue"),
    "filter": ("context", "question"),
}
DEFAULT_TEMPLATES = {step: f"plugir_{step}" for step in TEMPLATE_FIELDS}


@dataclass(frozen=True)
class PlugIRSettings:
    """PlugIR's switches and sizes (its published run: all on, q_n 5, T 500, k 10, 10 clusters)."""

    reconstruct: bool = True
    referring: bool = True
    filtering: bool = True
    select: bool = True
    questions: int = 5  # q_n
    top: int = 500  # T
    skip: int = 10  # k
    clusters: int = 10
    query: str = "reconstruction"
    candidates_from: str = "reconstruction"
    fallback_question: str = FALLBACK_QUESTION

    def __post_init__(self) -> None:
        for name, value in (("questions", self.questions), ("top", self.top), ("clusters", self.clusters)):
            if int(value) != value or value < 1:
                raise ConfigError(f"plugir: {name} must be a whole number of at least 1, got {value!r}")
        if int(self.skip) != self.skip or not 0 <= self.skip < self.top:
            raise ConfigError(f"plugir: skip (k) must be a whole number from 0 to top - 1 ({self.top - 1}), got "
                              f"{self.skip!r}")
        if self.query not in QUERIES:
            raise ConfigError(f"plugir: query must be one of {', '.join(QUERIES)}, got {self.query!r}")
        if self.candidates_from not in CANDIDATE_SOURCES:
            raise ConfigError(f"plugir: candidates_from must be one of {', '.join(CANDIDATE_SOURCES)}, got "
                              f"{self.candidates_from!r}")
        if not self.fallback_question.strip().endswith("?"):
            raise ConfigError(f"plugir: the fallback question must be a question, got {self.fallback_question!r}")


class PlugIRQuestioner:
    role = "questioner"
    needs_retrieval = True
    writes_notes = (RECONSTRUCTION,)

    def __init__(self, steps: LLMSteps, templates: Mapping[str, ChatTemplate], settings: PlugIRSettings,
                 candidate_captions: Path | None, clean: bool = True, policy: InvalidPolicy = DEFAULT_POLICY) -> None:
        if settings.referring and candidate_captions is None:
            raise ConfigError("the plugir questioner shows the LLM captions of the retrieval candidates: give "
                              "--candidate-captions FILE (write one with `harness data caption`), or pass "
                              "--questioner-arg referring=false")
        self.steps = steps
        self.templates = dict(templates)
        self.settings = settings
        self.candidate_captions = candidate_captions
        self.clean = clean
        self.policy = policy
        self._captions: CandidateCaptions | None = None
        self._view: RetrievalView | None = None
        self._vectors: VectorCache | None = None
        self._caption_vectors: dict[int, torch.Tensor] = {}
        self._seed = 0
        self.seconds: Counter[str] = Counter()  # per step, for `harness bench plugir`

    @property
    def query_note(self) -> str | None:
        return RECONSTRUCTION if self.settings.query == "reconstruction" else None

    def identity(self) -> Mapping[str, Any]:
        return {
            "role": "questioner",
            "name": "plugir",
            "settings": asdict(self.settings),
            "llm": self.steps.identity(),
            "templates": {step: template.identity() for step, template in self.templates.items()},
            "candidate_captions": self._captions.identity() if self._captions else None,
            "clean": {"questions": True, "reconstructions": CLEANING_VERSION} if self.clean else None,
            "invalid": self.policy.identity(),
            "kmeans": "spherical k-means++ seeded by (run seed, dialogue, round), float64",
        }

    def prepare(self, benchmark: Benchmark, context: RunContext) -> None:
        self.steps.load(context)
        self._seed = context.seed
        self._vectors = VectorCache(context.cache_dir)
        if self.candidate_captions is not None:
            self._captions = read_candidate_captions(self.candidate_captions, benchmark.search_space)
            self._caption_vectors = {}

    def bind_retrieval(self, view: RetrievalView) -> None:
        self._view = view
        self._caption_vectors = {}

    def __getstate__(self) -> dict[str, Any]:
        # A pickled questioner (to a Ray worker) binds that worker's own view; the driver's would carry its models.
        return {**self.__dict__, "_view": None, "_caption_vectors": {}}

    def usage(self) -> dict[str, int]:
        return {**self.steps.usage(), **{f"llm_calls_{step}": calls for step, calls in self.steps.calls.items()}}

    # -- step 1: the reconstruction, written once the round's turn is known ------------------------------------

    def write_notes(self, states: Sequence[DialogueState]) -> list[Mapping[str, str] | TurnFailure]:
        """c of each state's round (states hold the round's new turn)."""
        if not self.settings.reconstruct:
            return [{RECONSTRUCTION: ", ".join(state.query_turns)} for state in states]
        started = time.perf_counter()
        prompts = [self.templates["reconstruct"].render(caption=state.caption, dialogue=", ".join(state.query_turns[1:]))
                   for state in states]
        rewritten = self.steps.valid("reconstruct", prompts, [0] * len(states), self.policy,
                                     lambda item, raw: self._clean_caption(raw, states[item]), caption_problem,
                                     lambda item, attempt: self._seed_of(states[item], "reconstruct", "redraw", attempt))
        same = [item for item, output in enumerate(rewritten) if isinstance(output, Generated)
                and output.text == _reconstruction(states[item], states[item].round - 1)]
        if same:
            paraphrased = self.steps.valid(
                "paraphrase", [self.templates["paraphrase"].render(text=rewritten[item]) for item in same],
                [self._seed_of(states[item], "paraphrase") for item in same], self.policy,
                lambda position, raw: self._clean_caption(raw, states[same[position]]), caption_problem,
                lambda position, attempt: self._seed_of(states[same[position]], "paraphrase", "redraw", attempt))
            for item, output in zip(same, paraphrased):
                original = rewritten[item]
                assert isinstance(original, Generated)
                rewritten[item] = output if isinstance(output, TurnFailure) else Generated(
                    output.text, output.raw, (*output.rules, "paraphrased"), output.rejected,
                    {"reconstructed": original.trace()})
        self.seconds["reconstruct"] += time.perf_counter() - started
        return [output if isinstance(output, TurnFailure) else {RECONSTRUCTION: output} for output in rewritten]

    # -- steps 2 to 5: the question -----------------------------------------------------------------------------

    def ask(self, states: Sequence[DialogueState]) -> list[Generated | TurnFailure]:
        view = self._bound()
        settings = self.settings
        captions = [_reconstruction(state, state.round) for state in states]
        counts = [min(candidate_count(state.round + 1, settings.top), view.size) for state in states]
        details: list[dict[str, Any]] = [{"reconstruction": c, "candidate_count": n} for c, n in zip(captions, counts)]
        rankings = self._candidate_rankings(states, captions, counts)
        failed: dict[int, TurnFailure] = {
            item: TurnFailure("plugir: the retriever ranks nothing for c (every image scores the same, or not finite), "
                              "so there are no candidates")
            for item, ranking in enumerate(rankings) if not ranking and (settings.referring or settings.select)}
        if settings.referring:
            shown = self._shown_candidates(states, rankings)
            for detail, candidates in zip(details, shown):
                detail["candidates"] = candidates
        else:
            shown = [[] for _ in states]
        drawn = self._questions(states, captions, shown, details, failed)
        chosen = self._selection(captions, rankings, drawn, failed, details)
        results: list[Generated | TurnFailure] = []
        for item, detail in enumerate(details):
            if item in failed:
                results.append(TurnFailure(failed[item].reason, {**failed[item].trace, "details": detail}))
                continue
            question = drawn[item][chosen[item]]
            detail["questions"] = [str(candidate) for candidate in drawn[item]]
            detail["chosen"] = chosen[item]
            results.append(Generated(question.text, question.raw, question.rules, question.rejected, detail))
        return results

    def _candidate_rankings(self, states: Sequence[DialogueState], captions: list[str],
                            counts: list[int]) -> list[tuple[int, ...]]:
        """Each state's N candidates, best first (none when neither candidates nor selection are on)."""
        settings, view = self.settings, self._bound()
        if not (settings.referring or settings.select):
            return [() for _ in states]
        started = time.perf_counter()
        depth = max(counts)
        if settings.candidates_from == "retriever":
            ranked = view.current_ranking(states, depth)
        else:
            ranked = list(best_images(view.text_scores(captions), depth))
        self.seconds["text_scoring"] += time.perf_counter() - started
        return [tuple(best[:count]) for best, count in zip(ranked, counts)]

    def _shown_candidates(self, states: Sequence[DialogueState],
                          rankings: list[tuple[int, ...]]) -> list[list[dict[str, Any]]]:
        assert self._captions is not None
        view = self._bound()
        started = time.perf_counter()
        vectors = self._caption_embeddings(sorted({position for ranking in rankings for position in ranking}))
        self.seconds["text_scoring"] += time.perf_counter() - started
        shown = []
        for state, ranking in zip(states, rankings):
            if not ranking:
                shown.append([])
                continue
            started = time.perf_counter()
            images = view.image_embeddings(ranking).to("cpu", torch.float32)
            entropies = caption_entropies(torch.stack([vectors[position] for position in ranking]), images)
            self.seconds["entropy"] += time.perf_counter() - started
            started = time.perf_counter()
            labels = spherical_kmeans(images, self.settings.clusters, self._seed_of(state, "kmeans"))
            self.seconds["kmeans"] += time.perf_counter() - started
            shown.append([{"rank": index, "position": ranking[index], "caption": self._captions.first[ranking[index]],
                           "entropy": float(entropies[index]), "cluster": int(labels[index])}
                          for index in representatives(labels, entropies)])
        return shown

    def _questions(self, states: Sequence[DialogueState], captions: list[str], shown: list[list[dict[str, Any]]],
                   details: list[dict[str, Any]], failed: dict[int, TurnFailure]) -> list[list[Generated]]:
        """Up to q_n questions per state (steps 3 and 4); ``failed`` gains the states whose LLM calls failed, or
        whose every candidate question stayed invalid."""
        settings = self.settings
        drawn: list[list[Generated]] = [[] for _ in states]
        avoid: list[list[str]] = [[] for _ in states]  # answerable questions, carried across the candidates
        for detail in details:
            detail["draws"] = []

        def live(items: Sequence[int]) -> list[int]:
            return [item for item in items if item not in failed]

        for candidate in range(settings.questions):
            items = live(range(len(states)))
            if not settings.referring:
                latest = self._draw(states, items, "plain_question", candidate, 0, captions, shown, drawn, avoid,
                                    failed, details)
            elif not settings.filtering:
                latest = self._draw(states, items, "question", candidate, 0, captions, shown, drawn, avoid, failed,
                                    details)
            else:
                latest, pending = {}, items
                for attempt in range(FILTER_DRAWS):
                    questions = self._draw(states, pending, "question", candidate, attempt, captions, shown, drawn,
                                           avoid, failed, details)
                    latest.update(questions)
                    answerable = self._answerable(states, captions, questions, candidate, attempt, failed, details)
                    for item in answerable:
                        avoid[item].append(questions[item].text)
                    pending = answerable
                    if not pending:
                        break
                replaced = [item for item in live(items) if len(avoid[item]) == FILTER_DRAWS]
                if replaced:
                    plain = self._draw(states, replaced, "plain_question", candidate, 0, captions, shown, drawn,
                                       avoid, failed, details)
                    latest.update(plain)
                    for item in self._answerable(states, captions, plain, candidate, 0, failed, details):
                        latest[item] = Generated(settings.fallback_question, plain[item].raw,
                                                 (*plain[item].rules, "fallback-question"))
                        details[item]["draws"].append({"candidate": candidate, "kind": "fallback",
                                                       "question": settings.fallback_question})
            for item in live(items):
                if item in latest:  # else every draw of this candidate stayed invalid: it is left out
                    drawn[item].append(latest[item])
        for item in live(range(len(states))):
            if not drawn[item]:
                failed[item] = TurnFailure(f"plugir: all {settings.questions} candidate questions stayed invalid "
                                           "after their redraws (their draws are in the trace)")
        return drawn

    def _draw(self, states: Sequence[DialogueState], items: Sequence[int], step: str, candidate: int, attempt: int,
              captions: list[str], shown: list[list[dict[str, Any]]], drawn: list[list[Generated]],
              avoid: list[list[str]], failed: dict[int, TurnFailure],
              details: list[dict[str, Any]]) -> dict[int, Generated]:
        """One question for each of ``items``; a back-end failure or an invalid draw fails its state."""
        items = [item for item in items if item not in failed]
        if not items:
            return {}
        started = time.perf_counter()
        prompts = [self._question_prompt(step, states[item], shown[item],
                                         [str(question) for question in drawn[item]] + avoid[item]
                                         if step == "question" else [])
                   for item in items]
        outputs = self.steps.valid(
            step, prompts, [self._seed_of(states[item], step, candidate, attempt) for item in items], self.policy,
            lambda position, raw: clean_question(raw) if self.clean else _cut_question(raw), question_problem,
            lambda position, redraw: self._seed_of(states[items[position]], step, candidate, attempt, "redraw", redraw))
        self.seconds["llm_questions"] += time.perf_counter() - started
        questions = {}
        for item, output in zip(items, outputs):
            if isinstance(output, InvalidTurn) and self.policy.on_invalid == "resample":
                # Still invalid after its redraws: this candidate is left out, the other candidates stand.
                details[item]["draws"].append({"candidate": candidate, "attempt": attempt, "kind": _kind(step),
                                               "left_out": output.reason, **output.trace})
                continue
            if isinstance(output, TurnFailure):
                failed[item] = TurnFailure(f"plugir {step.replace('_', ' ')}: {output.reason}", output.trace)
                continue
            questions[item] = output
            details[item]["draws"].append({"candidate": candidate, "attempt": attempt, "kind": _kind(step),
                                           **output.trace()})
        return questions

    def _answerable(self, states: Sequence[DialogueState], captions: list[str], questions: Mapping[int, Generated],
                    candidate: int, attempt: int, failed: dict[int, TurnFailure],
                    details: list[dict[str, Any]]) -> list[int]:
        """The items whose question the LLM answers from c alone (step 4); each answer goes into its last draw."""
        items = list(questions)
        if not items:
            return []
        started = time.perf_counter()
        prompts = [self.templates["filter"].render(context=captions[item], question=questions[item]) for item in items]
        answers = self.steps.draw("filter", prompts, [0] * len(items))
        self.seconds["llm_filter"] += time.perf_counter() - started
        answerable = []
        for item, answer in zip(items, answers):
            if isinstance(answer, TurnFailure):
                failed[item] = TurnFailure(f"plugir filter: {answer.reason}")
                continue
            can = UNCERTAIN not in answer.lower()
            details[item]["draws"][-1].update(filter_answer=answer, answerable=can)
            if can:
                answerable.append(item)
        return answerable

    def _selection(self, captions: list[str], rankings: list[tuple[int, ...]], drawn: list[list[Generated]],
                   failed: Mapping[int, TurnFailure], details: list[dict[str, Any]]) -> list[int]:
        """Step 5: per state, the index of the question kept."""
        chosen = [0] * len(drawn)
        if not self.settings.select:
            return chosen
        items = []
        for item in range(len(drawn)):
            if item in failed:
                continue
            if len(rankings[item]) > self.settings.skip:
                items.append(item)
            else:  # N <= k leaves no candidate to compare over: the first question is kept
                details[item]["kl"] = None
                details[item]["selection"] = (f"skipped: N = {len(rankings[item])} candidates, none ranked past "
                                              f"k = {self.settings.skip}")
        if not items:
            return chosen
        view = self._bound()
        started = time.perf_counter()
        texts = [text for item in items for text in
                 (captions[item], *(f"{captions[item]}, {question}" for question in drawn[item]))]
        embeddings = view.embed_texts(texts).to("cpu", torch.float64)
        offset = 0
        for item in items:
            related = rankings[item][self.settings.skip:]
            images = view.image_embeddings(related).to("cpu", torch.float64)
            scores = embeddings[offset:offset + 1 + len(drawn[item])] @ images.T
            offset += 1 + len(drawn[item])
            divergences = kl_divergences(scores[0], scores[1:])
            chosen[item] = smallest(divergences)
            details[item]["kl"] = [float(value) for value in divergences]
        self.seconds["text_scoring"] += time.perf_counter() - started
        return chosen

    def _question_prompt(self, step: str, state: DialogueState, shown: list[dict[str, Any]],
                         prior: list[str]) -> Conversation:
        lines = []
        for turn in state.query_turns[1:]:
            question, answer = split_turn(turn)
            lines += [f"Question: {question}", f"Answer: {answer}"]
        for question in prior:
            lines += [f"Question: {question}", "Answer:"]
        dialogue = "\n".join(lines)
        if step == "plain_question":
            return self.templates[step].render(caption=state.caption, dialogue=dialogue)
        candidates = "\n".join(f"{number}. {entry['caption']}" for number, entry in enumerate(shown))
        return self.templates[step].render(candidates=candidates, caption=state.caption, dialogue=dialogue)

    def _caption_embeddings(self, positions: Sequence[int]) -> dict[int, torch.Tensor]:
        """Text embeddings of the candidates' captions, kept in memory and in the shared vector cache."""
        assert self._captions is not None and self._vectors is not None
        view = self._bound()
        missing = [position for position in positions if position not in self._caption_vectors]
        if missing:
            identity = view.text_identity()
            texts = [self._captions.first[position] for position in missing]
            keys = [stable_hash({"text_encoder": identity, "caption": text}) for text in texts]
            matrix = self._vectors.get_or_compute(
                keys, lambda indexes: view.embed_texts([texts[i] for i in indexes]).cpu().numpy().astype(np.float32))
            self._caption_vectors.update(zip(missing, torch.from_numpy(np.asarray(matrix, dtype=np.float32))))
        return {position: self._caption_vectors[position] for position in positions}

    def _clean_caption(self, raw: str, state: DialogueState) -> Generated:
        return clean_caption(raw, state.query_turns) if self.clean else Generated(raw.strip(), raw)

    def _seed_of(self, state: DialogueState, *step: object) -> int:
        """31 bits: every back-end accepts them."""
        return derive_seed(self._seed, "questioner", state.dialogue_id, state.round + 1, *step) % 2**31

    def _bound(self) -> RetrievalView:
        if self._view is None:
            raise RuntimeError("the plugir questioner needs the retriever's view (bind_retrieval) before it asks")
        return self._view


def _kind(step: str) -> str:
    return "referring" if step == "question" else "plain"


def _reconstruction(state: DialogueState, round_: int) -> str:
    """c after ``round_``: that round's note, the caption at round 0."""
    if round_ == 0:
        return state.caption
    note = state.note(RECONSTRUCTION, round_)
    if note is None:
        raise ValueError(f"dialogue {state.dialogue_id} has no reconstruction of round {round_}")
    return note


def _cut_question(raw: str) -> Generated:
    """PlugIR's own post-processing (cleaning off): the text up to the first "?", with a "?"."""
    return Generated(raw.split("?")[0].strip() + "?", raw, ("cut-after-question-mark",))


def build_plugir(
    model: str | None = None,
    llm: str = "openai",
    llm_args: Mapping[str, Any] | None = None,
    base_url: str | None = None,
    api_key_env: str | None = None,
    candidate_captions: str | None = None,
    query: str = "reconstruction",
    reconstruct: bool = True,
    referring: bool = True,
    filtering: bool = True,
    select: bool = True,
    questions: int = 5,
    top: int = 500,
    skip: int = 10,
    clusters: int = 10,
    candidates_from: str = "reconstruction",
    fallback_question: str = FALLBACK_QUESTION,
    prompt: str | None = None,
    reconstruct_prompt: str | None = None,
    paraphrase_prompt: str | None = None,
    plain_question_prompt: str | None = None,
    filter_prompt: str | None = None,
    question_temperature: float = 0.5,
    question_max_tokens: int = 32,
    reconstruct_max_tokens: int = 512,
    clean: bool = True,
    on_invalid: str = "resample",
    max_resamples: int = 2,
) -> PlugIRQuestioner:
    """PlugIR's questioner (defaults: its published run, q_n = ``questions`` 5, T = ``top`` 500, k = ``skip`` 10,
    ``clusters`` 10, reconstruction, referring, filtering and selection on) on the text generator ``llm``
    (openai | hf-seq2seq | hf-chat, or any registered one with ``with_decoding``) with ``model`` (default gpt-4o-mini
    for openai; PlugIR used gpt-3.5-turbo) and ``llm_args``. ``candidate_captions``: the search space's captions
    (``harness data caption`` writes them). ``prompt`` replaces the candidate-question template; the other steps'
    templates have their own ``*_prompt`` arguments (packaged names or role-tagged text files)."""
    from harness.registry import REGISTRY

    settings = PlugIRSettings(reconstruct, referring, filtering, select, questions, top, skip, clusters, query,
                              candidates_from, fallback_question)
    arguments = dict(llm_args or {})
    if model is not None:
        arguments["model"] = model
    elif "model" not in arguments:
        arguments["model"] = {"openai": "gpt-4o-mini", "hf-seq2seq": "google/flan-t5-xl",
                              "hf-chat": "Qwen/Qwen2.5-1.5B-Instruct"}.get(llm)
        if arguments["model"] is None:
            del arguments["model"]
    for name, value in (("base_url", base_url), ("api_key_env", api_key_env)):
        if value is not None:
            if llm != "openai":
                raise ConfigError(f"plugir: {name} applies to llm=openai, not llm={llm}")
            arguments[name] = value
    generator, _ = REGISTRY.build("generator", llm, **arguments)
    steps = LLMSteps(generator, {
        "reconstruct": StepDecoding(0.0, reconstruct_max_tokens),
        "paraphrase": StepDecoding(0.7, reconstruct_max_tokens, 0.8),
        "question": StepDecoding(question_temperature, question_max_tokens),
        "plain_question": StepDecoding(question_temperature, question_max_tokens),
        "filter": StepDecoding(0.0, 10),
    }, "plugir questioner")
    given = {"question": prompt, "reconstruct": reconstruct_prompt, "paraphrase": paraphrase_prompt,
             "plain_question": plain_question_prompt, "filter": filter_prompt}
    templates = {step: load_chat_template(given[step] or DEFAULT_TEMPLATES[step], "simulators.plugir", fields)
                 for step, fields in TEMPLATE_FIELDS.items()}
    return PlugIRQuestioner(steps, templates, settings, Path(candidate_captions) if candidate_captions else None,
                            clean, InvalidPolicy(on_invalid, max_resamples))
