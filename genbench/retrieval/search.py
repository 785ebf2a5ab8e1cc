"""The retrieval baseline: search a pool with class prompts and keep the best hits per class.

Protocol (the original GenBench retrieval baseline, made precise here):

1. For class ``c`` every template is filled with the class name; the prompts are encoded
   with the encoder's text tower and L2-normalised.
2. Each prompt searches the pool (``kind="text"``: caption embeddings, as the paper;
   ``kind="image"``: image embeddings) for its ``k_per_prompt`` highest inner products.
3. The candidates of ``c`` are the union of those hits. Each candidate is scored with the
   **mean over all prompts of ``c``** of its cosine similarity to the prompt (computed
   exactly from its embedding, whether or not a given prompt had it in its top hits), i.e.
   ``score = e . mean_p(q_p)`` for a normalised pool row ``e``. ``hit_prompts`` records how
   many prompts had it among their top ``k_per_prompt``.
4. Candidates are deduplicated by pool key (the best-scoring row of a key is kept).
   Candidates that duplicate a val or test image of the dataset are removed
   (``genbench.data.duplicates``: the same pixels, or an image-embedding cosine of at
   least ``dedup_threshold``), and, when a CLIP filter is set, those whose image embedding is
   far from the class's prompts (``clip = e_img . normalise(mean_p(q_p))`` below
   ``clip_min_score``, or outside the class's top ``clip_top_fraction`` by it).
5. Classes are filled greedily over all (class, key) pairs in descending score order (ties:
   lower class id, then lower pool position): a pair is taken when its class has fewer than
   ``k_per_class`` images and its key is not taken yet. So an image that would rank for two
   classes stays in the class where its score is higher (``on_conflict="higher"``); with
   ``on_conflict="both"`` it is kept in every class that takes it. Every such case is recorded
   in ``conflicts`` as ``{"key", "classes", "scores", "kept"}``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from genbench.core.errors import GenBenchError
from genbench.core.io import emit, fill_template
from genbench.core.stage import StageParams, keyed, keyed_if_changed
from genbench.retrieval.build import l2_normalize_rows
from genbench.retrieval.pool import DEFAULT_CHUNK_ROWS, Pool

CONFLICT_POLICIES = ("higher", "both")


# ----------------------------------------------------------------------------- exact top-k


@dataclass(frozen=True)
class RetrievalParams(StageParams):
    """Per class, the pool's images nearest to the class's template-filled prompts (the pool's
    identity, a folder's content or the artifact it is built as, is wired in by the plan)."""

    STAGE: ClassVar[str] = "retrieve"
    VERSION: ClassVar[int] = 2  # 2: candidates duplicating val or test images are removed
    SECTION: ClassVar[str] = "retrieval"

    device: str = keyed(config="features.device", doc="the prompts' encoder runs there")
    kind: str = keyed(doc="text: prompt -> caption embeddings (as the paper); image: prompt -> image embeddings")
    k_per_prompt: int = keyed(doc="hits kept per prompt")
    k_per_class: int = keyed(doc="images kept per class (null: the largest of fewshot.shots)")
    on_conflict: str = keyed(doc="an image hit by two classes: higher (kept by the higher score) or both")
    index: str = keyed_if_changed("exact", doc="exact (one streamed pass) or faiss (the pool's own index)")
    dedup_threshold: float | None = keyed(
        None,
        doc="a candidate whose image-embedding cosine with a val or test image is at least this is removed "
        "(null: only exact pixel copies are)",
    )
    clip_min_score: float | None = keyed_if_changed(
        None, doc="CLIP filter: drop candidates whose image-prompt cosine is below this (null: off)"
    )
    clip_top_fraction: float | None = keyed_if_changed(
        None, doc="CLIP filter: keep a class's top fraction of candidates by image-prompt cosine (null: off)"
    )


def _select_topk_in_order(scores: np.ndarray, pos: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the k largest scores (ties: smaller position), kept in input (= position) order.

    ``pos`` must be ascending along each row. Uses ``np.argpartition`` to find the k-th
    largest value t; takes every score > t and the first (k - #greater) scores == t.
    """
    if scores.shape[1] <= k:
        return scores, pos
    kth = -np.partition(-scores, k - 1, axis=1)[:, k - 1 : k]
    greater = scores > kth
    equal = scores == kth
    room = k - greater.sum(axis=1, keepdims=True)
    keep = greater | (equal & (np.cumsum(equal, axis=1) <= room))
    rows = scores.shape[0]
    return scores[keep].reshape(rows, k), pos[keep].reshape(rows, k)


def _global_offsets(pool: Pool) -> tuple[list[str], np.ndarray]:
    sizes = [pool.num_rows(s) for s in pool.shards]
    return list(pool.shards), np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _to_ids(pos: np.ndarray, shards: list[str], offsets: np.ndarray) -> list[list[tuple[str, int]]]:
    which = np.searchsorted(offsets, pos, side="right") - 1
    return [[(shards[s], int(p - offsets[s])) for s, p in zip(ws, ps)] for ws, ps in zip(which, pos)]


def _check_queries(queries) -> np.ndarray:
    queries = np.asarray(queries, dtype=np.float32)
    if queries.ndim != 2 or queries.shape[0] == 0:
        raise GenBenchError(f"queries must be a non-empty Q x D array, got shape {queries.shape}")
    if not np.all(np.isfinite(queries)):
        raise GenBenchError("queries contain NaN or inf")
    return queries


def topk_chunked(
    queries,
    pool: Pool,
    k: int,
    kind: str = "text",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    *,
    query_batch: int = 1024,
    index_path=None,
    log=None,
):
    """Exact inner-product top-k of every query over all pool rows, in one streaming pass.

    Returns ``(scores, ids)``: ``scores`` float32 Q x k' (k' = min(k, pool rows)), each row
    descending; ``ids[q][j] = (shard, row)`` of ``scores[q, j]``. Ties are broken by the
    lower global position (shards in pool order, then row). The pool is read once, chunk by
    chunk, whatever Q: each chunk is scored against the queries ``query_batch`` at a time and
    merged into a running top-k of every query. Memory: one query_batch x chunk_rows float32
    score block plus the Q x k running top-k. Every shard's embedding dim must equal the
    queries' D (else GenBenchError naming the shard).

    With ``index_path`` (a faiss index over the concatenated rows in pool order, as autofaiss
    builds from clip-retrieval's embedding folder) the faiss index is searched instead; faiss
    must then be installed.
    """
    queries = _check_queries(queries)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise GenBenchError(f"k must be a positive int, got {k!r}")
    shards, offsets = _global_offsets(pool)
    if index_path is not None:
        scores, pos = _faiss_search(queries, k, index_path, log)
        return scores, _to_ids(pos, shards, offsets)
    blocks = [slice(i, i + query_batch) for i in range(0, len(queries), query_batch)]
    run = [(np.empty((len(queries[b]), 0), np.float32), np.empty((len(queries[b]), 0), np.int64)) for b in blocks]
    shard_start = dict(zip(shards, offsets[:-1]))
    for shard, start, chunk in pool.iter_chunks(kind, chunk_rows, dim=queries.shape[1]):
        positions = np.arange(len(chunk), dtype=np.int64) + shard_start[shard] + start
        for j, block in enumerate(blocks):
            scores = queries[block] @ chunk.T
            pos = np.broadcast_to(positions, scores.shape)
            run[j] = _select_topk_in_order(
                np.concatenate([run[j][0], scores], axis=1), np.concatenate([run[j][1], pos], axis=1), k
            )
    run_scores = np.concatenate([r[0] for r in run])
    run_pos = np.concatenate([r[1] for r in run])
    order = np.argsort(-run_scores, axis=1, kind="stable")
    scores = np.take_along_axis(run_scores, order, axis=1)
    return scores, _to_ids(np.take_along_axis(run_pos, order, axis=1), shards, offsets)


def _faiss_search(queries: np.ndarray, k: int, index_path, log):
    """(scores, global positions) of the top k of every query in a faiss index."""
    try:
        import faiss  # optional dependency
    except ImportError:
        raise GenBenchError(
            f"retrieval.index: faiss needs faiss-cpu (pip install faiss-cpu) to read {index_path}"
        ) from None
    emit(log, f"searching the faiss index {index_path} ({len(queries)} queries, k={k})")
    index = faiss.read_index(str(index_path))
    scores, pos = index.search(np.ascontiguousarray(queries), k)
    if np.any(pos < 0):
        raise GenBenchError(f"faiss index {index_path} returned fewer than {k} hits")
    return scores.astype(np.float32), pos.astype(np.int64)


# ----------------------------------------------------------------------------- per class


def class_prompts(class_names, templates) -> list[list[str]]:
    """Per class, every template filled with the class name (duplicates removed, order kept)."""
    if not class_names or not templates:
        raise GenBenchError(f"retrieval needs classes and templates, got {len(class_names)} and {len(templates)}")
    return [list(dict.fromkeys(fill_template(t, name) for t in templates)) for name in class_names]


def _class_candidates(prompt_emb: np.ndarray, ids, pool: Pool, kind: str, meta_cache: dict) -> list[dict]:
    """Union of a class's per-prompt hits, scored by mean similarity over all its prompts."""
    hits: dict[tuple[str, int], int] = {}
    for prompt_ids in ids:
        for shard_row in prompt_ids:
            hits[shard_row] = hits.get(shard_row, 0) + 1
    candidates = []
    for shard in dict.fromkeys(s for s, _ in hits):
        rows = sorted(r for s, r in hits if s == shard)
        sims = pool.rows(kind, shard, rows) @ prompt_emb.T  # n x P
        if shard not in meta_cache:
            meta_cache[shard] = pool.metadata(shard)
        meta = meta_cache[shard]
        for row, sim in zip(rows, sims):
            candidates.append(
                {
                    "shard": shard,
                    "row": row,
                    "key": meta[row]["key"],
                    "caption": meta[row]["caption"],
                    "score": float(sim.mean()),
                    "best_prompt_index": int(sim.argmax()),
                    "hit_prompts": hits[(shard, row)],
                }
            )
    return candidates


def _image_rows(pool: Pool, candidates: list[dict]) -> np.ndarray:
    """The pool's image embeddings of ``candidates`` (N x D), in their order."""
    return np.concatenate([pool.rows("image", c["shard"], [c["row"]]) for c in candidates])


def _decontaminate(per_class: list[list[dict]], pool: Pool, held_out, threshold, log=None) -> dict:
    """Remove, in place, every candidate that duplicates a held-out image (``find_duplicates``);
    return ``{"threshold", "removed_per_class": {class_id: n}, "removed": [...]}``."""
    from genbench.data.duplicates import find_duplicates, pixel_digest

    removed, counts, known = [], {}, {}  # known: (shard, key) -> pixel digest (classes share candidates)
    for class_id, candidates in enumerate(per_class):
        if not candidates:
            continue
        feats = _image_rows(pool, candidates)
        for c in candidates:
            if (c["shard"], c["key"]) not in known:
                known[(c["shard"], c["key"])] = pixel_digest(pool.read_image(c["shard"], c["key"]))
        digests = [known[(c["shard"], c["key"])] for c in candidates]
        found = find_duplicates(feats, digests, held_out, threshold)
        kept = [c for c, dup in zip(candidates, found) if dup is None]
        for cand, dup in zip(candidates, found):
            if dup is not None:
                removed.append({"class_id": class_id, "key": cand["key"], **dup})
        if len(kept) < len(candidates):
            counts[class_id] = len(candidates) - len(kept)
            emit(log, f"class id {class_id}: {counts[class_id]} candidate(s) removed as copies of val/test images")
        per_class[class_id] = kept
    return {"threshold": threshold, "removed_per_class": counts, "removed": removed}


def _clip_filter(
    per_class: list[list[dict]], pool: Pool, prompt_emb: list[np.ndarray], min_score, top_fraction
) -> dict:
    """Drop, in place, candidates far from their class's prompts by image embedding: score =
    e_img . normalise(mean_p q_p); below ``min_score``, or outside the class's top
    ``top_fraction`` (ceil, at least one kept). Returns ``{"removed_per_class": {class_id: n}}``."""
    counts = {}
    for class_id, candidates in enumerate(per_class):
        if not candidates:
            continue
        centre = l2_normalize_rows(prompt_emb[class_id].mean(axis=0, keepdims=True), "mean prompt embedding")[0]
        scores = l2_normalize_rows(_image_rows(pool, candidates), "image embeddings") @ centre
        keep = np.ones(len(candidates), dtype=bool)
        if min_score is not None:
            keep &= scores >= min_score
        if top_fraction is not None:
            order = np.argsort(-scores, kind="stable")
            top = np.zeros(len(candidates), dtype=bool)
            top[order[: max(1, int(np.ceil(top_fraction * len(candidates))))]] = True
            keep &= top
        if not keep.all():
            counts[class_id] = int((~keep).sum())
        per_class[class_id] = [c for c, k in zip(candidates, keep) if k]
    return {"min_score": min_score, "top_fraction": top_fraction, "removed_per_class": counts}


def _dedup_by_key(candidates: list[dict]) -> list[dict]:
    """One candidate per key: the highest score (ties: first in pool order)."""
    best: dict[str, dict] = {}
    for cand in candidates:
        if cand["key"] not in best or cand["score"] > best[cand["key"]]["score"]:
            best[cand["key"]] = cand
    return list(best.values())


def _assign(per_class: list[list[dict]], k_per_class: int, on_conflict: str, positions) -> tuple[list, list]:
    """Greedy fill of classes in descending score order; returns (selected per class, conflicts)."""
    pairs = [(c, cand) for c, cands in enumerate(per_class) for cand in cands]
    pairs.sort(key=lambda p: (-p[1]["score"], p[0], positions[(p[1]["shard"], p[1]["row"])]))
    selected = [[] for _ in per_class]
    owner: dict[str, int] = {}
    conflicts: dict[str, dict] = {}
    for class_id, cand in pairs:
        if len(selected[class_id]) >= k_per_class:
            continue
        key = cand["key"]
        if key in owner:
            entry = conflicts.setdefault(
                key,
                {
                    "key": key,
                    "classes": [owner[key]],
                    "scores": [_score_of(selected[owner[key]], key)],
                    "kept": [owner[key]],
                },
            )
            entry["classes"].append(class_id)
            entry["scores"].append(cand["score"])
            if on_conflict == "higher":
                continue
            entry["kept"].append(class_id)
        owner.setdefault(key, class_id)
        selected[class_id].append(cand)
    return selected, sorted(conflicts.values(), key=lambda e: e["key"])


def _score_of(selected: list[dict], key: str) -> float:
    return next(c["score"] for c in selected if c["key"] == key)


def _encode_prompts(encoder, prompts: list[str], batch_size: int = 256) -> np.ndarray:
    if not getattr(encoder, "has_text", False):
        raise GenBenchError(f"encoder {getattr(encoder, 'name', encoder)!r} has no text tower: cannot retrieve")
    parts = [encoder.encode_texts(prompts[i : i + batch_size]).numpy() for i in range(0, len(prompts), batch_size)]
    return l2_normalize_rows(np.concatenate(parts), "prompt embeddings")


def _check_pool_encoder(pool: Pool, encoder) -> None:
    built_with = pool.info.get("encoder")
    name = getattr(encoder, "name", None)
    if built_with and name and built_with != name:
        raise GenBenchError(f"pool {pool.root} was embedded with {built_with!r}, the query encoder is {name!r}")


def retrieve_for_classes(
    class_names,
    templates,
    encoder,
    pool: Pool,
    *,
    k_per_prompt: int,
    k_per_class: int,
    kind: str = "text",
    on_conflict: str = "higher",
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    query_batch: int = 1024,
    index_path=None,
    held_out=None,
    dedup_threshold: float | None = None,
    clip_min_score: float | None = None,
    clip_top_fraction: float | None = None,
    log=None,
) -> dict:
    """Retrieve up to ``k_per_class`` pool images per class (protocol in the module docstring).

    ``held_out`` (``genbench.data.duplicates.HeldOut``): the dataset's val and test
    images; candidates that duplicate one are removed before the classes are filled
    (``decontamination`` in the result). ``clip_min_score`` / ``clip_top_fraction``: the CLIP
    filter (``clip_filter`` in the result), off when both are None.

    Returns a JSON-serialisable dict::

        {"kind", "k_per_prompt", "k_per_class", "on_conflict",
         "classes": [{"class_id", "class_name", "prompts": [...],
                      "hits": [{"key", "shard", "row", "caption", "score", "prompt",
                                "hit_prompts"}, ...]}],   # descending score
         "conflicts": [{"key", "classes", "scores", "kept"}],
         "shortfall": {class_id: number kept},            # classes with < k_per_class
         "decontamination": {"threshold", "removed_per_class", "removed": [...]},
         "clip_filter": {"min_score", "top_fraction", "removed_per_class"}}

    ``score`` is the mean cosine similarity over all the class's prompts and ``prompt`` the
    prompt most similar to the hit. Prompts are searched ``query_batch`` at a time, so the
    score block is at most query_batch x chunk_rows float32. GenBenchError when the pool
    was built with another encoder (per ``pool_info.json``), its dim differs from the
    encoder's, or arguments are bad.
    """
    if on_conflict not in CONFLICT_POLICIES:
        raise GenBenchError(f"on_conflict must be one of {CONFLICT_POLICIES}, got {on_conflict!r}")
    for name, value in (("k_per_prompt", k_per_prompt), ("k_per_class", k_per_class)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise GenBenchError(f"{name} must be a positive int, got {value!r}")
    _check_pool_encoder(pool, encoder)
    prompts = class_prompts(list(class_names), list(templates))
    flat = [p for ps in prompts for p in ps]
    emb = _encode_prompts(encoder, flat)
    ids = topk_chunked(
        emb, pool, k_per_prompt, kind, chunk_rows, query_batch=query_batch, index_path=index_path, log=log
    )[1]
    per_class, start, meta_cache = [], 0, {}
    for ps in prompts:
        stop = start + len(ps)
        per_class.append(_dedup_by_key(_class_candidates(emb[start:stop], ids[start:stop], pool, kind, meta_cache)))
        start = stop
    decontamination = {"threshold": dedup_threshold, "removed_per_class": {}, "removed": []}
    if held_out is not None:
        had = sum(len(c) for c in per_class)
        decontamination = _decontaminate(per_class, pool, held_out, dedup_threshold, log)
        if had and not any(per_class):
            raise GenBenchError(
                f"retrieval.dedup_threshold {dedup_threshold}: all {had} candidates of every class are copies of val "
                f"or test images by it (cosine >= {dedup_threshold} or the same pixels); an encoder that puts "
                "distinct images that close cannot tell copies apart: raise the threshold, or set it to null "
                "(exact copies only), after benchmarks/dedup_threshold.py"
            )
    clip_filter = None
    if clip_min_score is not None or clip_top_fraction is not None:
        bounds = np.cumsum([0] + [len(ps) for ps in prompts])
        class_emb = [emb[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
        clip_filter = _clip_filter(per_class, pool, class_emb, clip_min_score, clip_top_fraction)
    shards, offsets = _global_offsets(pool)
    positions = {(c["shard"], c["row"]): offsets[shards.index(c["shard"])] + c["row"] for cs in per_class for c in cs}
    selected, conflicts = _assign(per_class, k_per_class, on_conflict, positions)
    classes = [
        {
            "class_id": c,
            "class_name": name,
            "prompts": prompts[c],
            "hits": [_hit_record(h, prompts[c]) for h in selected[c]],
        }
        for c, name in enumerate(class_names)
    ]
    shortfall = {c: len(s) for c, s in enumerate(selected) if len(s) < k_per_class}
    for c, have in shortfall.items():
        emit(log, f"class {class_names[c]!r}: {have} of {k_per_class} images retrieved")
    return {
        "kind": kind,
        "k_per_prompt": k_per_prompt,
        "k_per_class": k_per_class,
        "on_conflict": on_conflict,
        "classes": classes,
        "conflicts": conflicts,
        "shortfall": shortfall,
        "decontamination": decontamination,
        **({"clip_filter": clip_filter} if clip_filter is not None else {}),
    }


def _hit_record(cand: dict, prompts: list[str]) -> dict:
    return {
        "key": cand["key"],
        "shard": cand["shard"],
        "row": cand["row"],
        "caption": cand["caption"],
        "score": cand["score"],
        "prompt": prompts[cand["best_prompt_index"]],
        "hit_prompts": cand["hit_prompts"],
    }


# ----------------------------------------------------------------------------- writing


def retrieved_image_id(class_id: int, rank: int) -> str:
    """Id of the ``rank``-th retrieved image of a class: ``f"{class_id:04d}-{rank:06d}"``."""
    return f"{class_id:04d}-{rank:06d}"


def _check_class_names(results: dict, class_names) -> None:
    got = [c["class_name"] for c in results["classes"]]
    if list(class_names) != got:
        raise GenBenchError(f"retrieval results are for classes {got[:5]}..., expected {list(class_names)[:5]}...")


def _set_entries(results: dict, pool: Pool) -> list[tuple[dict, str, bytes]]:
    entries = []
    for cls in results["classes"]:
        for rank, hit in enumerate(cls["hits"]):
            ext, data = pool.image_member(hit["shard"], hit["key"])
            meta = {
                "id": retrieved_image_id(cls["class_id"], rank),
                "class_id": cls["class_id"],
                "class_name": cls["class_name"],
                "prompt": hit["prompt"],
                "similarity": hit["score"],
                "pool_key": hit["key"],
                "pool_shard": hit["shard"],
                "pool_row": hit["row"],
                "caption": hit["caption"],
                "hit_prompts": hit["hit_prompts"],
            }
            entries.append((meta, ext, data))
    return entries


def write_retrieved_set(results: dict, pool: Pool, out_dir, *, class_names, shard_size: int = 1000) -> dict:
    """Extract the retrieved images into ``out_dir/shards/shard-NNNNN.tar`` + ``out_dir/images.jsonl``.

    Each tar (deterministic, see ``sampling.write_tar_atomic``) holds ``<id>.<ext>`` (the pool
    image bytes, unchanged) and ``<id>.json`` ``{id, class_id, class_name, prompt, similarity,
    pool_key, pool_shard, pool_row, caption, hit_prompts}``; ids are
    ``retrieved_image_id(class_id, rank)`` in class then rank order, ``shard_size`` images per
    tar. ``images.jsonl`` records: ``{"id", "path": "shards/shard-NNNNN.tar@<id>.<ext>",
    "label", "similarity", "pool_key", "caption", "prompt"}``. Returns ``{"images",
    "per_class": [count], "shortfall": {class_id: count}, "conflicts": [...]}``.
    """
    from genbench.core.io import write_tar_atomic
    from genbench.data.imageset import write_index

    _check_class_names(results, class_names)
    out_dir = Path(out_dir)
    entries = _set_entries(results, pool)
    if not entries:
        raise GenBenchError(f"retrieval found no images for any class; nothing to write to {out_dir}")
    records = []
    for number, start in enumerate(range(0, len(entries), shard_size)):
        tar_name = f"shards/shard-{number:05d}.tar"
        members = {}
        for meta, ext, data in entries[start : start + shard_size]:
            members[f"{meta['id']}.{ext}"] = data
            members[f"{meta['id']}.json"] = json.dumps(meta, sort_keys=True).encode("utf-8")
            records.append(
                {
                    "id": meta["id"],
                    "path": f"{tar_name}@{meta['id']}.{ext}",
                    "label": meta["class_id"],
                    "similarity": meta["similarity"],
                    "pool_key": meta["pool_key"],
                    "caption": meta["caption"],
                    "prompt": meta["prompt"],
                }
            )
        write_tar_atomic(out_dir / tar_name, members)
    write_index(out_dir / "images.jsonl", records)
    per_class = [len(c["hits"]) for c in results["classes"]]
    return {
        "images": len(records),
        "per_class": per_class,
        "shortfall": {c: n for c, n in enumerate(per_class) if n < results["k_per_class"]},
        "conflicts": results["conflicts"],
    }


def retrieve_images(
    class_names, templates, encoder, pool: Pool, params: RetrievalParams, held_out=None, log=None
) -> dict:
    """``retrieve_for_classes`` as ``params`` say (through the pool's faiss index when
    ``params.index`` is faiss), without the copies of ``held_out``'s images."""
    from genbench.retrieval.pool import faiss_index_path

    return retrieve_for_classes(
        list(class_names),
        list(templates),
        encoder,
        pool,
        k_per_prompt=params.k_per_prompt,
        k_per_class=params.k_per_class,
        kind=params.kind,
        on_conflict=params.on_conflict,
        index_path=faiss_index_path(pool, params.kind) if params.index == "faiss" else None,
        held_out=held_out,
        dedup_threshold=params.dedup_threshold,
        clip_min_score=params.clip_min_score,
        clip_top_fraction=params.clip_top_fraction,
        log=log,
    )
