"""Rank a replies-*.json file's stored candidates again with the app's Reranker (no sampling).

    python bench/quality/rank.py bench/quality/replies-qwen2.5-coder-0.5b.json

Files written before defect-aware ranking (issue 14) show the best λ·D + (1−λ)·J reply; this rewrites
"shown", "shown_d", "shown_defects" and each candidate's "defects" in place as the app ranks today
(fewest defects, then the score), so every file in this folder is read under the same rule.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from interactive_format.config import ModelsConfig
from interactive_format.dialogue import Candidate, context_text
from interactive_format.ranking.ranking import Reranker
from interactive_format.ranking.discriminator import load_discriminator

HERE = Path(__file__).resolve().parent


def main() -> None:
    prompts = json.loads((HERE / "prompts.json").read_text())
    d = load_discriminator(ModelsConfig().discriminator, "cpu")
    reranker = Reranker(d, float(d.meta.get("lam", 0.5)) if d else 0.5)
    for name in sys.argv[1:]:
        path = Path(name)
        out = json.loads(path.read_text())
        systems = {**prompts[out.get("systems", "systems")], **out.get("system_overrides", {})}
        for row in out["replies"]:
            messages = [{"role": "system", "content": systems[row["system"]]}, {"role": "user", "content": row["text"]}]
            candidates = [Candidate(c["text"], c["j"], finished=c["finished"]) for c in row["candidates"]]
            order = reranker.rank(context_text(messages), candidates)
            best = candidates[order[0]]
            row.update(shown=best.text, shown_d=best.d, shown_defects=best.defects)
            for stored, c in zip(row["candidates"], candidates):
                stored.update(d=c.d, defects=c.defects)
        out["ranking"] = "fewest defects, then λ·D + (1−λ)·J (bench/quality/rank.py)"
        out["shown_detected"] = {
            lang: sum(bool(r["shown_defects"]) for r in out["replies"] if r["lang"] == lang) for lang in ("zh", "en")
        }
        path.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n")
        print(path.name, "shown replies with a detected defect:", out["shown_detected"])


if __name__ == "__main__":
    main()
