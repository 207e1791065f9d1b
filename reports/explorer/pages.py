"""The explorer's HTML: ``index.html`` (every dialogue, each system's rank at every round as a sparkline, sortable
and filterable) and one page per selected dialogue (target, caption, every round's turns with the raw output on
hover, S_t, generated images, gate, ranks, and the best images of the selected round beside the target).

Plain HTML and CSS with a little vanilla JavaScript (``assets/``), no network and no build step: the folder opens
from disk. Every text comes from a run directory and is escaped, and any API key in the environment is scrubbed.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from harness.turns import split_turn
from harness.types import RECONSTRUCTION
from reports.explorer.data import DialogueView, ExplorerData, SystemTurns
from reports.explorer.thumbnails import TARGET_SIZE, Thumbnails

PAGES = "dialogues"  # the folder of the dialogue pages
HITS_AT = 10  # where the index calls two systems' last-round results different ("systems disagree")
SPARK_WIDTH, SPARK_HEIGHT = 110, 26


def page_name(dialogue_id: str) -> str:
    """The file of a dialogue's page: its id where that is a safe file name, else a readable stem plus a digest."""
    if re.fullmatch(r"[a-z0-9_.-]{1,80}", dialogue_id) and not dialogue_id.startswith("."):
        return f"{dialogue_id}.html"
    stem = re.sub(r"[^\w.-]", "_", dialogue_id)[:40].lstrip(".")
    return f"{stem}-{hashlib.sha256(dialogue_id.encode()).hexdigest()[:10]}.html"


def index_page(data: ExplorerData, thumbnails: Thumbnails, report_link: str | None) -> str:
    pages = set(data.pages)
    flags = sorted({flag for view in data.dialogues for flag in view.flags})
    size = len(data.benchmark.search_space)
    header = "".join(f'<th data-sort="final-{number}" data-type="number">{escape(name)}<br>rank by round</th>'
                     f'<th data-sort="change-{number}" data-type="number">{escape(name)}<br>change</th>'
                     for number, name in enumerate(data.systems))
    rows = "\n".join(_index_row(view, data.systems, view.dialogue_id in pages, thumbnails, size)
                     for view in data.dialogues)
    system_options = "".join(f'<option value="{number}">{escape(name)}</option>'
                             for number, name in enumerate(data.systems))
    flag_options = "".join(f'<option value="{escape(flag)}">{escape(flag)}</option>' for flag in flags)
    report = f' · <a href="{escape(report_link)}">the report</a>' if report_link else ""
    body = f"""<header>
<h1>Dialogue explorer: {escape(data.benchmark.name)}</h1>
<p>{len(data.dialogues):,} dialogues, {len(data.systems)} systems ({escape(', '.join(data.systems))}), search space
of {size:,} images; {len(pages):,} dialogues have a page (click the id){report}. Ranks are 0-based: 0 is the best.</p>
</header>
<section id="filters">
<label>find <input id="search" type="search" placeholder="dialogue id or caption"></label>
<label>flag <select id="flag"><option value="">any</option>{flag_options}</select></label>
<label>final rank of <select id="system">{system_options}</select> from <input id="min-rank" type="number" min="0"
 size="6"> to <input id="max-rank" type="number" min="0" size="6">, its change (rank at round 0 minus the last) at
 least <input id="min-change" type="number" size="6"></label>
<label><input id="disagree" type="checkbox"> systems disagree (Hits@{HITS_AT} at the last round)</label>
<label><input id="with-page" type="checkbox"> with a page</label>
<span id="shown-count" aria-live="polite"></span>
</section>
<table id="dialogues">
<thead><tr><th data-sort="id" data-type="natural">dialogue</th><th>target</th><th data-sort="caption">caption</th>
{header}<th data-sort="flags">flags</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>"""
    return _document(f"Dialogue explorer: {data.benchmark.name}", body, "index")


def _index_row(view: DialogueView, systems: Sequence[str], has_page: bool, thumbnails: Thumbnails,
               size: int) -> str:
    cells, attributes, hits = [], {}, set()
    for number, name in enumerate(systems):
        turns = view.systems[name]
        final = turns.ranks[-1] if turns.ranks else None
        change = turns.ranks[0] - turns.ranks[-1] if len(turns.ranks) > 1 else 0
        attributes[f"final-{number}"] = "" if final is None or turns.status != "ok" else str(final)
        attributes[f"change-{number}"] = str(change)
        hits.add("failed" if turns.status != "ok" else final is not None and final < HITS_AT)
        status = "" if turns.status == "ok" else f' <span class="failed" title="{escape(turns.error or "")}">failed</span>'
        shown = "-" if final is None else f"{final:,}"
        cells.append(f"<td>{sparkline(turns.ranks, size)} {shown}{status}</td><td>{change:+,}</td>")
    dialogue_id = escape(view.dialogue_id)
    link = f'<a href="{PAGES}/{escape(page_name(view.dialogue_id))}">{dialogue_id}</a>' if has_page else dialogue_id
    target = _image(thumbnails.search_image(_position(thumbnails, view.target), 64), view.target, 64, "") \
        if has_page else ""
    flags = "".join(f'<span class="flag">{escape(flag)}</span>' for flag in view.flags)
    data = {"id": view.dialogue_id, "caption": view.caption.lower(), "flags": "|".join(view.flags),
            "disagree": "1" if len(hits) > 1 else "0", "page": "1" if has_page else "0", **attributes}
    data_attributes = " ".join(f'data-{key}="{escape(value)}"' for key, value in data.items())
    return (f"<tr {data_attributes}><td>{link}</td><td>{target}</td><td>{escape(view.caption)}</td>"
            f"{''.join(cells)}<td>{flags}</td></tr>")


def sparkline(ranks: Sequence[int], size: int) -> str:
    """Ranks by round as an inline SVG line, on a log scale (rank 0 at the top), with the ranks as its tooltip."""
    if not ranks:
        return '<svg class="spark" width="0" height="0"></svg>'
    top = math.log1p(max(size - 1, 1))
    step = (SPARK_WIDTH - 4) / max(len(ranks) - 1, 1)
    points = " ".join(f"{2 + index * step:.1f},{2 + (SPARK_HEIGHT - 4) * math.log1p(rank) / top:.1f}"
                      for index, rank in enumerate(ranks))
    title = ", ".join(f"r{index}: {rank}" for index, rank in enumerate(ranks))
    return (f'<svg class="spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" role="img" aria-label="{title}">'
            f'<title>{title}</title><polyline points="{points}"/></svg>')


def dialogue_page(view: DialogueView, data: ExplorerData, thumbnails: Thumbnails, neighbours: tuple[str | None,
                  str | None], keep_top: Mapping[str, int]) -> str:
    target = thumbnails.search_image(_position(thumbnails, view.target), TARGET_SIZE)
    previous, following = neighbours
    navigation = " · ".join(part for part in (
        '<a href="index.html">all dialogues</a>',
        f'<a href="{PAGES}/{escape(page_name(previous))}">previous</a>' if previous else "",
        f'<a href="{PAGES}/{escape(page_name(following))}">next</a>' if following else "") if part)
    systems = "\n".join(_system_section(number, name, view.systems[name], view, thumbnails, keep_top.get(name, 0))
                        for number, name in enumerate(data.systems))
    flags = "".join(f'<span class="flag">{escape(flag)}</span>' for flag in view.flags)
    body = f"""<nav>{navigation}</nav>
<h1>Dialogue {escape(view.dialogue_id)}</h1>
<div class="target">{_image(target, view.target, TARGET_SIZE, "target")}
<div><p><b>target</b> {escape(view.target)}</p><p><b>caption</b> {escape(view.caption)}</p><p>{flags}</p>
<p class="hint">Click a round to see each system's best images at that round (raw model output on hover).</p></div>
</div>
{systems}"""
    return _document(f"Dialogue {view.dialogue_id}", body, "dialogue")


def _system_section(number: int, name: str, turns: SystemTurns, view: DialogueView, thumbnails: Thumbnails,
                    keep_top: int) -> str:
    status = "" if turns.status == "ok" else f'<p class="failed">failed: {escape(turns.error or "")}</p>'
    rows, panels = [], []
    last = len(turns.ranks) - 1
    for round_ in range(max(len(turns.ranks), len(turns.trace))):
        entry = turns.round_trace(round_)
        if "failure" in entry:
            rows.append(f'<tr class="failure"><td>{round_}</td><td colspan="6">{escape(str(entry["failure"]))}'
                        f'{_rejected(entry.get("question", {}))}{_rejected(entry.get("answer", {}))}</td></tr>')
            continue
        question, answer = _turn_cells(turns, entry, round_)
        retriever = entry.get("retriever", {})
        caption = _generated_cell(retriever.get("reformulation"), retriever.get("caption"))
        if "caption" not in retriever and isinstance(entry.get("notes", {}).get(RECONSTRUCTION), Mapping):
            caption = f'<i>c:</i> {_generated_cell(entry["notes"][RECONSTRUCTION], None)}'  # PlugIR's reconstruction
        images = "".join(_image(thumbnails.generated_image(name, str(key)), f"prompt: {prompt}", 64, "")
                         for key, prompt in zip(retriever.get("image_keys", ()), retriever.get("image_prompts", ())))
        gate = f"{retriever['gate']:.3f}" if isinstance(retriever.get("gate"), float) else ""
        rank = f"{turns.ranks[round_]:,}" if round_ < len(turns.ranks) else "-"
        selected = " selected" if round_ == last else ""
        rows.append(f'<tr class="round{selected}" data-round="{round_}"><td>{round_}</td><td>{question}</td>'
                    f"<td>{answer}</td><td>{caption}</td><td>{images}</td><td>{gate}</td><td>{rank}</td></tr>")
        panels.append(_top_panel(round_, entry.get("top"), turns, view, thumbnails, keep_top, round_ != last))
    return f"""<section class="system" data-system="{number}">
<h2>{escape(name)}</h2>{status}
<table class="rounds"><thead><tr><th>round</th><th>question</th><th>answer</th><th>S<sub>t</sub></th>
<th>generated images</th><th>gate</th><th>rank</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<div class="tops">{''.join(panels)}</div>
</section>"""


def _turn_cells(turns: SystemTurns, entry: Mapping[str, Any], round_: int) -> tuple[str, str]:
    if round_ == 0:
        return '<i>caption</i>', escape(turns.turns[0]) if turns.turns else ""
    if "question" in entry or "answer" in entry:
        question = entry.get("question")
        return (_generated_cell(question, None) + _question_details(question), _generated_cell(entry.get("answer"), None))
    if round_ < len(turns.turns):
        question, answer = split_turn(turns.turns[round_])
        return escape(question), escape(answer)
    return "", ""


def _generated_cell(output: Mapping[str, Any] | None, text: Any) -> str:
    """A generated text with its raw output and rules as the tooltip, and any rejected draws below it."""
    if not isinstance(output, Mapping):
        return escape(str(text)) if text is not None else ""
    shown = str(output.get("text", text if text is not None else ""))
    raw, rules = output.get("raw"), output.get("rules") or []
    tooltip = f"raw: {raw}" + (f"\nrules: {', '.join(map(str, rules))}" if rules else "") if raw is not None else ""
    marker = ' class="cleaned"' if raw is not None and raw != shown else ""
    return f'<span{marker} title="{escape(tooltip)}">{escape(shown)}</span>{_rejected(output)}'


def _question_details(output: Any) -> str:
    """Why a retrieval-aware questioner (PlugIR) asked its question: the candidates it was shown, every draw with
    its filter answer, the KL of each candidate question and the one kept."""
    details = output.get("details") if isinstance(output, Mapping) else None
    if not isinstance(details, Mapping):
        return ""
    shown = "".join(f'<li value="{number}">{escape(str(entry.get("caption")))} <i>(rank {entry.get("rank")}, entropy '
                    f'{float(entry.get("entropy", 0.0)):.4f}, cluster {entry.get("cluster")})</i></li>'
                    for number, entry in enumerate(details.get("candidates", ())))
    draws = "".join(f'<li>{escape(str(draw.get("kind")))} {draw.get("candidate")}: '
                    f'{escape(str(draw.get("text", draw.get("question", ""))))}'
                    + (f' <i>(filter: {escape(str(draw.get("filter_answer")))}; '
                       f'{"answerable" if draw.get("answerable") else "kept"})</i>' if "filter_answer" in draw else "")
                    + "</li>" for draw in details.get("draws", ()))
    kl = details.get("kl")
    chosen = details.get("chosen")
    questions = "".join(f'<li{" class=chosen" if index == chosen else ""}>{escape(str(question))}'
                        + (f" <i>(KL {kl[index]:.6f})</i>" if isinstance(kl, list) and index < len(kl) else "")
                        + "</li>" for index, question in enumerate(details.get("questions", ())))
    return (f'<details class="why"><summary>why this question (N = {details.get("candidate_count")})</summary>'
            f'<p>c: {escape(str(details.get("reconstruction", "")))}</p>'
            f'<p>candidates shown</p><ol start="0">{shown}</ol><p>draws</p><ul>{draws}</ul>'
            f'<p>questions</p><ol start="0">{questions}</ol></details>')


def _rejected(output: Any) -> str:
    draws = output.get("rejected") if isinstance(output, Mapping) else None
    if not draws:
        return ""
    items = "".join(f'<li>draw {escape(str(draw.get("attempt")))}: {escape(str(draw.get("raw")))} '
                    f'<i>({escape(str(draw.get("reason")))})</i></li>' for draw in draws)
    return f'<ul class="rejected" title="invalid draws">{items}</ul>'


def _top_panel(round_: int, top: Any, turns: SystemTurns, view: DialogueView, thumbnails: Thumbnails,
               keep_top: int, hidden: bool) -> str:
    rank = turns.ranks[round_] if round_ < len(turns.ranks) else None
    heading = f"round {round_}: target at rank {rank:,}" if rank is not None else f"round {round_}: not ranked"
    target_position = _position(thumbnails, view.target)
    if not isinstance(top, list):
        images = ('<p class="hint">no best images in the trace (this retriever computes no scores, or the run kept '
                  'none: --keep-top)</p>') if keep_top == 0 or top is None else ""
    else:
        images = "".join(
            _image(thumbnails.search_image(int(position)), thumbnails.search_space.paths[int(position)], 96,
                   f"#{place}", "hit" if int(position) == target_position else "")
            for place, position in enumerate(top))
    target = _image(thumbnails.search_image(target_position), view.target, 96, "target", "hit beside")
    hidden_attribute = " hidden" if hidden else ""
    return (f'<div class="top" data-round="{round_}"{hidden_attribute}><p>{escape(heading)}</p>'
            f'<div class="strip">{target}{images}</div></div>')


def _position(thumbnails: Thumbnails, path: str) -> int:
    return thumbnails.search_space.position(path)


def _image(source: str | None, alt: str, size: int, caption: str, css: str = "") -> str:
    label = f"<figcaption>{escape(caption)}</figcaption>" if caption else ""
    klass = f' class="{css}"' if css else ""
    if source is None:
        return (f'<figure{klass}><div class="missing" style="width:{size}px;height:{size}px" '
                f'title="{escape(alt)}">no image</div>{label}</figure>')
    return (f'<figure{klass}><img src="{escape(source)}" alt="{escape(alt)}" title="{escape(alt)}" '
            f'loading="lazy" style="max-width:{size}px;max-height:{size}px">{label}</figure>')


def _document(title: str, body: str, kind: str) -> str:
    """A page whose every link is relative to the explorer's folder (a dialogue page says so with ``<base>``)."""
    base = '<base href="../">' if kind == "dialogue" else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>{base}
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="assets/explorer.css"></head>
<body class="{kind}">
{body}
<script src="assets/explorer.js"></script>
</body></html>
"""
