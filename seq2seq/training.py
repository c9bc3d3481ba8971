"""Training: the loop, validation, early stopping, checkpoints, resume.

A run directory holds everything about one run::

    RUN/config.yaml          the resolved config (every key)
    RUN/src_vocab.txt        vocabularies, one token a line
    RUN/tgt_vocab.txt
    RUN/metrics.jsonl        one JSON object per log line (train) or validation (valid)
    RUN/curves.png           training / validation curves
    RUN/checkpoints/best.*   best weights by the early-stopping metric
    RUN/checkpoints/last.*   weights + optimizer + scheduler + RNG + data position

Training is maximum likelihood: the loss is the cross-entropy per real target
token.  By default the decoder reads the gold previous token (teacher forcing,
Williams & Zipser 1989; Sutskever et al. 2014); ``training.teacher_forcing``
switches to scheduled sampling (:mod:`seq2seq.scheduled_sampling`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch
from torch import nn

from seq2seq.checkpoint import (join_optimizer_state, load_checkpoint, model_state, save_checkpoint,
                                split_optimizer_state)
from seq2seq.config import Config, dump_config, load_config
from seq2seq.data.batching import Batch, BucketSampler
from seq2seq.data.corpus import Corpus, Split
from seq2seq.data.tsv import read_tsv
from seq2seq.errors import Seq2SeqError
from seq2seq.loss import coverage_loss, sequence_cross_entropy
from seq2seq.metrics import HIGHER_IS_BETTER, compute_metrics, oracle_error_rates
from seq2seq.models.encoder_decoder import EncoderDecoder
from seq2seq.modules.latent import kl_annealing
from seq2seq.plotting import plot_curves, plot_teacher_forcing
from seq2seq.scheduled_sampling import scheduled_sampling_logits, teacher_forcing_probability
from seq2seq.search import DecodeOptions, NBest, decode_dataset


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU.

    Raises:
        Seq2SeqError: ``cuda`` asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise Seq2SeqError("training.device is 'cuda' but this torch has no CUDA device; use 'auto' or 'cpu'")
    return torch.device(name)


def build_optimizer(cfg, params) -> torch.optim.Optimizer:
    """Adam (Kingma & Ba 2015), AdamW (Loshchilov & Hutter 2019) or SGD with momentum.

    Uses torch's fused implementation (one kernel for all parameters): on CPU
    torch's default Adam loops over parameters in Python, about 20x slower per
    update for a model of a million parameters.
    """
    params = list(params)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.SGD(params, lr=cfg.learning_rate, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           fused=True)


def autocast(precision: str, device: torch.device):
    """Context for the training forward pass: bf16 autocast, or nothing for fp32.

    Under bf16, matrix products run in bfloat16 while parameters, optimizer state,
    cell states and the loss stay in fp32 (mixed precision).
    """
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def build_scheduler(cfg, optimizer: torch.optim.Optimizer):
    """The learning-rate schedule of ``training.scheduler``.

    ``plateau`` steps on validation scores; ``inverse_sqrt`` (linear warm-up, then
    ``sqrt(warmup / step)``, Vaswani et al. 2017, eq. 3) and ``exponential``
    (``decay_rate ** (step / decay_steps)`` after an optional warm-up) step once per
    update.  The rate never falls below ``min_learning_rate``.

    Returns:
        A torch scheduler, or None for ``none``.
    """
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if HIGHER_IS_BETTER.get(cfg.early_stopping_metric) else "min",
            factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_learning_rate)
    floor = cfg.min_learning_rate / cfg.learning_rate
    warmup = cfg.warmup_steps

    def factor(step: int) -> float:
        n = step + 1                                   # the update about to be taken, 1-based
        if n <= warmup:
            return n / warmup
        if cfg.scheduler == "inverse_sqrt":
            return max(floor, math.sqrt(warmup / n))
        return max(floor, cfg.decay_rate ** ((n - warmup) / cfg.decay_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@dataclass
class TrainState:
    """Counters that a checkpoint restores on resume."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    elapsed_s: float = 0.0
    best_score: Optional[float] = None
    best_step: int = 0
    bad_validations: int = 0
    stopped: str = ""
    extra: dict = field(default_factory=dict)


def targets_of(batch: Batch) -> torch.Tensor:
    """The ids the loss scores: in the extended vocabulary with copy attention, else ``tgt_out``."""
    return batch.tgt_out_ext if batch.tgt_out_ext is not None else batch.tgt_out


def evaluate_split(model: EncoderDecoder, corpus: Corpus, split: Split, metrics: list[str], config: Config,
                   device: torch.device, options: Optional[DecodeOptions] = None) -> tuple[dict, NBest]:
    """Teacher-forced loss/perplexity on the first reference, and decoded metrics.

    Args:
        options: how to decode (default: the config's ``decoding`` section).  With
            n-best lists (nbest > 1) the results add ``oracle_wer`` / ``oracle_per``
            (each example scored by its best hypothesis).

    Returns:
        results: ``loss`` (nats per token), ``ppl`` and each metric (percent) of the
            top hypothesis.
        hyps: per example, its hypotheses best first, in split order.
    """
    model.eval()
    loss_sum, tokens = 0.0, 0
    pad = corpus.tgt_vocab.pad_id
    with torch.no_grad():
        if split.dataset.tgt_in is not None:
            for idx in BucketSampler(split.dataset.lengths(), config.decoding.batch_size, shuffle=False,
                                     sort_key=split.dataset.sort_key()).batches():
                batch = split.dataset.batch(idx).to(device)
                logits, _ = model(batch)
                ls, nt = sequence_cross_entropy(logits, targets_of(batch), pad)
                loss_sum += float(ls)
                tokens += nt
    options = options or config.decoding.options()
    if options.replace_unk:
        options = dataclasses.replace(options, return_attention=True)
    v = corpus.tgt_vocab
    nbest = decode_dataset(model, split.dataset, v.bos_id, v.eos_id, config.decoding.batch_size, options, device)
    results: dict = {}
    if tokens:
        results["loss"] = loss_sum / tokens
        results["ppl"] = math.exp(min(results["loss"], 50.0))
    oovs = split.oovs or [None] * len(nbest)
    hyp_tokens = [corpus.output_tokens(h[0], s, o, options.replace_unk)
                  for h, s, o in zip(nbest, split.source_tokens, oovs)]
    ref_tokens = [[corpus.tgt_tokenizer.encode(r) for r in e.references] for e in split.examples]
    hyp_text = [corpus.tgt_tokenizer.decode(t) for t in hyp_tokens]
    ref_text = [e.references for e in split.examples]
    results.update(compute_metrics(metrics, hyp_tokens, ref_tokens, hyp_text, ref_text,
                                   lowercase=corpus.tgt_tokenizer.lowercase))
    if any(len(h) > 1 for h in nbest) and ("wer" in metrics or "per" in metrics):
        lists = [[v.decode(x.tokens, o) for x in h] for h, o in zip(nbest, oovs)]
        results["oracle_wer"], results["oracle_per"] = oracle_error_rates(lists, ref_tokens)
    return results, nbest


class Trainer:
    """Runs the training loop of one run directory.

    Args:
        config: the validated config.
        run_dir: the run directory (created by :func:`train`).
        corpus: tokenizers and vocabularies.
        train_split: training data; valid_split: validation data or None.
        model: the model, already on ``device``.
        device: where to train.
    """

    def __init__(self, config: Config, run_dir: Path, corpus: Corpus, train_split: Split,
                 valid_split: Optional[Split], model: EncoderDecoder, device: torch.device):
        self.config, self.run_dir, self.corpus = config, run_dir, corpus
        self.train_split, self.valid_split = train_split, valid_split
        self.model, self.device = model, device
        t = config.training
        self.optimizer = build_optimizer(t, model.parameters())
        self.metric = t.early_stopping_metric
        self.higher_better = HIGHER_IS_BETTER[self.metric]
        self.scheduler = build_scheduler(t, self.optimizer)
        self.per_update_scheduler = self.scheduler is not None and t.scheduler != "plateau"
        self.sampler = BucketSampler(train_split.dataset.lengths(), t.batch_size, t.batch_type, shuffle=True,
                                     seed=config.seed, sort_key=train_split.dataset.sort_key())
        self.state = TrainState()
        tf = t.teacher_forcing
        self.scheduled_sampling = not (tf.schedule == "constant" and tf.ratio == 1.0)
        self.kl_sum, self.kl_sentences = 0.0, 0
        self.records: list[dict] = []
        self.ckpt_dir = run_dir / "checkpoints"
        self._signatures_shown: set[str] = set()

    # ------------------------------------------------------------------ checkpoints
    def save(self, name: str) -> None:
        """Save ``last`` (full training state) or ``best`` (weights + scores)."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        meta = {"step": self.state.step, "epoch": self.state.epoch, "best_score": self.state.best_score,
                "metric": self.metric}
        if name == "last":
            opt_tensors, opt_rest = split_optimizer_state(self.optimizer.state_dict())
            tensors.update(opt_tensors)
            tensors["rng.torch"] = torch.get_rng_state()
            if torch.cuda.is_available():
                for i, s in enumerate(torch.cuda.get_rng_state_all()):
                    tensors[f"rng.cuda.{i}"] = s
            meta.update(train_state=self.state.__dict__, optimizer=opt_rest,
                        scheduler=self.scheduler.state_dict() if self.scheduler else None)
        save_checkpoint(self.ckpt_dir / name, tensors, meta)

    def restore(self) -> None:
        """Load ``last``: weights, optimizer, scheduler, counters, RNG, data position."""
        tensors, meta = load_checkpoint(self.ckpt_dir / "last")
        self.model.load_state_dict(model_state(tensors))
        opt = join_optimizer_state({k: v for k, v in tensors.items() if k.startswith("optimizer.")}, meta["optimizer"])
        self.optimizer.load_state_dict(opt)
        if self.scheduler is not None and meta.get("scheduler"):
            self.scheduler.load_state_dict(meta["scheduler"])
        self.state = TrainState(**meta["train_state"])
        self.state.stopped = ""
        torch.set_rng_state(tensors["rng.torch"])
        if torch.cuda.is_available():
            states = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
            if states:
                torch.cuda.set_rng_state_all(states)
        path = self.run_dir / "metrics.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            self.records = [r for r in rows if r["step"] <= self.state.step]
            path.write_text("".join(json.dumps(r) + "\n" for r in self.records))

    # ------------------------------------------------------------------ logging
    def log(self, record: dict) -> None:
        """Append one record to ``metrics.jsonl``."""
        self.records.append(record)
        with open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Validate, update best/early stopping/scheduler, save checkpoints and the plot."""
        if self.valid_split is None:
            self.save("last")
            return
        results, _ = evaluate_split(self.model, self.corpus, self.valid_split, self.config.evaluation.metrics,
                                    self.config, self.device)
        self.model.train()
        score = results[self.metric]
        st = self.state
        improved = st.best_score is None or (score > st.best_score if self.higher_better else score < st.best_score)
        if improved:
            st.best_score, st.best_step, st.bad_validations = score, st.step, 0
            self.save("best")
        else:
            st.bad_validations += 1
        if self.scheduler is not None and not self.per_update_scheduler:
            self.scheduler.step(score)
        self.log({"step": st.step, "epoch": st.epoch, "split": "valid",
                  **{k: (round(v, 4) if isinstance(v, float) else v) for k, v in results.items()},
                  "lr": self.optimizer.param_groups[0]["lr"], "best": improved})
        shown = " ".join(f"{k}={v:.2f}" for k, v in results.items() if isinstance(v, float))
        self._print(f"[valid] step {st.step} {shown}{' *best*' if improved else ''}")
        for key in sorted(k for k in results if k.endswith("_signature") and k not in self._signatures_shown):
            self._print(f"[valid] sacrebleu {key.removesuffix('_signature')} signature: {results[key]}")
            self._signatures_shown.add(key)       # also in every validation row of metrics.jsonl
        self._keep_step_checkpoint()
        p = self.config.training.patience
        if p is not None and st.bad_validations >= p:
            st.stopped = f"early stopping: no better {self.metric} in {p} validations"
        self.save("last")
        plot_curves(self.records, self.run_dir / "curves.png", self.metric)
        if self.scheduled_sampling:
            plot_teacher_forcing(self.records, self.run_dir / "teacher_forcing.png")

    def _keep_step_checkpoint(self) -> None:
        """With ``keep_checkpoints`` N, save ``step_<step>`` weights and drop all but the last N."""
        n = self.config.training.keep_checkpoints
        if n == 0:
            return
        self.save(f"step_{self.state.step:08d}")
        stems = sorted({f.stem for f in self.ckpt_dir.glob("step_*.safetensors")})
        for stem in stems[:-n]:
            for suffix in (".safetensors", ".json"):
                (self.ckpt_dir / (stem + suffix)).unlink(missing_ok=True)

    def _print(self, msg: str) -> None:
        if self._bar is not None:
            self._bar.write(msg, file=sys.stderr)
        else:
            print(msg, file=sys.stderr, flush=True)

    # ------------------------------------------------------------------ loop
    def _limit_reached(self) -> str:
        t, st = self.config.training, self.state
        if t.max_steps is not None and st.step >= t.max_steps:
            return f"reached training.max_steps={t.max_steps}"
        if t.max_epochs is not None and st.epoch >= t.max_epochs:
            return f"reached training.max_epochs={t.max_epochs}"
        if t.max_minutes is not None and st.elapsed_s >= 60 * t.max_minutes:
            return f"reached training.max_minutes={t.max_minutes}"
        return ""

    def _time_left(self, sec_per_step: float, batches_per_epoch: int) -> float:
        t, st = self.config.training, self.state
        left = [math.inf]
        if t.max_steps is not None:
            left.append((t.max_steps - st.step) * sec_per_step)
        if t.max_epochs is not None:
            left.append(((t.max_epochs - st.epoch) * batches_per_epoch - st.batch_in_epoch) * sec_per_step)
        if t.max_minutes is not None:
            left.append(60 * t.max_minutes - st.elapsed_s)
        return max(0.0, min(left))

    def teacher_forcing(self) -> float:
        """eps_i, the probability of feeding the gold token at the current update."""
        return teacher_forcing_probability(self.config.training.teacher_forcing, self.state.step)

    def _word_dropout(self, batch: Batch) -> Batch:
        """Replace decoder inputs after ``<bos>`` by ``<unk>`` at rate ``word_dropout``
        (Bowman et al. 2016, sec. 3.2), so the decoder leans on the source state."""
        p = self.config.training.word_dropout
        drop = (torch.rand(batch.tgt_in.shape, device=batch.tgt_in.device) < p) & batch.tgt_mask
        drop[:, 0] = False
        return dataclasses.replace(batch, tgt_in=batch.tgt_in.masked_fill(drop, self.corpus.tgt_vocab.unk_id))

    def train_step(self, batches: list[Batch]) -> tuple[torch.Tensor, int]:
        """One update: forward (teacher forcing or scheduled sampling), per-token
        loss, backward, clipping, optimizer step, per-update LR schedule.

        Args:
            batches: one batch, or ``accumulate_batches`` of them whose gradients are
                summed (the loss is normalised by all their target tokens).

        Returns:
            The summed loss (detached, nats) and the target tokens.
        """
        t = self.config.training
        pad = self.corpus.tgt_vocab.pad_id
        batches = [b.to(self.device) for b in batches]
        total = sum(int((b.tgt_out != pad).sum()) for b in batches)
        eps = self.teacher_forcing()
        self.optimizer.zero_grad(set_to_none=True)
        loss_total = None
        coverage = getattr(self.model.decoder, "coverage", False) and t.coverage_loss_weight > 0
        kl_weight = t.kl_weight * kl_annealing(t.kl_anneal, self.state.step, t.kl_anneal_steps)
        for batch in batches:
            if t.word_dropout > 0:
                batch = self._word_dropout(batch)
            attention = None
            with autocast(t.precision, self.device):
                if eps >= 1.0:
                    logits, attention = self.model(batch, return_attention=coverage)
                else:
                    logits = scheduled_sampling_logits(self.model, batch, eps, t.teacher_forcing)
            loss_sum, _ = sequence_cross_entropy(logits.float(), targets_of(batch), pad, t.label_smoothing)
            objective = loss_sum
            if attention is not None:
                objective = objective + t.coverage_loss_weight * coverage_loss(attention.float(), batch.tgt_mask)
            if self.model.latent is not None:
                objective = objective + kl_weight * self.model.last_kl
                self.kl_sum += float(self.model.last_kl.detach())
                self.kl_sentences += batch.src.size(0)
            (objective / total).backward()
            loss_total = loss_sum.detach() if loss_total is None else loss_total + loss_sum.detach()
        if t.clip_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.model.parameters(), t.clip_grad_norm)
        self.optimizer.step()
        if self.per_update_scheduler:
            self.scheduler.step()
        return loss_total, total

    def fit(self) -> TrainState:
        """Train until a limit or early stopping; returns the final counters."""
        from tqdm import tqdm

        t, st = self.config.training, self.state
        self.model.train()
        use_bar = t.progress_bar and sys.stderr.isatty()
        self._bar = tqdm(total=t.max_steps, initial=st.step, unit="step", dynamic_ncols=True,
                         file=sys.stderr) if use_bar else None
        window_tokens, window_loss, window_steps, window_start = 0, 0.0, 0, time.perf_counter()
        last_tick = time.perf_counter()
        validated_at = st.step
        sec_per_step = 0.0
        st.stopped = st.stopped or self._limit_reached()
        while not st.stopped:
            batches = self.sampler.batches(st.epoch)
            while st.batch_in_epoch < len(batches):
                group = batches[st.batch_in_epoch:st.batch_in_epoch + t.accumulate_batches]
                eps = self.teacher_forcing()
                loss_sum, ntok = self.train_step([self.train_split.dataset.batch(idx) for idx in group])
                st.step += 1
                st.batch_in_epoch += len(group)
                now = time.perf_counter()
                st.elapsed_s += now - last_tick
                last_tick = now
                window_tokens += ntok
                window_loss += loss_sum
                window_steps += 1
                if st.step % t.log_every == 0:
                    dt = now - window_start
                    tok_s = window_tokens / dt
                    sec_per_step = dt / window_steps
                    left = self._time_left(sec_per_step, len(batches))
                    rec = {"step": st.step, "epoch": st.epoch, "split": "train",
                           "loss": round(float(window_loss) / window_tokens, 4), "tokens_per_s": round(tok_s, 1),
                           "lr": self.optimizer.param_groups[0]["lr"], "elapsed_s": round(st.elapsed_s, 1)}
                    if self.scheduled_sampling:
                        rec["teacher_forcing"] = round(eps, 6)
                    if self.model.latent is not None:
                        rec["kl"] = round(self.kl_sum / max(self.kl_sentences, 1), 4)     # nats per sentence
                        rec["kl_weight"] = round(t.kl_weight * kl_annealing(t.kl_anneal, st.step, t.kl_anneal_steps), 6)
                        self.kl_sum, self.kl_sentences = 0.0, 0
                    self.log(rec)
                    left_s = time.strftime("%H:%M:%S", time.gmtime(left)) if math.isfinite(left) else "?"
                    if self._bar is not None:
                        self._bar.set_postfix(loss=f"{rec['loss']:.3f}", tok_s=f"{tok_s:,.0f}", left=left_s)
                    else:
                        self._print(f"[train] step {st.step} epoch {st.epoch} loss {rec['loss']:.3f} "
                                    f"{tok_s:,.0f} tok/s, {left_s} left")
                    window_tokens, window_loss, window_steps, window_start = 0, 0.0, 0, time.perf_counter()
                if self._bar is not None:
                    self._bar.update(1)
                if st.step % t.validate_every == 0:
                    self.validate()       # its time counts towards max_minutes (via last_tick)
                    validated_at = st.step
                    window_start = time.perf_counter()
                    window_tokens, window_loss, window_steps = 0, 0.0, 0
                st.stopped = st.stopped or self._limit_reached()
                if st.stopped:
                    break
            else:
                st.epoch += 1
                st.batch_in_epoch = 0
                st.stopped = self._limit_reached()
        if validated_at != st.step:
            self.validate()
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._print(f"[done] {st.stopped}; step {st.step}, best {self.metric} "
                    f"{st.best_score if st.best_score is None else round(st.best_score, 3)} at step {st.best_step}")
        return st

    _bar = None


# ---------------------------------------------------------------------- entry points


def prepare_run_dir(run_dir: Path, overwrite: bool) -> None:
    """Create ``run_dir``; refuse to reuse a non-empty one unless ``overwrite``.

    Raises:
        Seq2SeqError: the directory exists and is not empty.
    """
    if run_dir.exists() and any(run_dir.iterdir()):
        if not overwrite:
            raise Seq2SeqError(f"{run_dir}: run directory exists; pass --overwrite to replace it or "
                               f"--resume {run_dir} to continue it")
        if not (run_dir / "config.yaml").exists():
            raise Seq2SeqError(f"{run_dir}: not a run directory (no config.yaml); refusing to delete it "
                               "even with --overwrite")
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)


def _setup_torch(config: Config) -> torch.device:
    if config.training.num_threads:
        torch.set_num_threads(config.training.num_threads)
    return resolve_device(config.training.device)


def evaluation_split(corpus: Corpus, d, examples: list, where: str) -> Split:
    """Encode a validation or test file: every example is kept (scores cover every
    reference); a source over ``data.max_src_len`` is truncated or rejected under
    those ``long_source`` policies and decoded whole under ``drop``."""
    limit = d.max_src_len if d.long_source != "drop" else None
    return corpus.split(examples, max_src_len=limit, long_source=d.long_source, where=where)


def _splits(corpus: Corpus, d, train_ex: list, valid_ex: Optional[list]) -> tuple[Split, Optional[Split]]:
    """The training split (``data.max_src_len`` / ``long_source`` / ``max_tgt_len``
    applied) and the validation split (see :func:`evaluation_split`)."""
    train_split = corpus.split(train_ex, max_src_len=d.max_src_len, max_tgt_len=d.max_tgt_len,
                               long_source=d.long_source, where=d.train)
    return train_split, evaluation_split(corpus, d, valid_ex, d.valid) if valid_ex else None


def train(config: Config, run_dir: str | Path, overwrite: bool = False) -> Path:
    """Train a new run described by ``config`` into ``run_dir``.

    Raises:
        Seq2SeqError: bad data, an existing run directory, incompatible model sizes.
    """
    run_dir = Path(run_dir)
    d = config.data
    train_ex = read_tsv(d.train, autoencoder=d.autoencoder)
    valid_ex = read_tsv(d.valid, multi_reference=True, autoencoder=d.autoencoder) if d.valid else None
    torch.manual_seed(config.seed)
    corpus = Corpus.from_config(d, train_ex, copy=config.model.decoder.copy_attention)
    device = _setup_torch(config)
    model = EncoderDecoder.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab)).to(device)
    prepare_run_dir(run_dir, overwrite)
    dump_config(config, run_dir / "config.yaml")
    corpus.save(run_dir)
    train_split, valid_split = _splits(corpus, d, train_ex, valid_ex)
    dropped = len(train_ex) - len(train_split.examples)
    print(f"[data] train {len(train_split.examples)} pairs{f' ({dropped} too long, dropped)' if dropped else ''}, "
          f"valid {len(valid_ex) if valid_ex else 0}; vocab src {len(corpus.src_vocab)} tgt {len(corpus.tgt_vocab)}",
          file=sys.stderr)
    print(f"[model] {model.num_parameters():,} parameters on {device}", file=sys.stderr)
    Trainer(config, run_dir, corpus, train_split, valid_split, model, device).fit()
    return run_dir


RESUMABLE_SECTIONS = ("training.", "decoding.", "evaluation.")


def resume(run_dir: str | Path, overrides: Optional[list[str]] = None) -> Path:
    """Continue the run in ``run_dir`` from its ``last`` checkpoint.

    Optimizer, scheduler, step, RNG state and data order are restored, so the run
    continues as if it had not stopped.  ``overrides`` may change ``training.*``,
    ``decoding.*`` and ``evaluation.*`` (e.g. raise ``training.max_steps``).

    Raises:
        Seq2SeqError: not a run directory, a missing checkpoint, or an override of
            the model or data.
    """
    run_dir = Path(run_dir)
    for item in overrides or []:
        if not item.startswith(RESUMABLE_SECTIONS):
            raise Seq2SeqError(f"--set {item}: a resumed run can only change "
                               f"{', '.join(s + '*' for s in RESUMABLE_SECTIONS)}")
    config = load_config(run_dir / "config.yaml", overrides, schema=Config)
    d = config.data
    corpus = Corpus.load(d, run_dir, copy=config.model.decoder.copy_attention)
    train_ex = read_tsv(d.train, autoencoder=d.autoencoder)
    valid_ex = read_tsv(d.valid, multi_reference=True, autoencoder=d.autoencoder) if d.valid else None
    device = _setup_torch(config)
    model = EncoderDecoder.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab)).to(device)
    dump_config(config, run_dir / "config.yaml")
    trainer = Trainer(config, run_dir, corpus, *_splits(corpus, d, train_ex, valid_ex), model, device)
    trainer.restore()
    print(f"[resume] {run_dir} from step {trainer.state.step}", file=sys.stderr)
    trainer.fit()
    return run_dir


__all__ = ["Trainer", "train", "resume", "evaluate_split"]
