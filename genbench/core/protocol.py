"""The two labelled protocols: GenBench's own (``honest``) and the original's (``paper``).

Every paired metric is computed in both variants whatever the protocol (docs/PROTOCOL.md has
the table); the protocol sets only what cannot be reported both ways at once - which images a
pack holds - and which columns the summary puts first.
"""

from __future__ import annotations

PROTOCOLS = ("honest", "paper")

# The original GenBench ranks generated images by CLIP ViT-B/16 against one prompt
# (packing_utils.py: clip.load("ViT-B/16"), clip.tokenize(f"a photo of a {category}")).
PAPER_SELECTION_ENCODER = {"type": "open_clip", "model": "ViT-B-16", "pretrained": "openai"}
PAPER_CLIP_PROMPT = "a photo of a {}"

HEADLINE = {
    "honest": [
        "shots_actual",
        "linear_probe",
        "zero_shot",
        "gain",
        "cler",
        "fd",
        "clip_score_100",
        "pad",
        "gen_recognised",
    ],
    "paper": [
        "shots_actual",
        "linear_probe_elevater",
        "zero_shot",
        "gain_elevater",
        "cler",
        "cler_full_train",
        "fd_paper",
        "clip_score_paper",
        "pad_dann",
        "gen_recognised",
    ],
}


def pack_settings(pack: dict, protocol: str) -> dict:
    """The pack section with every null resolved for ``protocol``.

    ``selection_encoder`` None = the feature encoder, ``selection_prompt`` None = the dataset's
    templates averaged; ``retrieval_selection`` is always a mode (clip, similarity, random)."""
    paper = protocol == "paper"
    encoder = pack.get("selection_encoder")
    prompt = pack.get("selection_prompt")
    retrieval = pack.get("retrieval_selection")
    return {
        "selection": pack.get("selection", "clip"),
        "selection_encoder": encoder if encoder is not None else (dict(PAPER_SELECTION_ENCODER) if paper else None),
        "selection_prompt": prompt if prompt is not None else (PAPER_CLIP_PROMPT if paper else None),
        "retrieval_selection": retrieval or ("similarity" if paper else pack.get("selection", "clip")),
        "draw_from": pack.get("draw_from"),
    }


def headline(protocol: str) -> list[str]:
    """The summary's first metric columns under ``protocol`` (the other variants follow)."""
    first = HEADLINE[protocol]
    return first + [m for other in PROTOCOLS for m in HEADLINE[other] if m not in first]
