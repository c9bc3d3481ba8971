"""Knowledge distillation: the token-level term against a hand computation, the criterion's
mixing and masking, ensembles of teachers, the teachers' outputs for sequence-level
distillation (resumable, n-best), a student that learns from its teacher, exact resume, and
the errors a user meets."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from seq2seq.checkpoint import load_checkpoint
from seq2seq.config import load_config
from seq2seq.criteria import DistillationCriterion, SequenceCriterion, distillation_kl
from seq2seq.data.toy import WORD_PAIRS
from seq2seq.distill import distill, teacher_targets
from seq2seq.teachers import check_vocabularies
from seq2seq.errors import Seq2SeqError
from seq2seq.models.encoder_decoder import Seq2SeqOutput
from seq2seq.models.ensemble import Ensemble
from seq2seq.training import resume, train

from conftest import make_config, run_cli

ROOT = Path(__file__).resolve().parent.parent

PAD = 0


class FixedTeacher(nn.Module):
    """A teacher whose teacher-forced logits are given."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = nn.Parameter(logits.clone(), requires_grad=False)
        self.decoder = SimpleNamespace(copy=False)

    def forward(self, batch, return_attention=False):
        return Seq2SeqOutput(self.logits)


def _batch(targets: torch.Tensor):
    return SimpleNamespace(src=torch.zeros(targets.size(0), 1, dtype=torch.long), tgt_out=targets,
                           tgt_out_ext=None, tgt_mask=targets != PAD, num_tgt_tokens=int((targets != PAD).sum()))


def test_the_kd_term_equals_a_hand_computation():
    student = torch.tensor([[[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]]])
    teacher = torch.tensor([[[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]]])
    T = 2.0
    expected = 0.0
    for t in range(2):                                   # sum_v q log(q / p) at temperature T, times T^2
        zq = [math.exp(x / T) for x in teacher[0, t].tolist()]
        zp = [math.exp(x / T) for x in student[0, t].tolist()]
        q = [z / sum(zq) for z in zq]
        p = [z / sum(zp) for z in zp]
        expected += sum(qi * math.log(qi / pi) for qi, pi in zip(q, p))
    expected *= T * T
    log_q = torch.log_softmax(teacher / T, dim=-1)
    got = distillation_kl(student, log_q, torch.tensor([[True, True]]), T)
    assert got.item() == pytest.approx(expected, rel=1e-6)
    assert distillation_kl(teacher, log_q, torch.tensor([[True, True]]), T).item() == pytest.approx(0, abs=1e-6)


def test_the_criterion_mixes_cross_entropy_and_kd_and_ignores_padding():
    torch.manual_seed(0)
    targets = torch.tensor([[1, 2, 3], [2, 1, PAD]])
    student = torch.randn(2, 3, 5, requires_grad=True)
    teacher_logits = torch.randn(2, 3, 5)
    base = SequenceCriterion(PAD, label_smoothing=0.1)
    batch = _batch(targets)
    ce = base(Seq2SeqOutput(student), batch, 0)
    off = DistillationCriterion(base, FixedTeacher(teacher_logits), weight=0.0)(Seq2SeqOutput(student), batch, 0)
    assert torch.equal(off.objective, ce.objective) and "kd" not in off.stats
    w, T = 0.3, 1.5
    mixed = DistillationCriterion(base, FixedTeacher(teacher_logits), w, T)(Seq2SeqOutput(student), batch, 0)
    kd = distillation_kl(student, torch.log_softmax(teacher_logits / T, -1), targets != PAD, T)
    torch.testing.assert_close(mixed.objective, (1 - w) * ce.objective + w * kd)
    assert torch.equal(mixed.loss, ce.loss) and mixed.stats["kd"][1] == 5
    other = teacher_logits.clone()
    other[1, 2] = 100.0                                 # the padded position's teacher and student values
    s2 = student.detach().clone()
    s2[1, 2] = -7.0
    again = DistillationCriterion(base, FixedTeacher(other), w, T)(Seq2SeqOutput(s2), batch, 0)
    torch.testing.assert_close(again.objective, mixed.objective.detach())
    mixed.objective.backward()
    assert student.grad[1, 2].abs().sum() == 0 and student.grad[0].abs().sum() > 0


def test_an_ensemble_of_teachers_mixes_their_tempered_distributions():
    a, b = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    T = 2.0
    crit = DistillationCriterion(SequenceCriterion(PAD), Ensemble([FixedTeacher(a), FixedTeacher(b)], [3, 1]), 1.0, T)
    got, ids = crit.teacher_log_probs(_batch(torch.tensor([[1, 2]])))
    q = 0.75 * torch.softmax(a / T, -1) + 0.25 * torch.softmax(b / T, -1)
    torch.testing.assert_close(got, q.log())
    assert ids is None
    same = DistillationCriterion(SequenceCriterion(PAD), Ensemble([FixedTeacher(a), FixedTeacher(a)]), 1.0, T)
    torch.testing.assert_close(same.teacher_log_probs(_batch(torch.tensor([[1, 2]])))[0], torch.log_softmax(a / T, -1))


def test_the_top_k_term_equals_a_hand_computation_and_the_full_term_at_k_equal_v():
    student = torch.tensor([[[1.0, 2.0, 0.5, -1.0], [0.0, -1.0, 3.0, 0.5]]])
    teacher = torch.tensor([[[2.0, 0.0, 1.0, -3.0], [1.0, 1.5, 1.0, 0.0]]])
    T, mask = 2.0, torch.tensor([[True, True]])
    top, ids = torch.log_softmax(teacher / T, -1).topk(2, dim=-1)
    renormalised = top - top.logsumexp(-1, keepdim=True)
    expected = 0.0
    for t in range(2):                     # sum over the two kept tokens of q~ log(q~ / p), p the full softmax
        kept = ids[0, t].tolist()
        zq = [math.exp(teacher[0, t, v].item() / T) for v in kept]
        zp = [math.exp(x / T) for x in student[0, t].tolist()]
        expected += sum(z / sum(zq) * math.log(z / sum(zq) / (zp[v] / sum(zp))) for z, v in zip(zq, kept))
    got = distillation_kl(student, renormalised, mask, T, teacher_ids=ids)
    assert got.item() == pytest.approx(expected * T * T, rel=1e-6)
    full = torch.log_softmax(teacher / T, -1)
    everything = torch.arange(4).expand(1, 2, 4)
    torch.testing.assert_close(distillation_kl(student, full, mask, T, teacher_ids=everything),
                               distillation_kl(student, full, mask, T))
    with pytest.raises(ValueError, match="do not match"):
        distillation_kl(student, renormalised, mask, T, teacher_ids=ids[..., :1])


@pytest.fixture(scope="module")
def word_pairs_teacher(tmp_path_factory):
    """The toy word-pair config's model trained 100 updates (all 48 pairs right)."""
    run = tmp_path_factory.mktemp("teacher") / "teacher"
    train(_word_pairs_config("training.max_steps=100"), run)
    return run


def _word_pairs_config(*overrides: str):
    return load_config(ROOT / "configs" / "toy_word_pairs.yaml",
                       [f"data.train={WORD_PAIRS}", f"data.valid={WORD_PAIRS}", "training.progress_bar=false",
                        *overrides])


def _accuracies(run) -> list[float]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["accuracy"] for r in rows if r["split"] == "valid"]


def test_a_student_distilled_from_its_teacher_is_ahead_of_one_trained_on_the_references_alone(word_pairs_teacher, tmp_path):
    """A student half the teacher's width, 60 updates: from the references alone against
    token-level distillation from the teacher (which has every pair right), with the teacher
    in every step and from its stored top-4."""
    assert _accuracies(word_pairs_teacher)[-1] == 100.0
    small = ["model.encoder.hidden_size=32", "model.decoder.hidden_size=32", "training.max_steps=60",
             "training.validate_every=20"]
    train(_word_pairs_config(*small), tmp_path / "alone")
    distill(_word_pairs_config(*small, f"distillation.teachers=['{word_pairs_teacher}']"), tmp_path / "student")
    distill(_word_pairs_config(*small, f"distillation.teachers=['{word_pairs_teacher}']", "distillation.top_k=4"),
            tmp_path / "top_k")                        # from the teacher's 4 best tokens per position, stored
    alone, student, top_k = (_accuracies(tmp_path / run) for run in ("alone", "student", "top_k"))
    assert student[-1] >= alone[-1] + 5 and top_k[-1] >= alone[-1] + 5, (alone, student, top_k)
    assert (tmp_path / "student" / "tgt_vocab.txt").read_text() == (word_pairs_teacher / "tgt_vocab.txt").read_text()


def test_a_distilled_run_resumes_bit_identically(word_pairs_teacher, tmp_path):
    over = [f"distillation.teachers=['{word_pairs_teacher}']", "distillation.temperature=2",
            "model.encoder.hidden_size=32", "model.decoder.hidden_size=32", "training.validate_every=10",
            "training.log_every=5"]
    distill(_word_pairs_config(*over, "training.max_steps=30"), tmp_path / "straight")
    distill(_word_pairs_config(*over, "training.max_steps=10"), tmp_path / "split")   # on the grid
    resume(tmp_path / "split", ["training.max_steps=30"])
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last")
    b, meta = load_checkpoint(tmp_path / "split" / "checkpoints" / "last")
    assert meta["step"] == 30
    for k in a:
        if not k.startswith("rng"):
            assert torch.equal(a[k], b[k]), k
    strip = lambda run: [{k: v for k, v in json.loads(r).items() if k not in ("tokens_per_s", "elapsed_s")}  # noqa: E731
                         for r in (run / "metrics.jsonl").read_text().splitlines()]
    rows = strip(tmp_path / "straight")
    assert rows == strip(tmp_path / "split") and all("kd" in r for r in rows if r["split"] == "train")


def test_the_teachers_outputs_are_resumable_nbest_and_reused(word_pairs_teacher, tmp_path, monkeypatch):
    import seq2seq.distill as distill_module

    monkeypatch.setattr(distill_module, "CHUNK", 20)            # 48 sources: parts of 20, 20, 8
    config = _word_pairs_config(f"distillation.teachers=['{word_pairs_teacher}']", "distillation.sequence_level=true",
                                "distillation.nbest=2", "distillation.beam_size=3", "distillation.weight=0")
    out = tmp_path / "student.teacher.tsv"
    parts = tmp_path / "student.teacher.tsv.parts"
    calls = []
    real = distill_module.load_teachers

    def interrupted(cfg):                       # the first decoding stops after its first part
        teacher = real(cfg)
        predict = teacher.predict

        def once(*args, **kwargs):
            if calls:
                raise KeyboardInterrupt("killed")
            calls.append(1)
            return predict(*args, **kwargs)

        teacher.predict = once
        return teacher

    monkeypatch.setattr(distill_module, "load_teachers", interrupted)
    with pytest.raises(KeyboardInterrupt):
        teacher_targets(config, out)
    assert not out.exists() and [p.name for p in sorted(parts.glob("0*.tsv"))] == ["000000.tsv"]
    (parts / "000000.tsv").write_text("marker\tkept\n")      # a part already written is not decoded again
    monkeypatch.setattr(distill_module, "load_teachers", real)
    teacher_targets(config, out)
    lines = out.read_text().splitlines()
    references = WORD_PAIRS.read_text().splitlines()
    assert lines[:48] == references and "marker\tkept" in lines
    assert len(lines) == len(set(lines)) and not parts.exists() and (tmp_path / "student.teacher.tsv.json").is_file()
    second_best = [line for line in lines[48:] if line != "marker\tkept"]
    assert len(second_best) == 28                              # sources 21-48: their 2nd-best (the 1st = reference)
    monkeypatch.setattr(distill_module, "load_teachers", lambda cfg: pytest.fail("decoded again"))
    assert teacher_targets(config, out) == out


def _word_pairs_rows(config):
    from seq2seq.tasks.text import TextTask

    return TextTask._read(config, None, Path(config.distillation.teachers[0]))


def test_the_stored_top_k_are_the_teachers_distributions_row_by_row(word_pairs_teacher):
    """Computed over the training rows in length-sorted batches, looked up in a training
    batch's own order: at k = V they are the teacher's full distribution at every real
    position, at k < V its k best renormalised; from other data they are an error."""
    from seq2seq.api import Seq2Seq
    from seq2seq.criteria import teacher_log_probs
    from seq2seq.teachers import TeacherTopK

    config = _word_pairs_config(f"distillation.teachers=['{word_pairs_teacher}']", "distillation.temperature=2")
    teacher = Seq2Seq.load(word_pairs_teacher).model
    data = _word_pairs_rows(config).train_data
    batch = data.batch(torch.tensor([5, 0, 47, 12]))
    dense = teacher_log_probs(teacher, batch, 2.0)
    V = dense.size(-1)
    full = TeacherTopK.compute(teacher, data, V, 2.0, {}, batch_tokens=40)
    log_q, ids = full.lookup(batch)
    mask = batch.tgt_mask
    got = torch.full_like(dense, float("-inf")).scatter(-1, ids, log_q)
    torch.testing.assert_close(got[mask], dense[mask], atol=1e-5, rtol=1e-5)
    assert (log_q[~mask] == 0).all() and (ids[~mask] == 0).all()
    three = TeacherTopK.compute(teacher, data, 3, 2.0, {})
    log_q3, ids3 = three.lookup(batch)
    top, top_ids = dense.topk(3, dim=-1)
    assert torch.equal(ids3[mask], top_ids[mask])
    torch.testing.assert_close(log_q3[mask], (top - top.logsumexp(-1, keepdim=True))[mask], atol=1e-5, rtol=1e-5)
    shuffled = data.batch(torch.tensor([6, 0, 47, 12]))
    shuffled.indices = batch.indices                       # rows 6's targets claimed as row 5's
    with pytest.raises(Seq2SeqError, match="computed on other training data"):
        three.lookup(shuffled)
    with pytest.raises(Seq2SeqError, match="exceeds the teachers' .* target tokens"):
        TeacherTopK.compute(teacher, data, V + 1, 2.0, {})


def test_a_student_from_stored_top_k_learns_resumes_bit_identically_and_reuses_the_store(word_pairs_teacher, tmp_path,
                                                                                        capfd):
    over = [f"distillation.teachers=['{word_pairs_teacher}']", "distillation.top_k=4", "distillation.temperature=2",
            "model.encoder.hidden_size=32", "model.decoder.hidden_size=32", "training.validate_every=20",
            "training.log_every=5"]
    distill(_word_pairs_config(*over, "training.max_steps=60"), tmp_path / "straight")
    store = tmp_path / "straight.teacher-topk.safetensors"
    assert store.is_file() and load_config(tmp_path / "straight" / "config.yaml").distillation.top_k_file == str(store)
    shared = [*over, f"distillation.top_k_file={store}"]
    capfd.readouterr()
    distill(_word_pairs_config(*shared, "training.max_steps=20"), tmp_path / "split")   # on the grid
    assert "reusing the teachers' top-4 distributions" in capfd.readouterr().err
    stamp = store.stat().st_mtime_ns
    resume(tmp_path / "split", ["training.max_steps=60"])
    assert store.stat().st_mtime_ns == stamp
    a, _ = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last")
    b, meta = load_checkpoint(tmp_path / "split" / "checkpoints" / "last")
    assert meta["step"] == 60
    for k in a:
        if not k.startswith("rng"):
            assert torch.equal(a[k], b[k]), k
    distill(_word_pairs_config(*shared, "distillation.top_k=3", "training.max_steps=1"), tmp_path / "other_k")
    assert "replacing it" in capfd.readouterr().err
    from seq2seq.teachers import TeacherTopK

    assert TeacherTopK.load(store, {}, None) is None                      # made with other settings: not used
    store.write_bytes(b"not safetensors")
    with pytest.raises(Seq2SeqError, match="not a store of the teachers' top-k"):
        distill(_word_pairs_config(*shared, "training.max_steps=1"), tmp_path / "broken")


def test_sequence_level_distillation_from_the_command_line(word_pairs_teacher, tmp_path):
    done = run_cli("distill", ROOT / "configs" / "toy_word_pairs.yaml", "--teacher", word_pairs_teacher,
                   "--run-dir", "runs/s", "--set", f"data.train={WORD_PAIRS}", f"data.valid={WORD_PAIRS}",
                   "distillation.sequence_level=true", "distillation.weight=0", "training.max_steps=20",
                   "training.progress_bar=false", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "[distill] 48 training pairs in runs/s.teacher.tsv" in done.stderr and "run saved in runs/s" in done.stderr
    saved = load_config(tmp_path / "runs" / "s" / "config.yaml")
    assert saved.data.train == "runs/s.teacher.tsv" and saved.distillation.teachers == [str(word_pairs_teacher)]
    again = run_cli("distill", ROOT / "configs" / "toy_word_pairs.yaml", "--teacher", word_pairs_teacher,
                    "--run-dir", "runs/s", "--set", f"data.train={WORD_PAIRS}", cwd=tmp_path)
    assert again.returncode == 2 and "run directory exists" in again.stderr and "[distill]" not in again.stderr


def test_the_errors_name_what_differs(word_pairs_teacher, tiny_data, tmp_path):
    with pytest.raises(Seq2SeqError, match=r"data.src_tokenizer is 'char', this config's is 'word'"):
        distill(make_config(tiny_data, **{"distillation.teachers": f"['{word_pairs_teacher}']"}), tmp_path / "a")
    train(make_config(tiny_data, **{"training.max_steps": 2}), tmp_path / "copy")
    from seq2seq.api import Seq2Seq

    teacher, other = Seq2Seq.load(word_pairs_teacher), Seq2Seq.load(tmp_path / "copy")
    with pytest.raises(Seq2SeqError, match="target vocabulary differs .* at id"):
        check_vocabularies(teacher, other.corpus)
    with pytest.raises(Seq2SeqError, match="is not the teachers' outputs"):
        train(_word_pairs_config(f"distillation.teachers=['{word_pairs_teacher}']", "distillation.sequence_level=true"),
              tmp_path / "b")
    with pytest.raises(Seq2SeqError, match="distillation.teachers is empty"):
        distill(_word_pairs_config(), tmp_path / "c")
    with pytest.raises(Seq2SeqError, match=r"nbest \(3\) cannot exceed beam_size \(2\)"):
        _word_pairs_config("distillation.nbest=3", "distillation.beam_size=2")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def _first_train_loss(run) -> float:
    return next(json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()
                if json.loads(line)["split"] == "train")


def test_a_run_started_from_another_takes_its_weights_and_vocabularies(word_pairs_teacher, tmp_path):
    """training.init_from: the new run (here a student of the same size, distilled from its
    teacher, as in born-again networks) starts where the teacher ended: its first logged loss is
    far below a randomly initialised run's, on training data that lacks tokens of the teacher's
    vocabularies, which it keeps anyway."""
    few = tmp_path / "few.tsv"
    few.write_text("".join(WORD_PAIRS.read_text().splitlines(keepends=True)[:5]))
    short = ["training.max_steps=3", "training.log_every=1", "training.validate_every=3", f"data.train={few}",
             "training.learning_rate=1e-5", "training.scheduler=none"]
    train(_word_pairs_config(*short), tmp_path / "random")
    distill(_word_pairs_config(*short, f"distillation.teachers=['{word_pairs_teacher}']",
                               f"training.init_from={word_pairs_teacher}", "training.init_checkpoint=last"),
            tmp_path / "born_again")
    random, born_again = (_first_train_loss(tmp_path / run) for run in ("random", "born_again"))
    assert born_again < 0.2 * random, (random, born_again)
    for name in ("src_vocab.txt", "tgt_vocab.txt"):
        assert (tmp_path / "born_again" / name).read_text() == (word_pairs_teacher / name).read_text()
    assert (tmp_path / "random" / "tgt_vocab.txt").read_text() != (word_pairs_teacher / "tgt_vocab.txt").read_text()


def test_init_from_errors_name_the_key_and_the_tensor(word_pairs_teacher, tmp_path):
    with pytest.raises(Seq2SeqError, match=r"training.init_from .*nowhere: not a run directory"):
        train(_word_pairs_config(f"training.init_from={tmp_path / 'nowhere'}"), tmp_path / "a")
    with pytest.raises(Seq2SeqError, match=r"tensor '.*' has shape .* in the checkpoint but"):
        train(_word_pairs_config(f"training.init_from={word_pairs_teacher}", "model.decoder.hidden_size=16",
                                 "model.encoder.hidden_size=16"), tmp_path / "b")
    with pytest.raises(Seq2SeqError, match=r"init_checkpoint"):
        _word_pairs_config("training.init_checkpoint=newest")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
