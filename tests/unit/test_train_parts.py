"""The parts of training on their own: the run folder's owner, fp16 gradient scalers, and the
face step under DistributedDataParallel when one rank's batch has no face."""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
import torch
from torch import nn

from conftest import tiny_train_config
from dancenow.data.dataset import PairDataset, PreparedData, collate_pairs
from dancenow.errors import InputError
from dancenow.models.losses import GANLoss
from dancenow.run import RUN_SCHEMA, RunDir, load_trained
from dancenow.tensors import to_tensor
from dancenow.train import checkpoint as ckpt
from dancenow.train.distributed import DistInfo, init_distributed, shutdown
from dancenow.train.loop import weights_digest
from dancenow.train.stages import Builder, make_optim, person_spec
from dancenow.train.steps import StepContext, face_step


# ------------------------------------------------------------------ the run folder
def test_run_folder_round_trip_through_its_owner(tiny_run):
    run = RunDir(tiny_run)
    cfg = run.load_config()
    assert cfg.schema == RUN_SCHEMA and cfg.stages == ("global", "face")
    assert cfg.train == tiny_train_config(use_vgg_loss=True)  # the typed training config, exactly
    assert cfg.person == person_spec(cfg.train)
    model = load_trained(tiny_run)
    assert model.size == cfg.data.size and model.face_generator is not None
    assert model.generator.config.spec == cfg.person and model.generator.background is not None
    # saving what was loaded writes the same file
    before = run.config_path.read_bytes()
    run.save_config(cfg)
    assert run.config_path.read_bytes() == before


def test_unknown_run_schema_is_one_clear_error(tiny_run, tmp_path):
    import shutil

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other)
    d = json.loads((other / "config.json").read_text())
    d["schema"] = RUN_SCHEMA + 1
    (other / "config.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match=r"config\.json: run folder schema .* is not") as exc:
        load_trained(other)
    assert "\n" not in str(exc.value)
    del d["schema"]  # a run folder from before the schema existed
    (other / "config.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="schema 1 is not"):
        RunDir(other).load_config()
    d["schema"], d["train"]["no_such_option"] = RUN_SCHEMA, 1
    (other / "config.json").write_text(json.dumps(d))
    with pytest.raises(InputError, match="invalid run config.*no_such_option"):
        RunDir(other).load_config()


# ------------------------------------------------------------------ fp16 gradient scaler
def test_fp16_scaler_state_saved_and_restored(tmp_path):
    cfg = tiny_train_config(precision="fp16")
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    opt = make_optim(cfg, net.parameters(), torch.device("cpu"))
    assert opt.scaler is not None and make_optim(cfg.replace(precision="fp32"), net.parameters(),
                                                 torch.device("cpu")).scaler is None
    x = torch.randn(4, 3)
    for _ in range(3):
        opt.step(net(x).pow(2).sum())
    before = [p.detach().clone() for p in net.parameters()]
    scale = opt.scaler.get_scale()
    opt.step(net(x).sum() * float("inf"))  # an overflowing step is skipped and the scale backs off
    assert all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    assert opt.scaler.get_scale() == scale * 0.5
    ckpt.save_checkpoint(tmp_path / "c", {}, {"G": opt.opt}, {"step": 4}, scalers={"G": opt.scaler})
    fresh = make_optim(cfg, nn.Linear(3, 2).parameters(), torch.device("cpu"))
    assert fresh.scaler.get_scale() != opt.scaler.get_scale()
    ckpt.load_scalers(tmp_path / "c", {"G": fresh.scaler})
    assert fresh.scaler.state_dict() == opt.scaler.state_dict()
    ckpt.save_checkpoint(tmp_path / "plain", {}, {"G": opt.opt}, {})
    with pytest.raises(InputError, match="scalers.json"):
        ckpt.load_scalers(tmp_path / "plain", {"G": fresh.scaler})


# ------------------------------------------------------------------ DDP: a rank without a face
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _face_worker(rank: int, world: int, port: int, data_dir: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    info, device = init_distributed("cpu")
    try:
        cfg = tiny_train_config()
        data = PreparedData.load(data_dir)
        builder = Builder(cfg, person_spec(cfg), device, info, to_tensor(data.background())[None])
        stage = builder.build("face", 1, None)
        ctx = StepContext(cfg, device, info, GANLoss(), None, int(data.manifest["face_box_size"]))
        ds = PairDataset(data, "train")
        batch = collate_pairs([ds[0]])
        assert int(batch.face_box[0, 0]) >= 0, "the tiny clip's first pair must show a face"
        if rank == 1:  # this rank's batch has no face: it must still join every collective
            batch = type(batch)(batch.label_prev, batch.label, batch.image_prev, batch.image,
                                torch.full_like(batch.face_box, -1), batch.index)
        losses = [face_step(ctx, stage, batch, cfg.lr) for _ in range(2)]
        with open(f"{out}/rank{rank}.json", "w") as fh:
            json.dump({"digest": weights_digest(stage.raw["FG"]), "losses": losses}, fh)
    finally:
        shutdown(info)


def test_ddp_face_step_with_a_rank_without_faces_finishes(tiny_data, tmp_path):
    import torch.multiprocessing as mp

    procs = mp.start_processes(_face_worker, args=(2, _free_port(), str(tiny_data), str(tmp_path)), nprocs=2,
                               join=False, start_method="spawn")
    deadline = time.time() + 180
    while not procs.join(timeout=5):
        if time.time() > deadline:
            for p in procs.processes:
                p.kill()
            pytest.fail("DDP face step hung: a rank without faces skipped a collective")
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["digest"] == r1["digest"]  # the ranks stayed in step
    assert all(s["F_l1"] > 0 for s in r0["losses"]) and r1["losses"] == [{}, {}]


# ------------------------------------------------------------------ generator options, precision auto
@pytest.mark.parametrize("upsample,skips", [("resize", False), ("transpose", True), ("resize", True)])
def test_generator_options_build_save_and_load(tmp_path, upsample, skips):
    from dancenow.models.generator import GeneratorConfig, build_generator
    from dancenow.models.io import load_component, save_component

    cfg = GeneratorConfig(in_channels=6, out_channels=4, ngf=8, n_down=2, n_blocks=1, upsample=upsample, skips=skips)
    g = build_generator(cfg, torch.Generator().manual_seed(0))
    x = torch.rand(1, 6, 32, 48) * 2 - 1
    y = g(x)
    assert y.shape == (1, 4, 32, 48)
    assert any(isinstance(m, nn.Upsample) for m in g.modules()) == (upsample == "resize")
    save_component(g, cfg, tmp_path / "g")
    g2, cfg2 = load_component(tmp_path / "g")
    assert cfg2 == cfg and torch.equal(g2(x), g.eval()(x))


def test_unet_skips_reach_the_output():
    """With skips the output depends on the input's fine detail through a short path: zeroing the
    bottleneck's residual blocks still leaves the output a function of the input."""
    from dancenow.models.generator import GeneratorConfig, build_generator

    cfg = GeneratorConfig(in_channels=3, ngf=8, n_down=2, n_blocks=1, skips=True)
    g = build_generator(cfg, torch.Generator().manual_seed(0)).eval()
    a, b = torch.zeros(1, 3, 32, 32), torch.zeros(1, 3, 32, 32)
    b[..., 15:17, 15:17] = 1.0  # a 2x2 dot
    assert not torch.equal(g(a), g(b))


def test_precision_auto_is_measured_and_saved(tiny_data, tmp_path):
    from dancenow.train.loop import train

    train(tiny_data, tmp_path / "run", tiny_train_config(precision="auto", global_steps=2, use_face_gan=False),
          progress=False)
    saved = RunDir(tmp_path / "run").load_config().train.precision
    assert saved in ("fp32", "bf16")


def test_temporal_difference_loss_is_reported_and_trains(tiny_data, tmp_path):
    import json

    from conftest import tiny_train_config
    from dancenow.train.loop import train

    run = tmp_path / "run"
    train(tiny_data, run, tiny_train_config(lambda_temporal=5.0, use_face_gan=False, window_multiple=32),
          progress=False)
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    temporal = [r["G_temporal"] for r in rows if "G_temporal" in r]
    assert temporal and all(v > 0 for v in temporal)


def test_the_weight_average_follows_the_trained_weights():
    from dancenow.train.stages import ema_copy, ema_decay_at, update_ema

    net = torch.nn.Linear(3, 2)
    avg = ema_copy(net)
    old = net.weight.detach().clone()
    assert not any(p.requires_grad for p in avg.parameters()) and not avg.training
    with torch.no_grad():
        net.weight.add_(1.0)
    update_ema(avg, net, 0.75)
    assert torch.allclose(avg.weight, 0.75 * old + 0.25 * net.weight)
    assert ema_decay_at(0.999, 0) == 0.1 and ema_decay_at(0.999, 10**6) == 0.999
    assert ema_decay_at(0.5, 100) == 0.5
