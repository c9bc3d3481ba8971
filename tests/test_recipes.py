"""Data recipes for text tasks: the Bible (SWORD modules) and chatterbot-corpus.

No network and no Bible data needed: the verse reader is replaced by a stub and the
chatterbot wheel is a zip built here.  The one test that reads the real modules is
skipped when they have not been fetched (``seq2seq data bible`` fetches them).
"""

import zipfile
from pathlib import Path

import pytest

from seq2seq.data import bible, chatterbot
from seq2seq.data.tsv import read_tsv
from seq2seq.errors import Seq2SeqError

WEB_GEN_1_1 = ('<w lemma="strong:H0430">In</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H7225">beginning'
               '</w>, <w lemma="strong:H0430">God</w><note placement="foot"><reference type="annotateRef">1:1 '
               '</reference>The Hebrew word rendered “God” is “אֱלֹהִ֑ים” (Elohim).</note><w lemma="strong:H1254">'
               'created</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H8064">heavens</w> <w lemma="strong:'
               'H0430">and</w> <w lemma="strong:H0853">the</w> <w lemma="strong:H0776">earth</w>. \n')


def test_clean_osis():
    assert bible.clean_osis(WEB_GEN_1_1) == "In the beginning, God created the heavens and the earth."
    assert bible.clean_osis('<w lemma="strong:H7225">EN el principio</w> <w>crió</w> Dios.') == \
        "En el principio crió Dios."
    assert bible.clean_osis("Y ACONTECIÓ después") == "Y aconteció después"
    assert bible.clean_osis('<title type="x">Section heading</title>¡<w>OH</w> Jehová !') == "¡Oh Jehová!"
    assert bible.clean_osis('<title canonical="true" type="psalm">A Psalm by David.</title> <l sID="a"/>Yahweh') \
        == "A Psalm by David. Yahweh"


def _verses(lang):
    books = {"Gen": 3, "Ruth": 2, "Josh": 2, "Matt": 2}
    return {(b, 1, v): f"{lang} {b} verse {v}" for b, n in books.items() for v in range(1, n + 1)}


def test_align_and_split_by_book():
    src, tgt = _verses("en"), _verses("es")
    del tgt[("Gen", 1, 2)]                                      # a verse missing on one side
    tgt[("Matt", 1, 2)] = "es " + "much longer text " * 10     # a mis-numbered pair of very different lengths
    pairs = bible.align_verses(src, tgt)
    assert [k for k, _, _ in pairs] == [("Gen", 1, 1), ("Gen", 1, 3), ("Ruth", 1, 1), ("Ruth", 1, 2),
                                        ("Josh", 1, 1), ("Josh", 1, 2), ("Matt", 1, 1)]
    parts = bible.split_by_book(pairs, ["Ruth"], ["Josh"])
    assert {k[0] for k, _, _ in parts["valid"]} == {"Ruth"} and {k[0] for k, _, _ in parts["test"]} == {"Josh"}
    assert {k[0] for k, _, _ in parts["train"]} == {"Gen", "Matt"}
    with pytest.raises(Seq2SeqError, match="both"):
        bible.split_by_book(pairs, ["Ruth"], ["Ruth"])
    with pytest.raises(Seq2SeqError, match="Jonah"):
        bible.split_by_book(pairs, ["Jonah"], ["Josh"])


def test_build_bible_split_with_a_stub_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(bible, "read_module", lambda folder, module: _verses(module[:3]))
    counts = bible.build_bible_split(tmp_path / "out", tmp_path / "cache", "es-en", modules_dir=str(tmp_path),
                                     valid_books=["Ruth"], test_books=["Josh", "Matt"])
    assert counts == {"train": 3, "valid": 2, "test": 4}
    train = read_tsv(tmp_path / "out" / "train.tsv")
    assert train[0].source == "spa Gen verse 1" and train[0].references == ["eng Gen verse 1"]
    assert not any("Josh" in e.source or "Matt" in e.source for e in train)
    with pytest.raises(Seq2SeqError, match="exists; pass --overwrite"):
        bible.build_bible_split(tmp_path / "out", tmp_path / "cache", modules_dir=str(tmp_path))
    with pytest.raises(Seq2SeqError, match="--direction"):
        bible.build_bible_split(tmp_path / "o2", tmp_path / "cache", "en-fr")


def test_fetch_without_apt_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(bible.shutil, "which", lambda name: None)
    with pytest.raises(Seq2SeqError, match=r"sword-text-web.*apt-get and dpkg-deb.*--modules DIR"):
        bible.fetch_modules(tmp_path)


def test_fetch_reuses_the_cache(tmp_path, monkeypatch):
    mods = tmp_path / "root" / "usr" / "share" / "sword" / "mods.d"
    mods.mkdir(parents=True)
    for m in bible.PACKAGES:
        (mods / f"{m.lower()}.conf").write_text("[x]\n")
    monkeypatch.setattr(bible.subprocess, "run", lambda *a, **k: pytest.fail("downloaded again"))
    assert bible.fetch_modules(tmp_path) == mods.parent


SWORD = Path.home() / ".cache" / "seq2seq" / "sword" / "root" / "usr" / "share" / "sword"


@pytest.mark.skipif(not (SWORD / "mods.d" / "spaRV1909eb.conf").exists(),
                    reason="SWORD modules not fetched (seq2seq data bible)")
def test_real_modules_ruth():
    es = bible.read_module(SWORD, "spaRV1909eb", books=["Ruth"])
    en = bible.read_module(SWORD, "engWEB2015eb", books=["Ruth"])
    assert len(es) == len(en) == 85 and list(es)[0] == ("Ruth", 1, 1)
    assert es[("Ruth", 1, 16)].startswith("Y Ruth respondió: No me ruegues que te deje")
    assert en[("Ruth", 1, 16)].startswith("Ruth said, “Don’t urge me to leave you")


def _wheel(path: Path, files: dict) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(f"chatterbot_corpus/data/english/{name}", text)
        z.writestr("chatterbot_corpus/__init__.py", "")
    return path


GREETINGS = """categories:
- greetings
conversations:
- - Hello
  - Hi
- - hello
  - Greetings!
- - How are you?
  - Fine.
  - Good to hear.
"""
NUMBERS = """conversations:
- - What is two plus two?
  - 4
- - Tell me a joke
  - "No\tthanks"
"""


def test_chatterbot_pairs_and_split_by_prompt(tmp_path):
    wheel = _wheel(tmp_path / "c.whl", {"greetings.yml": GREETINGS, "numbers.yml": NUMBERS})
    assert chatterbot.read_conversations(wheel) == [
        ("Hello", "Hi"), ("hello", "Greetings!"), ("How are you?", "Fine."), ("Fine.", "Good to hear."),
        ("What is two plus two?", "4"), ("Tell me a joke", "No thanks")]
    counts = chatterbot.build_chatterbot_split(tmp_path / "out", tmp_path / "cache", str(wheel),
                                               valid_fraction=0.2, test_fraction=0.2)
    assert counts["valid"] == counts["test"] == 1              # 5 distinct prompts ("Hello" = "hello")
    splits = {n: read_tsv(tmp_path / "out" / f"{n}.tsv", multi_reference=True) for n in counts}
    train_prompts = {e.source.lower() for e in splits["train"]}
    assert len(train_prompts) == 3
    for n in ("valid", "test"):
        assert not {e.source.lower() for e in splits[n]} & train_prompts
        assert all(len(e.references) == (2 if e.source.lower() == "hello" else 1) for e in splits[n])
    every_pair = sorted((e.source.lower(), r) for n in counts for e in splits[n] for r in e.references)
    assert every_pair == sorted((p.lower(), r) for p, r in chatterbot.read_conversations(wheel))


def test_chatterbot_bad_wheel(tmp_path):
    (tmp_path / "x.whl").write_bytes(b"nope")
    with pytest.raises(Seq2SeqError, match="not a chatterbot-corpus wheel"):
        chatterbot.read_conversations(tmp_path / "x.whl")
    wheel = _wheel(tmp_path / "c.whl", {"bad.yml": "conversations: [oops"})
    with pytest.raises(Seq2SeqError, match=r"bad.yml: cannot read"):
        chatterbot.read_conversations(wheel)
