"""The targets diffprog works towards, the printed table, and the PNG chart.

Owns `TARGETS` (from the performance issue: per workload, the diffprog row a limit applies
to), `apply_targets` (adds target, measured and passed to those rows), `table` (the text
printed by run.py) and `chart` (bars of every implementation's time relative to the
hand-written one, per workload, on a log scale). Imports: the standard library and harness;
matplotlib only inside `chart`, and its absence only skips the chart.
"""

from __future__ import annotations

from typing import Any

from harness import format_time

# (device, workload, role, metric, limit, unit). Metrics: us_per_op, ratio (to hand-written),
# vs_tape (graph extension over plain tape), pair_ratio (HVP over one gradient), works,
# w6_small (per-op time and peak memory of the 10^5-op chain).
TARGETS = [
    ("cpu", "W1", "tape", "us_per_op", 3.0, "us/op"),
    ("cpu", "W2", "tape", "us_per_op", 3.0, "us/op"),
    ("cpu", "W3", "tape", "ratio", 1.10, "x hand"),
    ("cpu", "W3", "graph", "vs_tape", 1.5, "x tape"),
    ("cpu", "W4", "tape", "ratio", 1.03, "x hand"),
    ("cpu", "W5", "tape", "pair_ratio", 2.5, "x its gradient"),
    ("cpu", "W1", "jit", "ratio", 0.2, "x hand"),  # with fused kernels (issue 16)
    ("cpu", "W2", "jit", "ratio", 0.5, "x hand"),
    ("cpu", "W3", "jit", "ratio", 0.95, "x hand"),
    ("cpu", "W5", "jit", "pair_ratio", 2.4, "x its gradient"),
    ("cpu", "W6 1M", "tape", "works", None, ""),
    ("cpu", "W6 100k", "tape", "w6_small", (3.0, 120.0), ""),
    ("gpu", "W3", "tape", "ratio", 1.2, "x hand"),
    ("gpu", "W4", "tape", "ratio", 1.05, "x hand"),
    ("gpu", "W1", "jit", "us_per_op", 2.5, "us/op"),  # fused kernels + CUDA graph (issue 16)
    ("gpu", "W3", "jit", "ratio", 1.05, "x hand"),
    ("gpu", "W4", "jit", "ratio", 1.05, "x hand"),
]


def _find(rows: list[dict], workload: str, role: str) -> dict | None:
    return next((r for r in rows if r["workload"] == workload and r["role"] == role), None)


def apply_targets(rows: list[dict], device: str) -> None:
    """Add `target` (text), `measured` and `passed` to the rows a target applies to."""
    for dev, workload, role, metric, limit, unit in TARGETS:
        row = _find(rows, workload, role)
        if dev != device or row is None:
            continue
        row.update(target_metric=metric, target_limit=limit)
        if row["status"] != "ok":
            row.update(target=_limit_text(metric, limit, unit), measured=row["status"],
                       passed=False)
            continue
        if metric == "works":
            row.update(target="runs", measured="ran", passed=True)
            continue
        if metric == "w6_small":
            us, mb = row["us_per_op"], row["peak_mb"]
            row.update(target=_limit_text(metric, limit, unit), measured=[us, mb],
                       passed=us <= limit[0] and mb <= limit[1])
            continue
        if metric == "vs_tape":
            tape = _find(rows, workload, "tape")
            value = row["seconds"] / tape["seconds"] if tape and "seconds" in tape else None
        else:
            value = row.get(metric)
        row.update(target=_limit_text(metric, limit, unit),
                   measured=None if value is None else round(value, 4),
                   passed=value is not None and value <= limit)


def _limit_text(metric: str, limit: Any, unit: str) -> str:
    if metric == "works":
        return "runs"
    if metric == "w6_small":
        return f"<= {limit[0]:g} us/op, <= {limit[1]:g} MB"
    return f"<= {limit:g}{unit}" if unit.startswith("x") else f"<= {limit:g} {unit}"


def _notes(row: dict, rows: list[dict]) -> str:
    if row["status"] != "ok":
        return f"{row['status']}: {row.get('reason') or ''}"[:72]
    notes = []
    if row.get("pair_ratio") is not None:
        notes.append(f"{row['pair_ratio']:.2f}x its gradient")
    if row["role"] == "graph" and row["workload"] != "W5":  # W5's 'tape' row is dp.hvp
        tape = _find(rows, row["workload"], "tape")
        if tape and "seconds" in tape and "seconds" in row:
            notes.append(f"{row['seconds'] / tape['seconds']:.2f}x tape")
    if row.get("first_call_s") is not None:
        notes.append(f"first call {row['first_call_s'] * 1e3:.0f} ms")
    if row.get("cuda_graph") == "launched":
        notes.append("CUDA graph")
    elif row.get("cuda_graph"):
        notes.append(f"no CUDA graph: {row['cuda_graph']}"[:60])
    if "peak_mb" in row:
        notes.append(f"peak +{row['peak_mb']:.0f} MB")
    if "gpu_pool_mb" in row:
        notes.append(f"GPU pool {row['gpu_pool_mb']:.0f} MB")
    return ", ".join(notes)


def table(rows: list[dict], mode: str) -> str:
    head = ("workload", "implementation", "median", "best", "us/op", "x hand", "notes",
            "target", "verdict")
    body = []
    for r in rows:
        if r["role"] == "grad":  # W5's gradients: shown through their HVP's ratio
            continue
        verdict = "" if "passed" not in r else ("pass" if r["passed"] else "FAIL")
        target = r.get("target", "")
        body.append((
            r["workload"], r["impl"], format_time(r.get("seconds")), format_time(r.get("min_s")),
            f"{r['us_per_op']:.2f}" if "us_per_op" in r else "",
            f"{r['ratio']:.2f}" if r.get("ratio") is not None else "",
            _notes(r, rows), target, verdict,
        ))
    widths = [max(len(str(x[i])) for x in [head, *body]) for i in range(len(head))]
    fmt = lambda cells: "  ".join(
        str(c).rjust(w) if i in (2, 3, 4, 5) else str(c).ljust(w)
        for i, (c, w) in enumerate(zip(cells, widths))
    ).rstrip()
    lines = [fmt(head), fmt(["-" * w for w in widths])]
    previous = None
    for cells in body:
        if previous is not None and cells[0] != previous:
            lines.append("")
        lines.append(fmt(cells))
        previous = cells[0]
    title = ("time of one forward + backward (W5: one HVP): median and best of the repeats; "
             "us/op and 'x hand' (time / hand-written time) from the median")
    if mode != "full":
        title += f"  [{mode}: reduced sizes or repeats, verdicts are indicative only]"
    return title + "\n" + "\n".join(lines)


def chart(rows: list[dict], subtitle: str, path: str) -> str | None:
    """A bar chart of time / hand-written time per workload and implementation, at `path`."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    shown = [r for r in rows if r.get("ratio") and r["role"] not in ("hand", "grad")]
    if not shown:
        return None
    workloads = list(dict.fromkeys(r["workload"] for r in shown))
    families = list(dict.fromkeys(_family(r) for r in shown))
    colors = {f: plt.get_cmap("tab10")(i % 10) for i, f in enumerate(families)}
    fig, ax = plt.subplots(figsize=(max(8.0, 1.4 * len(workloads) + 4), 5.5))
    width = 0.8 / max(sum(r["workload"] == w for r in shown) for w in workloads)
    for i, w in enumerate(workloads):
        here = [r for r in shown if r["workload"] == w]
        for j, r in enumerate(here):
            x = i + width * (j - (len(here) - 1) / 2)
            ax.bar(x, r["ratio"], width, color=colors[_family(r)])
            if r.get("target_metric") == "ratio":  # the target as a short red bar over it
                ax.plot([x - width / 2, x + width / 2], [r["target_limit"]] * 2, color="red",
                        lw=2.5)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[f]) for f in families]
    ax.legend(handles, families, fontsize=7, ncol=2)
    ax.axhline(1.0, color="black", lw=0.8)
    ax.set_yscale("log")
    ax.set_xticks(range(len(workloads)), workloads)
    ax.set_ylabel("time / hand-written time (log scale; red: target)")
    ax.set_title("diffprog and peers relative to hand-written forward + backward\n" + subtitle,
                 fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _family(row: dict) -> str:
    """One legend entry (and colour) per implementation across workloads."""
    if row["role"] == "tape":
        return "diffprog tape (W5: dp.hvp)"
    if row["role"] == "graph":
        return "diffprog graph extension"
    if row["role"] == "jit":
        return "diffprog jit (W5: dp.hvp)"
    return row["impl"].split(" HVP")[0]
