"""The ``linpert`` command line: ``demo``, ``run``, ``score`` and ``pseudobulk``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from ._config import ENV_SCHEDULER
from ._errors import StackInstallError, WorkerError, in_user_code
from ._io import hold_folder
from .datasets._download import DownloadError

DEFAULT_MODELS = {"double": "no_change,additive,linear", "simulation": "mean,linear"}
DEFAULT_SEEDS = {"double": "1,2,3,4,5", "simulation": "1,2"}
PUBLISHED = ("norman", "adamson", "replogle_k562", "replogle_rpe1")


def main(argv: list[str] | None = None) -> int:
    from ._threads import limit_threads

    parser = _parser()
    args = parser.parse_args(argv)
    python_format, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    limit_threads(args.threads)
    try:
        return args.func(args)
    except Exception as err:
        # a user's mistake, or an error in a model or metric the user wrote: one line, no traceback
        if not (in_user_code(err) or isinstance(err, _USERS_MISTAKES)):
            raise
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        if in_user_code(err):
            message = f"{type(err).__name__}: {message}"
        notes = "".join(f" {note}" for note in getattr(err, "__notes__", ()))  # which model, step or metric
        print(f"linpert {args.command}: error: {_as_flags(str(message))}{notes}", file=sys.stderr)
        return 2
    finally:
        warnings.formatwarning = python_format
        limit_threads(None)


_USERS_MISTAKES = (ValueError, KeyError, TypeError, FileNotFoundError, FileExistsError, PermissionError,
                   ConnectionError, ImportError, StackInstallError, WorkerError, DownloadError)


#: How linpert's messages spell a setting in Python, and the flag that sets it on the command line.
_FLAGS = (("condition_key=...", "--condition-key COLUMN"), ("condition_key= ", "--condition-key "),
          ("condition_key=", "--condition-key "), ("perturbation_key=...", "--perturbation-key COLUMN"),
          ("perturbation_key= ", "--perturbation-key "), ("perturbation_key=", "--perturbation-key "))


def _as_flags(message: str) -> str:
    """A message of the Python API, with its settings named as the command line's flags."""
    for python, flag in _FLAGS:
        message = message.replace(python, flag)
    return message


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings on the command line read as one line for a person, not a Python source location."""
    return f"linpert: {category.__name__}: {message}\n"


def _parser() -> argparse.ArgumentParser:
    from ._config import __version__

    parser = argparse.ArgumentParser(
        prog="linpert", description="Benchmark perturbation-effect prediction against simple linear baselines."
    )
    parser.add_argument("--version", action="version", version=f"linpert {__version__}")
    threads = argparse.ArgumentParser(add_help=False)
    threads.add_argument("--threads", type=_positive, metavar="N",
                         help="use at most N cores for the compiled kernels and the figures (default: every core "
                         "this process may use; BLAS always runs on one thread, see timings.csv)")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", parents=[threads],
                          help="run both benchmarks of the paper on the embedded simulated data")
    demo.add_argument("--out", default="linpert-results/demo", help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0, help="seed of the simulated data (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bars")
    demo.set_defaults(func=_demo)

    run = sub.add_parser("run", parents=[threads], help="run the benchmark on a dataset or file")
    run.add_argument(
        "data",
        help=f"a published dataset ({', '.join(PUBLISHED)}), 'simulated-norman' / 'simulated-replogle', "
        "an .h5ad file (cell-level, or a linpert pseudobulk) or a cell-level .zarr store",
    )
    run.add_argument("--split", choices=["auto", "double", "simulation"], default="auto",
                     help="'double' (the paper's Norman split), 'simulation' (GEARS'), or 'auto': double when the data "
                     "has double perturbations (default: %(default)s)")
    run.add_argument("--models", help="comma-separated models: a name (no_change, additive, mean, linear), "
                     "name(param=value, ...), or label=name(...), e.g. "
                     "'mean,linear,lm_go=linear(perturbation_embedding=go:go_essential_all.csv)' "
                     "(default: no_change,additive,linear for the double split, mean,linear for the simulation split)")
    run.add_argument("--seeds", help="comma-separated seeds (default: 1-5 for double, 1,2 for simulation)")
    run.add_argument("--preset", choices=["auto", "paper", "linpert"], default="auto",
                     help="the deep-learning adapters' settings: 'paper' (the paper's scripts and the tutorials they "
                     "name; GEARS on norman is scFoundation's 0.0.2 fork, downloaded once), 'linpert' (linpert's own: "
                     "validation held out of training), or 'auto': paper on the paper's datasets, linpert on any "
                     "other. A model's own preset=... wins (default: %(default)s)")
    run.add_argument("--out", help="output folder (default: linpert-results/<dataset>-<split>)")
    run.add_argument("--n-genes", type=int, default=1000, help="read-out genes: the highest control means (default: 1000)")
    run.add_argument("--condition-key", default="condition", help="obs column with the conditions (default: condition)")
    run.add_argument("--metrics", help="comma-separated metrics beside the paper's l2, pearson_delta and r2 (default: "
                     "every registered one: discrimination_l1/l2/cosine, pearson_delta_perturbed, centroid_accuracy, "
                     "mae, mse; 'none' for only the paper's)")
    run.add_argument("--locfdr", metavar="OPTIONS",
                     help="locfdr options for the interaction calls, e.g. 'bre=60,pct=0.01' (bre, df, pct, pct0, "
                     "nulltype; default: the paper's, with documented fallbacks when its fit fails)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    run.add_argument("--scheduler", default=os.environ.get(ENV_SCHEDULER) or None,
                     help="optional: address of a Dask scheduler (tcp://host:8786) that fits the grid's cells on its "
                     "workers; --out must be a folder they can reach (default: $LINPERT_SCHEDULER, else this machine)")
    run.set_defaults(func=_run)

    sc = sub.add_parser("score", parents=[threads],
                        help="score predicted cells against observed cells (cell-eval's format: "
                        "pred.h5ad and real.h5ad with a perturbation column) on every metric")
    sc.add_argument("predicted", help="predicted cells (.h5ad)")
    sc.add_argument("observed", help="observed cells (.h5ad)")
    sc.add_argument("--perturbation-key", default="target_gene",
                    help="obs column naming each cell's perturbation (default: %(default)s)")
    sc.add_argument("--control", default="non-targeting", help="label of the control cells (default: %(default)s)")
    sc.add_argument("--metrics", help="comma-separated metrics beside the paper's (default: every registered one)")
    sc.add_argument("--out", help="CSV of the per-perturbation scores to write (must not exist)")
    sc.set_defaults(func=_score)

    pb = sub.add_parser("pseudobulk", parents=[threads], help="pseudobulk a cell-level .h5ad, reading it in chunks")
    pb.add_argument("input", help="cell-level .h5ad")
    pb.add_argument("output", help="pseudobulk .h5ad to write (must not exist)")
    pb.add_argument("--condition-key", default="condition")
    pb.add_argument("--layer", default=None, help="layer to average instead of X")
    pb.add_argument("--scheduler", default=os.environ.get(ENV_SCHEDULER) or None,
                    help="optional: address of a Dask scheduler whose workers read and sum the blocks "
                    "(default: $LINPERT_SCHEDULER, else this machine)")
    pb.set_defaults(func=_pseudobulk)
    return parser


def _positive(text: str) -> int:
    """A whole number of at least 1, for argparse (which then names the flag in its error)."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _demo(args) -> int:
    from . import benchmark
    from .models import TransferModel

    out = Path(args.out)
    _claim_demo_folder(out)
    reused = 0
    with hold_folder(out):  # its data, both runs and the report
        for preset, split, folder in (("norman", "double", "double"), ("replogle", "simulation", "single")):
            data, cells = _demo_data(out, preset, args.seed, quiet=args.quiet)
            models: list = DEFAULT_MODELS[split].split(",")
            if split == "simulation":  # the paper's transfer between two cell lines (Extended Data Fig. 9)
                other, _ = _demo_data(out, preset, args.seed, quiet=args.quiet, cell_line=1)
                models.append(("transfer", TransferModel(reference=other, n_components=10)))
            result = benchmark.run(
                data,
                split=split,
                seeds=_ints(DEFAULT_SEEDS[split]),
                models=models,
                out=out / folder,
                dataset=f"simulated-{preset}",
                progress=not args.quiet,
                cells=str(cells),  # for the calibrated scores: the replicate ceiling and DE come from the cells
            )
            reused += result.reused
            _print_summary(result)
        _figures_and_report([out / "double", out / "single"], out / "report.html", title="linpert demo",
                            reused=reused)
    return 0


#: What ``linpert demo`` writes into its folder.
_DEMO_ENTRIES = ("data", "double", "single", "report.html", "run.lock")


def _claim_demo_folder(out: Path) -> None:
    """The demo writes only into a folder that is new, empty or an earlier demo's, as ``run`` does: never over a
    file of the user's (a report.html linpert did not write is refused before any work)."""
    if not out.is_dir():
        return
    earlier = any((out / folder / "run.json").is_file() for folder in ("double", "single"))
    foreign = [p.name for p in sorted(out.iterdir()) if p.name not in _DEMO_ENTRIES]
    if foreign and not earlier:
        raise FileExistsError(f"{out} holds files that no linpert demo wrote ({', '.join(foreign[:5])}); linpert "
                              "never overwrites them: choose an empty or new folder with --out.")
    _check_report(out / "report.html")


def _check_report(report: Path) -> None:
    from .report import written_by_linpert

    if report.exists() and (not report.is_file() or not written_by_linpert(report)):
        raise FileExistsError(f"{report} exists and linpert did not write it; linpert never overwrites your files. "
                              "Move it away or choose another --out.")


def _demo_data(out: Path, preset: str, seed: int, *, quiet: bool, cell_line: int = 0):
    """A simulated screen's pseudobulk and the path of its cells on the read-out genes (the other cell line's
    pseudobulk only: the transfer model needs no cells), kept in ``out/data`` under names that say everything that
    made them."""
    from ._io import atomic_write

    line = f"-line{cell_line}" if cell_line else ""
    path = out / "data" / f"simulated-{preset}-seed{seed}{line}.pseudobulk.h5ad"
    cells = None if cell_line else out / "data" / f"simulated-{preset}-seed{seed}.readout-cells.h5ad"
    data = _read_pseudobulk(path) if path.exists() and (cells is None or cells.exists()) else None
    if data is None:
        what = f"{preset.capitalize()}-like screen" + (f" in another cell line ({cell_line})" if cell_line else "")
        print(f"Simulating a {what} (seed {seed}) ...", flush=True)
        data, simulated = _simulated_screen(preset, seed, progress=not quiet, cell_line=cell_line)
        if cells is not None:
            atomic_write(cells, _on_readout_genes(simulated, data), kind="gzip h5ad")
        atomic_write(path, data, kind="h5ad")
    return data, cells


def _run(args) -> int:
    from . import benchmark
    from .models import resolve_models, split_model_specs
    from .plot import start_figures

    if args.models is not None and not args.models.strip(" ,"):
        raise ValueError("--models is empty: name at least one model, e.g. --models additive,linear, or leave "
                         "--models out for the defaults.")
    out = Path(args.out) if args.out else None
    if out is not None:  # before any work: a report of the user's there would stop the run at its end
        _check_report(out / "report.html")
    # before any download or pseudobulk: a misspelt model name is a second's mistake, not a minute's
    specs = split_model_specs(args.models) if args.models else None
    models = resolve_models(specs) if specs else None
    locfdr, metrics = _locfdr_options(args.locfdr), _metric_names(args.metrics)
    if metrics:
        from .metrics._registry import resolve_metrics

        resolve_metrics(metrics, cells=True)  # the names; whether they need cells is known once the data is
    data, name, cells = _load(args.data, condition_key=args.condition_key, progress=not args.quiet,
                              scheduler=args.scheduler)
    split = args.split
    if split == "auto":
        split = "double" if (data.obs["kind"] == "double").sum() >= 2 else "simulation"
    if models is None:
        specs = split_model_specs(DEFAULT_MODELS[split])
        models = resolve_models(specs)
    _apply_preset(models, specs, args.preset, name, progress=not args.quiet)
    if cells is not None:
        _give_cells(models, cells)
    started = {}
    if out is None:  # named by the data: checked once the data is known
        out = Path("linpert-results") / f"{name}-{split}"
        _check_report(out / "report.html")
    with hold_folder(out):  # the run, its figures and its report: no other run writes there meanwhile
        result = benchmark.run(
            data,
            split=split,
            seeds=_ints(args.seeds or DEFAULT_SEEDS[split]),
            models=models,
            out=out,
            dataset=name,
            n_genes=args.n_genes,
            progress=not args.quiet,
            scheduler=args.scheduler,
            locfdr_args=locfdr,
            metrics=metrics,
            cells=cells,
            on_scored=lambda folder: started.update({folder: start_figures(folder)}),
        )
        _print_summary(result)
        _figures_and_report([result.out], result.out / "report.html", title=f"linpert: {name}, {split} split",
                            reused=result.reused, started=started)
    return 0


def _apply_preset(models, specs: list[str], choice: str, dataset: str, *, progress: bool) -> None:
    """``--preset``: the paper's settings on the paper's datasets (``auto``), or the one chosen, on every adapter whose
    spec names no ``preset=`` of its own (the linear decoders' preset follows from their inputs). Under the paper's,
    GEARS on Norman is scFoundation's GEARS 0.0.2 fork, as the paper's ``run_gears.py`` ran it there."""
    from .adapters import GearsModel, gears_fork

    preset = choice if choice != "auto" else ("paper" if dataset in PUBLISHED else "linpert")
    for (_, model), spec in zip(models, specs):
        settable = "preset" in vars(model)  # an attribute, not a property computed from the inputs
        if settable and "preset=" not in spec.replace(" ", ""):
            model.preset = preset
        if isinstance(model, GearsModel) and model.preset == "paper" and dataset == "norman" and model.code is None:
            model.code = gears_fork(progress=progress)


def _give_cells(models, path: str) -> None:
    """Deep-learning adapters train on cells: hand them the cell-level file the run was started on."""
    for _, model in models:
        if hasattr(model, "cells") and model.cells is None:
            model.cells = path


def _score(args) -> int:
    import pandas as pd

    from ._io import atomic_write
    from .metrics import scorecard
    from .submission import CEILING, calibrated, score_submission

    out = Path(args.out) if args.out else None
    if out is not None and out.exists():
        raise FileExistsError(f"{out} exists; linpert does not overwrite files. Choose another --out.")
    table = score_submission(args.predicted, args.observed, perturbation_key=args.perturbation_key,
                             control=args.control, metrics=_metric_names(args.metrics))
    with pd.option_context("display.width", 160, "display.max_columns", 30, "display.precision", 3):
        print(scorecard(table[table["model"] != CEILING]).drop(columns=["dataset", "split"]).to_string(index=False))
        print("(no_change: the control profile; observed_mean: the mean observed perturbation, which knows the "
              "average effect and nothing specific)")
        scaled = calibrated(table).pivot(index="model", columns="metric", values="scaled")
        print("\nScaled scores (0: observed_mean, 1: the replicate ceiling, one half of each perturbation's cells "
              "predicting the other; bootstrap intervals: linpert.submission.calibrated):")
        print(scaled.reindex(columns=[c for c in table.columns if c in scaled.columns]).to_string())
    if out is not None:
        atomic_write(out, table, kind="csv")
        print(f"Per-perturbation scores: {out}")
    return 0


def _pseudobulk(args) -> int:
    from ._pseudobulk import pseudobulk
    from ._io import atomic_write

    output = Path(args.output)
    if output.exists():
        raise FileExistsError(f"{output} exists; linpert does not overwrite files. Choose another output path.")
    result = pseudobulk(
        args.input, condition_key=args.condition_key, layer=args.layer, progress=True, scheduler=args.scheduler
    )
    atomic_write(output, result, kind="h5ad")
    print(f"{result.n_obs} conditions × {result.n_vars} genes → {output}")
    return 0


def _load(source: str, *, condition_key: str, progress: bool, scheduler=None):
    """A pseudobulk, its label, and the cell-level file it came from (None when not from one)."""
    from . import datasets
    from ._pseudobulk import pseudobulk

    if source in PUBLISHED:
        return getattr(datasets, source)(progress=progress), source, None
    if source.startswith("simulated-"):
        return _simulated_pseudobulk(source.removeprefix("simulated-"), 0, progress=progress), source, None
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(
            f"{source!r} is neither a published dataset ({', '.join(PUBLISHED)}), a simulated one "
            "('simulated-norman', 'simulated-replogle') nor an existing file."
        )
    data, cells = _read_pseudobulk(path), None
    if data is None:
        data = pseudobulk(path, condition_key=condition_key, progress=progress, scheduler=scheduler)
        cells = str(path)
    return data, path.name.split(".")[0], cells


def _read_pseudobulk(path: Path):
    """The AnnData at ``path`` when it is a linpert pseudobulk, else None (cell-level data, or a zarr store)."""
    import anndata

    from .datasets._readers import _open

    if path.is_dir():
        return None
    data = _open(path, backed=True)
    is_pseudobulk = {"kind", "n_cells"} <= set(data.obs.columns)
    data.file.close()
    return anndata.read_h5ad(path) if is_pseudobulk else None


def _on_readout_genes(cells, pb):
    """The cells on the genes a benchmark reads out with its default ``n_genes`` (1,000): all that its calibrated
    scores read, a fifth of the demo's 5,000 genes (gzip-compressed: 100 MB a screen, where all the cells of both
    screens took 1.3 GB)."""
    import numpy as np

    from .metrics import top_expressed_genes

    readout = np.sort(top_expressed_genes(np.asarray(pb["ctrl"].X, dtype=np.float64).ravel(), n_genes=1000))
    return cells[:, readout].copy()


def _simulated_screen(preset: str, seed: int, *, progress: bool, cell_line: int = 0):
    """A simulated screen's pseudobulk and its cells."""
    from ._pseudobulk import pseudobulk
    from .datasets import simulate

    cell_type = {0: None, 1: "RPE1"}.get(cell_line, f"line{cell_line}")
    cells = simulate(preset, seed=seed, cell_line=cell_line, cell_type=cell_type)
    data = pseudobulk(cells, progress=progress)
    data.uns["linpert"]["dataset"] = f"simulated-{preset}"
    return data, cells


def _figures_and_report(folders: list[Path], report: Path, *, title: str, reused: int = 0,
                        started: dict | None = None) -> None:
    """Draw the paper's figures for each run folder and gather everything into one HTML report.

    What is newer than everything it shows is kept, and one line says what was reused. ``started``: per folder, the
    figures :func:`linpert.plot.start_figures` began drawing during the run (or None).
    """
    from .plot import figure_names, write_figures
    from .plot._write import figures_current
    from .report import report_current, write_report

    kept = []
    for folder in folders:
        begun = (started or {}).get(folder)
        if begun is None and figures_current(folder):
            kept += figure_names(folder)
        else:
            write_figures(folder, started=begun)
    current = report_current(report, folders)  # it shows exactly the tables and figures there now
    if not current:
        write_report(folders, report, title=title)
    if reused or kept or current:
        pieces = [f"{reused} finished cell{'s' * (reused != 1)}", f"{len(kept)} figures"]
        pieces += ["the report"] * current
        listed = ", ".join(pieces[:-1]) + " and " + pieces[-1]
        print(f"\nReused {listed}: unchanged since the last run into this folder.")
    print(f"\nResults in {report.parent.resolve()}\nReport: {report.resolve()}")


def _print_summary(result) -> None:
    import pandas as pd

    with pd.option_context("display.width", 120, "display.max_columns", 20, "display.precision", 3):
        print()
        print(result.summary.to_string(index=False))
        from .metrics._registry import beyond_the_paper

        card = result.scorecard
        if card is not None and beyond_the_paper(card):  # every lens in one table, a metric per row to fit a terminal
            print("\nScorecard (mean per model; * marks the best per metric; definitions in the report):")
            print(_metric_rows(card).to_string())
    for (seed, label), why in result.failures.items():
        print(f"FAILED: {label} on seed {seed} is in no table (rerun to retry): {why.splitlines()[0]}")
    if result.restriction.get("n_dropped"):
        r = result.restriction
        print(f"(scored only perturbations every model could predict: {r['n_dropped']} of {r['n_scored']} left out)")
    if result.calibrated is not None:
        scaled = result.calibrated.pivot(index="metric", columns="model", values="scaled").rename_axis(columns=None)
        print("\nScaled scores (0: the reference baseline, 1: the replicate ceiling; n/a: undefined, the reason and "
              "the intervals in calibrated.csv):")
        print(scaled.to_string(float_format=lambda v: f"{v:.2f}", na_rep="n/a"))
    if result.published is not None:
        _print_published(result)
    if result.interaction_note:
        print(f"\nNOTE: {result.interaction_note}")


def _metric_rows(card):
    """The scorecard as metrics × models, the best per metric starred (``best_in`` turned on its side)."""
    table = card.set_index("model").drop(columns=["dataset", "split", "best_in"], errors="ignore").T
    best = {(metric, model) for model, listed in zip(card["model"], card.get("best_in", [""] * len(card)))
            for metric in str(listed if isinstance(listed, str) else "").split(", ") if metric}
    return table.rename_axis(index=None, columns=None).apply(
        lambda column: [("n/a" if value != value else f"{value:.3g}") + ("*" if (metric, column.name) in best else "")
                        for metric, value in column.items()])


def _print_published(result) -> None:
    """The paper's published models beside the run, marked as such, and how closely the run reproduces them."""
    import pandas as pd

    columns = ["model", "n", "l2_mean", "l2_median", "pearson_delta_mean"]
    with pd.option_context("display.width", 120, "display.precision", 3):
        over = result.published["perturbations"].iloc[0] if "perturbations" in result.published else "the paper's"
        print(f"\nPublished by Ahlmann-Eltze et al. 2025 (not run here; linpert.published), over {over} "
              "perturbations:")
        print(result.published[columns].to_string(index=False))
    if result.fidelity is not None:
        worst = result.fidelity.loc[result.fidelity["max_abs_l2_diff"].idxmax()]
        models = ", ".join(result.fidelity["model"])
        print(f"Fidelity: the largest difference between this run's per-perturbation L2 and the published one is "
              f"{worst['max_abs_l2_diff']:.3g} ({worst['model']}; {int(result.fidelity['n'].sum())} rows of "
              f"{models} compared).")


def _metric_names(text: str | None) -> list[str] | None:
    """``'discrimination_l1,mae'`` -> the names; ``'none'`` -> only the paper's; None -> every registered one."""
    if text is None:
        return None
    return [] if text.strip() == "none" else [name.strip() for name in text.split(",") if name.strip()]


def _locfdr_options(text: str | None) -> dict | None:
    """``'bre=60,pct=0.01'`` -> ``{'bre': 60, 'pct': 0.01}``."""
    if not text:
        return None
    from .models import _spec_value

    options = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, eq, value = item.partition("=")
        if not eq or key.strip() not in ("bre", "df", "pct", "pct0", "nulltype"):
            raise ValueError(f"--locfdr takes name=value pairs of bre, df, pct, pct0 and nulltype, e.g. "
                             f"'bre=60,pct=0.01'; {item!r} is not one.")
        number = _spec_value(value.strip())
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise ValueError(f"--locfdr {item}: {key.strip()} takes a number, e.g. --locfdr 'bre=60,pct=0.01'.")
        options[key.strip()] = number
    return options


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in str(text).split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"Seeds must be comma-separated integers, got {text!r}.") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
