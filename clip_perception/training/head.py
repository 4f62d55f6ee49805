"""The torch twin of ``core.adapter.AdapterHead`` and its trainer (early stopping on validation).

Forward is exactly AdapterHead.head_logits:
    h = normalize(x + fc2(relu(fc1(x))));  logits = logit_scale * h @ classifier.weight.T + bias
fc2 starts at zero and the classifier at the labels' text embeddings, so the untrained head
reproduces the zero-shot classifier. Training minimises cross-entropy of the *blended* logits
((1 - blend) * zero-shot + blend * head), i.e. of what the node will actually compute, plus
``weight_decay`` times the squared distance of the weights from that zero-shot start: decay
toward zero would pull the classifier rows away from the text embeddings, i.e. away from
zero-shot, which is the safe answer when the data are few.
"""
from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass

import numpy as np

from ..core.adapter import TENSOR_NAMES
from ..core.scoring import zero_shot_logits
from .data import TrainingInputError

logger = logging.getLogger(__name__)


def _torch():
    import torch

    return torch


def make_head_module(class_embeddings: np.ndarray, logit_scale: float, hidden: int = 256):
    """A torch module with AdapterHead's tensors and forward, initialised to zero-shot."""
    torch = _torch()
    nn = torch.nn

    class TorchAdapterHead(nn.Module):
        def __init__(self):
            super().__init__()
            n_labels, dim = class_embeddings.shape
            self.fc1 = nn.Linear(dim, hidden)
            self.fc2 = nn.Linear(hidden, dim)
            nn.init.zeros_(self.fc2.weight)  # residual branch starts silent: h = x
            nn.init.zeros_(self.fc2.bias)
            self.classifier = nn.Linear(dim, n_labels)
            with torch.no_grad():
                self.classifier.weight.copy_(torch.from_numpy(np.asarray(class_embeddings, np.float32)))
                self.classifier.bias.zero_()
            # CLIP's temperature, kept fixed: the classifier rows already set the scale of logits.
            self.register_buffer("logit_scale", torch.tensor(float(logit_scale), dtype=torch.float32))

        def forward(self, x):
            h = x + self.fc2(torch.relu(self.fc1(x)))
            h = torch.nn.functional.normalize(h, dim=-1, eps=1e-12)
            return self.logit_scale * (h @ self.classifier.weight.T) + self.classifier.bias

        def numpy_tensors(self) -> dict[str, np.ndarray]:
            state = self.state_dict()
            return {name: state[name].detach().cpu().numpy().astype(np.float32) for name in TENSOR_NAMES}

    if hidden < 1:
        raise TrainingInputError(f"head hidden size must be >= 1, got {hidden}")
    return TorchAdapterHead()


@dataclass
class TrainConfig:
    hidden: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4  # L2 toward the zero-shot initialisation, not toward zero
    max_epochs: int = 200
    patience: int = 20  # epochs without a better validation loss before stopping
    batch_size: int = 256
    blend: float = 0.5  # the pipeline trains one head per blend of its grid
    seed: int = 0
    # torch threads while training: the head's matmuls are small, and on our 2 shared cores an
    # epoch took 5x longer with 2 threads than with 1 (docs/results/training.md); 0
    # keeps torch's setting.
    threads: int = 1

    def to_dict(self) -> dict:
        return asdict(self)


def train_head(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray,
               class_embeddings: np.ndarray, logit_scale: float, cfg: TrainConfig,
               progress: bool | None = None, desc: str = "training"):
    """Returns (module with the best-validation weights, history dict).

    The untrained head (= zero-shot) is epoch 0 of the history; if no epoch beats its
    validation loss, the returned head is the untrained one.
    """
    torch = _torch()
    if not 0.0 < cfg.blend <= 1.0:
        raise TrainingInputError(f"blend must be in (0, 1] for training (0 would ignore the head), "
                                 f"got {cfg.blend}")
    if len(train_x) == 0 or len(val_x) == 0:
        raise TrainingInputError(f"need training and validation frames, got {len(train_x)} and "
                                 f"{len(val_x)}")
    if cfg.threads < 0:
        raise TrainingInputError(f"head training threads must be >= 0, got {cfg.threads}")
    before = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _train(train_x, train_y, val_x, val_y, class_embeddings, logit_scale, cfg,
                      progress, desc)
    finally:
        torch.set_num_threads(before)


def _train(train_x, train_y, val_x, val_y, class_embeddings, logit_scale, cfg, progress, desc):
    torch = _torch()
    from tqdm import tqdm

    torch.manual_seed(cfg.seed)
    head = make_head_module(class_embeddings, logit_scale, cfg.hidden)
    tx, vx = torch.from_numpy(np.asarray(train_x, np.float32)), torch.from_numpy(np.asarray(val_x, np.float32))
    ty, vy = torch.from_numpy(np.asarray(train_y, np.int64)), torch.from_numpy(np.asarray(val_y, np.int64))
    t_zs, v_zs = (torch.from_numpy(zero_shot_logits(x, class_embeddings, logit_scale))
                  for x in (train_x, val_x))
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr)
    loss_fn = torch.nn.functional.cross_entropy
    start = [p.detach().clone() for p in head.parameters()]

    def anchor_penalty():
        return cfg.weight_decay * sum(((p - p0) ** 2).sum() for p, p0 in zip(head.parameters(), start))

    def blended(x, zs):
        return (1.0 - cfg.blend) * zs + cfg.blend * head(x)

    def val_loss():
        head.eval()
        with torch.no_grad():
            return float(loss_fn(blended(vx, v_zs), vy))

    best_loss, best_state, best_epoch = val_loss(), copy.deepcopy(head.state_dict()), 0
    history = {"val_loss": [best_loss], "train_loss": [None]}
    gen = torch.Generator().manual_seed(cfg.seed)
    stale = 0
    bar = tqdm(range(1, cfg.max_epochs + 1), desc=desc, unit="epoch", leave=False,
               disable=None if progress is None else not progress)
    for epoch in bar:
        head.train()
        perm = torch.randperm(len(tx), generator=gen)
        total = 0.0
        for i in range(0, len(tx), cfg.batch_size):
            idx = perm[i:i + cfg.batch_size]
            loss = loss_fn(blended(tx[idx], t_zs[idx]), ty[idx])
            opt.zero_grad()
            (loss + anchor_penalty()).backward()
            opt.step()
            total += loss.item() * len(idx)
        vl = val_loss()
        history["train_loss"].append(total / len(tx))
        history["val_loss"].append(vl)
        bar.set_postfix(val_loss=f"{vl:.4f}", best=f"{best_loss:.4f}")
        if vl < best_loss - 1e-6:
            best_loss, best_state, best_epoch, stale = vl, copy.deepcopy(head.state_dict()), epoch, 0
        else:
            stale += 1
            if stale >= cfg.patience:
                break
    bar.close()
    head.load_state_dict(best_state)
    head.eval()
    history.update(best_epoch=best_epoch, best_val_loss=best_loss, epochs_run=len(history["val_loss"]) - 1)
    logger.info("%s: best epoch %d of %d, val loss %.4f", desc, best_epoch,
                history["epochs_run"], best_loss)
    return head, history
