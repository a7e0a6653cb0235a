"""python -m interactive_format.bench — speed measured side by side in one run, written as JSON.

`all` (the default) runs every part below in one process and writes one JSON file under
bench/results/ named after the device, the model and the date:

- `llm`: our generator (TransformersGenerator: shared prefill, static cache + compiled decode
  on CUDA, request batching) against plain eager `model.generate` on the same weights: time to
  first token for a long prompt, single-stream decode tokens/s, the latency of N = 1/4/8
  candidates (ratio to N = 1), and 16 users at once (aggregate and per-user tokens/s).
  `--arch NAME --random-weights` builds a published architecture with random weights instead.
- `speech`: our Whisper path (Transcriber) against plain `whisper.transcribe`, real-time factor.
- `vision`: picture description latency.
- `turns`: median latency of text, picture and voice turns through the running app's `chat`
  API (gradio_client, loopback), N candidates each, on the configured (default: embedded) models.
- `models` (not in `all`): whole text turns through the app's ChatEngine on two or more chat models side by
  side, interleaved by prompt, at N = 1, 2, 4; with --first-start also the app's first start and each model's
  install size (turnbench.py).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from ..settings.load import load_config
from .enginebench import bench_engines, bench_turn, engine_lines, ratios
from ..errors import DEV_LOCK, missing_package
from .llmbench import LLMBench, bench_llm, cpus, llm_pair, prompt_of, side_by_side
from .mediabench import bench_speech, bench_turns, bench_vision
from .turnbench import bench_models, short


def device_tag(device: str) -> str:
    """'cpu2' (cores) or the GPU's name in lower case ('nvidia-h200'), for file names."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device)).lower().replace(" ", "-")
    return f"cpu{cpus()}"


def machine() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor(), "cpus": cpus()}
    info.update(torch=torch.__version__, torch_threads=torch.get_num_threads(), load_average=os.getloadavg())
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def run_parts(args: argparse.Namespace) -> dict:
    """Run the chosen parts in this process; the result as one JSON-ready dict."""
    from ..models.device import resolve_device

    config = load_config()
    cache_dir = config.models.cache_dir
    device = resolve_device(args.device)
    parts = ("llm", "speech", "vision", "turns") if args.part == "all" else (args.part,)
    result: dict = {"command": "python -m interactive_format.bench " + " ".join(args.argv), "machine": machine()}
    result["date"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    if "llm" in parts:
        generator, baseline, about = llm_pair(args, cache_dir)
        result["llm"] = {**about, "sizes": asdict(bench := LLMBench.for_device(device, args.quick))}
        result["llm"].update(bench_llm(generator, baseline, bench))
        if args.engines and not args.random_weights and device == "cpu":
            long, short = prompt_of(generator, bench.prompt_tokens), prompt_of(generator, 32)
            result["llm"]["engines"] = bench_engines(args.llm, cache_dir, bench, args.threads, long, short)
            result["llm"]["ratios"] = ratios(result["llm"])
        if args.turn_llm and device == "cpu":  # the first spec is "turn"; the others, side by side, "turn_compare"
            turns = [bench_turn(s.strip(), cache_dir, args.threads) for s in args.turn_llm.split(",")]
            result["llm"]["turn"] = turns[0]
            if turns[1:]:
                result["llm"]["turn_compare"] = turns[1:]
        del generator, baseline
    if "speech" in parts:
        result["speech"] = bench_speech(args.asr or config.models.asr, cache_dir, device, args.repeats)
    if "vision" in parts:
        result["vision"] = bench_vision(config.models.captioner, cache_dir, device, args.repeats)
    if "turns" in parts:
        result["turns"] = bench_turns(args.candidates, args.max_new_tokens, args.repeats)
    if "models" in parts:
        result["models"] = bench_models(args.models.split(","), [int(n) for n in args.ns.split(",")], args.first_start)
    return result


def summary(result: dict) -> list[str]:
    """Lines 'metric  ours  baseline  speedup' for the printed table."""
    rows = []
    llm = result.get("llm")
    if llm:
        for name, key, better in (
            ("time to first token, s (N=1)", "time_to_first_token", False),
            ("time to first token, s (N=4)", "time_to_first_token_n4", False),
        ):
            rows.append((name, side_by_side(llm[key]["ours"], llm[key]["baseline"], "first_token_s", better)))
        d = llm["decode_single_stream"]
        rows.append(("decode tokens/s, 1 stream", side_by_side(d["ours"], d["baseline"], "decode_tokens_per_s", True)))
        one = llm["candidates"][min(llm["candidates"], key=int)]
        for n, c in llm["candidates"].items():
            rows.append((f"N={n} latency, s", side_by_side(c["ours"], c["baseline"], "total_s", False)))
            ratio = {side: round(c[side]["total_s"] / one[side]["total_s"], 2) for side in ("ours", "baseline")}
            rows.append((f"N={n} latency / N=1", {**ratio, "speedup": None}))
        u = llm["concurrent_users"]
        for key, name in (("aggregate_tokens_per_s", "aggregate"), ("per_user_tokens_per_s_min", "slowest user")):
            row = side_by_side(u["ours"], u["baseline_sequential"], key, True)
            rows.append((f"{u['users']} users, {name} tokens/s", row))
    if "speech" in result:
        sp = result["speech"]
        rows.append(("speech, × real time", side_by_side(sp["ours"], sp["baseline"], "x_real_time", True)))
    lines = [f"{'metric':<34} {'ours':>10} {'baseline':>10} {'speedup':>8}"]
    for name, row in rows:
        lines.append(f"{name:<34} {row['ours']!s:>10} {row['baseline']!s:>10} {row['speedup'] or '':>8}")
    if llm:
        lines += engine_lines(llm)
    if "vision" in result:
        lines.append(f"{'picture description, s':<34} {result['vision']['seconds_median']!s:>10}")
    if "turns" in result:
        lines.append(f"{'turn latency via the app, s':<34} {json.dumps(result['turns']['median_s'])}")
        first = result["turns"]["median_first_token_after_submit_s"]
        lines.append(f"{'first token after submit, s':<34} {json.dumps(first)}")
    if "models" in result:
        lines += model_lines(result["models"])
    return lines


def model_lines(models: dict) -> list[str]:
    """The `models` part's rows: per model and N the median / max turn and first token, tokens per turn."""
    lines = [f"{'model, N':<34} {'turn s':>13} {'first s':>13} {'tokens':>7}"]
    for spec, per_n in models["stats"].items():
        for n, st in per_n.items():
            turn, first = (
                f"{st['turn_s_median']} / {st['turn_s_max']}",
                f"{st['first_token_s_median']} / {st['first_token_s_max']}",
            )
            lines.append(f"{short(spec) + ', N=' + n:<34} {turn:>13} {first:>13} {st['tokens_per_turn_median']!s:>7}")
    return lines + [f"{name}: {json.dumps(r)}" for name, r in models["ratios"].items()]


def default_out(args: argparse.Namespace, device: str) -> Path:
    model = args.arch if args.random_weights else args.llm.removeprefix("embedded:").replace("/", "_")
    if args.part == "models":
        model = "-vs-".join(short(s) for s in args.models.split(","))
    day = datetime.date.today().isoformat()
    return (
        Path("bench/results")
        / f"{args.part}-{device_tag(device)}-{model}{'-random' if args.random_weights else ''}-{day}.json"
    )


def main(argv: list[str] | None = None) -> Path:
    import sys

    from .archs import ARCHS
    from ..models.device import resolve_device

    p = argparse.ArgumentParser(prog="python -m interactive_format.bench", description=__doc__.splitlines()[0])
    p.add_argument("part", nargs="?", default="all", choices=("all", "llm", "speech", "vision", "turns", "models"))
    p.add_argument("--llm", default="embedded:smollm2-135m", help="chat model spec (without --random-weights)")
    p.add_argument("--arch", default="smollm2-135m", choices=sorted(ARCHS), help="shape for --random-weights")
    p.add_argument("--random-weights", action="store_true", help="the --arch shape with random weights")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto", help="our generator's dtype (the baseline keeps its plain one)")
    p.add_argument("--asr", default=None, help="speech model spec (default: the configured one)")
    p.add_argument("--quick", action="store_true", help="tiny sizes (the tests)")
    p.add_argument("--candidates", type=int, default=4, help="turns: N")
    p.add_argument("--max-new-tokens", type=int, default=128, help="turns: reply length")
    p.add_argument("--repeats", type=int, default=5, help="speech/vision/turns: runs per case")
    p.add_argument("--no-engines", dest="engines", action="store_false",
                   help="llm: skip our llama.cpp backend and the peer llama-server (CPU, GGUF specs)")  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="llama.cpp threads (ours and the peer)")
    p.add_argument("--turn-llm", default="",
                   help="llm: also time a 4 × 96-token text turn on these models (llama.cpp; comma-separated)")  # fmt: skip
    p.add_argument("--models", default="embedded:qwen2.5-coder-1.5b,embedded:qwen2.5-coder-0.5b",
                   help="models: chat model specs side by side (comma-separated; ratios: first over last; "
                        "SPEC@threads=N: that model with N llama.cpp threads)")  # fmt: skip
    p.add_argument("--ns", default="1,2,4", help="models: candidates per turn (comma-separated)")
    p.add_argument("--first-start", action="store_true", help="models: also time the app's first start per model")
    p.add_argument("--out", default=None, help="JSON path (default: bench/results/PART-DEVICE-MODEL-DATE.json)")
    args = p.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        result = run_parts(args)
    except ModuleNotFoundError as e:  # e.g. scikit-image (the sample pictures) without the dev lock
        raise SystemExit(f"bench: {missing_package(e, 'The benchmark', DEV_LOCK)}") from None
    out = Path(args.out) if args.out else default_out(args, resolve_device(args.device))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print("\n".join(summary(result)))
    print("->", out)
    return out


if __name__ == "__main__":
    main()
