"""HTML pages: one per study (claims, verdicts, figures) and an index with every claim of every study.

Pages are static HTML with the figures as PNG files beside them (inline `<img>`), readable offline.
This module formats results; it computes nothing and trains nothing.
"""

from __future__ import annotations

import html
import math
from pathlib import Path

from genlab.io import atomic_write_bytes

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;width:100%}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:left;vertical-align:top;font-size:14px}th{background:#f3f3f3}.supported{background:#dff3df}
.not-supported{background:#f8dcdc}.inconclusive{background:#fff5d6}img{max-width:100%;margin:.5em 0}
code{background:#f3f3f3;padding:0 3px}.small{color:#666;font-size:13px}.flag{color:#a33;font-weight:bold}
"""


_RULE = (
    "Verdict rule (shared by every study): each claim is a continuous per-seed quantity oriented so that "
    "positive means the claim holds (a paired difference, log ratio or slope, regimes compared at matched "
    "training loss); supported when its 95% interval lies above the claim's threshold, not supported when it "
    "lies below, inconclusive otherwise (and with fewer than two usable seeds). The interval is Student-t over "
    "seeds; for quantities built from test examples its standard error also includes the test-set sampling "
    "error (variance over test examples of the seed-averaged per-example contributions). Every claim has a "
    "negative control (the same quantity where the claim must not hold: an A/A comparison, the network at "
    "initialization, a shuffled pairing), judged by the same rule: a claim whose control passes too is "
    "inconclusive. Where the paper states a size, the interval is also compared with it (magnitude). "
    "Degenerate: every seed gave the same value (a saturated quantity); with a zero-width interval it is "
    "inconclusive. Undefined per-seed values are left out and counted."
)


def _num(x: object) -> str:
    if isinstance(x, float):
        return "nan" if math.isnan(x) else f"{x:.4g}"
    return html.escape(str(x))


def _page(title: str, body: str) -> bytes:
    doc = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )
    return doc.encode()


def _claim_rows(claims: list[dict], study_link: str | None = None) -> str:
    rows = []
    for c in claims:
        css = c["verdict"].replace(" ", "-")
        ci = f"[{_num(c['ci'][0])}, {_num(c['ci'][1])}]"
        seeds = ", ".join(_num(v) for v in c["per_seed"])
        study = (
            f"<td><a href='{study_link}'>{html.escape(study_link.split('/')[0])}</a></td>" if study_link else ""
        )
        reason = f"<br><span class='small'>{html.escape(c['reason'])}</span>" if c.get("reason") else ""
        flag = "<br><span class='flag'>degenerate</span>" if c.get("degenerate") else ""
        rows.append(
            f"<tr>{study}<td><code>{html.escape(c['id'])}</code></td><td>{html.escape(c['text'])}</td>"
            f"<td class='{css}'>{html.escape(c['verdict'])}{reason}{flag}</td><td>{_num(c['effect'])}</td>"
            f"<td>{ci}</td><td>{_control(c.get('control'))}</td><td class='small'>{_magnitude(c)}</td>"
            f"<td class='small'>{html.escape(c.get('quantity', ''))}<br>per seed: {seeds}<br>"
            f"{html.escape(c.get('detail', ''))}<br><i>interval: {html.escape(c.get('uncertainty', ''))}</i>"
            f"{_parts(c.get('parts', []))}</td><td class='small'>{html.escape(c.get('paper', ''))}</td></tr>"
        )
    return "".join(rows)


_HEAD = (
    "<tr><th>claim</th><th>text</th><th>verdict</th><th>effect</th><th>95% CI</th><th>control</th>"
    "<th>direction / magnitude</th><th>measured</th><th>the paper</th></tr>"
)


def _control(ctrl: dict | None) -> str:
    if not ctrl:
        return "<span class='flag'>none</span>"
    css = ctrl["verdict"].replace(" ", "-")
    ci = f"[{_num(ctrl['ci'][0])}, {_num(ctrl['ci'][1])}]"
    return (
        f"<span class='{css}'>{html.escape(ctrl['verdict'])}</span> {_num(ctrl['effect'])} {ci}"
        f"<br><span class='small'>{html.escape(ctrl.get('quantity', ''))}</span>"
    )


def _magnitude(c: dict) -> str:
    return html.escape(c.get("summary") or f"direction {c.get('direction', '')}")


def _parts(parts: list[dict]) -> str:
    return "".join(
        f"<br>part <i>{html.escape(p['id'])}</i>: {html.escape(p['verdict'])} {_num(p['effect'])} "
        f"[{_num(p['ci'][0])}, {_num(p['ci'][1])}]"
        for p in parts
    )


def _table(table: dict) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table["columns"])
    rows = "".join("<tr>" + "".join(f"<td>{_num(v)}</td>" for v in row) + "</tr>" for row in table["rows"])
    note = f"<p class='small'>{html.escape(table['note'])}</p>" if table.get("note") else ""
    return f"<h3>{html.escape(table['title'])}</h3><table><tr>{head}</tr>{rows}</table>{note}"


def write_study_page(result: dict, outdir: Path) -> Path:
    """Write `outdir/index.html` for one study's `result` (the content of its result.json)."""
    figs = "".join(f"<img src='{html.escape(f)}' alt='{html.escape(f)}'>" for f in result["figures"])
    body = (
        f"<h1>{html.escape(result.get('title', result['study']))}</h1>"
        f"<p>{html.escape(result.get('paper', ''))}</p>"
        f"<p class='small'>preset <b>{html.escape(result['preset'])}</b>"
        f" ({html.escape(result.get('preset_description', ''))}),"
        f" {result['seeds']} seeds, {len(result['runs'])} runs, {_num(result.get('seconds', math.nan))} s."
        f" Numbers: <a href='result.json'>result.json</a>. <a href='../index.html'>All studies</a></p>"
        f"<h2>Claims</h2><p class='small'>{_RULE}</p><table>{_HEAD}{_claim_rows(result['claims'])}</table>"
        + "".join(_table(t) for t in result.get("tables", []))
        + f"<h2>Figures</h2>{figs}"
    )
    path = outdir / "index.html"
    atomic_write_bytes(path, _page(result["study"], body))
    return path


def write_index(results: list[dict], out: Path) -> Path:
    """Write `out/index.html`: one table of all claims of all studies, linking to each study's page."""
    counts = {
        v: sum(c["verdict"] == v for r in results for c in r["claims"])
        for v in ("supported", "not supported", "inconclusive")
    }
    rows = "".join(_claim_rows(r["claims"], f"{r['study']}/index.html") for r in results)
    summary = ", ".join(f"{n} {v}" for v, n in counts.items())
    studies = "".join(
        f"<li><a href='{html.escape(r['study'])}/index.html'>{html.escape(r.get('title', r['study']))}</a> — "
        f"preset {html.escape(r['preset'])}, {r['seeds']} seeds</li>"
        for r in results
    )
    body = (
        "<h1>genlab — claims and verdicts</h1>"
        f"<p>{summary}. Every verdict comes from runs trained for these pages. {_RULE}</p><ul>{studies}</ul>"
        f"<table><tr><th>study</th>{_HEAD.removeprefix('<tr>')}{rows}</table>"
    )
    path = out / "index.html"
    atomic_write_bytes(path, _page("genlab", body))
    return path
