"""The UI's own words in English and Simplified Chinese.

With a flow's `language = "auto"` the labels are `gr.I18n` keys and the browser picks the language
(Chinese for zh / zh-CN browsers, English otherwise); with "en" or "zh" they are plain strings in
that language. Only the fixed labels are translated: status lines, scores and error messages come
from the engine in English, and a flow's own texts (title, welcome, examples) are as written.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

from .readers import READERS

# key: (English, Simplified Chinese)
TEXTS: dict[str, tuple[str, str]] = {
    "conversations": ("Conversations", "对话"),
    "new_chat": ("New chat", "新对话"),
    "your_conversations": ("Your conversations", "你的对话"),
    "this_conversation": ("This conversation", "当前对话"),
    "title": ("Title", "标题"),
    "rename": ("Rename", "重命名"),
    "delete": ("Delete", "删除"),
    "export_import": ("Export / import", "导出 / 导入"),
    "export_chat": ("Export this chat (JSON)", "导出当前对话 (JSON)"),
    "export_all": ("Export all my chats (JSON)", "导出我的全部对话 (JSON)"),
    "export_pairs": ("My picks as preference pairs (JSONL)", "我的选择：偏好对 (JSONL)"),
    "download": ("Download", "下载"),
    "import_chats": ("Import chats (JSON)", "导入对话 (JSON)"),
    "flow": ("Flow", "场景"),
    "conversation": ("Conversation", "对话内容"),
    "use_reply": ("Use this reply", "使用这条回复"),
    "regenerate": ("Regenerate", "重新生成"),
    "edited_message": ("Edited message", "已编辑的消息"),
    "older_version": ("‹ version", "‹ 上一版"),
    "newer_version": ("version ›", "下一版 ›"),
    "examples": ("Examples", "示例"),
    "stop": ("Stop", "停止"),
    "speak_replies": ("🔊 Speak replies", "🔊 朗读回复"),
    "spoken_reply": ("Spoken reply", "语音回复"),
    "talk_mode": ("🎙 Talk mode", "🎙 对话模式"),
    "retry": ("Retry", "重试"),
    "settings": ("Settings", "设置"),
    "candidates": ("Candidates per reply", "每次回复的候选数"),
    "temperature": ("Temperature", "温度"),
    "max_tokens": ("Max new tokens", "最大生成长度"),
    "lam": ("λ (discriminator weight)", "λ（判别器权重）"),
    "no_discriminator": ("Inactive: no trained discriminator yet", "未启用：还没有训练好的判别器"),
}

LOCALES = {"en": 0, "zh": 1, "zh-CN": 1}  # gr.I18n locale -> column of TEXTS


def translations() -> Any:
    """A gr.I18n with every key, for `launch(i18n=...)`."""
    import gradio as gr

    return gr.I18n(**{locale: {k: v[col] for k, v in TEXTS.items()} for locale, col in LOCALES.items()})


def labels(language: str) -> Callable[[str], Any]:
    """key -> the label for a UI in `language`: "en"/"zh" strings, or gr.I18n keys for "auto"."""
    if language == "auto":
        i18n = translations()
        return lambda key: i18n(key) if key in TEXTS else key
    col = LOCALES[language]
    return lambda key: TEXTS[key][col] if key in TEXTS else key


def placeholder_key(modalities: tuple[str, ...]) -> str:
    """Which input-box hint fits the flow's modalities: "placeholder_text", "placeholder_image", …, "placeholder_all"."""
    allowed = [r.modality for r in READERS.values() if r.modality in modalities]
    if not allowed:
        return "placeholder_text"
    return "placeholder_all" if len(allowed) == len(READERS) > 1 else "placeholder_" + "_".join(allowed)


def _placeholders() -> dict[str, tuple[str, str]]:
    """The input box's hint for every set of registered kinds, from each reader's `hint`."""
    out = {}
    readers = list(READERS.values())
    for size in range(len(readers) + 1):
        for chosen in combinations(readers, size):
            en = ["Type a message", *(r.hint[0] for r in chosen)]
            zh = ["输入消息", *(r.hint[1] for r in chosen)]
            if len(en) > 2:
                en = [", ".join(en[:-1]) + ",", en[-1]]
            key = placeholder_key(tuple(r.modality for r in chosen))
            out[key] = (" or ".join(en) + "…", "或".join(["、".join(zh[:-1]), zh[-1]] if len(zh) > 1 else zh) + "…")
    return out


TEXTS.update(_placeholders())
