"""ChatEngine: one turn end to end — guard, read the attachments, prompt, sample N, rerank.

No gradio here: the UI and the API call `respond`, which mutates the Conversation in place
and yields short status lines while the reply streams. Whatever goes wrong, the turn ends
with a readable error on it and every earlier turn is untouched.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pathlib import Path

from ..ranking import defects
from ..config import AppConfig
from ..dialogue import Attachment, Candidate, Conversation, Turn, context_text, fit_to_budget
from ..ranking.ranking import Reranker
from ..errors import InputError, InteractiveFormatError, ModelLoadError, ReplyTimeout, log_failure
from ..knobs import KNOBS
from .guard import InputGuard, preview, visible
from .pruning import PruneOptions, Pruner, reranker_scorer, survivors_first
from ..uploads import display_name
from ..inputs.readers import READERS, either
from ..llm.sampling import Generator, RowEnds, SamplingParams

if TYPE_CHECKING:  # the engine is given its stages (engines.build_engine loads them)
    from ..media.speaker import Speaker
    from ..media.speech import Transcriber
    from ..media.vision import Captioner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TurnSettings:
    """What the user may change per turn (the settings panel / API arguments)."""

    num_candidates: int = int(KNOBS["num_candidates"].default)
    temperature: float = KNOBS["temperature"].default
    max_new_tokens: int = int(KNOBS["max_new_tokens"].default)
    lam: float = KNOBS["lam"].default

    def clamped(self) -> "TurnSettings":
        """Values forced into the ranges of knobs.KNOBS (API callers may send anything; not a number: the default)."""
        return TurnSettings(**{name: knob.clamp(getattr(self, name)) for name, knob in KNOBS.items()})


class ChatEngine:
    """Everything a turn needs, passed in; `engines.build_engine` makes the real one from a config."""

    def __init__(
        self,
        config: AppConfig,
        generator: Generator,
        transcriber: Transcriber,
        captioner: Captioner,
        reranker: Reranker,
        speaker: Speaker | None = None,
        speaker_note: str = "",
    ) -> None:
        self.config = config
        self.generator, self.transcriber, self.captioner, self.reranker = generator, transcriber, captioner, reranker
        self.guard = InputGuard(config.limits)
        self.speaker = speaker  # None: no spoken replies (off, or the engine is missing: `speaker_note` says why)
        self.speaker_note = speaker_note
        self.prune = PruneOptions() if config.generation.prune else None  # None: every candidate runs its course

    def new_conversation(self) -> Conversation:
        return Conversation(self.config.generation.system_prompt)

    def default_settings(self) -> TurnSettings:
        g = self.config.generation
        return TurnSettings(g.num_candidates, g.temperature, g.max_new_tokens, self.reranker.lam)

    @property
    def ranking_note(self) -> str:
        """How replies are ranked, as the reranker says it."""
        return self.reranker.note

    # --- one turn -----------------------------------------------------------------------

    def respond(
        self,
        conversation: Conversation,
        text: str | None,
        files: list[str] | None = None,
        settings: TurnSettings | None = None,
        stop: threading.Event | None = None,
        watched: bool = False,
    ) -> Iterator[str]:
        """Run one turn, mutating `conversation`; yields a status line after each change.

        `watched`: someone reads the reply as it streams (the page); the draft they watch then stays shown
        unless another candidate has fewer defects (`_streamed_first`). Raises InputError only for an empty
        submission (nothing is added to the history).
        """
        settings = (settings or self.default_settings()).clamped()
        stop = stop or threading.Event()
        if not (text or "").strip() and not files:
            raise InputError(either(["Type a message", *(r.hint[0] for r in READERS.values())]) + " first.")
        user = Turn("user", text=(text or "").strip())
        conversation.turns.append(user)
        try:
            user.text = self.guard.text(text)
            if not visible(user.text) and not files:
                raise InputError("The message has no visible text (only spaces, control or invisible characters).")
            for path in files or []:
                yield from self._read_attachment(user, path)
        except InteractiveFormatError as e:
            user.text = preview(user.text)
            user.error = str(e)
            yield "Input refused"
            return
        yield from self._answer(conversation, settings, stop, watched=watched)

    def rerun(
        self,
        conversation: Conversation,
        settings: TurnSettings | None = None,
        stop: threading.Event | None = None,
        watched: bool = False,
    ) -> Iterator[str]:
        """Answer the conversation's last turn, a user turn already in place (e.g. just edited)."""
        settings = (settings or self.default_settings()).clamped()
        user = conversation.turns[-1] if conversation.turns else None
        if user is None or user.role != "user":
            raise InputError("There is no message to answer.")
        try:
            user.text = self.guard.text(user.text)
            for a in user.attachments:  # an edited caption or transcript
                a.text = self.guard.text(a.text)
            if not user.text and not user.attachments:
                raise InputError("The message is empty.")
        except InteractiveFormatError as e:
            user.text = preview(user.text)
            user.error = str(e)
            yield "Input refused"
            return
        user.error = None
        yield from self._answer(conversation, settings, stop or threading.Event(), watched=watched)

    def regenerate(
        self,
        conversation: Conversation,
        settings: TurnSettings | None = None,
        stop: threading.Event | None = None,
        watched: bool = False,
    ) -> Iterator[str]:
        """Sample N more candidates for the last reply; the earlier ones stay as its siblings.

        A last reply that failed (model error, timeout) is answered again: the retry. The last
        reply may be followed by refused messages only. All candidates are ranked
        together; the best new one is shown (the old one stays shown when every new one is
        empty or sampling fails).
        """
        settings = (settings or self.default_settings()).clamped()
        index = len(conversation.turns) - 1
        while index >= 0 and conversation.turns[index].role == "user" and conversation.turns[index].error:
            index -= 1
        reply = conversation.turns[index] if index >= 0 else None
        if reply is None or reply.role != "assistant" or not (reply.candidates or reply.error):
            raise InputError("There is no reply to regenerate.")
        if reply.error:  # a failed reply (model error, timeout): retry it
            if index != len(conversation.turns) - 1:
                raise InputError("Only the last reply can be retried.")
            reply.error = None
        yield from self._answer(conversation, settings, stop or threading.Event(), index, watched)

    def _read_attachment(self, user: Turn, path: str) -> Iterator[str]:
        """Guard, then read one file into the user's turn with its kind's reader (readers.py). A refused file is
        named on the turn (meta "refused"), so the chat still shows what the user sent."""
        user.meta["refused"] = display_name(Path(path))
        kind = self.guard.file(path)
        reader = READERS[kind]
        if not self.config.flow.allows(kind):
            raise InputError(
                f"This chat ({self.config.flow.title}) does not take {reader.noun}; please type your message."
            )
        del user.meta["refused"]  # read from here on: its reader's refusal names it, its text shows it
        attachment = Attachment(kind, str(path))
        user.attachments.append(attachment)
        yield reader.status
        try:
            reading = reader.read(path, self)
        except ModelLoadError as e:  # the host's problem (a damaged file): the log says what, the user what now
            log.error("%s cannot be read: %s", reader.noun, e)  # names model files, never what the user sent
            raise InputError(
                f"This server cannot read {reader.noun} right now (its model failed to load); please type your message."
            ) from e
        attachment.text, attachment.meta = reading.text, reading.meta
        yield "Read " + kind

    def _answer(
        self,
        conversation: Conversation,
        settings: TurnSettings,
        stop: threading.Event,
        again: int | None = None,
        watched: bool = False,
    ) -> Iterator[str]:
        """Sample N candidates for the last user turn, stream the leader, rerank at the end.

        With `again` (the index of a reply) the new candidates are added to that reply instead.
        """
        reply = None if again is None else conversation.turns[again]
        kept, kept_chosen = (reply.candidates, reply.chosen) if reply is not None else ([], 0)
        before = conversation
        if again is not None:  # the prompt that reply answered
            before = Conversation(conversation.system_prompt, conversation.turns[:again])
        budget = self.config.generation.context_tokens - settings.max_new_tokens
        try:
            pictures = getattr(self.generator, "sees_pictures", False)  # a vision-language model gets the pictures
            messages, dropped = fit_to_budget(before.messages(pictures), self.generator.count_tokens, budget)
        except ValueError:
            conversation.turns[-1].error = "This message is too long for the model's context; please shorten it."
            yield "Input refused"
            return
        if reply is None:
            reply = Turn("assistant")
            conversation.turns.append(reply)
        reply.notice = None
        reply.meta.pop("cut_off", None)
        reply.meta.pop("streamed", None)
        if dropped:
            reply.notice = f"{dropped} oldest message(s) no longer fit the model's context and were left out."
        params = SamplingParams(
            n=settings.num_candidates,
            temperature=settings.temperature,
            top_p=self.config.generation.top_p,
            max_new_tokens=settings.max_new_tokens,
            timeout_s=self.config.generation.turn_timeout_s,
        )
        start = time.perf_counter()
        first_token_s, seed = None, params.seed
        draft = StreamedDraft(context_text(messages), len(kept))
        ends, pruner = self._pruning(messages, params)
        try:
            for sample in self.generator.stream(messages, params, stop, **({} if ends is None else {"ends": ends})):
                seed = sample.seed
                if pruner is not None and not sample.done:
                    pruner.watched = draft.index - len(kept) if watched and draft.index is not None else None
                    ends.end(pruner.decide(sample.drafts, ends.reasons()))
                why = {} if ends is None else ends.reasons()
                fresh = [
                    Candidate(d.text, d.mean_logprob, finished=d.finished, ended=why.get(i, ""))
                    for i, d in enumerate(sample.drafts)
                ]
                reply.candidates = kept + fresh
                if first_token_s is None and any(c.text for c in fresh):
                    first_token_s = time.perf_counter() - start
                if sample.done:
                    draft.record(reply, watched)
                    self._finish(reply, messages, settings, sample.seed, sample.stopped, len(kept))
                    break
                reply.chosen = draft.follow(reply.candidates)
                yield f"Sampling {params.n} candidates…" if params.n > 1 else "Sampling 1 candidate…"
        except ReplyTimeout as e:
            if any(c.text.strip() for c in reply.candidates[len(kept) :]):
                draft.record(reply, watched)
                self._cut_off(reply, messages, settings, seed, len(kept), params.timeout_s)
            else:
                self._failed(reply, str(e), kept, kept_chosen)
        except InteractiveFormatError as e:
            self._failed(reply, str(e), kept, kept_chosen)
        except Exception as e:  # a bug or a model crash: the user sees a message, the app keeps serving
            log_failure(log, "turn failed", e)
            message = f"Something went wrong while answering ({e.__class__.__name__}). Please try again."
            self._failed(reply, message, kept, kept_chosen)
        finally:
            stop.set()  # also ends a generation whose consumer went away
        reply.meta.update(
            ms=round((time.perf_counter() - start) * 1000), first_token_ms=round((first_token_s or 0) * 1000)
        )
        yield "Error" if reply.error else "Done"

    def _pruning(self, messages: list[dict], params: SamplingParams) -> tuple[RowEnds | None, Pruner | None]:
        """The rows this turn may end early and the policy that ends them (None, None: every candidate runs)."""
        if self.prune is None or params.n < 2 or not getattr(self.generator, "ends_rows", False):
            return None, None
        context = context_text(messages)
        return RowEnds(), Pruner(context, params.max_new_tokens, self.prune, reranker_scorer(self.reranker, context))

    @staticmethod
    def _failed(reply: Turn, message: str, kept: list[Candidate], kept_chosen: int) -> None:
        """A failed answer shows the error; a failed regeneration keeps the earlier replies."""
        reply.candidates, reply.chosen = kept, kept_chosen
        if kept:
            reply.notice = f"Regenerating failed: {message}"
        else:
            reply.error = message

    def _cut_off(
        self, reply: Turn, messages: list[dict], settings: TurnSettings, seed, first_new: int, limit: float
    ) -> None:
        """A reply that ran out of time keeps what it generated, ranked, marked as cut off (Retry offered)."""
        self._finish(reply, messages, settings, seed, False, first_new)
        reply.meta["cut_off"] = True
        note = f"The reply ran out of time ({limit:g} s) and was cut off; Retry samples new replies."
        reply.notice = ((reply.notice or "") + " " + note).strip()

    def _finish(
        self, reply: Turn, messages: list[dict], settings: TurnSettings, seed: int, stopped: bool, first_new: int = 0
    ) -> None:
        """Rank every candidate and show the best new one. A regeneration shows a new reply only when it differs
        from the earlier ones; a reply that replaces the draft streamed to the user says so (its notice)."""
        order = self.reranker.rank(context_text(messages), reply.candidates, settings.lam)
        order = survivors_first(order, [c.ended for c in reply.candidates])  # a candidate cut short is shown last
        order = _streamed_first(order, reply)
        earlier = {" ".join(c.text.split()) for c in reply.candidates[:first_new]}
        new = [i for i in order if i >= first_new and reply.candidates[i].text.strip()]
        different = [i for i in new if " ".join(reply.candidates[i].text.split()) not in earlier]
        if first_new == 0:
            reply.chosen = order[0]
        elif different:
            reply.chosen = different[0]
        elif new:  # every new candidate repeats an earlier reply: the shown one stays, and the user is told
            _add_notice(reply, "Every new candidate repeated an earlier reply; the shown reply is unchanged. "
                        "A higher temperature gives more varied replies.")  # fmt: skip
        reply.ranked = order
        reply.meta.update(seed=seed, model=self.generator.name)
        streamed = reply.meta.get("streamed")
        if isinstance(streamed, int) and streamed != reply.chosen and 0 <= streamed < len(reply.candidates):
            why = ", ".join(defects.LABELS.get(d, d) for d in reply.candidates[streamed].defects)
            why = why or f"ranked {order.index(streamed) + 1} of {len(order)}"
            _add_notice(reply, f"The streamed draft was replaced by the best-ranked reply (the draft: {why}); "
                        "it stays under All candidates.")  # fmt: skip
        if stopped:
            _add_notice(reply, "Stopped before the replies were complete.")
        elif not reply.reply.strip():
            reply.error = "The model returned only empty replies; please try again or rephrase."


def _streamed_first(order: list[int], reply: Turn) -> list[int]:
    """The reranker's order, with the draft the user watched being written first when no candidate has fewer
    defects: the shown reply changes under the reader's eyes only for a reason that matters (a defect the best
    lacks), not for a score difference (meta "kept_streamed" says it was kept)."""
    streamed = reply.meta.get("streamed")
    reply.meta.pop("kept_streamed", None)
    if not isinstance(streamed, int) or streamed not in order or not reply.candidates[streamed].text.strip():
        return order
    if streamed == order[0] or len(reply.candidates[streamed].defects) > len(reply.candidates[order[0]].defects):
        return order
    reply.meta["kept_streamed"] = True
    return [streamed] + [i for i in order if i != streamed]


def _add_notice(reply: Turn, sentence: str) -> None:
    reply.notice = ((reply.notice or "") + " " + sentence).strip()


class StreamedDraft:
    """Which candidate the user watches while N are sampled: the first to have text, then kept, so the text never
    jumps from one candidate to another; it is left only when its own words already show a defect (a loop, the
    wrong language) and another candidate has none, or when the pruning policy ended it (pruning.py), and the
    reply's notice then says so. At the end it stays shown unless another candidate has fewer defects
    (`_streamed_first`); if not, `_finish` says so."""

    CHECK_CHARS = 24  # look for defects again after this much more text (a check costs ~3 ms)

    def __init__(self, context: str, first: int = 0) -> None:
        self.context, self.first = context, first
        self.index: int | None = None
        self.dropped: list[str] = []  # why each draft left while it was written ("loop", "wrong language")
        self._checked = 0

    def follow(self, candidates: list[Candidate]) -> int:
        """The candidate to show now (its index in `candidates`; new ones start at `first`)."""
        with_text = [i for i in range(self.first, len(candidates)) if candidates[i].text and not candidates[i].ended]
        if self.index is None:
            if not with_text:
                return self.first
            self.index = with_text[0]
        if candidates[self.index].ended and with_text:  # ended while sampled (pruning.py): left at once, saying why
            self.dropped.append(candidates[self.index].ended)
            self.index = next((i for i in with_text if not self._flaw(candidates[i].text)), with_text[0])
            self._checked = len(candidates[self.index].text)
        text = candidates[self.index].text
        if len(text) - self._checked >= self.CHECK_CHARS and (why := self._flaw(text)):
            clean = next((i for i in with_text if not self._flaw(candidates[i].text)), None)
            if clean is not None:
                self.index = clean
                self.dropped.append(why)
            self._checked = len(candidates[self.index].text)
        return self.index

    def record(self, reply: Turn, watched: bool) -> None:
        """Note on the reply which candidate someone watched being streamed (meta "streamed"), for `_finish` and the
        candidates panel, and say why any draft shown before it was dropped."""
        if not watched or self.index is None:
            return
        reply.meta["streamed"] = self.index
        if self.dropped:
            why = ", ".join(dict.fromkeys(self.dropped))
            _add_notice(reply, f"A draft shown while the reply was written was dropped ({why}); it stays under "
                        "All candidates.")  # fmt: skip

    def _flaw(self, text: str) -> str:
        """A defect its words already show, whatever follows ("" for none): a loop, or the wrong language (a prefix
        that repeats the user's words may still go on to answer, so echoes are left to the ranking)."""
        self._checked = len(text)
        found = defects.loop(text) or defects.wrong_language(text, self.context)
        return defects.LABELS[found.name] if found else ""
