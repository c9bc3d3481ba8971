import pytest
import sacrebleu

from seq2seq.metrics import bleu, chrf, phoneme_error_rate, sequence_accuracy, word_error_rate


def test_wer_uses_any_reference():
    hyps = [["A", "B"], ["C"], ["D", "E"]]
    refs = [[["A", "B"]], [["X"], ["C"]], [["D"]]]
    assert word_error_rate(hyps, refs) == pytest.approx(100 / 3)
    assert sequence_accuracy(hyps, refs) == pytest.approx(200 / 3)


def test_per_uses_closest_reference_length():
    # word 1: distance 1 to ["A","B","C"] (len 3), distance 2 to ["A"] -> closest: 1 / 3
    # word 2: exact match with second reference ["X","Y"] -> 0 / 2
    hyps = [["A", "B", "D"], ["X", "Y"]]
    refs = [[["A", "B", "C"], ["A"]], [["X"], ["X", "Y"]]]
    assert phoneme_error_rate(hyps, refs) == pytest.approx(100 * 1 / 5)


def test_per_hand_computed():
    hyps = [["K", "AE", "T"], []]
    refs = [[["K", "AA", "T", "S"]], [["AH"]]]
    # sub + ins = 2 over 4, plus 1 deletion over 1 -> 3 / 5
    assert phoneme_error_rate(hyps, refs) == pytest.approx(60.0)


def test_bleu_and_chrf_match_sacrebleu():
    hyps = ["the cat sat on the mat", "a dog barked loudly today"]
    refs = [["the cat sat on a mat"], ["the dog barked loudly"]]
    score, sig = bleu(hyps, refs)
    assert score == pytest.approx(sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]]).score)
    assert "nrefs:1" in sig and "tok:13a" in sig
    c, csig = chrf(hyps, refs)
    assert c == pytest.approx(sacrebleu.corpus_chrf(hyps, [[r[0] for r in refs]]).score)


def test_lowercase_bleu_and_chrf_ignore_case():
    from seq2seq.metrics import compute_metrics

    hyps = ["the cat sat on the mat"]                       # a model trained on lower-cased text
    refs = [["The Cat sat on the mat"]]
    cased, _ = bleu(hyps, refs)
    low, sig = bleu(hyps, refs, lowercase=True)
    assert cased < 100 and low == pytest.approx(100.0) and "case:lc" in sig
    assert chrf(hyps, refs, lowercase=True)[0] == pytest.approx(100.0)
    assert chrf(hyps, refs)[0] < 100
    out = compute_metrics(["bleu", "chrf"], [h.split() for h in hyps], [[r.split() for r in rs] for rs in refs],
                          hyps, refs, lowercase=True)
    assert out["bleu"] == pytest.approx(100.0) and "case:lc" in out["chrf_signature"]


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError):
        word_error_rate([["A"]], [])


def test_oracle_error_rates_take_each_examples_best_hypothesis():
    from seq2seq.metrics import oracle_error_rates

    refs = [[["K", "AE", "T"]], [["D", "AO", "G"], ["D", "AA", "G"]]]
    nbest = [[["K", "AE", "D"], ["K", "AE", "T"]],         # second hypothesis is right
             [["D", "OW"], ["D", "AA", "K"]]]              # best: 1 edit to "D AA G"
    wer, per = oracle_error_rates(nbest, refs)
    assert wer == 50.0
    assert per == pytest.approx(100.0 * (0 + 1) / (3 + 3))


def test_multi_reference_bleu_and_chrf_with_uneven_reference_counts():
    """Several references, and not the same number for every sentence.  The oracle pads the
    shorter lists by repeating a reference (which changes neither BLEU's clipped counts and
    closest length nor chrF's best-reference choice) and hands sacrebleu full streams."""
    hyps = ["the cat sat on the mat", "a dog barked loudly today", "it rains"]
    refs = [["the cat sat on a mat", "there is a cat on the mat", "a cat sat on the mat"],
            ["the dog barked loudly"],
            ["it is raining", "it rains today"]]
    full = [[rs[k] if k < len(rs) else rs[0] for rs in refs] for k in range(3)]   # 3 streams, no gaps
    score, sig = bleu(hyps, refs)
    assert score == pytest.approx(sacrebleu.corpus_bleu(hyps, full).score)
    assert "nrefs:var" in sig or "nrefs:3" in sig
    assert score > bleu(hyps, [rs[:1] for rs in refs])[0]             # the extra references count
    c, _ = chrf(hyps, refs)
    assert c == pytest.approx(sacrebleu.corpus_chrf(hyps, full).score)
    assert c > chrf(hyps, [rs[:1] for rs in refs])[0]
