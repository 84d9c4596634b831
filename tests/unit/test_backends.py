"""Accelerated backends and the ONNX export against eager PyTorch on a trained tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dancenow.errors import DancenowError, InputError
from dancenow.pose.render import render_pose
from dancenow.run import load_trained
from dancenow.transfer.backend import (
    TOLERANCE,
    Chain,
    Generator,
    available_backends,
    build_generator_for,
    choose_backend,
    label_window,
    make_generator,
    max_difference,
)

from conftest import make_tiny_poses


def _chain(run, n=12, phase=1.3):
    model = load_trained(run)
    chain = Chain.of(model, make_tiny_poses(n, phase=phase).keypoints)  # other poses than the training clip's
    return model, chain


def _frames(gen, chain):
    gen.reset()
    return [gen(*args)[0] for args in zip(chain.labels, chain.boxes, chain.face_labels)]


def test_label_window_is_the_person_window_rule(tiny_run):
    import torch

    from dancenow.models.person import person_windows
    from dancenow.tensors import to_tensor

    model, chain = _chain(tiny_run)
    labels = chain.labels
    blank = np.zeros_like(labels[0])
    blank[3, 60] = 1  # a value 1 pixel is below the "drawn" threshold, like the torch rule's
    for lab in [*labels, blank, np.zeros_like(labels[0])]:
        want = person_windows([to_tensor(lab)[None]], model.generator.size_multiple)[0]
        assert label_window(lab, model.generator.size_multiple) == want
    assert label_window(labels[0], 4) != (0, 0, 64, 64)  # the rule does cut a window
    assert torch.is_tensor(model.generator.background)


@pytest.mark.parametrize("backend,precision", [("onnx", "fp32"), ("openvino", "fp32")])
def test_accelerated_backend_matches_eager(tiny_run, backend, precision):
    if backend not in available_backends():
        pytest.skip(f"{backend} not installed")
    model, chain = _chain(tiny_run)
    assert model.face_generator is not None and any(b is not None for b in chain.boxes)  # the face step is covered
    ref = _frames(Generator(model), chain)
    out = _frames(build_generator_for(model, backend, precision), chain)
    assert max_difference(out, ref) <= TOLERANCE
    assert max(int(np.abs(a.astype(int) - b.astype(int)).max()) for a, b in zip(ref[1:], ref[:-1])) > TOLERANCE


def test_auto_picks_a_backend_within_tolerance_and_says_why(tiny_run):
    model, chain = _chain(tiny_run, n=8)
    choice, gen = choose_backend(model, chain)
    assert choice.measured["torch/fp32"]["max_diff"] == 0
    assert choice.measured[f"{choice.backend}/{choice.precision}"]["max_diff"] <= TOLERANCE
    assert choice.backend in choice.describe() and "frames/s" in choice.reason
    assert max_difference(_frames(gen, chain), _frames(Generator(model), chain)) <= TOLERANCE
    strict, _ = choose_backend(model, chain, tolerance=-1)  # no accelerated candidate qualifies
    assert (strict.backend, strict.precision) == ("torch", "fp32") and "refused" in strict.reason


def test_unknown_backend_is_one_clear_error(tiny_run):
    with pytest.raises(DancenowError, match="--backend must be one of"):
        make_generator(load_trained(tiny_run), "tensorrt")


def test_export_round_trip_with_onnxruntime_alone(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from dancenow.transfer.export import FORMAT, export_onnx, load_onnx

    res = export_onnx(tiny_run, tmp_path / "tiny.onnx")
    assert res.face_model is not None and res.face_model.is_file()
    props = {p.key: p.value for p in onnx.load(str(res.model)).metadata_props}
    assert props["dancenow.format"] == FORMAT
    model, chain = _chain(tiny_run)
    assert json.loads(props["dancenow.person_spec"]) == {
        "label_channels": 3, "use_temporal": True, "use_background": True, "use_window": True,
        "window_multiple": 0}
    exported = load_onnx(res.model)
    assert exported.size == model.size and exported.render == model.config.render
    assert exported.target_stats == model.target_stats and exported.face_box_size == model.face_box_size
    w, h = exported.size
    labels2 = [render_pose(k, w, h, exported.render) for k in make_tiny_poses(12, phase=1.3).keypoints]
    assert all(np.array_equal(a, b) for a, b in zip(chain.labels, labels2))
    ref = _frames(Generator(model), chain)
    out = _frames(exported.generator, Chain(labels2, chain.boxes, [None] * len(labels2)))
    assert max_difference(out, ref) <= TOLERANCE


def test_int8_export_round_trip_is_quantized_and_close(tiny_run, tmp_path):
    pytest.importorskip("onnxruntime")
    import onnx

    from dancenow.transfer.export import export_onnx, load_onnx

    res = export_onnx(tiny_run, tmp_path / "tiny8.onnx", precision="int8")
    proto = onnx.load(str(res.model))
    assert {p.key: p.value for p in proto.metadata_props}["dancenow.precision"] == "int8"
    assert "QuantizeLinear" in {n.op_type for n in proto.graph.node}
    model, chain = _chain(tiny_run)
    out = _frames(load_onnx(res.model).generator, chain)  # ONNX Runtime alone, from the files
    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(out, _frames(Generator(model), chain))]
    assert max(d.max() for d in diffs) > 0 and np.mean([d.mean() for d in diffs]) < 2.0


def test_export_refuses_bad_names_and_files(tiny_run, tmp_path):
    from dancenow.transfer.export import export_onnx, load_onnx

    with pytest.raises(InputError, match="must end in .onnx"):
        export_onnx(tiny_run, tmp_path / "model.bin")
    with pytest.raises(InputError, match="precision"):
        export_onnx(tiny_run, tmp_path / "model.onnx", precision="fp16")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(InputError, match="bad.onnx"):
        load_onnx(bad)


@pytest.fixture(scope="module")
def hr_run(tmp_path_factory):
    """A tiny run with full-resolution faces (filmed at 3x the prepared size, as test_face_hr's)."""
    from conftest import TINY_SIZE, draw_tiny_frames, tiny_train_config

    from dancenow.data.prepare import PrepareConfig, prepare
    from dancenow.train.loop import train
    from dancenow.video import write_video

    d = tmp_path_factory.mktemp("hr_backend")
    poses = make_tiny_poses(size=3 * TINY_SIZE)
    video = write_video(d / "clip.mp4", draw_tiny_frames(poses), poses.fps)
    prepare(video, d / "data", PrepareConfig(width=TINY_SIZE, height=TINY_SIZE), poses=poses, progress=False)
    train(d / "data", d / "run", tiny_train_config(), progress=False)
    return d / "run"


def test_full_resolution_faces_match_eager_on_the_onnx_backend(hr_run):
    if "onnx" not in available_backends():
        pytest.skip("onnxruntime not installed")
    model, chain = _chain(hr_run)
    assert model.face_hr_size > 0 and any(f is not None for f in chain.face_labels)
    eager, fast = Generator(model), build_generator_for(model, "onnx")
    for args in zip(chain.labels, chain.boxes, chain.face_labels):
        (a, fa), (b, fb) = eager(*args), fast(*args)
        assert int(np.abs(a.astype(int) - b.astype(int)).max()) <= TOLERANCE
        assert (fa is None) == (fb is None)
        if fa is not None:
            assert fa.shape == (model.face_hr_size,) * 2 + (3,)
            assert int(np.abs(fa.astype(int) - fb.astype(int)).max()) <= TOLERANCE


@pytest.mark.parametrize("backend", ["onnx", "openvino"])
def test_int8_is_quantized_and_close_to_eager(tiny_run, backend):
    if backend not in available_backends() or "onnx" not in available_backends():
        pytest.skip(f"{backend} or onnxruntime not installed")
    import onnx

    from dancenow.transfer.backend import (_window_inputs, export_face_net, export_window_net, quantize_window_net,
                                           window_net_inputs)

    model, chain = _chain(tiny_run)
    body = export_window_net(model)
    samples = _window_inputs(model, body, export_face_net(model), n=4)
    names = window_net_inputs(model.generator)
    assert len(samples) == 4 and all(len(s) == len(names) for s in samples)  # one frame's inputs each
    q = onnx.load_from_string(quantize_window_net(body, samples, names))
    ops = {n.op_type for n in q.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # really quantized
    assert sum(i.data_type == onnx.TensorProto.INT8 for i in q.graph.initializer) > 0  # int8 weights
    ref = _frames(Generator(model), chain)
    out = _frames(build_generator_for(model, backend, "int8"), chain)
    diffs = [np.abs(a.astype(int) - b.astype(int)) for a, b in zip(out, ref)]
    assert max(d.max() for d in diffs) > 0  # not the fp32 graph
    assert np.mean([d.mean() for d in diffs]) < 2.0  # on average within 2 levels of 255
    with pytest.raises(DancenowError, match="int8 runs on the onnx or openvino"):
        build_generator_for(model, "torch", "int8")
