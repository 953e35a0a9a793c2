"""The reviewer's contact sheet: one self-contained HTML file (images inlined) with a stratified sample per task,
every frame and mask, instructions with their image indicators highlighted, every quality score (coloured from bad to
good) and provenance. Cards sort by any score (the bar's menu, or #sort=NAME:asc|desc in the address). Reviewers
accept or flag (reject) samples, or flag whole rules, and export the marks as JSON (MARKS_FORMAT) for `datagen filter`
(drops the rejected) and `datagen calibrate` (the judge against the reviewers' verdicts)."""

from __future__ import annotations

import base64
import html
import json
import re

import numpy as np

from datagen import schema
from datagen.imaging import fit_long_side
from datagen.schema import Frame, Sample
from datagen.shards.codec import encode_image

THUMB = 224
# marks.json, as the page's "export marks" writes it:
#   {"dataset": OUT, "marks": [{"key", "task", "operator", "verdict": "accepted"|"rejected", "reason"},
#                              {"rule": {"operator": NAME}, "reason"}]}
# A sample mark without a verdict (written before verdicts existed) is a rejection.
MARKS_FORMAT = "datagen-review-marks/1"
_IND = re.compile(r"(\{image\d?\})")


def _thumb_uri(image: np.ndarray, lossless: bool) -> str:
    image, _ = fit_long_side(image, THUMB)
    ext = "png" if lossless else "jpg"
    data = encode_image(image, ext, 85)
    return f"data:image/{'png' if lossless else 'jpeg'};base64,{base64.b64encode(data).decode()}"


def highlight(text: str) -> str:
    """Escape an instruction and wrap each {image}/{imageN} indicator in <mark>."""
    return "".join(
        f'<mark class="ind">{html.escape(p)}</mark>' if _IND.fullmatch(p) else html.escape(p) for p in _IND.split(text)
    )


def _frame(frame: Frame, label: str) -> str:
    lossless = frame.role == schema.ROLE_CONDITION
    parts = [
        f'<figure><img src="{_thumb_uri(frame.image, lossless)}" alt="{html.escape(label)}">'
        f"<figcaption>{html.escape(label)}</figcaption></figure>"
    ]
    if frame.mask is not None:
        parts.append(
            f'<figure><img src="{_thumb_uri(frame.mask, True)}" alt="mask of {html.escape(label)}">'
            f"<figcaption>mask ({html.escape(label)})</figcaption></figure>"
        )
    return "".join(parts)


def score_colour(name: str, value: float) -> str:
    """Red (bad) to green (good) along the score's range, as its spec says which end is good."""
    spec = schema.SCORES.get(name)
    if spec is None or spec.high <= spec.low or spec.better not in ("high", "low"):
        return "#e4e4e4"  # neither end is better in itself (how much an edit changed, the mask's area)
    t = min(1.0, max(0.0, (value - spec.low) / (spec.high - spec.low)))
    if spec.better == "low":
        t = 1.0 - t
    return f"hsl({round(120 * t)},70%,80%)"


def _scores(sample: Sample) -> str:
    chips = []
    for name, value in sorted(sample.provenance.scores.items()):
        spec = schema.SCORES.get(name)
        tip = html.escape(f"{spec.what}" + (f" ({spec.better} is better)" if spec.better else "") if spec else name)
        chips.append(
            f'<span class="score" data-name="{html.escape(name)}" data-value="{value:.6g}" title="{tip}" '
            f'style="background:{score_colour(name, value)}">{html.escape(name)} <b>{value:.3g}</b></span>'
        )
    failed = sample.threshold_failures
    if failed:
        chips.append(f'<span class="failed">fails {html.escape(", ".join(failed))}</span>')
    return f'<div class="scores">{"".join(chips) or "<i>no scores</i>"}</div>'


def _card(sample: Sample) -> str:
    prov = sample.provenance
    rows = []
    n_before = 0
    for ti, turn in enumerate(sample.turns):
        frames = []
        for ii, f in enumerate(turn.inputs):
            frames.append(
                _frame(
                    f, f"input {n_before + ii + 1}" + (" ({image})" if ti == len(sample.turns) - 1 and ii == 0 else "")
                )
            )
        frames.append(_frame(turn.target, "target"))
        n_before += len(turn.inputs)
        rows.append(
            f'<div class="turn"><div class="meta">turn {ti} · {html.escape(turn.task)} · {turn.direction} · '
            f"{html.escape(turn.instruction_method)}</div>"
            f'<p class="instr">{highlight(turn.instruction)}</p><div class="frames">{"".join(frames)}</div></div>'
        )
    params = html.escape(json.dumps(prov.params, sort_keys=True)[:600])
    sources = "<br>".join(html.escape(s) for s in prov.sources)
    judge = (
        f"<tr><th>judge</th><td>{html.escape(json.dumps(sample.judge.to_json(), sort_keys=True)[:600])}</td></tr>"
        if sample.judge is not None
        else ""
    )
    data = html.escape(
        json.dumps({"key": sample.key, "task": sample.task, "operator": prov.operator, "scores": prov.scores})
    )
    return (
        f'<section class="card" data-sample="{data}"><header><code>{sample.key}</code> · {sample.kind.upper()} · '
        f"{html.escape(sample.task)}</header>{_scores(sample)}{''.join(rows)}"
        f"<details><summary>provenance</summary><table><tr><th>operator</th><td>{html.escape(prov.operator)} "
        f"v{html.escape(prov.operator_version)}</td></tr><tr><th>params</th><td><code>{params}</code></td></tr>"
        f"<tr><th>scores</th><td>{html.escape(json.dumps(prov.scores))}</td></tr>{judge}"
        f"<tr><th>sources</th><td>{sources}</td></tr></table></details>"
        f'<footer><label><input type="checkbox" class="accept"> accept</label> '
        f'<label><input type="checkbox" class="flag"> flag sample (reject)</label> '
        f'<label><input type="checkbox" class="flag-rule"> flag everything {html.escape(prov.operator)} made</label> '
        f'<input class="reason" placeholder="reason"></footer></section>'
    )


STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;background:#fafafa;color:#222}
h2{border-bottom:2px solid #ccc;padding-bottom:.2em;margin-top:2em}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8em;margin:.8em 0}
.card header{font-weight:600;margin-bottom:.4em}.meta{color:#666;font-size:.85em}
.frames{display:flex;flex-wrap:wrap;gap:.5em}figure{margin:0}figure img{max-height:180px;border:1px solid #ccc}
figcaption{font-size:.8em;color:#555;text-align:center}.instr{font-size:1.05em}
mark.ind{background:#ffe08a;border-radius:3px;padding:0 .15em;font-family:monospace}
.turn{border-left:3px solid #eee;padding-left:.6em;margin:.4em 0}footer{margin-top:.5em}
#bar{position:sticky;top:0;background:#222;color:#fff;padding:.5em 1em;z-index:2}
#bar button,#bar select{margin-left:1em}
.scores{display:flex;flex-wrap:wrap;gap:.3em;margin:.2em 0 .4em}.score{border-radius:3px;padding:0
.35em;font-size:.85em}
.failed{background:#b00;color:#fff;border-radius:3px;padding:0 .35em;font-size:.85em}
"""

SCRIPT = """
function collect(){
  const marks=[];
  document.querySelectorAll('.card').forEach(c=>{
    const d=JSON.parse(c.dataset.sample), reason=c.querySelector('.reason').value;
    // a sample is rejected (flagged) or accepted; a flag wins over an accept ticked with it
    if(c.querySelector('.flag').checked)
      marks.push({key:d.key, task:d.task, operator:d.operator, verdict:'rejected', reason:reason});
    else if(c.querySelector('.accept').checked)
      marks.push({key:d.key, task:d.task, operator:d.operator, verdict:'accepted', reason:reason});
    if(c.querySelector('.flag-rule').checked) marks.push({rule:{operator:d.operator}, reason:reason});
  });
  return {format: 'datagen-review-marks/1', dataset: document.body.dataset.dataset, marks: marks};
}
function exportMarks(){
  const blob=new Blob([JSON.stringify(collect(),null,2)],{type:'application/json'});
  const a=document.createElement('a'); a.href=URL.createObjectURL(blob); a.download='marks.json'; a.click();
}
function scoreOf(card,name){
  const v=JSON.parse(card.dataset.sample).scores[name];
  return (v===undefined||v===null)?null:v;
}
function sortCards(spec){
  // spec: "NAME:asc" or "NAME:desc" (samples without the score last), or "" for the sampled order
  const [name,dir]=(spec||'').split(':');
  document.querySelectorAll('.stratum').forEach(st=>{
    const cards=[...st.querySelectorAll(':scope > .card')];
    cards.sort((a,b)=>{
      if(!name) return a.dataset.order-b.dataset.order;
      const x=scoreOf(a,name), y=scoreOf(b,name);
      if(x===null||y===null) return (x===null)-(y===null)||a.dataset.order-b.dataset.order;
      return (dir==='desc'?y-x:x-y)||a.dataset.order-b.dataset.order;
    });
    cards.forEach(c=>st.appendChild(c));
  });
  document.body.dataset.sorted=spec||'';
  const sel=document.getElementById('sort'); if(sel&&sel.value!==(spec||'')) sel.value=spec||'';
}
window.addEventListener('load',()=>{
  document.querySelectorAll('.card').forEach((c,i)=>c.dataset.order=i);
  const m=location.hash.match(/sort=([A-Za-z0-9_]+:(?:asc|desc))/);
  if(m) sortCards(m[1]); else if(document.body.dataset.sort) sortCards(document.body.dataset.sort);
  const imgs=[...document.images], ok=imgs.filter(i=>i.complete&&i.naturalWidth>0).length;
  const s=document.getElementById('status');
  s.dataset.loaded=ok; s.dataset.total=imgs.length; s.textContent=ok+' of '+imgs.length+' images loaded';
});
"""


def render(dataset: str, strata: dict[str, list[Sample]], summary: dict | None = None, sort: str = "") -> str:
    """The page; `sort` (NAME:asc or NAME:desc) is the cards' order when the address names none."""
    n = sum(len(v) for v in strata.values())
    toc = "".join(
        f'<li><a href="#s{i}">{html.escape(name)}</a> ({len(samples)})</li>'
        for i, (name, samples) in enumerate(strata.items())
    )
    body = "".join(
        f'<h2 id="s{i}">{html.escape(name)}</h2><div class="stratum">' + "".join(_card(s) for s in samples) + "</div>"
        for i, (name, samples) in enumerate(strata.items())
    )
    names = sorted({k for samples in strata.values() for s in samples for k in s.provenance.scores})
    options = "".join(
        f'<option value="{html.escape(k)}:{d}">{html.escape(k)} {arrow}</option>'
        for k in names
        for d, arrow in (("asc", "ascending"), ("desc", "descending"))
    )
    sort_menu = (
        (
            f"<label>sort by <select id='sort' onchange='sortCards(this.value)'><option value=''>sampled order</option>"
            f"{options}</select></label>"
        )
        if names
        else ""
    )
    head = f"<p>{n} samples from <code>{html.escape(dataset)}</code>, stratified by task.</p>"
    if summary:
        head += (
            f"<p>run: {summary.get('samples', '?')} samples, {summary.get('quarantined', '?')} inputs quarantined.</p>"
        )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>datagen review</title>"
        f"<style>{STYLE}</style></head><body data-dataset='{html.escape(dataset)}' data-sort='{html.escape(sort)}'>"
        "<div id='bar'>datagen review · <span id='status'>loading…</span>"
        f"<button onclick='exportMarks()'>export marks (marks.json)</button>{sort_menu}</div>"
        f"{head}<ul>{toc}</ul>{body}<script>{SCRIPT}</script></body></html>"
    )
