"""Training: loss falls, resume equals an uninterrupted run, DDP (torchrun, gloo) equals one process,
fine-tuning with the event-plane loss lowers it, and the CLI's refusals."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from toy_events import toy_batch

from hicgen.checkpoint import load_checkpoint
from hicgen.cli import main
from hicgen.data.batch import EventBatch
from hicgen.data.dataset import DatasetWriter
from hicgen.data.features import particle_event_features
from hicgen.errors import CheckpointError
from hicgen.training.config import PointCloudConfig, load_config_file, preset_config
from hicgen.training.optim import cosine_lr
from hicgen.training.pointcloud import PointCloudTask
from hicgen.training.trainer import STATE_DIR, evaluate, train

TINY = dict(
    event_width=32, event_blocks=2, pet_dim=32, pet_heads=2, pet_layers=2, pet_head_layers=1, pet_neighbors=4,
    ema_decay=0.99, val_fraction=0.1, warmup_steps=5, log_every=5,
)


def _write(path: Path, batch: EventBatch) -> Path:
    with DatasetWriter(path, {"eta_max": 2.5, "pt_min": 0.15, "system": "toy"}) as writer:
        writer.append(batch)
    return path


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("data") / "toy.h5", toy_batch(120, seed=7, mean_mult=20, v2=0.2))


def _repeated_event_file(path: Path, n_events: int = 200) -> Path:
    """The same 12 particles in every event (in a random order): a low-entropy set the model can learn fast."""
    rng = np.random.default_rng(0)
    n = 12
    pt = np.tile([0.3, 0.5, 0.8, 1.2, 2.0, 3.0], 2)
    eta, phi = np.linspace(-2, 2, n), np.linspace(-3, 3, n)
    pid = np.tile([211, -211, 321, -321, 2212, -2212], 2)
    order = np.concatenate([rng.permutation(n) for _ in range(n_events)])
    parts = {"pt": pt[order].astype(np.float32), "eta": eta[order].astype(np.float32), "phi": phi[order].astype(np.float32), "pid": pid[order].astype(np.int32)}
    offsets = np.arange(n_events + 1) * n
    events = particle_event_features(parts["pt"], parts["eta"], parts["phi"], offsets)
    events.update(b=rng.uniform(0, 5, n_events), ncoll=rng.integers(1, 10, n_events), npart=rng.integers(2, 10, n_events))
    return _write(path, EventBatch(events, offsets, parts))


def _val(task, models) -> dict:
    return evaluate(task, models, torch.device("cpu"), nullcontext)


@pytest.mark.slow
def test_tiny_training_loss_falls_by_a_clear_factor(tmp_path):
    data = _repeated_event_file(tmp_path / "rep.h5")
    cfg = PointCloudConfig(steps=400, batch_size=16, lr=3e-3, val_every=400, state_every=400, **{**TINY, "log_every": 50})
    task = PointCloudTask(cfg, data)
    torch.manual_seed(cfg.seed)
    before = _val(task, task.build_models())
    summary = train(task, tmp_path / "out", progress=False)
    bundle, config = load_checkpoint(tmp_path / "out")
    after = _val(task, {"event": bundle.event_model, "particle": bundle.particle_model})
    assert after["particle"] < 0.5 * before["particle"], (before, after)
    assert after["loss"] < 0.6 * before["loss"], (before, after)
    assert summary["steps"] == 400 and config["provenance"]["best_val_loss"] == pytest.approx(after["loss"], rel=1e-4)
    assert "validation step 400" in (tmp_path / "out" / "train.log").read_text()


class _Interrupt(Exception):
    pass


class _StopAt(PointCloudTask):
    """The task, interrupted when the trainer asks for the batch of step `stop`."""

    stop = -1

    def train_batch(self, step, rank=0, world=1):
        if step == self.stop:
            raise _Interrupt
        return super().train_batch(step, rank, world)


def test_resume_continues_the_same_schedule(tmp_path, toy_file):
    cfg = PointCloudConfig(steps=8, batch_size=8, lr=1e-3, val_every=4, state_every=4, **TINY)
    straight = train(PointCloudTask(cfg, toy_file), tmp_path / "a", progress=False)
    task = _StopAt(cfg, toy_file)
    task.stop = 6  # dies after the state of step 4 was saved
    with pytest.raises(_Interrupt):
        train(task, tmp_path / "b", progress=False)
    state_json = tmp_path / "b" / STATE_DIR / "state.json"
    saved = json.loads(state_json.read_text())
    assert saved["step"] == 4
    with pytest.raises(CheckpointError, match="another config"):
        train(PointCloudTask(cfg.replace(lr=2e-3), toy_file), tmp_path / "b", resume=True, progress=False)
    del saved["config"]["bf16"]  # a state saved before a field (here at its default) existed still resumes
    state_json.write_text(json.dumps(saved))
    resumed = train(PointCloudTask(cfg, toy_file), tmp_path / "b", resume=True, progress=False)
    assert resumed["steps"] == straight["steps"] == 8
    _assert_same_final_state(tmp_path / "a", tmp_path / "b")
    sa = json.loads((tmp_path / "a" / STATE_DIR / "state.json").read_text())
    assert sa["optimizer_groups"][0]["lr"] == pytest.approx(cosine_lr(7, 1e-3, 8, 5, cfg.min_lr_fraction))


def _assert_same_final_state(a_dir: Path, b_dir: Path) -> None:
    """Two runs' last training states hold the same weights, EMA, optimiser state and best loss (not the RNG)."""
    a = load_file(str(a_dir / STATE_DIR / "state.safetensors"))
    b = load_file(str(b_dir / STATE_DIR / "state.safetensors"))
    assert a.keys() == b.keys() and any(k.startswith("opt.") for k in a) and any(k.startswith("ema.") for k in a)
    for key in a:
        if key != "rng.torch":
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-7, msg=key)
    sa = json.loads((a_dir / STATE_DIR / "state.json").read_text())
    sb = json.loads((b_dir / STATE_DIR / "state.json").read_text())
    assert sa["optimizer_groups"] == sb["optimizer_groups"]  # same learning rate at the end
    assert sa["best_val_loss"] == pytest.approx(sb["best_val_loss"], rel=1e-6)


class _SignalAt(PointCloudTask):
    """The task; SIGTERM reaches the process when the trainer asks for the batch of step `at`."""

    at = -1

    def train_batch(self, step, rank=0, world=1):
        if step == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return super().train_batch(step, rank, world)


def test_sigterm_saves_the_state_of_its_step_and_resume_goes_on(tmp_path, toy_file, monkeypatch, capsys):
    """SIGTERM (a batch system's time limit) in step 5 of 8: the step is finished, the training state of step 6 is
    saved although state_every is 4, `hicgen train` exits with 130 and one line, and --resume ends where an
    uninterrupted run ends."""
    cfg = PointCloudConfig(steps=8, batch_size=8, lr=1e-3, val_every=4, state_every=4, **TINY)
    straight = train(PointCloudTask(cfg, toy_file), tmp_path / "a", progress=False)
    task = _SignalAt(cfg, toy_file)
    task.at = 5
    stopped = train(task, tmp_path / "b", progress=False)
    assert stopped["interrupted"] and stopped["steps"] == 6
    assert json.loads((tmp_path / "b" / STATE_DIR / "state.json").read_text())["step"] == 6
    assert "stopped by a signal after step 6/8" in (tmp_path / "b" / "train.log").read_text()
    resumed = train(PointCloudTask(cfg, toy_file), tmp_path / "b", resume=True, progress=False)
    assert resumed["steps"] == straight["steps"] == 8 and "interrupted" not in resumed
    _assert_same_final_state(tmp_path / "a", tmp_path / "b")

    config = _tiny_config_file(tmp_path / "tiny.json")
    monkeypatch.setattr(_SignalAt, "at", 2)
    monkeypatch.setattr("hicgen.training.pointcloud.PointCloudTask", _SignalAt)  # the class `hicgen train` builds
    assert main(["train", "--data", str(toy_file), "--out", str(tmp_path / "c"), "--steps", "6", "--config", str(config),
                 "--no-progress"]) == 130
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"hicgen: interrupted after step 3; its training state is saved in {tmp_path / 'c'}: go on with the same "
        "command and --resume")
    monkeypatch.undo()
    command = ["train", "--data", str(toy_file), "--out", str(tmp_path / "c"), "--steps", "6", "--config", str(config), "--no-progress"]
    assert main([*command, "--lr", "2e-3", "--resume"]) == 2  # an option that changes the run is refused, nothing runs
    assert capsys.readouterr().err.strip() == (f"hicgen: error: --resume continues the run saved in '{tmp_path / 'c'}' with its own "
                                               "settings, and these options change lr (saved 0.001, given 0.002); give the "
                                               "run's own options, or none")
    assert json.loads((tmp_path / "c" / STATE_DIR / "state.json").read_text())["step"] == 3
    assert main([*command, "--resume"]) == 0  # the same command goes on, as the interrupted line says
    assert json.loads((tmp_path / "c" / STATE_DIR / "state.json").read_text())["step"] == 6


def _tiny_config_file(path: Path, **extra) -> Path:
    path.write_text(json.dumps({**TINY, "val_every": 3, "state_every": 3, "lr": 1e-3, **extra}))
    return path


@pytest.mark.slow
def test_torchrun_two_ranks_equal_one_process_with_the_whole_batch(tmp_path, toy_file):
    config = _tiny_config_file(tmp_path / "tiny.json")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    common = ["--data", str(toy_file), "--config", str(config), "--steps", "3", "--batch-size", "16", "--no-progress", "--device", "cpu"]
    single = subprocess.run([sys.executable, "-m", "hicgen", "train", "--out", str(tmp_path / "one"), *common],
                            env=env, capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr
    ddp = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29531",
         "-m", "hicgen", "train", "--out", str(tmp_path / "two"), *common],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    assert "x2" in (tmp_path / "two" / "train.log").read_text()
    one = load_file(str(tmp_path / "one" / STATE_DIR / "state.safetensors"))
    two = load_file(str(tmp_path / "two" / STATE_DIR / "state.safetensors"))
    for key in one:
        if key.startswith(("model.", "ema.", "opt.")):
            # Lion moves each weight by +-lr per step, so equal updates mean equal weights to float precision.
            torch.testing.assert_close(two[key], one[key], rtol=1e-5, atol=1e-6, msg=key)


@pytest.mark.slow
def test_torchrun_ranks_stopped_by_sigterm_agree_on_the_step_and_save_it(tmp_path, toy_file):
    """SIGTERM to the job's process group (torchrun and its two ranks; torchrun passes it on once more): the ranks
    stop together at the next log_every step and rank 0 saves the training state of that step."""
    import time

    config = _tiny_config_file(tmp_path / "tiny.json", val_every=1000, state_every=1000)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port", "29532", "-m",
           "hicgen", "train", "--out", str(tmp_path / "two"), "--data", str(toy_file), "--config", str(config),
           "--steps", "1e5", "--batch-size", "16", "--no-progress", "--device", "cpu"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    log, deadline = tmp_path / "two" / "train.log", time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None and not (log.exists() and "step 10/" in log.read_text()):
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1][-3000:]
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)  # torchrun itself ends on the signal with its own traceback
    stopped = [int(n) for n in re.findall(r"hicgen: interrupted after step (\d+);", err)]
    assert len(stopped) == 2 and stopped[0] == stopped[1] and stopped[0] % TINY["log_every"] == 0, err[-3000:]
    assert json.loads((tmp_path / "two" / STATE_DIR / "state.json").read_text())["step"] == stopped[0]


def _event_plane_misalignment(task: PointCloudTask, models) -> float:
    """Mean 1 - cos 2(psi2_reco - psi2_true) of the denoised estimate over the training events, all at t < 0.5."""
    batch = task.make_batch(task.train_events, np.arange(len(task.train_events)), -1)
    batch.t_particle = batch.t_particle * 0.5
    with torch.no_grad():
        return float(task.loss(models, batch, -1)["ep"])


@pytest.mark.slow
def test_finetune_with_event_plane_loss_lowers_it(tmp_path, toy_file):
    config = _tiny_config_file(tmp_path / "tiny.json")
    base = ["--batch-size", "8", "--no-progress"]
    assert main(["train", "--data", str(toy_file), "--out", str(tmp_path / "oo"), "--steps", "20", "--config", str(config), *base]) == 0
    pbpb = _write(tmp_path / "pbpb.h5", toy_batch(26, seed=11, mean_mult=60, v2=0.25))  # more particles, stronger flow
    # AdamW here: in runs this small, Lion's sign() drowns the event-plane gradient in the MSE's (docs/model.md).
    (tmp_path / "ft.json").write_text(json.dumps({"optimizer": "adamw", "body_lr_scale": 0.5}))
    misalignment = {}
    for weight in ("1", "0"):
        out = tmp_path / f"pbpb{weight}"
        args = ["finetune", "--from", str(tmp_path / "oo"), "--data", str(pbpb), "--out", str(out), "--config", str(tmp_path / "ft.json"),
                "--ep-loss-weight", weight, "--steps", "150", "--lr", "3e-3", *base]
        assert main(args) == 0
        cfg = PointCloudConfig.from_dict(json.loads((out / "config.json").read_text())["training"])
        assert cfg.ep_loss_weight == float(weight) and cfg.body_lr_scale == 0.5 and cfg.optimizer == "adamw"
        bundle, config_after = load_checkpoint(out)
        task = PointCloudTask(cfg, pbpb, init_from=tmp_path / "oo")
        misalignment[weight] = _event_plane_misalignment(task, {"event": bundle.event_model, "particle": bundle.particle_model})
    torch.manual_seed(0)
    before = _event_plane_misalignment(task, task.build_models())  # the O-O weights on Pb-Pb-like events
    assert misalignment["1"] < 0.8 * before, (before, misalignment)
    assert misalignment["1"] < 0.85 * misalignment["0"], (before, misalignment)  # the loss, not just training, lowers it
    assert config_after["provenance"]["init_from"]["path"] == str(tmp_path / "oo")
    assert " ep " in (tmp_path / "pbpb1" / "train.log").read_text()
    resume = ["finetune", "--from", str(tmp_path / "oo"), "--data", str(pbpb), "--out", str(tmp_path / "pbpb0"), "--resume", *base]
    assert main([*resume, "--ep-loss-weight", "1"]) == 2  # a changed loss weight is refused, not ignored
    assert main(resume) == 0  # no option: the run keeps its own weight 0, not a new run's default 1


def test_freeze_body_keeps_the_body_fixed(tmp_path, toy_file):
    cfg = PointCloudConfig(steps=3, batch_size=8, val_every=3, state_every=3, freeze_body=True, **TINY)
    task = PointCloudTask(cfg, toy_file)
    torch.manual_seed(cfg.seed)
    start = {k: v.clone() for k, v in task.build_models()["particle"].state_dict().items()}
    train(task, tmp_path / "f", progress=False)
    state = load_file(str(tmp_path / "f" / STATE_DIR / "state.safetensors"))
    assert all(torch.equal(state[f"model.particle.{k}"], v) for k, v in start.items() if k.startswith("body."))
    assert not all(torch.equal(state[f"model.particle.{k}"], v) for k, v in start.items() if k.startswith("head."))


def test_same_step_gives_the_same_batch_whatever_the_ranks(toy_file):
    cfg = PointCloudConfig(steps=3, batch_size=8, **TINY)
    task = PointCloudTask(cfg, toy_file)
    whole = task.train_batch(5, 0, 1)
    halves = [task.train_batch(5, r, 2) for r in range(2)]
    assert torch.equal(torch.cat([h.t_particle for h in halves]), whole.t_particle)
    n = halves[0].x.shape[1]
    torch.testing.assert_close(halves[0].eps_particle, whole.eps_particle[:4, :n])
    assert not torch.equal(task.train_batch(6).t_particle, whole.t_particle)


def test_config_presets_files_and_refusals(tmp_path):
    assert preset_config("base").pet_dim == 128 and preset_config("small", steps=10).steps == 10
    with pytest.raises(ValueError, match="unknown training config keys"):
        PointCloudConfig.from_dict({"stepz": 3})
    with pytest.raises(ValueError, match="divisible"):
        PointCloudConfig(pet_dim=30, pet_heads=4)
    (tmp_path / "c.toml").write_text("[training]\nsteps = 7\nlr = 1e-4\n")
    assert load_config_file(tmp_path / "c.toml") == {"steps": 7, "lr": 1e-4}
    assert PointCloudConfig.from_dict(PointCloudConfig(steps=5).to_dict()) == PointCloudConfig(steps=5)


def test_cli_refuses_bad_input(tmp_path, toy_file, capsys):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "something").write_text("x")
    assert main(["train", "--data", str(toy_file), "--out", str(out)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
    assert main(["train", "--data", str(toy_file), "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "no training state" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text('{"learning_rate": 1}')
    assert main(["train", "--data", str(toy_file), "--out", str(tmp_path / "n2"), "--config", str(bad)]) == 2
    assert "unknown training config keys ['learning_rate']" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "n3")]) == 2
    assert main(["finetune", "--from", str(tmp_path / "nope"), "--data", str(toy_file), "--out", str(tmp_path / "n4")]) == 2
    assert "not a folder" in capsys.readouterr().err
    oo = Path(__file__).parents[1] / "weights" / "oo"
    assert main(["finetune", "--from", str(oo), "--data", str(toy_file), "--out", str(tmp_path / "n5"), "--keep-species"]) == 2
    assert "--keep-species: a spectra option only" in capsys.readouterr().err
    assert not (tmp_path / "n5").exists()


def test_lion_multi_tensor_step_follows_its_update_rule():
    """Lion (foreach ops): p <- p (1 - lr wd) - lr sign(b1 m + (1 - b1) g); m <- b2 m + (1 - b2) g, per tensor;
    a parameter without a gradient is left alone."""
    from hicgen.training.optim import Lion

    gen = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(5, 3, generator=gen)), torch.nn.Parameter(torch.randn(7, generator=gen)),
              torch.nn.Parameter(torch.randn(2, generator=gen))]
    lr, (b1, b2), wd = 0.01, (0.9, 0.99), 0.1
    opt = Lion(params, lr=lr, betas=(b1, b2), weight_decay=wd)
    expect = [p.detach().clone() for p in params]
    moments = [torch.zeros_like(p) for p in params[:2]]
    for _ in range(3):
        grads = [torch.randn(p.shape, generator=gen) for p in params[:2]]
        for p, g in zip(params[:2], grads):
            p.grad = g.clone()
        opt.step()
        for i, g in enumerate(grads):
            expect[i] = expect[i] * (1 - lr * wd) - lr * torch.sign(b1 * moments[i] + (1 - b1) * g)
            moments[i] = b2 * moments[i] + (1 - b2) * g
    for p, e in zip(params, expect):
        torch.testing.assert_close(p.detach(), e, rtol=1e-6, atol=1e-6)
    for p, m in zip(params[:2], moments):
        torch.testing.assert_close(opt.state[p]["exp_avg"], m, rtol=1e-6, atol=1e-6)
    assert params[2] not in opt.state


def test_weight_average_moves_floats_and_copies_integer_buffers():
    from hicgen.training.trainer import WeightAverage

    model = torch.nn.BatchNorm1d(4)  # weight, bias, running mean/var (float) and num_batches_tracked (integer)
    ema = {k: v.detach().clone() for k, v in model.state_dict().items()}
    start = {k: v.clone() for k, v in ema.items()}
    with torch.no_grad():
        model.weight.add_(1.0)
        model.running_mean.fill_(2.0)
        model.num_batches_tracked.fill_(7)
    WeightAverage(ema, model).update(0.75)
    for key, value in model.state_dict().items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(ema[key], 0.75 * start[key] + 0.25 * value)
        else:
            assert torch.equal(ema[key], value)
    assert not torch.equal(ema["weight"], start["weight"]) and not torch.equal(ema["running_mean"], start["running_mean"])
