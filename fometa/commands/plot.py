"""``fometa plot RUN_DIR``: learning curves of a run as a PNG.

Reads ``RUN_DIR/log.jsonl`` and draws the few-task train and test accuracy (or, for the sine
preset, the test MSE) against the meta-iteration, with the mean inner losses in a second panel.
Writes ``RUN_DIR/curves.png`` unless ``--out`` says otherwise. Needs matplotlib.
"""
from __future__ import annotations

from pathlib import Path

from fometa.commands.options import CLIError
from fometa.config import ConfigError
from fometa.runfolder import RunFolder


def add_arguments(p):
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (holding log.jsonl)")
    p.add_argument("--out", default=None, metavar="FILE.png", help="output image (default RUN_DIR/curves.png)")
    p.add_argument("--title", default=None, help="figure title (default: the run's preset and folder)")


def plot_log(records, out, title: str = "") -> Path:
    """Draw the curves of ``records`` (log.jsonl entries) into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metrics = [k for k in ("train_accuracy", "test_accuracy", "test_mse") if any(k in r for r in records)]
    losses = [k for k in ("loss_first", "loss_last") if any(k in r for r in records)]
    fig, axes = plt.subplots(1, 2 if losses else 1, figsize=(11 if losses else 6, 4), squeeze=False)
    ax = axes[0, 0]
    for k in metrics:
        pts = [(r["iteration"], r[k]) for r in records if k in r]
        ax.plot(*zip(*pts, strict=True), marker=".", label=k.replace("_", " "))
    ax.set_xlabel("meta-iteration")
    ax.set_ylabel("MSE" if metrics == ["test_mse"] else "accuracy (few sampled tasks)")
    if metrics and metrics != ["test_mse"]:
        ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    if losses:
        ax2 = axes[0, 1]
        labels = {"loss_first": "first inner step", "loss_last": "last inner step"}
        for k in losses:
            pts = [(r["iteration"], r[k]) for r in records if k in r]
            ax2.plot(*zip(*pts, strict=True), label=labels[k])
        ax2.set_xlabel("meta-iteration")
        ax2.set_ylabel("training loss (mean since previous point)")
        ax2.grid(alpha=0.3)
        ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def run(args) -> int:
    folder = RunFolder(args.run)
    if not folder.path.is_dir():
        raise CLIError(f"{folder.path}: no such run folder")
    records = [r for r in folder.read_log() if "iteration" in r]
    if not records:
        raise CLIError(f"{folder.log_path}: no log records to plot yet")
    try:
        import matplotlib  # noqa: F401 - imported to see that it is installed
    except ImportError:
        raise CLIError("fometa plot needs matplotlib (pip install 'fometa[plot]')") from None
    title = args.title
    if title is None:
        title = folder.path.name
        if folder.config_path.exists():
            try:
                title = f"{folder.read_config().preset} ({folder.path.name})"
            except ConfigError:  # a damaged config.json only costs the title
                pass
    out = plot_log(records, args.out or folder.path / "curves.png", title)
    print(out)
    return 0
