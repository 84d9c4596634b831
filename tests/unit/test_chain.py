"""The chain's ledger: stages skipped by content, continued after an interruption, redone (and their old
outputs set aside, not deleted) when their inputs change; output names; progress read from files."""

from __future__ import annotations

import json

import pytest

from dancenow.app.chain import (ChainConfig, Ledger, _adopt_legacy_train, chain_progress, run_stage, source_name,
                                sources_of, stage_key, train_inputs)
from dancenow.config import preset
from dancenow.errors import DancenowError, InputError


def _work(out, calls, text="v1"):
    def work():
        calls.append(text)
        (out / "thing").mkdir(exist_ok=True)
        (out / "thing" / "f.txt").write_text(text)
        return {"made": text}
    return work


def test_a_finished_stage_with_the_same_inputs_is_skipped(tmp_path):
    calls, logs = [], []
    led = Ledger(tmp_path)
    rec, skipped = run_stage(led, "s", {"target": "a", "opt": 1}, [tmp_path / "thing"], _work(tmp_path, calls), logs.append)
    assert not skipped and rec["made"] == "v1" and rec["status"] == "done"
    rec2, skipped = run_stage(Ledger(tmp_path), "s", {"target": "a", "opt": 1}, [tmp_path / "thing"],
                              _work(tmp_path, calls), logs.append)
    assert skipped and calls == ["v1"] and rec2["key"] == rec["key"]
    assert logs == ["s: unchanged since the last run, skipped"]


def test_changed_inputs_redo_the_stage_say_why_and_keep_the_old_output(tmp_path):
    calls, logs = [], []
    run_stage(Ledger(tmp_path), "train", {"target": "a", "minutes": 1}, [tmp_path / "thing"], _work(tmp_path, calls), logs.append)
    old_key = stage_key({"target": "a", "minutes": 1})
    run_stage(Ledger(tmp_path), "train", {"target": "b", "minutes": 2}, [tmp_path / "thing"],
              _work(tmp_path, calls, "v2"), logs.append)
    assert calls == ["v1", "v2"]
    assert logs[0].startswith("train: the time budget, the target video changed: starting this stage afresh")
    assert (tmp_path / "previous" / f"thing-{old_key[:8]}" / "f.txt").read_text() == "v1"
    assert (tmp_path / "thing" / "f.txt").read_text() == "v2"


def test_an_interrupted_stage_is_continued_not_set_aside(tmp_path):
    logs = []
    led = Ledger(tmp_path)

    def dies():
        (tmp_path / "thing").mkdir()
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_stage(led, "s", {"x": 1}, [tmp_path / "thing"], dies, logs.append)
    assert json.loads((tmp_path / "chain.json").read_text())["stages"]["s"]["status"] == "running"
    rec, skipped = run_stage(Ledger(tmp_path), "s", {"x": 1}, [tmp_path / "thing"], lambda: {"went_on": True}, logs.append)
    assert not skipped and rec["went_on"] and logs == ["s: continuing where the last run stopped"]
    assert (tmp_path / "thing").is_dir() and not (tmp_path / "previous").exists()


def test_a_damaged_ledger_is_one_clear_error(tmp_path):
    (tmp_path / "chain.json").write_text("{not json")
    with pytest.raises(InputError, match="chain.json: unreadable chain ledger"):
        Ledger(tmp_path)


def test_output_names_are_safe_and_unique():
    assert source_name("/x/../My Dance (final).mp4", set()) == "My_Dance_final"
    assert source_name("../../etc/passwd", set()) == "passwd"
    assert source_name("a.mp4", {"a"}) == "a-2"
    srcs = sources_of("first.mp4", ["b.mp4", "dir/b.mp4"])
    assert [(s.result, s.side_by_side) for s in srcs] == [
        ("result.mp4", "side_by_side.mp4"), ("result-b.mp4", "side_by_side-b.mp4"),
        ("result-b-2.mp4", "side_by_side-b-2.mp4")]


def test_bad_training_options_fail_before_any_work():
    with pytest.raises(DancenowError, match="invalid training options"):
        ChainConfig(train_changes=(("no_such_field", 1),)).train_config()


def test_progress_is_read_from_the_ledger_and_the_run_folder(tmp_path):
    assert chain_progress(tmp_path).status == "new"
    Ledger(tmp_path).update(status="running", current="train", options={"minutes": 2.0})
    (tmp_path / "run" / "checkpoints" / "latest").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "latest" / "state.json").write_text(
        json.dumps({"stage": "global", "stage_index": 0, "stage_step": 20, "planned": {"global": 100}}))
    recs = [{"stage": "global", "step": 20, "time_s": 30.0, "loss": 1.0},
            {"stage": "global", "step": 20, "time_s": 31.0, "val_ssim_person": 0.5},
            {"stage": "global", "step": 21, "time_s": 33.0, "loss": 0.9}]
    (tmp_path / "run" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
    p = chain_progress(tmp_path)
    assert (p.status, p.stage, p.train_stage, p.step, p.total, p.val_ssim) == ("running", "train", "global", 21, 100, 0.5)
    assert p.eta_s == pytest.approx(120 - 33.0)


def test_one_chain_at_a_time_in_a_folder(tmp_path):
    from dancenow.app.chain import _exclusive

    with _exclusive(tmp_path):
        with pytest.raises(InputError, match="another `dancenow run` is working in this folder"):
            with _exclusive(tmp_path):
                pass
    with _exclusive(tmp_path):  # released with its holder
        pass


def test_training_is_keyed_on_what_was_asked_not_on_the_presets_values(monkeypatch):
    from dancenow import config

    asked = ChainConfig(minutes=5.0, train_changes=(("lr", 0.001),))
    before = train_inputs(asked, "DATA")
    assert before == {"data": "DATA", "preset": "cpu", "train_changes": {"lr": 0.001}, "minutes": 5.0}
    # a later version improves the preset: a finished run is kept, an interrupted one resumes
    monkeypatch.setitem(config.PRESETS, "cpu", preset("cpu").replace(fast_repeat=3, lambda_matte=5.0))
    assert train_inputs(asked, "DATA") == before
    assert stage_key(train_inputs(ChainConfig(minutes=5.0, train_changes=(("lr", 0.002),)), "DATA")) != stage_key(before)


def _legacy_ledger(tmp_path, recorded):
    """A ledger as versions before train_inputs wrote it: train keyed on the whole config."""
    led = Ledger(tmp_path)
    t_in = {"data": "DATA", "train": recorded, "minutes": 5.0}
    old = stage_key(t_in)
    led.set_stage("train", {"key": old, "inputs": t_in, "status": "done"})
    e_in = {"run": old, "eval_frames": 48}
    led.set_stage("evaluate", {"key": stage_key(e_in), "inputs": e_in, "status": "done"})
    return old


def test_a_legacy_ledger_is_re_keyed_not_retrained(tmp_path):
    recorded = preset("cpu").replace(lr=0.001, fast_repeat=1).to_dict()   # an older cpu preset, lr asked for
    _legacy_ledger(tmp_path, recorded)
    inputs = train_inputs(ChainConfig(minutes=5.0, train_changes=(("lr", 0.001),)), "DATA")
    led = Ledger(tmp_path)
    _adopt_legacy_train(led, inputs)
    calls, logs = [], []
    rec, skipped = run_stage(Ledger(tmp_path), "train", inputs, [tmp_path / "run"], lambda: calls.append(1) or {},
                             logs.append)
    assert skipped and calls == [] and rec["key"] == stage_key(inputs)
    e_in = Ledger(tmp_path).stages["evaluate"]["inputs"]
    assert e_in["run"] == rec["key"] and Ledger(tmp_path).stages["evaluate"]["key"] == stage_key(e_in)


def test_a_legacy_ledger_with_other_options_is_retrained(tmp_path):
    old = _legacy_ledger(tmp_path, preset("cpu").replace(lr=0.001).to_dict())
    for asked in (ChainConfig(minutes=5.0, train_changes=(("lr", 0.002),)),
                  ChainConfig(minutes=5.0, preset="demo", train_changes=(("lr", 0.001),)),
                  ChainConfig(minutes=6.0, train_changes=(("lr", 0.001),))):
        led = Ledger(tmp_path)
        _adopt_legacy_train(led, train_inputs(asked, "DATA"))
        assert Ledger(tmp_path).stages["train"]["key"] == old
