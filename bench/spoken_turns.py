"""Spoken replies while the reply streams, as the page plays them: time to the first audio and the silent gaps
(a piece not ready when the one before it finished playing), through ChatUI.respond and speak_live on the app's
engine (the 1.5B, N = 4, 128 tokens, seeded; the default Kokoro voice), the default llama.cpp threads against 1
thread, alternating per prompt. Both arms speak the same replies (the same tokens).

PYTHONPATH=. python bench/spoken_turns.py [OUT]   (default OUT: bench/results/spoken-turns-<date>.json; docs/performance.md)
"""
import datetime
import io
import json
import statistics
import sys
import threading
import time
import wave

from interactive_format.bench import turnbench
from interactive_format.store.store import Store
from interactive_format.web.callbacks import chat_ui


class Req:  # what Gradio passes: the session whose turn speak_live follows
    session_hash = "bench"


USER = "0123456789abcdef0123456789abcdef"
PROMPTS = ["我家的猫最近总是半夜叫，这是为什么？", "How can I sleep better when it's hot at night?",
           "周末在家可以做些什么放松？", "What should I pack for a two-day hiking trip?",
           "怎样才能早上不赖床？", "Why do onions make people cry?"]  # fmt: skip
specs = ["embedded:qwen2.5-coder-1.5b", "embedded:qwen2.5-coder-1.5b@threads=1"]
engines, _ = turnbench.engines_for(specs, [4])
res = {s: [] for s in specs}
for e in engines.values():
    e.speaker.load()
    e.speaker.warm_up()
for i, text in enumerate(PROMPTS):
    for spec in specs if i % 2 == 0 else specs[::-1]:
        engines[spec, 4].generator.seed = 100 + i
        ui = chat_ui(engines[spec, 4], Store(":memory:"))
        chat = ui.history.new()
        arrivals = []  # (when, seconds of audio) per WAV piece

        def listen():
            for c in ui.speak_live(chat, True, Req()):
                w = wave.open(io.BytesIO(c))
                arrivals.append((time.perf_counter(), w.getnframes() / w.getframerate()))

        th = threading.Thread(target=listen)
        th.start()
        t0 = time.perf_counter()
        list(ui.respond({"text": text, "files": []}, chat, 4, 0.7, 128, 0.5, USER, Req()))
        turn_s = time.perf_counter() - t0
        th.join(timeout=180)
        end, gaps = None, 0.0
        for at, dur in arrivals:  # played back to back, each as soon as it is there and the one before has ended
            if end is not None and at > end:
                gaps += at - end
            end = max(at, end or at) + dur
        row = {"prompt": i, "turn_s": round(turn_s, 2),
               "first_audio_s": round(arrivals[0][0] - t0, 2) if arrivals else None, "pieces": len(arrivals),
               "audio_s": round(sum(d for _, d in arrivals), 1), "gaps_s": round(gaps, 2),
               "reply_chars": len(chat.conversation.turns[-1].reply)}  # fmt: skip
        res[spec].append(row)
        print(spec[-10:], row, flush=True)
for s, rows in res.items():
    print(s, {k: statistics.median(r[k] for r in rows) for k in ("turn_s", "first_audio_s", "gaps_s")})
out = sys.argv[1] if len(sys.argv) > 1 else f"bench/results/spoken-turns-{datetime.date.today().isoformat()}.json"
json.dump(res, open(out, "w"), indent=1)
print(out)
