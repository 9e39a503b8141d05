"""`jingwang scan`, `eval` and `train-baseline` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from jingwang.cli import app

runner = CliRunner()


def scan(*args: str, input: str | None = None):
    return runner.invoke(app, ["scan", *args], input=input)


def test_scan_writes_one_line_per_input_line_in_order(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "text": "高价收肾，O型优先，配型快"}\n'
        '{"id": "b", "text": "今天天气很好"}\n'
        '{"id": "c", "text": ""}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = scan(str(source), "-o", str(out), "--model", "lexicon")
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [line["id"] for line in lines] == ["a", "b", "c"]
    assert lines[0]["decision"] != "pass" and "organ_trade" in lines[0]["labels"]
    assert lines[1]["decision"] == "pass" and lines[2]["decision"] == "pass"
    assert set(lines[0]) == {"id", "decision", "labels", "scores", "evidence"}


def test_scan_reads_plain_text_from_stdin_with_line_numbers_as_ids() -> None:
    result = scan("-", "--model", "lexicon", input="第一行\n高价收肾配型快\n")
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["id"] for line in lines] == ["1", "2"]


def test_malformed_lines_are_reported_skipped_and_exit_2(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"id": "a", "text": "你好"}\n{"id": "b", "text": 5}\n{not json\n{"id": "d", "text": "再见"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    result = scan(str(source), "-o", str(out), "--model", "lexicon")
    assert result.exit_code == 2
    assert "in.jsonl:2" in result.stderr and "in.jsonl:3" in result.stderr
    assert [json.loads(x)["id"] for x in out.read_text(encoding="utf-8").splitlines()] == ["a", "d"]


def test_scan_rejects_a_missing_file_and_an_unknown_model(tmp_path: Path) -> None:
    missing = scan(str(tmp_path / "nope.jsonl"), "--model", "lexicon")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    source = tmp_path / "in.jsonl"
    source.write_text("你好\n", encoding="utf-8")
    unknown = scan(str(source), "--model", str(tmp_path / "no-model"))
    assert unknown.exit_code == 2 and "artifact.json" in unknown.stderr
    assert "Traceback" not in unknown.output


def test_scan_rejects_invalid_utf8(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"\xff\xfe\xfa broken\n")
    result = scan(str(source), "--model", "lexicon")
    assert result.exit_code == 2 and "UTF-8" in result.stderr


def test_eval_prints_metrics_and_writes_a_report(tiny_splits: dict[str, Path], tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = runner.invoke(
        app, ["eval", str(tiny_splits["test"]), "--model", "lexicon", "--out", str(run)]
    )
    assert result.exit_code == 0, result.output
    assert "macro-F1" in result.stdout
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert 0.0 <= metrics["macro_f1"] <= 1.0
    assert "<img" in (run / "report.html").read_text(encoding="utf-8")


def test_eval_names_the_malformed_line(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"id": "1", "text": "x", "labels": ["not_a_label"]}\n', encoding="utf-8")
    result = runner.invoke(app, ["eval", str(data), "--model", "lexicon"])
    assert result.exit_code == 2
    assert "not_a_label" in result.stderr


def test_train_baseline_writes_a_loadable_artifact(tiny_splits: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "artifact"
    result = runner.invoke(
        app,
        ["train-baseline", "--train", str(tiny_splits["train"]), "--valid", str(tiny_splits["valid"]),
         "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    info = json.loads((out / "artifact.json").read_text(encoding="utf-8"))
    assert info["kind"] == "tfidf" and set(info["thresholds"]) == set(info["labels"])


def test_export_without_calibration_texts_says_how_to_go_on(tmp_path: Path) -> None:
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "classifier.json").write_text("{}", encoding="utf-8")
    missing = tmp_path / "nowhere.jsonl"
    result = runner.invoke(app, ["export", str(model_dir), str(tmp_path / "out"), "--calibration", str(missing)])
    assert result.exit_code == 2
    assert "nowhere.jsonl" in result.stderr and "--outlier-neurons 0" in result.stderr


def test_scan_on_two_worker_processes_writes_the_same_lines_in_order(tmp_path: Path) -> None:
    lines = [json.dumps({"id": f"p{i}", "text": text}, ensure_ascii=False)
             for i, text in enumerate(["高价收肾，O型优先，配型快", "今天天气很好", "代孕包成功，全国可做"] * 7)]
    lines.insert(5, "{not json")
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    first = scan(str(source), "-o", str(one), "--model", "lexicon", "--batch-size", "4")
    second = scan(str(source), "-o", str(two), "--model", "lexicon", "--batch-size", "4", "--workers", "2")
    assert first.exit_code == second.exit_code == 2  # the malformed line, reported by both
    assert "in.jsonl:6: invalid JSON" in second.stderr
    assert two.read_text(encoding="utf-8") == one.read_text(encoding="utf-8")
    assert len(two.read_text(encoding="utf-8").splitlines()) == 21


def test_scan_with_workers_refuses_a_missing_model_before_starting_them(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("你好\n", encoding="utf-8")
    result = scan(str(source), "--model", str(tmp_path / "no-model"), "--workers", "2")
    assert result.exit_code == 2 and "artifact.json" in result.stderr
