"""An open_clip text tower as a transformers ``CLIPTextModel``: the text encoder of a Stable
Diffusion pipeline.

Stable Diffusion conditions its UNet on the token states of a frozen CLIP text encoder
(OpenCLIP ViT-H's for SD 2). The generator the workflow trains does the same with the CLIP it
trains on the corpus: this module moves that CLIP's text tower into the class diffusers
pipelines load, weight for weight. Both compute, for token ids of a prompt padded to the
context length,

    h = LN_final( Transformer_causal( E[ids] + P ) )    (B x context x width)

with pre-norm residual blocks ``x + Attn(LN1 x)``, ``x + MLP(LN2 x)``, GELU, and the attention
projections stored packed in open_clip (``in_proj_weight`` = [W_q; W_k; W_v]) and apart in
transformers. The pipeline conditions on ``h`` (``last_hidden_state``); CLIP's own text
embedding is ``h[eot] @ text_projection``, which ``text_projection`` here reproduces.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


from genbench.core.errors import GenBenchError

CLIP_BOS_ID, CLIP_EOS_ID = 49406, 49407


def _layer_weights(state: dict, i: int, prefix: str) -> dict:
    """One residual block: open_clip names -> transformers names (under ``prefix``)."""
    src, dst = f"transformer.resblocks.{i}.", f"{prefix}encoder.layers.{i}."
    weights = {}
    for name, packed_w, packed_b in zip(
        "qkv", state[src + "attn.in_proj_weight"].chunk(3), state[src + "attn.in_proj_bias"].chunk(3)
    ):
        weights[dst + f"self_attn.{name}_proj.weight"] = packed_w
        weights[dst + f"self_attn.{name}_proj.bias"] = packed_b
    renames = {
        "attn.out_proj": "self_attn.out_proj",
        "ln_1": "layer_norm1",
        "ln_2": "layer_norm2",
        "mlp.c_fc": "mlp.fc1",
        "mlp.c_proj": "mlp.fc2",
    }
    for old, new in renames.items():
        for kind in ("weight", "bias"):
            weights[f"{dst}{new}.{kind}"] = state[f"{src}{old}.{kind}"]
    return weights


def text_config(model):
    """The ``CLIPTextConfig`` of an open_clip CLIP's text tower (GELU; QuickGELU is refused)."""
    from transformers import CLIPTextConfig

    blocks = model.transformer.resblocks
    activation = type(blocks[0].mlp.gelu).__name__
    if activation != "GELU":
        raise GenBenchError(f"text tower activation {activation} has no transformers CLIPTextModel equivalent here")
    width = model.token_embedding.weight.shape[1]
    return CLIPTextConfig(
        vocab_size=model.token_embedding.weight.shape[0],
        hidden_size=width,
        intermediate_size=blocks[0].mlp.c_fc.weight.shape[0],
        num_hidden_layers=len(blocks),
        num_attention_heads=blocks[0].attn.num_heads,
        max_position_embeddings=model.positional_embedding.shape[0],
        projection_dim=model.text_projection.shape[1],
        hidden_act="gelu",
        layer_norm_eps=model.ln_final.eps,
        bos_token_id=CLIP_BOS_ID,
        eos_token_id=CLIP_EOS_ID,
        pad_token_id=0,
    )


def open_clip_text_encoder(model):
    """The text tower of open_clip CLIP ``model`` as a frozen ``CLIPTextModel`` in eval mode,
    and its text projection (width x embed_dim): ``h[eot] @ projection`` is ``encode_text``."""
    from transformers import CLIPTextModel

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    config = text_config(model)
    encoder = CLIPTextModel(config)
    # transformers 4 names the weights "text_model.<name>", transformers 5 "<name>"
    prefix = "text_model." if any(k.startswith("text_model.") for k in encoder.state_dict()) else ""
    weights = {
        f"{prefix}embeddings.token_embedding.weight": state["token_embedding.weight"],
        f"{prefix}embeddings.position_embedding.weight": state["positional_embedding"],
        f"{prefix}final_layer_norm.weight": state["ln_final.weight"],
        f"{prefix}final_layer_norm.bias": state["ln_final.bias"],
    }
    for i in range(config.num_hidden_layers):
        weights.update(_layer_weights(state, i, prefix))
    missing, unexpected = encoder.load_state_dict(weights, strict=False)
    if unexpected or any("position_ids" not in name for name in missing):
        raise GenBenchError(f"open_clip text tower does not map onto CLIPTextModel: {missing or unexpected}")
    return encoder.eval().requires_grad_(False), state["text_projection"]


def prompt_states(text_encoder, tokenizer, prompts: list[str], batch: int = 512) -> torch.Tensor:
    """``last_hidden_state`` of prompts padded to the tokenizer's context (N x context x width),
    as a Stable Diffusion pipeline computes them (without gradients)."""
    import torch

    states = []
    with torch.no_grad():
        for start in range(0, len(prompts), batch):
            ids = tokenizer(
                prompts[start : start + batch],
                padding="max_length",
                max_length=tokenizer.model_max_length,
                truncation=True,
                return_tensors="pt",
            ).input_ids
            states.append(text_encoder(ids).last_hidden_state)
    return torch.cat(states)
