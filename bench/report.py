"""Output: the printed table, the JSON files in bench/results/, the optional plot."""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.model import FigureResult

RESULTS = Path(__file__).with_name("results")


def machine() -> dict[str, Any]:
    """nproc, memory, CPU model: what the README's table is measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return {
        "nproc": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "loadavg": os.getloadavg(),
        "commit": _commit(),
    }


def _commit() -> str:
    git = shutil.which("git")
    if git is None:
        return ""
    try:
        out = subprocess.run(
            [git, "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _abs(value: float | None, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "MB":
        return f"{value:.0f} MB"
    if unit == "tokens/s":
        return f"{value:,.0f} tok/s"
    if unit == "reports/s":
        return f"{value:.1f}/s"
    return f"{value:.3g}"


def row_cells(row: FigureResult) -> list[str]:
    """figure, reference, ratio (pair IQR), target, result, measured, reference medians."""
    if row.ratio is None:
        ratio = "-"
    else:
        ratio = f"{row.ratio:.3f}"
        pairs = row.pair_ratios
        if pairs.get("n", 0) > 1:
            ratio += f" ({pairs['p25']:.2f}-{pairs['p75']:.2f})"
    verdict = row.status.upper() if row.status in ("pass", "fail") else row.status
    return [
        row.title,
        row.reference,
        ratio,
        row.target,
        verdict,
        _abs(row.measured.get("median"), row.unit),
        _abs(row.reference_values.get("median"), row.unit),
        str(row.measured.get("n", 0)),
    ]


HEADERS = [  # "ratio": the median of the interleaved pairs' ratios
    "figure",
    "reference",
    "ratio (pairs p25-p75)",
    "target",
    "result",
    "measured",
    "reference",
    "n",
]


def table(rows: list[FigureResult]) -> str:
    """A plain-text table, columns aligned."""
    cells = [HEADERS, *(row_cells(r) for r in rows)]
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(HEADERS))) for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    notes = [f"- {r.name}: {r.note}" for r in rows if r.note]
    return "\n".join(lines + (["", *notes] if notes else []))


def markdown(rows: list[FigureResult]) -> str:
    """The same table in Markdown, for bench/README.md."""
    out = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in row_cells(r)) + " |" for r in rows]
    return "\n".join(out)


def from_json(path: Path) -> tuple[list[FigureResult], dict[str, Any]]:
    """The rows and the run's metadata from a results file."""
    data = json.loads(path.read_text())
    fields = set(FigureResult.__dataclass_fields__)
    rows = [FigureResult(**{k: v for k, v in f.items() if k in fields}) for f in data["figures"]]
    meta = {k: v for k, v in data.items() if k != "figures"}
    return rows, meta


def markdown_report(path: Path) -> str:
    """The README's block for a results file: machine, command, table, notes."""
    rows, meta = from_json(path)
    box = meta.get("machine", {})
    lines = [
        f"Run {meta.get('timestamp', '?')} ({meta.get('mode')}, {meta.get('seconds')} s), "
        f"commit {box.get('commit', '?')}: `{meta.get('command')}`",
        "",
        f"Machine: {box.get('nproc')} cores (`nproc`), {box.get('memory_gib')} GiB "
        f"(`free -h`), CPU `{box.get('cpu')}` (/proc/cpuinfo), Python {box.get('python')}, "
        f"load average at the end {', '.join(f'{x:.1f}' for x in box.get('loadavg', []))}.",
        "",
        markdown(rows),
        "",
        *(f"- `{r.name}`: {r.note}" for r in rows if r.note),
    ]
    return "\n".join(lines)


def write_json(rows: list[FigureResult], meta: dict[str, Any], stamp: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    data = {**meta, "figures": [r.to_json() for r in rows]}
    text = json.dumps(data, indent=2, default=str) + "\n"
    path = RESULTS / f"{stamp}.json"
    path.write_text(text)
    (RESULTS / "latest.json").write_text(text)
    return path


def plot(rows: list[FigureResult], stamp: str) -> tuple[Path | None, str]:
    """One panel per figure: each interleaved pair's ratio, the median, the target.

    Returns (the PNG written, or None) and a note for the user.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return None, "plot skipped: matplotlib is not installed (pip install matplotlib)"
    shown = [r for r in rows if r.ratio is not None]
    if not shown:
        return None, "plot skipped: no figure has a ratio"
    cols = 3
    nrows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.0 * nrows), squeeze=False)
    for ax, row in zip(axes.flat, shown, strict=False):
        values = row.pair_ratios.get("values") or [row.ratio]
        colour = "tab:green" if row.status == "pass" else "tab:red"
        ax.scatter(range(1, len(values) + 1), values, s=14, color=colour, alpha=0.7)
        ax.axhline(row.ratio, color=colour, label=f"median ratio {row.ratio:.3f}")
        ax.axhline(row.limit, color="black", linestyle="--", label=f"target {row.target}")
        ax.set_title(f"{row.name}: {row.status}", fontsize=10)
        ax.set_xlabel("interleaved pair (RSS: sample)", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(f"vs {row.reference}"[:40], fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(shown) :]:
        ax.axis("off")
    fig.suptitle("dave-lsp benchmarks: ratio to the reference measured in the same run")
    fig.tight_layout()
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{stamp}.png"
    fig.savefig(path, dpi=110)
    shutil.copyfile(path, RESULTS / "latest.png")
    plt.close(fig)
    return path, f"plot: {path}"
