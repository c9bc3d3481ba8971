"""ONNX export: every supported decoder variant steps as PyTorch does (1e-5) and decodes
the same outputs through onnxruntime; the manifest catches tampering; what cannot be
exported is refused in one line; the CLI, int8 and serving load an exported directory."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from fastapi.testclient import TestClient

from seq2seq.api import Seq2Seq
from seq2seq.errors import Seq2SeqError
from seq2seq.export.exporter import export_onnx
from seq2seq.serve.app import create_app
from seq2seq.serve.models import load_model
from seq2seq.training import train
from tests.conftest import make_config, run_cli

SOURCES = ["a b c", "d e f g h", "b", "c c a d", "h g", "a"]

VARIANTS = {
    "gru_luong_general": {},
    "lstm_bahdanau": {"model.encoder.cell": "lstm", "model.decoder.cell": "lstm",
                      "model.decoder.attention": "bahdanau"},
    "lstm_input_feeding_2_layers": {"model.encoder.cell": "lstm", "model.decoder.cell": "lstm",
                                    "model.decoder.input_feeding": True, "model.encoder.layers": 2,
                                    "model.decoder.layers": 2},
    "concat_coverage": {"model.decoder.attention": "luong_concat", "model.decoder.coverage": True},
    "dot_tied_reversed": {"model.decoder.attention": "luong_dot", "model.encoder.hidden_size": 32,
                          "model.decoder.embedding_size": 64, "model.decoder.tie_embeddings": True,
                          "model.reverse_source": True},
    "cho_context_every_step": {"model.decoder.attention": "none", "model.decoder.context_every_step": True,
                               "model.context": "mean"},
    "rnn_no_attention": {"model.encoder.cell": "rnn", "model.decoder.cell": "rnn",
                         "model.decoder.attention": "none", "model.encoder.bidirectional": False},
    # Transformers (the decoder's step with its key/value cache), alone and mixed with RNNs
    "transformer": {"model.encoder.type": "transformer", "model.decoder.type": "transformer",
                    "model.encoder.hidden_size": 32, "model.decoder.hidden_size": 32, "model.encoder.layers": 2,
                    "model.decoder.layers": 2, "model.decoder.embedding_size": 32,
                    "model.decoder.tie_embeddings": True},
    "rnn_encoder_transformer_decoder": {"model.decoder.type": "transformer", "model.decoder.hidden_size": 32},
    "transformer_encoder_rnn_decoder": {"model.encoder.type": "transformer", "model.encoder.hidden_size": 32},
}


def row_state(state) -> list:
    """The per-row tensors of a decoder state (RNN: hidden, feed, coverage; Transformer: the cache)."""
    if hasattr(state, "values"):
        return [state.keys, state.values]
    return [*(state.hidden if isinstance(state.hidden, tuple) else (state.hidden,)), state.feed, state.coverage]


@pytest.fixture(scope="module")
def exported(tiny_data, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Each variant trained briefly on the copy task, and its fp32 export."""
    root = tmp_path_factory.mktemp("export")
    out = {}
    for name, over in VARIANTS.items():
        run = train(make_config(tiny_data, **{"training.max_steps": 40, **over}), root / name)
        export_onnx(run, root / f"{name}_onnx")
        out[name] = (run, root / f"{name}_onnx")
    return out


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_exported_step_equals_pytorch_over_a_beam(exported, variant):
    """Encode a padded batch, start a beam of 3 per source, and step both models four
    times on the same tokens: logits, every state tensor and the attention agree to 1e-5."""
    run, folder = exported[variant]
    ref, ort = Seq2Seq.load(run, device="cpu"), Seq2Seq.load(folder)
    batch = ref.corpus.sources(SOURCES).dataset.batch(torch.arange(len(SOURCES)))
    assert batch.src_lengths.unique().numel() > 1                       # padding is exercised
    with torch.no_grad():
        states = [m.model.encode(batch.src, batch.src_lengths, batch.src_mask)[1] for m in (ref, ort)]
        index = torch.arange(len(SOURCES)).repeat_interleave(3)
        states = [s.reorder(index, beam=3) for s in states]
        prev = torch.full((index.numel(),), ref.corpus.tgt_vocab.bos_id)
        for _ in range(4):
            (lt, st, at), (lo, so, ao) = (m.model.decoder.step(prev, s) for m, s in zip((ref, ort), states))
            assert lt.shape == lo.shape
            assert torch.allclose(lt, lo, atol=1e-5)
            for a, b in zip(row_state(st), row_state(so), strict=True):
                assert (a is None) == (b is None) and (a is None or torch.allclose(a, b, atol=1e-5))
            assert (at is None) == (ao is None) and (at is None or torch.allclose(at, ao, atol=1e-5))
            order = torch.arange(index.numel()).view(-1, 3).flip(1).reshape(-1)   # reorder within each beam
            states = [st.reorder(order), so.reorder(order)]
            prev = lt.argmax(-1)[order]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_search_decodes_the_same_through_onnxruntime(exported, variant):
    run, folder = exported[variant]
    ref, ort = Seq2Seq.load(run, device="cpu"), Seq2Seq.load(folder)
    attention = getattr(ref.model.decoder, "attention", True) is not None
    for options in ({}, {"beam": 3, "nbest": 2, "length_penalty": 0.6},
                    {"strategy": "sample", "seed": 3, "num_samples": 2, "top_k": 3}):
        a = ref.predict(SOURCES, with_scores=True, return_attention=attention, **options)
        b = ort.predict(SOURCES, with_scores=True, return_attention=attention, **options)
        assert [[p.text for p in ps] for ps in a] == [[p.text for p in ps] for ps in b]
        assert [p.score for ps in a for p in ps] == pytest.approx([p.score for ps in b for p in ps], abs=1e-4)
        if attention:
            assert all(torch.allclose(p.attention, q.attention, atol=1e-5) for ps, qs in zip(a, b)
                       for p, q in zip(ps, qs))


def test_evaluate_gives_the_same_loss_and_metrics(exported, tiny_data):
    run, folder = exported["lstm_input_feeding_2_layers"]
    a = Seq2Seq.load(run, device="cpu").evaluate(tiny_data / "test.tsv", beam=3)
    b = Seq2Seq.load(folder).evaluate(tiny_data / "test.tsv", beam=3)
    assert a.keys() == b.keys()
    assert a["loss"] == pytest.approx(b["loss"], abs=1e-5)
    assert {k: v for k, v in a.items() if k != "loss"} == pytest.approx({k: v for k, v in b.items() if k != "loss"})


def test_the_manifest_describes_the_graphs(exported):
    _, folder = exported["lstm_input_feeding_2_layers"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["files"]) == {"config.yaml", "encoder.onnx", "decoder_step.onnx", "src_vocab.txt",
                                      "tgt_vocab.txt"}
    assert manifest["opset"] == 17 and manifest["quantization"] is None
    assert set(manifest["versions"]) == {"seq2seq", "torch", "onnx", "onnxruntime"}
    step = manifest["graphs"]["decoder_step"]
    assert [i["name"] for i in step["inputs"]] == ["prev", "h", "c", "feed", "mask", "keys", "memory_proj"]
    assert [o["name"] for o in step["outputs"]] == ["logits", "h_out", "c_out", "feed_out", "attention"]
    assert step["inputs"][1]["shape"] == [2, "rows", 64]
    graph = onnx.load(str(folder / "decoder_step.onnx"))
    onnx.checker.check_model(graph)
    assert [i.name for i in graph.graph.input] == [i["name"] for i in step["inputs"]]


@pytest.mark.parametrize("damage", ["flip", "delete", "vocab"])
def test_tampering_is_named(exported, tmp_path, damage):
    import shutil

    _, folder = exported["gru_luong_general"]
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    if damage == "flip":
        data = bytearray((copy / "decoder_step.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (copy / "decoder_step.onnx").write_bytes(bytes(data))
        bad = "decoder_step.onnx: SHA-256 differs"
    elif damage == "delete":
        (copy / "encoder.onnx").unlink()
        bad = "encoder.onnx: missing"
    else:
        (copy / "tgt_vocab.txt").write_text((copy / "tgt_vocab.txt").read_text() + "extra\n")
        bad = "tgt_vocab.txt: SHA-256 differs"
    with pytest.raises(Seq2SeqError, match=bad):
        Seq2Seq.load(copy)


@pytest.mark.parametrize("over, why", [
    ({"model.decoder.copy_attention": True}, "copy attention cannot be exported"),
    ({"model.latent_size": 8, "model.decoder.attention": "none"}, "variational model"),
])
def test_an_unsupported_model_is_refused_in_one_line(tiny_data, tmp_path, over, why):
    run = train(make_config(tiny_data, **{"training.max_steps": 2, **over}), tmp_path / "run")
    out = tmp_path / "out"
    proc = run_cli("export", run, "--out", out, cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and why in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["run"]      # nothing left behind


def test_cli_export_quantized_predict_and_no_silent_overwrite(exported, tmp_path):
    run, _ = exported["lstm_bahdanau"]
    out = tmp_path / "int8"
    proc = run_cli("export", run, "--out", out, "--quantize", "int8", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"] == "int8"
    ops = {n.op_type for n in onnx.load(str(out / "decoder_step.onnx")).graph.node}
    assert ops & {"MatMulInteger", "DynamicQuantizeMatMul"}                      # int8 products
    pred = run_cli("predict", out, "--beam", "3", cwd=tmp_path, stdin="a b c\nd e\n")
    assert pred.returncode == 0, pred.stderr
    assert len(pred.stdout.splitlines()) == 2
    before = (out / "manifest.json").read_bytes()
    again = run_cli("export", run, "--out", out, cwd=tmp_path)
    assert again.returncode == 2 and "exists and is not empty" in again.stderr
    assert (out / "manifest.json").read_bytes() == before


def test_an_exported_directory_is_served(exported):
    run, folder = exported["gru_luong_general"]
    expected = Seq2Seq.load(run, device="cpu").predict(SOURCES)
    client = TestClient(create_app([load_model(f"g2p={folder}")]))
    with client:
        r = client.post("/v1/models/g2p/predict", json={"inputs": SOURCES})
    assert r.status_code == 200, r.text
    assert [res["hypotheses"][0]["text"] for res in r.json()["results"]] == expected


@pytest.mark.parametrize("variant", ["gru_luong_general", "lstm_input_feeding_2_layers", "concat_coverage"])
def test_the_readme_greedy_loop_in_plain_onnxruntime_matches(exported, variant):
    """The export guide's "another runtime" block, run as written: numpy + onnxruntime alone."""
    readme = (Path(__file__).resolve().parents[1] / "docs" / "how-to" / "onnx.md").read_text(encoding="utf-8")
    block = readme.split("Greedy search with onnxruntime alone", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(block, scope)
    run, folder = exported[variant]
    model = Seq2Seq.load(run, device="cpu")
    expected = model.predict(SOURCES)
    d = model.config.decoding                                        # the same length cap as predict's
    got = [" ".join(scope["greedy"](str(folder), s.split(), int(d.max_len_a * len(s.split()) + d.max_len_b)))
           for s in SOURCES]
    assert got == expected


FORECAST_VARIANTS = {
    "lstm_quantiles_fed_back": {"model": {"quantiles": [0.1, 0.5, 0.9]}},
    "gru_attention_regression": {"model": {"encoder": {"cell": "gru"},
                                           "decoder": {"cell": "gru", "attention": "bahdanau"}}},
    "no_feedback_whole_horizon": {"model": {"decoder": {"feed_previous_output": False, "attention": "luong_dot"}}},
}


@pytest.mark.parametrize("variant", list(FORECAST_VARIANTS))
def test_a_forecast_run_exports_and_forecasts_the_same(tmp_path, variant):
    import numpy as np
    import pandas as pd

    from seq2seq.config import ForecastConfig, config_from_dict
    from seq2seq.forecast.api import Forecaster

    times = pd.date_range("2000-01-01", periods=90, freq="MS")
    frame = pd.DataFrame({"time": times.strftime("%Y-%m-%d"), "y": np.sin(np.arange(90) * 2 * np.pi / 12) + 10})
    frame.to_csv(tmp_path / "m.csv", index=False)
    raw = {"task": "forecast", "name": "monthly",
           "data": {"path": str(tmp_path / "m.csv"), "value_columns": ["y"], "input_len": 12, "horizon": 6,
                    "valid_size": 12, "test_size": 12, "calendar": ["month"], "season": 12},
           "training": {"max_steps": 10, "validate_every": 10, "progress_bar": False}}
    for section, values in FORECAST_VARIANTS[variant].items():
        raw[section] = values
    run = train(config_from_dict(raw, schema=ForecastConfig), tmp_path / "run")
    proc = run_cli("export", run, "--out", tmp_path / "onnx", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((tmp_path / "onnx" / "manifest.json").read_text())
    assert manifest["task"] == "forecast" and "scalers.json" in manifest["files"]
    a, b = Forecaster.load(run, device="cpu"), Forecaster.load(tmp_path / "onnx")
    history = frame.iloc[:60]
    for horizon in (6, 9):                                  # the run's horizon, and a longer one
        fa, fb = a.predict(history, horizon=horizon), b.predict(history, horizon=horizon)
        assert list(fa.columns) == list(fb.columns) and len(fa) == horizon
        numeric = [c for c in fa.columns if c not in ("time", "series")]
        assert np.allclose(fa[numeric].to_numpy(float), fb[numeric].to_numpy(float), atol=1e-4)


def test_exported_directories_form_an_ensemble(exported):
    """Two copies of one export decode as the PyTorch model does (an ensemble of two
    copies equals the model), with the teacher-forced loss through the step graph."""
    run, folder = exported["lstm_bahdanau"]
    single = Seq2Seq.load(run, device="cpu")
    pair = Seq2Seq.load([folder, folder])
    a = single.predict(SOURCES, with_scores=True, beam=3)
    b = pair.predict(SOURCES, with_scores=True, beam=3)
    assert [p.text for ps in a for p in ps] == [p.text for ps in b for p in ps]
    assert [p.score for ps in a for p in ps] == pytest.approx([p.score for ps in b for p in ps], abs=1e-4)
    # the ensemble's search also leaves the cores to onnxruntime; one PyTorch member needs torch's threads
    assert pair.model.search_threads == 1
    assert Seq2Seq.load([folder, run]).model.search_threads is None


def test_runtime_threads_sleep_between_runs(exported):
    """The search runs torch operations between two decoder steps; spinning onnxruntime
    threads would take the cores those need (3-4x slower at 2 threads on 2 cores)."""
    from seq2seq.export.runtime import session

    sess = session(exported["gru_luong_general"][1] / "decoder_step.onnx", threads=2)
    assert sess.get_session_options().intra_op_num_threads == 2
    assert sess.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"


def test_the_search_runs_on_one_torch_thread_around_onnxruntime(exported):
    """Between two graph steps the search's torch operations take one thread, leaving the
    cores to onnxruntime's; torch's thread count is restored afterwards."""
    model = Seq2Seq.load(exported["gru_luong_general"][1])
    graphs = model.model
    step = graphs.decoder.step
    seen = []

    def counting_step(prev, state):
        seen.append(torch.get_num_threads())
        return step(prev, state)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        graphs.decoder.step = counting_step
        assert model.predict(SOURCES, beam=3) and model.predict(SOURCES, beam=1)
        assert seen and set(seen) == {1}
        assert torch.get_num_threads() == 2
    finally:
        graphs.decoder.step = step
        torch.set_num_threads(before)
