"""G2P benchmark on the standard CMUdict split (g014b2b), scored as in the literature.

Trains ``configs/g2p_cmudict.yaml`` (stress-free phonemes) on
``../shared/data/g2p-cmudict-g014b2b/g014b2b.train`` with 2,670 of its words held
out for validation (as the papers do), for ``--minutes`` of wall-clock training,
then decodes the 12,000 words of ``g014b2b.ref`` with the best checkpoint, greedy
and with beam search (``--beam``, default 5), and prints WER / PER (a word is
wrong unless it equals one of its references; PER = edit distance to the closest
reference over its length) next to the published table of that folder's README.
With ``--evaluate-only`` an existing run directory is scored without training.

``--students S --student-minutes M`` then trains S students (``RUN_student``,
``RUN_student_seed2``, ...; seeds 1, 2, ...) with ``seq2seq distill`` from the ensemble of
all the runs (token-level knowledge distillation; ``--student-set`` overrides, e.g.
``distillation.weight=0.7`` or ``distillation.sequence_level=true``), ``--jobs`` at a
time, and scores the student with the lowest validation WER (as "single model" is the run
with the lowest; the test set chooses nothing), the students' ensemble and the ensemble of every
run and student.  With ``--student-set distillation.top_k=K`` the teachers' top-K
distributions are computed once (``RUN.teacher-topk.safetensors``, its minutes counted in
the wall clock) and every student reads them instead of running the teachers in its step.
``--reuse-teachers`` skips the runs' training (an earlier call's, recorded in ``--json``;
their minutes are carried over into the wall clock) and trains only the students;
``--student-run NAME`` names the students' directories (``NAME``, ``NAME_seed2``, ...; default
``RUN_student``) and their top-K file (``NAME.teacher-topk.safetensors``), so two calls can train
differently configured students from the same runs side by side without overwriting each other.
``--student-init CHECKPOINT`` starts student k from teacher k's weights instead of random
ones (``training.init_from``; Furlanello et al. 2018's born-again networks), so a student
continues its teacher's training, now against the ensemble.  With ``--evaluate-only`` the
training record (minutes, steps) is the one ``--json`` already holds.

``--ensemble N`` trains N runs that differ only in their seed (``RUN``, ``RUN_seed2``,
...; ``--jobs J`` at a time, each with the full budget, each a ``seq2seq train`` process
logging to ``RUN.log``) and also scores them decoded as one
ensemble (:mod:`seq2seq.models.ensemble`); ``--average K`` keeps each run's last K
validation checkpoints and also scores their average (``seq2seq average``), alone and
as an ensemble.

    python benchmarks/g2p_benchmark.py [--minutes 48] [--set KEY=VALUE ...] [--run runs/bench_g2p]
        [--config configs/g2p_g014b2b_large.yaml] [--ensemble N] [--average K] [--jobs J]
        [--students S --student-minutes M [--student-set KEY=VALUE ...] [--student-init averaged]
         [--reuse-teachers] [--student-run NAME]]
    python benchmarks/g2p_benchmark.py --evaluate-only --run runs/bench_g2p [--ensemble N] [--average K]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from seq2seq.api import Seq2Seq
from seq2seq.checkpoint import atomic_write_text
from seq2seq.config import load_config
from seq2seq.data.tsv import read_tsv
from seq2seq.modules import num_parameters

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "g2p-cmudict-g014b2b"
PUBLISHED = [  # from ../shared/data/g2p-cmudict-g014b2b/README.md (PER %, WER %)
    ("Sequitur joint-sequence model (Bisani & Ney 2008)", 5.88, 24.53),
    ("Phonetisaurus WFST", None, 24.4),
    ("Encoder-decoder LSTM, no attention (Yao & Zweig 2015)", 7.63, 28.61),
    ("Bidirectional LSTM with alignment (Yao & Zweig 2015)", 5.45, 23.55),
    ("g2p-seq2seq LSTM 2x512 with attention", None, 23.3),
    ("Global attention, single model (Toshniwal & Livescu 2016)", 5.04, 21.69),
    ("Global attention, ensemble (Toshniwal & Livescu 2016)", 4.69, 20.24),
    ("g2p-seq2seq Transformer 3x256", None, 20.6),
]


def prepare(workdir: Path, n_valid: int = 2670, seed: int = 1234) -> dict[str, Path]:
    """Split g014b2b.train by word into train/valid TSV; test = g014b2b.ref as is."""
    examples = read_tsv(DATA / "g014b2b.train")
    prons: dict[str, list[str]] = {}
    for e in examples:
        prons.setdefault(e.source, []).append(e.references[0])
    words = sorted(prons)
    random.Random(seed).shuffle(words)
    valid = set(words[:n_valid])
    workdir.mkdir(parents=True, exist_ok=True)
    paths = {"train": workdir / "train.tsv", "valid": workdir / "valid.tsv", "test": DATA / "g014b2b.ref"}
    atomic_write_text(paths["train"], "".join(f"{w}\t{p}\n" for w in sorted(prons) if w not in valid
                                              for p in prons[w]))
    atomic_write_text(paths["valid"], "".join(f"{w}\t" + "\t".join(prons[w]) + "\n" for w in sorted(valid)))
    return paths


def last_step(run: str) -> int | None:
    """The last training step logged in ``run``'s metrics.jsonl (None when absent)."""
    path = Path(run) / "metrics.jsonl"
    steps = [json.loads(line).get("step") for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else []
    return max((s for s in steps if s is not None), default=None)


def valid_curve(run: str) -> list[list[float]]:
    """``[step, validation WER]`` of every validation logged in ``run``'s metrics.jsonl."""
    path = Path(run) / "metrics.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    return [[r["step"], r["wer"]] for r in records if r.get("split") == "valid" and "wer" in r]


def best_on_valid(runs: list[str]) -> str:
    """The run of ``runs`` whose best validation WER is the lowest (the first on a tie): the
    single model a user would keep, chosen without looking at the test set."""
    return min(runs, key=lambda run: min((wer for _, wer in valid_curve(run)), default=float("inf")))


def cpu_record() -> dict:
    """This machine's CPU model, core count and the flags that decide bf16's speed (native
    bfloat16 products: ``avx512_bf16``, ``amx_bf16``), from /proc/cpuinfo where it exists."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields: dict[str, str] = {}                     # the first core's lines
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return {"model": fields.get("model name", ""), "cores": os.cpu_count(),
            "bf16_flags": sorted(set(fields.get("flags", "").split()) & {"avx512_bf16", "amx_bf16", "amx_tile"})}


def run_dirs(run: str, n: int) -> list[str]:
    """The runs of an ensemble of ``n``: ``run``, ``run_seed2``, ..."""
    return [run] + [f"{run}_seed{k + 1}" for k in range(1, n)]


def train_runs(config: str, overrides: list[str], runs: list[str], seed: int, jobs: int) -> list[float]:
    """Train ``runs[k]`` with seed ``seed + k``, ``jobs`` processes at a time.

    Each run is a ``seq2seq train`` process whose output goes to ``RUN.log``.
    Returns each run's wall-clock minutes. Raises SystemExit naming the log of a
    run that failed.
    """
    return run_jobs([[sys.executable, "-m", "seq2seq", "train", config, "--run", run, "--overwrite",
                      "--set", *overrides, f"seed={seed + k}"] for k, run in enumerate(runs)], runs, jobs, "training")


def run_jobs(commands: list[list[str]], runs: list[str], jobs: int, what: str) -> list[float]:
    """Run ``commands[k]`` logging to ``runs[k].log``, ``jobs`` at a time; each one's wall-clock
    minutes.  Raises SystemExit naming the log of a command that failed."""
    def one(k: int) -> float:
        start = time.time()
        with open(runs[k] + ".log", "w") as log:
            code = subprocess.call(commands[k], stdout=log, stderr=subprocess.STDOUT)
        if code:
            sys.exit(f"{what} {runs[k]} failed (exit status {code}); see {runs[k]}.log")
        return round((time.time() - start) / 60, 1)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        return list(pool.map(one, range(len(runs))))


def train_students(config: str, overrides: list[str], teachers: list[str], students: list[str], jobs: int,
                   init: Optional[str] = None) -> list[float]:
    """``seq2seq distill`` ``students[k]`` (seed k + 1) from the ensemble ``teachers``, ``jobs``
    processes at a time, each logging to ``STUDENT.log``; with ``init`` (a checkpoint name)
    student k starts from teacher k's weights (``training.init_from``; born-again networks,
    Furlanello et al. 2018).  Returns each one's wall-clock minutes."""
    def start(k: int) -> list[str]:
        return [f"training.init_from={teachers[k % len(teachers)]}", f"training.init_checkpoint={init}"] if init else []

    return run_jobs([[sys.executable, "-m", "seq2seq", "distill", config, "--teacher", *teachers, "--run-dir",
                      student, "--overwrite", "--set", *overrides, f"seed={1 + k}", *start(k)]
                     for k, student in enumerate(students)], students, jobs, "distilling")


def student_top_k(config: str, overrides: list[str], teachers: list[str], path: str) -> float | None:
    """With ``distillation.top_k`` in the students' ``overrides``: the teachers' top-k over the
    training rows computed once, in this process, into ``path`` (which every student then
    reads).  Returns its wall-clock minutes, or None without ``top_k``."""
    from seq2seq.distill import top_k_store

    student = load_config(config, [*overrides, "distillation.teachers=" + json.dumps(teachers),
                                   f"distillation.top_k_file={path}"])
    if not (student.distillation.top_k and student.distillation.weight > 0):
        return None
    start = time.time()
    top_k_store(student)
    return round((time.time() - start) / 60, 1)


def average_runs(runs: list[str], k: int) -> None:
    """Each run's last ``k`` validation checkpoints averaged into its ``averaged`` checkpoint."""
    from seq2seq.checkpoint import average_checkpoints, kept_checkpoints

    for run in runs:
        folder = Path(run) / "checkpoints"
        average_checkpoints(kept_checkpoints(folder)[-k:], folder / "averaged")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=48.0, help="training wall-clock budget (per run)")
    p.add_argument("--run", default="runs/bench_g2p")
    p.add_argument("--config", default=str(ROOT / "configs" / "g2p_cmudict.yaml"))
    p.add_argument("--set", nargs="*", action="extend", default=[], dest="overrides")
    p.add_argument("--beam", type=int, default=5, help="beam size of the second decoding")
    p.add_argument("--ensemble", type=int, default=1, metavar="N", help="train N runs (seeds differ) and score "
                                                                         "them as an ensemble too")
    p.add_argument("--average", type=int, default=0, metavar="K", help="keep each run's last K validation "
                                                                        "checkpoints and score their average too")
    p.add_argument("--jobs", type=int, default=1, metavar="J", help="runs trained at the same time (set "
                                                                    "training.num_threads so J x threads <= cores)")
    p.add_argument("--students", type=int, default=0, metavar="S", help="then distil S students from the "
                   "ensemble of the runs (token level)")
    p.add_argument("--student-minutes", type=float, default=None, help="each student's budget (default --minutes)")
    p.add_argument("--student-set", nargs="*", action="extend", default=[], dest="student_overrides",
                   help="overrides for the students only, e.g. distillation.weight=0.7")
    p.add_argument("--student-init", choices=["best", "last", "averaged"], default=None,
                   help="start student k from teacher k's weights (this checkpoint) instead of random ones")
    p.add_argument("--reuse-teachers", action="store_true", help="take the runs an earlier call trained (their "
                   "minutes from --json) and train only the students")
    p.add_argument("--student-run", default=None, metavar="NAME", help="the students' directories NAME, "
                   "NAME_seed2, ... (default RUN_student)")
    p.add_argument("--evaluate-only", action="store_true", help="score the existing run directories")
    p.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "g2p_benchmark.json"))
    args = p.parse_args(argv)
    if not DATA.exists():
        sys.exit(f"benchmark data not found at {DATA}")
    test = DATA / "g014b2b.ref"
    runs = run_dirs(args.run, args.ensemble)
    student_run = args.student_run or args.run + "_student"
    students = [student_run] + [f"{student_run}_seed{k + 1}" for k in range(1, args.students)] \
        if args.students else []
    student_minutes = top_k_minutes = None
    previous = json.loads(Path(args.json).read_text()) if Path(args.json).exists() else {}
    if args.evaluate_only:
        run_minutes = previous.get("train_minutes_each", [previous.get("train_minutes_per_run",
                                                                       previous.get("train_minutes"))])
        wall_minutes = previous.get("train_minutes_wall")
        overrides = previous.get("overrides", [])
    else:
        paths = prepare(Path(args.run + "_data"))
        overrides = [f"data.train={paths['train']}", f"data.valid={paths['valid']}", f"data.test={test}",
                     f"training.max_minutes={args.minutes}", "training.max_steps=null", "training.max_epochs=null",
                     # a 48-minute budget affords a slower LR decay than the 10-minute quick-start
                     "training.validate_every=1000", "training.plateau_patience=3",
                     *([f"training.keep_checkpoints={args.average}"] if args.average else []), *args.overrides]
        seed = load_config(args.config, overrides).seed
        for k in range(len(runs)):  # a bad config or override fails here, before any training starts
            load_config(args.config, [*overrides, f"seed={seed + k}"])
        start = time.time()
        if args.reuse_teachers:
            if previous.get("runs") != runs or not all((Path(r) / "checkpoints" / "best.json").is_file() for r in runs):
                sys.exit(f"--reuse-teachers: {args.json} does not record the trained runs {runs}")
            run_minutes = previous["train_minutes_each"]
            teacher_wall = previous.get("teacher_minutes_wall", previous["train_minutes_wall"]
                                        - max(previous.get("student_minutes_each") or [0]))
        else:
            run_minutes = train_runs(args.config, overrides, runs, seed, args.jobs)
            teacher_wall = (time.time() - start) / 60
        start = time.time()                         # the averaging counts in the wall clock too
        if args.average:                            # before the students: distillation.checkpoint=averaged can use them
            average_runs(runs, args.average)
        if students:
            minutes = args.student_minutes or args.minutes
            student_overrides = [o for o in overrides if not o.startswith("training.keep_checkpoints")] + [
                f"training.max_minutes={minutes}", *args.student_overrides]
            store = f"{args.run if args.student_run is None else student_run}.teacher-topk.safetensors"
            top_k_minutes = student_top_k(args.config, student_overrides, runs, store)
            if top_k_minutes is not None:
                student_overrides.append(f"distillation.top_k_file={store}")
            student_minutes = train_students(args.config, student_overrides, runs, students, args.jobs,
                                             args.student_init)
        teacher_wall = round(teacher_wall, 1)
        wall_minutes = round(teacher_wall + (time.time() - start) / 60, 1)
    train_minutes = max(run_minutes)
    if args.average:
        average_runs(runs + students, args.average)
    single, student = best_on_valid(runs), best_on_valid(students) if students else None
    systems = [("single model", [single], "best")]
    if args.average:
        systems.append((f"single model, last {args.average} checkpoints averaged", [single], "averaged"))
    if len(runs) > 1:
        systems.append((f"ensemble of {len(runs)} seeds", runs, "best"))
        if args.average:
            systems.append((f"ensemble of {len(runs)} seeds, each averaged", runs, "averaged"))
    if students:
        last = "averaged" if args.average else "best"
        systems.append(("distilled student", [student], "best"))
        if args.average:
            systems.append((f"distilled student, last {args.average} checkpoints averaged", [student], last))
        if len(students) > 1:
            systems.append((f"ensemble of {len(students)} students", students, last))
        systems.append((f"ensemble of {len(runs)} seeds and {len(students)} students", runs + students, last))
    scores: dict = {}
    for system, members, checkpoint in systems:
        model = Seq2Seq.load(members[0] if len(members) == 1 else members, checkpoint)
        for name, opts in [("greedy", {"beam": 1}), (f"beam{args.beam}", {"beam": args.beam})]:
            t0 = time.time()
            results = model.evaluate(test, **opts)
            scores.setdefault(system, {})[name] = {"wer": results["wer"], "per": results["per"],
                                                   "accuracy": results["accuracy"],
                                                   "decode_seconds": round(time.time() - t0, 1)}
            print(f"[{system}, {name}] {scores[system][name]}", file=sys.stderr)
    if args.evaluate_only:                          # the training record is the earlier call's
        teacher_wall, top_k_minutes, student_minutes = (previous.get(key) for key in (
            "teacher_minutes_wall", "top_k_minutes", "student_minutes_each"))
    out = {"systems": scores, "test_words": results["sentences"], "train_minutes_each": run_minutes,
           "train_minutes_wall": wall_minutes, "teacher_minutes_wall": teacher_wall,
           "teachers_reused": previous.get("teachers_reused", False) if args.evaluate_only else args.reuse_teachers,
           "top_k_minutes": top_k_minutes, "jobs": args.jobs, "steps": [last_step(run) for run in runs],
           "students": students, "student_minutes_each": student_minutes,
           "student_init": previous.get("student_init") if args.evaluate_only else args.student_init,
           "student_steps": [last_step(run) for run in students],
           "valid_wer": {run: valid_curve(run) for run in runs + students},
           "single_model": single, "student": student, "cpu": cpu_record(),
           "params": num_parameters(Seq2Seq.load(single).model), "runs": runs, "config": args.config, "overrides": overrides}
    print(f"\nG2P, CMUdict g014b2b test ({results['sentences']} words)")
    print(f"{'system':72s} {'PER %':>6s} {'WER %':>6s}")
    for name, per, wer in PUBLISHED:
        print(f"{name:72s} {per if per is not None else '-':>6} {wer:>6}")
    for system, decodings in scores.items():
        for name, r in decodings.items():
            label = f"seq2seq, {system}, {name} ({train_minutes} min per run)"
            print(f"{label:72s} {r['per']:6.2f} {r['wer']:6.2f}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(Path(args.json), json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
