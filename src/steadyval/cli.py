"""The command line: parse arguments, call one library function, print. Nothing else."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from steadyval import __version__
from steadyval.config import KEYS
from steadyval.errors import SteadyvalError

if TYPE_CHECKING:  # the audit stack is imported only by the commands that use it
    from steadyval.audit.base import AuditResult

app = typer.Typer(
    help="steadyval: find out why your validation curves jump around, and prove which fix works.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
out = Console()
err = Console(stderr=True)

SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}

DataArg = Annotated[Path, typer.Argument(
    help="A folder (one sub-folder per class, optionally under train/ val/ test/), a manifest "
         "CSV (path,label[,split,group,site,…]) or a MedMNIST-style .npz.", show_default=False)]
ImageSizeOpt = Annotated[int, typer.Option("--image-size", help="Working resolution in pixels.")]
PositiveOpt = Annotated[str | None, typer.Option(
    "--positive", help="Name of the positive class (default: the second label in sorted order).")]
GroupOpt = Annotated[str | None, typer.Option(
    "--group", help="Manifest column holding patient / group ids (default: group or patient_id).")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed for every random choice (splits, folds).")]
CacheOpt = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Where decoded images are cached (default: $STEADYVAL_CACHE or ~/.cache/steadyval).")]
JsonOpt = Annotated[Path | None, typer.Option("--json", help="Write findings.json here.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")]


def _version(value: bool) -> None:
    if value:
        out.print(f"steadyval {__version__}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Print the version and exit.")] = False) -> None:
    """steadyval: data and split checks, training diagnostics and verified remedies."""


@app.command()
def audit(
    data: DataArg,
    json_path: JsonOpt = None,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write report.html (self-contained, opens offline) into this folder.")] = None,
    image_size: ImageSizeOpt = 64,
    positive: PositiveOpt = None,
    group: GroupOpt = None,
    seed: SeedOpt = 0,
    cache_dir: CacheOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Check the data and the train/val split before any training.

    Exit code 0 whenever the audit ran, whatever it found; 2 for unusable input.
    """
    from steadyval.audit import audit as run_audit
    from steadyval.data.cache import refuse_inside

    data_root = data if data.is_dir() else data.parent
    for target, what in ((json_path, "--json"), (report, "--report")):
        if target is not None:
            refuse_inside(target, data_root, what)
    _check_outputs({"--report": report}, {"--json": json_path})
    result = run_audit(data, image_size=image_size, positive=positive, group=group, seed=seed,
                       cache_dir=cache_dir, progress=not quiet)
    _print_audit(result)
    _write_outputs(result, json_path, report)


@app.command(help="Train one model and record everything a diagnosis needs (every val image, every epoch)."
              "\n\nKeys: " + ", ".join(KEYS) + ".")
def train(
    data: DataArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Run directory to write (outside DATA).")],
    config: Annotated[Path | None, typer.Option(
        "--config", help="YAML or TOML file of TrainConfig keys (may name a preset: seed-ex1/2/3).")] = None,
    sets: Annotated[list[str] | None, typer.Option(
        "--set", help="key=value override, repeatable (e.g. --set lr=0.01 --set model=small_cnn).")] = None,
    positive: PositiveOpt = None,
    group: GroupOpt = None,
    cache_dir: CacheOpt = None,
    json_path: Annotated[Path | None, typer.Option("--json", help="Write the run summary here.")] = None,
    quiet: QuietOpt = False,
) -> None:
    """Train one model (the --help text, with every config key, is in the decorator)."""
    from steadyval._io import atomic_write_json
    from steadyval.config import load_config
    from steadyval.data import load_dataset
    from steadyval.train import train as run_training

    cfg = load_config(config, sets)
    _check_outputs({"--out": out_dir}, {"--json": json_path})
    ds = load_dataset(data, image_size=max(cfg.image_size, 16), positive=positive, group=group,
                      seed=cfg.seed, cache_dir=cache_dir, progress=not quiet)
    out.print(f"training {cfg.model} on {len(ds.split_index('train'))} images, validating on "
              f"{len(ds.split_index('val'))}; positive class [bold]{ds.positive}[/]")
    try:
        run = run_training(ds, cfg, out_dir, progress=not quiet)
    except KeyboardInterrupt:
        err.print(f"interrupted: {out_dir} holds every finished epoch (status 'interrupted')")
        raise
    last = run.metrics.iloc[-1] if len(run.metrics) else None
    out.print(f"{run.info['status']}: {run.info.get('stop_reason', '')}")
    if last is not None:
        out.print(f"last epoch: loss {last['loss']:.4f}, val_loss {last['val_loss']:.4f}, "
                  f"val_accuracy {last['val_accuracy']:.3f}, val_auc {last['val_auc']:.3f}")
    out.print(f"run directory: {out_dir}")
    if json_path is not None:
        atomic_write_json(json_path, {"run_dir": str(out_dir), **run.info, "config": cfg.model_dump()})


@app.command()
def analyze(
    logs: Annotated[list[Path], typer.Argument(
        help="Run directories from steadyval train or recorded by steadyval.integrations (Keras, "
             "Lightning, any loop), Keras CSVLogger CSV or History JSON, Lightning metrics.csv, "
             "TensorBoard event files, or a CSV with --columns.", show_default=False)],
    val_size: Annotated[int | None, typer.Option(
        "--val-size", help="Validation-set size of imported logs (for the noise floor).")] = None,
    columns: Annotated[str | None, typer.Option(
        "--columns", help="Map canonical names to your CSV's columns: val_loss=valid_loss,val_accuracy=vacc")] = None,
    trust_pickle: Annotated[bool, typer.Option(
        "--trust-pickle", help="Allow reading pickled histories (loading a pickle runs code).")] = False,
    json_path: JsonOpt = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write report.html into this folder.")] = None,
) -> None:
    """Analyse training curves: is the jumping real or noise, and what is behind it.

    Several runs of one config (seeds) are analysed together and plotted as mean ± spread.
    """
    from steadyval.curves import analyze as run_analysis
    from steadyval.errors import ConfigError
    from steadyval.report.analysis import write_analysis_json, write_analysis_report

    mapping = None
    if columns:
        try:
            mapping = dict(part.split("=", 1) for part in columns.split(","))
        except ValueError:
            raise ConfigError("--columns", "takes name=column pairs separated by commas", f"'{columns}'",
                              "Write e.g. --columns val_loss=valid_loss,val_accuracy=valid_acc.") from None
    if val_size is not None and val_size < 1:
        raise ConfigError("--val-size", "must be a positive number of images", val_size, "Try e.g. 624.")
    _check_outputs({"--report": report}, {"--json": json_path})
    results = run_analysis(logs, val_size=val_size, trust_pickle=trust_pickle, columns=mapping)
    for r in results:
        s = r.summary
        out.print(f"[bold]{r.history.source}[/]: {s['epochs']} epochs"
                  + (f", {s['n_val']} val images" if s.get("n_val") else ", val size unknown"))
        if not r.findings:
            out.print("  [green]no problems found in these curves[/]")
        for f in r.findings:
            out.print(f"  [{SEVERITY_STYLE[f.severity.value]}]{f.severity.value:6s}[/] {f.id}: {f.title}")
        for check_id, reason in r.skipped.items():
            out.print(f"  [dim]not checked: {check_id} ({reason})[/]")
    if json_path is not None:
        out.print(f"analysis: {write_analysis_json(results, json_path)}")
    if report is not None:
        out.print(f"report:   {write_analysis_report(results, report)}")


@app.command()
def split(
    data: DataArg,
    output: Annotated[Path, typer.Option("-o", "--out", help="Manifest CSV to write (outside DATA).")],
    by: Annotated[list[str] | None, typer.Option(
        "--by", help="Metadata column to stratify by, with the label (repeatable; default: every "
                     "categorical metadata column).")] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", help="Share of train+val for validation.")] = 0.2,
    group: GroupOpt = None,
    seed: SeedOpt = 0,
    json_path: Annotated[Path | None, typer.Option(
        "--json", help="Write a JSON summary (output path, counts per split and stratum) here.")] = None,
) -> None:
    """Write a manifest with a better split: stratified by label x site, grouped by patient.

    Files are never moved; a test split in DATA is kept as it is.
    """
    from steadyval.data.split import write_split

    _check_outputs(files={"-o/--out": output, "--json": json_path})
    table = write_split(data, output, by=by, val_fraction=val_fraction, seed=seed, group=group)
    counts = table["split"].value_counts()
    out.print(f"Wrote [bold]{output}[/]: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("train", "val", "test")
                                                       if counts.get(s, 0)))
    out.print(f"Audit it with: steadyval audit {output}")
    if json_path is not None:
        from steadyval._io import atomic_write_json

        strata = [c for c in table.columns if c not in ("path", "split")]
        atomic_write_json(json_path, {
            "steadyval_version": __version__, "manifest": str(output),
            "counts": {str(k): int(v) for k, v in counts.items()},
            "val_fraction": val_fraction, "seed": seed,
            "shares_by_split": {col: {str(sp): {str(k): float(v) for k, v in grp.items()}
                                      for sp, grp in table.groupby("split")[col]
                                      .value_counts(normalize=True).unstack(fill_value=0).iterrows()}
                                for col in strata if table[col].nunique() <= 20},
        })
        out.print(f"summary: {json_path}")


ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", help="YAML or TOML file of TrainConfig keys (may name a preset: seed-ex1/2/3).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="key=value override, repeatable (e.g. --set lr=0.01 --set model=small_cnn).")]
WorkersOpt = Annotated[int | None, typer.Option(
    "--workers", help="Trials trained in parallel (default: one per two cores).")]


@app.command(help="Find out why validation is unstable and prove which remedy works.\n\n"
              "audit -> baseline over seeds -> curve analysis -> probes -> ranked diagnosis -> remedy "
              "trials (same seeds) -> verdicts with 95 % intervals. Finished trials are cached in "
              "OUT/trials: an interrupted doctor resumes where it stopped. Your config is the baseline.")
def doctor(
    data: DataArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for report.html, findings.json and the trials.")],
    config: ConfigOpt = None,
    sets: SetOpt = None,
    seeds: Annotated[int, typer.Option("--seeds", help="Seeds per arm (baseline and each remedy).")] = 3,
    budget: Annotated[str, typer.Option(
        "--budget", help="fast: up to 4 remedies, each one training per seed; thorough: up to 8, "
        "longer training (train.longer) included.")] = "fast",
    folds: Annotated[int, typer.Option(
        "--folds", help="Train every arm on k stratified, grouped folds instead of the given split (0 = off).")] = 0,
    workers: WorkersOpt = None,
    positive: PositiveOpt = None,
    group: GroupOpt = None,
    cache_dir: CacheOpt = None,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Run the doctor (the --help text is in the decorator)."""
    from steadyval.config import load_config
    from steadyval.doctor import doctor as run_doctor
    from steadyval.report.doctor import write_doctor_outputs

    cfg = load_config(config, sets)
    _check_outputs({"--out": out_dir}, {"--json": json_path})
    result = run_doctor(data, out_dir, config=cfg, seeds=seeds, budget=budget, folds=folds,  # type: ignore[arg-type]
                        workers=workers, positive=positive, group=group, cache_dir=cache_dir,
                        progress=not quiet, log=lambda line: err.print(f"[dim]{line}[/]"))
    _print_doctor(result)
    jpath, rpath = write_doctor_outputs(result, json_path)
    out.print(f"findings: {jpath}")
    out.print(f"report:   {rpath}")


@app.command()
def cv(
    data: DataArg,
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the fold runs and cv.json.")],
    folds: Annotated[int, typer.Option("--folds", help="Number of folds (stratified, grouped by patient).")] = 5,
    seeds: Annotated[int, typer.Option(
        "--seeds", help="Seeds per fold; 2 or more also splits the spread into folds vs seeds.")] = 2,
    config: ConfigOpt = None,
    sets: SetOpt = None,
    workers: WorkersOpt = None,
    positive: PositiveOpt = None,
    group: GroupOpt = None,
    cache_dir: CacheOpt = None,
    json_path: JsonOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """k-fold cross-validation: the honest estimate, with how much of its spread is folds vs seeds."""
    from steadyval._io import atomic_write_json
    from steadyval.config import load_config
    from steadyval.data import load_dataset
    from steadyval.data.cache import refuse_inside
    from steadyval.experiments.cv import cross_validate

    cfg = load_config(config, sets)
    refuse_inside(out_dir, data if data.is_dir() else data.parent, "--out")
    _check_outputs({"--out": out_dir}, {"--json": json_path})
    ds = load_dataset(data, image_size=cfg.image_size, positive=positive, group=group, seed=cfg.seed,
                      cache_dir=cache_dir, progress=not quiet)
    result = cross_validate(ds, cfg, out_dir, folds=folds, seeds=seeds, workers=workers, progress=not quiet)
    table = Table(show_header=True, header_style="bold")
    for col in ("measure", "mean ± sd", "per fold", "spread from folds"):
        table.add_column(col)
    unmeasured = []
    for key, st in result.stats.items():
        share = st.get("fold_share")
        if not math.isfinite(st["mean"]):
            unmeasured.append(key)
            table.add_row(key, "-", "-", "-")
            continue
        table.add_row(key, f"{st['mean']:.3f} ± {st['sd']:.3f}", " ".join(f"{v:.3f}" for v in st["per_fold"]),
                      "-" if share is None or share != share else f"{share:.0%} folds / {1 - share:.0%} seeds")
    out.print(f"{folds}-fold cross-validation, {len(result.seeds)} seed(s) per fold, positive class "
              f"[bold]{ds.positive}[/]")
    out.print(table)
    if unmeasured:
        out.print(f"not measurable in {cfg.epochs} epoch(s): {', '.join(unmeasured)} "
                  "(val-loss volatility needs at least 4 epochs, churn 2); raise --set epochs=N.")
    path = json_path or out_dir / "cv.json"
    atomic_write_json(path, result.to_dict())
    out.print(f"results: {path}")


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option(
        "--out", help="Folder for the generated data, the trials and the report.")] = Path("steadyval-demo"),
    seed: SeedOpt = 0,
    json_path: JsonOpt = None,
    workers: WorkersOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The whole doctor on a generated dataset (scanner-confounded split, class imbalance, leaks, bad files)."""
    from steadyval.doctor import doctor as run_doctor
    from steadyval.report.doctor import write_doctor_outputs
    from steadyval.synthetic import demo_config, demo_spec, generate

    _check_outputs({"--out": out_dir}, {"--json": json_path})
    spec = demo_spec(seed)
    out.print(f"Generating {spec.n_train + spec.n_val} synthetic radiographs with planted faults "
              f"in {out_dir / 'data'} …")
    synthetic = generate(spec, out_dir / "data")
    result = run_doctor(synthetic.path, out_dir, config=demo_config(seed), workers=workers,
                        cache_dir=out_dir / "cache", progress=not quiet,
                        log=lambda line: err.print(f"[dim]{line}[/]"))
    _print_doctor(result)
    jpath, rpath = write_doctor_outputs(result, json_path)
    out.print(f"findings: {jpath}")
    out.print(f"report:   {rpath}")


def _print_doctor(result: Any) -> None:
    from rich.panel import Panel

    s = result.dataset.summary()
    out.print(Panel(result.headline, title="verdict", border_style="red" if result.unstable else "green"))
    out.print(f"[dim]{s['source']}: {s['n_train']} train / {s['n_val']} val images, positive class "
              f"{s['positive']}; {len(result.seeds)} seeds; {result.reused_trials} trial(s) reused"
              + (f"; {result.replayed_trials} early-stopping trial(s) read off their twins' epochs, "
                 "not retrained" if result.replayed_trials else "")
              + (f"; {result.resumed_trials} longer trial(s) continued from shorter runs of the same config"
                 if result.resumed_trials else "") + "[/]")
    if result.causes:
        table = Table(title="causes, ranked", show_header=True, header_style="bold", title_justify="left")
        for col in ("#", "severity", "cause", "why this rank"):
            table.add_column(col)
        for i, c in enumerate(result.causes[:6], 1):
            sev = c.finding.severity.value
            table.add_row(str(i), f"[{SEVERITY_STYLE[sev]}]{sev}[/]", c.id, c.reason)
        out.print(table)
    trials = Table(title="remedy trials (change vs baseline, 95 % interval over seeds)", show_header=True,
                   header_style="bold", title_justify="left")
    for col in ("arm", "verdict", "val-loss volatility", "churn", "final val AUROC", "why"):
        trials.add_column(col)
    style = {"helps": "green", "hurts": "red", "no_effect": "dim", "baseline": "bold"}
    for a in [result.baseline, *result.arms]:
        vals = a.values
        row = [f"{vals[k].mean:.3f}" if vals[k].n else "-" for k in ("val_loss_volatility", "churn", "final_auroc")]
        if a.changes:
            ch = a.changes
            row = [f"{row[0]} ({_pct(ch['val_loss_volatility'])})", f"{row[1]} ({_pct(ch['churn'])})",
                   f"{row[2]} ({ch['final_auroc'].mean:+.3f})" if ch["final_auroc"].n else row[2]]
        why = a.reason if a.verdict in ("helps", "hurts") else ("within seed noise" if a.changes else "")
        trials.add_row(a.arm, f"[{style.get(a.verdict, '')}]{a.verdict}[/]", *row, why)
    out.print(trials)
    for rid, why in result.not_trialled.items():
        out.print(f"[dim]not trialled: {rid} ({why})[/]")


def _pct(iv: Any) -> str:
    if not iv.n or iv.mean != iv.mean:
        return "-"
    lo, hi = iv.ci95
    return f"{iv.mean:+.0%} [{lo:+.0%}, {hi:+.0%}]"


def _print_audit(result: AuditResult) -> None:
    s = result.dataset.summary()
    out.print(f"[bold]{s['source']}[/]: {s['n_images']} images ({s['n_train']} train, {s['n_val']} val"
              f"{', ' + str(s['n_test']) + ' test' if s['n_test'] else ''}), classes "
              f"{' / '.join(s['classes'])}, positive class [bold]{s['positive']}[/]")
    for note in s["notes"]:
        out.print(f"[dim]{note}[/]")
    if not result.findings:
        out.print("[green]No problems found.[/]")
    else:
        table = Table(show_header=True, header_style="bold", expand=False)
        table.add_column("severity")
        table.add_column("finding")
        table.add_column("what")
        for f in result.findings:
            style = SEVERITY_STYLE[f.severity.value]
            table.add_row(f"[{style}]{f.severity.value}[/]", f.id, f.title)
        out.print(table)
    for check_id, reason in result.skipped.items():
        out.print(f"[dim]not checked: {check_id} ({reason})[/]")


def _check_outputs(dirs: dict[str, Path | None] | None = None, files: dict[str, Path | None] | None = None) -> None:
    """Refuse, before any work, output paths that cannot be written (option -> path)."""
    from steadyval._io import check_out_dir, check_out_file

    for option, path in (dirs or {}).items():
        if path is not None:
            check_out_dir(path, option)
    for option, path in (files or {}).items():
        if path is not None:
            check_out_file(path, option, "manifest.csv" if option == "-o/--out" else "results.json")


def _write_outputs(result: AuditResult, json_path: Path | None, report: Path | None) -> None:
    from steadyval.report import write_audit_report, write_findings

    if json_path is not None:
        out.print(f"findings: {write_findings(result, json_path)}")
    if report is not None:
        out.print(f"report:   {write_audit_report(result, report)}")


def main() -> None:
    """Console entry point: user errors become one clear paragraph and exit code 2."""
    try:
        app()
    except SteadyvalError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:  # the file system refused (disk full, permissions changed mid-run, ...)
        where = f" '{exc.filename}'" if exc.filename else ""
        err.print(f"[bold red]error:[/] the file system refused{where}: {exc.strerror or exc}. Check that the "
                  "--out, --json and --report paths are writable and the disk has space; finished trials "
                  "and epochs are kept, so re-running resumes.", highlight=False, soft_wrap=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
