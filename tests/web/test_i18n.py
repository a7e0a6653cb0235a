"""Every sentence the app shows a user has its Chinese: a Chinese page shows no English (names and units aside).

The sentences are found in the package's source itself (what it raises as a user-facing error, yields as a status,
writes as a notice, says of a skipped spoken sentence, …), so a new message without a translation fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import interactive_format
from interactive_format.dialogue import Conversation
from interactive_format.web.i18n import MESSAGES, TEXTS, localize, ui_language

PACKAGE = Path(interactive_format.__file__).parent
# Calls whose first string argument reaches the user as it is (errors are shown at the UI boundary).
SHOWN = {"InputError", "GenerationError", "ReplyTimeout", "InteractiveFormatError", "NotFound", "skipped", "warn"}
PREFIXED = {  # calls that add a fixed start (or end) to their argument
    "_refuse": ("The picture '«1»' ", ""),  # vision.py
    "_bad": ("Cannot import this file: «1» ", "."),  # transfer.py
    "_add_notice": ("", ""),  # chat.py
}
# Words a Chinese page may show in Latin letters: formats, units, protocol and program names, JSON keys.
ALLOWED = set(
    "MB WAV FLAC OGG MP WebM HTTP ffmpeg imageio JSON OpenAI json base uuid hex API GPU id user assistant null true "
    "false image audio imageio-ffmpeg JSONL".split()
)
PLACEHOLDER = re.compile(r"«\d+»")


def variants(node: ast.AST) -> list[str]:
    """The texts a string expression can make, with each computed part as a placeholder «k»."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.JoinedStr):
        out, k = [""], 0
        for part in node.values:
            if isinstance(part, ast.Constant):
                out = [o + part.value for o in out]
            else:
                k += 1
                out = [o + f"«{k}»" for o in out]
        return out
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return [a + b for a in variants(node.left) for b in variants(node.right)]
    if isinstance(node, ast.IfExp):
        return variants(node.body) + variants(node.orelse)
    return ["«0»"]  # a value computed elsewhere (a variable): checked where it is made


def shown_texts() -> list[tuple[str, str]]:
    """(where, text) for every sentence in the package that is shown to a user."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):  # every subpackage too
        tree = ast.parse(path.read_text(encoding="utf-8"))
        framing = {id(n) for f in ast.walk(tree) if isinstance(f, ast.FunctionDef) and f.name in PREFIXED
                   for n in ast.walk(f)}  # fmt: skip  (what a prefixing function adds is checked at its callers)
        for node in ast.walk(tree):
            if id(node) in framing:
                continue
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Call) and node.args:
                name = ast.unparse(node.func).split(".")[-1]
                if name in SHOWN:
                    found += [(where, t) for t in variants(node.args[0])]
                elif name in PREFIXED:
                    start, end = PREFIXED[name]
                    found += [(where, start + t + end) for t in variants(node.args[-1])]
            elif path.name == "chat.py" and isinstance(node, ast.Yield) and node.value is not None:
                found += [(where, t) for t in variants(node.value)]  # the status lines
            elif isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Attribute) and t.attr in ("error", "notice") for t in node.targets
            ):
                found += [(where, t) for t in variants(node.value)]
    return [(where, t) for where, t in found if t.strip("«»0123456789 ") and any(c.isalpha() for c in t)]


def english_left(text: str) -> list[str]:
    """The Latin words of `text` that are not placeholders, names or units (file names in quotes, suffixes)."""
    text = re.sub(r"“[^”]*”|\.[a-z0-9]+\b", " ", PLACEHOLDER.sub(" ", text))
    words = re.findall(r"[A-Za-z][A-Za-z-]+", text)
    return [w for w in words if w not in ALLOWED]


def test_the_scan_finds_the_messages_it_should():
    texts = [t for _, t in shown_texts()]
    assert len(texts) > 60
    assert "No speech was recognised in the recording. Please speak clearly and try again." in texts
    assert "Sampling «1» candidates…" in texts and "Sampling 1 candidate…" in texts and "Stopped before the replies were complete." in texts


@pytest.mark.parametrize("where, text", [(w, t) for w, t in shown_texts() if "«0»" not in t])
def test_every_shown_sentence_has_its_chinese(where, text):
    zh = localize(text, "zh")
    assert not english_left(zh), f"{where}: no Chinese for {text!r} (got {zh!r})"


def test_every_template_says_in_chinese_what_it_says_in_english():
    for en, zh in MESSAGES.items():
        assert sorted(re.findall(r"\{(\w+)\}", en)) == sorted(re.findall(r"\{(\w+)\}", zh)), en
        assert not english_left(re.sub(r"\{\w+\}", " ", zh)), (en, zh)
    for key, (en, zh) in TEXTS.items():
        assert not english_left(zh), key


def test_reader_labels_statuses_and_the_panel_words_are_translated():
    from interactive_format.inputs.readers import READERS

    for reader in READERS.values():
        for text in (reader.status, reader.title, reader.label(reader.meta_type(), None), reader.label(reader.meta_type(), 2)):
            assert not english_left(localize(text, "zh")), text
    assert localize("Transcript (zh)", "zh") == "语音转写（中文）"
    assert localize("Picture 2 tags and text", "zh") == "图片 2 的标签和文字"


def test_sentences_made_of_parts_are_translated_whole():
    """What the scan cannot see whole (a part made elsewhere, «0» there): the sentences as the app makes them."""
    from interactive_format.engine.chat import ChatEngine
    from interactive_format.config import AppConfig, Limits
    from interactive_format.ranking.ranking import Reranker
    from interactive_format.errors import InputError
    from interactive_format.engine.guard import InputGuard

    with pytest.raises(InputError) as empty:
        list(ChatEngine(AppConfig(), None, None, None, Reranker(None)).respond(Conversation(""), "  "))
    with pytest.raises(InputError) as unknown:
        InputGuard(Limits()).file(Path(__file__))
    for error in (empty.value, unknown.value):
        assert not english_left(localize(str(error), "zh")), str(error)
    assert localize("Read image", "zh") == "已读取图片"


def test_every_ranking_note_is_translated():
    from interactive_format.ranking.ranking import Reranker, load_ranking
    from ..fakes import FixedD

    notes = [Reranker(None).note, Reranker(FixedD({}), lam=0.5).note]
    notes += [Reranker(FixedD({}), ranking=load_ranking()).note]  # the shipped, fitted weights
    for note in notes:
        zh = localize(note, "zh")
        assert not english_left(zh.replace("λ·D + (1−λ)·J", "")), (note, zh)


def test_the_lambda_slider_says_truly_why_it_is_inactive():
    """With a D and the fitted ranking (the default app), λ is inactive because the weights are fitted, not because
    there is no D (the page said "no trained discriminator yet" beside D's own column)."""
    from interactive_format.ranking.ranking import Reranker, load_ranking
    from interactive_format.web.ui import lam_inactive

    from ..fakes import FixedD

    assert lam_inactive(Reranker(FixedD({}), ranking=load_ranking())) == "lam_fitted"
    assert lam_inactive(Reranker(None)) == "no_discriminator"
    assert lam_inactive(Reranker(FixedD({}), lam=0.5)) is None  # the seed's λ·D + (1−λ)·J: the slider works
    assert "fitted" in TEXTS["lam_fitted"][0] and not english_left(TEXTS["lam_fitted"][1])


def test_parts_are_translated_in_turn_and_names_stay():
    assert localize("The audio file 'clip.wav' is damaged and could not be decoded.", "zh") == (
        "音频文件“clip.wav”已损坏，无法解码。"
    )
    two = "Stopped before the replies were complete. 2 oldest message(s) no longer fit the model's context and were left out."
    assert localize(two, "zh") == "回复未写完就停止了。最早的 2 条消息超出了模型的上下文长度，已被略去。"
    assert localize("Something only a user wrote.", "zh") == "Something only a user wrote."  # unknown: as it is
    assert localize("Ready", "en") == "Ready"


def test_the_language_of_a_session():
    assert ui_language("auto", "zh-CN") == "zh" and ui_language("auto", "zh-TW") == "zh"
    assert ui_language("auto", "en-US") == "en" and ui_language("auto", None) == "en"
    assert ui_language("zh", "en-US") == "zh" and ui_language("en", "zh-CN") == "en"


def test_why_a_candidate_was_ended_reads_in_chinese():
    """The pruning policy's reasons (panel, candidate bar, the streamed draft's notice) are in the page's language."""
    from interactive_format.engine.pruning import PRUNED, WEAKER, stopped

    for reason in (PRUNED.format(tokens=24, why="loop"), PRUNED.format(tokens=8, why=WEAKER), stopped(1), stopped(2)):
        zh = localize(reason, "zh")
        assert not re.search(r"[A-Za-z]", zh), (reason, zh)
    assert localize(stopped(2), "zh") == "已停止：已有 2 条候选回复写完"


def test_a_pictures_tags_read_in_chinese_and_the_text_read_from_it_stays_as_it_is():
    """On a Chinese page the tagger's frame and colours are Chinese (the ImageNet labels stay English); the lines
    read from the picture are the picture's own, and the model still reads the English the tagger wrote."""
    from interactive_format.dialogue import Attachment, Turn
    from interactive_format.web.rendering import edit_target, escape, render

    tags = "A photo that looks like: espresso (95%), cup (3%). Main colours: dark brown, light grey, red."
    read = "Text in the picture:\nReady\nOpen 9:00-21:00"  # "Ready" is also a status line: it must stay
    unclear = "A picture with no object recognised clearly. Main colours: white."
    plain = Attachment("image", "", unclear, {"kind": "tags"})
    sign = Attachment("image", "", f"{tags} {read}", {"kind": "tags", "text_lines": 2})
    said = Attachment("audio", "", "Main colours: red.", {"language": "en"})  # a transcript: the user's words
    conversation = Conversation("")
    conversation.turns.append(Turn("user", "what is it?", [plain, sign, said]))
    shown = [m["content"] for m, _ in render(conversation, "zh")]
    assert "图中没有能清楚识别的物体。主要颜色：白色。" in shown[0]
    assert shown[1].startswith("*图片 2 的标签和文字：* ")
    assert shown[1].endswith("看起来像：espresso (95%)、cup (3%)。主要颜色：深棕色、浅灰色、红色。 图中的文字：\nReady\nOpen 9:00-21:00")
    assert shown[2].endswith("Main colours: red.")
    assert [m["content"] for m, _ in render(conversation, "en")][1].endswith(escape(f"{tags} {read}"))
    _, _, texts = edit_target(conversation, 1, shown[1], "zh")  # saved unchanged: the English tags are kept
    assert texts == {1: sign.text}
    _, _, texts = edit_target(conversation, 1, shown[1].replace("espresso", "拿铁"), "zh")  # changed: as written
    assert "拿铁" in texts[1]
