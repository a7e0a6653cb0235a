"""The running app's engines: loading the models a config names, sharing them, the flows a page offers.

`build_engine` is the one loader (chat.py only runs turns with what it is given); `ModelCache`
lets engines of flows that name the same specs share the weights; `FlowSet` builds each flow's
engine on first use.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from ..llm.backends import load_generator
from .chat import ChatEngine
from ..config import AppConfig
from ..errors import ModelLoadError, log_failure
from ..flows import Flow
from ..ranking.ranking import Ranking, Reranker, load_ranking
from ..llm.sampling import Generator
from ..media.speaker import Speaker
from ..media.speech import Transcriber
from ..media.vision import Captioner

log = logging.getLogger(__name__)


class ModelCache:
    """Loaded models by (role, spec, device), so engines of flows that name the same specs share the weights."""

    def __init__(self) -> None:
        self._items: dict[Hashable, Any] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The cached model for `key`, loading it with `load()` the first time."""
        with self._lock:  # one load at a time: a second flow with the same specs waits, then shares
            if key not in self._items:
                self._items[key] = load()
            return self._items[key]


def build_engine(config: AppConfig, models: ModelCache | None = None, *, warm_now: bool = True) -> ChatEngine:
    """Load the configured models (converting embedded ones once into the cache); `models` shares them.

    With `warm_now=False` the warm-up runs, and the loading of Whisper and the text reader, are left to
    `warm_up(engine)`: app.py runs it once the page is up. Without `warmup` those two load on first use.
    """
    from ..ranking.discriminator import load_discriminator
    from ..media.ffmpeg import ensure_ffmpeg
    from ..models.device import resolve_device
    from ..media.ocr import load_reader
    from ..models.specs import check_specs

    m, models = config.models, models or ModelCache()
    check_specs(m)  # a bad spec of a flow fails before any of its models loads
    models.get(("ffmpeg",), lambda: ensure_ffmpeg(m.cache_dir))  # for the page's spoken replies and WebM clips
    device = resolve_device(m.device)
    warm = m.warmup and warm_now
    generator = models.get(
        ("llm", m.llm, m.llm_backend, m.dtype, device), lambda: _load_generator(config, device, warm)
    )
    transcriber = models.get(("asr", m.asr, device), lambda: _load_transcriber(config, device, warm))
    reader = models.get(("ocr", m.ocr), lambda: load_reader(m.ocr, warm_up=warm))
    captioner = models.get(
        ("captioner", m.captioner, m.ocr, device),
        lambda: Captioner(m.captioner, m.cache_dir, device, config.limits, reader),
    )
    discriminator = models.get(
        ("discriminator", m.discriminator, m.discriminator_encoder, device),
        lambda: load_discriminator(m.discriminator, device, m.discriminator_encoder),
    )
    speaker, speaker_note = models.get(
        ("tts", m.tts, m.tts_voice_en, m.tts_voice_zh, m.tts_speed, m.tts_threads), lambda: _load_speaker(config)
    )
    if speaker is not None and warm and config.flow.voice_replies:  # shared: maybe built for a quiet flow
        speaker.warm_up()
    lam = config.generation.lam
    if lam is None:  # the λ that won on validation when D was trained
        lam = float(discriminator.meta.get("lam", 0.5)) if discriminator else 0.5
    ranking = models.get(("ranking", m.ranking), lambda: load_app_ranking(m.ranking))
    reranker = Reranker(discriminator, lam, ranking=ranking)
    return ChatEngine(config, generator, transcriber, captioner, reranker, speaker, speaker_note)


def load_app_ranking(path: str) -> Ranking | None:
    """The fitted ranking the app ranks with; ModelLoadError when it weighs a signal the app does not compute."""
    from ..ranking.signals import SIGNALS

    ranking = load_ranking(path)
    costly = [name for name in ranking.signals if SIGNALS[name].cost == "model"] if ranking else []
    if costly:
        raise ModelLoadError(
            f"The ranking in {path} weighs {', '.join(costly)}, which reads every candidate with another model "
            "(seconds per turn); the app does not load one. Fit a ranking without it, or pass --ranking off."
        )
    return ranking


def _load_generator(config: AppConfig, device: str, warm: bool) -> Generator:
    """The chat model, warmed up when `warm` so that the first user turn is not the slow one."""
    generator = load_generator(config.models, device)
    if warm:
        _warm_generator(generator, config)
    return generator


def _warm_generator(generator: Generator, config: AppConfig) -> None:
    if hasattr(generator, "warm_up"):  # a server backend warms up on its own
        generator.warm_up((1, config.generation.num_candidates))


def _load_transcriber(config: AppConfig, device: str, warm: bool) -> Transcriber:
    """Whisper, loaded and warmed up now when `warm`, else by `warm_up` or the first voice turn."""
    m = config.models
    transcriber = Transcriber(m.asr, m.cache_dir, device, config.limits)
    if warm:
        transcriber.warm_up()
    return transcriber


def warm_up(engine: ChatEngine) -> None:
    """What `build_engine(..., warm_now=False)` left, when the config warms up: the chat model run once per batch
    size, Whisper loaded and run on a second of noise, the text reader's models run, the speaker warmed when the
    flow speaks. A failure is logged and left for the turn that needs that model to report."""
    config = engine.config
    if not config.models.warmup:
        return
    reader = getattr(engine.captioner, "reader", None)
    steps = [
        ("chat model", lambda: _warm_generator(engine.generator, config)),
        ("speech model", engine.transcriber.warm_up),
        ("text reader", reader.warm_up if reader is not None else None),
        ("speaker", engine.speaker.warm_up if engine.speaker is not None and config.flow.voice_replies else None),
    ]
    started = time.perf_counter()
    for name, step in steps:
        if step is None:
            continue
        try:
            step()
        except Exception as e:  # the turn that needs this model says what is wrong, in the user's language
            log_failure(log, f"warming up the {name} failed", e, logging.WARNING)
    log.info("models warmed up in %.1f s, behind the page", time.perf_counter() - started)


def _load_speaker(config: AppConfig) -> tuple[Speaker | None, str]:
    """The speaker (loaded now when the flow speaks by default, else by its first spoken reply), or None and the
    one line that says why not."""
    from ..media.speaker import load_speaker

    m = config.models
    voices = {"en": m.tts_voice_en, "zh": m.tts_voice_zh}
    speaker, note = load_speaker(m.tts, m.cache_dir, voices, m.tts_speed, m.tts_threads, config.flow.voice_replies)
    if note:
        log.warning("%s", note)
    return speaker, note


class FlowSet:
    """The flows a page can switch between, each with its own engine built on first use.

    `build` makes an engine from a flow's config; pass one that shares a model cache
    (`ModelCache`) so flows with the same model specs share the loaded weights, and
    switching back to a flow is instant.
    """

    def __init__(
        self,
        configs: Mapping[str, AppConfig],
        start: str,
        build: Callable[[AppConfig], ChatEngine],
        engines: Mapping[str, ChatEngine] | None = None,
    ) -> None:
        self.configs = dict(configs)
        self.start = start
        self._build = build
        self._engines: dict[str, ChatEngine] = dict(engines or {})
        self._lock = threading.Lock()

    @classmethod
    def serving(cls, engine: ChatEngine, configs: Mapping[str, AppConfig], models: Any) -> FlowSet:
        """`configs` with `engine` (already built, sharing the model cache `models`) as the start flow."""
        name = engine.config.flow.name
        return cls(configs, name, lambda config: build_engine(config, models), {name: engine})

    @classmethod
    def starting(cls, config: AppConfig, configs: Mapping[str, AppConfig], warm_now: bool = True) -> FlowSet:
        """`configs` with `config`'s engine built now (its models loaded; `build_engine`'s `warm_now`), all
        sharing one model cache."""
        models = ModelCache()
        return cls.serving(build_engine(config, models, warm_now=warm_now), configs, models)

    @classmethod
    def single(cls, engine: ChatEngine) -> FlowSet:
        """Only the engine's own flow (no switching)."""
        name = engine.config.flow.name
        return cls({name: engine.config}, name, lambda config: engine, {name: engine})

    @property
    def names(self) -> list[str]:
        return list(self.configs)

    def flow(self, name: str | None) -> Flow:
        return self.configs[self.known(name)].flow

    def known(self, name: str | None) -> str:
        """`name` if this app offers it, else the start flow."""
        return name if name in self.configs else self.start

    def engine(self, name: str | None) -> ChatEngine:
        """The flow's engine (loading its models the first time; ModelLoadError if they cannot load)."""
        name = self.known(name)
        with self._lock:
            if name not in self._engines:
                self._engines[name] = self._build(self.configs[name])
            return self._engines[name]
