"""Which of the N candidates is shown: the ranking signals (signals/), the pure defect checks (defects), the
discriminator D (discriminator) and the verifier's model (verifier), weighed by the ranking (ranking)."""
