"""The networks evaluated: a small CNN for scikit-learn's digits (the default) and ResNet9 for CIFAR-10.

Both are plain ``nn.Sequential`` models (with :class:`Residual` blocks); like any other network,
:class:`~nmpu_model.network.AnalogNetwork` takes them through ``torch.export`` (:mod:`nmpu_model.network.graph`). The digits CNN is trained at run time in a
few seconds with a fixed seed and its state dict cached in the project's cache folder (:mod:`nmpu_model.cache`) (loaded with
``torch.load(..., weights_only=True)``); the cache key covers the training recipe.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..cache import cache_dir


class Residual(nn.Module):
    """``x + body(x)``: the residual add of a ResNet (done digitally on real values)."""

    def __init__(self, *body: nn.Module) -> None:
        super().__init__()
        self.body = nn.Sequential(*body)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Scale(nn.Module):
    """Multiply by a constant (ResNet9's final ``* 0.125``)."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = float(factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


class BasicBlock(nn.Module):
    """A ResNet basic block as torchvision writes it: two 3x3 conv+BN, the residual add in ``forward()``,
    a 1x1 conv+BN projection shortcut when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + identity)


class MnistResNet(nn.Module):
    """A small ResNet for 28x28 MNIST, written the way users write them: stem conv, three basic blocks
    (16, 32 and 64 channels, the last two with stride 2 and a projection shortcut), adaptive average
    pooling, ``torch.flatten``, a linear classifier. With the stem and the classifier digital, 8 layers run
    on tiles (the blocks' convolutions and shortcuts)."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = width
        self.conv1 = nn.Conv2d(1, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layer1 = BasicBlock(w, w)
        self.layer2 = BasicBlock(w, 2 * w, 2)
        self.layer3 = BasicBlock(2 * w, 4 * w, 2)
        self.fc = nn.Linear(4 * w, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(F.adaptive_avg_pool2d(x, 1), 1)
        return self.fc(x)


MNIST_RECIPE = {"epochs": 8, "batch": 64, "lr": 4e-3, "weight_decay": 1e-4, "seed": 0, "weight_noise": 0.02,
                "version": 1}
SHIPPED_MNIST = Path(__file__).parent / "data" / "mnist_resnet.pt"


def _mnist_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random shifts of up to 2 pixels (zero fill)."""
    pad = F.pad(x, (2, 2, 2, 2))
    i, j = (int(v) for v in torch.randint(0, 5, (2,), generator=gen))
    return pad[:, :, i:i + 28, j:j + 28]


def train_mnist(progress: bool = False) -> MnistResNet:
    """Train the MNIST ResNet by :data:`MNIST_RECIPE` on the 4,000 training images of :func:`load_mnist5k`."""
    from .datasets import load_mnist5k

    r = MNIST_RECIPE
    torch.manual_seed(r["seed"])
    model = MnistResNet()
    d = load_mnist5k()
    return train(model, d.x_train, d.y_train, epochs=r["epochs"], batch=r["batch"], lr=r["lr"],
                 weight_decay=r["weight_decay"], seed=r["seed"], weight_noise=r["weight_noise"],
                 augment=_mnist_augment, progress=progress)


def load_mnist_resnet() -> MnistResNet:
    """The trained MNIST ResNet shipped in the package (``python -m nmpu_model.workloads.models mnist`` remakes it)."""
    model = MnistResNet()
    model.load_state_dict(torch.load(SHIPPED_MNIST, weights_only=True))
    return model.eval()


DIGITS_RECIPE = {"epochs": 40, "batch": 64, "lr": 3e-3, "weight_decay": 1e-4, "seed": 0, "weight_noise": 0.02,
                 "version": 1}


def digits_cnn() -> nn.Sequential:
    """A small CNN for 8x8 digits: conv16-conv32-pool-conv64-pool-fc64-fc10, ~42 k weights.

    With the first and last layer digital, three layers run on tiles: ``3`` (144 x 32), ``7``
    (288 x 64, split over two row tiles) and ``12`` (256 x 64).
    """
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(256, 64), nn.ReLU(),
        nn.Linear(64, 10))


def _conv_bn(cin: int, cout: int, pool: bool = False) -> list[nn.Module]:
    m: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    if pool:
        m.append(nn.MaxPool2d(2))
    return m


def resnet9(num_classes: int = 10, width: int = 64) -> nn.Sequential:
    """ResNet9 (the DAWNBench network of Myrtle.ai, as used by the NMPU paper for CIFAR-10).

    prep conv(64) - conv(128)+pool - residual(2 x conv 128) - conv(256)+pool - conv(512)+pool -
    residual(2 x conv 512) - global max pool - linear - x0.125. ``width`` scales every channel count.
    """
    w = width
    return nn.Sequential(
        *_conv_bn(3, w),
        *_conv_bn(w, 2 * w, pool=True),
        Residual(*_conv_bn(2 * w, 2 * w), *_conv_bn(2 * w, 2 * w)),
        *_conv_bn(2 * w, 4 * w, pool=True),
        *_conv_bn(4 * w, 8 * w, pool=True),
        Residual(*_conv_bn(8 * w, 8 * w), *_conv_bn(8 * w, 8 * w)),
        nn.AdaptiveMaxPool2d(1), nn.Flatten(),
        nn.Linear(8 * w, num_classes, bias=False), Scale(0.125))


class _NoisyWeights:
    """Hardware-aware training: Gaussian weight noise (relative to each layer's max |w|) per batch."""

    def __init__(self, model: nn.Module, rel: float, gen: torch.Generator) -> None:
        self.params = [m.weight for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        self.rel, self.gen, self.saved = rel, gen, []

    def __enter__(self) -> None:
        self.saved = [p.data.clone() for p in self.params]
        for p in self.params:
            p.data += self.rel * p.data.abs().max() * torch.randn(p.shape, generator=self.gen)

    def __exit__(self, *exc) -> None:
        for p, s in zip(self.params, self.saved):
            p.data.copy_(s)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, batch: int = 64, lr: float = 3e-3,
          weight_decay: float = 1e-4, seed: int = 0, weight_noise: float = 0.0, augment=None,
          progress: bool = False) -> nn.Module:
    """Train ``model`` with Adam and a one-cycle schedule; deterministic for a seed (same machine).

    ``weight_noise`` > 0 adds Gaussian noise to the weights in each forward pass (hardware-aware
    training, as AIHWKit recommends for PCM inference), relative to each layer's largest weight.
    """
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * -(-len(y) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    it = range(epochs)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="training", leave=False)
    model.train()
    for _ in it:
        perm = torch.randperm(len(y), generator=gen)
        for i in range(0, len(y), batch):
            idx = perm[i:i + batch]
            xb, yb = x[idx], y[idx]
            if augment is not None:
                xb = augment(xb, gen)
            if weight_noise > 0:
                with _NoisyWeights(model, weight_noise, gen):
                    loss = F.cross_entropy(model(xb), yb)
                    opt.zero_grad()
                    loss.backward()
            else:
                loss = F.cross_entropy(model(xb), yb)
                opt.zero_grad()
                loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def top1(logits: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``logits`` (samples x classes) against the labels ``y``."""
    from .metrics import ACCURACY
    return ACCURACY(logits, y)


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024, metric: Any = None) -> float:
    """The score of a float model (an ``nn.Module`` or a ``torch.export`` program) by ``metric``
    (:mod:`nmpu_model.workloads.metrics`; default top-1 accuracy)."""
    from .metrics import ACCURACY
    if isinstance(model, torch.export.ExportedProgram):
        model = model.module()               # an exported graph is already in eval form
    else:
        model.eval()
    with torch.no_grad():
        return (metric or ACCURACY)(torch.cat([model(x[i:i + batch]) for i in range(0, len(y), batch)]), y)


def build_dir() -> Path:
    """Where trained state dicts are cached: ``models`` in the project's cache (:mod:`nmpu_model.cache`)."""
    return cache_dir("models")


def _recipe_key(name: str, recipe: dict) -> str:
    return f"{name}-{hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]}.pt"


SHIPPED_DIGITS = Path(__file__).parent / "data" / "digits_cnn.pt"


def train_digits(progress: bool = False) -> nn.Sequential:
    """Train the digits CNN by :data:`DIGITS_RECIPE` (initialization seeded too); a few seconds on 2 cores."""
    from .datasets import load_digits

    r = DIGITS_RECIPE
    torch.manual_seed(r["seed"])  # the initial weights come from the global generator
    model = digits_cnn()
    d = load_digits()
    return train(model, d.x_train, d.y_train, epochs=r["epochs"], batch=r["batch"], lr=r["lr"],
                 weight_decay=r["weight_decay"], seed=r["seed"], weight_noise=r["weight_noise"], progress=progress)


def load_or_train_digits(progress: bool = False) -> nn.Sequential:
    """The trained digits CNN: the state dict shipped in the package (``nmpu_model/workloads/data/digits_cnn.pt``,
    made by ``python -m nmpu_model.workloads.models``), else a cached one (:func:`build_dir`), else trained now.

    Shipping it makes every machine evaluate the same weights: CPU training is only reproducible
    on the same machine and thread count.
    """
    model = digits_cnn()
    for path in (SHIPPED_DIGITS, build_dir() / _recipe_key("digits-cnn", DIGITS_RECIPE)):
        if path.is_file():
            model.load_state_dict(torch.load(path, weights_only=True))
            return model.eval()
    model = train_digits(progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)  # atomic: parallel test workers never read half a file
    return model


def _cifar_augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random crop (pad 4) and horizontal flip, vectorized over the batch."""
    n = x.shape[0]
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    p = F.pad(x, (4, 4, 4, 4), mode="reflect")
    dx, dy = torch.randint(0, 9, (2,), generator=gen).tolist()  # one shift per batch: cheap
    return p[:, :, dy:dy + 32, dx:dx + 32]


def load_or_train_resnet9(data: str | Path | None, weights: str | Path | None = None, epochs: int = 10,
                          progress: bool = False) -> nn.Sequential:
    """ResNet9 for CIFAR-10: from ``weights`` (a state dict), the cache, or trained on ``data`` now.

    Training on 2 CPU cores takes hours for 10 epochs; pass ``weights`` trained elsewhere to skip it.
    """
    from .datasets import load_cifar10

    model = resnet9()
    if weights is not None:
        p = Path(weights)
        if not p.is_file():
            raise ValueError(f"{p}: no such ResNet9 state dict")
        try:
            model.load_state_dict(torch.load(p, weights_only=True))
        except (RuntimeError, KeyError) as e:
            raise ValueError(f"{p}: not a ResNet9 state dict for this model: {str(e).splitlines()[0]}") from None
        return model.eval()
    recipe = {"epochs": epochs, "batch": 256, "lr": 4e-3, "seed": 0, "version": 1,
              "data": str(Path(data).resolve()) if data else None}
    path = build_dir() / _recipe_key("resnet9", recipe)
    if path.is_file():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    d = load_cifar10(data, train=True)
    torch.manual_seed(recipe["seed"])  # seeded initialization
    model = resnet9()
    train(model, d.x_train, d.y_train, epochs=epochs, batch=256, lr=4e-3, seed=0, weight_noise=0.02,
          augment=_cifar_augment, progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model.eval()


# ---- a character-level GPT on the King James Bible ------------------------------------------------------------
class GPTBlock(nn.Module):
    """A pre-LayerNorm decoder block as nanoGPT writes it: fused ``c_attn`` (q, k, v), causal attention, ``c_proj``,
    a GELU MLP (``c_fc``, ``mlp_proj``)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.c_attn, self.c_proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.c_fc, self.mlp_proj = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(d, dim=2)
        q, k, v = (z.view(n, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(n, t, d)
        x = x + self.c_proj(a)
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x))))


class CharGPT(nn.Module):
    """A decoder-only character-level language model (token and position embeddings, :class:`GPTBlock` s, a final
    LayerNorm, an ``lm_head`` tied to the token embedding): token ids (N, T) -> next-token logits (N, T, V)."""

    def __init__(self, vocab: int, d: int = 64, blocks: int = 4, heads: int = 4, context: int = 64) -> None:
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(context, d)
        self.blocks = nn.ModuleList(GPTBlock(d, heads) for _ in range(blocks))
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for b in self.blocks:
            x = b(x)
        return self.lm_head(self.ln_f(x))


CHAR_GPT_RECIPE = {"d": 64, "blocks": 4, "heads": 4, "context": 64, "steps": 2000, "batch": 32, "lr": 3e-3,
                   "weight_decay": 0.01, "seed": 0, "weight_noise": 0.02}
SHIPPED_CHAR_GPT = Path(__file__).parent / "data" / "char_gpt.pt"


def char_gpt() -> CharGPT:
    """An untrained :class:`CharGPT` of :data:`CHAR_GPT_RECIPE`'s size over the KJV vocabulary."""
    from .datasets import KJV_VOCAB
    r = CHAR_GPT_RECIPE
    return CharGPT(len(KJV_VOCAB), r["d"], r["blocks"], r["heads"], r["context"])


def train_char_gpt(progress: bool = False) -> CharGPT:
    """Train :func:`char_gpt` by :data:`CHAR_GPT_RECIPE` on random windows of the KJV training text (AdamW, cosine
    schedule, weight noise as :func:`train`)."""
    from .datasets import encode_text, kjv_text

    r = CHAR_GPT_RECIPE
    torch.manual_seed(r["seed"])
    gen = torch.Generator().manual_seed(r["seed"])
    ids = torch.from_numpy(encode_text(kjv_text()[0]))
    model = char_gpt()
    opt = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=r["lr"], total_steps=r["steps"])
    t = r["context"]
    it = range(r["steps"])
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="training char-gpt", leave=False)
    model.train()
    for _ in it:
        start = torch.randint(0, len(ids) - t - 1, (r["batch"],), generator=gen)
        xb = torch.stack([ids[s:s + t] for s in start])
        yb = torch.stack([ids[s + 1:s + t + 1] for s in start])
        with _NoisyWeights(model, r["weight_noise"], gen):
            loss = F.cross_entropy(model(xb).reshape(-1, model.lm_head.out_features), yb.reshape(-1))
            opt.zero_grad()
            loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def load_char_gpt() -> CharGPT:
    """The trained :class:`CharGPT` shipped in the package (``python -m nmpu_model.workloads.models char-gpt``
    remakes it)."""
    model = char_gpt()
    model.load_state_dict(torch.load(SHIPPED_CHAR_GPT, weights_only=True))
    return model.eval()


if __name__ == "__main__":  # python -m nmpu_model.workloads.models [mnist]: (re)make a shipped network
    import sys

    from .datasets import load_digits, load_mnist5k

    t0 = time.time()
    if sys.argv[1:] == ["char-gpt"]:
        from .datasets import encode_text, kjv_text, text_sequences
        from .metrics import PERPLEXITY
        m = train_char_gpt(progress=True)
        torch.save({k: v.half() if v.is_floating_point() else v for k, v in m.state_dict().items()},
                   SHIPPED_CHAR_GPT)
        m = load_char_gpt()
        x, y = text_sequences(encode_text(kjv_text()[1]), CHAR_GPT_RECIPE["context"], 256, 0)
        print(f"trained in {time.time() - t0:.1f} s; test perplexity {accuracy(m, x, y, metric=PERPLEXITY):.3f}; "
              f"wrote {SHIPPED_CHAR_GPT} ({SHIPPED_CHAR_GPT.stat().st_size // 1024} KB)")
        sys.exit(0)
    if sys.argv[1:] == ["mnist"]:
        m = train_mnist(progress=True)
        torch.save(m.state_dict(), SHIPPED_MNIST)
        d = load_mnist5k()
        print(f"trained in {time.time() - t0:.1f} s; test accuracy {100 * accuracy(m, d.x_test, d.y_test):.2f} %; "
              f"wrote {SHIPPED_MNIST} ({SHIPPED_MNIST.stat().st_size // 1024} KB)")
        sys.exit(0)
    m = train_digits(progress=True)
    SHIPPED_DIGITS.parent.mkdir(parents=True, exist_ok=True)
    torch.save(m.state_dict(), SHIPPED_DIGITS)
    d = load_digits()
    print(f"trained in {time.time() - t0:.1f} s; test accuracy {100 * accuracy(m, d.x_test, d.y_test):.2f} %; "
          f"wrote {SHIPPED_DIGITS} ({SHIPPED_DIGITS.stat().st_size // 1024} KB)")
