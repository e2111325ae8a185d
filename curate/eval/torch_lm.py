"""A tiny causal transformer proxy (GPT-2 architecture from a ``transformers`` config, random init),
trained for a bounded number of AdamW steps on CPU; sequences are drawn with probability ∝ weight.

Its vocabulary is the run's compact one (the tokens that occur in the training sets or the target;
see ``Vocab.compact``): the softmax is then a few thousand wide instead of 30k, which is what makes a
few hundred steps cheap, and every model of one run shares it so their losses stay comparable.
"""

from __future__ import annotations

import numpy as np

from curate.eval.params import EvalParams
from curate.eval.tokenize import Vocab, framed

HEAD_DIM = 32


def build_model(vocab_size: int, params: EvalParams, context: int, seed: int):
    """The network: ``layers`` GPT-2 blocks of width ``width``, no dropout, tied embeddings."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=vocab_size,
        n_positions=context,
        n_embd=params.width,
        n_layer=params.layers,
        n_head=max(1, params.width // HEAD_DIM),
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    return GPT2LMHeadModel(config)


def pad_rows(flat: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, mask) arrays: row i holds the next ``lengths[i]`` values of ``flat``, right-padded with 0."""
    width = int(lengths.max()) if len(lengths) else 0
    mask = np.arange(width)[None, :] < np.asarray(lengths)[:, None]
    ids = np.zeros(mask.shape, np.int64)
    ids[mask] = flat  # row-major: each row's values in order
    return ids, mask.astype(np.int64)


def padded(sequences: list[np.ndarray]):
    """(input ids, attention mask) tensors for variable-length sequences, right-padded with 0."""
    import torch

    ids, mask = pad_rows(np.concatenate(sequences), np.array([len(s) for s in sequences]))
    return torch.from_numpy(ids), torch.from_numpy(mask)


def sequence_nll(model, sequences: list[np.ndarray]):
    """Summed next-token NLL of each sequence (its first token is the BOS context), as a tensor."""
    return token_nll(model, *padded(sequences))


def token_nll(model, ids, mask):
    """Summed next-token NLL and predicted-token count per padded row. The logits are flattened for
    the loss: a transposed (batch, vocab, time) tensor takes torch's slow path, ~4x the time on CPU."""
    import torch

    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target, valid = ids[:, 1:], mask[:, 1:].bool()
    flat = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.reshape(-1), reduction="none"
    )
    return (flat.view(target.shape) * valid).sum(dim=1), valid.sum(dim=1)


def split(ids: np.ndarray, offsets: np.ndarray, vocab: Vocab) -> list[np.ndarray]:
    """Each text framed as ``[BOS] tokens [EOS]``."""
    tokens, _, _ = framed(ids, offsets, 1, vocab.bos, vocab.eos)
    bounds = np.concatenate([[0], np.cumsum(np.diff(offsets) + 2)])
    return [tokens[bounds[i] : bounds[i + 1]] for i in range(len(offsets) - 1)]


class TinyLM:
    name = "transformer"

    def __init__(self, vocab: Vocab, params: EvalParams) -> None:
        self.vocab, self.params = vocab, params
        self.model = None
        self.trained_tokens = 0.0

    def fit(self, ids: np.ndarray, offsets: np.ndarray, weights: np.ndarray | None = None) -> TinyLM:
        import torch

        p = self.params
        seqs = split(ids, offsets, self.vocab)
        w = np.ones(len(seqs)) if weights is None else np.asarray(weights, np.float64)
        self.model = build_model(self.vocab.size, p, self.vocab.max_tokens + 2, p.seed)
        opt = torch.optim.AdamW(self.model.parameters(), lr=p.learning_rate, weight_decay=0.01)
        warmup = max(1, p.steps // 10)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup))
        rng = np.random.default_rng(np.random.SeedSequence([0x7E5, p.seed]))
        draws = rng.choice(len(seqs), size=(p.steps, p.batch_size), p=w / w.sum())
        self.model.train()
        for step in range(p.steps):
            batch = [seqs[i] for i in draws[step]]
            nll, n = sequence_nll(self.model, batch)
            loss = nll.sum() / n.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
            opt.step()
            sched.step()
            self.trained_tokens += float(n.sum())
        return self

    def score(self, ids: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch

        seqs = split(ids, offsets, self.vocab)
        order = np.argsort([len(s) for s in seqs], kind="stable")  # similar lengths per batch: less padding
        nll, tokens = np.zeros(len(seqs)), np.zeros(len(seqs))
        self.model.eval()
        with torch.no_grad():
            for start in range(0, len(seqs), 64):
                chunk = order[start : start + 64]
                a, b = sequence_nll(self.model, [seqs[i] for i in chunk])
                nll[chunk], tokens[chunk] = a.numpy(), b.numpy()
        return nll, tokens
