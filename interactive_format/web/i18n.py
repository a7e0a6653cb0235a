"""The UI's own words in English and Simplified Chinese, and every message the app shows, translated.

Two tables: `TEXTS` holds the page's fixed labels by key; `MESSAGES` holds every sentence the app writes at
run time (status lines, errors, notices, the candidates panel, spoken-reply notes) as an English template
and its Chinese one. The engine keeps writing English (the API and the store keep it), and `localize` turns
any such text into the UI's language where it is shown: a template's `{name}` parts match any text and are
localized in turn (a file name stays as it is). tests/web/test_i18n.py checks that every user-facing sentence
in the package has its Chinese here.

The UI's language: a flow's `language` ("en" / "zh"), or with "auto" the browser's (`navigator.language`,
as Gradio's own i18n reads it: Chinese for zh-*, English otherwise). With "auto" the fixed labels are
`gr.I18n` keys (the browser picks); every text the server renders uses the session's language.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from itertools import combinations
from typing import Any

from ..inputs.readers import READERS

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
    "lam_fitted": (
        "Inactive: replies are ranked by weights fitted on quality labels (λ applies when that ranking is off)",
        "未启用：回复按在质量标注上拟合的权重排序（关闭该排序后 λ 才生效）",
    ),
    "all_candidates": ("All candidates", "全部候选回复"),
    "message": ("Message", "消息"),
}

LOCALES = {"en": 0, "zh": 1, "zh-CN": 1}  # gr.I18n locale -> column of TEXTS
# Gradio's own status words that its Chinese lacks (a screen reader heard "common.complete" and "In queue: 1 of 2";
# the visible "queue: 1/2 |" and "processing |" are Gradio's fixed English, put in Chinese by assets/page.js).
GRADIO_ZH = {"common.complete": "已完成", "common.progress": "进度", "status.queue_position": "排队中：第 {position} 位，共 {size} 位"}


def translations() -> Any:
    """A gr.I18n with every key, for `launch(i18n=...)`."""
    import gradio as gr

    return gr.I18n(**{locale: {k: v[col] for k, v in TEXTS.items()} | (GRADIO_ZH if col else {})
                      for locale, col in LOCALES.items()})


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


# --- messages written at run time --------------------------------------------------------------

# English template -> Chinese template. "{name}" matches any text (shortest first) and is localized in turn.
MESSAGES: dict[str, str] = {
    # status lines
    "Ready": "就绪",
    "Done": "完成",
    "Error": "出错了",
    "Input refused": "输入未被接受",
    "Sampling {n} candidates…": "正在生成 {n} 条候选回复…",
    "Sampling 1 candidate…": "正在生成回复…",
    "Describing the picture…": "正在识别图片…",
    "Transcribing your voice…": "正在转写语音…",
    "Stopped.": "已停止。",
    # the chat's labels for what the app read from an attachment
    "Picture": "图片",
    "Picture {n}": "图片 {n}",
    "Voice message": "语音消息",
    "New chat": "新对话",
    "Picture tags": "图片标签",
    "Picture caption": "图片描述",
    "Picture tags and text": "图片标签和文字",
    "Picture caption and text": "图片描述和文字",
    "Picture {n} tags": "图片 {n} 的标签",
    "Picture {n} caption": "图片 {n} 的描述",
    "Picture {n} tags and text": "图片 {n} 的标签和文字",
    "Picture {n} caption and text": "图片 {n} 的描述和文字",
    # a picture's tags (media/vision.py ImageNetTagger): the ImageNet labels themselves stay in English
    "A photo that looks like: {labels}. Main colours: {colours}.": "看起来像：{labels}。主要颜色：{colours}。",
    "A picture with no object recognised clearly. Main colours: {colours}.": "图中没有能清楚识别的物体。主要颜色：{colours}。",
    "Text in the picture:": "图中的文字：",
    **{shade + hue: zh_shade + zh_hue + "色" for hue, zh_hue in {
        "red": "红", "orange": "橙", "yellow": "黄", "green": "绿", "cyan": "青", "blue": "蓝", "purple": "紫",
        "pink": "粉", "brown": "棕", "olive": "橄榄"}.items()
       for shade, zh_shade in (("", ""), ("dark ", "深"), ("light ", "浅"))},
    "white": "白色", "light grey": "浅灰色", "grey": "灰色", "dark grey": "深灰色", "black": "黑色",
    "Transcript (zh)": "语音转写（中文）",
    "Transcript (en)": "语音转写（英文）",
    "Transcript ({language})": "语音转写（{language}）",
    "{name} (refused)": "{name}（未接受）",
    # the candidates panel
    "{n} candidates, ranked": "{n} 条候选回复，已排序",
    # why a candidate was ended while sampled (pruning.py): the panel and the streamed draft's notice
    "pruned at {tokens} tokens: {why}": "写到第 {tokens} 个词元时剪除：{why}",
    "weaker start": "开头较弱",
    "stopped: {k} candidates had finished": "已停止：已有 {k} 条候选回复写完",
    "stopped: {k} candidate had finished": "已停止：已有 {k} 条候选回复写完",
    "{n} candidates, ranked ({same} identical)": "{n} 条候选回复，已排序（{same} 条相同）",
    "1 candidate": "1 条候选回复",
    "Candidate {k}/{n}": "候选 {k}/{n}",
    "shown": "当前显示",
    "not shown: *Use this reply* continues with it": "未显示：点击「使用这条回复」改用它",
    "streamed": "流式显示过",
    "score": "得分",
    "reply": "回复",
    "(empty)": "（空）",
    "same as {k}": "与 {k} 相同",
    "stopped early": "提前停止",
    "empty": "空回复",
    "loop": "重复",
    "wrong language": "语言不对",
    "cut off": "被截断",
    "echo": "照抄用户",
    "duplicate": "重复的候选",
    "{labels}, {label}": "{labels}、{label}",
    "You picked this reply (ranked {k} of {n}).": "这是你选中的回复（排第 {k}，共 {n} 条）。",
    "Shown: fewest defects; {versus}": "显示原因：缺陷最少；{versus}",
    "Shown: highest score; {versus}": "显示原因：得分最高；{versus}",
    "Shown: fewest defects; {versus}; {rest}": "显示原因：缺陷最少；{versus}；{rest}",
    "Shown: highest score; {versus}; {rest}": "显示原因：得分最高；{versus}；{rest}",
    "{a}; {b}": "{a}；{b}",
    "Shown: the reply you watched being written (no candidate has fewer defects)":
    "显示原因：这就是你看着写出来的回复（没有缺陷更少的候选）",
    "the engine's order": "引擎给出的顺序",
    "every candidate has a defect, this one: {labels}": "每条候选都有缺陷，这一条：{labels}",
    "{k} of {n} flagged ⚠": "{n} 条中 {k} 条有缺陷 ⚠",
    "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by λ·D + (1−λ)·J "
    "with λ = {lam}: D is the trained discriminator's P(human), J the model's mean token log-probability.":
    "缺陷（重复、语言不对、被截断、照抄）最少的回复排在前面，其次按 λ·D + (1−λ)·J 排序，λ = {lam}："
    "D 是训练好的判别器给出的“像人写的”概率，J 是模型的平均词元对数概率。",
    "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by likelihood only "
    "(J): no trained discriminator is installed yet.":
    "缺陷（重复、语言不对、被截断、照抄）最少的回复排在前面，其次只按模型的似然（J）排序：还没有安装训练好的判别器。",
    "Replies with the fewest defects (loops, wrong language, cut off, echoes) come first, then by a weighted sum of "
    "signals fitted on reply-quality labels ({weights}; each standardised over the turn's candidates).":
    "缺陷（重复、语言不对、被截断、照抄）最少的回复排在前面，其次按根据回复质量标注拟合的信号加权和排序"
    "（{weights}；每个信号都在本轮的候选中标准化）。",
    "Replies are ranked by a weighted sum of signals fitted on reply-quality labels ({weights}; each standardised "
    "over the turn's candidates).": "回复按根据回复质量标注拟合的信号加权和排序（{weights}；每个信号都在本轮的候选中标准化）。",
    "finished {w}": "写完 {w}",
    "brevity {w}": "简短 {w}",
    "consensus {w}": "与其他候选一致 {w}",
    "j {w}": "J {w}",
    "d {w}": "D {w}",
    "defects {w}": "缺陷 {w}",
    "verifier {w}": "另一模型的似然 {w}",
    "Models: chat {llm} · speech {asr} · pictures {pictures}": "模型：对话 {llm} · 语音 {asr} · 图片 {pictures}",
    "Models: chat {llm} · speech {asr} · pictures {pictures} + text {ocr}":
    "模型：对话 {llm} · 语音 {asr} · 图片 {pictures} + 文字 {ocr}",
    # notices on a reply
    "Stopped before the replies were complete.": "回复未写完就停止了。",
    "{n} oldest message(s) no longer fit the model's context and were left out.":
    "最早的 {n} 条消息超出了模型的上下文长度，已被略去。",
    "The reply ran out of time ({s} s) and was cut off; Retry samples new replies.":
    "回复超时（{s} 秒）被截断；点击「重试」会重新生成。",
    "Regenerating failed: {error}": "重新生成失败：{error}",
    "The streamed draft was replaced by the best-ranked reply (the draft: {why}); it stays under All candidates.":
    "流式显示的草稿已换成排名最高的回复（草稿：{why}）；草稿仍可在「全部候选回复」中查看。",
    "ranked {k} of {n}": "排第 {k}，共 {n} 条",
    "A draft shown while the reply was written was dropped ({why}); it stays under All candidates.":
    "生成过程中显示的一份草稿已被弃用（{why}）；它仍可在「全部候选回复」中查看。",
    "Every new candidate repeated an earlier reply; the shown reply is unchanged. A higher temperature gives more "
    "varied replies.": "新生成的候选都与之前的回复相同，显示的回复没有变。提高温度可以得到更多样的回复。",
    "The new reply repeats an earlier one; a higher temperature gives more varied replies.":
    "新回复与之前的回复相同；提高温度可以得到更多样的回复。",
    # errors of a turn
    "Type a message, attach a picture or record your voice first.": "请先输入消息、添加图片或录制语音。",
    "The message has no visible text (only spaces, control or invisible characters).":
    "消息里没有可见的文字（只有空格、控制字符或不可见字符）。",
    "There is no message to answer.": "没有需要回答的消息。",
    "The message is empty.": "消息是空的。",
    "There is no reply to regenerate.": "没有可以重新生成的回复。",
    "Only the last reply can be retried.": "只有最后一条回复可以重试。",
    "This chat ({title}) does not take {noun}; please type your message.": "这个对话（{title}）不接受{noun}，请输入文字。",
    "This server cannot read {noun} right now (its model failed to load); please type your message.":
    "服务器现在无法读取{noun}（它的模型没能加载），请输入文字。",
    "Cannot open the conversation database {path}: {error}": "无法打开对话数据库 {path}：{error}",
    "This message is too long for the model's context; please shorten it.": "这条消息超出了模型的上下文长度，请缩短。",
    "The model returned only empty replies; please try again or rephrase.": "模型只返回了空回复，请重试或换个说法。",
    "Something went wrong while answering ({error}). Please try again.": "回答时出了问题（{error}），请重试。",
    "The language model failed while answering ({error}). Please try again.": "语言模型回答时出错（{error}），请重试。",
    "The server ran out of GPU memory for this reply. Please try again, with fewer candidates or a shorter reply.":
    "服务器的显存不够生成这条回复。请减少候选数或缩短回复后重试。",
    "The reply took longer than {s} seconds and was stopped. Please try again (fewer candidates or a shorter reply "
    "are quicker).": "回复超过了 {s} 秒，已停止。请重试（减少候选数或缩短回复会更快）。",
    "The language model server failed while answering: {detail}": "语言模型服务器回答时出错：{detail}",
    "Could not reach {where}: is it running?": "无法连接 {where}：它在运行吗？",
    "No answer from {where} within {s} s.": "{where} 在 {s} 秒内没有回应。",
    "The connection to {where} broke off while answering ({error}).": "回答时与 {where} 的连接中断了（{error}）。",
    "The request to {where} failed ({error}).": "发往 {where} 的请求失败了（{error}）。",
    "{where} sent an answer that is not OpenAI-compatible streaming.": "{where} 返回的不是 OpenAI 兼容的流式回答。",
    "{where} refused the request: HTTP {status}: {detail}": "{where} 拒绝了请求：HTTP {status}：{detail}",
    "Your message is {chars} characters long; the limit is {limit}. Please shorten it or send it in parts.":
    "你的消息有 {chars} 个字符，上限是 {limit}。请缩短或分几次发送。",
    "You are sending messages too fast (the limit is {n} a minute). Please wait {s} seconds and try again.":
    "发送太快了（每分钟最多 {n} 条）。请等 {s} 秒后再试。",
    "The server is busy; please try again in a moment.": "服务器正忙，请稍后再试。",
    # files
    "The file '{name}' is not a supported picture or voice format (accepted: {types}).":
    "文件“{name}”不是支持的图片或语音格式（支持：{types}）。",
    "The {noun} '{name}' could not be found or read; please upload it again.": "找不到或无法读取{noun}“{name}”，请重新上传。",
    "The {noun} '{name}' is not a file.": "{noun}“{name}”不是文件。",
    "The {noun} '{name}' is empty (0 bytes).": "{noun}“{name}”是空的（0 字节）。",
    "The {noun} '{name}' is too big ({size} MB; the limit is {limit} MB).": "{noun}“{name}”太大（{size} MB，上限 {limit} MB）。",
    "file": "文件",
    "picture": "图片",
    "audio file": "音频文件",
    "pictures": "图片",
    "voice messages": "语音消息",
    "image": "图片",
    "audio": "语音",
    "picture or voice": "图片或语音",
    "The file '{name}' is not a supported {formats} format (accepted: {types}).": "文件“{name}”不是支持的{formats}格式（支持：{types}）。",
    "Read {kind}": "已读取{kind}",
    "The picture '{name}' is too large ({size}; the limit is {limit} megapixels).": "图片“{name}”太大（{size}，上限 {limit} 百万像素）。",
    "The picture '{name}' is too large: it declares more pixels than can be decoded safely.":
    "图片“{name}”太大：它声明的像素数超出了可以安全解码的范围。",
    "The picture '{name}' is damaged or is not a picture file; it could not be opened.":
    "图片“{name}”已损坏或不是图片文件，无法打开。",
    "The picture '{name}' is a {format} picture, a format not accepted here (accepted: {types}).":
    "图片“{name}”是 {format} 格式，这里不接受这种格式（支持：{types}）。",
    "The picture '{name}' has no pixels.": "图片“{name}”没有像素。",
    "The picture '{name}' is damaged or incomplete and could not be decoded ({error}).":
    "图片“{name}”已损坏或不完整，无法解码（{error}）。",
    "The recording is {length}; the limit is {limit} seconds. Please send a shorter clip.":
    "录音时长 {length}，上限是 {limit} 秒。请发送更短的录音。",
    "'{name}' could not be read as audio. Please send a WAV, FLAC, OGG, MP3, WebM or M4A recording.":
    "无法把“{name}”当作音频读取。请发送 WAV、FLAC、OGG、MP3、WebM 或 M4A 录音。",
    "'{name}' could not be read as WAV, FLAC, OGG or MP3 audio; other formats (such as WebM or M4A) need ffmpeg, "
    "which is not installed on the server.": "无法把“{name}”当作 WAV、FLAC、OGG 或 MP3 音频读取；其他格式（如 WebM、M4A）"
    "需要 ffmpeg，而服务器上没有安装。",
    "The audio file '{name}' is damaged and could not be decoded.": "音频文件“{name}”已损坏，无法解码。",
    "Decoding '{name}' took too long; please send a shorter or simpler recording.": "解码“{name}”用时太长，请发送更短或更简单的录音。",
    "No speech was heard in the recording: it is empty or silent. Please check the microphone and try again.":
    "录音里没有听到说话声：录音是空的或没有声音。请检查麦克风后重试。",
    "No speech was recognised in the recording. Please speak clearly and try again.": "没有从录音中识别出语音。请说清楚一些后重试。",
    "Nothing was recorded; speak again.": "没有录到声音，请再说一次。",
    "The recording is too big (the limit is {n} MB).": "录音太大（上限 {n} MB）。",
    "The recording could not be read (it is not base64 audio).": "无法读取录音（不是 base64 音频）。",
    "The recording could not be read (it is not a WAV file).": "无法读取录音（不是 WAV 文件）。",
    # conversations, edits, exports
    "Unknown user: reload the page (API callers: user_id is 32 hex digits, e.g. uuid4().hex).":
    "无法识别的用户：请刷新页面（API 调用方：user_id 是 32 位十六进制数字，例如 uuid4().hex）。",
    "No such conversation.": "没有这个对话。",
    "Send a message first; an empty chat is not saved.": "请先发送一条消息；空对话不会被保存。",
    "That message is not saved yet; wait until the reply has finished.": "这条消息还没有保存，请等回复完成。",
    "That message is no longer there; please reload the conversation.": "这条消息已经不在了，请重新打开对话。",
    "Only your messages, picture captions and transcripts can be edited.": "只能编辑你自己的消息、图片描述和语音转写。",
    "An edited message cannot be empty.": "编辑后的消息不能为空。",
    "Only your own messages can be edited.": "只能编辑你自己的消息。",
    "That picture or voice clip is no longer there; please reload the conversation.": "这张图片或这段语音已经不在了，请重新打开对话。",
    "A title cannot be empty.": "标题不能为空。",
    "That reply is no longer there; please reload the conversation.": "这条回复已经不在了，请重新打开对话。",
    "Choose a conversation export (.json) to import.": "请选择要导入的对话导出文件（.json）。",
    "Imported {n} conversation(s).": "已导入 {n} 个对话。",
    "Cannot import this file: it is not a conversation export (expected a JSON object).":
    "无法导入这个文件：它不是对话导出文件（应为 JSON 对象）。",
    "The file is not valid JSON; please choose a conversation export from this app.": "这个文件不是有效的 JSON，请选择本应用导出的对话文件。",
    "Cannot import this file: {where} {problem}.": "无法导入这个文件：{where} {problem}。",
    "is missing": "缺失",
    "must be {kind}": "必须是{kind}",
    "must be {kind} or null": "必须是{kind}或 null",
    "a string": "字符串",
    "an integer": "整数",
    "a number": "数字",
    "true or false": "true 或 false",
    "a list": "列表",
    "a list of strings": "字符串列表",
    "an object": "对象",
    "must be an object": "必须是对象",
    "must be {value} (is this a conversation export from this app?)": "必须是 {value}（这是本应用导出的对话文件吗？）",
    "is too long (over {n} characters)": "太长（超过 {n} 个字符）",
    "is used by an earlier turn": "已被前面的一轮对话使用",
    "must be the id of one of the turns": "必须是某一轮对话的 id",
    "must be the id of an earlier turn": "必须是前面某一轮对话的 id",
    "must be 'user' or 'assistant'": "必须是 'user' 或 'assistant'",
    "has more than {n} replies": "有超过 {n} 条回复",
    "must be the index of one of the candidates": "必须是某条候选回复的序号",
    "must be a list of candidate indices": "必须是候选回复序号的列表",
    "is out of range": "超出范围",
    "'image' or 'audio'": "'image' 或 'audio'",
    "The file is too large ({size} MB); the limit is {limit} MB.": "文件太大（{size} MB），上限是 {limit} MB。",
    "Say which candidate to pick: its index in the reply's candidates.": "请指明要选哪条候选回复：它在候选列表中的序号。",
    "This conversation has no reply to pick from.": "这个对话里没有可以选择的回复。",
    # spoken replies
    "Not spoken: {why}": "未朗读：{why}",
    "Not spoken: the voice cannot say “{text}” (a script it does not know).": "未朗读：语音无法读出“{text}”（不认识的文字）。",
    "Not spoken: speech synthesis failed ({error}).": "未朗读：语音合成失败（{error}）。",
    "Not spoken: the voice had nothing to say for “{text}”.": "未朗读：“{text}”没有可读的内容。",
    "Only the first {n} characters of this reply are spoken.": "这条回复只朗读前 {n} 个字符。",
    "Nothing in this reply could be spoken.": "这条回复里没有可以朗读的内容。",
    "Spoken replies are off on this server.": "这个服务器关闭了语音回复。",
    "Spoken replies are off: {why}": "语音回复已关闭：{why}",
    "Spoken replies need ffmpeg, which was not found on this server (install the imageio-ffmpeg package, or "
    "ffmpeg itself).": "语音回复需要 ffmpeg，但服务器上找不到它（请安装 imageio-ffmpeg 包或 ffmpeg 本身）。",
    "Talk mode is off.": "对话模式已关闭。",
    "Talk mode needs spoken replies, which are off on this server.": "对话模式需要语音回复，而这个服务器关闭了语音回复。",
}

_NAME = re.compile(r"\{(\w+)\}")
_SENTENCE = re.compile(r"(?<=[.!?…])\s+(?=[A-Z\d'“(])")


@lru_cache(maxsize=1)
def _patterns() -> tuple[dict[str, str], list[tuple[re.Pattern, str]]]:
    """Exact templates, and the others as regular expressions, most literal text first."""
    exact = {en: zh for en, zh in MESSAGES.items() if not _NAME.search(en)}
    found = []
    for en, zh in MESSAGES.items():
        if _NAME.search(en):
            parts = _NAME.split(en)  # literal, name, literal, name, ...
            regex = "".join(re.escape(p) if k % 2 == 0 else f"(?P<{p}>.+?)" for k, p in enumerate(parts))
            found.append((len("".join(parts[::2])), re.compile(regex + r"\Z", re.DOTALL), zh))
    found.sort(key=lambda item: -item[0])
    return exact, [(pattern, zh) for _, pattern, zh in found]


def localize(text: str | None, language: str) -> str:
    """`text` (a status line, error, notice or label the app wrote in English) in `language` ("en": unchanged).

    A text no template matches is tried sentence by sentence, and otherwise shown as it is."""
    if not text or language != "zh":
        return text or ""
    found = _translate(text)
    if found is not None:
        return found
    sentences = _SENTENCE.split(text)
    if len(sentences) > 1:
        return "".join(localize(s, language) for s in sentences)
    return _translate(text, False) or text


def _translate(text: str, within: bool = True) -> str | None:
    """The Chinese of one text by the templates; `within`: a part may not hold a sentence break (those texts are
    translated sentence by sentence first), unless nothing else matches."""
    exact, patterns = _patterns()
    if text in exact:
        return exact[text]
    for pattern, zh in patterns:
        m = pattern.match(text)
        if m and not (within and any(_SENTENCE.search(v) for v in m.groupdict().values())):
            return zh.format(**{k: _translate(v, False) or _listed(v) or v for k, v in m.groupdict().items()})
    return None


def _listed(text: str) -> str | None:
    """A list ("finished +0.24, brevity +0.19") whose every item has a template, joined the Chinese way."""
    items = text.split(", ")
    found = [_translate(item, False) for item in items] if len(items) > 1 else [None]
    return "，".join(found) if all(found) else None


def ui_language(flow_language: str, browser: str | None) -> str:
    """The session's language, "en" or "zh": the flow's, or with "auto" the browser's (zh-* is Chinese)."""
    if flow_language in ("en", "zh"):
        return flow_language
    return "zh" if (browser or "").lower().startswith("zh") else "en"


def tr(key: str, language: str) -> str:
    """A fixed label (a key of TEXTS) in `language`, "en" or "zh"."""
    return TEXTS[key][LOCALES.get(language, 0)]
