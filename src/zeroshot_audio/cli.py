"""The ``zeroshot-audio`` console script, also this Kedro project's CLI (``kedro predict ...``).

- ``zeroshot-audio predict AUDIO... --labels TEXT...``: tag audio files with any label texts and
  print, per file, every label's score, the tags and their time stamps. It runs the project's
  ``predict`` pipeline in a ``KedroSession`` (runtime parameters = the command-line options), so
  the outputs are the catalog's versioned datasets, the model (with the VGGish set-up and label
  encoder recorded in it) is the latest version of ``trained_models``, and the run is tracked in
  MLflow like any ``kedro run``. Results go to stdout; Kedro's log lines to stderr
  (conf/logging.yml). ``--labels`` takes every word up to the next option or ``--``.
  With ``--model DIR_OR_MLFLOW_URI`` (a folder written by ``export``, ``models:/name/version``,
  ``models:/name/latest``, ``runs:/run_id/tagger``) it needs no project: the checkpoint is loaded,
  its provenance checked (a model whose VGGish weights or label encoder cannot be reproduced here
  is refused, naming what differs), and the same tables are printed; nothing is written.
- ``zeroshot-audio export MODEL --out DIR``: write one trained checkpoint (a ``trained_models``
  name, ``auto``, or an MLflow model URI) as ``model.safetensors`` + ``config.json``.
- ``zeroshot-audio run ...``: Kedro's own ``run`` command, unchanged (``kedro run`` too).

Kedro imports this module to find project commands (``cli``) and ``python -m zeroshot_audio``
uses its ``run``, so the module imports nothing heavy at import time.

Exit codes of ``predict``: 0 every file tagged; 1 some files could not be read (the others are
tagged and printed), no trained model, a model refused (provenance), or the run failed; 2 bad
usage (no labels, no audio). ``export``: 0 written; 1 no such model or the folder holds one.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import click

with contextlib.redirect_stdout(sys.stderr):  # Kedro logs its logging set-up on import
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


class _PredictCommand(click.Command):
    """``--labels`` takes every word up to the next option or ``--``, as documented:
    ``predict AUDIO... --labels TEXT...`` and ``predict --labels TEXT... -- AUDIO...`` (a file
    name starting with ``-`` goes after ``--``). Click options take a fixed number of values, so
    the words are rewritten to one ``--labels WORD`` each before click parses the line."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, spread_labels(args))


def spread_labels(args: list[str]) -> list[str]:
    """``[a.wav, --labels, x, y, --, -b.wav]`` -> ``[a.wav, --labels, x, --labels, y, --, -b.wav]``."""
    out: list[str] = []
    taking = False
    for i, arg in enumerate(args):
        if arg == "--":
            out += args[i:]  # the rest is audio, whatever it looks like
            return out
        if arg in LABEL_FLAGS or arg.startswith("--labels="):
            out += ["--labels", arg.split("=", 1)[1]] if "=" in arg else []
            taking = True
            continue
        if taking and not (arg.startswith("-") and len(arg) > 1):
            out += ["--labels", arg]
            continue
        taking = False
        out.append(arg)
    return out


LABEL_FLAGS = ("-l", "--labels")


@cli.command(cls=_PredictCommand)
@click.argument("audio", nargs=-1, required=True)
@click.option(
    "-l",
    "--labels",
    "labels",
    multiple=True,
    metavar="TEXT...",
    help="label texts or AudioSet mids: every word up to the next option or --",
)
@click.option(
    "--threshold",
    type=float,
    metavar="SCORE",
    help="tag when score >= SCORE (default: the threshold tuned on validation at training)",
)
@click.option("--top-k", type=int, metavar="K", help="tag the K best labels of each file")
@click.option(
    "--model",
    metavar="NAME|DIR|URI",
    help="checkpoint name (e.g. rot1/temporal_attention; default: auto), a folder written by "
    "`export`, or an MLflow model URI (models:/zeroshot_audio_tagger/3, .../latest, runs:/ID/tagger)",
)
@click.option("--hop", type=float, metavar="SECONDS", help="window hop (default: no overlap)")
@click.option("--max-files", type=int, metavar="N", help="tag at most N files")
@click.option("--no-figures", is_flag=True, help="do not draw a figure per file")
@click.option("--env", help="Kedro configuration environment (default: local)")
@click.option(
    "--params",
    metavar="KEY=VALUE,...",
    help="more runtime parameters, as `kedro run --params` (e.g. featurize.weights.path=...)",
)
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Kedro project folder (default: the one around .)",
)
def predict(**options: Any) -> None:
    """Tag AUDIO (files, folders searched recursively, or globs) with any label texts (free text
    or AudioSet mids) using the latest trained model of this Kedro project, and say when each
    tagged sound happens.

    Runs the project's `predict` pipeline: outputs are versioned in data/07_model_output and
    data/08_reporting, the run is tracked in MLflow. Results go to stdout, logs to stderr.

    Example: zeroshot-audio predict recordings/ street.wav --labels "dog barking"
    "a siren far away" /m/07cx4
    """
    if options["threshold"] is not None and options["top_k"] is not None:
        raise click.UsageError("give either --threshold or --top-k, not both")
    if not options["labels"]:
        raise click.UsageError("missing --labels: give at least one label text or AudioSet mid")
    click.get_current_context().exit(predict_main(options))


def _runtime_params(options: dict[str, Any], audio: list[str], labels: list[str]) -> dict:
    from omegaconf import OmegaConf

    predict: dict[str, Any] = {"audio": audio, "labels": labels, "max_files": options["max_files"]}
    if options["threshold"] is not None:
        predict["threshold"] = {"rule": "fixed", "fixed": options["threshold"]}
    if options["top_k"] is not None:
        predict["threshold"] = {"rule": "top_k", "top_k": options["top_k"]}
    if options["model"]:
        predict["model"] = options["model"]
    if options["hop"] is not None:
        predict["hop_s"] = options["hop"]
    if options["no_figures"]:
        predict["figures"] = {"enabled": False}
    extra = OmegaConf.from_dotlist(
        [item.strip() for item in (options["params"] or "").split(",") if item.strip()]
    )
    merged = OmegaConf.merge(extra, {"predict": predict})
    return OmegaConf.to_container(merged)  # type: ignore[return-value]


def predict_main(options: dict[str, Any]) -> int:
    """Check the inputs cheaply, run the ``predict`` pipeline, print the tables."""
    from rich.console import Console
    from rich.markup import escape

    from zeroshot_audio.inference import list_audio_files, parse_labels
    from zeroshot_audio.logfilters import logs_to_stderr

    logs_to_stderr()  # results alone on stdout, also outside a project (--model DIR)
    console = Console()
    err = Console(stderr=True, soft_wrap=True)
    try:
        labels = parse_labels(list(options["labels"]))
    except ValueError as error:
        err.print(f"[bold red]error:[/] {escape(str(error))}")
        return 2
    audio = [_absolute(source) for source in options["audio"]]
    files, missing = list_audio_files(audio, max_files=options["max_files"])
    for failure in missing:
        err.print(f"[yellow]skipped[/] {escape(failure.file)}: {escape(failure.detail)}")
    if not files:
        err.print(
            "[bold red]error:[/] no audio file to tag in " + escape(", ".join(options["audio"]))
        )
        return 2
    if options["model"] and is_model_source(options["model"]):
        return predict_with_model_source(options, audio, labels, console, err)
    return _predict_in_project(options, audio, labels, console, err)


def _predict_in_project(
    options: dict[str, Any], audio: list[str], labels: list[str], console: Any, err: Any
) -> int:
    """Run the project's ``predict`` pipeline in a ``KedroSession`` and print its outputs."""
    from rich.markup import escape

    project = _find_project(options["project"])
    if project is None:
        err.print(
            f"[bold red]error:[/] {escape(str(Path(options['project'] or Path.cwd()).resolve()))} "
            "is not in a Kedro project: run from the zeroshot-audio project folder or pass --project"
        )
        return 2
    from kedro.framework.session import KedroSession

    from zeroshot_audio.datasets.paths import dataset_path

    params = _runtime_params(options, audio, labels)
    with KedroSession.create(
        project_path=project, env=options["env"], runtime_params=params
    ) as session:
        catalog = session.load_context().catalog
        absent = [
            name for name in ("trained_models", "label_embeddings") if not catalog.exists(name)
        ]
        if absent:
            err.print(
                f"[bold red]error:[/] no trained model yet ({', '.join(absent)} not found); "
                f"{TRAIN_HINT}."
            )
            return 1
        try:
            session.run(pipeline_names=["predict"])
        except Exception as error:  # every failure reaches the user as one readable line
            err.print(
                f"[bold red]error:[/] predict failed: {type(error).__name__}: {escape(str(error))}"
            )
            return 1
        version = session.session_id
        catalog = session.load_context().catalog
        predictions = catalog.load("predictions", version=version)
        events = catalog.load("sound_events", version=version)
        report = catalog.load("predict_report", version=version)
        paths = {name: dataset_path(catalog.get(name), version) for name in OUTPUTS}
    print_results(console, predictions, events, report, paths)
    return 1 if report["n_files_failed"] else 0


def is_model_source(model: str) -> bool:
    """An exported folder or an MLflow model URI (anything else names a ``trained_models`` entry)."""
    from zeroshot_audio.inference.export import MLFLOW_URI_SCHEMES

    return model.startswith(MLFLOW_URI_SCHEMES) or Path(model).expanduser().is_dir()


def predict_with_model_source(
    options: dict[str, Any], audio: list[str], labels: list[str], console: Any, err: Any
) -> int:
    """``predict --model DIR_OR_URI``, Kedro-free: load and check the checkpoint, tag, print the
    tables of the in-project ``predict``. Free-text labels only (AudioSet mids need the project's
    ``label_embeddings``); ``--params featurize.weights.*`` says where the VGGish files are."""
    from rich.markup import escape

    from zeroshot_audio.inference import (
        PredictConfig,
        Predictor,
        resolve_labels,
        tag_audio,
        weights_location,
    )
    from zeroshot_audio.inference.export import resolve_model_source

    params = _runtime_params(options, audio, labels)
    try:
        config = PredictConfig.from_params(params["predict"])
        checkpoint = resolve_model_source(options["model"])
        predictor = Predictor(
            checkpoint,
            weights_location=weights_location(params.get("featurize")),
            min_sound_s=config.min_sound_s,
        )
        table = resolve_labels(config.labels, None, checkpoint.train_classes)
        result, report = tag_audio(predictor, table, config)
    except (OSError, ValueError, RuntimeError) as error:  # ProvenanceError is a ValueError
        err.print(f"[bold red]error:[/] model {escape(options['model'])}: {escape(str(error))}")
        return 1
    print_results(console, result.predictions, result.events, report, {})
    return 1 if report["n_files_failed"] else 0


@cli.command("export")
@click.argument("model", default="auto")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="folder to write model.safetensors + config.json into (must not hold a model yet)",
)
@click.option("--env", help="Kedro configuration environment (default: local)")
@click.option(
    "--project",
    type=click.Path(file_okay=False, path_type=Path),
    help="Kedro project folder (default: the one around .)",
)
def export(model: str, out_dir: Path, env: str | None, project: Path | None) -> None:
    """Write MODEL as a portable folder (model.safetensors + config.json, no pickle) to share,
    serve or load with `predict --model DIR`. MODEL: a checkpoint of this project's latest
    `trained_models` (e.g. rot1/temporal_attention; default: auto, the temporal-attention model
    of the rotation with the best validation micro-F1), or an MLflow URI (models:/..., runs:/...).
    """
    from zeroshot_audio.inference import export as portable

    try:
        if model.startswith(portable.MLFLOW_URI_SCHEMES):
            checkpoint = portable.resolve_model_source(model)
        else:
            root = _find_project(project)
            if root is None:
                raise click.ClickException(
                    f"{(project or Path.cwd()).resolve()} is not in a Kedro project: run from "
                    "the project folder, pass --project, or give an MLflow URI"
                )
            from kedro.framework.session import KedroSession

            with KedroSession.create(project_path=root, env=env) as session:
                catalog = session.load_context().catalog
                if not catalog.exists("trained_models"):
                    raise click.ClickException(f"no trained model yet; {TRAIN_HINT}")
                trained = catalog.load("trained_models")
            checkpoint = portable.select_checkpoint(trained, model)
        folder = portable.export_checkpoint(checkpoint, out_dir)
    except (OSError, ValueError) as error:
        raise click.ClickException(str(error)) from error
    click.echo(f"exported {checkpoint.name} to {folder}")


def _find_project(given: Path | None) -> Path | None:
    """The Kedro project folder, bootstrapped, with its logging (results on stdout, logs on
    stderr: conf/logging.yml) also when the command runs from another folder."""
    from kedro.framework.startup import bootstrap_project
    from kedro.utils import find_kedro_project

    project = given or find_kedro_project(Path.cwd())
    if project is None or not (Path(project) / "pyproject.toml").is_file():
        return None
    project = Path(project).resolve()
    bootstrap_project(project)
    logging_yml = project / "conf" / "logging.yml"
    if "KEDRO_LOGGING_CONFIG" not in os.environ and logging_yml.is_file():
        import yaml
        from kedro.framework.project import LOGGING

        LOGGING.configure(yaml.safe_load(logging_yml.read_text(encoding="utf-8")))
    return project


def _absolute(source: str) -> str:
    """Paths are given relative to where the command runs; the Kedro run may resolve elsewhere."""
    path = Path(source).expanduser()
    return str(path if path.is_absolute() else Path.cwd() / path)


def print_results(
    console: Any,
    predictions: Any,
    events: Any,
    report: dict[str, Any],
    paths: dict[str, Path | None],
) -> None:
    """One table per file (labels by score, tag, events), then failures and where outputs went.

    File names, labels and details are the user's text: escaped, so ``[abc]`` prints as itself
    instead of being read as rich markup."""
    from rich.markup import escape
    from rich.table import Table

    threshold = report["threshold"]
    rule = threshold["rule"] + (
        f" {threshold['value']:.3g}"
        if threshold.get("value") is not None
        else f" k={threshold['top_k']}"
    )
    for file, rows in predictions.groupby("file", sort=False):
        duration = float(rows["duration_s"].iloc[0])
        n_windows = int(rows["n_windows"].iloc[0])
        table = Table(
            title=f"{escape(_shown(file))}  ({duration:.1f} s, {n_windows} window(s))",
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
            tag = "yes" if row.predicted else ""
            table.add_row(escape(name), f"{row.score:.3f}", tag, when, style=style)
        console.print(table)
    if report["failures"]:
        failed = Table(title="files not tagged", title_justify="left", title_style="bold red")
        for column in ("file", "reason", "detail"):
            failed.add_column(column, overflow="fold")
        for failure in report["failures"]:
            failed.add_row(
                escape(_shown(failure["file"])), failure["reason"], escape(failure["detail"])
            )
        console.print(failed)
    seen = [escape(entry["label"]) for entry in report["labels"] if entry["seen_in_training"]]
    console.print(
        f"model [bold]{escape(report['model'])}[/] ({report['method']}), threshold {rule}, "
        f"VGGish weights {report['vggish_weights']}; {report['n_files_tagged']} file(s) tagged, "
        f"{report['n_files_failed']} failed, {report['n_events']} event(s)."
        + (f" Seen in training: {', '.join(seen)}; every other label is zero-shot." if seen else "")
    )
    if report["vggish_weights"] == "random":
        console.print(
            "[yellow]VGGish ran with random weights (offline default): scores are not meaningful "
            "for real-world audio; see featurize.weights to use the official ones.[/]"
        )
    for name, path in paths.items():
        written = path is not None and path.exists()
        if written and not (path.is_dir() and not any(path.iterdir())):  # figures disabled
            console.print(f"  {name}: {escape(_shown(str(path)))}", highlight=False, soft_wrap=True)


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
