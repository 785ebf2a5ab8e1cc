"""Text-to-text models for the ``model_enc`` prompt strategy.

A real run points ``load_text2text`` at a T5 "common-gen" checkpoint (a model id or local
directory). The demo trains its own on the corpus captions (``genbench.models.train_text2text``).
Tests use ``build_tiny_text2text``: a tiny randomly initialised T5 with a word-level tokenizer
built offline. It writes gibberish, which is fine for plumbing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

from pathlib import Path

from genbench.core.errors import GenBenchError

TINY_WORDS = (
    "a an the of in on at with and by near under over into from to is are was its their "
    "photo picture image drawing painting close up view small large big little old young "
    "red green blue yellow black white brown gray dark bright sunny cloudy green wooden metal "
    "dog cat bird fish horse car truck plane boat ship tree flower house road street river "
    "sky sea beach forest field mountain city garden park table chair window door grass snow "
    "sits stands runs flies swims walks lies looks plays eats sleeps parked flying standing "
    "running sitting lying next behind front top side water light shadow night day morning"
).split()
SPECIAL_TOKENS = ["<pad>", "</s>", "<unk>"]


def word_tokenizer(words, split_punctuation: bool = True):
    """A word-level T5-style tokenizer: ``SPECIAL_TOKENS`` (pad 0, ``</s>`` 1, unk 2), then
    ``words`` in order, lower-cased, each sentence ending in ``</s>``. Words are split at
    whitespace, and at punctuation too when ``split_punctuation``."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS)}
    for word in dict.fromkeys(words):
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace() if split_punctuation else pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", model_max_length=64
    )


def build_tiny_text2text(out_dir, seed: int = 0) -> Path:
    """Save a tiny random T5ForConditionalGeneration (d_model 32, 2 layers) and its tokenizer."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    out_dir = Path(out_dir)
    tokenizer = word_tokenizer(TINY_WORDS)
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = T5ForConditionalGeneration(config)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def load_text2text(model_or_path):
    """(model, tokenizer) from a model id or local directory, model in eval mode."""
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(model_or_path))
        model = AutoModelForSeq2SeqLM.from_pretrained(str(model_or_path))
    except (OSError, ValueError) as err:
        raise GenBenchError(f"cannot load text-to-text model {model_or_path!r}: {err}") from err
    return model.eval(), tokenizer


def _normalise(sentence: str) -> str:
    return " ".join(sentence.split())


def generate_sentences(
    model, tokenizer, class_name: str, n: int, seed: int, max_new_tokens: int = 24, attempts: int = 3
) -> list[str]:
    """Up to ``n`` distinct sentences about ``class_name``, sampled deterministically from ``seed``.

    Sentences are whitespace-normalised, empty ones dropped and duplicates (ignoring case and
    whitespace) removed, keeping the first. Up to ``attempts`` sampling rounds of ``n``
    sequences each are made to reach ``n``; fewer may come back from a degenerate model.
    """
    if n < 1:
        raise GenBenchError(f"generate_sentences: n must be >= 1, got {n}")
    inputs = tokenizer([class_name], return_tensors="pt")
    seen: dict[str, str] = {}
    for attempt in range(attempts):
        for sentence in _sample_round(model, tokenizer, inputs, n, seed + attempt, max_new_tokens):
            seen.setdefault(sentence.lower(), sentence)
        if len(seen) >= n:
            break
    return list(seen.values())[:n]


def _sample_round(model, tokenizer, inputs, n: int, seed: int, max_new_tokens: int) -> list[str]:
    import torch

    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(seed)
        output = model.generate(
            **inputs, do_sample=True, top_k=50, top_p=0.95, num_return_sequences=n, max_new_tokens=max_new_tokens
        )
    texts = tokenizer.batch_decode(output, skip_special_tokens=True)
    return [t for t in (_normalise(text) for text in texts) if t]
