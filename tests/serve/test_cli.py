"""The service's CLI commands: keys, export-training, and refusing bad settings."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from jingwang.cli import app

runner = CliRunner()


def test_keys_create_and_list(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    created = runner.invoke(app, ["keys", "create", "--role", "platform", "--tenant", "alpha", "--database-url", url])
    assert created.exit_code == 0, created.output
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("jw_")
    listed = runner.invoke(app, ["keys", "list", "--database-url", url])
    (row,) = [json.loads(line) for line in listed.stdout.splitlines()]
    assert row["role"] == "platform" and row["tenant"] == "alpha" and key.startswith(row["prefix"])
    assert key not in listed.stdout


def test_bad_key_options_exit_2_with_a_message(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    result = runner.invoke(app, ["keys", "create", "--role", "platform", "--database-url", url])
    assert result.exit_code == 2 and "a platform key needs a tenant" in result.output
    result = runner.invoke(app, ["keys", "create", "--role", "owner", "--database-url", url])
    assert result.exit_code == 2 and "--role must be platform, reviewer or admin" in result.output


def test_export_training_on_an_empty_database(tmp_path) -> None:
    out = tmp_path / "reviewed.jsonl"
    result = runner.invoke(app, ["export-training", "-o", str(out), "--database-url", f"sqlite:///{tmp_path / 'e.db'}"])
    assert result.exit_code == 0, result.output
    assert out.read_text() == "" and "wrote 0 confirmed and 0 rejected" in result.output


def test_serve_refuses_the_default_secret_in_production(monkeypatch) -> None:
    monkeypatch.setenv("JINGWANG_ENVIRONMENT", "production")
    monkeypatch.delenv("JINGWANG_SECRET_KEY", raising=False)
    result = runner.invoke(app, ["serve"])
    assert result.exit_code == 2
    assert "JINGWANG_SECRET_KEY is the default" in result.output


def test_worker_processes_split_the_cores_between_their_scorers(tmp_path, monkeypatch) -> None:
    import os

    import uvicorn

    from models.onnx_model import THREADS_ENV
    from serve.cli_commands import run_server
    from serve.config import Settings

    monkeypatch.setattr(os, "environ", {k: v for k, v in os.environ.items() if k != THREADS_ENV})
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: served.update(kwargs))
    run_server(Settings(_env_file=None, database_url=f"sqlite:///{tmp_path / 'w.db'}"), workers=2)
    assert served["workers"] == 2
    assert os.environ[THREADS_ENV] == "2"  # 4 cores / 2 workers
