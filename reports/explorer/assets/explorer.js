// The dialogue explorer's behaviour: sort and filter the index table; pick a round on a dialogue page.
// Vanilla JavaScript, no network: every value is already in the page's attributes.
"use strict";

function setUpIndex() {
  const table = document.getElementById("dialogues");
  if (!table) return;
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const controls = ["search", "flag", "system", "min-rank", "max-rank", "min-change", "disagree", "with-page"]
    .map((id) => document.getElementById(id));
  const [search, flag, system, minRank, maxRank, minChange, disagree, withPage] = controls;
  const count = document.getElementById("shown-count");

  function filter() {
    const text = search.value.trim().toLowerCase();
    const low = minRank.value === "" ? -Infinity : Number(minRank.value);
    const high = maxRank.value === "" ? Infinity : Number(maxRank.value);
    const leastChange = minChange.value === "" ? -Infinity : Number(minChange.value);
    let shown = 0;
    for (const row of rows) {
      const final = row.getAttribute("data-final-" + system.value);
      const rank = final === "" || final === null ? NaN : Number(final);
      const visible =
        (!text || row.dataset.id.toLowerCase().includes(text) || row.dataset.caption.includes(text)) &&
        (!flag.value || row.dataset.flags.split("|").includes(flag.value)) &&
        ((low === -Infinity && high === Infinity) || (rank >= low && rank <= high)) &&
        Number(row.getAttribute("data-change-" + system.value)) >= leastChange &&
        (!disagree.checked || row.dataset.disagree === "1") &&
        (!withPage.checked || row.dataset.page === "1");
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    count.textContent = shown + " of " + rows.length + " dialogues shown";
  }

  function sortBy(header) {
    const key = header.dataset.sort;
    const numeric = header.dataset.type === "number";
    const descending = header.classList.contains("sorted-up");
    for (const other of table.tHead.querySelectorAll("th")) other.classList.remove("sorted-up", "sorted-down");
    header.classList.add(descending ? "sorted-down" : "sorted-up");
    const value = (row) => row.getAttribute("data-" + key) ?? "";
    rows.sort((a, b) => {
      let order;
      if (numeric) {
        const x = value(a) === "" ? Infinity : Number(value(a));
        const y = value(b) === "" ? Infinity : Number(value(b));
        order = x === y ? 0 : x < y ? -1 : 1;
      } else {
        order = value(a).localeCompare(value(b), undefined, { numeric: header.dataset.type === "natural" });
      }
      return descending ? -order : order;
    });
    for (const row of rows) body.appendChild(row);
  }

  // The filters live in the address's fragment too (index.html#flag=failed&min-change=10), so a view can be shared.
  const wanted = new URLSearchParams(window.location.hash.slice(1));
  for (const control of controls) {
    if (!wanted.has(control.id)) continue;
    if (control.type === "checkbox") control.checked = wanted.get(control.id) === "1";
    else control.value = wanted.get(control.id);
  }

  function remember() {
    const chosen = new URLSearchParams();
    for (const control of controls) {
      if (control.type === "checkbox" ? control.checked : control.value !== "" && control !== system) {
        chosen.set(control.id, control.type === "checkbox" ? "1" : control.value);
      }
    }
    if (chosen.toString()) chosen.set("system", system.value);
    window.location.hash = chosen.toString();
  }

  for (const control of controls) {
    control.addEventListener("input", () => {
      filter();
      remember();
    });
  }
  for (const header of table.tHead.querySelectorAll("th[data-sort]")) {
    header.addEventListener("click", () => sortBy(header));
  }
  filter();
}

function setUpDialogue() {
  const rounds = Array.from(document.querySelectorAll("tr.round"));
  if (!rounds.length) return;

  function select(round) {
    for (const row of rounds) row.classList.toggle("selected", row.dataset.round === round);
    for (const panel of document.querySelectorAll("div.top")) panel.hidden = panel.dataset.round !== round;
  }

  for (const row of rounds) row.addEventListener("click", () => select(row.dataset.round));
}

setUpIndex();
setUpDialogue();
document.body.dataset.ready = "1";  // every script above ran: tests read this from the DOM
