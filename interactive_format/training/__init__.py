"""Training and judging D offline: adversarial training (train, trainrun, gstep), its data (chitchat), the
judges (judges, pairjudge), the reply-quality labels (labels, labeleval) and the evaluation report (evaluate)."""
