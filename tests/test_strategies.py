"""Training strategies: scheduled sampling, LR schedules, gradient accumulation,
checkpoint averaging, source reversal."""

import json
import math

import pytest
import torch

from seq2seq.checkpoint import average_checkpoints, load_checkpoint, save_checkpoint
from seq2seq.config import TeacherForcingConfig, TrainingConfig
from seq2seq.models.encoder_decoder import reverse_padded
from seq2seq.scheduled_sampling import scheduled_sampling_forward, teacher_forcing_probability
from seq2seq.search import DecodeOptions, greedy_search
from seq2seq.training import BudgetLinearLR, build_scheduler, train

from conftest import make_config
from test_model import VOCAB, build, data


# ---------------------------------------------------------------- schedules (Bengio et al. 2015, sec. 2.4)

def test_teacher_forcing_schedules_at_known_steps():
    const = TeacherForcingConfig(schedule="constant", ratio=0.75)
    assert teacher_forcing_probability(const, 0) == 0.75 == teacher_forcing_probability(const, 10**6)
    lin = TeacherForcingConfig(schedule="linear", start=1.0, end=0.2, steps=1000)
    assert [teacher_forcing_probability(lin, i) for i in (0, 500, 1000, 5000)] == pytest.approx([1.0, 0.6, 0.2, 0.2])
    exp = TeacherForcingConfig(schedule="exponential", k=0.999)
    assert teacher_forcing_probability(exp, 0) == 1.0
    assert teacher_forcing_probability(exp, 693) == pytest.approx(0.999 ** 693)
    assert teacher_forcing_probability(exp, 693) == pytest.approx(0.5, abs=1e-3)
    sig = TeacherForcingConfig(schedule="inverse_sigmoid", k=100)
    assert teacher_forcing_probability(sig, 0) == pytest.approx(100 / 101)
    assert teacher_forcing_probability(sig, 100 * math.log(100)) == pytest.approx(0.5)   # k / (k + k)
    assert teacher_forcing_probability(sig, 10**7) == pytest.approx(0.0, abs=1e-12)


def test_schedule_parameters_are_checked():
    with pytest.raises(ValueError, match="0 < k < 1"):
        TeacherForcingConfig(schedule="exponential", k=2.0)
    with pytest.raises(ValueError, match="k >= 1"):
        TeacherForcingConfig(schedule="inverse_sigmoid", k=0.5)


# ---------------------------------------------------------------- scheduled sampling forward

@pytest.mark.parametrize("variant", [dict(attention="luong_general"), dict(attention="bahdanau"),
                                     dict(attention="luong_dot", input_feeding=True),
                                     dict(cell="gru", attention="none", every_step=True)])
def test_probability_one_equals_teacher_forcing(variant):
    model = build(**variant)
    batch = data().batch([0, 1, 2, 3])
    tf_logits = model(batch).logits
    two = scheduled_sampling_forward(model, batch, 1.0, TeacherForcingConfig(mode="two_pass")).logits
    assert torch.equal(two, tf_logits)
    exact = scheduled_sampling_forward(model, batch, 1.0, TeacherForcingConfig(mode="exact")).logits
    torch.testing.assert_close(exact, tf_logits, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", [dict(attention="luong_general"), dict(attention="bahdanau")])
def test_probability_zero_exact_feeds_the_models_own_argmax(variant):
    """eps = 0, exact: the decoder reads its own previous argmax, i.e. it decodes greedily."""
    model = build(**variant)
    batch = data().batch([0, 1, 2, 3])
    logits = scheduled_sampling_forward(model, batch, 0.0, TeacherForcingConfig(mode="exact")).logits
    steps = batch.tgt_in.size(1)
    greedy = greedy_search(model, batch, VOCAB.bos_id, -1, DecodeOptions(max_len=steps, max_len_a=0.0,
                                                                        max_len_b=steps))
    for row, hyps in enumerate(greedy):
        assert logits[row].argmax(-1).tolist() == hyps[0].tokens


def test_probability_zero_two_pass_feeds_first_pass_predictions():
    model = build(attention="luong_general")
    batch = data().batch([0, 1, 2, 3])
    first = model(batch).logits
    shifted = torch.cat([batch.tgt_in[:, :1], first.argmax(-1)[:, :-1]], dim=1)
    expected, _ = model.decoder(shifted, model.encode(batch.src, batch.src_lengths, batch.src_mask)[1])
    got = scheduled_sampling_forward(model, batch, 0.0, TeacherForcingConfig(mode="two_pass")).logits
    assert torch.equal(got, expected)


def test_mixing_rate_follows_the_probability():
    """With eps = 0.5 about half of the non-initial inputs are gold (checked on the coins)."""
    from seq2seq.scheduled_sampling import gold_coins

    torch.manual_seed(0)
    coin = gold_coins(torch.Size((400, 50)), 0.3, "cpu")
    assert coin[:, 0].all()
    assert coin[:, 1:].float().mean().item() == pytest.approx(0.3, abs=0.01)


def test_scheduled_sampling_gradients_flow_only_through_the_second_pass():
    """Two-pass scheduled sampling's gradient equals, value for value, the gradient of a
    plain teacher-forced pass over the mixed inputs held constant: nothing flows back
    through the first pass that chose them (Duckworth et al. 2019)."""
    model = build(attention="luong_general").train()
    batch = data().batch([0, 1, 2, 3])
    cfg = TeacherForcingConfig(mode="two_pass", sampling="sample", temperature=2.0)
    torch.manual_seed(5)
    loss = scheduled_sampling_forward(model, batch, 0.5, cfg).logits.log_softmax(-1).gather(
        -1, batch.tgt_out.unsqueeze(-1)).sum()
    loss.backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    torch.manual_seed(5)                                  # the same coins and samples, drawn again
    with torch.no_grad():
        first = model(batch).logits
        coin = torch.rand(batch.tgt_in.shape) < 0.5
        coin[:, 0] = True
        drawn = torch.multinomial(torch.softmax(first.reshape(-1, first.size(-1)) / 2.0, -1), 1).view(first.shape[:2])
    mixed = torch.where(coin, batch.tgt_in, torch.cat([batch.tgt_in[:, :1], drawn[:, :-1]], 1))
    state = model.encode(batch.src, batch.src_lengths, batch.src_mask)[1]
    model.decoder(mixed, state)[0].log_softmax(-1).gather(-1, batch.tgt_out.unsqueeze(-1)).sum().backward()
    assert any(v.abs().sum() > 0 for v in got.values())
    for n, p in model.named_parameters():
        torch.testing.assert_close(got[n], p.grad, msg=n)


# ---------------------------------------------------------------- LR schedules, accumulation

def _lrs(**kw):
    cfg = TrainingConfig(max_steps=10, learning_rate=1.0, min_learning_rate=0.01, **kw)
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = build_scheduler(cfg, opt)
    out = []
    for _ in range(12):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_inverse_sqrt_warms_up_then_decays():
    lrs = _lrs(scheduler="inverse_sqrt", warmup_steps=4)
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[8] == pytest.approx(math.sqrt(4 / 9))


def test_exponential_decay_and_floor():
    lrs = _lrs(scheduler="exponential", decay_rate=0.5, decay_steps=2)
    assert lrs[:5] == pytest.approx([0.5 ** 0.5, 0.5, 0.5 ** 1.5, 0.25, 0.5 ** 2.5])
    floor = _lrs(scheduler="exponential", decay_rate=0.01, decay_steps=1)
    assert floor[3:] == pytest.approx([0.01] * 9)


def test_budget_linear_rates_at_known_points():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=5.0)
    sched = BudgetLinearLR(opt, lr=1.0, min_lr=0.01, warmup_steps=0)
    assert opt.param_groups[0]["lr"] == 1.0                       # the first update gets the peak rate
    assert [sched.rate(7, u) for u in (0.0, 0.5, 1.0, 3.0)] == pytest.approx([1.0, 0.505, 0.01, 0.01])
    warm = BudgetLinearLR(opt, lr=1.0, min_lr=0.0, warmup_steps=4)
    assert opt.param_groups[0]["lr"] == 0.25
    assert [warm.rate(s, 0.5) for s in (0, 1, 3, 9)] == pytest.approx([0.125, 0.25, 0.5, 0.5])


def test_linear_schedule_reaches_its_floor_when_the_budget_ends(tiny_data, tmp_path):
    """By steps: the rate logged after update s is lr_min + (lr - lr_min)(1 - s / max_steps).
    By time: the rate falls as the clock runs and the run stops at the floor."""
    over = {"training.scheduler": "linear", "training.learning_rate": 0.01, "training.min_learning_rate": 0.001,
            "training.log_every": 5, "training.validate_every": 1000}
    train(make_config(tiny_data, **over, **{"training.max_steps": 20}), tmp_path / "steps")
    rows = [json.loads(r) for r in (tmp_path / "steps" / "metrics.jsonl").read_text().splitlines()]
    lrs = [(r["step"], r["lr"]) for r in rows if r["split"] == "train"]
    assert lrs == [(s, pytest.approx(0.001 + 0.009 * (1 - s / 20))) for s in (5, 10, 15, 20)]
    train(make_config(tiny_data, **over, **{"training.max_minutes": 0.05, "training.max_steps": "null"}), tmp_path / "time")
    rows = [json.loads(r) for r in (tmp_path / "time" / "metrics.jsonl").read_text().splitlines()]
    timed = [r for r in rows if r["split"] == "train"]
    assert len(timed) >= 3
    for r in timed:        # set from the clock one update earlier, so at least the rate at the logged time
        assert r["lr"] >= 0.001 + 0.009 * (1 - (r["elapsed_s"] + 0.05) / 3.0) - 1e-9   # elapsed_s: rounded to 0.1 s
    assert [r["lr"] for r in timed] == sorted((r["lr"] for r in timed), reverse=True)
    assert timed[-1]["lr"] < 0.001 + 0.009 * 0.2


def test_linear_schedule_needs_a_budget():
    with pytest.raises(ValueError, match="set max_steps or max_minutes"):
        TrainingConfig(max_epochs=3, scheduler="linear")


def test_gradient_accumulation_equals_one_big_batch(tiny_data, tmp_path):
    """Two accumulated batches give the update of their union (loss over all their tokens)."""
    from seq2seq.data.corpus import Corpus
    from seq2seq.data.tsv import read_tsv
    from seq2seq.models.encoder_decoder import EncoderDecoder
    from seq2seq.tasks.text import TextTask
    from seq2seq.training import Trainer

    from conftest import make_config

    params = []
    for accumulate in (True, False):
        config = make_config(tiny_data, **{"training.optimizer": "sgd", "training.learning_rate": 0.5})
        examples = read_tsv(config.data.train)
        corpus = Corpus.from_config(config.data, examples)
        split = corpus.split(examples)
        torch.manual_seed(0)
        model = EncoderDecoder.from_config(config.model, len(corpus.src_vocab), len(corpus.tgt_vocab))
        trainer = Trainer(TextTask(config, corpus, split), model, tmp_path / str(accumulate), torch.device("cpu"))
        idx = torch.arange(8)
        if accumulate:
            trainer.train_step([split.dataset.batch(idx[:3]), split.dataset.batch(idx[3:])])
        else:
            trainer.train_step([split.dataset.batch(idx)])
        params.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    torch.testing.assert_close(params[0], params[1], atol=1e-6, rtol=1e-5)


# ---------------------------------------------------------------- checkpoint averaging, source reversal

def test_average_checkpoints_is_the_elementwise_mean(tmp_path):
    for i, value in enumerate((1.0, 2.0, 6.0)):
        save_checkpoint(tmp_path / f"step_{i}", {"model.w": torch.full((2, 3), value),
                                                 "model.n": torch.tensor([i])}, {})
    average_checkpoints([tmp_path / f"step_{i}" for i in range(3)], tmp_path / "averaged")
    tensors, meta = load_checkpoint(tmp_path / "averaged")
    assert torch.equal(tensors["model.w"], torch.full((2, 3), 3.0))
    assert tensors["model.n"].tolist() == [2]
    assert meta["averaged"] == ["step_0", "step_1", "step_2"]


def test_reverse_padded_keeps_padding_in_place():
    x = torch.tensor([[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]])
    out = reverse_padded(x, torch.tensor([3, 2, 4]))
    assert out.tolist() == [[3, 2, 1, 0], [5, 4, 0, 0], [9, 8, 7, 6]]
    states = torch.arange(24.).view(2, 4, 3)
    back = reverse_padded(reverse_padded(states, torch.tensor([4, 2])), torch.tensor([4, 2]))
    assert torch.equal(back, states)
    assert torch.equal(reverse_padded(states, torch.tensor([4, 2]))[1, 0], states[1, 1])


def test_reversed_source_attention_points_at_reading_order():
    """With reverse_source, attention weights still index the source as written:
    the weights of a padded sentence are zero on its padding."""
    model = build(attention="luong_general", reverse=True)
    batch = data().batch([0, 1, 2, 3])
    with torch.no_grad():
        attn = model(batch, return_attention=True).attention
    assert float(attn.masked_select(~batch.src_mask.unsqueeze(1).expand_as(attn)).abs().max()) == 0.0
