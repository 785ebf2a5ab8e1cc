"""The "web" corpus: a stand-in for LAION that the workflow builds in code from real fonts.

Each item is a printed digit, drawn with one of the text fonts matplotlib ships (DejaVu,
STIX, Computer Modern), at a random size, rotation, stroke and position, in a foreground and a
background colour drawn from the configured palette (``colours``), some of them rendered at
low resolution and blown up (pixel-art digits), and captioned the way alt-texts are: "the
number 7 in bold serif type", "a sign with a seven on it". A configured fraction of captions
names the wrong digit, as web captions do.

The corpus is the pretraining set of every model the workflow trains (the CLIP, the VAE and
UNet of the generator, the T5 of ``model_enc``) and the retrieval pool of the demo. The
benchmark's target stays the real *handwritten* digits, whose test split no training ever
sees: printed vs handwritten is a real domain gap.

Everything is drawn from one ``numpy.random.default_rng(seed)``, so one config gives the same
images (PNG bytes) and captions on every machine with the same fonts and Pillow.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from genbench.core.errors import ConfigError
from genbench.core.fingerprint import sha256_file
from genbench.core.stage import SectionParams, keyed, runtime

if TYPE_CHECKING:
    from PIL import Image

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# text fonts of matplotlib's mpl-data/fonts/ttf (the symbol and fallback fonts are left out)
FONT_FAMILIES = {
    "DejaVuSans": "sans-serif",
    "DejaVuSansMono": "monospace",
    "DejaVuSerif": "serif",
    "STIXGeneral": "serif",
    "cmr10": "serif",
    "cmss10": "sans-serif",
    "cmtt10": "typewriter",
    "cmti10": "italic serif",
    "cmb10": "bold serif",
}
COLOURS = {
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "red": (200, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 70, 200),
    "yellow": (230, 210, 40),
    "grey": (128, 128, 128),
    "orange": (235, 130, 30),
}
CAPTION_TEMPLATES = (
    "the number {digit} in {style} type",
    "a sign with a {word} on it",
    "{digit}",
    "the digit {word}",
    "a {colour} {digit} on a {background} background",
    "number {digit}",
    "a photo of the number {word}",
    "{word}, printed in {style}",
    "a {style} {digit}",
    "clipart of the number {digit}",
)


@dataclass(frozen=True)
class CorpusItem:
    """One corpus image: its key, PNG bytes, caption, the digit really drawn and the one named."""

    key: str
    png: bytes
    caption: str
    digit: int
    named: int


@dataclass(frozen=True)
class CorpusParams(SectionParams):
    """The "web" corpus of printed digits (``training.corpus``), keyed by the fonts' content."""

    STAGE: ClassVar[str] = "build_corpus"
    VERSION: ClassVar[int] = 4
    SECTION: ClassVar[str] = "training.corpus"

    images_per_digit: int = keyed(doc="images of each digit")
    image_size: int = keyed(doc="side in pixels")
    caption_error_rate: float = keyed(doc="share of captions naming another digit than the one drawn")
    seed: int = keyed(doc="drawing, captions and order")
    colours: list = keyed(doc="the palette (default: all eight COLOURS)")
    fonts: dict = keyed(factory=dict, doc="font file name -> content key (from fonts_dir)")
    fonts_dir: str | None = runtime(None, doc="folder of .ttf fonts; null: matplotlib's own")


def font_files(fonts_dir: str | Path | None = None) -> list[Path]:
    """The text fonts of ``FONT_FAMILIES`` found in ``fonts_dir`` (default: matplotlib's
    bundled ``mpl-data/fonts/ttf``), sorted by name, with their bold/italic faces."""
    if fonts_dir is None:
        import importlib.util

        package = importlib.util.find_spec("matplotlib")  # found, not imported (planning stays light)
        fonts_dir = Path(package.submodule_search_locations[0]) / "mpl-data" / "fonts" / "ttf"
    found = sorted(
        p for p in Path(fonts_dir).glob("*.ttf") if any(p.stem.startswith(family) for family in FONT_FAMILIES)
    )
    return [p for p in found if "Display" not in p.stem]


def _style_of(font: Path) -> str:
    family = next(f for f in sorted(FONT_FAMILIES, key=len, reverse=True) if font.stem.startswith(f))
    style = FONT_FAMILIES[family]
    suffix = font.stem[len(family) :].lower()
    # face suffixes: DejaVu's "-Bold", "-Oblique", "-BoldItalic"; STIX's "Bol", "Ita", "BolIta"
    if "bol" in suffix and "bold" not in style:
        style = f"bold {style}"
    if ("oblique" in suffix or "ita" in suffix) and "italic" not in style:
        style = f"italic {style}"
    return style


def corpus_palette(cfg: dict, where: str = "training.corpus") -> list[str]:
    """The colour names a corpus draws foregrounds and backgrounds from (``cfg["colours"]``, all
    of ``COLOURS`` when absent): at least two, since a digit never has its background's colour."""
    names = list(cfg.get("colours") or COLOURS)
    unknown = [n for n in names if n not in COLOURS]
    if unknown:
        raise ConfigError(f"{where}.colours: unknown colour(s) {unknown}; valid: {list(COLOURS)}")
    if len(set(names)) < 2:
        raise ConfigError(f"{where}.colours: needs at least two different colours, got {names}")
    return list(dict.fromkeys(names))


def check_corpus_config(cfg: dict, fonts: list[Path], where: str = "training.corpus") -> None:
    """Stop with the key at fault when a corpus cannot be built as configured."""
    corpus_palette(cfg, where)
    if not fonts:
        raise ConfigError(f"{where}.fonts_dir: no text fonts found (looked for {', '.join(FONT_FAMILIES)})")
    rate = cfg["caption_error_rate"]
    if not 0 <= rate < 1:
        raise ConfigError(f"{where}.caption_error_rate: must be in [0, 1), got {rate}")
    if int(cfg["images_per_digit"]) < 1:
        raise ConfigError(f"{where}.images_per_digit: must be at least 1, got {cfg['images_per_digit']}")
    if int(cfg["image_size"]) < 16:
        raise ConfigError(f"{where}.image_size: must be at least 16 pixels, got {cfg['image_size']}")


def encoder_model_config(cfg: dict, image_size: int) -> dict:
    """The open_clip model config of ``cfg["model_config"]`` (``embed_dim``, ``vision_cfg``,
    ``text_cfg``; a ``vision_cfg.layers`` list gives open_clip's ModifiedResNet, an int a ViT),
    checked against the corpus image size (here, not in train_encoder.py, so that the plan
    checks it without importing torch)."""
    config = cfg.get("model_config")
    if not isinstance(config, dict) or not {"embed_dim", "vision_cfg", "text_cfg"} <= set(config):
        raise ConfigError("training.encoder.model_config: needs embed_dim, vision_cfg and text_cfg")
    size = config["vision_cfg"].get("image_size")
    if size != image_size:
        raise ConfigError(
            f"training.encoder.model_config.vision_cfg.image_size: {size} differs from the corpus "
            f"image size {image_size} (training.corpus.image_size)"
        )
    return config


def _draw_digit(
    digit: int, font_path: Path, rng: np.random.Generator, size: int, names: list[str]
) -> tuple[Image.Image, dict]:
    """One printed digit on a plain background of colour names ``names``: (RGB image of
    ``size`` px, what was drawn)."""
    from PIL import Image, ImageDraw, ImageFont

    background = names[rng.integers(len(names))]
    foreground = background
    while foreground == background:
        foreground = names[rng.integers(len(names))]
    low_res = rng.random() < 0.3  # drawn at 8 px and blown up: pixel-art digits
    canvas = 8 if low_res else size
    scale = 4  # supersampling, for smooth edges
    big = canvas * scale
    image = Image.new("RGB", (big, big), COLOURS[background])
    glyph = Image.new("L", (big, big), 0)
    fill = rng.uniform(0.85, 1.1) if low_res else rng.uniform(0.55, 0.95)
    font = ImageFont.truetype(str(font_path), int(big * fill))
    draw = ImageDraw.Draw(glyph)
    stroke = 0 if low_res else int(rng.integers(0, 3)) * scale // 2
    box = draw.textbbox((0, 0), str(digit), font=font, stroke_width=stroke)
    width, height = box[2] - box[0], box[3] - box[1]
    slack_x, slack_y = max(big - width, 1), max(big - height, 1)
    x = rng.uniform(0.2, 0.8) * slack_x - box[0]
    y = rng.uniform(0.2, 0.8) * slack_y - box[1]
    draw.text((x, y), str(digit), fill=255, font=font, stroke_width=stroke, stroke_fill=255)
    glyph = glyph.rotate(float(rng.uniform(-20, 20)), resample=Image.BILINEAR)
    image.paste(Image.new("RGB", (big, big), COLOURS[foreground]), (0, 0), glyph)
    image = image.resize((canvas, canvas), Image.BOX)
    if low_res:
        image = image.resize((size, size), Image.NEAREST)
    return image, {"foreground": foreground, "background": background}


def _caption(digit: int, style: str, colours: dict, rng: np.random.Generator) -> str:
    template = CAPTION_TEMPLATES[rng.integers(len(CAPTION_TEMPLATES))]
    return template.format(
        digit=digit,
        word=DIGIT_WORDS[digit],
        style=style,
        colour=colours["foreground"],
        background=colours["background"],
    )


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


def render_corpus(cfg: dict, fonts: list[Path] | None = None) -> list[CorpusItem]:
    """The corpus of ``cfg`` (``images_per_digit``, ``image_size``, ``caption_error_rate``,
    ``seed``; optional ``fonts_dir`` and ``colours``): 10 x images_per_digit captioned PNG
    images, in a seeded shuffled order. A wrong caption names another digit than the one drawn."""
    fonts = fonts if fonts is not None else font_files(cfg.get("fonts_dir"))
    check_corpus_config(cfg, fonts)
    palette = corpus_palette(cfg)
    rng = np.random.default_rng(int(cfg["seed"]))
    size = int(cfg["image_size"])
    digits = np.repeat(np.arange(10), int(cfg["images_per_digit"]))
    rng.shuffle(digits)
    items = []
    for number, digit in enumerate(digits.tolist()):
        font = fonts[rng.integers(len(fonts))]
        image, colours = _draw_digit(digit, font, rng, size, palette)
        named = digit
        if rng.random() < float(cfg["caption_error_rate"]):
            named = int((digit + rng.integers(1, 10)) % 10)
        caption = _caption(named, _style_of(font), colours, rng)
        items.append(CorpusItem(f"c{number:06d}", _png(image), caption, digit, named))
    return items


def fonts_identity(fonts: list[Path]) -> dict[str, str]:
    """File name -> sha256 of every font a corpus is drawn with (part of the corpus key)."""
    return {p.name: sha256_file(p)[:16] for p in fonts}


CORPUS_SHARD_SIZE = 1000
CORPUS_INFO = "corpus_info.json"


def write_corpus(cfg: dict, out_dir: str | Path) -> dict:
    """Render the corpus of ``cfg`` into ``out_dir`` in the img2dataset layout (``00000.tar``
    with ``<key>.png``, ``<key>.txt``, ``<key>.json`` holding also the digit really drawn, and
    ``metadata/metadata_<shard>.parquet``), plus ``corpus_info.json`` and the image-set index
    ``corpus.jsonl`` (id, ``<shard>.tar@<key>.png``, label 0, caption, the digit drawn and the
    digit the caption names). Returns the info."""
    import json

    from genbench.retrieval.build import write_pool_shard
    from genbench.retrieval.pool import CORPUS_INDEX, shard_name

    fonts = font_files(cfg.get("fonts_dir"))
    items = render_corpus(cfg, fonts)
    out_dir = Path(out_dir)
    shards = []
    for number, start in enumerate(range(0, len(items), CORPUS_SHARD_SIZE)):
        part = items[start : start + CORPUS_SHARD_SIZE]
        shards.append(shard_name(number))
        write_pool_shard(
            out_dir,
            shards[-1],
            [i.key for i in part],
            [i.caption for i in part],
            [i.png for i in part],
            urls=[f"genbench://corpus/{i.key}" for i in part],
            extra=[{"digit": i.digit, "named": i.named} for i in part],
        )
    index = [
        {
            "id": item.key,
            "path": f"{shard_name(number // CORPUS_SHARD_SIZE)}.tar@{item.key}.png",
            "label": 0,
            "caption": item.caption,
            "digit": item.digit,
            "named": item.named,
        }
        for number, item in enumerate(items)
    ]
    lines = "".join(json.dumps(record, sort_keys=True) + "\n" for record in index)
    (out_dir / CORPUS_INDEX).write_text(lines, encoding="utf-8")
    wrong = sum(i.digit != i.named for i in items)
    info = {
        "count": len(items),
        "shards": shards,
        "image_size": int(cfg["image_size"]),
        "colours": corpus_palette(cfg),
        "fonts": fonts_identity(fonts),
        "captions_wrong": wrong,
    }
    (out_dir / CORPUS_INFO).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return info
