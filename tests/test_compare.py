"""`jaxdl-compare` on run directories laid out as jaxdl-train writes them (no training needed)."""

from __future__ import annotations

import csv
import json
import re

import pytest
import yaml

from jaxdl.apps.compare.app import main as compare_main
from jaxdl.apps.compare.records import find_runs
from jaxdl.apps.compare.table import seeds_table, sort_runs
from jaxdl.run_status import write_status


def make_run(
    path,
    overrides: dict,
    val_accuracy: list[float],
    status: str = "completed",
    error: str = "",
    objective: str = "val/accuracy",
    truncated: bool = False,
):
    """A run directory with the files jaxdl-train writes: overrides, config, metrics per epoch, results, status."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(
        yaml.safe_dump([f"{k}={v}" for k, v in overrides.items()] + ["hydra.launcher.timeout_min=5"])
    )
    (path / "config.yaml").write_text(yaml.safe_dump({"trainer": {"objective": objective}}))
    lines = [
        json.dumps(
            {"step": 10 * e, "epoch": e, "train/loss": 1.0 / e, "val/loss": 1.0 - a, "val/accuracy": a, "time/epoch_s": 2.0}
        )
        for e, a in enumerate(val_accuracy, 1)
    ]
    if truncated:
        lines.append('{"step": 99, "epo')  # killed while writing
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    if status == "completed":
        (path / "results.json").write_text(json.dumps({"test/accuracy": val_accuracy[-1] - 0.01, "test/loss": 0.5}))
    fields = {"error": error} if error else {}
    write_status(path, status, attempt=1, wall_s=3.0 * len(val_accuracy), **fields)


@pytest.fixture
def sweep(tmp_path):
    """lr 0.1 (seeds reach 0.8, 0.9, 1.0) and lr 0.01 (0.5, 0.7) plus a failed lr=10 run and a killed one."""
    root = tmp_path / "multirun"
    runs = [("0.1", 0, [0.6, 0.8]), ("0.1", 1, [0.7, 0.9]), ("0.1", 2, [0.9, 1.0]), ("0.01", 0, [0.5]), ("0.01", 1, [0.7])]
    for i, (lr, seed, accs) in enumerate(runs):
        make_run(root / str(i), {"optimizer.learning_rate": lr, "trainer.seed": seed, "trainer.epochs": 2}, accs)
    make_run(
        root / "5",
        {"optimizer.learning_rate": "10", "trainer.seed": 0, "trainer.epochs": 2},
        [0.1],
        status="failed",
        error="TrainingDiverged: training loss is nan at step 20",
    )
    make_run(
        root / "6",
        {"optimizer.learning_rate": "0.01", "trainer.seed": 2, "trainer.epochs": 2},
        [0.6],
        status="running",
        truncated=True,
    )
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return root


def test_records_read_every_run_with_status_overrides_and_metrics(sweep):
    records = find_runs([sweep])
    assert [r.name for r in records] == [str(i) for i in range(7)]
    assert [r.status for r in records] == ["completed"] * 5 + ["failed", "running"]
    best = records[2]
    assert best.overrides == {"optimizer.learning_rate": "0.1", "trainer.seed": "2", "trainer.epochs": "2"}
    assert (best.metric("best val/accuracy"), best.metric("final val/accuracy"), best.metric("test/accuracy")) == (1.0, 1.0, 0.99)
    assert best.metric("best val/loss") == pytest.approx(0.0) and best.wall_s == 6.0
    assert records[6].metric("epochs") == 1  # the half-written line of the killed run is skipped
    assert records[5].error.startswith("TrainingDiverged")


def test_seeds_are_aggregated_as_mean_and_std(sweep):
    table = seeds_table(find_runs([sweep]))
    rows = {row[0]: dict(zip(table.header, row)) for row in table.rows}
    assert table.header[:3] == ["optimizer.learning_rate", "seeds", "not completed"]
    assert rows["0.1"]["best val/accuracy"] == "0.9000 ± 0.1000" and rows["0.1"]["seeds"] == 3
    assert rows["0.01"]["best val/accuracy"] == "0.6000 ± 0.1414" and rows["0.01"]["not completed"] == 1  # the killed run
    assert rows["10"]["seeds"] == 0 and rows["10"]["best val/accuracy"] == ""


def test_sorting_follows_the_objective_and_puts_runs_without_it_last(tmp_path, sweep):
    records = find_runs([sweep])
    assert [r.name for r in sort_runs(records, "best val/accuracy")][:3] == ["2", "1", "0"]
    assert [r.name for r in sort_runs(records, "best val/loss")][0] == "2"  # lower is better
    assert [r.name for r in sort_runs(records, "test/accuracy")][-2:] == ["5", "6"]


def test_cli_writes_markdown_csv_html_and_prints_the_top_runs(sweep, tmp_path, capsys):
    compare_main([str(sweep), "--out", str(tmp_path / "out"), "--top", "3"])
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == "7 runs; top 3 by best val/accuracy:"
    assert re.search(r"1\. best val/accuracy\s+1\.0000\s+\[completed\] 2  optimizer.learning_rate=0.1 trainer.seed=2", printed)
    assert "failed: 5: TrainingDiverged: training loss is nan at step 20" in printed
    rows = list(csv.DictReader((tmp_path / "out" / "comparison.csv").open()))
    assert [r["run"] for r in rows][:3] == ["2", "1", "0"] and len(rows) == 7
    assert "trainer.epochs" not in rows[0]  # shared by every run: said once above the table, not a column
    markdown = (tmp_path / "out" / "comparison.md").read_text()
    assert "Every run: trainer.epochs=2." in markdown and "5 completed, 1 failed, 1 running" in markdown
    assert "- 5: TrainingDiverged" in markdown and "| 0.1 | 3 | 0 | 0.9000 ± 0.1000 |" in markdown
    page = (tmp_path / "out" / "comparison.html").read_text()
    assert page.count('<tr class="failed">') == 1 and page.count('<tr class="running">') == 1
    assert 'src="data:image/png;base64,' in page and "addEventListener('click'" in page
    assert not re.search(r'(src|href)="(?!data:)', page)  # self-contained: nothing to fetch


def test_several_paths_and_single_run_directories(sweep, tmp_path, capsys):
    other = tmp_path / "runs" / "digits-lenet5" / "2026-11-25_10-00-00"
    make_run(other, {}, [0.95])
    compare_main([str(sweep), str(other), "--out", str(tmp_path / "both"), "--sort", "wall_s"])
    names = [r["run"] for r in csv.DictReader((tmp_path / "both" / "comparison.csv").open())]
    assert len(names) == 8 and "multirun/0" in names and "2026-11-25_10-00-00" in names
    assert "by wall_s" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args,message",
    [
        (["/nonexistent/sweep"], "error: /nonexistent/sweep is not a directory"),
        (["{empty}"], "error: no jaxdl runs under"),
        (["{empty}", "--sort", "accuracy"], "error: unknown sort metric 'accuracy'"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, args, message):
    args = [a.replace("{empty}", str(tmp_path)) for a in args]
    with pytest.raises(SystemExit) as exit_info:
        compare_main(args)
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith(message)


def test_results_json_alone_marks_a_run_completed(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"test/accuracy": 0.5}))
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "epoch": 1, "train/loss": 1.0, "val/accuracy": 0.4}) + "\n")
    (record,) = find_runs([tmp_path])
    assert record.status == "completed" and record.metric("test/accuracy") == 0.5 and record.metric("best val/accuracy") == 0.4


def test_optuna_best_trial_is_reported(sweep, tmp_path, capsys):
    (sweep / "optimization_results.yaml").write_text(
        "name: optuna\nbest_params:\n  optimizer.learning_rate: 0.1\nbest_value: 1.0\n"
    )
    compare_main([str(sweep), "--out", str(tmp_path / "out")])
    line = f"Optuna best in {sweep}: 1.0000 with optimizer.learning_rate=0.1"
    assert line in capsys.readouterr().out and line in (tmp_path / "out" / "comparison.md").read_text()


def test_damaged_run_files_are_reported_not_tracebacks(tmp_path):
    from jaxdl.apps.compare.records import find_runs

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "config.yaml").write_text("[1, 2]\n")  # not a mapping
    (run / "status.json").write_text("[]")  # a list
    (run / "results.json").write_text("{truncated")
    (run / "metrics.jsonl").write_text('[1, 2]\n{"step": 1, "epoch": 1, "val/accuracy": "high", "train/loss": 0.5}\n')
    (record,) = find_runs([run])
    assert record.status == "unknown" and record.curves == [{"step": 1, "epoch": 1, "train/loss": 0.5}]
    assert "status.json holds a list" in record.error and "results.json is not valid JSON" in record.error
    assert "best val/accuracy" not in record.metrics and record.metrics["final train/loss"] == 0.5


def test_tensorboard_event_files_read_back_with_tensorboardx(tmp_path):
    """Our torch-free event writer against tensorboardX's protobufs and CRC (an independent implementation)."""
    import struct

    from tensorboardX.crc32c import crc32c as reference_crc
    from tensorboardX.proto import event_pb2

    from jaxdl.tracking.events import EventWriter, crc32c

    assert crc32c(b"123456789") == reference_crc(b"123456789") == 0xE3069283  # the CRC-32C check value
    writer = EventWriter(tmp_path, purge_step=5)
    writer.add_scalar("val/accuracy", 0.875, 7)
    writer.close()
    data, events = writer.path.read_bytes(), []
    while data:
        (length,) = struct.unpack("<Q", data[:8])
        events.append(event_pb2.Event.FromString(data[12 : 12 + length]))
        data = data[16 + length :]
    assert events[0].file_version == "brain.Event:2"
    assert events[1].step == 5 and events[1].session_log.status == event_pb2.SessionLog.START
    assert events[2].step == 7 and events[2].summary.value[0].tag == "val/accuracy"
    assert events[2].summary.value[0].simple_value == 0.875
