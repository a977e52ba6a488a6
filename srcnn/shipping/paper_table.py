"""The paper tables as Markdown: the README's, from the shipped models' records (`render_shipped_table`), or
from a `make paper` record (`render_table`), each beside the published figures (`srcnn.shipping.published`);
and docs/paper.md's block of the recipe's commands (`render_commands`). Both blocks sit between markers in
their pages and are replaced whole (`replace_block`), never typed by hand.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from srcnn.shipping.paper import RESULTS, SCALES, computed_in, deviations, hydra_value, overrides, precision_name
from srcnn.shipping.published import (
    LR_PRESETS,
    PAPER_BICUBIC,
    PAPER_SRCNN_915,
    PAPER_SRCNN_955,
    PAPER_SRCNN_955_SSIM,
    PRESETS,
    paper_figure,
)

README = Path("README.md")  # the paper table (TABLE)
COMMANDS_PAGE = Path("docs/paper.md")  # the recipe's commands (COMMANDS)
TABLE = ("<!-- paper-table:begin -->", "<!-- paper-table:end -->")
COMMANDS = ("<!-- paper-commands:begin -->", "<!-- paper-commands:end -->")


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def render_table(record: dict) -> str:
    """The README table: ours (PSNR / SSIM, from the record) beside the published figures, per set and scale."""
    rows = [
        "| set | scale | bicubic: ours / paper | SRCNN (ours, recipe below): PSNR / SSIM | SRCNN 9-5-5 "
        "(TPAMI 2016) | SRCNN 9-1-5 (ECCV 2014) | ours − 9-5-5 | training time (2-core CPU) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    scales = record["scales"]
    names = []
    for entry in scales.values():
        names += [n for n in entry["evaluate"] if n != "valid" and n not in names]
    names += [n for n in PAPER_SRCNN_955 if n not in names]
    for name in names:
        for scale in SCALES:
            entry = scales.get(str(scale))
            ours = (entry or {}).get("evaluate", {}).get(name)
            paper = PAPER_SRCNN_955.get(name, (None,) * 3)[scale - 2]
            bicubic = PAPER_BICUBIC.get(name, (None,) * 3)[scale - 2]
            eccv = PAPER_SRCNN_915.get((name, scale))
            if ours is None:
                if paper is None:
                    continue
                rows.append(
                    f"| {name} | ×{scale} | — / {fmt(bicubic)} | not run | {fmt(paper)} | {fmt(eccv)} | — | — |"
                )
                continue
            gap = "—" if paper is None else f"{ours['psnr_srcnn'] - paper:+.2f}"
            minutes = entry.get("train_seconds")
            precision = precision_name(entry.get("precision"))
            rows.append(
                f"| {name} | ×{scale} | {ours['psnr_bicubic']:.2f} / {fmt(bicubic)} "
                f"| {ours['psnr_srcnn']:.2f} / {ours['ssim_srcnn']:.4f} | {fmt(paper)} | {fmt(eccv)} | {gap} "
                f"| {'—' if minutes is None else f'{minutes / 60:.0f} min'}{f' ({precision})' if precision else ''} |"
            )
    experiments_line = ", ".join(f"×{s}: `{e['experiment']}`" for s, e in scales.items())
    changes = [
        f"×{s}: " + ", ".join(f"`{k}={hydra_value(v)}`" for k, v in e["recipe_changes"].items())
        for s, e in scales.items()
        if e["recipe_changes"]
    ]
    note = f"\n\nRun with changes to the recipe: {'; '.join(changes)}." if changes else ""
    curves = []
    for scale, entry in scales.items():
        if entry.get("curve"):
            points = ", ".join(f"{minutes:g} min {psnr:.2f}" for _, minutes, psnr in entry["curve"])
            curves.append(f"- ×{scale}, validation PSNR on Set5 patches by training time: {points}")
    curve_text = ("\n\n" + "\n".join(curves)) if curves else ""
    return (
        f"From `{RESULTS}` (written by `make paper` from `dvc exp show`; experiments {experiments_line}):\n\n"
        + "\n".join(rows)
        + note
        + curve_text
    )


def render_shipped_table(records: list[dict]) -> str:
    """The README table from the shipped models' records (`srcnn.shipping.pretrained`): per set and scale, bicubic and
    each preset's PSNR / SSIM beside the published figures, the gap in brackets; then how each was trained."""
    by_key = {(r.get("arch", "srcnn"), r["preset"], r["scale"]): r for r in records}
    rows = [
        "| set | scale | bicubic: ours / paper | SRCNN 9-1-5: ours (− ECCV 2014) | ECCV 2014 | "
        "SRCNN 9-5-5: ours (− TPAMI 2016) | TPAMI 2016 |",
        "|---|---|---|---|---|---|---|",
    ]
    columns = [("srcnn", preset) for preset in PRESETS]
    lr_rows = [
        "| set | scale | "
        + " | ".join(f"{title}: ours (− {source}) | {source}" for title, source in LR_PRESETS.values())
        + " |",
        "|---|---|" + "---|---|" * len(LR_PRESETS),
    ]
    for name in PAPER_SRCNN_955:
        for scale in SCALES:
            shipped = [by_key.get((arch, preset, scale)) for arch, preset in columns]
            scored = [(r["metrics"].get(name) if r else None) for r in shipped]
            ours_bicubic = next((m["psnr_bicubic"] for m in scored if m), None)
            cells = [f"{name} | ×{scale} | {fmt(ours_bicubic)} / {fmt(PAPER_BICUBIC[name][scale - 2])}"]
            cells += _cells(by_key, columns, name, scale)
            rows.append("| " + " | ".join(cells) + " |")
            lr_rows.append(f"| {name} | ×{scale} | " + " | ".join(_cells(by_key, list(LR_PRESETS), name, scale)) + " |")
    lr_table = ""
    if any(key[:2] in LR_PRESETS for key in by_key):
        lr_table = (
            "\n\nThe networks on the low-resolution image (FSRCNN, ESPCN), the same protocol; their cost is in the "
            "list below:\n\n" + "\n".join(lr_rows)
        )
    trained = []
    for r in sorted(records, key=lambda r: (r.get("arch", "srcnn") != "srcnn", r["name"])):
        t, m, cost = r["training"], r["machine"], r.get("cost")
        changes = deviations(r["params"], t.get("precision"))
        precision = precision_name(computed_in(r["params"], t.get("precision")))
        trained.append(
            f"- `{r['name']}`: "
            + (
                f"{cost['parameters']:,} parameters, {cost['multiply_adds_per_pixel']:,.0f} multiply-adds per output "
                "pixel; "
                if cost
                else ""
            )
            + f"{t['epochs']} epochs of {t['patches']:,} patches"
            + (f" in {precision}" if precision else "")
            + f", {t['seconds'] / 60:.0f} min"
            + (f" (epochs {t['resumed_from_epoch'] + 1}–{t['epochs']}: resumed)" if t.get("resumed_from_epoch") else "")
            + " on "
            f"{m['cpu']} ({m['cores']} cores), experiment `{r['code']['experiment']}` of commit "
            f"`{r['code']['commit'][:10]}`"
            + (
                "; recipe changes: " + ", ".join(f"`{k}={hydra_value(v)}`" for k, v in changes.items())
                if changes
                else ""
            )
        )
    return (
        "Generated from the shipped models' records (`srcnn/weights/*/record.json`, `make paper-table`); PSNR (dB) "
        "/ SSIM on Y, the literature's protocol:\n\n" + "\n".join(rows) + lr_table + "\n\n" + "\n".join(trained)
    )


def _cells(by_key: dict, columns: list[tuple[str, str]], name: str, scale: int) -> list[str]:
    """Two cells per (arch, preset): ours (PSNR / SSIM, the gap to the paper in brackets) and the paper's."""
    cells = []
    for arch, preset in columns:
        shipped = by_key.get((arch, preset, scale))
        metrics = shipped["metrics"].get(name) if shipped else None
        published = paper_figure(preset, name, scale, arch)
        if metrics is None:
            cells.append("not trained yet" if shipped is None else "not scored")
        else:
            gap = "" if published is None else f" ({metrics['psnr_srcnn'] - published:+.2f})"
            cells.append(f"{metrics['psnr_srcnn']:.2f} / {metrics['ssim_srcnn']:.4f}{gap}")
        ssim = PAPER_SRCNN_955_SSIM[name][scale - 2] if (arch, preset) == ("srcnn", "9-5-5") else None
        cells.append(fmt(published) + (f" / {ssim:.4f}" if ssim is not None else ""))
    return cells


def render_commands(train_dir: str = "data/T91", sets: list[str] = ("Set5",)) -> str:
    """What `run` does, as shell commands that run as written (docs/paper.md shows them)."""
    args = [kv for kv in overrides(0, train_dir, list(sets)) if not kv.startswith("scale=")]
    lines = ["for s in 2 3 4; do", '  dvc exp run -n "paper-x$s-$(date +%Y%m%d-%H%M%S)" -S "scale=$s" \\']
    lines += [f"    -S {shlex.quote(kv)} \\" for kv in args]
    lines[-1] = lines[-1][: -len(" \\")]
    lines += [
        "done",
        "python -m srcnn.paper collect                         # results/paper.json from dvc exp show",
        "python -m srcnn.paper table --results results/paper.json  # your runs beside the paper's figures",
    ]
    return "```sh\n" + "\n".join(lines) + "\n```"


def block(markers: tuple[str, str], body: str) -> str:
    return f"{markers[0]}\n{body}\n{markers[1]}"


def replace_block(text: str, markers: tuple[str, str], body: str) -> str:
    start, end = text.index(markers[0]), text.index(markers[1]) + len(markers[1])
    return text[:start] + block(markers, body) + text[end:]
