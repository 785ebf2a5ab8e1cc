"""Every stage's params dataclass (``genbench.core.stage``), gathered from the stage modules.

Each stage module declares its parameters and its ``VERSION`` beside the code that uses them;
``STAGE_VERSIONS`` is read from them here. Importing this module imports no torch: planning a
dry run stays as light as the config parser.
"""

from __future__ import annotations

from genbench.data.corpus import CorpusParams
from genbench.data.datasets import ConfigureParams
from genbench.data.fewshot import FewShotParams
from genbench.data.prepare import PrepareParams
from genbench.evaluation.evaluate import CLERParams, DistributionParams, PADParams, ProbeParams
from genbench.evaluation.external import GeneratedPackParams, OriginalPackParams, RetrievedPackParams
from genbench.evaluation.features import FeaturesParams, TextClassifierParams
from genbench.generation.prompts import PromptPlanParams
from genbench.generation.sampling import SamplingParams
from genbench.injection.lora import LoraParams
from genbench.injection.references import ReferenceParams
from genbench.injection.textual_inversion import TextualInversionParams
from genbench.models.tiny import TinyModelParams
from genbench.models.train_encoder import EncoderTrainingParams
from genbench.models.train_generator import GeneratorTrainingParams
from genbench.models.train_text2text import Text2TextTrainingParams
from genbench.models.train_vae import VAETrainingParams
from genbench.report.tables import AggregateParams
from genbench.retrieval.build import PoolParams
from genbench.retrieval.search import RetrievalParams

STAGE_PARAMS = (
    TinyModelParams,
    CorpusParams,
    EncoderTrainingParams,
    VAETrainingParams,
    GeneratorTrainingParams,
    Text2TextTrainingParams,
    ConfigureParams,
    PrepareParams,
    FewShotParams,
    PromptPlanParams,
    SamplingParams,
    RetrievalParams,
    PoolParams,
    ReferenceParams,
    TextualInversionParams,
    LoraParams,
    FeaturesParams,
    TextClassifierParams,
    GeneratedPackParams,
    RetrievedPackParams,
    OriginalPackParams,
    CLERParams,
    DistributionParams,
    PADParams,
    ProbeParams,
    AggregateParams,
)

# Bump a stage's VERSION (in its module) when its code changes the bytes it writes: every
# artifact of that stage (and everything downstream) then gets a new key and is rebuilt beside
# the old one. tests/test_plan_keys.py fails until its digests are rewritten on purpose.
STAGE_VERSIONS = {cls.STAGE: cls.VERSION for cls in STAGE_PARAMS}
