"""The ``zeroshot-audio`` console script, also this Kedro project's CLI (``kedro predict ...``).

- ``zeroshot-audio predict AUDIO... --labels TEXT...``: tag audio files with any label texts and
  print, per file, every label's score, the tags and their time stamps. It runs the project's
  ``predict`` pipeline in a ``KedroSession`` (runtime parameters = the command-line options), so
  the outputs are the catalog's versioned datasets, the configuration is the project's (the
  featurize set-up the model was trained with, its label encoder) and the run is tracked in MLflow
  like any ``kedro run``. The model is the latest version of ``trained_models``.
- ``zeroshot-audio run ...``: Kedro's own ``run`` command, unchanged (``kedro run`` too).

Kedro imports this module to find project commands (``cli``) and ``python -m zeroshot_audio``
uses its ``run``, so the module imports nothing heavy at import time.

Exit codes of ``predict``: 0 every file tagged; 1 some files could not be read (the others are
tagged and printed), no trained model, or the run failed; 2 bad usage (no labels, no audio).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import click
from kedro.framework.cli.project import run

PACKAGE = "zeroshot_audio"
OUTPUTS = (
    "predictions",
    "sound_events",
    "segment_attention",
    "predict_report",
    "prediction_figures",
)
TRAIN_HINT = (
    "train one first, from the project folder: `kedro run` (the whole pipeline on the bundled data) "
    "or `kedro run --pipelines=ingest,split,featurize,embed_labels,train`"
)


@click.group(name="zeroshot-audio", context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Multi-label zero-shot audio classification with temporal attention."""


cli.add_command(run)


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def predict(ctx: click.Context) -> None:
    """Tag audio with any label texts and time-stamp the sounds (see `predict --help`)."""
    ctx.exit(predict_main(ctx.args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="zeroshot-audio predict",
        description=(
            "Tag audio files with any label texts (free text or AudioSet mids) using the latest "
            "trained model of this Kedro project, and say when each tagged sound happens. Runs the "
            "project's `predict` pipeline: outputs are versioned in data/07_model_output and "
            "data/08_reporting, and the run is tracked in MLflow."
        ),
        epilog=(
            'Example: zeroshot-audio predict recordings/ street.wav --labels "dog barking" '
            '"a siren far away" /m/07cx4   (put --labels after the audio, or end it with --)'
        ),
    )
    parser.add_argument(
        "audio", nargs="+", help="audio files, folders (searched recursively) or globs"
    )
    parser.add_argument(
        "-l",
        "--labels",
        nargs="+",
        required=True,
        metavar="LABEL",
        help="label texts or AudioSet mids",
    )
    rule = parser.add_mutually_exclusive_group()
    rule.add_argument(
        "--threshold",
        type=float,
        metavar="SCORE",
        help="tag when score >= SCORE (default: the threshold tuned on validation at training)",
    )
    rule.add_argument("--top-k", type=int, metavar="K", help="tag the K best labels of each file")
    parser.add_argument(
        "--model", help="checkpoint name, e.g. rot1/temporal_attention (default: auto)"
    )
    parser.add_argument(
        "--hop", type=float, metavar="SECONDS", help="window hop (default: 10 s, no overlap)"
    )
    parser.add_argument("--max-files", type=int, metavar="N", help="tag at most N files")
    parser.add_argument("--no-figures", action="store_true", help="do not draw a figure per file")
    parser.add_argument("--env", help="Kedro configuration environment (default: local)")
    parser.add_argument(
        "--params",
        metavar="KEY=VALUE,...",
        help="more runtime parameters, as `kedro run --params` (e.g. featurize.weights.path=...)",
    )
    parser.add_argument(
        "--project", type=Path, help="Kedro project folder (default: the one around .)"
    )
    return parser


def _runtime_params(
    args: argparse.Namespace, audio: list[str], labels: list[str]
) -> dict[str, Any]:
    from omegaconf import OmegaConf

    predict: dict[str, Any] = {"audio": audio, "labels": labels, "max_files": args.max_files}
    if args.threshold is not None:
        predict["threshold"] = {"rule": "fixed", "fixed": args.threshold}
    if args.top_k is not None:
        predict["threshold"] = {"rule": "top_k", "top_k": args.top_k}
    if args.model:
        predict["model"] = args.model
    if args.hop is not None:
        predict["hop_s"] = args.hop
    if args.no_figures:
        predict["figures"] = {"enabled": False}
    extra = OmegaConf.from_dotlist(
        [item.strip() for item in (args.params or "").split(",") if item.strip()]
    )
    merged = OmegaConf.merge(extra, {"predict": predict})
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def predict_main(argv: list[str]) -> int:
    """Parse, check the inputs cheaply, run the ``predict`` pipeline, print the tables."""
    args = _parser().parse_args(argv)  # usage errors exit with 2
    from rich.console import Console

    console = Console()
    err = Console(stderr=True, soft_wrap=True)
    from zeroshot_audio.predict import list_audio_files, parse_labels

    try:
        labels = parse_labels(args.labels)
    except ValueError as error:
        err.print(f"[bold red]error:[/] {error}")
        return 2
    audio = [_absolute(source) for source in args.audio]
    files, missing = list_audio_files(audio, max_files=args.max_files)
    for failure in missing:
        err.print(f"[yellow]skipped[/] {failure.file}: {failure.detail}")
    if not files:
        err.print("[bold red]error:[/] no audio file to tag in " + ", ".join(args.audio))
        return 2

    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project
    from kedro.utils import find_kedro_project

    project = args.project or find_kedro_project(Path.cwd())
    if project is None or not (Path(project) / "pyproject.toml").is_file():
        err.print(
            f"[bold red]error:[/] {Path(project or Path.cwd()).resolve()} is not in a Kedro project: run "
            "from the zeroshot-audio project folder or pass --project"
        )
        return 2
    project = Path(project).resolve()
    bootstrap_project(project)
    params = _runtime_params(args, audio, labels)
    with KedroSession.create(project_path=project, env=args.env, runtime_params=params) as session:
        catalog = session.load_context().catalog
        absent = [
            name for name in ("trained_models", "label_embeddings") if not catalog.exists(name)
        ]
        if absent:
            err.print(
                f"[bold red]error:[/] no trained model yet ({', '.join(absent)} not found); {TRAIN_HINT}."
            )
            return 1
        try:
            session.run(pipeline_names=["predict"])
        except Exception as error:  # every failure reaches the user as one readable line
            err.print(f"[bold red]error:[/] predict failed: {type(error).__name__}: {error}")
            return 1
        version = session.session_id
        catalog = session.load_context().catalog
        predictions = catalog.load("predictions", version=version)
        events = catalog.load("sound_events", version=version)
        report = catalog.load("predict_report", version=version)
        paths = {name: _saved_path(catalog, name, version) for name in OUTPUTS}
    print_results(console, predictions, events, report, paths)
    return 1 if report["n_files_failed"] else 0


def _absolute(source: str) -> str:
    """Paths are given relative to where the command runs; the Kedro run may resolve elsewhere."""
    path = Path(source).expanduser()
    return str(path if path.is_absolute() else Path.cwd() / path)


def _saved_path(catalog: Any, name: str, version: str) -> str | None:
    dataset = catalog.get(name)
    try:
        return str(dataset._get_versioned_path(version))
    except AttributeError:
        return None


def print_results(
    console: Any,
    predictions: Any,
    events: Any,
    report: dict[str, Any],
    paths: dict[str, str | None],
) -> None:
    """One table per file (labels by score, tag, events), then failures and where outputs went."""
    from rich.table import Table

    threshold = report["threshold"]
    rule = threshold["rule"] + (
        f" {threshold['value']:.3g}"
        if threshold.get("value") is not None
        else f" k={threshold['top_k']}"
    )
    for file, rows in predictions.groupby("file", sort=False):
        duration = float(rows["duration_s"].iloc[0])
        table = Table(
            title=f"{_shown(file)}  ({duration:.1f} s, {int(rows['n_windows'].iloc[0])} window(s))",
            title_justify="left",
        )
        table.add_column("label")
        table.add_column("score", justify="right")
        table.add_column("tag", justify="center")
        table.add_column("sound events (s)")
        mine = events[events["file"] == file]
        for row in rows.sort_values("score", ascending=False).itertuples(index=False):
            name = row.label if row.text == row.label else f"{row.label} ({row.text})"
            spans = mine[mine["label"] == row.label]
            when = ", ".join(
                f"{a:.1f}-{b:.1f}" for a, b in zip(spans["onset_s"], spans["offset_s"], strict=True)
            )
            style = "bold green" if row.predicted else None
            table.add_row(
                name, f"{row.score:.3f}", "yes" if row.predicted else "", when, style=style
            )
        console.print(table)
    if report["failures"]:
        failed = Table(title="files not tagged", title_justify="left", title_style="bold red")
        for column in ("file", "reason", "detail"):
            failed.add_column(column, overflow="fold")
        for failure in report["failures"]:
            failed.add_row(_shown(failure["file"]), failure["reason"], failure["detail"])
        console.print(failed)
    seen = [entry["label"] for entry in report["labels"] if entry["seen_in_training"]]
    console.print(
        f"model [bold]{report['model']}[/] ({report['method']}), threshold {rule}, VGGish weights "
        f"{report['vggish_weights']}; {report['n_files_tagged']} file(s) tagged, "
        f"{report['n_files_failed']} failed, {report['n_events']} event(s)."
        + (f" Seen in training: {', '.join(seen)}; every other label is zero-shot." if seen else "")
    )
    if report["vggish_weights"] == "random":
        console.print(
            "[yellow]VGGish ran with random weights (offline default): scores are not meaningful "
            "for real-world audio; see featurize.weights to use the official ones.[/]"
        )
    for name, path in paths.items():
        if path:
            console.print(f"  {name}: {_shown(path)}", highlight=False, soft_wrap=True)


def _shown(path: str) -> str:
    """Paths under the current folder are shown relative to it (as the user typed them)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``zeroshot-audio`` console script."""
    from kedro.framework.project import configure_project

    configure_project(PACKAGE)
    cli.main(args=argv, prog_name="zeroshot-audio")


if __name__ == "__main__":
    main()
