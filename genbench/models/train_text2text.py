"""train_text2text: the T5 of ``model_enc``, trained on the corpus captions (class name -> caption).

A common-gen T5 turns concepts into a sentence about them; ours learns the same from the
corpus: the input is the digit a caption names (the class name, "7"), the target is the caption
("a sign with a seven on it"). Sampling from it (``generate_sentences``) then writes web-like
sentences about a class, as the paper's T5 does for ImageNet classes.

- Tokenizer: word level over the corpus captions' words (split at whitespace, so
  "sans-serif" and "six," stay one word each and sentences decode exactly), with T5's pad,
  ``</s>`` and unk tokens. A class name outside the corpus vocabulary reads as unk.
- Model: ``T5ForConditionalGeneration`` of ``cfg``'s shape, cross-entropy on the caption's
  tokens (teacher forcing), AdamW with a one-cycle schedule, seeded batch order.
- Saved with ``save_pretrained`` (model and tokenizer), the layout ``load_text2text`` reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from genbench.core.stage import SectionParams, keyed

if TYPE_CHECKING:
    pass

from pathlib import Path

from genbench.models.text2text import word_tokenizer
from genbench.models.training import LossCurve, corpus_records, one_cycle_adamw, progress


@dataclass(frozen=True)
class Text2TextTrainingParams(SectionParams):
    """model_enc's T5, trained on (class name, caption) pairs (``training.text2text``)."""

    STAGE: ClassVar[str] = "train_text2text"
    VERSION: ClassVar[int] = 1
    SECTION: ClassVar[str] = "training.text2text"

    d_model: int = keyed(doc="width")
    d_ff: int = keyed(doc="feed-forward width")
    layers: int = keyed(doc="encoder and decoder layers")
    heads: int = keyed(doc="attention heads")
    steps: int = keyed(doc="optimisation steps")
    batch_size: int = keyed(doc="pairs per step")
    lr: float = keyed(doc="peak learning rate (one cycle)")
    seed: int = keyed(doc="initialisation and batch order")
    threads: int = keyed(doc="torch threads (training.threads unless set here): CPU reductions depend on them")


def caption_words(captions: list[str]) -> list[str]:
    """The vocabulary: every whitespace-separated word of the captions, lower-cased, sorted."""
    return sorted({word for caption in captions for word in caption.lower().split()})


def build_t5(cfg: dict, vocab_size: int):
    """An untrained ``T5ForConditionalGeneration`` of ``cfg`` (``d_model``, ``d_ff``, ``layers``,
    ``heads``), decoding from the pad token as T5 does."""
    from transformers import T5Config, T5ForConditionalGeneration

    width, heads = int(cfg["d_model"]), int(cfg["heads"])
    config = T5Config(
        vocab_size=vocab_size,
        d_model=width,
        d_kv=width // heads,
        d_ff=int(cfg["d_ff"]),
        num_layers=int(cfg["layers"]),
        num_decoder_layers=int(cfg["layers"]),
        num_heads=heads,
        dropout_rate=0.0,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return T5ForConditionalGeneration(config)


def train_text2text(corpus_dir: str | Path, cfg: dict, out_dir: str | Path, stage: str = "train_text2text") -> dict:
    """Train the T5 of ``cfg`` (``build_t5``'s keys, ``steps``, ``batch_size``, ``lr``, ``seed``)
    on (named digit, caption) pairs of the corpus in ``corpus_dir``; save model and tokenizer
    to ``out_dir``. Returns the summary: the loss curve and the vocabulary size. A NaN loss
    raises ``TrainingError`` naming the stage and step, and nothing is saved."""
    import torch

    records = corpus_records(corpus_dir)
    captions = [r["caption"] for r in records]
    tokenizer = word_tokenizer(caption_words(captions), split_punctuation=False)
    sources = tokenizer([str(r["named"]) for r in records], padding=True, return_tensors="pt")
    targets = tokenizer(captions, padding=True, return_tensors="pt").input_ids
    targets[targets == tokenizer.pad_token_id] = -100  # padding is not predicted
    torch.manual_seed(int(cfg["seed"]))
    model = build_t5(cfg, len(tokenizer))
    steps, batch = int(cfg["steps"]), min(int(cfg["batch_size"]), len(records))
    optimizer, schedule = one_cycle_adamw(model.parameters(), float(cfg["lr"]), steps)
    draws = torch.Generator().manual_seed(int(cfg["seed"]))
    curve = LossCurve(stage)
    model.train()
    for step in progress(range(steps), stage):
        index = torch.randperm(len(records), generator=draws)[:batch]
        out = model(
            input_ids=sources.input_ids[index], attention_mask=sources.attention_mask[index], labels=targets[index]
        )
        curve.add(step, out.loss.item(), steps)
        optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return {**curve.summary(), "vocabulary": len(tokenizer)}
